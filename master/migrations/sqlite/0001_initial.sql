-- The schema of Rigger's SQLite metadata store, version 1. `IF NOT EXISTS`
-- lets a database created before migrations existed adopt this history.

CREATE TABLE IF NOT EXISTS tokens (
        hash TEXT PRIMARY KEY,
        role TEXT,
        expires_at_ms BIGINT NOT NULL,
        uses_left BIGINT NOT NULL,
        created_at_ms BIGINT NOT NULL);

CREATE TABLE IF NOT EXISTS certs (
        serial TEXT PRIMARY KEY,
        certname TEXT NOT NULL,
        issued_at_ms BIGINT NOT NULL,
        not_after_ms BIGINT NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0);

CREATE INDEX IF NOT EXISTS certs_by_name ON certs (certname);

CREATE TABLE IF NOT EXISTS nodes (
        certname TEXT PRIMARY KEY,
        bound_role TEXT,
        role TEXT,
        enrolled_at_ms BIGINT NOT NULL,
        last_seen_ms BIGINT NOT NULL DEFAULT 0,
        ip TEXT,
        facts_json TEXT,
        pinned_version BIGINT);

CREATE TABLE IF NOT EXISTS catalogs (
        certname TEXT NOT NULL,
        version BIGINT NOT NULL,
        digest TEXT NOT NULL,
        catalog_json BLOB NOT NULL,
        signature BLOB NOT NULL,
        created_at_ms BIGINT NOT NULL,
        PRIMARY KEY (certname, version));

CREATE TABLE IF NOT EXISTS reports (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        certname TEXT NOT NULL,
        catalog_version BIGINT NOT NULL,
        received_at_ms BIGINT NOT NULL,
        status TEXT NOT NULL,
        changed BIGINT NOT NULL,
        failed BIGINT NOT NULL,
        duration_ms BIGINT NOT NULL,
        report_json TEXT NOT NULL);

CREATE INDEX IF NOT EXISTS reports_by_node ON reports (certname, id);

CREATE TABLE IF NOT EXISTS trees (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        level BIGINT NOT NULL,
        digest TEXT NOT NULL,
        files BIGINT NOT NULL,
        size BIGINT NOT NULL,
        imported_at_ms BIGINT NOT NULL,
        PRIMARY KEY (name, version, level));

CREATE TABLE IF NOT EXISTS restart_leases (
        lease_group TEXT NOT NULL,
        certname TEXT NOT NULL,
        service TEXT NOT NULL,
        acquired_at_ms BIGINT NOT NULL,
        expires_at_ms BIGINT NOT NULL,
        PRIMARY KEY (lease_group, certname));

CREATE TABLE IF NOT EXISTS artifacts (
        name TEXT PRIMARY KEY,
        digest TEXT NOT NULL,
        size BIGINT NOT NULL,
        imported_at_ms BIGINT NOT NULL);
