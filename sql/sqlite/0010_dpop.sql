-- rocket_sqlite_sessions schema, version 10: the thumbprint (RFC 7638,
-- SHA-256, base64url) of the DPoP key a session is bound to (RFC 9449), set
-- at login when the request carried a proof; every refresh of the session
-- then needs a proof by that key. NULL: a bearer session.

ALTER TABLE sessions ADD COLUMN dpop_jkt TEXT;
