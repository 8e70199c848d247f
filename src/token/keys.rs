//! Signing keys: HS256 secrets, and Ed25519 (`EdDSA`) or P-256 (`ES256`)
//! private keys. The algorithm comes from the key, and each `kid` verifies
//! with its own algorithm only: a token whose header names another algorithm
//! is refused before any signature check, so no algorithm confusion is
//! possible (an HS256 token "keyed" with a public key, RFC 8725 §2.1).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use serde_json::{json, Value};
use signature::{Signer as _, Verifier as _};

use crate::crypto::{constant_time_eq, derived_key_id, encode_base64url_into};

/// The algorithm a key signs and verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyAlgorithm {
    /// HMAC-SHA-256, a shared secret: whoever verifies can also sign.
    Hs256,
    /// Ed25519 (RFC 8037).
    EdDsa,
    /// ECDSA on P-256 with SHA-256 (RFC 7518 §3.4).
    Es256,
}

impl KeyAlgorithm {
    /// The `alg` header value.
    pub(crate) fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::Hs256 => "HS256",
            KeyAlgorithm::EdDsa => "EdDSA",
            KeyAlgorithm::Es256 => "ES256",
        }
    }
}

/// What a key is made of.
#[derive(Clone)]
enum Material {
    Hmac,
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

/// A validated key and its id.
#[derive(Clone)]
pub(crate) struct SigningKey {
    pub kid: String,
    /// The secret the crate's other keys (CSRF, refresh tags, throttling) are
    /// derived from: the HMAC secret, or the private key's PKCS#8 encoding.
    pub secret: Vec<u8>,
    material: Material,
}

impl SigningKey {
    /// The one key of `secret`, with an id derived from it.
    pub(crate) fn derived(secret: Vec<u8>) -> Self {
        SigningKey {
            kid: derived_key_id(&secret),
            secret,
            material: Material::Hmac,
        }
    }

    /// An HS256 key.
    pub(crate) fn hmac(kid: String, secret: Vec<u8>) -> Self {
        SigningKey {
            kid,
            secret,
            material: Material::Hmac,
        }
    }

    /// An Ed25519 or P-256 key from its PKCS#8 PEM (`-----BEGIN PRIVATE
    /// KEY-----`). The message never quotes the key.
    pub(crate) fn from_pem(kid: String, pem: &str) -> Result<Self, String> {
        use p256::pkcs8::EncodePrivateKey as _;
        let pem = pem.trim();
        if !pem.starts_with("-----BEGIN PRIVATE KEY-----") {
            return Err(
                "must be a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`); make one with \
                 `openssl genpkey -algorithm ed25519` or \
                 `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`"
                    .into(),
            );
        }
        if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            let secret = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&key)
                .map_err(|_| "cannot be encoded again".to_string())?
                .as_bytes()
                .to_vec();
            return Ok(SigningKey {
                kid,
                secret,
                material: Material::Ed25519(key),
            });
        }
        if let Ok(key) = p256::SecretKey::from_pkcs8_pem(pem) {
            let secret = key
                .to_pkcs8_der()
                .map_err(|_| "cannot be encoded again".to_string())?
                .as_bytes()
                .to_vec();
            return Ok(SigningKey {
                kid,
                secret,
                material: Material::P256(key.into()),
            });
        }
        Err(
            "is not an Ed25519 or P-256 private key (PKCS#8, unencrypted); RSA and other curves are not \
             supported"
                .into(),
        )
    }

    /// Its algorithm.
    pub(crate) fn algorithm(&self) -> KeyAlgorithm {
        match self.material {
            Material::Hmac => KeyAlgorithm::Hs256,
            Material::Ed25519(_) => KeyAlgorithm::EdDsa,
            Material::P256(_) => KeyAlgorithm::Es256,
        }
    }

    /// Its public key as a JWK (RFC 7517), with `kid`, `alg` and `use`;
    /// `None` for an HS256 secret, which has no public part.
    pub(crate) fn public_jwk(&self) -> Option<Value> {
        match &self.material {
            Material::Hmac => None,
            Material::Ed25519(key) => Some(json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
                "kid": self.kid,
                "alg": "EdDSA",
                "use": "sig",
            })),
            Material::P256(key) => {
                let point = key.verifying_key().to_sec1_point(false);
                Some(json!({
                    "kty": "EC",
                    "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(point.x()?),
                    "y": URL_SAFE_NO_PAD.encode(point.y()?),
                    "kid": self.kid,
                    "alg": "ES256",
                    "use": "sig",
                }))
            }
        }
    }

    /// What signs with this key, made once; `prefix` is how every message
    /// it signs starts (the tokens' header segment and its dot).
    pub(crate) fn signer(&self, prefix: &[u8]) -> Signer {
        match &self.material {
            Material::Hmac => Signer::Hmac(Box::new(Hs256::new(&self.secret, prefix))),
            Material::Ed25519(key) => Signer::Ed25519(key.clone()),
            Material::P256(key) => Signer::P256(key.clone()),
        }
    }

    /// What verifies with this key, made once; `prefix` is how the
    /// messages it verifies usually start (any other message verifies too).
    pub(crate) fn verifier(&self, prefix: &[u8]) -> Verifier {
        match &self.material {
            Material::Hmac => Verifier::Hmac(Box::new(Hs256::new(&self.secret, prefix))),
            Material::Ed25519(key) => Verifier::Ed25519(key.verifying_key()),
            Material::P256(key) => Verifier::P256(*key.verifying_key()),
        }
    }
}

/// An HS256 key: HMAC-SHA-256 (RFC 2104) with the inner and outer hashes'
/// states after the padded key computed once, and the inner one after the
/// whole 64-byte blocks of a prefix every token of the key starts with (its
/// header segment: 71 bytes, so one block of a token's five or six is
/// computed once for all). The same bits as any HMAC-SHA-256 (tested
/// against ring's), in a sixth fewer compressions.
///
/// SHA-256 is ring's: assembly that uses the CPU's SHA extensions where
/// there are some and vector instructions where there are none (a Raspberry
/// Pi 4, or valgrind), where it takes 0.64 of the instructions of `sha2`'s
/// portable code (`scripts/instructions.sh`'s profiles).
pub(crate) struct Hs256 {
    /// The inner hash after `key ^ ipad`.
    inner: ring::digest::Context,
    /// The outer hash after `key ^ opad`.
    outer: ring::digest::Context,
    /// The prefix's whole blocks, and the inner hash after them.
    prefix: Vec<u8>,
    inner_after_prefix: ring::digest::Context,
}

impl Hs256 {
    const BLOCK: usize = 64;

    fn new(secret: &[u8], prefix: &[u8]) -> Self {
        let mut key = [0u8; Self::BLOCK];
        if secret.len() > Self::BLOCK {
            let digest = ring::digest::digest(&ring::digest::SHA256, secret);
            key[..digest.as_ref().len()].copy_from_slice(digest.as_ref());
        } else {
            key[..secret.len()].copy_from_slice(secret);
        }
        let padded = |pad: u8| {
            let mut context = ring::digest::Context::new(&ring::digest::SHA256);
            context.update(&key.map(|byte| byte ^ pad));
            context
        };
        let inner = padded(0x36);
        let prefix = prefix[..prefix.len() / Self::BLOCK * Self::BLOCK].to_vec();
        let mut inner_after_prefix = inner.clone();
        inner_after_prefix.update(&prefix);
        Hs256 {
            inner,
            outer: padded(0x5c),
            prefix,
            inner_after_prefix,
        }
    }

    /// The HMAC of `message`.
    fn mac(&self, message: &[u8]) -> ring::digest::Digest {
        let (mut inner, rest) = match message.strip_prefix(self.prefix.as_slice()) {
            Some(rest) => (self.inner_after_prefix.clone(), rest),
            None => (self.inner.clone(), message),
        };
        inner.update(rest);
        let inner_digest = inner.finish();
        let mut outer = self.outer.clone();
        outer.update(inner_digest.as_ref());
        outer.finish()
    }
}

/// A key ready to sign.
pub(crate) enum Signer {
    Hmac(Box<Hs256>),
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

impl Signer {
    /// The JWS signature of `message` (RFC 7515 §5.1; ES256 as `r || s`, RFC
    /// 7518 §3.4, with the low `s` of the two valid ones: see
    /// [`Verifier::verify`]).
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Signer::Hmac(key) => key.mac(message).as_ref().to_vec(),
            Signer::Ed25519(key) => key.sign(message).to_bytes().to_vec(),
            Signer::P256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                signature.normalize_s().to_bytes().to_vec()
            }
        }
    }
}

/// A key ready to verify, for one algorithm.
pub(crate) enum Verifier {
    Hmac(Box<Hs256>),
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
}

impl Verifier {
    /// The one `alg` this key verifies.
    pub(crate) fn algorithm(&self) -> KeyAlgorithm {
        match self {
            Verifier::Hmac(_) => KeyAlgorithm::Hs256,
            Verifier::Ed25519(_) => KeyAlgorithm::EdDsa,
            Verifier::P256(_) => KeyAlgorithm::Es256,
        }
    }

    /// Whether `signature`, a JWS signature segment (base64url), is this
    /// key's over `message`. An HMAC is encoded and compared with the segment
    /// in constant time (base64url without padding spells 32 bytes one way
    /// only, and a decoder refuses every other spelling, so this is the
    /// comparison of the bytes, without decoding). Each token has one valid
    /// signature: Ed25519 is checked strictly (`verify_strict`: no
    /// small-order keys, a canonical `S`), and of ECDSA's two valid
    /// signatures `(r, s)` and `(r, n − s)` only the low-`s` one, which this
    /// crate signs, is accepted.
    pub(crate) fn verify(&self, message: &[u8], signature: &str) -> bool {
        let mut bytes = [0u8; 64];
        match self {
            Verifier::Hmac(key) => {
                let mut encoded = [0u8; 43];
                encode_base64url_into(key.mac(message).as_ref(), &mut encoded);
                constant_time_eq(&encoded, signature.as_bytes())
            }
            Verifier::Ed25519(key) => URL_SAFE_NO_PAD
                .decode_slice(signature, &mut bytes)
                .ok()
                .and_then(|len| ed25519_dalek::Signature::from_slice(&bytes[..len]).ok())
                .is_some_and(|signature| key.verify_strict(message, &signature).is_ok()),
            Verifier::P256(key) => URL_SAFE_NO_PAD
                .decode_slice(signature, &mut bytes)
                .ok()
                .and_then(|len| p256::ecdsa::Signature::from_slice(&bytes[..len]).ok())
                .is_some_and(|signature| {
                    signature.normalize_s() == signature && key.verify(message, &signature).is_ok()
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hs256_is_hmac_sha256_with_or_without_the_prefix() {
        let prefix = b"eyJhbGciOiJIUzI1NiIsImtpZCI6Ii0wMDVTNHMwUjZfeSIsInR5cCI6ImF0K2p3dCJ9.".as_slice();
        for secret in [&[7u8; 32][..], &[9u8; 64][..], &[3u8; 65][..], &b"k"[..], &[][..]] {
            let ours = Hs256::new(secret, prefix);
            let reference = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
            let long = [prefix, &[b'x'; 300][..]].concat();
            for message in [
                &long[..],
                &long[..64],
                &long[..63],
                &long[..65],
                prefix,
                b"",
                b"other".as_slice(),
            ] {
                assert_eq!(
                    ours.mac(message).as_ref(),
                    ring::hmac::sign(&reference, message).as_ref(),
                    "secret of {} bytes, message of {}",
                    secret.len(),
                    message.len()
                );
            }
        }
    }

    #[test]
    fn hs256_verifies_its_own_signature_only() {
        let key = SigningKey::derived(vec![5; 32]);
        let (signer, verifier) = (key.signer(b"prefix."), key.verifier(b"prefix."));
        let signature = signer.sign(b"prefix.claims");
        let encoded = URL_SAFE_NO_PAD.encode(&signature);
        assert!(verifier.verify(b"prefix.claims", &encoded));
        assert!(!verifier.verify(b"prefix.claimz", &encoded));
        assert!(!verifier.verify(b"prefix.claims", &URL_SAFE_NO_PAD.encode(&signature[..31])));
        assert!(!verifier.verify(b"prefix.claims", &format!("{encoded}A")));
        assert!(!verifier.verify(b"prefix.claims", &format!("{encoded}=")));
        // The same 32 bytes with bits set past them: not the one spelling.
        let last = encoded.chars().last().unwrap();
        let other = (last as u8 + 1) as char;
        if URL_SAFE_NO_PAD.decode(format!("{}{other}", &encoded[..42])).is_err() {
            assert!(!verifier.verify(b"prefix.claims", &format!("{}{other}", &encoded[..42])));
        }
    }
}
