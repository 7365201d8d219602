-- Issued certificates keep their PEM, so that a node repeating its
-- enrollment with the same key gets the same certificate again.
ALTER TABLE certs ADD COLUMN cert_pem TEXT NOT NULL DEFAULT '';
