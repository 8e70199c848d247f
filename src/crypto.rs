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
}
