-- rocket_sqlite_sessions on PostgreSQL, schema version 2: per-login options
-- (as SQLite's schema 6).

ALTER TABLE sessions
    ADD COLUMN refresh_ttl bigint,
    ADD COLUMN persistent boolean NOT NULL DEFAULT true;
