-- Each catalog request reads the live nodes of its cluster's roles.
CREATE INDEX nodes_by_role ON nodes (role);
