//! The `[sessions]` configuration table, read through Rocket's figment and
//! validated before launch.

use std::fmt;
use std::path::PathBuf;

use ipnet::IpNet;

use base64::Engine as _;
use rocket::figment::Figment;
use serde::Deserialize;

/// The longest duration any key accepts: 100 years, so sums of timestamps and
/// durations can never overflow.
const MAX_DURATION: u64 = 100 * 365 * 24 * 3600;

/// The largest `prune_batch`: bigger batches hold SQLite's write lock too long.
const MAX_PRUNE_BATCH: u32 = 100_000;

/// The largest `max_failure_scopes`.
const MAX_FAILURE_SCOPES: u64 = 100_000_000;

/// The smallest HMAC key accepted, in bytes (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;

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
    pub database: PathBuf,
    /// Base64 (standard alphabet) of at least 32 random bytes: the HMAC key that
    /// signs access tokens. When missing in the `debug` profile a random key is
    /// generated (tokens then do not survive a restart); in any other profile
    /// launch fails.
    pub secret: Option<String>,
    /// Several keys, for rotation, instead of `secret`: the first signs new
    /// tokens and every one verifies, so an old key can be retired `access_ttl`
    /// after a new one is put first. Each token names its key in its `kid` header.
    ///
    /// ```toml
    /// keys = [{ kid = "2026-11", secret = "…" }, { kid = "2026-05", secret = "…" }]
    /// ```
    pub keys: Vec<KeyConfig>,
    /// Access-token lifetime in seconds. Default 900.
    pub access_ttl: u64,
    /// Refresh-token lifetime in seconds. Default 1209600 (14 days).
    pub refresh_ttl: u64,
    /// A session ends after this many seconds without a refresh. Default 604800 (7 days).
    pub idle_timeout: u64,
    /// A session ends this many seconds after login, however often it is refreshed.
    /// Default 2592000 (30 days).
    pub absolute_timeout: u64,
    /// Seconds after a rotation during which the refresh token it replaced may be
    /// presented again (two tabs refreshing at once): it gets the same successor,
    /// not a second branch of the session. After that, presenting it is reuse
    /// and revokes the session. Default 10.
    pub reuse_grace: u64,
    /// Clock-skew allowance in seconds when checking `exp`, `nbf` and `iat`.
    /// Default 5: one process never disagrees with itself (its clock never
    /// steps back, see [`Clock`](crate::Clock)), but processes sharing the
    /// sessions do by the skew between their clocks, and a process restarted
    /// after a small backward step would otherwise refuse the tokens of the
    /// last few seconds. It costs a token up to 5 s of life past its `exp`
    /// (a blocklisted one stays blocklisted that long too).
    pub leeway: u64,
    /// When to prune expired rows: cron with seconds, tokio-cron-scheduler syntax.
    /// Default `"0 */10 * * * *"` (every ten minutes).
    pub prune_schedule: String,
    /// Rows deleted per transaction by a prune pass: a request that needs the
    /// write lock waits for at most one batch. Default 1000.
    pub prune_batch: u32,
    /// Whether the fairing schedules pruning on `prune_schedule`. Set `false` to
    /// prune from the app's own task with [`Sessions::prune_now`](crate::Sessions::prune_now).
    /// Default `true`.
    pub auto_prune: bool,
    /// Seconds after login during which [`FreshAuthUser`](crate::FreshAuthUser)
    /// admits the session: sensitive actions need a recent login. Default 300.
    pub fresh_age: u64,
    /// Failed logins for one username from one client network within
    /// `login_failure_window` after which further attempts on it from there
    /// get 429 until the window passes. Default 10.
    pub login_max_failures: u32,
    /// Failed logins for one username from all networks together after which
    /// attempts on it get 429, except from a network where that user signed in
    /// within `absolute_timeout`: strangers cannot lock a user out of a network
    /// they use. Default 100.
    pub login_max_failures_global: u32,
    /// The window, in seconds, over which failures are counted. Default 900.
    pub login_failure_window: u64,
    /// Failed logins from one client network (an IPv4 address, an IPv6 /64)
    /// within `login_failure_window` after which its attempts get 429.
    /// Default 100.
    pub ip_max_failures: u32,
    /// The most failure counters (usernames and client networks with recent
    /// failures) kept at once: one row each. Past it, the counters whose window
    /// started first are dropped. Default 100000 (about 10 MB).
    pub max_failure_scopes: u64,
    /// Name of the cookie that carries the access token in browser apps.
    /// Default `"__Host-access_token"`.
    pub access_cookie: String,
    /// Name of the cookie that carries the refresh token. Default
    /// `"__Host-refresh_token"`.
    pub refresh_cookie: String,
    /// Name of the cookie that binds a CSRF token before login (login forms).
    /// Default `"__Host-csrf"`.
    pub csrf_cookie: String,
    /// The `SameSite` attribute of the session cookies. Default `lax`.
    pub same_site: SameSitePolicy,
    /// Origins (`scheme://host[:port]`) allowed in the `Origin` header of
    /// cookie-authenticated unsafe requests. Empty (the default): the request's
    /// own `Host`, with the request's scheme and port.
    pub allowed_origins: Vec<String>,
    /// For HTML apps: a path of the app (e.g. `"/login"`) that a browser's
    /// `GET` refused by a session guard is redirected to (303, with
    /// `?next=<the path asked for>`), instead of the JSON 401. Only requests
    /// that accept `text/html` and send no `Authorization` header are
    /// redirected. Default: none.
    pub login_url: Option<String>,
    /// The reverse proxies (addresses or CIDR ranges, e.g. `"10.0.0.0/8"`)
    /// whose `Forwarded`, `X-Forwarded-For`, `X-Real-IP` and
    /// `X-Forwarded-Proto` headers are believed. Empty (the default): the
    /// client is the socket's peer, and no forwarding header is read.
    pub trusted_proxies: Vec<String>,
    /// The `iss` claim to set and require, when given.
    pub issuer: Option<String>,
    /// The `aud` claim to set and require, when given.
    pub audience: Option<String>,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            database: PathBuf::from("sessions.db"),
            secret: None,
            keys: Vec::new(),
            access_ttl: 900,
            refresh_ttl: 1_209_600,
            idle_timeout: 604_800,
            absolute_timeout: 2_592_000,
            reuse_grace: 10,
            leeway: 5,
            prune_schedule: "0 */10 * * * *".into(),
            prune_batch: 1000,
            auto_prune: true,
            fresh_age: 300,
            login_max_failures: 10,
            login_max_failures_global: 100,
            login_failure_window: 900,
            ip_max_failures: 100,
            max_failure_scopes: 100_000,
            access_cookie: "__Host-access_token".into(),
            refresh_cookie: "__Host-refresh_token".into(),
            csrf_cookie: "__Host-csrf".into(),
            same_site: SameSitePolicy::Lax,
            allowed_origins: Vec::new(),
            login_url: None,
            trusted_proxies: Vec::new(),
            issuer: None,
            audience: None,
        }
    }
}

/// The `SameSite` attribute of the session cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSitePolicy {
    /// `SameSite=Lax`: cookies go with top-level navigations from other sites
    /// (links into the app keep the user signed in), not with their forms or
    /// scripts.
    Lax,
    /// `SameSite=Strict`: cookies never go with a request started by another
    /// site; a link into the app arrives signed out.
    Strict,
}

/// One entry of `keys`: a key id and its secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The key id, written in the `kid` header of the tokens it signs: 1 to 64
    /// characters of `A-Z a-z 0-9 . _ : -`, unique among the keys.
    pub kid: String,
    /// Base64 (standard alphabet) of at least 32 random bytes.
    pub secret: String,
}

impl fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyConfig")
            .field("kid", &self.kid)
            .field("secret", &"<redacted>")
            .finish()
    }
}

// The secret must never reach a log line, even through `{:?}`.
impl fmt::Debug for SessionsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionsConfig")
            .field("database", &self.database)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("keys", &self.keys)
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("idle_timeout", &self.idle_timeout)
            .field("absolute_timeout", &self.absolute_timeout)
            .field("reuse_grace", &self.reuse_grace)
            .field("leeway", &self.leeway)
            .field("prune_schedule", &self.prune_schedule)
            .field("prune_batch", &self.prune_batch)
            .field("auto_prune", &self.auto_prune)
            .field("fresh_age", &self.fresh_age)
            .field("login_max_failures", &self.login_max_failures)
            .field("login_max_failures_global", &self.login_max_failures_global)
            .field("login_failure_window", &self.login_failure_window)
            .field("ip_max_failures", &self.ip_max_failures)
            .field("max_failure_scopes", &self.max_failure_scopes)
            .field("access_cookie", &self.access_cookie)
            .field("refresh_cookie", &self.refresh_cookie)
            .field("csrf_cookie", &self.csrf_cookie)
            .field("same_site", &self.same_site)
            .field("allowed_origins", &self.allowed_origins)
            .field("login_url", &self.login_url)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
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

/// Where the sessions are kept: the backend `database` names.
#[derive(Clone)]
pub(crate) enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    #[cfg(feature = "postgres")]
    Postgres(String),
}

impl Database {
    fn parse(database: &std::path::Path) -> Result<Database, ConfigError> {
        let text = database.to_string_lossy();
        if text.trim().is_empty() {
            return Err(ConfigError::invalid(
                "database",
                "must be a file path or a postgres:// URL",
            ));
        }
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            return Ok(Database::Sqlite(database.to_path_buf()));
        }
        #[cfg(feature = "postgres")]
        {
            Ok(Database::Postgres(text.into_owned()))
        }
        #[cfg(not(feature = "postgres"))]
        {
            Err(ConfigError::invalid(
                "database",
                "is a PostgreSQL URL, but rocket_sqlite_sessions was built without its `postgres` feature; \
                 enable it in Cargo.toml: rocket_sqlite_sessions = { version = \"…\", features = [\"postgres\"] }",
            ))
        }
    }
}

impl std::fmt::Display for Database {
    /// The file's path, or the URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            #[cfg(feature = "postgres")]
            Database::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

/// `url` with the password of its user part, if any, replaced by `***`.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let redacted = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.find("password=") {
        Some(at) => {
            let end = tail[at..].find('&').map_or(tail.len(), |n| at + n);
            format!("{}password=***{}", &tail[..at], &tail[end..])
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{redacted}{tail}")
}

/// The configuration after validation: what the rest of the crate uses.
#[derive(Clone)]
pub(crate) struct Settings {
    pub database: Database,
    /// The first key signs; all verify.
    pub keys: Vec<SigningKey>,
    pub secret_was_generated: bool,
    pub access_ttl: i64,
    pub refresh_ttl: i64,
    pub idle_timeout: i64,
    pub absolute_timeout: i64,
    pub reuse_grace: i64,
    pub leeway: i64,
    pub prune_schedule: String,
    pub prune_batch: u32,
    pub auto_prune: bool,
    pub fresh_age: i64,
    pub login_max_failures: u32,
    pub login_max_failures_global: u32,
    pub login_failure_window: i64,
    pub ip_max_failures: u32,
    pub max_failure_scopes: u64,
    pub access_cookie: String,
    pub refresh_cookie: String,
    pub csrf_cookie: String,
    pub same_site: SameSitePolicy,
    pub allowed_origins: Vec<String>,
    pub login_url: Option<String>,
    pub trusted_proxies: Vec<IpNet>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// A validated HMAC key and its id.
#[derive(Clone)]
pub(crate) struct SigningKey {
    pub kid: String,
    pub secret: Vec<u8>,
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

    /// Checks every value; `allow_generated_secret` permits a missing secret
    /// (the `debug` profile).
    pub(crate) fn validate(&self, allow_generated_secret: bool) -> Result<Settings, ConfigError> {
        let duration = |key: &'static str, value: u64, zero_ok: bool| {
            if value == 0 && !zero_ok {
                return Err(ConfigError::invalid(key, "must be at least 1 second"));
            }
            if value > MAX_DURATION {
                return Err(ConfigError::invalid(
                    key,
                    format!("{value} seconds is more than the maximum of {MAX_DURATION} (100 years)"),
                ));
            }
            Ok(value as i64)
        };
        let access_ttl = duration("access_ttl", self.access_ttl, false)?;
        let refresh_ttl = duration("refresh_ttl", self.refresh_ttl, false)?;
        let idle_timeout = duration("idle_timeout", self.idle_timeout, false)?;
        let absolute_timeout = duration("absolute_timeout", self.absolute_timeout, false)?;
        let reuse_grace = duration("reuse_grace", self.reuse_grace, true)?;
        let leeway = duration("leeway", self.leeway, true)?;
        if leeway >= access_ttl {
            return Err(ConfigError::invalid(
                "leeway",
                format!("must be shorter than access_ttl ({access_ttl} s); a few seconds is typical"),
            ));
        }

        let (keys, secret_was_generated) = self.signing_keys(allow_generated_secret)?;
        let fresh_age = duration("fresh_age", self.fresh_age, false)?;
        let login_failure_window = duration("login_failure_window", self.login_failure_window, false)?;
        for (key, value) in [
            ("login_max_failures", self.login_max_failures),
            ("login_max_failures_global", self.login_max_failures_global),
            ("ip_max_failures", self.ip_max_failures),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        if !(1..=MAX_FAILURE_SCOPES).contains(&self.max_failure_scopes) {
            return Err(ConfigError::invalid(
                "max_failure_scopes",
                format!("must be from 1 to {MAX_FAILURE_SCOPES}; the default is 100000"),
            ));
        }

        let mut cookie_names = Vec::new();
        for (key, name) in [
            ("access_cookie", &self.access_cookie),
            ("refresh_cookie", &self.refresh_cookie),
            ("csrf_cookie", &self.csrf_cookie),
        ] {
            let token_chars = name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if name.is_empty() || !token_chars {
                return Err(ConfigError::invalid(
                    key,
                    "must be a cookie name: letters, digits and !#$%&'*+-.^_`|~ only",
                ));
            }
            if cookie_names.contains(&name) {
                return Err(ConfigError::invalid(key, "is the name of another session cookie"));
            }
            cookie_names.push(name);
        }
        for origin in &self.allowed_origins {
            if !crate::browser::is_origin(origin) {
                return Err(ConfigError::invalid(
                    "allowed_origins",
                    format!("{origin:?} is not an origin like \"https://app.example\" (scheme and host, no path)"),
                ));
            }
        }

        if let Some(url) = &self.login_url {
            // A path of this app: never a redirect to another site.
            let path = url.starts_with('/') && !url.starts_with("//") && !url.contains(['\\', '?', '#']);
            if !path || url.chars().any(char::is_control) {
                return Err(ConfigError::invalid(
                    "login_url",
                    format!(
                        "{url:?} must be a path of the app such as \"/login\" (no scheme, host, query or fragment)"
                    ),
                ));
            }
        }

        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|range| {
                range
                    .parse::<IpNet>()
                    .or_else(|_| range.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        ConfigError::invalid(
                            "trusted_proxies",
                            format!("{range:?} is not an address or a CIDR range like \"10.0.0.0/8\""),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;

        validate_cron(&self.prune_schedule).map_err(|m| ConfigError::invalid("prune_schedule", m))?;
        if !(1..=MAX_PRUNE_BATCH).contains(&self.prune_batch) {
            return Err(ConfigError::invalid(
                "prune_batch",
                format!("must be from 1 to {MAX_PRUNE_BATCH} rows; the default is 1000"),
            ));
        }

        for (key, value) in [("issuer", &self.issuer), ("audience", &self.audience)] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(ConfigError::invalid(
                    key,
                    "must not be empty; remove the key to leave it unset",
                ));
            }
        }
        let database = Database::parse(&self.database)?;

        Ok(Settings {
            database,
            keys,
            secret_was_generated,
            access_ttl,
            refresh_ttl,
            idle_timeout,
            absolute_timeout,
            reuse_grace,
            leeway,
            prune_schedule: self.prune_schedule.clone(),
            prune_batch: self.prune_batch,
            auto_prune: self.auto_prune,
            fresh_age,
            login_max_failures: self.login_max_failures,
            login_max_failures_global: self.login_max_failures_global,
            login_failure_window,
            ip_max_failures: self.ip_max_failures,
            max_failure_scopes: self.max_failure_scopes,
            access_cookie: self.access_cookie.clone(),
            refresh_cookie: self.refresh_cookie.clone(),
            csrf_cookie: self.csrf_cookie.clone(),
            same_site: self.same_site,
            allowed_origins: self.allowed_origins.clone(),
            login_url: self.login_url.clone(),
            trusted_proxies,
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
        })
    }
}

impl SessionsConfig {
    /// The keys from `secret` or `keys`; the flag says whether one was generated.
    fn signing_keys(&self, allow_generated_secret: bool) -> Result<(Vec<SigningKey>, bool), ConfigError> {
        if self.secret.is_some() && !self.keys.is_empty() {
            return Err(ConfigError::invalid(
                "keys",
                "is set together with `sessions.secret`; use `secret` for one key or `keys` to rotate, not both",
            ));
        }
        if let Some(encoded) = &self.secret {
            let secret = decode_secret(encoded).map_err(|m| ConfigError::invalid("secret", m))?;
            return Ok((vec![SigningKey::derived(secret)], false));
        }
        if self.keys.is_empty() {
            if allow_generated_secret {
                let secret = crate::token::random_bytes::<32>().to_vec();
                return Ok((vec![SigningKey::derived(secret)], true));
            }
            return Err(ConfigError::invalid(
                "secret",
                "is required outside the debug profile; generate one with \
                 `head -c 32 /dev/urandom | base64` and set it in Rocket.toml \
                 or ROCKET_SESSIONS={secret=\"…\"}",
            ));
        }
        let mut keys: Vec<SigningKey> = Vec::with_capacity(self.keys.len());
        for (index, key) in self.keys.iter().enumerate() {
            let name = format!("key {} (kid {:?})", index + 1, key.kid);
            let kid_ok = (1..=64).contains(&key.kid.len())
                && key
                    .kid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
            if !kid_ok {
                return Err(ConfigError::invalid(
                    "keys",
                    format!("{name}: the kid must be 1 to 64 characters of A-Z a-z 0-9 . _ : -"),
                ));
            }
            if keys.iter().any(|earlier| earlier.kid == key.kid) {
                return Err(ConfigError::invalid("keys", format!("{name}: the kid is used twice")));
            }
            let secret =
                decode_secret(&key.secret).map_err(|m| ConfigError::invalid("keys", format!("{name}: secret {m}")))?;
            keys.push(SigningKey {
                kid: key.kid.clone(),
                secret,
            });
        }
        Ok((keys, false))
    }
}

impl SigningKey {
    /// The one key of `secret`, with an id derived from it.
    fn derived(secret: Vec<u8>) -> Self {
        SigningKey {
            kid: crate::token::derived_key_id(&secret),
            secret,
        }
    }
}

/// Decodes a base64 secret; the message never repeats the secret itself.
fn decode_secret(encoded: &str) -> Result<Vec<u8>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| {
            "is not valid base64 (standard alphabet); generate one with \
             `head -c 32 /dev/urandom | base64`"
                .to_string()
        })?;
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "decodes to {} bytes, fewer than the {MIN_SECRET_BYTES} required; generate one with \
             `head -c 32 /dev/urandom | base64`",
            bytes.len()
        ));
    }
    Ok(bytes)
}

fn validate_cron(schedule: &str) -> Result<(), String> {
    tokio_cron_scheduler::Job::new_async(schedule, |_, _| Box::pin(async {}))
        .map(|_| ())
        .map_err(|e| {
            format!(
                "`{schedule}` is not a cron schedule with seconds ({e}); \
                 for example \"0 */10 * * * *\" runs every ten minutes"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_is_shown_without_its_password() {
        assert_eq!(
            redact_password("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_password("postgresql://u@h/db"), "postgresql://u@h/db");
        assert_eq!(
            redact_password("postgres:///db?host=/run/pg&password=pw&user=u"),
            "postgres:///db?host=/run/pg&password=***&user=u"
        );
        assert_eq!(redact_password("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
    }

    fn valid() -> SessionsConfig {
        SessionsConfig {
            secret: Some(base64::engine::general_purpose::STANDARD.encode([7u8; 32])),
            ..SessionsConfig::default()
        }
    }

    fn error_of(config: SessionsConfig) -> String {
        match config.validate(false) {
            Ok(_) => panic!("config was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_with_a_secret_are_valid() {
        let settings = valid().validate(false).unwrap();
        assert_eq!(settings.access_ttl, 900);
        assert_eq!(settings.keys.len(), 1);
        assert_eq!(settings.keys[0].secret, vec![7u8; 32]);
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let shown = format!("{:?}", valid());
        assert!(!shown.contains(valid().secret.as_deref().unwrap()), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn each_bad_value_is_named() {
        let short = SessionsConfig {
            secret: Some(base64::engine::general_purpose::STANDARD.encode([1u8; 16])),
            ..valid()
        };
        assert!(error_of(short).contains("sessions.secret"));
        let garbage = SessionsConfig {
            secret: Some("not base64 !!".into()),
            ..valid()
        };
        let message = error_of(garbage);
        assert!(
            message.contains("sessions.secret") && !message.contains("not base64 !!"),
            "{message}"
        );
        assert!(error_of(SessionsConfig {
            secret: None,
            ..valid()
        })
        .contains("sessions.secret"));
        assert!(error_of(SessionsConfig {
            access_ttl: 0,
            ..valid()
        })
        .contains("sessions.access_ttl"));
        assert!(error_of(SessionsConfig {
            refresh_ttl: 0,
            ..valid()
        })
        .contains("sessions.refresh_ttl"));
        assert!(error_of(SessionsConfig {
            idle_timeout: 0,
            ..valid()
        })
        .contains("sessions.idle_timeout"));
        assert!(error_of(SessionsConfig {
            absolute_timeout: 0,
            ..valid()
        })
        .contains("sessions.absolute_timeout"));
        assert!(error_of(SessionsConfig { leeway: 900, ..valid() }).contains("sessions.leeway"));
        assert!(error_of(SessionsConfig {
            refresh_ttl: u64::MAX,
            ..valid()
        })
        .contains("sessions.refresh_ttl"));
        let cron = SessionsConfig {
            prune_schedule: "every tuesday".into(),
            ..valid()
        };
        assert!(error_of(cron).contains("sessions.prune_schedule"));
        let issuer = SessionsConfig {
            issuer: Some(" ".into()),
            ..valid()
        };
        assert!(error_of(issuer).contains("sessions.issuer"));
        assert!(error_of(SessionsConfig {
            prune_batch: 0,
            ..valid()
        })
        .contains("sessions.prune_batch"));
    }

    fn key(kid: &str, byte: u8, len: usize) -> KeyConfig {
        KeyConfig {
            kid: kid.into(),
            secret: base64::engine::general_purpose::STANDARD.encode(vec![byte; len]),
        }
    }

    #[test]
    fn rotation_keys_are_checked_one_by_one_and_named() {
        let keys = |keys: Vec<KeyConfig>| SessionsConfig {
            secret: None,
            keys,
            ..valid()
        };
        let settings = keys(vec![key("new", 1, 32), key("old", 2, 48)])
            .validate(false)
            .unwrap();
        assert_eq!(
            settings.keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
            ["new", "old"]
        );

        let short = error_of(keys(vec![key("new", 1, 32), key("old", 2, 16)]));
        assert!(
            short.contains("sessions.keys") && short.contains("key 2 (kid \"old\")"),
            "{short}"
        );
        let duplicate = error_of(keys(vec![key("a", 1, 32), key("a", 2, 32)]));
        assert!(duplicate.contains("used twice"), "{duplicate}");
        let bad_kid = error_of(keys(vec![key("", 1, 32)]));
        assert!(bad_kid.contains("kid must be"), "{bad_kid}");
        let both = error_of(SessionsConfig {
            keys: vec![key("a", 1, 32)],
            ..valid()
        });
        assert!(both.contains("not both"), "{both}");
        let shown = format!("{:?}", keys(vec![key("a", 1, 32)]));
        assert!(!shown.contains(&key("a", 1, 32).secret), "{shown}");
    }

    #[test]
    fn missing_secret_is_generated_only_when_allowed() {
        let settings = SessionsConfig::default().validate(true).unwrap();
        assert!(settings.secret_was_generated);
        assert_eq!(settings.keys[0].secret.len(), 32);
    }

    #[test]
    fn unknown_and_mistyped_keys_are_named() {
        let figment = Figment::from(rocket::figment::providers::Serialized::default(
            "sessions",
            serde_json::json!({ "acess_ttl": 5 }),
        ));
        let message = SessionsConfig::from_figment(&figment).unwrap_err().to_string();
        assert!(message.contains("acess_ttl"), "{message}");
        let figment = Figment::from(rocket::figment::providers::Serialized::default(
            "sessions",
            serde_json::json!({ "access_ttl": "soon" }),
        ));
        let message = SessionsConfig::from_figment(&figment).unwrap_err().to_string();
        assert!(message.contains("access_ttl"), "{message}");
    }
}
