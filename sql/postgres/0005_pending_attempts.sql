-- rocket_sqlite_sessions on PostgreSQL, schema version 5: credential checks
-- in progress (as SQLite's schema 9): one row each, naming the scopes its
-- attempt was counted in, deleted when the check ends; a launch takes back
-- the counts of the rows it finds (checks of a process that died).

CREATE TABLE auth_pending_attempts (
    id         bigserial PRIMARY KEY,
    started_at bigint NOT NULL,
    scopes     bytea NOT NULL
);

CREATE INDEX auth_pending_attempts_by_start ON auth_pending_attempts (started_at);
