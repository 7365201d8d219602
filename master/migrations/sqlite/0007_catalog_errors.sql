-- Why the master could not give a node its catalog the last time it asked
-- ("" when it could): the screens show it.
ALTER TABLE nodes ADD COLUMN catalog_error TEXT NOT NULL DEFAULT '';
