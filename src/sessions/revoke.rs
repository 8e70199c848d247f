//! Revoking: logout, logout everywhere, the other sessions of a user, and
//! their claims. Every revocation is stored first and then put in memory, so
//! the two never disagree.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;
use serde_json::Value;

use super::login::app_claims;
use super::Sessions;
use crate::error::Error;
use crate::hooks::SessionEvent;
use crate::store::{Revocation, Revoked};
use crate::user::AuthUser;

impl Sessions {
    /// Ends the session `user` authenticated with: its access token's `jti` is
    /// blocklisted until its `exp`, the session and its refresh tokens revoked.
    ///
    /// The revocation is stored first and then applied in memory, so the two
    /// never disagree: when this fails nothing was revoked anywhere and the
    /// call can be repeated.
    ///
    /// # Errors
    /// [`Error::Store`] when the revocation cannot be stored; then nothing was
    /// revoked.
    pub async fn logout<C>(&self, user: &AuthUser<C>) -> Result<(), Error> {
        self.logout_from(user, None).await
    }

    /// [`logout`](Self::logout), asked from `ip`.
    pub(crate) async fn logout_from<C>(&self, user: &AuthUser<C>, ip: Option<IpAddr>) -> Result<(), Error> {
        let now = self.now();
        let revocation = Revocation::Session {
            session_id: user.session_id.clone(),
            reason: "logout",
            blocklist: Some((user.jti.clone(), user.expires_at)),
        };
        let ended = self.inner.store.revoke(revocation, now).await?;
        self.revoked_in_store(Some((&user.jti, user.expires_at)), [user.session_id.clone()], now);
        if !ended.is_empty() {
            self.emit(|| SessionEvent::LoggedOut {
                user_id: user.id.clone(),
                session_id: user.session_id.clone(),
                ip,
                at: now,
            });
        }
        Ok(())
    }

    /// Ends the session `refresh_token` belongs to (a token of this server:
    /// its tag is checked), whatever its user: a new login replaces the
    /// browser session whose cookies it overwrites. Gives whether a live
    /// session ended.
    pub(crate) async fn end_replaced_session(&self, refresh_token: &str, ip: Option<IpAddr>) -> Result<bool, Error> {
        self.end_session_of_refresh_token(refresh_token, "replaced by a new login", ip)
            .await
    }

    /// Ends the session `refresh_token` names, when it is a token of this
    /// server (its tag checked, no store access otherwise), for `reason`.
    async fn end_session_of_refresh_token(
        &self,
        refresh_token: &str,
        reason: &'static str,
        ip: Option<IpAddr>,
    ) -> Result<bool, Error> {
        let Some(session_id) = self.refresh_token_session(refresh_token) else {
            return Ok(false);
        };
        let Some((user_id, _)) = self.inner.store.session_user(session_id.clone()).await? else {
            return Ok(false);
        };
        self.end_session(&session_id, &user_id, reason, ip).await
    }

    /// Token revocation as RFC 7009 has it, for a client that holds a token
    /// but may no longer be able to authenticate (its access token expired):
    /// a refresh token of this server ends its session (and so every access
    /// token of it; event `SessionRevoked`, reason `"token revoked"`); a
    /// valid access token is blocklisted and its session ends, as
    /// [`logout`](Self::logout). Anything else (junk, an expired or revoked
    /// token) changes nothing and costs no store access. Gives whether a
    /// session ended. Served by the crate's `POST /revoke`.
    ///
    /// # Errors
    /// [`Error::Store`] when the revocation cannot be stored; then nothing
    /// was revoked.
    pub async fn revoke_token(&self, token: &str) -> Result<bool, Error> {
        self.revoke_token_from(token, None).await
    }

    /// [`revoke_token`](Self::revoke_token), asked from `ip`.
    pub(crate) async fn revoke_token_from(&self, token: &str, ip: Option<IpAddr>) -> Result<bool, Error> {
        if self.refresh_token_session(token).is_some() {
            return self.end_session_of_refresh_token(token, "token revoked", ip).await;
        }
        // A bound access token too: revoking needs no proof (RFC 7009
        // clients send none), and it can only end the session.
        match self.admitted(token) {
            Ok(admitted) => {
                self.logout_from(&admitted.user, ip).await?;
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }

    /// Revokes session `session_id` of `user_id` for `reason` (no actor: the
    /// crate or the app decided), in the store and then in memory, and tells
    /// the events; gives whether it was live.
    pub(crate) async fn end_session(
        &self,
        session_id: &str,
        user_id: &str,
        reason: &'static str,
        ip: Option<IpAddr>,
    ) -> Result<bool, Error> {
        let now = self.now();
        let revocation = Revocation::Session {
            session_id: session_id.to_string(),
            reason,
            blocklist: None,
        };
        let ended = self.inner.store.revoke(revocation, now).await?;
        let live = !ended.is_empty();
        self.revoked_in_store(None, ended, now);
        if live {
            self.emit(|| SessionEvent::SessionRevoked {
                user_id: user_id.to_string(),
                session_id: session_id.to_string(),
                reason,
                actor: None,
                ip,
                at: now,
            });
        }
        Ok(live)
    }

    /// Ends every session of `user_id` (logout everywhere). Returns how many were
    /// live. A login of the user whose credential check began before this is
    /// refused ([`Error::LoginSuperseded`]).
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails; then nothing was revoked.
    pub async fn logout_all(&self, user_id: impl fmt::Display) -> Result<usize, Error> {
        let user_id = user_id.to_string();
        self.revoke_sessions_of(&user_id, None, None, "logout everywhere", By::default())
            .await
    }

    /// [`logout_all`](Self::logout_all) for `user`, blocklisting its access
    /// token too, in one write: when it fails nothing was revoked.
    pub(crate) async fn logout_everywhere<C>(&self, user: &AuthUser<C>, ip: Option<IpAddr>) -> Result<usize, Error> {
        let token = (user.jti.clone(), user.expires_at);
        self.revoke_sessions_of(&user.id, None, Some(token), "logout everywhere", By::user(user, ip))
            .await
    }

    /// Ends every session of `user` except the one it authenticated with: after a
    /// password change (ASVS 3.3.3), the other devices must sign in again.
    /// Returns how many were live. A login of the user whose credential check
    /// began before this (with the old password, perhaps) is refused
    /// ([`Error::LoginSuperseded`]).
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails; then nothing was revoked.
    pub async fn logout_others<C>(&self, user: &AuthUser<C>) -> Result<usize, Error> {
        self.logout_others_from(user, None).await
    }

    /// [`logout_others`](Self::logout_others), asked from `ip`.
    pub(crate) async fn logout_others_from<C>(&self, user: &AuthUser<C>, ip: Option<IpAddr>) -> Result<usize, Error> {
        let by = By::user(user, ip);
        self.revoke_sessions_of(&user.id, Some(&user.session_id), None, "other sessions ended", by)
            .await
    }

    /// Ends every session of every user: incident response (ASVS 7.4.5), when
    /// sessions may have been stolen. Every access token issued before it is
    /// refused at once, from memory, in this process and (through the
    /// revocation feed) in every other one; a login whose credential check
    /// began before it is refused ([`Error::LoginSuperseded`]); logins after
    /// it work. Returns how many sessions were live. One transaction: on
    /// SQLite it holds the write lock for as long as it takes to mark every
    /// session. (A leaked signing key needs a new key instead: rotate `keys`.)
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails; then nothing was revoked.
    pub async fn logout_everyone(&self) -> Result<usize, Error> {
        let now = self.now();
        let ended = self.inner.store.end_every_session(now).await?;
        let count = ended.len();
        for (session_id, user_id) in &ended {
            self.emit(|| SessionEvent::SessionRevoked {
                user_id: user_id.clone(),
                session_id: session_id.clone(),
                reason: "logout everyone",
                actor: None,
                ip: None,
                at: now,
            });
        }
        self.revoked_in_store(None, ended.into_iter().map(|(session_id, _)| session_id), now);
        log::warn!("rocket_sqlite_sessions: every session ended ({count} were live)");
        Ok(count)
    }

    /// Revokes every live session of `user_id` but `keep` (and blocklists
    /// `token`'s `jti`), in the store and then in memory; returns how many
    /// sessions there were.
    async fn revoke_sessions_of(
        &self,
        user_id: &str,
        keep: Option<&str>,
        token: Option<(String, i64)>,
        reason: &'static str,
        by: By,
    ) -> Result<usize, Error> {
        let now = self.now();
        let revocation = Revocation::UserSessions {
            user_id: user_id.to_string(),
            keep: keep.map(str::to_string),
            reason,
            blocklist: token.clone(),
        };
        let revoked = self.inner.store.revoke(revocation, now).await?;
        let count = revoked.len();
        for session_id in &revoked {
            self.emit(|| SessionEvent::SessionRevoked {
                user_id: user_id.to_string(),
                session_id: session_id.clone(),
                reason,
                actor: by.actor.clone(),
                ip: by.ip,
                at: now,
            });
        }
        self.revoked_in_store(token.as_ref().map(|(jti, exp)| (jti.as_str(), *exp)), revoked, now);
        Ok(count)
    }

    /// Replaces the app claims of every live session of `user_id`: from their
    /// next refresh on, their access tokens carry `claims` (a demoted admin
    /// loses the role at most `access_ttl` later). Returns how many sessions
    /// there were. Access tokens already issued keep their claims until they
    /// expire; end the sessions instead ([`logout_all`](Self::logout_all)) when
    /// that is too late. A login of the user whose credential check began
    /// before this (with the old claims) is refused
    /// ([`Error::LoginSuperseded`]).
    ///
    /// ```
    /// # async fn demote(sessions: &rocket_sqlite_sessions::Sessions) -> Result<(), rocket_sqlite_sessions::Error> {
    /// sessions.update_claims(42, serde_json::json!({ "roles": ["member"] })).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for claims that are not a JSON object or use a name
    /// the crate sets itself (as for [`login`](Self::login)); [`Error::Store`]
    /// when the store fails.
    pub async fn update_claims(&self, user_id: impl fmt::Display, claims: impl Serialize) -> Result<usize, Error> {
        let claims_json = Value::Object(app_claims(claims)?).to_string();
        let now = self.now();
        Ok(self
            .inner
            .store
            .update_claims(user_id.to_string(), claims_json, now)
            .await?)
    }

    /// Puts revocations the store has committed into memory: the blocklisted
    /// token (its `jti` and `exp`) and the sessions, revoked at `now`.
    pub(crate) fn revoked_in_store(
        &self,
        token: Option<(&str, i64)>,
        sessions: impl IntoIterator<Item = String>,
        now: i64,
    ) {
        if let Some((jti, expires_at)) = token {
            self.inner.revocations.apply(Revoked::Token {
                jti: jti.to_string(),
                expires_at,
            });
        }
        for id in sessions {
            self.inner.revocations.apply(Revoked::Session { id, revoked_at: now });
        }
    }
}

/// Who asked for a revocation, when known: for the events.
#[derive(Debug, Clone, Default)]
pub(crate) struct By {
    pub actor: Option<String>,
    pub ip: Option<IpAddr>,
}

impl By {
    /// `user`, from `ip`.
    pub(crate) fn user<C>(user: &AuthUser<C>, ip: Option<IpAddr>) -> By {
        By {
            actor: Some(user.id.clone()),
            ip,
        }
    }
}
