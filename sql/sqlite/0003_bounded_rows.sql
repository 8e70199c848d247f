-- rocket_sqlite_sessions schema, version 3: a constant number of rows per
-- session, and one counter per throttling scope.
--
-- A session's refresh tokens are no longer rows of their own: the session
-- holds its generation counter and the SHA-256 of its current and previous
-- token (earlier tokens are recognised by their tag and generation). Refresh
-- tokens issued before this version are not accepted any more; their
-- sessions' access tokens live out their `exp`, then users sign in again.

DROP TABLE refresh_tokens;

CREATE TABLE sessions_v3 (
    id                    TEXT PRIMARY KEY,
    user_id               TEXT NOT NULL,
    created_at            INTEGER NOT NULL,
    last_seen_at          INTEGER NOT NULL,
    -- min(last refresh + idle_timeout, last refresh + refresh_ttl,
    --     absolute_expires_at): past it the session is over
    expires_at            INTEGER NOT NULL,
    absolute_expires_at   INTEGER NOT NULL,
    revoked_at            INTEGER,
    revoked_reason        TEXT,
    ip                    TEXT,
    user_agent            TEXT,
    -- the app's claims copied into every access token of the session (JSON object)
    claims                TEXT NOT NULL DEFAULT '{}',
    -- the app's own data kept on the session (JSON object)
    data                  TEXT NOT NULL DEFAULT '{}',
    -- 0 at login, one more at each rotation
    refresh_generation    INTEGER NOT NULL DEFAULT 0,
    -- SHA-256 of the current refresh token (NULL: none can be refreshed)
    refresh_hash          BLOB,
    -- SHA-256 of the token rotated last, and when: the grace window's replays
    previous_refresh_hash BLOB,
    refresh_rotated_at    INTEGER
) STRICT;

INSERT INTO sessions_v3 (id, user_id, created_at, last_seen_at, expires_at, absolute_expires_at,
                         revoked_at, revoked_reason, ip, user_agent, claims, data)
SELECT id, user_id, created_at, last_seen_at, expires_at, absolute_expires_at,
       revoked_at, revoked_reason, ip, user_agent, claims, data
FROM sessions;

DROP TABLE sessions;
ALTER TABLE sessions_v3 RENAME TO sessions;

-- A refresh changes expires_at and last_seen_at: no index holds either, so a
-- rotation rewrites the session's row and nothing else. Pruning finds expired
-- sessions by walking the table in rowid order.
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- Failed attempts: one counter per scope (an HMAC of a username or a client
-- network) and window, never a username or an address.
DROP TABLE auth_failures;

CREATE TABLE auth_failures (
    scope        BLOB PRIMARY KEY,
    window_start INTEGER NOT NULL,
    failures     INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX auth_failures_by_window ON auth_failures (window_start);

-- How many counters there are, kept by triggers, so the cap
-- (`max_failure_scopes`) is checked without counting the table.
CREATE TABLE auth_failure_scopes (
    only  INTEGER PRIMARY KEY CHECK (only = 1),
    count INTEGER NOT NULL
) STRICT;

INSERT INTO auth_failure_scopes (only, count) VALUES (1, 0);

CREATE TRIGGER auth_failures_counted_in AFTER INSERT ON auth_failures
BEGIN
    UPDATE auth_failure_scopes SET count = count + 1;
END;

CREATE TRIGGER auth_failures_counted_out AFTER DELETE ON auth_failures
BEGIN
    UPDATE auth_failure_scopes SET count = count - 1;
END;
