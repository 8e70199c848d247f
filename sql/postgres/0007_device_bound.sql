-- rocket_sqlite_sessions on PostgreSQL, schema version 7: the browser key a
-- session is bound to by DBSC (as SQLite's schema 11).

ALTER TABLE sessions ADD COLUMN dbsc_jkt text;
ALTER TABLE sessions ADD COLUMN dbsc_key text;
