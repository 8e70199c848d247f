//! Access-token claims and keys; refresh-token generation and hashing.

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey};
use rand::TryRngCore as _;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::Settings;

/// The one algorithm that signs and verifies access tokens (RFC 8725 §3.1).
const ALGORITHM: Algorithm = Algorithm::HS256;
const ALGORITHM_NAME: &str = "HS256";
/// The `typ` header of an access token (RFC 9068 §2.1), which tells it apart from
/// any other JWT signed with the same key.
const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// The latest time a claim may hold, 9999-12-31T23:59:59Z: claims outside
/// 0..=this are refused, so no arithmetic on them can overflow.
const LATEST_TIME: i64 = 253_402_300_799;
/// Longer tokens are refused before any decoding.
pub(crate) const MAX_ACCESS_TOKEN_LEN: usize = 4096;
/// The bytes of a refresh token: session id, generation, secret, tag.
const SESSION_ID_BYTES: usize = 16;
const GENERATION_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;
const TAG_BYTES: usize = 16;
const TAGGED_BYTES: usize = SESSION_ID_BYTES + GENERATION_BYTES + SECRET_BYTES;
const REFRESH_TOKEN_BYTES: usize = TAGGED_BYTES + TAG_BYTES;
/// A refresh token's length in base64url without padding.
pub(crate) const REFRESH_TOKEN_LEN: usize = REFRESH_TOKEN_BYTES * 4 / 3;
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

/// A key for one purpose, derived from a signing secret, so that no other use
/// ever holds the JWT key itself.
pub(crate) fn derive_key(signing_secret: &[u8], purpose: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_secret).expect("HMAC takes any key length");
    mac.update(purpose);
    mac.finalize().into_bytes().into()
}

/// The claims of an access token.
///
/// Deserialised in one pass (see the `Deserialize` impl below): a duplicated
/// claim, a missing or mistyped registered claim is an error.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AccessClaims {
    pub sub: String,
    pub sid: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    /// When the user logged in (OpenID Connect's `auth_time`); rotation keeps it.
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// The app's own claims (roles, tenant, …), given at login.
    #[serde(flatten)]
    pub app: Map<String, Value>,
}

// By hand rather than derived: `#[serde(flatten)]` buffers every claim before
// sorting them out, which cost more than the signature check on the guard's
// path (benches/guard.rs). One pass sorts registered claims from app claims.
impl<'de> Deserialize<'de> for AccessClaims {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ClaimsVisitor)
    }
}

struct ClaimsVisitor;

impl<'de> Visitor<'de> for ClaimsVisitor {
    type Value = AccessClaims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of JWT claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AccessClaims, A::Error> {
        fn set<T, E: de::Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
            match slot.replace(value) {
                Some(_) => Err(E::duplicate_field(name)),
                None => Ok(()),
            }
        }
        fn take<T, E: de::Error>(slot: Option<T>, name: &'static str) -> Result<T, E> {
            slot.ok_or_else(|| E::missing_field(name))
        }
        let (mut sub, mut sid, mut jti) = (None, None, None);
        let (mut iat, mut exp, mut auth_time, mut nbf) = (None, None, None, None);
        let (mut iss, mut aud) = (None::<Option<String>>, None::<Option<String>>);
        let mut app = Map::new();
        while let Some(ClaimName(name)) = map.next_key()? {
            match &*name {
                "sub" => set(&mut sub, map.next_value::<String>()?, "sub")?,
                "sid" => set(&mut sid, map.next_value::<String>()?, "sid")?,
                "jti" => set(&mut jti, map.next_value::<String>()?, "jti")?,
                "iat" => set(&mut iat, map.next_value::<i64>()?, "iat")?,
                "exp" => set(&mut exp, map.next_value::<i64>()?, "exp")?,
                "auth_time" => set(&mut auth_time, map.next_value::<i64>()?, "auth_time")?,
                "nbf" => set(&mut nbf, map.next_value::<i64>()?, "nbf")?,
                "iss" => set(&mut iss, map.next_value()?, "iss")?,
                "aud" => set(&mut aud, map.next_value()?, "aud")?,
                _ => {
                    let value = map.next_value::<Value>()?;
                    if app.insert(name.into_owned(), value).is_some() {
                        return Err(de::Error::custom("a duplicated claim"));
                    }
                }
            }
        }
        Ok(AccessClaims {
            sub: take(sub, "sub")?,
            sid: take(sid, "sid")?,
            jti: take(jti, "jti")?,
            iat: take(iat, "iat")?,
            exp: take(exp, "exp")?,
            auth_time: take(auth_time, "auth_time")?,
            nbf,
            iss: iss.flatten(),
            aud: aud.flatten(),
            app,
        })
    }
}

/// A claim's name, borrowed from the token when it has no escapes.
struct ClaimName<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for ClaimName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = ClaimName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a claim name")
            }
            fn visit_borrowed_str<E>(self, name: &'de str) -> Result<ClaimName<'de>, E> {
                Ok(ClaimName(Cow::Borrowed(name)))
            }
            fn visit_str<E>(self, name: &str) -> Result<ClaimName<'de>, E> {
                Ok(ClaimName(Cow::Owned(name.to_string())))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// The JOSE header of an access token: these members and no other, so `crit`,
/// `jku`, `jwk`, `x5u`, `x5c` and anything else unknown is refused (RFC 8725
/// §3.1, RFC 7515 §4.1.11).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessHeader<'a> {
    alg: &'a str,
    typ: Option<&'a str>,
    kid: Option<&'a str>,
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
    Claims,
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
            Rejection::Signature => "bad signature",
            Rejection::Claims => "missing, mistyped or duplicated claims",
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
    /// `base64url(header).`: every token this codec signs has the same header.
    signing_prefix: String,
    /// The signing key, keyed once; each signature clones it.
    signing_mac: Hmac<Sha256>,
    verifying: Vec<(String, DecodingKey)>,
    issuer: Option<String>,
    audience: Option<String>,
    access_ttl: i64,
    leeway: i64,
}

impl TokenCodec {
    pub(crate) fn new(settings: &Settings) -> Self {
        let signing = &settings.keys[0];
        let header = serde_json::json!({ "alg": ALGORITHM_NAME, "typ": ACCESS_TOKEN_TYPE, "kid": signing.kid });
        TokenCodec {
            signing_prefix: format!("{}.", URL_SAFE_NO_PAD.encode(header.to_string())),
            signing_mac: Hmac::<Sha256>::new_from_slice(&signing.secret).expect("HMAC takes any key length"),
            verifying: settings
                .keys
                .iter()
                .map(|key| (key.kid.clone(), DecodingKey::from_secret(&key.secret)))
                .collect(),
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

    /// Signs `claims` (HS256, RFC 7515 §7.1): the constant header, the claims,
    /// the HMAC of both. (`jsonwebtoken::encode` serialises the header and keys
    /// the HMAC anew for every token: a refresh's cost showed it.)
    pub(crate) fn sign(&self, claims: &AccessClaims) -> Result<String, serde_json::Error> {
        let payload = serde_json::to_vec(claims)?;
        let mut token = String::with_capacity(self.signing_prefix.len() + payload.len() * 4 / 3 + 48);
        token.push_str(&self.signing_prefix);
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = self
            .signing_mac
            .clone()
            .chain_update(token.as_bytes())
            .finalize()
            .into_bytes();
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }

    /// Checks the token's form, header, signature and times. Revocation is the
    /// caller's business.
    ///
    /// One pass over the compact JWS (RFC 7515 §7.1): the header is decoded once,
    /// the signature checked by jsonwebtoken before any claim is read, the claims
    /// deserialised once. (`jsonwebtoken::decode` decodes the header twice and
    /// the claims twice, and cost the guard 1.4 times the signature check.)
    pub(crate) fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, Rejection> {
        if token.len() > MAX_ACCESS_TOKEN_LEN {
            return Err(Rejection::TooLong);
        }
        let mut segments = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (segments.next(), segments.next(), segments.next(), segments.next())
        else {
            return Err(Rejection::Malformed);
        };
        // base64url without padding only: no '=', no '+' or '/'.
        if !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(Rejection::Malformed);
        }
        let header_json = URL_SAFE_NO_PAD.decode(header).map_err(|_| Rejection::Malformed)?;
        let header: AccessHeader<'_> = serde_json::from_slice(&header_json).map_err(|_| Rejection::Header)?;
        let key = header
            .kid
            .and_then(|kid| self.verifying.iter().find(|(known, _)| known == kid))
            .map(|(_, key)| key)
            .ok_or(Rejection::UnknownKey)?;
        if header.alg != ALGORITHM_NAME || header.typ != Some(ACCESS_TOKEN_TYPE) {
            return Err(Rejection::Header);
        }
        // What the signature covers: `header.payload`.
        let message = &token[..token.len() - signature.len() - 1];
        match jsonwebtoken::crypto::verify(signature, message.as_bytes(), key, ALGORITHM) {
            Ok(true) => {}
            Ok(false) | Err(_) => return Err(Rejection::Signature),
        }
        let payload_json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| Rejection::Malformed)?;
        let claims: AccessClaims = serde_json::from_slice(&payload_json).map_err(|_| Rejection::Claims)?;

        // Every time within 1970..=9999: what follows cannot overflow.
        let times = [Some(claims.iat), Some(claims.exp), Some(claims.auth_time), claims.nbf];
        if !times
            .into_iter()
            .flatten()
            .all(|time| (0..=LATEST_TIME).contains(&time))
        {
            return Err(Rejection::Claims);
        }
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
        if claims.exp <= claims.iat
            || claims
                .exp
                .checked_sub(claims.iat)
                .is_none_or(|life| life > self.access_ttl)
        {
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

    const CLAIMS: &str = r#""sub":"u","sid":"s","jti":"j","iat":1,"exp":2,"auth_time":1"#;

    #[test]
    fn claims_sort_registered_from_app_claims_in_one_pass() {
        let claims: AccessClaims =
            serde_json::from_str(&format!(r#"{{{CLAIMS},"ro\u006ces":["a"],"iss":null}}"#)).unwrap();
        assert_eq!((claims.sub.as_str(), claims.exp), ("u", 2));
        assert_eq!(claims.app["roles"], serde_json::json!(["a"]));
        assert!(claims.iss.is_none() && claims.app.len() == 1);
    }

    #[test]
    fn duplicated_missing_or_mistyped_claims_are_errors() {
        for bad in [
            format!(r#"{{{CLAIMS},"roles":1,"roles":2}}"#),
            format!(r#"{{{CLAIMS},"s\u0069d":"t"}}"#),
            CLAIMS.replace(r#","exp":2"#, "").replacen("", "{", 1) + "}",
            CLAIMS.replace(r#""iat":1"#, r#""iat":"1""#).replacen("", "{", 1) + "}",
            "[]".to_string(),
        ] {
            assert!(serde_json::from_str::<AccessClaims>(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_carry_128_bits() {
        assert_eq!(URL_SAFE_NO_PAD.decode(random_id()).unwrap().len(), 16);
    }
}
