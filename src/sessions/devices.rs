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
                user_agent: record.user_agent,
            })
            .collect())
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
