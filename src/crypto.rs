//! Randomness and derived keys: the ground every token and key stands on.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use rand::TryRng as _;
use sha2::{Digest, Sha256};

/// `N` bytes from the operating system's CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random number generator failed");
    bytes
}

/// A fresh 128-bit identifier, base64url: session ids and `jti`s.
pub(crate) fn random_id() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<16>())
}

/// An id's 16 bytes, for the in-memory revocation sets: the id decoded when
/// it is one [`random_id`] made (22 base64url characters, so the bytes are
/// random and the mapping one-to-one), else the first 16 bytes of its
/// SHA-256, so that an id from elsewhere still has a fixed-size key. Two ids
/// share a key only by a 2^-128 chance, and then one's revocation refuses the
/// other: never an acceptance.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct IdKey(pub(crate) [u8; 16]);

impl IdKey {
    /// The key of `id`.
    pub(crate) fn of(id: &str) -> IdKey {
        let mut bytes = [0u8; 16];
        if id.len() == 22 && URL_SAFE_NO_PAD.decode_slice(id, &mut bytes) == Ok(16) {
            return IdKey(bytes);
        }
        let digest = Sha256::new_with_prefix(b"rocket_sqlite_sessions id\0")
            .chain_update(id)
            .finalize();
        bytes.copy_from_slice(&digest[..16]);
        IdKey(bytes)
    }
}

/// The 16-byte key under which a replay cache remembers `id` seen in
/// `scope` (a proof's `jti` under its key's thumbprint, a challenge under its
/// session): the first bytes of a SHA-256 of both, under `purpose` (which
/// ends in a NUL byte), so no two purposes or scopes share a key.
pub(crate) fn replay_key(purpose: &[u8], scope: &str, id: &str) -> [u8; 16] {
    let digest = Sha256::new_with_prefix(purpose)
        .chain_update(scope.as_bytes())
        .chain_update([0])
        .chain_update(id.as_bytes())
        .finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// Whether `a` and `b` are equal, in time independent of where they differ
/// (only of their lengths).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

/// A key for one purpose, derived from a signing secret, so that no other use
/// ever holds the JWT key itself.
pub(crate) fn derive_key(signing_secret: &[u8], purpose: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_secret).expect("HMAC takes any key length");
    mac.update(purpose);
    mac.finalize().into_bytes().into()
}

/// A key id derived from the key, so tokens name the key that signed them without
/// the configuration having to.
pub(crate) fn derived_key_id(secret: &[u8]) -> String {
    let digest = Sha256::new_with_prefix(b"rocket_sqlite_sessions kid\0")
        .chain_update(secret)
        .finalize();
    URL_SAFE_NO_PAD.encode(&digest[..9])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_128_bits() {
        assert_eq!(URL_SAFE_NO_PAD.decode(random_id()).unwrap().len(), 16);
    }

    #[test]
    fn an_id_key_is_the_id_decoded_or_its_digest() {
        let id = random_id();
        assert_eq!(IdKey::of(&id).0.to_vec(), URL_SAFE_NO_PAD.decode(&id).unwrap());
        // Not one of ours: a digest, the same each time, distinct per id.
        assert_eq!(IdKey::of("fixture-jti-00000001"), IdKey::of("fixture-jti-00000001"));
        assert_ne!(IdKey::of("fixture-jti-00000001"), IdKey::of("fixture-jti-00000002"));
        // 22 characters whose last one carries bits past the 16 bytes: not
        // canonical, so not decoded (two spellings never share the decoding).
        let canonical = URL_SAFE_NO_PAD.encode([0u8; 16]);
        let mut other = canonical.clone();
        other.replace_range(21.., "B");
        assert_ne!(IdKey::of(&canonical), IdKey::of(&other));
        assert_eq!(IdKey::of(&canonical).0, [0u8; 16]);
    }
}
