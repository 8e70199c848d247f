//! Checking every key of [`SessionsConfig`] and grouping the result into
//! [`Settings`]: each error names its key and says how to fix it.

use base64::Engine as _;
use ipnet::IpNet;

use super::{
    AtMaxSessions, BrowserSettings, ConfigError, Lifetimes, Pruning, SessionsConfig, Settings, ThrottleLimits,
    HOST_PREFIX, MIN_SECRET_BYTES, SECURE_PREFIX,
};
use crate::crypto::random_bytes;
use crate::dbsc::DbscSettings;
use crate::dpop::DpopSettings;
use crate::origin::is_origin;
use crate::store::{Database, SessionLimit};
use crate::token::{AccessRules, SigningKey};

/// The longest duration any key accepts: 100 years, so sums of timestamps and
/// durations can never overflow.
const MAX_DURATION: u64 = 100 * 365 * 24 * 3600;

/// The largest `prune_batch`: bigger batches hold SQLite's write lock too long.
const MAX_PRUNE_BATCH: u32 = 100_000;

/// The largest `max_sessions`.
const MAX_SESSIONS_PER_USER: u32 = 10_000;

/// The largest `dpop_proof_window`: five minutes.
const MAX_DPOP_WINDOW: u64 = 300;

/// The largest `dpop_replay_capacity`: about 640 MB.
const MAX_DPOP_REPLAY_CAPACITY: u64 = 10_000_000;

/// The largest `max_failure_scopes`.
const MAX_FAILURE_SCOPES: u64 = 100_000_000;

impl SessionsConfig {
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

        let cookie_domain = match &self.cookie_domain {
            Some(domain) => Some(cookie_domain(domain).map_err(|m| ConfigError::invalid("cookie_domain", m))?),
            None => None,
        };
        let defaults = SessionsConfig::default();
        // With a `Domain`, the default `__Host-` names become `__Secure-` ones.
        let name_for = |name: &String, default: &String| -> String {
            match &cookie_domain {
                Some(_) if name == default => name.replacen(HOST_PREFIX, SECURE_PREFIX, 1),
                _ => name.clone(),
            }
        };
        let (access_cookie, refresh_cookie, csrf_cookie) = (
            name_for(&self.access_cookie, &defaults.access_cookie),
            name_for(&self.refresh_cookie, &defaults.refresh_cookie),
            name_for(&self.csrf_cookie, &defaults.csrf_cookie),
        );
        let mut cookie_names = Vec::new();
        for (key, name) in [
            ("access_cookie", &access_cookie),
            ("refresh_cookie", &refresh_cookie),
            ("csrf_cookie", &csrf_cookie),
        ] {
            if cookie_domain.is_some() && name.starts_with(HOST_PREFIX) {
                return Err(ConfigError::invalid(
                    key,
                    "a `__Host-` cookie may not carry a Domain, which `cookie_domain` gives it: name it \
                     `__Secure-…` (or leave the default)",
                ));
            }
            if !is_cookie_name(name) {
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
            if !is_origin(origin) {
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
        if let Some(max) = self.max_sessions {
            if !(1..=MAX_SESSIONS_PER_USER).contains(&max) {
                return Err(ConfigError::invalid(
                    "max_sessions",
                    format!("must be from 1 to {MAX_SESSIONS_PER_USER}; remove the key for no limit"),
                ));
            }
        }
        if !(1..=MAX_DPOP_WINDOW).contains(&self.dpop_proof_window) {
            return Err(ConfigError::invalid(
                "dpop_proof_window",
                format!("must be from 1 to {MAX_DPOP_WINDOW} seconds; the default is 60"),
            ));
        }
        if self.dpop_algorithms.is_empty() {
            return Err(ConfigError::invalid(
                "dpop_algorithms",
                "must name at least one of \"ES256\" and \"EdDSA\"; set `dpop = \"off\"` to turn DPoP off",
            ));
        }
        if !(1..=MAX_DPOP_REPLAY_CAPACITY).contains(&self.dpop_replay_capacity) {
            return Err(ConfigError::invalid(
                "dpop_replay_capacity",
                format!("must be from 1 to {MAX_DPOP_REPLAY_CAPACITY} proofs; the default is 100000"),
            ));
        }
        let dbsc = if self.dbsc {
            let name = &self.dbsc_refresh_cookie;
            if name.starts_with(HOST_PREFIX) || !is_cookie_name(name) || cookie_names.contains(&name) {
                return Err(ConfigError::invalid(
                    "dbsc_refresh_cookie",
                    "must be a cookie name of its own, not `__Host-` (it is sent to one path only); the default is \"__Secure-dbsc_refresh\"",
                ));
            }
            Some(DbscSettings {
                refresh_cookie: name.clone(),
                register_path: String::new(),
                refresh_path: String::new(),
            })
        } else {
            None
        };
        let mut dpop_algorithms = Vec::new();
        for algorithm in &self.dpop_algorithms {
            if !dpop_algorithms.contains(algorithm) {
                dpop_algorithms.push(*algorithm);
            }
        }
        let database = Database::parse(&self.database).map_err(|m| ConfigError::invalid("database", m))?;
        let database = database
            .listening_on(self.listen_database.as_deref())
            .map_err(|m| ConfigError::invalid("listen_database", m))?
            .pooled(self.pooled)
            .map_err(|m| ConfigError::invalid("pooled", m))?
            .durable(self.durability)
            .map_err(|m| ConfigError::invalid("durability", m))?;

        Ok(Settings {
            database,
            keys,
            secret_was_generated,
            tokens: AccessRules {
                issuer: self.issuer.clone(),
                audience: self.audience.clone(),
                access_ttl,
                leeway,
            },
            session_limit: self.max_sessions.map(|max| SessionLimit {
                max,
                end_oldest: self.at_max_sessions == AtMaxSessions::EndOldest,
            }),
            lifetimes: Lifetimes {
                refresh_ttl,
                idle_timeout,
                absolute_timeout,
                reuse_grace,
                lost_response_recovery: self.lost_response_recovery,
                fresh_age,
            },
            throttling: ThrottleLimits {
                login_max_failures: self.login_max_failures,
                login_max_failures_global: self.login_max_failures_global,
                login_failure_window,
                ip_max_failures: self.ip_max_failures,
                max_failure_scopes: self.max_failure_scopes,
            },
            pruning: Pruning {
                schedule: self.prune_schedule.clone(),
                batch: self.prune_batch,
                auto: self.auto_prune,
            },
            browser: BrowserSettings {
                access_cookie,
                refresh_cookie,
                csrf_cookie,
                same_site: self.same_site,
                cookie_domain,
                allowed_origins: self.allowed_origins.clone(),
                login_url: self.login_url.clone(),
                trusted_proxies,
                forwarded_header: self.forwarded_header,
            },
            dpop: DpopSettings {
                mode: self.dpop,
                algorithms: dpop_algorithms,
                window: self.dpop_proof_window as i64,
                leeway,
                nonces: self.dpop_nonces,
                replay_capacity: self.dpop_replay_capacity as usize,
            },
            dbsc,
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
                let secret = random_bytes::<32>().to_vec();
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
            let invalid = |message: String| ConfigError::invalid("keys", format!("{name}: {message}"));
            let pem = match (&key.secret, &key.private_key, &key.private_key_file) {
                (Some(secret), None, None) => {
                    let secret = decode_secret(secret).map_err(|m| invalid(format!("secret {m}")))?;
                    keys.push(SigningKey::hmac(key.kid.clone(), secret));
                    continue;
                }
                (None, Some(pem), None) => pem.clone(),
                (None, None, Some(path)) => std::fs::read_to_string(path)
                    .map_err(|e| invalid(format!("cannot read private_key_file `{}`: {e}", path.display())))?,
                _ => {
                    return Err(invalid(
                        "needs exactly one of `secret` (HS256), `private_key` or `private_key_file` \
                         (Ed25519 or P-256, PKCS#8 PEM)"
                            .into(),
                    ))
                }
            };
            let parsed =
                SigningKey::from_pem(key.kid.clone(), &pem).map_err(|m| invalid(format!("private key {m}")))?;
            keys.push(parsed);
        }
        Ok((keys, false))
    }
}

/// Decodes a base64 secret; the message never repeats the secret itself.
/// `domain` as a cookie's `Domain`: a host name of at least two labels
/// (letters, digits, `-`), lower-cased, a leading dot dropped; the error says
/// what is wrong.
fn cookie_domain(domain: &str) -> Result<String, String> {
    let domain = domain.strip_prefix('.').unwrap_or(domain).to_ascii_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) || domain.len() > 253 {
        return Err(format!(
            "{domain:?} is not a domain like \"example.com\" (no scheme, port or path; at least two labels)"
        ));
    }
    Ok(domain)
}

/// Whether `name` is a cookie name: a non-empty token of RFC 6265 (letters,
/// digits and `!#$%&'*+-.^_`|~`).
fn is_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

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
