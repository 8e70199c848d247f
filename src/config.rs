//! The `[sessions]` configuration: every key written once, in
//! [`SessionsConfig`] (its doc, type and default), read through Rocket's
//! figment and validated before launch into [`Settings`], grouped as the
//! parts of the crate take them.

use std::fmt;
use std::path::PathBuf;

use ipnet::IpNet;
use rocket::figment::Figment;
use serde::Deserialize;

use crate::dbsc::DbscSettings;
use crate::dpop::DpopSettings;
pub use crate::dpop::{DpopMode, ProofAlgorithm};
pub use crate::store::Durability;
use crate::store::{Database, SessionLimit};
use crate::token::{AccessRules, SigningKey};

/// The smallest HMAC key accepted, in bytes (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;

/// Declares [`SessionsConfig`] from one list of keys, each with its doc, type
/// and default: the struct, its `Default`, and its `Debug` (which never shows
/// the secret, so it cannot reach a log line).
macro_rules! sessions_config {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* $field:ident: $ty:ty = $default:expr, )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$field_meta])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name { $( $field: $default, )* }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut shown = f.debug_struct(stringify!($name));
                $(
                    if stringify!($field) == "secret" {
                        shown.field("secret", &self.secret.as_ref().map(|_| "<redacted>"));
                    } else {
                        shown.field(stringify!($field), &self.$field);
                    }
                )*
                shown.finish()
            }
        }
    };
}

sessions_config! {
    /// The `[sessions]` table of `Rocket.toml`, as written by the user.
    ///
    /// Every key has a default except `secret`. Durations are whole seconds, as in
    /// Rocket's own configuration. Unknown keys are rejected, so a typo fails launch
    /// instead of being silently ignored.
    ///
    /// ```toml
    /// [default.sessions]
    /// database = "sessions.db"
    /// access_ttl = 900
    ///
    /// [release.sessions]
    /// secret = "…base64 of 32 or more random bytes…"
    /// ```
    #[derive(Clone, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct SessionsConfig {
        /// Path of the SQLite file (default `"sessions.db"`), or, with the
        /// `postgres` cargo feature, a PostgreSQL URL:
        /// `"postgres://user:password@host/dbname"` (or `postgresql://…`; the
        /// parameters of libpq URLs such as `?host=/run/postgresql` for a unix
        /// socket are understood).
        database: PathBuf = PathBuf::from("sessions.db"),
        /// With a PostgreSQL `database` reached through a connection pooler in
        /// transaction mode (PgBouncer, Supavisor), where `LISTEN` cannot
        /// work: a direct URL to the same database, for the revocation feed's
        /// listening connection (and its TLS settings). Without it, other
        /// instances' revocations still arrive within a second (the feed is
        /// read at least every second). Default: none (listen on `database`).
        listen_database: Option<String> = None,
        /// What a write answered as done survives, on a SQLite `database`:
        /// `"power_loss"` (the default) syncs the WAL to stable storage at
        /// every commit (`PRAGMA synchronous = FULL`, one `fsync` a batch of
        /// the group-committing writer), so a power cut or an OS crash undoes
        /// nothing that was answered. `"process_crash"` syncs only at
        /// checkpoints (`synchronous = NORMAL`, about every 200 ms): faster
        /// writes, still nothing lost when the app is killed, but a power cut
        /// or OS crash may undo the writes of the last fraction of a second
        /// (a logout answered 204, a rotation), and the refresh tokens they
        /// ended work again. On PostgreSQL the server's `synchronous_commit`
        /// decides (launch fails when it is `off`); this key is for SQLite
        /// only.
        durability: Durability = Durability::PowerLoss,
        /// Whether the PostgreSQL `database` is reached through a connection
        /// pooler in transaction mode (PgBouncer, Supavisor): statements are
        /// then sent unnamed, parsed by the server each time, instead of
        /// prepared once per connection (which a pooler's server connections
        /// cannot keep). Default `false`: a direct connection.
        pooled: bool = false,
        /// Base64 (standard alphabet) of at least 32 random bytes: the HMAC key that
        /// signs access tokens. When missing in the `debug` profile a random key is
        /// generated (tokens then do not survive a restart); in any other profile
        /// launch fails.
        secret: Option<String> = None,
        /// Several keys, for rotation, instead of `secret`: the first signs new
        /// tokens and every one verifies, so an old key can be retired `access_ttl`
        /// after a new one is put first. Each token names its key in its `kid` header.
        /// A key is an HS256 `secret`, or an Ed25519 or P-256 `private_key`
        /// (PKCS#8 PEM, or `private_key_file`), whose public half other services
        /// can verify with (see [`jwks_routes`](crate::jwks_routes)).
        ///
        /// ```toml
        /// keys = [{ kid = "2026-11", private_key_file = "/etc/app/ed25519.pem" },
        ///         { kid = "2026-05", secret = "…" }]
        /// ```
        keys: Vec<KeyConfig> = Vec::new(),
        /// Access-token lifetime in seconds. Default 900.
        access_ttl: u64 = 900,
        /// Refresh-token lifetime in seconds. Default 1209600 (14 days).
        refresh_ttl: u64 = 1_209_600,
        /// A session ends after this many seconds without a refresh. Default 604800 (7 days).
        idle_timeout: u64 = 604_800,
        /// A session ends this many seconds after login, however often it is refreshed.
        /// Default 2592000 (30 days).
        absolute_timeout: u64 = 2_592_000,
        /// Seconds after a rotation during which the refresh token it replaced may be
        /// presented again (two tabs refreshing at once): it gets the same successor,
        /// not a second branch of the session. After that, presenting it is reuse
        /// and revokes the session. Default 10.
        reuse_grace: u64 = 10,
        /// Lost-response recovery, for clients whose refresh response can be lost
        /// (mobile networks): past `reuse_grace`, the refresh token a rotation
        /// replaced still gets the same successor, as long as that successor has
        /// never been presented. A token two generations old, or the replaced one
        /// once its successor was used, is reuse as always. The trade: two holders
        /// of one lineage (a thief and the user) can share it until one of them
        /// refreshes twice in a row. Default `false`.
        lost_response_recovery: bool = false,
        /// The most live sessions one user may have at once (OWASP ASVS 7.1.2);
        /// unset (the default): no limit. What a login past it does is
        /// `at_max_sessions`.
        max_sessions: Option<u32> = None,
        /// What a login does when its user already has `max_sessions`:
        /// `"end_oldest"` (the default) ends the user's oldest sessions, as a
        /// logout would; `"refuse"` refuses the login with 409
        /// `too_many_sessions`.
        at_max_sessions: AtMaxSessions = AtMaxSessions::EndOldest,
        /// Clock-skew allowance in seconds when checking `exp`, `nbf` and `iat`.
        /// Default 5: one process never disagrees with itself (its clock never
        /// steps back, see [`Clock`](crate::Clock)), but processes sharing the
        /// sessions do by the skew between their clocks, and a process restarted
        /// after a small backward step would otherwise refuse the tokens of the
        /// last few seconds. It costs a token up to 5 s of life past its `exp`
        /// (a blocklisted one stays blocklisted that long too).
        leeway: u64 = 5,
        /// When to prune expired rows: cron with seconds, tokio-cron-scheduler syntax.
        /// Default `"0 */10 * * * *"` (every ten minutes).
        prune_schedule: String = "0 */10 * * * *".into(),
        /// Rows deleted per transaction by a prune pass: a request that needs the
        /// write lock waits for at most one batch. Default 1000.
        prune_batch: u32 = 1000,
        /// Whether the fairing schedules pruning on `prune_schedule`. Set `false` to
        /// prune from the app's own task with [`Sessions::prune_now`](crate::Sessions::prune_now).
        /// Default `true`.
        auto_prune: bool = true,
        /// Seconds after login during which [`FreshAuthUser`](crate::FreshAuthUser)
        /// admits the session: sensitive actions need a recent login. Default 300.
        fresh_age: u64 = 300,
        /// Failed logins for one username from one client network within
        /// `login_failure_window` after which further attempts on it from there
        /// get 429 until the window passes. Default 10.
        login_max_failures: u32 = 10,
        /// Failed logins for one username from all networks together after which
        /// attempts on it get 429, except from a network where that user signed in
        /// within `absolute_timeout`: strangers cannot lock a user out of a network
        /// they use. Default 100.
        login_max_failures_global: u32 = 100,
        /// The window, in seconds, over which failures are counted. Default 900.
        login_failure_window: u64 = 900,
        /// Failed logins from one client network (an IPv4 address, an IPv6 /64)
        /// within `login_failure_window` after which its attempts get 429.
        /// Default 100.
        ip_max_failures: u32 = 100,
        /// The most failure counters (usernames and client networks with recent
        /// failures) kept at once: one row each. Past it, the counters whose window
        /// started first are dropped. Default 100000 (about 10 MB).
        max_failure_scopes: u64 = 100_000,
        /// Name of the cookie that carries the access token in browser apps.
        /// Default `"__Host-access_token"`.
        access_cookie: String = "__Host-access_token".into(),
        /// Name of the cookie that carries the refresh token. Default
        /// `"__Host-refresh_token"`.
        refresh_cookie: String = "__Host-refresh_token".into(),
        /// Name of the cookie that binds a CSRF token before login (login forms).
        /// Default `"__Host-csrf"`.
        csrf_cookie: String = "__Host-csrf".into(),
        /// The `SameSite` attribute of the session cookies. Default `lax`.
        same_site: SameSitePolicy = SameSitePolicy::Lax,
        /// A domain whose subdomains all receive the session cookies
        /// (`"example.com"`: `app.example.com` signs in, `api.example.com`
        /// reads the session). The cookies then carry `Domain` and are named
        /// `__Secure-…` by default (a `__Host-` cookie may not carry a
        /// `Domain`; a `__Host-` name set by hand fails launch). List the
        /// sibling origins that send unsafe requests in `allowed_origins`.
        /// Default: none, host-only `__Host-` cookies.
        cookie_domain: Option<String> = None,
        /// Origins (`scheme://host[:port]`) allowed in the `Origin` header of
        /// cookie-authenticated unsafe requests. Empty (the default): the request's
        /// own `Host`, with the request's scheme and port.
        allowed_origins: Vec<String> = Vec::new(),
        /// For HTML apps: a path of the app (e.g. `"/login"`) that a browser's
        /// `GET` refused by a session guard is redirected to (303, with
        /// `?next=<the path asked for>`), instead of the JSON 401. Only requests
        /// that accept `text/html` and send no `Authorization` header are
        /// redirected. Default: none.
        login_url: Option<String> = None,
        /// The reverse proxies (addresses or CIDR ranges, e.g. `"10.0.0.0/8"`)
        /// whose forwarding header (`forwarded_header`) is believed. Empty
        /// (the default): the client is the socket's peer, and no forwarding
        /// header is read.
        trusted_proxies: Vec<String> = Vec::new(),
        /// The one header the trusted proxies write the client's address and
        /// scheme in: `"x-forwarded-for"` (the default: `X-Forwarded-For`,
        /// with `X-Forwarded-Proto`), `"forwarded"` (RFC 7239 `Forwarded`,
        /// `for=` and `proto=`) or `"x-real-ip"` (`X-Real-IP`, with
        /// `X-Forwarded-Proto`). The other headers are ignored, whoever sent
        /// them: a proxy passes on what it does not overwrite.
        forwarded_header: ForwardedHeader = ForwardedHeader::XForwardedFor,
        /// DPoP (RFC 9449) for bearer clients: `"allowed"` (the default) binds
        /// the session of a login or refresh request that carries a `DPoP`
        /// proof to the proof's key, after which its tokens work only with
        /// proofs by that key (a stolen token alone is useless); clients that
        /// send no proof are bearer clients as before, and cost nothing more.
        /// `"required"`: an `Authorization` header must use the `DPoP`
        /// scheme and a refresh outside the cookies needs a proof (browser
        /// sessions are not affected). `"off"`: no DPoP.
        dpop: DpopMode = DpopMode::Allowed,
        /// The algorithms a DPoP proof may be signed with: `"ES256"` and
        /// `"EdDSA"` (both, the default); never `none` or an HMAC.
        dpop_algorithms: Vec<ProofAlgorithm> = vec![ProofAlgorithm::Es256, ProofAlgorithm::EdDsa],
        /// How old, in seconds, a DPoP proof's `iat` may be (from 1 to 300;
        /// default 60). Each accepted proof is remembered that long, so that it
        /// is accepted once.
        dpop_proof_window: u64 = 60,
        /// Whether DPoP proofs must carry a server nonce (RFC 9449 §8): a
        /// client then retries a request refused with `use_dpop_nonce` with
        /// the `DPoP-Nonce` the answer gave. The nonces need no storage and
        /// every process with the same keys accepts them; one is good for one
        /// to two `dpop_proof_window`s. Default `false`.
        dpop_nonces: bool = false,
        /// The most DPoP proofs remembered at once, per process (about 64
        /// bytes each). While that many are younger than `dpop_proof_window`,
        /// further proofs are refused until the oldest age out: a proof is
        /// never accepted twice. Default 100000 (about 1,600 proofs a second
        /// with the default window, 6.4 MB).
        dpop_replay_capacity: u64 = 100_000,
        /// Device Bound Session Credentials for browser sessions (W3C DBSC):
        /// a sign-in that sets the session cookies offers the browser to bind
        /// the session to a key it keeps in the device; once bound, the
        /// refresh cookie goes only to the crate's DBSC refresh route and is
        /// renewed only with that key's signature, so copied cookies stop
        /// working when the access cookie expires. Needs
        /// [`routes()`](crate::routes) mounted. Default `false`.
        dbsc: bool = false,
        /// The refresh cookie of a device-bound session, sent to the DBSC
        /// refresh route only (its `Path`), so not `__Host-`. Default
        /// `"__Secure-dbsc_refresh"`.
        dbsc_refresh_cookie: String = "__Secure-dbsc_refresh".into(),
        /// The `iss` claim to set and require, when given.
        issuer: Option<String> = None,
        /// The `aud` claim to set and require, when given.
        audience: Option<String> = None,
    }
}

/// What a login does when its user already has `max_sessions` live
/// sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AtMaxSessions {
    /// End the user's oldest sessions (by login time) to make room, as a
    /// logout would: their tokens stop working at once.
    EndOldest,
    /// Refuse the login: 409 `too_many_sessions` ([`Error::TooManySessions`](crate::Error::TooManySessions)).
    Refuse,
}

/// The header a trusted proxy writes the client's address in (the
/// `forwarded_header` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (each proxy appends its peer; nginx's
    /// `$proxy_add_x_forwarded_for`, Caddy, HAProxy's `option forwardfor`),
    /// the scheme in `X-Forwarded-Proto`.
    #[serde(rename = "x-forwarded-for")]
    XForwardedFor,
    /// RFC 7239 `Forwarded`: `for=` per hop, the scheme in `proto=`.
    #[serde(rename = "forwarded")]
    Forwarded,
    /// `X-Real-IP`: one address, written by the proxy; the scheme in
    /// `X-Forwarded-Proto`.
    #[serde(rename = "x-real-ip")]
    XRealIp,
}

/// The `SameSite` attribute of the session cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SameSitePolicy {
    /// `SameSite=Lax`: cookies go with top-level navigations from other sites
    /// (links into the app keep the user signed in), not with their forms or
    /// scripts.
    Lax,
    /// `SameSite=Strict`: cookies never go with a request started by another
    /// site; a link into the app arrives signed out.
    Strict,
    /// `SameSite=None`: cookies go with every request, from any site (an app
    /// embedded in another site's frame). The cookies are always `Secure`,
    /// which `None` needs; unsafe requests still need the app's own origin
    /// (or one of `allowed_origins`) and the CSRF token.
    None,
}

/// One entry of `keys`: a key id and its secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The key id, written in the `kid` header of the tokens it signs: 1 to 64
    /// characters of `A-Z a-z 0-9 . _ : -`, unique among the keys.
    pub kid: String,
    /// An HS256 key: base64 (standard alphabet) of at least 32 random bytes.
    #[serde(default)]
    pub secret: Option<String>,
    /// An Ed25519 (`EdDSA`) or P-256 (`ES256`) private key, PKCS#8 PEM
    /// (`-----BEGIN PRIVATE KEY-----`): `openssl genpkey -algorithm ed25519`.
    #[serde(default)]
    pub private_key: Option<String>,
    /// The same, read from this file at launch.
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
}

impl fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyConfig")
            .field("kid", &self.kid)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("private_key", &self.private_key.as_ref().map(|_| "<redacted>"))
            .field("private_key_file", &self.private_key_file)
            .finish()
    }
}

/// Why the `[sessions]` configuration was refused. Its message names the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key has a value of the wrong type, or an unknown key is present.
    #[error("invalid [sessions] configuration: {0}")]
    Figment(Box<rocket::figment::Error>),
    /// A key's value is out of range or malformed.
    #[error("invalid `sessions.{key}`: {message}")]
    Invalid {
        /// The key, without the `sessions.` prefix.
        key: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
}

impl ConfigError {
    fn invalid(key: &'static str, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key,
            message: message.into(),
        }
    }
}

/// The configuration after validation, grouped by what each part of the
/// crate takes.
#[derive(Clone)]
pub(crate) struct Settings {
    pub database: Database,
    /// The first key signs; all verify.
    pub keys: Vec<SigningKey>,
    pub secret_was_generated: bool,
    /// What access tokens carry and must satisfy: `issuer`, `audience`,
    /// `access_ttl`, `leeway`.
    pub tokens: AccessRules,
    pub lifetimes: Lifetimes,
    /// The most live sessions of one user, and what a login past it does.
    pub session_limit: Option<SessionLimit>,
    pub throttling: ThrottleLimits,
    pub pruning: Pruning,
    pub browser: BrowserSettings,
    pub dpop: DpopSettings,
    /// DBSC, when on (`dbsc = true`).
    pub dbsc: Option<DbscSettings>,
}

/// The default cookie names' prefix, and the one they take with a
/// `cookie_domain`.
pub(crate) const HOST_PREFIX: &str = "__Host-";
pub(crate) const SECURE_PREFIX: &str = "__Secure-";

/// How long sessions live, in seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lifetimes {
    pub refresh_ttl: i64,
    pub idle_timeout: i64,
    pub absolute_timeout: i64,
    pub reuse_grace: i64,
    pub lost_response_recovery: bool,
    pub fresh_age: i64,
}

/// The limits of failed-login throttling.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ThrottleLimits {
    pub login_max_failures: u32,
    pub login_max_failures_global: u32,
    pub login_failure_window: i64,
    pub ip_max_failures: u32,
    pub max_failure_scopes: u64,
}

/// When and how pruning runs.
#[derive(Debug, Clone)]
pub(crate) struct Pruning {
    pub schedule: String,
    pub batch: u32,
    pub auto: bool,
}

/// What the web layer needs: cookie names and attributes, origins, the login
/// page, the trusted proxies.
#[derive(Debug, Clone)]
pub(crate) struct BrowserSettings {
    pub access_cookie: String,
    pub refresh_cookie: String,
    pub csrf_cookie: String,
    pub same_site: SameSitePolicy,
    /// The `Domain` of the session cookies, when shared with subdomains.
    pub cookie_domain: Option<String>,
    pub allowed_origins: Vec<String>,
    pub login_url: Option<String>,
    pub trusted_proxies: Vec<IpNet>,
    pub forwarded_header: ForwardedHeader,
}

impl SessionsConfig {
    /// Reads the `sessions` table of `figment` (missing keys take their defaults).
    ///
    /// # Errors
    /// A [`ConfigError::Figment`] naming the key when a value has the wrong type or
    /// a key is unknown.
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        figment
            .focus("sessions")
            .extract::<SessionsConfig>()
            .map_err(|e| ConfigError::Figment(Box::new(e)))
    }
}

mod validate;

#[cfg(test)]
mod tests;
