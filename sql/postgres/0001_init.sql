-- rocket_sqlite_sessions on PostgreSQL, schema version 1: the same model as
-- SQLite's schema 5. Every time is a bigint of unix seconds.

CREATE TABLE sessions (
    id                    text PRIMARY KEY,
    user_id               text NOT NULL,
    created_at            bigint NOT NULL,
    last_seen_at          bigint NOT NULL,
    -- min(last refresh + idle_timeout, last refresh + refresh_ttl,
    --     absolute_expires_at): past it the session is over
    expires_at            bigint NOT NULL,
    absolute_expires_at   bigint NOT NULL,
    revoked_at            bigint,
    revoked_reason        text,
    ip                    text,
    user_agent            text,
    -- the app's claims copied into every access token of the session (JSON object)
    claims                text NOT NULL DEFAULT '{}',
    -- the app's own data kept on the session (JSON object)
    data                  text NOT NULL DEFAULT '{}',
    -- 0 at login, one more at each rotation
    refresh_generation    bigint NOT NULL DEFAULT 0,
    -- SHA-256 of the current refresh token, and of the one rotated last
    refresh_hash          bytea,
    previous_refresh_hash bytea,
    refresh_rotated_at    bigint
);

CREATE INDEX sessions_by_user ON sessions (user_id);
-- Pruning finds dead sessions through these (there is no rowid to walk).
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- Access tokens revoked before their exp, kept until then.
CREATE TABLE revoked_tokens (
    jti        text PRIMARY KEY,
    expires_at bigint NOT NULL
);

CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);

-- The revocation feed: every revocation, in the transaction that makes it.
-- Sequence numbers come from revocation_sequence: its one row stays locked
-- until the transaction that took a number commits, so numbers are handed
-- out in commit order (a bigserial's are not: a later number can commit
-- first, and a reader that saw it would skip the earlier one).
CREATE TABLE revocation_log (
    seq        bigint PRIMARY KEY,
    session_id text,
    jti        text,
    at         bigint NOT NULL,
    CHECK ((session_id IS NULL) <> (jti IS NULL))
);

CREATE INDEX revocation_log_by_time ON revocation_log (at);

CREATE TABLE revocation_sequence (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    last     bigint NOT NULL
);

INSERT INTO revocation_sequence (last) VALUES (0);

-- Failed attempts: one counter per scope (an HMAC of a username or a client
-- network) and window, never a username or an address.
CREATE TABLE auth_failures (
    scope        bytea PRIMARY KEY,
    window_start bigint NOT NULL,
    failures     bigint NOT NULL
);

CREATE INDEX auth_failures_by_window ON auth_failures (window_start);

-- Networks each user signed in from (an HMAC of both).
CREATE TABLE auth_known_networks (
    scope        bytea PRIMARY KEY,
    last_success bigint NOT NULL
);

CREATE INDEX auth_known_networks_by_time ON auth_known_networks (last_success);

-- How many rows the capped tables hold, kept by triggers, so the caps are
-- checked without counting a table. The row is locked for the check, so
-- concurrent attempts cannot pass the cap together.
CREATE TABLE row_counts (
    name  text PRIMARY KEY,
    count bigint NOT NULL
);

INSERT INTO row_counts (name, count) VALUES ('auth_failures', 0), ('auth_known_networks', 0);

CREATE FUNCTION rocket_sessions_count_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE row_counts SET count = count + 1 WHERE name = TG_TABLE_NAME;
    ELSE
        UPDATE row_counts SET count = count - 1 WHERE name = TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER auth_failures_counted AFTER INSERT OR DELETE ON auth_failures
    FOR EACH ROW EXECUTE FUNCTION rocket_sessions_count_rows();

CREATE TRIGGER auth_known_networks_counted AFTER INSERT OR DELETE ON auth_known_networks
    FOR EACH ROW EXECUTE FUNCTION rocket_sessions_count_rows();
