-- rocket_sqlite_sessions schema, version 7: user-wide cut-offs.
--
-- Ending every session of a user (logout everywhere, the other sessions at a
-- password change) or replacing their claims is a cut-off: it takes the next
-- number of cutoff_counter and records it for the user. A credential check
-- reads the counter when it starts; a login whose check read a lower number
-- than its user's cut-off started before the cut-off, so it is refused. One
-- row per user with a cut-off younger than `login_failure_window`.

CREATE TABLE cutoff_counter (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
) STRICT;

INSERT INTO cutoff_counter (id, n) VALUES (1, 0);

CREATE TABLE user_cutoffs (
    user_id TEXT PRIMARY KEY,
    -- the counter's number at the user's latest cut-off
    seq     INTEGER NOT NULL,
    -- when it was made, for pruning
    at      INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX user_cutoffs_by_time ON user_cutoffs (at);
