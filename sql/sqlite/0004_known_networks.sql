-- rocket_sqlite_sessions schema, version 4: the networks each user signed in
-- from, so that failures from strangers elsewhere never lock a user out of
-- them. One row per (username, network), as an HMAC like the failure scopes,
-- kept `absolute_timeout` after the last success, at most `max_failure_scopes`.

CREATE TABLE auth_known_networks (
    scope        BLOB PRIMARY KEY,
    last_success INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX auth_known_networks_by_time ON auth_known_networks (last_success);

CREATE TABLE auth_known_network_count (
    only  INTEGER PRIMARY KEY CHECK (only = 1),
    count INTEGER NOT NULL
) STRICT;

INSERT INTO auth_known_network_count (only, count) VALUES (1, 0);

CREATE TRIGGER auth_known_networks_counted_in AFTER INSERT ON auth_known_networks
BEGIN
    UPDATE auth_known_network_count SET count = count + 1;
END;

CREATE TRIGGER auth_known_networks_counted_out AFTER DELETE ON auth_known_networks
BEGIN
    UPDATE auth_known_network_count SET count = count - 1;
END;
