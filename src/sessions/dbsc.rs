//! Device Bound Session Credentials at the service: a browser's registration
//! binds a cookie session to its device key (stored with the session), and
//! each later refresh of the session's cookies needs the key's signature
//! over a fresh challenge. The rotation itself is the refresh's: the
//! session's refresh token rotates as any, and the rotation's transaction
//! refuses it without the bound key ([`rotation`](crate::rotation)).
//!
//! Challenges are stateless and good for five minutes for their session
//! ([`Challenges`]); each is accepted once by a process (remembered until it
//! is too old anyway). Another process could accept an answer once more,
//! but only with the session's current refresh cookie, which the first
//! acceptance rotated: playing it again is reuse, and the session ends.

use super::login::Issued;
use super::Sessions;
use crate::client::{ClientInfo, ProofOutcome};
use crate::crypto::{derive_key, replay_key};
use crate::dbsc::answer::{self, AnswerError};
use crate::dbsc::challenge::{Challenges, Purpose, CHALLENGE_LIFETIME};
use crate::dbsc::DbscSettings;
use crate::dpop::replay::{NotRemembered, ReplayCache};
use crate::error::Error;
use crate::jwk::ClientKey;

/// The most answers remembered at once, per process (~64 bytes each).
const REPLAY_CAPACITY: usize = 100_000;

/// DBSC's state: the challenge key and the answers accepted lately.
pub(crate) struct Dbsc {
    challenges: Challenges,
    replay: ReplayCache,
}

impl Dbsc {
    pub(crate) fn new(signing_secret: &[u8]) -> Self {
        Dbsc {
            challenges: Challenges::new(&derive_key(
                signing_secret,
                b"rocket_sqlite_sessions dbsc challenge key",
            )),
            replay: ReplayCache::new(REPLAY_CAPACITY),
        }
    }
}

/// Why a registration or a refresh got no cookie.
#[derive(Debug)]
pub(crate) enum DeviceRefusal {
    /// No answer, or one to a challenge too old or not this session's: the
    /// browser answers a new challenge (403 with it).
    Challenge,
    /// An answer that fails (a bad signature, another key, an answer seen
    /// before): no cookie.
    Refused(&'static str),
    /// The session is over (revoked, expired, logged out, not bound): the
    /// browser stops refreshing it.
    Ended,
    /// The store or the claims source failed: nothing changed, retry.
    Failed(Error),
}

impl Sessions {
    /// DBSC's settings, when it is on.
    pub(crate) fn dbsc_settings(&self) -> Option<&DbscSettings> {
        self.inner.settings.dbsc.as_ref()
    }

    /// A new challenge for `purpose` in session `session_id`.
    pub(crate) fn dbsc_challenge(&self, purpose: Purpose, session_id: &str) -> String {
        self.inner.dbsc.challenges.make(purpose, session_id, self.now())
    }

    /// Whether `challenge` is a fresh one for `purpose` in `session_id` that
    /// was never answered before; remembers it.
    fn take_challenge(&self, challenge: &str, purpose: Purpose, session_id: &str) -> Result<(), DeviceRefusal> {
        let now = self.now();
        let leeway = self.inner.settings.tokens.leeway;
        let dbsc = &self.inner.dbsc;
        let made = dbsc
            .challenges
            .made_at(challenge, purpose, session_id, now, leeway)
            .ok_or(DeviceRefusal::Challenge)?;
        let key = replay_key(b"rocket_sqlite_sessions dbsc challenge\0", session_id, challenge);
        match dbsc.replay.remember(key, made + CHALLENGE_LIFETIME + 1, now) {
            Ok(()) => Ok(()),
            Err(NotRemembered::Seen) => Err(DeviceRefusal::Refused("a DBSC challenge answered twice")),
            Err(NotRemembered::Full) => Err(DeviceRefusal::Refused("the DBSC replay cache is full")),
        }
    }

    /// Registers the browser's device key for the session of
    /// `refresh_token` (the browser's refresh cookie): `answer` must be
    /// signed by the new key over a registration challenge of that session.
    /// The session is bound to the key and its tokens rotated, the new
    /// ones marked device-bound.
    pub(crate) async fn register_device(
        &self,
        refresh_token: &str,
        answer: &str,
        client: &ClientInfo,
    ) -> Result<Issued, DeviceRefusal> {
        let session_id = self.refresh_token_session(refresh_token).ok_or(DeviceRefusal::Ended)?;
        let (key, challenge) = answer::registration(answer).map_err(refused)?;
        self.take_challenge(&challenge, Purpose::Registration, &session_id)?;
        let bound = self
            .inner
            .store
            .bind_device(session_id.clone(), key.thumbprint.clone(), key.canonical, self.now())
            .await
            .map_err(|cause| DeviceRefusal::Failed(cause.into()))?;
        if !bound {
            return Err(DeviceRefusal::Refused("the session is bound already, or over"));
        }
        self.rotate_bound(refresh_token, client, key.thumbprint).await
    }

    /// Renews the cookies of device-bound session `session_id`: `answer`
    /// must be signed by its key over a refresh challenge of the session,
    /// and `refresh_token` (the bound refresh cookie) be the session's.
    pub(crate) async fn refresh_device(
        &self,
        session_id: &str,
        refresh_token: Option<&str>,
        answer: Option<&str>,
        client: &ClientInfo,
    ) -> Result<Issued, DeviceRefusal> {
        let refresh_token = refresh_token
            .filter(|token| self.refresh_token_session(token).as_deref() == Some(session_id))
            .ok_or(DeviceRefusal::Ended)?;
        let answer = answer.ok_or(DeviceRefusal::Challenge)?;
        let stored = self
            .inner
            .store
            .device_key(session_id.to_string())
            .await
            .map_err(|cause| DeviceRefusal::Failed(cause.into()))?
            .ok_or(DeviceRefusal::Ended)?;
        let key = ClientKey::from_canonical(&stored).ok_or(DeviceRefusal::Failed(Error::Internal(format!(
            "session {session_id} has a corrupt device key"
        ))))?;
        let challenge = answer::refresh(answer, &key.key).map_err(refused)?;
        self.take_challenge(&challenge, Purpose::Refresh, session_id)?;
        self.rotate_bound(refresh_token, client, key.thumbprint).await
    }

    /// Rotates `refresh_token`'s session, the request having proved it
    /// holds the key `thumbprint`.
    async fn rotate_bound(
        &self,
        refresh_token: &str,
        client: &ClientInfo,
        thumbprint: String,
    ) -> Result<Issued, DeviceRefusal> {
        let mut proven = client.clone();
        proven.proof = ProofOutcome::Key(thumbprint);
        match self.refresh_issuing(refresh_token, &proven, true).await {
            Ok(issued) => Ok(issued),
            Err(Error::InvalidToken) => Err(DeviceRefusal::Ended),
            Err(other) => Err(DeviceRefusal::Failed(other)),
        }
    }
}

fn refused(error: AnswerError) -> DeviceRefusal {
    DeviceRefusal::Refused(error.reason())
}
