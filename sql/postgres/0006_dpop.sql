-- rocket_sqlite_sessions on PostgreSQL, schema version 6: the thumbprint of
-- the DPoP key a session is bound to (as SQLite's schema 10).

ALTER TABLE sessions ADD COLUMN dpop_jkt text;
