//! The `[sessions]` configuration table, read through Rocket's figment and
//! validated before launch.

use std::fmt;
use std::path::PathBuf;

use base64::Engine as _;
use rocket::figment::Figment;
use serde::Deserialize;

/// The longest duration any key accepts: 100 years, so sums of timestamps and
/// durations can never overflow.
const MAX_DURATION: u64 = 100 * 365 * 24 * 3600;

/// The largest `prune_batch`: bigger batches hold SQLite's write lock too long.
const MAX_PRUNE_BATCH: u32 = 100_000;

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
    /// Path of the SQLite file. Default `"sessions.db"`.
    pub database: PathBuf,
    /// Base64 (standard alphabet) of at least 32 random bytes: the HMAC key that
    /// signs access tokens. When missing in the `debug` profile a random key is
    /// generated (tokens then do not survive a restart); in any other profile
    /// launch fails.
    pub secret: Option<String>,
    /// Access-token lifetime in seconds. Default 900.
    pub access_ttl: u64,
    /// Refresh-token lifetime in seconds. Default 1209600 (14 days).
    pub refresh_ttl: u64,
    /// A session ends after this many seconds without a refresh. Default 604800 (7 days).
    pub idle_timeout: u64,
    /// A session ends this many seconds after login, however often it is refreshed.
    /// Default 2592000 (30 days).
    pub absolute_timeout: u64,
    /// Seconds during which an already rotated refresh token may be presented again
    /// without being treated as reuse (two tabs refreshing at once). Default 10.
    pub reuse_grace: u64,
    /// Clock-skew allowance in seconds when checking `exp` and `nbf`. Default 0.
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
            access_ttl: 900,
            refresh_ttl: 1_209_600,
            idle_timeout: 604_800,
            absolute_timeout: 2_592_000,
            reuse_grace: 10,
            leeway: 0,
            prune_schedule: "0 */10 * * * *".into(),
            prune_batch: 1000,
            auto_prune: true,
            issuer: None,
            audience: None,
        }
    }
}

// The secret must never reach a log line, even through `{:?}`.
impl fmt::Debug for SessionsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionsConfig")
            .field("database", &self.database)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("idle_timeout", &self.idle_timeout)
            .field("absolute_timeout", &self.absolute_timeout)
            .field("reuse_grace", &self.reuse_grace)
            .field("leeway", &self.leeway)
            .field("prune_schedule", &self.prune_schedule)
            .field("prune_batch", &self.prune_batch)
            .field("auto_prune", &self.auto_prune)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

/// Why the `[sessions]` configuration was refused. Its message names the key.
#[derive(Debug, thiserror::Error)]
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

/// The configuration after validation: what the rest of the crate uses.
#[derive(Clone)]
pub(crate) struct Settings {
    pub database: PathBuf,
    pub secret: Vec<u8>,
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
    pub issuer: Option<String>,
    pub audience: Option<String>,
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

        let (secret, secret_was_generated) = match &self.secret {
            Some(encoded) => (
                decode_secret(encoded).map_err(|m| ConfigError::invalid("secret", m))?,
                false,
            ),
            None if allow_generated_secret => (crate::token::random_bytes::<32>().to_vec(), true),
            None => {
                return Err(ConfigError::invalid(
                    "secret",
                    "is required outside the debug profile; generate one with \
                     `head -c 32 /dev/urandom | base64` and set it in Rocket.toml \
                     or ROCKET_SESSIONS={secret=\"…\"}",
                ))
            }
        };

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
        if self.database.as_os_str().is_empty() {
            return Err(ConfigError::invalid("database", "must be a file path"));
        }

        Ok(Settings {
            database: self.database.clone(),
            secret,
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
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
        })
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
        assert_eq!(settings.secret, vec![7u8; 32]);
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

    #[test]
    fn missing_secret_is_generated_only_when_allowed() {
        let settings = SessionsConfig::default().validate(true).unwrap();
        assert!(settings.secret_was_generated);
        assert_eq!(settings.secret.len(), 32);
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
