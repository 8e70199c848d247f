//! Refresh tokens: opaque, tagged by the server, derived one from the other.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::crypto::{derive_key, random_bytes};

/// The bytes of a refresh token: session id, generation, secret, tag.
const SESSION_ID_BYTES: usize = 16;
const GENERATION_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;
const TAG_BYTES: usize = 16;
const TAGGED_BYTES: usize = SESSION_ID_BYTES + GENERATION_BYTES + SECRET_BYTES;
const REFRESH_TOKEN_BYTES: usize = TAGGED_BYTES + TAG_BYTES;
/// A refresh token's length in base64url without padding.
pub(crate) const REFRESH_TOKEN_LEN: usize = REFRESH_TOKEN_BYTES * 4 / 3;

/// A refresh token: what the client holds. Only its [`hash`](Self::hash) is
/// ever stored.
///
/// 72 bytes, base64url (96 characters): the session id (16 bytes), the
/// token's generation in its session (8, big-endian), a secret (32) and a tag
/// (16). The first token of a session has a random secret; each successor's
/// secret is an HMAC of the whole previous token under a server key, so a
/// successor can be derived again from the token it replaces (a replay within
/// the grace window gets the same successor) but never from what the database
/// holds. The tag, an HMAC of the rest under a server key, proves the server
/// issued the token: forged tokens are refused without a store lookup, and an
/// earlier token of a session is recognised as such (reuse) from its
/// generation alone.
pub(crate) struct RefreshToken([u8; REFRESH_TOKEN_BYTES]);

impl RefreshToken {
    /// Reads a presented token, or `None` when it cannot be one of ours (wrong
    /// length or alphabet), so garbage never reaches the store.
    pub(crate) fn parse(presented: &str) -> Option<RefreshToken> {
        if presented.len() != REFRESH_TOKEN_LEN {
            return None;
        }
        // 96 characters carry exactly 72 bytes: no stray bits, one spelling.
        URL_SAFE_NO_PAD
            .decode(presented)
            .ok()?
            .try_into()
            .ok()
            .map(RefreshToken)
    }

    /// The session this token belongs to.
    pub(crate) fn session_id(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.0[..SESSION_ID_BYTES])
    }

    /// The token's generation: 0 at login, one more at each rotation.
    pub(crate) fn generation(&self) -> u64 {
        let bytes = &self.0[SESSION_ID_BYTES..SESSION_ID_BYTES + GENERATION_BYTES];
        u64::from_be_bytes(bytes.try_into().expect("eight bytes"))
    }

    /// The SHA-256 of the token: what the store keeps.
    pub(crate) fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0).into()
    }

    /// The token as the client receives it.
    pub(crate) fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }
}

// A refresh token must never be printed by accident.
impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

/// The keys that derive and tag refresh tokens: one per signing key, derived
/// from it (never equal to it), the first current. Each is kept as an HMAC
/// already keyed, cloned for every use.
pub(crate) struct RefreshKeys(Vec<Hmac<Sha256>>);

impl RefreshKeys {
    pub(crate) fn new<'a>(signing_secrets: impl IntoIterator<Item = &'a [u8]>) -> Self {
        RefreshKeys(
            signing_secrets
                .into_iter()
                .map(|secret| {
                    let key = derive_key(secret, b"rocket_sqlite_sessions refresh key");
                    Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length")
                })
                .collect(),
        )
    }

    /// The first refresh token of session `session_id` (a [`random_id`]), or
    /// `None` when the id is not 16 bytes of base64url.
    pub(crate) fn first(&self, session_id: &str) -> Option<RefreshToken> {
        let id: [u8; SESSION_ID_BYTES] = URL_SAFE_NO_PAD.decode(session_id).ok()?.try_into().ok()?;
        let mut bytes = [0u8; REFRESH_TOKEN_BYTES];
        bytes[..SESSION_ID_BYTES].copy_from_slice(&id);
        bytes[TAGGED_BYTES - SECRET_BYTES..TAGGED_BYTES].copy_from_slice(&random_bytes::<SECRET_BYTES>());
        Some(tagged(&self.0[0], bytes))
    }

    /// Whether the server issued `token`: its tag is right under one of the keys
    /// (compared in constant time).
    pub(crate) fn issued(&self, token: &RefreshToken) -> bool {
        self.0.iter().any(|key| {
            keyed(key, b"tag")
                .chain_update(&token.0[..TAGGED_BYTES])
                .verify_truncated_left(&token.0[TAGGED_BYTES..])
                .is_ok()
        })
    }

    /// The successor of `token` under each key, the current key's first; `None`
    /// past the last generation (`i64::MAX`, what SQLite stores).
    pub(crate) fn successors(&self, token: &RefreshToken) -> Option<Vec<RefreshToken>> {
        let generation = token
            .generation()
            .checked_add(1)
            .filter(|g| i64::try_from(*g).is_ok())?;
        Some(
            self.0
                .iter()
                .map(|key| {
                    let mut bytes = [0u8; REFRESH_TOKEN_BYTES];
                    bytes[..SESSION_ID_BYTES].copy_from_slice(&token.0[..SESSION_ID_BYTES]);
                    bytes[SESSION_ID_BYTES..SESSION_ID_BYTES + GENERATION_BYTES]
                        .copy_from_slice(&generation.to_be_bytes());
                    let secret = keyed(key, b"next").chain_update(token.0).finalize().into_bytes();
                    bytes[TAGGED_BYTES - SECRET_BYTES..TAGGED_BYTES].copy_from_slice(&secret);
                    tagged(key, bytes)
                })
                .collect(),
        )
    }
}

/// `bytes` with the tag of the rest under `key` in place.
fn tagged(key: &Hmac<Sha256>, mut bytes: [u8; REFRESH_TOKEN_BYTES]) -> RefreshToken {
    let tag = keyed(key, b"tag")
        .chain_update(&bytes[..TAGGED_BYTES])
        .finalize()
        .into_bytes();
    bytes[TAGGED_BYTES..].copy_from_slice(&tag[..TAG_BYTES]);
    RefreshToken(bytes)
}

/// An HMAC under `key` for one purpose (domain separation).
fn keyed(key: &Hmac<Sha256>, purpose: &[u8]) -> Hmac<Sha256> {
    let mut mac = key.clone();
    mac.update(purpose);
    mac.update(&[0]);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::random_id;

    fn keys(secrets: &[&[u8]]) -> RefreshKeys {
        RefreshKeys::new(secrets.iter().copied())
    }

    #[test]
    fn refresh_tokens_are_96_chars_tagged_and_distinct() {
        let keys = keys(&[&[1; 32]]);
        let session = random_id();
        let a = keys.first(&session).unwrap();
        let b = keys.first(&session).unwrap();
        assert_eq!(a.encode().len(), 96);
        assert_ne!(a.encode(), b.encode());
        let read = RefreshToken::parse(&a.encode()).unwrap();
        assert_eq!((read.session_id(), read.generation()), (session, 0));
        assert!(keys.issued(&read));
        assert!(!self::keys(&[&[2; 32]]).issued(&read), "another server's key");
    }

    #[test]
    fn a_successor_is_derived_again_from_its_predecessor_only() {
        let keys = keys(&[&[1; 32], &[2; 32]]);
        let first = keys.first(&random_id()).unwrap();
        let next = keys.successors(&first).unwrap();
        assert_eq!(next.len(), 2, "one per key");
        assert_eq!(next[0].generation(), 1);
        assert_eq!(next[0].encode(), keys.successors(&first).unwrap()[0].encode());
        assert_ne!(next[0].encode(), next[1].encode());
        assert!(keys.issued(&next[0]) && keys.issued(&next[1]));
        let other = keys.first(&first.session_id()).unwrap();
        assert_ne!(keys.successors(&other).unwrap()[0].encode(), next[0].encode());
    }

    #[test]
    fn presented_garbage_is_not_parsed() {
        let token = keys(&[&[1; 32]]).first(&random_id()).unwrap().encode();
        assert!(RefreshToken::parse("").is_none());
        assert!(RefreshToken::parse(&"a".repeat(43)).is_none());
        assert!(RefreshToken::parse(&format!("{token}A")).is_none());
        assert!(RefreshToken::parse(&"!".repeat(96)).is_none());
        assert!(RefreshToken::parse(&"é".repeat(48)).is_none());
        let mut flipped = token.into_bytes();
        flipped[50] = if flipped[50] == b'A' { b'B' } else { b'A' };
        let flipped = RefreshToken::parse(std::str::from_utf8(&flipped).unwrap()).unwrap();
        assert!(!keys(&[&[1; 32]]).issued(&flipped), "any change breaks the tag");
    }
}
