-- EC2 enrollments no policy rule accepted, waiting for an operator
-- (`masterctl cert pending` / `cert sign`): one per certname, the latest.
CREATE TABLE pending_enrollments (
    certname TEXT PRIMARY KEY,
    csr_pem TEXT NOT NULL,
    asked_role TEXT,
    -- The verified instance identity document (JSON).
    document TEXT NOT NULL,
    why TEXT NOT NULL,
    remote TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL
);
