//! Access-token claims and keys; refresh-token generation and hashing.

use std::collections::HashSet;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::TryRngCore as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::Settings;

/// The one algorithm that signs and verifies access tokens (RFC 8725 §3.1).
const ALGORITHM: Algorithm = Algorithm::HS256;
/// The `typ` header of an access token (RFC 9068 §2.1), which tells it apart from
/// any other JWT signed with the same key.
const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// Longer tokens are refused before any decoding.
pub(crate) const MAX_ACCESS_TOKEN_LEN: usize = 4096;
/// A refresh token is 32 random bytes, base64url without padding: 43 characters.
const REFRESH_TOKEN_BYTES: usize = 32;
const REFRESH_TOKEN_LEN: usize = 43;
/// Claim names the crate sets itself; app claims may not use them.
pub(crate) const RESERVED_CLAIMS: [&str; 10] = [
    "sub",
    "sid",
    "jti",
    "iat",
    "exp",
    "auth_time",
    "nbf",
    "iss",
    "aud",
    "typ",
];

/// `N` bytes from the operating system's CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random number generator failed");
    bytes
}

/// A fresh 128-bit identifier, base64url: session ids and `jti`s.
pub(crate) fn random_id() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<16>())
}

/// An opaque refresh token: what the client holds. Only its [`hash`](Self::hash)
/// is ever stored.
pub(crate) struct RefreshToken(String);

impl RefreshToken {
    pub(crate) fn generate() -> Self {
        RefreshToken(URL_SAFE_NO_PAD.encode(random_bytes::<REFRESH_TOKEN_BYTES>()))
    }

    /// The SHA-256 of a presented token, or `None` when it cannot be one of ours
    /// (wrong length or alphabet), so garbage never reaches the store.
    pub(crate) fn hash_presented(presented: &str) -> Option<[u8; 32]> {
        if presented.len() != REFRESH_TOKEN_LEN {
            return None;
        }
        let decoded = URL_SAFE_NO_PAD.decode(presented).ok()?;
        (decoded.len() == REFRESH_TOKEN_BYTES).then(|| hash(presented))
    }

    pub(crate) fn hash(&self) -> [u8; 32] {
        hash(&self.0)
    }

    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

// A refresh token must never be printed by accident.
impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AccessClaims {
    pub sub: String,
    pub sid: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    /// When the user logged in (OpenID Connect's `auth_time`); rotation keeps it.
    pub auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// The app's own claims (roles, tenant, …), given at login.
    #[serde(flatten)]
    pub app: Map<String, Value>,
}

/// Why a token was refused: for a debug log line, never for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    Missing,
    Malformed,
    TooLong,
    Header,
    UnknownKey,
    Signature,
    Expired,
    NotYetValid,
    Lifetime,
    Issuer,
    Audience,
    Revoked,
    Refresh,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rejection::Missing => "no bearer token",
            Rejection::Malformed => "malformed token",
            Rejection::TooLong => "token longer than the cap",
            Rejection::Header => "unexpected header (alg, typ or extensions)",
            Rejection::UnknownKey => "no configured key has this kid",
            Rejection::Signature => "bad signature or claims",
            Rejection::Expired => "expired",
            Rejection::NotYetValid => "not yet valid (nbf or iat in the future)",
            Rejection::Lifetime => "lifetime longer than access_ttl",
            Rejection::Issuer => "wrong issuer",
            Rejection::Audience => "wrong audience",
            Rejection::Revoked => "revoked session or blocklisted jti",
            Rejection::Refresh => "the refresh cookie was refused",
        })
    }
}

/// Signs access tokens with the first configured key and verifies them with the
/// key their `kid` names.
pub(crate) struct TokenCodec {
    signing_kid: String,
    encoding: EncodingKey,
    verifying: Vec<(String, DecodingKey)>,
    validation: Validation,
    issuer: Option<String>,
    audience: Option<String>,
    access_ttl: i64,
    leeway: i64,
}

impl TokenCodec {
    pub(crate) fn new(settings: &Settings) -> Self {
        let mut validation = Validation::new(ALGORITHM);
        // Time and audience checks run in `verify` against the crate's clock;
        // jsonwebtoken would read the system time.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::new();
        let signing = &settings.keys[0];
        TokenCodec {
            signing_kid: signing.kid.clone(),
            encoding: EncodingKey::from_secret(&signing.secret),
            verifying: settings
                .keys
                .iter()
                .map(|key| (key.kid.clone(), DecodingKey::from_secret(&key.secret)))
                .collect(),
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            access_ttl: settings.access_ttl,
            leeway: settings.leeway,
        }
    }

    pub(crate) fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    pub(crate) fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    pub(crate) fn sign(&self, claims: &AccessClaims) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(ALGORITHM);
        header.typ = Some(ACCESS_TOKEN_TYPE.into());
        header.kid = Some(self.signing_kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }

    /// Checks the token's form, header, signature and times. Revocation is the
    /// caller's business.
    pub(crate) fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, Rejection> {
        if token.len() > MAX_ACCESS_TOKEN_LEN {
            return Err(Rejection::TooLong);
        }
        let well_formed = token.split('.').count() == 3
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !well_formed {
            return Err(Rejection::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::Malformed)?;
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifying.iter().find(|(known, _)| known == kid))
            .map(|(_, key)| key)
            .ok_or(Rejection::UnknownKey)?;
        let header_ok = header.alg == ALGORITHM
            && header.typ.as_deref() == Some(ACCESS_TOKEN_TYPE)
            && header.crit.is_none()
            && header.jku.is_none()
            && header.jwk.is_none()
            && header.x5u.is_none()
            && header.x5c.is_none();
        if !header_ok {
            return Err(Rejection::Header);
        }
        let claims = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
            .map_err(|_| Rejection::Signature)?
            .claims;

        if now >= claims.exp.saturating_add(self.leeway) {
            return Err(Rejection::Expired);
        }
        let latest_start = now.saturating_add(self.leeway);
        if claims.iat > latest_start
            || claims.nbf.is_some_and(|nbf| nbf > latest_start)
            || claims.auth_time > claims.iat
        {
            return Err(Rejection::NotYetValid);
        }
        if claims.exp <= claims.iat || claims.exp - claims.iat > self.access_ttl {
            return Err(Rejection::Lifetime);
        }
        if self.issuer.is_some() && claims.iss != self.issuer {
            return Err(Rejection::Issuer);
        }
        if self.audience.is_some() && claims.aud != self.audience {
            return Err(Rejection::Audience);
        }
        Ok(claims)
    }
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
    fn refresh_tokens_are_43_chars_and_distinct() {
        let a = RefreshToken::generate().into_string();
        let b = RefreshToken::generate().into_string();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(RefreshToken::hash_presented(&a).is_some());
    }

    #[test]
    fn presented_garbage_is_not_hashed() {
        assert!(RefreshToken::hash_presented("").is_none());
        assert!(RefreshToken::hash_presented(&"a".repeat(44)).is_none());
        assert!(RefreshToken::hash_presented(&"!".repeat(43)).is_none());
        assert!(RefreshToken::hash_presented(&"é".repeat(43)).is_none());
    }

    #[test]
    fn ids_carry_128_bits() {
        assert_eq!(URL_SAFE_NO_PAD.decode(random_id()).unwrap().len(), 16);
    }
}
