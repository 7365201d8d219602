-- The update level each environment runs: a development environment
-- tracks the highest imported level; any other runs the GA level until a
-- level is promoted to it (`masterctl update promote`).
CREATE TABLE IF NOT EXISTS promotions (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    environment TEXT NOT NULL,
    level INTEGER NOT NULL,
    promoted_at_ms INTEGER NOT NULL,
    PRIMARY KEY (name, version, environment)
);
