-- When each certificate was revoked (0: not revoked, or revoked before
-- this was recorded): the revocation list the TLS verifier checks says so.
ALTER TABLE certs ADD COLUMN revoked_at_ms INTEGER NOT NULL DEFAULT 0;
