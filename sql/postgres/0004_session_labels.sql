-- rocket_sqlite_sessions on PostgreSQL, schema version 4: a label the user
-- gives a session (as SQLite's schema 8).

ALTER TABLE sessions ADD COLUMN label text;
