//! Checking an access token, from memory only: signature, times, issuer and
//! audience, then the revocations. The guard's whole check.

use super::Sessions;
use crate::dpop::proof::ProofTarget;
use crate::dpop::{DpopMode, ProofError};
use crate::error::Error;
use std::sync::Arc;

use crate::token::{authorization_token, Admitted, Confirmation, Rejection, Scheme};
use crate::user::{AuthUser, Binding};

impl Sessions {
    /// Checks an `Authorization` header value (`Bearer <access token>`) exactly as
    /// [`AuthUser`] does, from memory only, for a token that reaches the app
    /// outside a request guard: the first message of a WebSocket, a job queued
    /// with the caller's token. Without the request there is no DPoP proof
    /// to check: a token bound to a DPoP key is refused here.
    ///
    /// ```
    /// # fn check(sessions: &rocket_sqlite_sessions::Sessions, header: &str) {
    /// match sessions.verify_authorization(header) {
    ///     Ok(user) => println!("hello {}", user.id),
    ///     Err(refused) => println!("{refused}"),
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidToken`] for every failure, whatever the cause (the cause
    /// is logged at debug level).
    pub fn verify_authorization(&self, authorization: &str) -> Result<AuthUser, Error> {
        self.authenticate_header(authorization)
            .map(Arc::unwrap_or_clone)
            .map_err(|rejection| {
                log::debug!("rocket_sqlite_sessions: access token refused: {rejection}");
                Error::InvalidToken
            })
    }

    /// Whether access tokens of session `session_id`, or the one token `jti`,
    /// are revoked: answered from memory, as the guard does. A long-lived
    /// connection that authenticated once (a WebSocket, a server-sent event
    /// stream) can ask this from time to time and close when its session ends.
    pub fn is_revoked(&self, session_id: &str, jti: &str) -> bool {
        self.inner.revocations.is_revoked(jti, session_id)
    }

    /// [`verify_authorization`](Self::verify_authorization), with the reason for
    /// a refusal. Without the request, no DPoP proof: a DPoP-bound token is
    /// refused.
    pub(crate) fn authenticate_header(&self, authorization: &str) -> Result<Arc<AuthUser>, Rejection> {
        match authorization_token(authorization)? {
            (Scheme::Bearer, token) => self.authenticate_bearer(token),
            (Scheme::Dpop, _) => Err(Rejection::DpopProof),
        }
    }

    /// An access token sent as `Authorization: Bearer`: refused when its
    /// session is bound to a key (no downgrade, RFC 9449 §7.2) or
    /// `dpop = "required"`.
    pub(crate) fn authenticate_bearer(&self, token: &str) -> Result<Arc<AuthUser>, Rejection> {
        let user = self.authenticate(token)?;
        if self.dpop_settings().mode == DpopMode::Required {
            return Err(Rejection::DpopRequired);
        }
        Ok(user)
    }

    /// An access token sent as `Authorization: DPoP`, with the request's
    /// `DPoP` proof (`proof`), its method and URL: the token checked as any,
    /// then the proof, by the key the token is bound to (`cnf.jkt`) and
    /// naming the token (`ath`), and remembered. The proof is checked last,
    /// so only a holder of a valid bound token can make the guard remember
    /// anything.
    pub(crate) fn authenticate_dpop(
        &self,
        token: &str,
        proof: Option<&str>,
        method: &str,
        url: &str,
    ) -> Result<Arc<AuthUser>, Rejection> {
        if self.dpop_settings().mode == DpopMode::Off {
            return Err(Rejection::Missing);
        }
        let admitted = self.admitted(token)?;
        let Some(bound) = admitted.cnf.as_ref().and_then(|cnf| cnf.jkt.as_deref()) else {
            return Err(Rejection::Binding);
        };
        let proof = proof.ok_or(Rejection::DpopProof)?;
        let target = ProofTarget {
            method,
            url,
            access_token: Some(token),
        };
        match self.check_proof(proof, &target, Some(bound)) {
            Ok(checked) => Ok(bound_user(
                &admitted.user,
                Binding::Dpop {
                    thumbprint: checked.thumbprint,
                },
            )),
            Err(ProofError::NonceNeeded) => Err(Rejection::DpopNonce),
            Err(refused) => {
                log::debug!("rocket_sqlite_sessions: {refused}");
                Err(Rejection::DpopProof)
            }
        }
    }

    /// Checks an access token completely, from memory only, as sent without
    /// a proof (a bearer token): a token bound to any key is refused.
    pub(crate) fn authenticate(&self, token: &str) -> Result<Arc<AuthUser>, Rejection> {
        let admitted = self.admitted(token)?;
        if admitted.cnf.is_some() {
            return Err(Rejection::Binding);
        }
        Ok(admitted.user)
    }

    /// An access token from the access cookie: as
    /// [`authenticate`](Self::authenticate), but the token of a session
    /// bound to the browser's device key (DBSC) is what the cookie is for
    /// (renewed only with that key's signature).
    pub(crate) fn authenticate_cookie(&self, token: &str) -> Result<Arc<AuthUser>, Rejection> {
        let admitted = self.admitted(token)?;
        match &admitted.cnf {
            None => Ok(admitted.user),
            Some(Confirmation {
                jkt: None,
                dbsc: Some(device),
            }) => Ok(bound_user(
                &admitted.user,
                Binding::Device {
                    thumbprint: device.clone(),
                },
            )),
            Some(_) => Err(Rejection::Binding),
        }
    }

    /// Checks an access token's form, header, signature, times, issuer and
    /// audience, then the blocklist and revoked sessions, from memory.
    ///
    /// A token the codec kept notes the revocation generation in which it was
    /// last found unrevoked: while nothing has been revoked since, the lookups
    /// are skipped (see [`Revocations::generation`](crate::revocation::Revocations::generation)).
    pub(crate) fn admitted(&self, token: &str) -> Result<Admitted, Rejection> {
        let (admitted, kept) = self.inner.codec.verify(token, self.now())?;
        let revocations = &self.inner.revocations;
        // Read before the lookups: a revocation put in during them makes a
        // later generation, so the note below never hides it.
        let generation = revocations.generation();
        if kept.as_ref().is_none_or(|kept| kept.note() != generation) {
            if revocations.is_revoked(&admitted.user.jti, &admitted.user.session_id) {
                return Err(Rejection::Revoked);
            }
            if let Some(kept) = kept {
                kept.set_note(generation);
            }
        }
        Ok(admitted)
    }

    /// `Ok` when `user` signed in no more than `fresh_age` seconds ago: for a
    /// sensitive action in an app's own route, as
    /// [`FreshAuthUser`](crate::FreshAuthUser) is for a whole route. The
    /// crate's routes ask it before ending or renaming another session of the
    /// user (OWASP ASVS 5.0 7.5.2), so a stolen old session cannot end its
    /// owner's others.
    ///
    /// # Errors
    /// [`Error::LoginTooOld`] (401 `insufficient_user_authentication` with
    /// `max_age`, RFC 9470): the user signs in again first.
    pub fn require_fresh<C>(&self, user: &AuthUser<C>) -> Result<(), Error> {
        self.check_fresh(user).map_err(|max_age| Error::LoginTooOld { max_age })
    }

    /// `Ok` when `user` logged in no more than `fresh_age` seconds ago, else
    /// `Err(fresh_age)`.
    pub(crate) fn check_fresh<C>(&self, user: &AuthUser<C>) -> Result<(), i64> {
        let (leeway, fresh_age) = (
            self.inner.settings.tokens.leeway,
            self.inner.settings.lifetimes.fresh_age,
        );
        // A login in the future (beyond the clock skew allowed) has an unknown
        // age: not fresh.
        let age = self.now().checked_sub(user.authenticated_at);
        if age.is_some_and(|age| (-leeway..=fresh_age).contains(&age)) {
            Ok(())
        } else {
            Err(fresh_age)
        }
    }
}

/// `user`, proved to hold the key its session is bound to.
fn bound_user(user: &AuthUser, binding: Binding) -> Arc<AuthUser> {
    let mut user = user.clone();
    user.binding = binding;
    Arc::new(user)
}
