-- rocket_sqlite_sessions schema, version 2: failed authentication attempts, for
-- throttling. `scope` is the SHA-256 of "user\0<username>" or "ip\0<address>",
-- so no username (often a mistyped password) and no address is stored.

CREATE TABLE auth_failures (
    scope BLOB NOT NULL,
    at    INTEGER NOT NULL
) STRICT;

CREATE INDEX auth_failures_by_scope ON auth_failures (scope, at);
CREATE INDEX auth_failures_by_time ON auth_failures (at);
