-- The schema of Rigger's PostgreSQL metadata store, version 1: the same
-- tables as the SQLite store's migrations 1 to 11, in PostgreSQL's types.
-- Every integer is BIGINT (Unix ms, counts, versions), every flag BOOLEAN.

CREATE TABLE tokens (
    hash TEXT PRIMARY KEY,
    role TEXT,
    expires_at_ms BIGINT NOT NULL,
    uses_left BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    -- When an operator revoked it (`masterctl token revoke`).
    revoked_at_ms BIGINT
);

CREATE TABLE certs (
    serial TEXT PRIMARY KEY,
    certname TEXT NOT NULL,
    issued_at_ms BIGINT NOT NULL,
    not_after_ms BIGINT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE,
    cert_pem TEXT NOT NULL DEFAULT '',
    -- 0: not revoked.
    revoked_at_ms BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX certs_by_name ON certs (certname);

CREATE TABLE nodes (
    certname TEXT PRIMARY KEY,
    bound_role TEXT,
    role TEXT,
    enrolled_at_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL DEFAULT 0,
    ip TEXT,
    facts_json TEXT,
    pinned_version BIGINT,
    -- Why the master could not give it its catalog ("" when it could).
    catalog_error TEXT NOT NULL DEFAULT '',
    -- What it says it applied: the master's epoch, version and digest.
    applied_epoch TEXT NOT NULL DEFAULT '',
    applied_version BIGINT NOT NULL DEFAULT 0,
    applied_digest TEXT NOT NULL DEFAULT ''
);

CREATE TABLE catalogs (
    certname TEXT NOT NULL,
    version BIGINT NOT NULL,
    digest TEXT NOT NULL,
    catalog_json BYTEA NOT NULL,
    signature BYTEA NOT NULL,
    created_at_ms BIGINT NOT NULL,
    site_revision TEXT NOT NULL DEFAULT '',
    site_commit TEXT,
    PRIMARY KEY (certname, version)
);

CREATE TABLE reports (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    certname TEXT NOT NULL,
    catalog_version BIGINT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    status TEXT NOT NULL,
    changed BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    report_json TEXT NOT NULL
);
CREATE INDEX reports_by_node ON reports (certname, id);

CREATE TABLE trees (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    level BIGINT NOT NULL,
    digest TEXT NOT NULL,
    files BIGINT NOT NULL,
    size BIGINT NOT NULL,
    imported_at_ms BIGINT NOT NULL,
    PRIMARY KEY (name, version, level)
);

CREATE TABLE restart_leases (
    lease_group TEXT NOT NULL,
    certname TEXT NOT NULL,
    service TEXT NOT NULL,
    acquired_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    PRIMARY KEY (lease_group, certname)
);

CREATE TABLE artifacts (
    name TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    size BIGINT NOT NULL,
    imported_at_ms BIGINT NOT NULL
);

CREATE TABLE service_health (
    certname TEXT NOT NULL,
    service TEXT NOT NULL,
    lease_group TEXT NOT NULL,
    running BOOLEAN NOT NULL,
    ready BOOLEAN NOT NULL,
    -- Since when it has been ready without a break (NULL: not ready).
    ready_since_ms BIGINT,
    reported_at_ms BIGINT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    peers_changed TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (certname, service)
);
CREATE INDEX service_health_group ON service_health (lease_group);

CREATE TABLE promotions (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    environment TEXT NOT NULL,
    level BIGINT NOT NULL,
    promoted_at_ms BIGINT NOT NULL,
    PRIMARY KEY (name, version, environment)
);

CREATE TABLE rollouts (
    cluster TEXT PRIMARY KEY,
    revision TEXT NOT NULL,
    -- running, paused, halted, aborted or superseded.
    state TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);

CREATE TABLE rollout_nodes (
    cluster TEXT NOT NULL,
    certname TEXT NOT NULL,
    state TEXT NOT NULL,
    version BIGINT NOT NULL,
    previous_version BIGINT NOT NULL,
    since_ms BIGINT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (cluster, certname)
);

CREATE TABLE pending_enrollments (
    certname TEXT PRIMARY KEY,
    csr_pem TEXT NOT NULL,
    asked_role TEXT,
    document TEXT NOT NULL,
    why TEXT NOT NULL,
    remote TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL
);
