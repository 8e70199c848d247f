//! Refreshing: a refresh token exchanged for the next pair, rotated under
//! the pure decision of [`rotation::decide`](crate::rotation::decide), which
//! the store applies in its transaction.

use std::fmt;

use serde_json::{Map, Value};

use super::login::{app_claims, bound_key, client_record, stored_claims, AppClaims, Grant, Issued, TokenPair};
use super::Sessions;
use crate::client::ClientInfo;
use crate::dpop::DpopMode;
use crate::error::Error;
use crate::hooks::ClaimsDecision;
use crate::hooks::SessionEvent;
use crate::rotation::{Decision, Presented, Refusal, RotationPolicy};
use crate::store::RefreshRequest;
use crate::token::{RefreshToken, Rejection};
use crate::user::AuthUser;

/// How many times a refresh asks the claims source when a cut-off of the
/// user keeps committing between its answer and the rotation.
const CLAIMS_ATTEMPTS: usize = 3;

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
    /// successor has never been presented. A token this server did not issue
    /// is refused without a store lookup.
    ///
    /// # Errors
    /// [`Error::InvalidToken`] for a token that is malformed, not issued by this
    /// server, expired, spent (reuse), or whose session is revoked or past its
    /// idle or absolute timeout, or is bound to a DPoP key and `client`
    /// carries no proof by it (then nothing changes: a thief with a copied
    /// refresh token cannot end the session by reuse either);
    /// [`Error::InvalidDpopProof`] or [`Error::UseDpopNonce`] for a DPoP
    /// proof that failed a check, or none where `dpop = "required"`;
    /// [`Error::Store`] when the store fails.
    pub async fn refresh(&self, presented: &str, client: &ClientInfo) -> Result<TokenPair, Error> {
        self.refresh_pair(presented, client, false).await
    }

    /// [`refresh`](Self::refresh), with the user the new access token names:
    /// the silent refresh of the web layer hands it to the guard.
    /// `from_cookies` says the token came in the refresh cookie, which
    /// `dpop = "required"` leaves to browsers.
    pub(crate) async fn refresh_issuing(
        &self,
        presented: &str,
        client: &ClientInfo,
        from_cookies: bool,
    ) -> Result<Issued, Error> {
        match self.refresh_with(presented, client, from_cookies, true).await? {
            (pair, Some(user)) => Ok(Issued { pair, user }),
            (_, None) => Err(Error::Internal("a refresh asked for its user issued none".into())),
        }
    }

    /// [`refresh`](Self::refresh), `from_cookies` as for
    /// [`refresh_issuing`](Self::refresh_issuing): the pair alone, its
    /// access token made with the session's stored claims as they are.
    pub(crate) async fn refresh_pair(
        &self,
        presented: &str,
        client: &ClientInfo,
        from_cookies: bool,
    ) -> Result<TokenPair, Error> {
        Ok(self.refresh_with(presented, client, from_cookies, false).await?.0)
    }

    /// A refresh; the user the new access token names when `with_user`.
    async fn refresh_with(
        &self,
        presented: &str,
        client: &ClientInfo,
        from_cookies: bool,
        with_user: bool,
    ) -> Result<(TokenPair, Option<AuthUser>), Error> {
        let refused = |reason: &dyn fmt::Display| {
            log::debug!("rocket_sqlite_sessions: refresh refused: {reason}");
            Err(Error::InvalidToken)
        };
        let proven_key = bound_key(client)?;
        if proven_key.is_none() && !from_cookies && self.dpop_settings().mode == DpopMode::Required {
            log::debug!("rocket_sqlite_sessions: refresh refused: no DPoP proof, and dpop = \"required\"");
            return Err(Error::InvalidDpopProof);
        }
        let Some(token) = RefreshToken::parse(presented) else {
            return refused(&Rejection::Malformed);
        };
        let keys = &self.inner.refresh_keys;
        let Some(hash) = keys.check(&token) else {
            return refused(&"not a refresh token of this server");
        };
        let Some(successors) = keys.successors(&token) else {
            return refused(&"the last generation");
        };
        let session_id = token.session_id();
        let presented = Presented {
            // Below i64::MAX: its successor's generation is (successors()).
            generation: token.generation() as i64,
            hash,
            successor_hashes: successors.iter().map(|successor| successor.hash).collect(),
            proven_key,
        };
        let lifetimes = &self.inner.settings.lifetimes;
        let policy = RotationPolicy {
            reuse_grace: lifetimes.reuse_grace,
            lost_response_recovery: lifetimes.lost_response_recovery,
            idle_timeout: lifetimes.idle_timeout,
            refresh_ttl: lifetimes.refresh_ttl,
        };
        // The claims source decides before anything rotates: a failed lookup
        // or bad claims leave the refresh token good for a retry. Claims it
        // gave before a cut-off of the user (a role change, a ban) that
        // committed before the rotation are never signed: the rotation's
        // transaction refuses them, and the source is asked again.
        let mut asked = 0;
        let (now, replaced, state, decision) = loop {
            asked += 1;
            let (replaced, claims_mark) = match self.ask_claims_source(&session_id, client).await? {
                Some(Asked::Replace(map, mark)) => (Some(map), Some(mark)),
                Some(Asked::Ended) => return Err(Error::InvalidToken),
                None => (None, None),
            };
            let now = self.now();
            let outcome = self
                .inner
                .store
                .refresh(RefreshRequest {
                    session_id: session_id.clone(),
                    presented: presented.clone(),
                    now,
                    policy,
                    client: client_record(client),
                    claims_json: replaced
                        .as_ref()
                        .map(|map| serde_json::to_string(map).expect("a JSON map serialises")),
                    claims_mark,
                })
                .await?;
            let Some((state, decision)) = outcome else {
                return refused(&"no such session");
            };
            match decision {
                Decision::Refuse(Refusal::StaleClaims) if asked < CLAIMS_ATTEMPTS => {}
                Decision::Refuse(Refusal::StaleClaims) => {
                    return Err(Error::ClaimsSourceFailed(format!(
                        "the claims of user {} changed during each of {CLAIMS_ATTEMPTS} refreshes of session \
                         {session_id}; nothing rotated, the client may retry",
                        state.user_id
                    )))
                }
                decision => break (now, replaced, state, decision),
            }
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
                    at: now,
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
        let app = match replaced {
            Some(map) => AppClaims::Given(map),
            None if with_user => AppClaims::Given(stored_claims(&state.claims_json, &session_id)?),
            None => AppClaims::Stored(state.claims_json),
        };
        self.emit(|| SessionEvent::Refreshed {
            user_id: state.user_id.clone(),
            session_id: session_id.clone(),
            ip: client.ip,
            at: now,
        });
        let successor = successors.into_iter().nth(key).expect("one successor per key").token;
        let grant = Grant {
            user_id: state.user_id,
            session_id,
            app,
            logged_in_at: state.created_at,
            session_expires_at,
            persistent: state.persistent,
            dpop_jkt: state.dpop_jkt,
            dbsc_jkt: state.dbsc_jkt,
        };
        self.issue(grant, now, successor)
    }

    /// The session a refresh token of this server belongs to, read from the
    /// token alone (its tag checked); `None` for anything else.
    pub(crate) fn refresh_token_session(&self, presented: &str) -> Option<String> {
        RefreshToken::parse(presented)
            .filter(|token| self.inner.refresh_keys.check(token).is_some())
            .map(|token| token.session_id())
    }

    /// What the claims source, when there is one, decides for session
    /// `session_id`: `None` to keep its claims. A session it ends is revoked
    /// here (feed, memory, event).
    async fn ask_claims_source(&self, session_id: &str, client: &ClientInfo) -> Result<Option<Asked>, Error> {
        let Some(source) = self.claims_source() else {
            return Ok(None);
        };
        // The cut-off counter before the source reads the app's data: a
        // cut-off numbered after it may have changed what the source read.
        let Some((user_id, mark)) = self.inner.store.session_user(session_id.to_string()).await? else {
            log::debug!("rocket_sqlite_sessions: refresh refused: no such session");
            return Err(Error::InvalidToken);
        };
        let decision = source.claims(&user_id).await.map_err(|cause| {
            Error::ClaimsSourceFailed(format!("the claims source failed for user {user_id}: {cause}"))
        })?;
        match decision {
            ClaimsDecision::Keep => Ok(None),
            ClaimsDecision::Replace(claims) => Ok(Some(Asked::Replace(
                app_claims(claims).map_err(|error| {
                    Error::InvalidArgument(format!("the claims source gave claims for user {user_id} that {error}"))
                })?,
                mark,
            ))),
            ClaimsDecision::End(reason) => {
                self.end_session(session_id, &user_id, reason, client.ip).await?;
                log::debug!(
                    "rocket_sqlite_sessions: refresh refused: the claims source ended session {session_id} \
                     ({reason}); client {:?}",
                    client.ip
                );
                Ok(Some(Asked::Ended))
            }
        }
    }
}

/// What the claims source said, checked.
enum Asked {
    /// New claims, valid app claims, and the cut-off counter read before
    /// the source was asked.
    Replace(Map<String, Value>, i64),
    /// The session is over: it was revoked.
    Ended,
}
