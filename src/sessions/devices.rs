//! A user's devices: the list of their active sessions, and signing one out
//! remotely.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Sessions;
use crate::error::Error;
use crate::hooks::SessionEvent;
use crate::store::Revocation;

/// The longest label ([`Sessions::set_session_label`]) a session may have, in
/// characters.
pub const MAX_SESSION_LABEL_CHARS: usize = 64;

/// One active session of a user, as listed to that user.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The session id (the `sid` claim of its access tokens).
    pub id: String,
    /// When the user logged in.
    pub created_at: DateTime<Utc>,
    /// The last login or refresh.
    pub last_seen_at: DateTime<Utc>,
    /// When the session ends unless refreshed (capped by the absolute timeout).
    pub expires_at: DateTime<Utc>,
    /// The IP address of the last login or refresh.
    pub ip: Option<String>,
    /// The user agent of the last login or refresh.
    pub user_agent: Option<String>,
    /// The user agent for people: the browser and its major version on the
    /// operating system ("Chrome 156 on Linux", "Safari 18 on iPhone"), or
    /// the program ("curl 8"); `None` without a user agent. Parsed by
    /// [woothee](https://docs.rs/woothee) when the list is read.
    pub device: Option<String>,
    /// The name the user gave this session ("Work laptop"), if any: see
    /// [`Sessions::set_session_label`].
    pub label: Option<String>,
}

impl Sessions {
    /// The active sessions of `user_id`, most recently used first.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails.
    pub async fn sessions(&self, user_id: impl fmt::Display) -> Result<Vec<SessionInfo>, Error> {
        let now = self.now();
        let records = self.inner.store.active_sessions(user_id.to_string(), now).await?;
        Ok(records
            .into_iter()
            .map(|record| SessionInfo {
                id: record.id,
                created_at: timestamp(record.created_at),
                last_seen_at: timestamp(record.last_seen_at),
                expires_at: timestamp(record.expires_at),
                ip: record.ip,
                device: record.user_agent.as_deref().and_then(device_name),
                user_agent: record.user_agent,
                label: record.label,
            })
            .collect())
    }

    /// Names one session of `user_id` for its user ("Work laptop"), shown as
    /// [`SessionInfo::label`] in the device list; `None`, or only whitespace,
    /// removes the name. The label is trimmed; it ends with the session.
    ///
    /// # Errors
    /// [`Error::InvalidLabel`] (422) when it is longer than
    /// [`MAX_SESSION_LABEL_CHARS`] or has control characters;
    /// [`Error::SessionNotFound`] when `session_id` is not an active session
    /// of this user; [`Error::Store`] when the store fails.
    pub async fn set_session_label(
        &self,
        user_id: impl fmt::Display,
        session_id: &str,
        label: Option<&str>,
    ) -> Result<(), Error> {
        let label = label.map(str::trim).filter(|label| !label.is_empty());
        if let Some(label) = label {
            if label.chars().count() > MAX_SESSION_LABEL_CHARS || label.chars().any(char::is_control) {
                return Err(Error::InvalidLabel);
            }
        }
        let set = self
            .inner
            .store
            .set_session_label(
                user_id.to_string(),
                session_id.to_string(),
                label.map(str::to_string),
                self.now(),
            )
            .await?;
        if set {
            Ok(())
        } else {
            Err(Error::SessionNotFound)
        }
    }

    /// Revokes one session of `user_id`: a device the user signs out remotely.
    ///
    /// # Errors
    /// [`Error::SessionNotFound`] when `session_id` is not an active session of
    /// this user — another user's session is indistinguishable from none;
    /// [`Error::Store`] when the store fails.
    pub async fn revoke_session(&self, user_id: impl fmt::Display, session_id: &str) -> Result<(), Error> {
        self.revoke_session_from(&user_id.to_string(), session_id, None).await
    }

    /// [`revoke_session`](Self::revoke_session), asked by the user from `ip`.
    pub(crate) async fn revoke_session_from(
        &self,
        user_id: &str,
        session_id: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), Error> {
        if session_id.is_empty() || session_id.len() > 64 {
            return Err(Error::SessionNotFound);
        }
        let now = self.now();
        let revocation = Revocation::OwnSession {
            user_id: user_id.to_string(),
            session_id: session_id.to_string(),
        };
        let revoked = self.inner.store.revoke(revocation, now).await?;
        if revoked.is_empty() {
            return Err(Error::SessionNotFound);
        }
        self.emit(|| SessionEvent::SessionRevoked {
            user_id: user_id.to_string(),
            session_id: session_id.to_string(),
            reason: "revoked by user",
            actor: Some(user_id.to_string()),
            ip,
            at: now,
        });
        self.revoked_in_store(None, [session_id.to_string()], now);
        Ok(())
    }
}

fn timestamp(unix_seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix_seconds, 0).unwrap_or_default()
}

/// A readable name for the device `user_agent` describes (see
/// [`SessionInfo::device`]).
pub(crate) fn device_name(user_agent: &str) -> Option<String> {
    const UNKNOWN: &str = "UNKNOWN";
    let known = |text: &str| !text.is_empty() && text != UNKNOWN;
    let major = |version: &str| {
        version
            .split('.')
            .next()
            .filter(|major| known(major))
            .map(str::to_string)
    };
    let parsed = woothee::parser::Parser::new().parse(user_agent);
    let (name, version, os) = match &parsed {
        Some(found) if known(found.name) && found.name != "HTTP Library" => {
            (found.name.to_string(), major(found.version), found.os)
        }
        // Not a browser woothee knows, or a library it names only as one:
        // the first product of the user agent (`curl/8.5.0`, `okhttp/4.12.0`).
        _ => {
            let product = user_agent.split_whitespace().next()?;
            let (name, version) = product.split_once('/').unwrap_or((product, ""));
            let name: String = name.chars().filter(|c| !c.is_control()).take(40).collect();
            if name.is_empty() {
                return None;
            }
            (
                name,
                major(version).filter(|v| v.chars().all(|c| c.is_ascii_digit())),
                UNKNOWN,
            )
        }
    };
    let mut device = name;
    if let Some(version) = version {
        device.push(' ');
        device.push_str(&version);
    }
    if known(os) {
        device.push_str(" on ");
        device.push_str(os);
    }
    Some(device)
}

#[cfg(test)]
mod tests {
    use super::device_name;

    #[test]
    fn user_agents_read_as_devices() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.8078.73 Safari/537.36",
                "Chrome 156 on Linux",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
                "Safari 18 on iPhone",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0",
                "Firefox 140 on Windows 10",
            ),
            ("curl/8.5.0", "curl 8"),
            ("okhttp/4.12.0", "okhttp 4"),
        ];
        for (user_agent, device) in cases {
            assert_eq!(device_name(user_agent).as_deref(), Some(device), "{user_agent}");
        }
        assert_eq!(device_name(""), None);
        assert_eq!(device_name("   "), None);
    }
}
