-- rocket_sqlite_sessions schema, version 6: per-login options.

-- The session's own refresh lifetime (NULL: the configured `refresh_ttl`).
ALTER TABLE sessions ADD COLUMN refresh_ttl INTEGER;
-- 0: "remember me" off, the cookies last as long as the browser session.
ALTER TABLE sessions ADD COLUMN persistent INTEGER NOT NULL DEFAULT 1;
