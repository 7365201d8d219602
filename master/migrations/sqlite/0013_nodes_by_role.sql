-- Each catalog request reads the live nodes of its cluster's roles.
CREATE INDEX IF NOT EXISTS nodes_by_role ON nodes (role);
