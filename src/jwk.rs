//! Public keys that clients present as JWKs (RFC 7517) and sign with: a DPoP
//! client's (RFC 9449) and a browser's device-bound session key (DBSC). A key
//! is read for one algorithm, its private members refused, and named by its
//! RFC 7638 thumbprint, computed from the decoded key so that one key has one
//! thumbprint however its JWK was written.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::IgnoredAny;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use signature::Verifier as _;

/// The smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus accepted, in bits: bigger keys cost more to check
/// than any client needs.
const MAX_RSA_BITS: usize = 4096;

/// An algorithm a client signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAlgorithm {
    /// ECDSA on P-256 with SHA-256, `s` high or low (browsers' WebCrypto and
    /// TPMs make either).
    Es256,
    /// Ed25519, verified strictly.
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048 to 4096 bits.
    Rs256,
}

impl ClientAlgorithm {
    /// The algorithm an `alg` header names, among `accepted`.
    pub(crate) fn named(alg: &str, accepted: &[ClientAlgorithm]) -> Option<ClientAlgorithm> {
        accepted.iter().copied().find(|algorithm| algorithm.name() == alg)
    }

    /// The `alg` header value.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ClientAlgorithm::Es256 => "ES256",
            ClientAlgorithm::EdDsa => "EdDSA",
            ClientAlgorithm::Rs256 => "RS256",
        }
    }
}

/// A JWK as a client sends it: the members a public key needs, and private
/// members looked for by name, to be refused.
#[derive(Debug, Deserialize)]
pub(crate) struct Jwk {
    kty: String,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    d: Option<IgnoredAny>,
    k: Option<IgnoredAny>,
    p: Option<IgnoredAny>,
}

/// A client's public key, ready to verify.
#[derive(Clone)]
pub(crate) enum ClientKey {
    P256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
    Rsa(Box<rsa::pkcs1v15::VerifyingKey<sha2::Sha256>>),
}

/// A key read from a JWK: the key, its thumbprint, and the JWK of its
/// required members (what a store keeps to verify with later).
pub(crate) struct ReadKey {
    pub key: ClientKey,
    pub thumbprint: String,
    pub canonical: String,
}

impl ClientKey {
    /// The key of `jwk`, which must be of `algorithm`'s type; `None` for
    /// anything else (private members, bad coordinates, another type, an
    /// RSA modulus outside 2048–4096 bits).
    pub(crate) fn read(jwk: &Jwk, algorithm: ClientAlgorithm) -> Option<ReadKey> {
        if jwk.d.is_some() || jwk.k.is_some() || jwk.p.is_some() {
            return None;
        }
        let fixed = |value: &Option<String>| -> Option<[u8; 32]> {
            let mut bytes = [0u8; 32];
            (URL_SAFE_NO_PAD.decode_slice(value.as_deref()?, &mut bytes).ok()? == 32).then_some(bytes)
        };
        let (key, canonical) = match (algorithm, jwk.kty.as_str(), jwk.crv.as_deref()) {
            (ClientAlgorithm::Es256, "EC", Some("P-256")) => {
                let (x, y) = (fixed(&jwk.x)?, fixed(&jwk.y)?);
                let mut point = [4u8; 65];
                point[1..33].copy_from_slice(&x);
                point[33..].copy_from_slice(&y);
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).ok()?;
                let canonical = format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                    URL_SAFE_NO_PAD.encode(x),
                    URL_SAFE_NO_PAD.encode(y)
                );
                (ClientKey::P256(key), canonical)
            }
            (ClientAlgorithm::EdDsa, "OKP", Some("Ed25519")) => {
                let x = fixed(&jwk.x)?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&x).ok()?;
                if key.is_weak() {
                    return None;
                }
                let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, URL_SAFE_NO_PAD.encode(x));
                (ClientKey::Ed25519(key), canonical)
            }
            (ClientAlgorithm::Rs256, "RSA", None) => {
                let n = URL_SAFE_NO_PAD.decode(jwk.n.as_deref()?).ok()?;
                let e = URL_SAFE_NO_PAD.decode(jwk.e.as_deref()?).ok()?;
                // Canonical: no leading zero bytes.
                if n.first() == Some(&0) || e.first() == Some(&0) || e.len() > 8 {
                    return None;
                }
                let bits = n.len() * 8;
                if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                    return None;
                }
                let modulus = rsa::BoxedUint::from_be_slice(&n, bits as u32).ok()?;
                let exponent = rsa::BoxedUint::from_be_slice(&e, 64).ok()?;
                let public =
                    rsa::PublicKey::new_with_size_limits(modulus, exponent, MIN_RSA_BITS..=MAX_RSA_BITS).ok()?;
                let canonical = format!(
                    r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                    URL_SAFE_NO_PAD.encode(&e),
                    URL_SAFE_NO_PAD.encode(&n)
                );
                (
                    ClientKey::Rsa(Box::new(rsa::pkcs1v15::VerifyingKey::new(public))),
                    canonical,
                )
            }
            _ => return None,
        };
        Some(ReadKey {
            key,
            thumbprint: URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())),
            canonical,
        })
    }

    /// The key a store kept ([`ReadKey::canonical`]), for the algorithm its
    /// type signs with.
    pub(crate) fn from_canonical(canonical: &str) -> Option<ReadKey> {
        let jwk: Jwk = serde_json::from_str(canonical).ok()?;
        let algorithm = match jwk.kty.as_str() {
            "EC" => ClientAlgorithm::Es256,
            "OKP" => ClientAlgorithm::EdDsa,
            "RSA" => ClientAlgorithm::Rs256,
            _ => return None,
        };
        ClientKey::read(&jwk, algorithm)
    }

    /// The algorithm this key verifies.
    pub(crate) fn algorithm(&self) -> ClientAlgorithm {
        match self {
            ClientKey::P256(_) => ClientAlgorithm::Es256,
            ClientKey::Ed25519(_) => ClientAlgorithm::EdDsa,
            ClientKey::Rsa(_) => ClientAlgorithm::Rs256,
        }
    }

    /// Whether `signature` (a JWS signature, decoded) is this key's over
    /// `message`.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            ClientKey::P256(key) => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify(message, &signature).is_ok()),
            ClientKey::Ed25519(key) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify_strict(message, &signature).is_ok()),
            ClientKey::Rsa(key) => rsa::pkcs1v15::Signature::try_from(signature)
                .is_ok_and(|signature| key.verify(message, &signature).is_ok()),
        }
    }
}

/// The protected header of a JWS a client signs with its own key (a DPoP
/// proof, a DBSC answer): what the checks read of it. A `crit` (extensions
/// this server would have to understand) is read so that it can be refused
/// (RFC 7515 §4.1.11).
#[derive(Deserialize)]
pub(crate) struct ClientJwsHeader<'a> {
    pub typ: Option<&'a str>,
    pub alg: Option<&'a str>,
    pub jwk: Option<Jwk>,
    pub crit: Option<IgnoredAny>,
}

/// A compact JWS split and its header and payload decoded, or `None` when it
/// is not three segments of canonical, unpadded base64url, or longer than
/// `max_len`.
pub(crate) struct CompactJws<'a> {
    pub header: Vec<u8>,
    pub payload: Vec<u8>,
    /// What the signature covers: `header.payload`.
    pub signed: &'a str,
    pub signature: Vec<u8>,
}

impl<'a> CompactJws<'a> {
    pub(crate) fn split(jws: &'a str, max_len: usize) -> Option<CompactJws<'a>> {
        if jws.len() > max_len
            || !jws
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return None;
        }
        let mut segments = jws.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (segments.next(), segments.next(), segments.next(), segments.next())
        else {
            return None;
        };
        Some(CompactJws {
            header: URL_SAFE_NO_PAD.decode(header).ok()?,
            payload: URL_SAFE_NO_PAD.decode(payload).ok()?,
            signed: &jws[..jws.len() - signature.len() - 1],
            signature: URL_SAFE_NO_PAD.decode(signature).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ed25519_thumbprint_is_rfc_8037s_example() {
        // RFC 8037 §A.2 and §A.3.
        let jwk: Jwk =
            serde_json::from_str(r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#)
                .unwrap();
        let read = ClientKey::read(&jwk, ClientAlgorithm::EdDsa).unwrap();
        assert_eq!(read.thumbprint, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        assert!(
            ClientKey::read(&jwk, ClientAlgorithm::Es256).is_none(),
            "another algorithm's key"
        );
    }

    #[test]
    fn an_rsa_thumbprint_is_rfc_7638s_example() {
        // RFC 7638 §3.1.
        let jwk: Jwk = serde_json::from_str(
            r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        )
        .unwrap();
        let read = ClientKey::read(&jwk, ClientAlgorithm::Rs256).unwrap();
        assert_eq!(read.thumbprint, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        let again = ClientKey::from_canonical(&read.canonical).unwrap();
        assert_eq!(again.thumbprint, read.thumbprint);
    }

    #[test]
    fn private_members_and_small_rsa_keys_are_refused() {
        let private: Jwk = serde_json::from_str(
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"x"}"#,
        )
        .unwrap();
        assert!(ClientKey::read(&private, ClientAlgorithm::EdDsa).is_none());
        let small = format!(
            r#"{{"kty":"RSA","n":"{}","e":"AQAB"}}"#,
            URL_SAFE_NO_PAD.encode([0xc5u8; 128])
        );
        let small: Jwk = serde_json::from_str(&small).unwrap();
        assert!(ClientKey::read(&small, ClientAlgorithm::Rs256).is_none(), "1024 bits");
    }
}
