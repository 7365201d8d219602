-- What every master serving this fleet must hold alike (names of the
-- CA, the signing key, the restart key, and the epoch), as the first
-- master recorded them: one row.
CREATE TABLE fleet (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    ca TEXT NOT NULL,
    signing TEXT NOT NULL,
    restart TEXT NOT NULL,
    epoch TEXT NOT NULL
);
