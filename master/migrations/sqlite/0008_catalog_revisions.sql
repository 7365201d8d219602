-- The site revision each catalog version was compiled from (and the
-- site's git commit), for `masterctl catalog list` without decoding every
-- catalog.
ALTER TABLE catalogs ADD COLUMN site_revision TEXT NOT NULL DEFAULT '';
ALTER TABLE catalogs ADD COLUMN site_commit TEXT;

-- When an operator revoked a token (`masterctl token revoke`), so that an
-- enrollment with it is refused as revoked, not as expired.
ALTER TABLE tokens ADD COLUMN revoked_at_ms INTEGER;
