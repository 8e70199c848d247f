-- rocket_sqlite_sessions schema, version 9: credential checks in progress.
--
-- An attempt is counted as a failure when its check starts (so concurrent
-- guesses cannot pass a limit), and a check that passes takes its count
-- back. A process killed while checking a password never takes it back:
-- each check in progress is one row here, naming the scopes it was counted
-- in, deleted when the check ends. A launch takes back the counts of the
-- rows it finds (checks of a process that died) and deletes them; rows older
-- than the failure window are deleted with no take-back (their window has
-- ended).

CREATE TABLE auth_pending_attempts (
    id         INTEGER PRIMARY KEY,
    started_at INTEGER NOT NULL,
    -- the 32-byte scope keys the attempt was counted in, one after another
    scopes     BLOB NOT NULL
) STRICT;

CREATE INDEX auth_pending_attempts_by_start ON auth_pending_attempts (started_at);
