-- rocket_sqlite_sessions schema, version 11: the browser key a session is
-- bound to by Device Bound Session Credentials (DBSC): its RFC 7638
-- thumbprint, and its public JWK (required members only) to verify the
-- browser's signed refreshes with. NULL: not device-bound.

ALTER TABLE sessions ADD COLUMN dbsc_jkt TEXT;
ALTER TABLE sessions ADD COLUMN dbsc_key TEXT;
