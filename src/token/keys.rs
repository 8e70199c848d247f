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

use crate::crypto::derived_key_id;

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

    /// What signs with this key, made once.
    pub(crate) fn signer(&self) -> Signer {
        match &self.material {
            Material::Hmac => Signer::Hmac(hmac_key(&self.secret)),
            Material::Ed25519(key) => Signer::Ed25519(key.clone()),
            Material::P256(key) => Signer::P256(key.clone()),
        }
    }

    /// What verifies with this key, made once.
    pub(crate) fn verifier(&self) -> Verifier {
        match &self.material {
            Material::Hmac => Verifier::Hmac(hmac_key(&self.secret)),
            Material::Ed25519(key) => Verifier::Ed25519(key.verifying_key()),
            Material::P256(key) => Verifier::P256(*key.verifying_key()),
        }
    }
}

/// An HS256 key, its inner and outer SHA-256 states computed once.
///
/// ring's HMAC rather than RustCrypto's: its SHA-256 is assembly that uses
/// the CPU's SHA extensions where there are some and vector instructions
/// where there are none (a Raspberry Pi 4, or valgrind), where it takes 0.64
/// of the instructions of `sha2`'s portable code for an access token
/// (13,400 against 20,900, `scripts/instructions.sh`'s profiles).
fn hmac_key(secret: &[u8]) -> ring::hmac::Key {
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret)
}

/// A key ready to sign.
pub(crate) enum Signer {
    Hmac(ring::hmac::Key),
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

impl Signer {
    /// The JWS signature of `message` (RFC 7515 §5.1; ES256 as `r || s`, RFC
    /// 7518 §3.4, with the low `s` of the two valid ones: see
    /// [`Verifier::verify`]).
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Signer::Hmac(key) => ring::hmac::sign(key, message).as_ref().to_vec(),
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
    Hmac(ring::hmac::Key),
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

    /// Whether `signature` (the decoded JWS signature) is this key's over
    /// `message`; HMACs compared in constant time. Each token has one valid
    /// signature: Ed25519 is checked strictly (`verify_strict`: no small-order
    /// keys, a canonical `S`), and of ECDSA's two valid signatures `(r, s)`
    /// and `(r, n − s)` only the low-`s` one, which this crate signs, is
    /// accepted.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Verifier::Hmac(key) => ring::hmac::verify(key, message, signature).is_ok(),
            Verifier::Ed25519(key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify_strict(message, &signature).is_ok()),
            Verifier::P256(key) => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|signature| signature.normalize_s() == signature && key.verify(message, &signature).is_ok()),
        }
    }
}
