-- rocket_sqlite_sessions schema, version 8: a label the user gives a session
-- ("Work laptop"), shown in the device list beside the device's name. At most
-- MAX_SESSION_LABEL_CHARS characters (checked by the crate), gone with the
-- session's row.

ALTER TABLE sessions ADD COLUMN label TEXT;
