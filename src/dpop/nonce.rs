//! Server nonces (RFC 9449 §8): a value the server gives in `DPoP-Nonce`
//! and a proof must carry, so a proof cannot be made in advance. Stateless:
//! a nonce is its time bucket and an HMAC of it, under a key derived from
//! the signing key, so every process with the same keys makes and accepts
//! the same nonces, and nothing is stored. A nonce is good in its bucket
//! and the next one: one to two windows.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Makes and checks nonces.
pub(crate) struct Nonces {
    key: Hmac<Sha256>,
    /// Seconds per bucket.
    period: i64,
}

impl Nonces {
    /// Nonces under `key`, a new one every `period` seconds (at least 1).
    pub(crate) fn new(key: &[u8; 32], period: i64) -> Self {
        Nonces {
            key: Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length"),
            period: period.max(1),
        }
    }

    fn mac(&self, bucket: i64) -> [u8; 16] {
        let tag = self
            .key
            .clone()
            .chain_update(bucket.to_be_bytes())
            .finalize()
            .into_bytes();
        let mut cut = [0u8; 16];
        cut.copy_from_slice(&tag[..16]);
        cut
    }

    /// The nonce to give at `now`.
    pub(crate) fn current(&self, now: i64) -> String {
        let bucket = now.div_euclid(self.period);
        let mut bytes = [0u8; 24];
        bytes[..8].copy_from_slice(&bucket.to_be_bytes());
        bytes[8..].copy_from_slice(&self.mac(bucket));
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Whether `nonce` is one this server gave in the current bucket or the
    /// one before.
    pub(crate) fn accepts(&self, nonce: &str, now: i64) -> bool {
        let mut bytes = [0u8; 24];
        if nonce.len() != 32 || URL_SAFE_NO_PAD.decode_slice(nonce, &mut bytes) != Ok(24) {
            return false;
        }
        let bucket = i64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
        let current = now.div_euclid(self.period);
        (bucket == current || bucket == current - 1)
            && self
                .key
                .clone()
                .chain_update(bucket.to_be_bytes())
                .verify_truncated_left(&bytes[8..])
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_good_for_its_bucket_and_the_next_under_its_key_only() {
        let nonces = Nonces::new(&[7; 32], 60);
        let given = nonces.current(1_000);
        assert!(nonces.accepts(&given, 1_000) && nonces.accepts(&given, 1_079));
        assert!(!nonces.accepts(&given, 1_140), "two buckets later");
        assert!(!Nonces::new(&[8; 32], 60).accepts(&given, 1_000), "another key");
        let mut forged = given.clone().into_bytes();
        forged[31] = if forged[31] == b'A' { b'B' } else { b'A' };
        assert!(!nonces.accepts(std::str::from_utf8(&forged).unwrap(), 1_000));
        assert!(!nonces.accepts("short", 1_000));
    }
}
