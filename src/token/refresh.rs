//! Refresh tokens: opaque, tagged by the server, derived one from the other.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::crypto::{base64url, constant_time_eq, decode_base64url, derive_key, random_bytes};

/// The bytes of a refresh token: session id, generation, secret, tag.
const SESSION_ID_BYTES: usize = 16;
const GENERATION_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;
const TAG_BYTES: usize = 16;
const TAGGED_BYTES: usize = SESSION_ID_BYTES + GENERATION_BYTES + SECRET_BYTES;
const REFRESH_TOKEN_BYTES: usize = TAGGED_BYTES + TAG_BYTES;
/// A refresh token's length in base64url without padding.
pub(crate) const REFRESH_TOKEN_LEN: usize = REFRESH_TOKEN_BYTES * 4 / 3;
/// The generation field's top bit, set in tokens of the second format
/// (generations stay below `i64::MAX`, so it is free in every token).
const SECOND_FORMAT: u64 = 1 << 63;

/// What the store keeps of a refresh token: never the token, and nothing a
/// token can be made from.
pub(crate) type StoredHash = [u8; 32];

/// A refresh token: what the client holds. Only its stored hash (see
/// [`RefreshKeys`]) is ever stored.
///
/// 72 bytes, base64url (96 characters): the session id (16 bytes), the
/// token's generation in its session (8, big-endian), a secret (32) and a tag
/// (16). The first token of a session has a random secret; each successor's
/// secret is a keyed hash of the whole previous token under a server key, so
/// a successor can be derived again from the token it replaces (a replay
/// within the grace window gets the same successor) but never from what the
/// database holds. The tag, a keyed hash of the rest under a server key,
/// proves the server issued the token: forged tokens are refused without a
/// store lookup, and an earlier token of a session is recognised as such
/// (reuse) from its generation alone.
///
/// Two formats, told apart by the generation's top bit. The first (issued
/// until December 2026) tags with HMAC-SHA-256, derives successors
/// with it and stores the token's SHA-256: five SHA-256 computations of a
/// rotation's six. The second, which every token issued now has, uses keyed
/// BLAKE3 (a PRF, like HMAC): the tag and the stored hash come out of one
/// computation (48 bytes of output, the first 16 the tag, the other 32
/// stored), the successor's secret out of another, each a fraction of an
/// HMAC's cost. A token of the first format, issued before an upgrade, is
/// still checked as it was, and its successor has the second.
pub(crate) struct RefreshToken([u8; REFRESH_TOKEN_BYTES]);

impl RefreshToken {
    /// Reads a presented token, or `None` when it cannot be one of ours (wrong
    /// length or alphabet), so garbage never reaches the store.
    pub(crate) fn parse(presented: &str) -> Option<RefreshToken> {
        if presented.len() != REFRESH_TOKEN_LEN {
            return None;
        }
        // 96 characters carry exactly 72 bytes: no stray bits, one spelling.
        let mut bytes = [0u8; REFRESH_TOKEN_BYTES];
        (decode_base64url(presented.as_bytes(), &mut bytes)? == REFRESH_TOKEN_BYTES).then_some(RefreshToken(bytes))
    }

    /// The session this token belongs to.
    pub(crate) fn session_id(&self) -> String {
        base64url(&self.0[..SESSION_ID_BYTES])
    }

    /// The generation field as written: the generation, and the format bit.
    fn generation_field(&self) -> u64 {
        let bytes = &self.0[SESSION_ID_BYTES..SESSION_ID_BYTES + GENERATION_BYTES];
        u64::from_be_bytes(bytes.try_into().expect("eight bytes"))
    }

    /// The token's generation: 0 at login, one more at each rotation.
    pub(crate) fn generation(&self) -> u64 {
        self.generation_field() & !SECOND_FORMAT
    }

    /// Whether the token has the second format (keyed BLAKE3).
    fn is_second_format(&self) -> bool {
        self.generation_field() & SECOND_FORMAT != 0
    }

    /// The token as the client receives it.
    pub(crate) fn encode(&self) -> String {
        base64url(&self.0)
    }
}

// A refresh token must never be printed by accident.
impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

/// A refresh token this server made, with its stored hash.
#[derive(Debug)]
pub(crate) struct Minted {
    pub token: RefreshToken,
    pub hash: StoredHash,
}

/// The keys of one signing key: derived from it (never equal to it).
struct KeySet {
    /// The first format's HMAC key, already keyed (cloned for every use):
    /// checks tokens issued before the second format.
    first_format: Hmac<Sha256>,
    /// Keyed BLAKE3's key for tags and stored hashes.
    tag: [u8; 32],
    /// Keyed BLAKE3's key for successors' secrets.
    next: [u8; 32],
}

/// The keys that derive and tag refresh tokens: one set per signing key, the
/// first current.
pub(crate) struct RefreshKeys(Vec<KeySet>);

impl RefreshKeys {
    pub(crate) fn new<'a>(signing_secrets: impl IntoIterator<Item = &'a [u8]>) -> Self {
        RefreshKeys(
            signing_secrets
                .into_iter()
                .map(|secret| {
                    let key = derive_key(secret, b"rocket_sqlite_sessions refresh key");
                    KeySet {
                        first_format: Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length"),
                        tag: derive_key(secret, b"rocket_sqlite_sessions refresh tag 2"),
                        next: derive_key(secret, b"rocket_sqlite_sessions refresh successor 2"),
                    }
                })
                .collect(),
        )
    }

    /// The first refresh token of session `session_id` (a [`random_id`]), or
    /// `None` when the id is not 16 bytes of base64url.
    ///
    /// [`random_id`]: crate::crypto::random_id
    pub(crate) fn first(&self, session_id: &str) -> Option<Minted> {
        let id: [u8; SESSION_ID_BYTES] = URL_SAFE_NO_PAD.decode(session_id).ok()?.try_into().ok()?;
        let mut bytes = [0u8; REFRESH_TOKEN_BYTES];
        bytes[..SESSION_ID_BYTES].copy_from_slice(&id);
        bytes[SESSION_ID_BYTES..SESSION_ID_BYTES + GENERATION_BYTES].copy_from_slice(&SECOND_FORMAT.to_be_bytes());
        bytes[TAGGED_BYTES - SECRET_BYTES..TAGGED_BYTES].copy_from_slice(&random_bytes::<SECRET_BYTES>());
        Some(tagged(&self.0[0], bytes))
    }

    /// The stored hash of `token` when the server issued it (its tag is
    /// right under one of the keys, compared in constant time), else `None`.
    pub(crate) fn check(&self, token: &RefreshToken) -> Option<StoredHash> {
        if token.is_second_format() {
            self.0.iter().find_map(|keys| {
                let (tag, hash) = tag_and_hash(&keys.tag, &token.0[..TAGGED_BYTES]);
                constant_time_eq(&tag, &token.0[TAGGED_BYTES..]).then_some(hash)
            })
        } else {
            self.0
                .iter()
                .any(|keys| {
                    keyed(&keys.first_format, b"tag")
                        .chain_update(&token.0[..TAGGED_BYTES])
                        .verify_truncated_left(&token.0[TAGGED_BYTES..])
                        .is_ok()
                })
                .then(|| Sha256::digest(token.0).into())
        }
    }

    /// The successor of `token` under each key, the current key's first; `None`
    /// past the last generation (`i64::MAX`, what SQLite stores). Successors
    /// have the second format, whatever `token` has.
    pub(crate) fn successors(&self, token: &RefreshToken) -> Option<Vec<Minted>> {
        let generation = token
            .generation()
            .checked_add(1)
            .filter(|g| i64::try_from(*g).is_ok())?;
        Some(
            self.0
                .iter()
                .map(|keys| {
                    let mut bytes = [0u8; REFRESH_TOKEN_BYTES];
                    bytes[..SESSION_ID_BYTES].copy_from_slice(&token.0[..SESSION_ID_BYTES]);
                    bytes[SESSION_ID_BYTES..SESSION_ID_BYTES + GENERATION_BYTES]
                        .copy_from_slice(&(generation | SECOND_FORMAT).to_be_bytes());
                    let secret = blake3::keyed_hash(&keys.next, &token.0);
                    bytes[TAGGED_BYTES - SECRET_BYTES..TAGGED_BYTES].copy_from_slice(secret.as_bytes());
                    tagged(keys, bytes)
                })
                .collect(),
        )
    }
}

/// `bytes` (of the second format) with the tag of the rest under `keys` in
/// place, and its stored hash.
fn tagged(keys: &KeySet, mut bytes: [u8; REFRESH_TOKEN_BYTES]) -> Minted {
    let (tag, hash) = tag_and_hash(&keys.tag, &bytes[..TAGGED_BYTES]);
    bytes[TAGGED_BYTES..].copy_from_slice(&tag);
    Minted {
        token: RefreshToken(bytes),
        hash,
    }
}

/// The second format's tag of `tagged` (the token's first 56 bytes) under
/// `key`, and the token's stored hash: the first 16 and the next 32 bytes of
/// one keyed BLAKE3 output. The stored hash is not in the token, and neither
/// the token nor its secret can be computed from it.
fn tag_and_hash(key: &[u8; 32], tagged: &[u8]) -> ([u8; TAG_BYTES], StoredHash) {
    let mut output = [0u8; TAG_BYTES + 32];
    blake3::Hasher::new_keyed(key)
        .update(tagged)
        .finalize_xof()
        .fill(&mut output);
    let (tag, hash) = output.split_at(TAG_BYTES);
    (tag.try_into().expect("16 bytes"), hash.try_into().expect("32 bytes"))
}

/// An HMAC under `key` for one purpose (domain separation): the first format.
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

    /// A token of the first format, as the crate issued them before the
    /// second: generation `generation` of a session, tagged by HMAC-SHA-256.
    fn first_format(keys: &RefreshKeys, generation: u64) -> RefreshToken {
        let mut bytes = [0u8; REFRESH_TOKEN_BYTES];
        bytes[..SESSION_ID_BYTES].copy_from_slice(&random_bytes::<SESSION_ID_BYTES>());
        bytes[SESSION_ID_BYTES..TAGGED_BYTES - SECRET_BYTES].copy_from_slice(&generation.to_be_bytes());
        bytes[TAGGED_BYTES - SECRET_BYTES..TAGGED_BYTES].copy_from_slice(&random_bytes::<SECRET_BYTES>());
        let tag = keyed(&keys.0[0].first_format, b"tag")
            .chain_update(&bytes[..TAGGED_BYTES])
            .finalize()
            .into_bytes();
        bytes[TAGGED_BYTES..].copy_from_slice(&tag[..TAG_BYTES]);
        RefreshToken(bytes)
    }

    #[test]
    fn refresh_tokens_are_96_chars_tagged_and_distinct() {
        let keys = keys(&[&[1; 32]]);
        let session = random_id();
        let a = keys.first(&session).unwrap();
        let b = keys.first(&session).unwrap();
        assert_eq!(a.token.encode().len(), 96);
        assert_ne!(a.token.encode(), b.token.encode());
        assert_ne!(a.hash, b.hash);
        let read = RefreshToken::parse(&a.token.encode()).unwrap();
        assert_eq!((read.session_id(), read.generation()), (session, 0));
        assert_eq!(keys.check(&read), Some(a.hash), "the stored hash comes with the check");
        assert!(self::keys(&[&[2; 32]]).check(&read).is_none(), "another server's key");
    }

    #[test]
    fn the_stored_hash_is_not_in_the_token() {
        let minted = keys(&[&[1; 32]]).first(&random_id()).unwrap();
        let token = minted.token.0;
        assert!(!token.windows(8).any(|w| minted.hash.windows(8).any(|h| h == w)));
        assert_ne!(minted.hash, <[u8; 32]>::from(Sha256::digest(token)));
    }

    #[test]
    fn a_successor_is_derived_again_from_its_predecessor_only() {
        let keys = keys(&[&[1; 32], &[2; 32]]);
        let first = keys.first(&random_id()).unwrap().token;
        let next = keys.successors(&first).unwrap();
        assert_eq!(next.len(), 2, "one per key");
        assert_eq!(next[0].token.generation(), 1);
        assert_eq!(
            next[0].token.encode(),
            keys.successors(&first).unwrap()[0].token.encode()
        );
        assert_eq!(next[0].hash, keys.successors(&first).unwrap()[0].hash);
        assert_ne!(next[0].token.encode(), next[1].token.encode());
        assert_eq!(keys.check(&next[0].token), Some(next[0].hash));
        assert_eq!(keys.check(&next[1].token), Some(next[1].hash));
        let other = keys.first(&first.session_id()).unwrap().token;
        assert_ne!(
            keys.successors(&other).unwrap()[0].token.encode(),
            next[0].token.encode()
        );
    }

    #[test]
    fn first_format_tokens_are_still_checked_and_succeeded_by_the_second() {
        let keys = keys(&[&[1; 32]]);
        let old = first_format(&keys, 41);
        assert!(!old.is_second_format());
        let hash = keys.check(&old).expect("a token issued before the second format");
        assert_eq!(hash, <[u8; 32]>::from(Sha256::digest(old.0)), "as the store holds it");
        let next = keys.successors(&old).unwrap().remove(0);
        assert!(next.token.is_second_format());
        assert_eq!(next.token.generation(), 42);
        assert_eq!(keys.check(&next.token), Some(next.hash));
        // A first-format token of another key, and one whose format bit was
        // flipped (its tag no longer fits either format).
        assert!(self::keys(&[&[2; 32]]).check(&old).is_none());
        let mut flipped = RefreshToken(old.0);
        flipped.0[SESSION_ID_BYTES] |= 0x80;
        assert!(keys.check(&flipped).is_none());
    }

    #[test]
    fn the_last_generation_has_no_successor() {
        let keys = keys(&[&[1; 32]]);
        let last = first_format(&keys, i64::MAX as u64);
        assert!(keys.successors(&last).is_none());
        let before = first_format(&keys, i64::MAX as u64 - 1);
        assert_eq!(keys.successors(&before).unwrap()[0].token.generation(), i64::MAX as u64);
    }

    #[test]
    fn presented_garbage_is_not_parsed() {
        let token = keys(&[&[1; 32]]).first(&random_id()).unwrap().token.encode();
        assert!(RefreshToken::parse("").is_none());
        assert!(RefreshToken::parse(&"a".repeat(43)).is_none());
        assert!(RefreshToken::parse(&format!("{token}A")).is_none());
        assert!(RefreshToken::parse(&"!".repeat(96)).is_none());
        assert!(RefreshToken::parse(&"é".repeat(48)).is_none());
        for at in [0, 30, 50, 95] {
            let mut flipped = token.clone().into_bytes();
            flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
            let flipped = RefreshToken::parse(std::str::from_utf8(&flipped).unwrap()).unwrap();
            assert!(
                keys(&[&[1; 32]]).check(&flipped).is_none(),
                "any change breaks the tag ({at})"
            );
        }
    }
}
