//! DBSC challenges, stateless: a challenge is its purpose, when it was made,
//! 8 random bytes and an HMAC of all that and the session it is for, under a
//! key derived from the signing key. So a challenge is good only for its
//! session and purpose, for `CHALLENGE_LIFETIME` seconds (an older one may
//! arrive after a newer one, as the spec notes), in every process with the
//! same keys, and nothing is stored; that each is answered once is the
//! service's replay cache's business.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::crypto::random_bytes;

/// How long a challenge is good, in seconds.
pub(crate) const CHALLENGE_LIFETIME: i64 = 300;
/// A challenge's length, base64url: 1 + 8 + 8 + 16 bytes.
const CHALLENGE_LEN: usize = 44;

/// What a challenge is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Answered by the registration request.
    Registration = 1,
    /// Answered by a refresh.
    Refresh = 2,
}

/// Makes and checks challenges.
pub(crate) struct Challenges {
    key: Hmac<Sha256>,
}

impl Challenges {
    pub(crate) fn new(key: &[u8; 32]) -> Self {
        Challenges {
            key: Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length"),
        }
    }

    fn mac(&self, head: &[u8], session_id: &str) -> Hmac<Sha256> {
        self.key.clone().chain_update(head).chain_update(session_id.as_bytes())
    }

    /// A new challenge for `purpose` in session `session_id`, made at `now`.
    pub(crate) fn make(&self, purpose: Purpose, session_id: &str, now: i64) -> String {
        let mut bytes = [0u8; 33];
        bytes[0] = purpose as u8;
        bytes[1..9].copy_from_slice(&now.to_be_bytes());
        bytes[9..17].copy_from_slice(&random_bytes::<8>());
        let tag = self.mac(&bytes[..17], session_id).finalize().into_bytes();
        bytes[17..].copy_from_slice(&tag[..16]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// When `challenge` was made, if it is one for `purpose` in session
    /// `session_id`, made no more than `CHALLENGE_LIFETIME` seconds before
    /// `now` (and no more than `leeway` after it).
    pub(crate) fn made_at(
        &self,
        challenge: &str,
        purpose: Purpose,
        session_id: &str,
        now: i64,
        leeway: i64,
    ) -> Option<i64> {
        let mut bytes = [0u8; 33];
        if challenge.len() != CHALLENGE_LEN || URL_SAFE_NO_PAD.decode_slice(challenge, &mut bytes) != Ok(33) {
            return None;
        }
        let made = i64::from_be_bytes(bytes[1..9].try_into().expect("8 bytes"));
        let fresh = made >= now.saturating_sub(CHALLENGE_LIFETIME) && made <= now.saturating_add(leeway);
        let genuine = bytes[0] == purpose as u8
            && self
                .mac(&bytes[..17], session_id)
                .verify_truncated_left(&bytes[17..])
                .is_ok();
        (fresh && genuine).then_some(made)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_is_good_for_its_session_purpose_and_lifetime_only() {
        let challenges = Challenges::new(&[3; 32]);
        let made = challenges.make(Purpose::Refresh, "s1", 1_000);
        assert_eq!(challenges.made_at(&made, Purpose::Refresh, "s1", 1_300, 0), Some(1_000));
        assert_eq!(
            challenges.made_at(&made, Purpose::Refresh, "s1", 1_301, 0),
            None,
            "too old"
        );
        assert_eq!(
            challenges.made_at(&made, Purpose::Refresh, "s2", 1_000, 0),
            None,
            "another session"
        );
        assert_eq!(
            challenges.made_at(&made, Purpose::Registration, "s1", 1_000, 0),
            None,
            "another purpose"
        );
        assert_eq!(
            Challenges::new(&[4; 32]).made_at(&made, Purpose::Refresh, "s1", 1_000, 0),
            None
        );
        assert_ne!(made, challenges.make(Purpose::Refresh, "s1", 1_000), "random");
    }
}
