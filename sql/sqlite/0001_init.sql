-- rocket_sqlite_sessions schema, version 1.
-- Every time is INTEGER unix seconds, so expiry comparisons are integer
-- comparisons on an index.

CREATE TABLE sessions (
    id                  TEXT PRIMARY KEY,
    user_id             TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    last_seen_at        INTEGER NOT NULL,
    -- min(last refresh + idle_timeout, absolute_expires_at): past it the session is over
    expires_at          INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    revoked_at          INTEGER,
    revoked_reason      TEXT,
    ip                  TEXT,
    user_agent          TEXT,
    -- the app's claims copied into every access token of the session (JSON object)
    claims              TEXT NOT NULL DEFAULT '{}',
    -- the app's own data kept on the session (JSON object)
    data                TEXT NOT NULL DEFAULT '{}'
) STRICT;

CREATE INDEX sessions_by_user ON sessions (user_id, expires_at);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- Only the SHA-256 of a refresh token is stored, never the token.
CREATE TABLE refresh_tokens (
    hash        BLOB PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    parent_hash BLOB,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    rotated_at  INTEGER
) STRICT, WITHOUT ROWID;

CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);

-- Access tokens revoked before their exp, kept until then.
CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);
