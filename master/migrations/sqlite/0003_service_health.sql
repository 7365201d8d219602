-- What each node last said about its services (with each report, and in
-- heartbeats): the readiness the restart budget counts.
CREATE TABLE IF NOT EXISTS service_health (
    certname TEXT NOT NULL,
    service TEXT NOT NULL,
    lease_group TEXT NOT NULL,
    running INTEGER NOT NULL,
    ready INTEGER NOT NULL,
    -- Since when it has been ready without a break (NULL: not ready).
    ready_since_ms INTEGER,
    reported_at_ms INTEGER NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (certname, service)
);
CREATE INDEX IF NOT EXISTS service_health_group ON service_health (lease_group);
