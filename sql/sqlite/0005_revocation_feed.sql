-- rocket_sqlite_sessions schema, version 5: the revocation feed.
--
-- Every revocation is appended here in the transaction that makes it, so
-- that every process on the file applies it to its memory. Sequence numbers
-- come from AUTOINCREMENT: SQLite runs one write transaction at a time, so
-- they are handed out in commit order, and never reused after pruning.

CREATE TABLE revocation_log (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    -- exactly one of the two: a revoked session, or a blocklisted access token
    session_id TEXT,
    jti        TEXT,
    -- the session's revocation time, or the token's exp
    at         INTEGER NOT NULL,
    CHECK ((session_id IS NULL) <> (jti IS NULL))
) STRICT;

CREATE INDEX revocation_log_by_time ON revocation_log (at);
