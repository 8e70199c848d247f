-- rocket_sqlite_sessions on PostgreSQL, schema version 3: user-wide cut-offs
-- (as SQLite's schema 7), and the order of logins for `max_sessions`. A cut-off updates the one row of cutoff_counter,
-- which stays locked until it commits; a login checking against cut-offs
-- reads it FOR SHARE, so a login and a cut-off of its user never interleave.

CREATE TABLE cutoff_counter (
    id smallint PRIMARY KEY CHECK (id = 1),
    n  bigint NOT NULL
);

INSERT INTO cutoff_counter (id, n) VALUES (1, 0);

CREATE TABLE user_cutoffs (
    user_id text PRIMARY KEY,
    seq     bigint NOT NULL,
    at      bigint NOT NULL
);

CREATE INDEX user_cutoffs_by_time ON user_cutoffs (at);

-- The order sessions were created in, within a second too (SQLite has its
-- rowid): a login past `max_sessions` ends the user's oldest.
ALTER TABLE sessions ADD COLUMN login_order bigserial;
