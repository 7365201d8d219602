-- Rollouts: a change reaches a cluster's nodes in steps (canary, waves).
CREATE TABLE IF NOT EXISTS rollouts (
    cluster TEXT PRIMARY KEY,
    -- What changed: the configuration's revision (site, modules, levels).
    revision TEXT NOT NULL,
    -- running, paused, halted or aborted.
    state TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    -- Why it halted: the node and its error.
    reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS rollout_nodes (
    cluster TEXT NOT NULL,
    certname TEXT NOT NULL,
    -- waiting (held back), admitted, applied, failed or rolled back.
    state TEXT NOT NULL,
    -- The catalog version that carried the change (0 while waiting), and
    -- the one before.
    version INTEGER NOT NULL,
    previous_version INTEGER NOT NULL,
    since_ms INTEGER NOT NULL,
    -- The error it failed with.
    error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (cluster, certname)
);
