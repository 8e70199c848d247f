//! Refreshing: a refresh token exchanged for the next pair, rotated under
//! the pure decision of [`rotation::decide`](crate::rotation::decide), which
//! the store applies in its transaction.

use std::fmt;

use serde_json::{Map, Value};

use super::login::{app_claims, client_record, Grant, Issued, TokenPair};
use super::Sessions;
use crate::client::ClientInfo;
use crate::error::Error;
use crate::hooks::SessionEvent;
use crate::rotation::{Decision, Presented, RotationPolicy};
use crate::store::RefreshRequest;
use crate::token::{RefreshToken, Rejection};

impl Sessions {
    /// Exchanges a refresh token for a new pair, rotating it: the presented token
    /// is spent and its successor returned.
    ///
    /// A session has one live branch of refresh tokens. Presenting an earlier
    /// token of the session is reuse (RFC 9700 §4.14.2): the whole session is
    /// revoked, its newest refresh token and its access tokens included. Within
    /// `reuse_grace` seconds of a rotation, the token it replaced gets the same
    /// successor again instead (two tabs refreshing at once), never a second
    /// branch; with `lost_response_recovery`, after the window too, while that
    /// successor has never been presented. A token this server did not issue is refused without a store
    /// lookup.
    ///
    /// # Errors
    /// [`Error::InvalidToken`] for a token that is malformed, not issued by this
    /// server, expired, spent (reuse), or whose session is revoked or past its
    /// idle or absolute timeout; [`Error::Store`] when the store fails.
    pub async fn refresh(&self, presented: &str, client: &ClientInfo) -> Result<TokenPair, Error> {
        Ok(self.refresh_issuing(presented, client).await?.pair)
    }

    /// [`refresh`](Self::refresh), with the user the new access token names:
    /// the silent refresh of the web layer hands it to the guard.
    pub(crate) async fn refresh_issuing(&self, presented: &str, client: &ClientInfo) -> Result<Issued, Error> {
        let refused = |reason: &dyn fmt::Display| {
            log::debug!("rocket_sqlite_sessions: refresh refused: {reason}");
            Err(Error::InvalidToken)
        };
        let Some(token) = RefreshToken::parse(presented) else {
            return refused(&Rejection::Malformed);
        };
        let keys = &self.inner.refresh_keys;
        if !keys.issued(&token) {
            return refused(&"not a refresh token of this server");
        }
        let Some(successors) = keys.successors(&token) else {
            return refused(&"the last generation");
        };
        let session_id = token.session_id();
        let presented = Presented {
            // Below i64::MAX: its successor's generation is (successors()).
            generation: token.generation() as i64,
            hash: token.hash(),
            successor_hashes: successors.iter().map(RefreshToken::hash).collect(),
        };
        let lifetimes = &self.inner.settings.lifetimes;
        let policy = RotationPolicy {
            reuse_grace: lifetimes.reuse_grace,
            lost_response_recovery: lifetimes.lost_response_recovery,
            idle_timeout: lifetimes.idle_timeout,
            refresh_ttl: lifetimes.refresh_ttl,
        };
        let now = self.now();
        let outcome = self
            .inner
            .store
            .refresh(RefreshRequest {
                session_id: session_id.clone(),
                presented,
                now,
                policy,
                client: client_record(client),
            })
            .await?;
        let Some((state, decision)) = outcome else {
            return refused(&"no such session");
        };
        let (key, session_expires_at) = match decision {
            Decision::Refuse(reason) => {
                return refused(&format_args!("session {session_id}: {reason}"));
            }
            Decision::Revoke => {
                self.revoked_in_store(None, [session_id.clone()], now);
                self.emit(|| SessionEvent::ReuseDetected {
                    user_id: state.user_id.clone(),
                    session_id: session_id.clone(),
                    ip: client.ip,
                });
                log::warn!(
                    "rocket_sqlite_sessions: a rotated refresh token of session {session_id} (user {}) was \
                     presented again; the session is revoked",
                    state.user_id
                );
                return Err(Error::InvalidToken);
            }
            Decision::Rotate { expires_at } => (0, expires_at),
            Decision::Replay { key } => (key, state.expires_at),
        };
        let app = self
            .next_claims(&state.user_id, &session_id, &state.claims_json)
            .await?;
        self.emit(|| SessionEvent::Refreshed {
            user_id: state.user_id.clone(),
            session_id: session_id.clone(),
            ip: client.ip,
        });
        let successor = successors.into_iter().nth(key).expect("one successor per key");
        let grant = Grant {
            user_id: state.user_id,
            session_id,
            app,
            logged_in_at: state.created_at,
            session_expires_at,
            persistent: state.persistent,
        };
        self.issue(grant, now, successor)
    }

    /// The session a refresh token of this server belongs to, read from the
    /// token alone (its tag checked); `None` for anything else.
    pub(crate) fn refresh_token_session(&self, presented: &str) -> Option<String> {
        RefreshToken::parse(presented)
            .filter(|token| self.inner.refresh_keys.issued(token))
            .map(|token| token.session_id())
    }

    /// The app claims of a session's next access token: the claims source's,
    /// when it gives some, else the session's own (`claims_json`).
    async fn next_claims(
        &self,
        user_id: &str,
        session_id: &str,
        claims_json: &str,
    ) -> Result<Map<String, Value>, Error> {
        if let Some(source) = &self.inner.hooks.claims_source {
            if let Some(claims) = source.claims(user_id).await {
                return app_claims(claims);
            }
        }
        match serde_json::from_str::<Value>(claims_json) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(Error::Internal(format!("session {session_id} has corrupt claims"))),
        }
    }
}
