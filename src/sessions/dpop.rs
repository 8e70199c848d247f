//! DPoP at the service: checking a request's proof (for the web layer, which
//! knows the request), remembering it, the server nonce, and the guard's
//! check of a DPoP-bound access token with its proof.
//!
//! Proofs are remembered by this process only (a shared cache would be a
//! store write on every request, and the guard never waits on the store).
//! So with several processes on one database, a proof captured off the wire
//! could be played to each *other* process once, within
//! `dpop_proof_window` seconds of its `iat`, and only for the request it
//! was made for: the same method and URL and, at a resource, the same
//! access token. A captured refresh proof is worth nothing anywhere: its
//! refresh token has been rotated, so playing it again is reuse, which ends
//! the session.

use super::Sessions;
use crate::client::ProofOutcome;
use crate::dpop::nonce::Nonces;
use crate::dpop::proof::{self, CheckedProof, ProofTarget};
use crate::dpop::replay::{NotRemembered, ReplayCache};
use crate::dpop::{DpopMode, DpopSettings, ProofError};
use crate::log_limit::LogLimit;

/// One warning a minute while the replay cache is full.
static REPLAY_CACHE_FULL: LogLimit = LogLimit::new();

/// The DPoP state of a [`Sessions`].
pub(crate) struct Dpop {
    replay: ReplayCache,
    nonces: Nonces,
}

impl Dpop {
    pub(crate) fn new(settings: &DpopSettings, nonce_key: &[u8; 32]) -> Self {
        Dpop {
            replay: ReplayCache::new(settings.replay_capacity),
            nonces: Nonces::new(nonce_key, settings.window),
        }
    }
}

impl Sessions {
    /// DPoP's settings.
    pub(crate) fn dpop_settings(&self) -> &DpopSettings {
        &self.inner.settings.dpop
    }

    /// The nonce to give in `DPoP-Nonce`, when nonces are on.
    pub(crate) fn dpop_nonce(&self) -> Option<String> {
        let settings = self.dpop_settings();
        (settings.nonces && settings.mode != DpopMode::Off).then(|| self.inner.dpop.nonces.current(self.now()))
    }

    /// Checks `proof` for `target` and, when the session's key is known,
    /// that it is by `bound_to`; then remembers it, so that it is never
    /// accepted again. Gives the checked proof.
    pub(crate) fn check_proof(
        &self,
        proof: &str,
        target: &ProofTarget<'_>,
        bound_to: Option<&str>,
    ) -> Result<CheckedProof, ProofError> {
        let settings = self.dpop_settings();
        if settings.mode == DpopMode::Off {
            return Err(ProofError::NotAccepted);
        }
        let now = self.now();
        let dpop = &self.inner.dpop;
        let checked = proof::check(proof, target, settings, now, |nonce| dpop.nonces.accepts(nonce, now))?;
        if bound_to.is_some_and(|bound| bound != checked.thumbprint) {
            return Err(ProofError::WrongKey);
        }
        match dpop.replay.remember(checked.replay_key, checked.remember_until, now) {
            Ok(()) => Ok(checked),
            Err(NotRemembered::Seen) => Err(ProofError::Replayed),
            Err(NotRemembered::Full) => {
                REPLAY_CACHE_FULL.log(
                    log::Level::Warn,
                    format_args!(
                        "rocket_sqlite_sessions: {} DPoP proofs younger than dpop_proof_window are remembered, \
                         the most dpop_replay_capacity allows: new proofs are refused until the oldest age out; \
                         raise dpop_replay_capacity if this is the app's real load",
                        settings.replay_capacity
                    ),
                );
                Err(ProofError::Full)
            }
        }
    }

    /// What the proof of a login or refresh request (no access token) shows.
    pub(crate) fn token_request_proof(&self, proof: &str, method: &str, url: &str) -> ProofOutcome {
        let target = ProofTarget {
            method,
            url,
            access_token: None,
        };
        match self.check_proof(proof, &target, None) {
            Ok(checked) => ProofOutcome::Key(checked.thumbprint),
            Err(refused) => ProofOutcome::Refused {
                nonce: refused == ProofError::NonceNeeded,
                reason: refused.reason(),
            },
        }
    }
}
