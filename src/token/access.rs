//! Access tokens: JWTs (HS256, EdDSA or ES256, as the key is), signed and
//! verified in one pass (their claims: [`super::claims`]).

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

pub(crate) use super::claims::{stored_claims_are_plain, AccessClaims, Confirmation, RESERVED_CLAIMS};
use super::keys::{Signer, SigningKey, Verifier};
use super::verified::{Kept, VerifiedTokens};
use crate::crypto::{decode_base64url, encode_base64url};
use crate::user::AuthUser;

/// The `typ` header of an access token (RFC 9068 §2.1), which tells it apart from
/// any other JWT signed with the same key.
const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// The latest time a claim may hold, 9999-12-31T23:59:59Z: claims outside
/// 0..=this are refused, so no arithmetic on them can overflow.
const LATEST_TIME: i64 = 253_402_300_799;
/// Longer tokens are refused before any decoding.
pub(crate) const MAX_ACCESS_TOKEN_LEN: usize = 4096;
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
    /// A DPoP-bound token presented without the `DPoP` scheme, or an unbound
    /// one with it.
    Binding,
    /// The `Bearer` scheme where `dpop = "required"`.
    DpopRequired,
    /// The DPoP proof failed a check (logged with the reason).
    DpopProof,
    /// The DPoP proof lacks a current server nonce.
    DpopNonce,
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
            Rejection::Binding => "a DPoP-bound token without the DPoP scheme, or an unbound one with it",
            Rejection::DpopRequired => "a bearer token where dpop = \"required\"",
            Rejection::DpopProof => "the DPoP proof was refused",
            Rejection::DpopNonce => "the DPoP proof lacks a current server nonce",
        })
    }
}

/// What an access token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub(crate) struct AccessRules {
    /// The `iss` claim to set and require, when given.
    pub issuer: Option<String>,
    /// The `aud` claim to set and require, when given.
    pub audience: Option<String>,
    /// The longest lifetime (`exp - iat`) a token may have, in seconds.
    pub access_ttl: i64,
    /// Clock-skew allowance for `exp`, `nbf` and `iat`, in seconds.
    pub leeway: i64,
}

/// Signs access tokens with the first configured key and verifies them with the
/// key their `kid` names.
pub(crate) struct TokenCodec {
    /// `base64url(header).`: every token this codec signs has the same header.
    signing_prefix: String,
    /// The signing key, made once (an HMAC keyed once, each signature clones
    /// it).
    signer: Signer,
    /// Each key's id and verifier: a `kid` verifies with its own algorithm
    /// only.
    verifying: Vec<VerifyingKey>,
    rules: AccessRules,
    /// Tokens that passed the whole check, with their claims.
    verified: VerifiedTokens,
}

impl TokenCodec {
    /// A codec signing with `keys[0]` and verifying with every key.
    pub(crate) fn new(keys: &[SigningKey], rules: AccessRules) -> Self {
        let signing = &keys[0];
        let signing_prefix = format!("{}.", header_segment(signing));
        TokenCodec {
            signer: signing.signer(signing_prefix.as_bytes()),
            signing_prefix,
            verifying: keys
                .iter()
                .map(|key| {
                    let header = header_segment(key);
                    VerifyingKey {
                        kid: key.kid.clone(),
                        verifier: key.verifier(format!("{header}.").as_bytes()),
                        header,
                    }
                })
                .collect(),
            rules,
            verified: VerifiedTokens::new(),
        }
    }

    /// The rules tokens of this codec follow.
    pub(crate) fn rules(&self) -> &AccessRules {
        &self.rules
    }

    /// Signs `claims` (RFC 7515 §7.1): the constant header, the claims, the
    /// signature of both with the first key. (`jsonwebtoken::encode` serialises the header and keys
    /// the HMAC anew for every token: a refresh's cost showed it.)
    /// `stored_app`: app claims as one JSON object's text, copied in after
    /// those of `claims` (see [`AccessClaims::to_json`]).
    pub(crate) fn sign(&self, claims: &AccessClaims, stored_app: Option<&str>) -> Result<String, serde_json::Error> {
        let payload = claims.to_json(stored_app)?;
        let mut token = Vec::with_capacity(self.signing_prefix.len() + payload.len() * 4 / 3 + 90);
        token.extend_from_slice(self.signing_prefix.as_bytes());
        encode_base64url(&payload, &mut token);
        let signature = self.signer.sign(&token);
        token.push(b'.');
        encode_base64url(&signature, &mut token);
        Ok(String::from_utf8(token).expect("a header segment and base64url are ASCII"))
    }

    /// Checks the token's form, header, signature and times. Revocation is the
    /// caller's business.
    ///
    /// A token that passed before is found among the verified tokens
    /// (`super::verified`): only its times are checked again, against `now`,
    /// as below. Any other is checked in full, and kept there if it passes.
    /// The kept token comes with the claims (`None` for one too long to
    /// keep).
    pub(crate) fn verify(&self, token: &str, now: i64) -> Result<(Admitted, Option<Kept>), Rejection> {
        if let Some(kept) = self.verified.find(token) {
            let user = kept.user();
            self.check_times(
                Times {
                    iat: user.issued_at,
                    exp: user.expires_at,
                    nbf: kept.nbf(),
                    auth_time: user.authenticated_at,
                },
                now,
            )?;
            let admitted = Admitted {
                user: Arc::clone(user),
                cnf: kept.cnf().clone(),
            };
            return Ok((admitted, Some(kept)));
        }
        let claims = self.verify_in_full(token, now)?;
        let (nbf, cnf) = (claims.nbf, claims.cnf.clone());
        let user = Arc::new(claims.into_user());
        let kept = self.verified.keep(token, Arc::clone(&user), nbf, cnf.clone());
        Ok((Admitted { user, cnf }, kept))
    }

    /// The whole check of a token not seen before.
    ///
    /// One pass over the compact JWS (RFC 7515 §7.1): the header is decoded once,
    /// the signature checked with the `kid`'s own algorithm before any claim
    /// is read (a header naming another algorithm is refused first), the claims
    /// deserialised once. (`jsonwebtoken::decode` decodes the header twice and
    /// the claims twice, and cost the guard 1.4 times the signature check.)
    fn verify_in_full(&self, token: &str, now: i64) -> Result<AccessClaims, Rejection> {
        if token.len() > MAX_ACCESS_TOKEN_LEN {
            return Err(Rejection::TooLong);
        }
        // `header.payload.signature`, each segment base64url without padding
        // (no '=', '+' or '/'): the header is one of the keys' own, byte for
        // byte, or is decoded, as the signature and the claims are, by a
        // decoder that refuses anything else (a '.' too, and bits past the
        // last byte).
        let (message, signature) = token.rsplit_once('.').ok_or(Rejection::Malformed)?;
        let (key, payload) = match self.verifying.iter().find_map(|key| {
            let payload = message.strip_prefix(key.header.as_str())?.strip_prefix('.')?;
            Some((&key.verifier, payload))
        }) {
            Some(known) => known,
            None => {
                let (header, payload) = message.split_once('.').ok_or(Rejection::Malformed)?;
                (self.key_named_in(header)?, payload)
            }
        };
        if !key.verify(message.as_bytes(), signature) {
            return Err(Rejection::Signature);
        }
        // Decoded on the stack unless long (an allocation and its free are a
        // tenth of what a first-seen token costs besides its signature).
        let (mut on_stack, mut on_heap) = ([0u8; 768], Vec::new());
        let room = payload.len() / 4 * 3 + 2;
        let buffer = if room <= on_stack.len() {
            &mut on_stack[..]
        } else {
            on_heap.resize(room, 0);
            &mut on_heap[..]
        };
        let length = decode_base64url(payload.as_bytes(), buffer).ok_or(Rejection::Malformed)?;
        let payload_json = &buffer[..length];
        // One UTF-8 check of the whole, rather than one per string.
        let payload_json = std::str::from_utf8(payload_json).map_err(|_| Rejection::Claims)?;
        let claims: AccessClaims = serde_json::from_str(payload_json).map_err(|_| Rejection::Claims)?;

        // Every time within 1970..=9999: what follows cannot overflow.
        let times = [Some(claims.iat), Some(claims.exp), Some(claims.auth_time), claims.nbf];
        if !times
            .into_iter()
            .flatten()
            .all(|time| (0..=LATEST_TIME).contains(&time))
        {
            return Err(Rejection::Claims);
        }
        self.check_times(Times::of(&claims), now)?;
        if claims.exp <= claims.iat
            || claims
                .exp
                .checked_sub(claims.iat)
                .is_none_or(|life| life > self.rules.access_ttl)
        {
            return Err(Rejection::Lifetime);
        }
        if self.rules.issuer.is_some() && claims.iss != self.rules.issuer {
            return Err(Rejection::Issuer);
        }
        // RFC 7519 §4.1.3: a token naming an audience this server is not (or
        // any audience, when none is configured) is refused.
        if claims.aud != self.rules.audience {
            return Err(Rejection::Audience);
        }
        Ok(claims)
    }

    /// The key a header this codec did not write names, after the header's
    /// checks: decoded and parsed, its `kid` a configured key's, its `alg`
    /// that key's algorithm, its `typ` an access token's, nothing else in it.
    /// (A header of this codec's own is one of [`VerifyingKey::header`],
    /// compared byte for byte instead.)
    fn key_named_in(&self, header: &str) -> Result<&Verifier, Rejection> {
        let header_json = URL_SAFE_NO_PAD.decode(header).map_err(|_| Rejection::Malformed)?;
        let header: AccessHeader<'_> = serde_json::from_slice(&header_json).map_err(|_| Rejection::Header)?;
        let key = header
            .kid
            .and_then(|kid| self.verifying.iter().find(|key| key.kid == kid))
            .map(|key| &key.verifier)
            .ok_or(Rejection::UnknownKey)?;
        if header.alg != key.algorithm().name() || header.typ != Some(ACCESS_TOKEN_TYPE) {
            return Err(Rejection::Header);
        }
        Ok(key)
    }

    /// The checks of a token's claims that depend on the time: not expired
    /// (`exp`, with the leeway), not yet valid (`iat`, `nbf`, with the
    /// leeway; a login after the token was issued). The claims' times are
    /// within 1970..=9999 (checked before): nothing here overflows.
    fn check_times(&self, times: Times, now: i64) -> Result<(), Rejection> {
        if now >= times.exp.saturating_add(self.rules.leeway) {
            return Err(Rejection::Expired);
        }
        let latest_start = now.saturating_add(self.rules.leeway);
        if times.iat > latest_start || times.nbf.is_some_and(|nbf| nbf > latest_start) || times.auth_time > times.iat {
            return Err(Rejection::NotYetValid);
        }
        Ok(())
    }
}

/// A key tokens are verified with.
struct VerifyingKey {
    kid: String,
    /// The header segment (base64url) of the tokens this codec signs with
    /// the key: a token carrying it needs no header decoded or parsed.
    header: String,
    verifier: Verifier,
}

/// The header segment of the access tokens `key` signs: its `alg`, the
/// access token `typ`, its `kid`, in base64url.
fn header_segment(key: &SigningKey) -> String {
    let header = serde_json::json!({ "alg": key.algorithm().name(), "typ": ACCESS_TOKEN_TYPE, "kid": key.kid });
    URL_SAFE_NO_PAD.encode(header.to_string())
}

/// The times of a token's claims.
#[derive(Clone, Copy)]
struct Times {
    iat: i64,
    exp: i64,
    nbf: Option<i64>,
    auth_time: i64,
}

impl Times {
    fn of(claims: &AccessClaims) -> Times {
        Times {
            iat: claims.iat,
            exp: claims.exp,
            nbf: claims.nbf,
            auth_time: claims.auth_time,
        }
    }
}

/// A token that passed the check: the user it names, shared by every request
/// that presents the same token while the guard keeps it (not copied), and
/// its confirmation claim. Revocation is the caller's business.
pub(crate) struct Admitted {
    pub user: Arc<AuthUser>,
    pub cnf: Option<Confirmation>,
}

/// The scheme of an `Authorization` header that carries an access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `Bearer` (RFC 6750 §2.1).
    Bearer,
    /// `DPoP` (RFC 9449 §7.1): the request carries a proof too.
    Dpop,
}

/// The scheme and token of an `Authorization: Bearer <token>` or `DPoP
/// <token>` header value. Tokens in the query string or body are never read.
pub(crate) fn authorization_token(value: &str) -> Result<(Scheme, &str), Rejection> {
    let (scheme, token) = value.split_once(' ').ok_or(Rejection::Missing)?;
    let scheme = if scheme.eq_ignore_ascii_case("Bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("DPoP") {
        Scheme::Dpop
    } else {
        return Err(Rejection::Missing);
    };
    let token = token.trim_start_matches(' ');
    if token.is_empty() {
        return Err(Rejection::Missing);
    }
    Ok((scheme, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(keys: &[SigningKey]) -> TokenCodec {
        let rules = AccessRules {
            issuer: None,
            audience: None,
            access_ttl: 900,
            leeway: 0,
        };
        TokenCodec::new(keys, rules)
    }

    fn claims(app: serde_json::Map<String, serde_json::Value>) -> AccessClaims {
        AccessClaims {
            sub: "u".into(),
            sid: "s".into(),
            jti: crate::crypto::random_id(),
            iat: 1_000,
            exp: 1_900,
            auth_time: 1_000,
            nbf: None,
            iss: None,
            aud: None,
            cnf: None,
            app,
        }
    }

    #[test]
    fn short_and_long_claims_verify_and_a_changed_byte_does_not() {
        let codec = codec(&[SigningKey::derived(vec![1; 32])]);
        for size in [0, 700, 2000] {
            let mut app = serde_json::Map::new();
            app.insert("note".into(), "n".repeat(size).into());
            let token = codec.sign(&claims(app), None).unwrap();
            let (admitted, _) = codec.verify(&token, 1_100).expect("a token it signed");
            assert_eq!(admitted.user.claims["note"].as_str().map(str::len), Some(size));
            for at in [5, token.len() / 2, token.len() - 2] {
                let mut changed = token.clone().into_bytes();
                changed[at] = if changed[at] == b'A' { b'B' } else { b'A' };
                let changed = String::from_utf8(changed).unwrap();
                assert!(codec.verify_in_full(&changed, 1_100).is_err(), "byte {at} of {size}");
            }
        }
    }

    #[test]
    fn another_spelling_of_the_header_is_checked_in_full() {
        let key = SigningKey::derived(vec![1; 32]);
        let codec = codec(std::slice::from_ref(&key));
        let token = codec.sign(&claims(serde_json::Map::new()), None).unwrap();
        let (_, rest) = token.split_once('.').unwrap();
        let (payload, _) = rest.split_once('.').unwrap();
        let resign = |header: &serde_json::Value| {
            let message = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(header.to_string()));
            let signature = key.signer(b"").sign(message.as_bytes());
            format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
        };
        // The same members in another order: not the codec's own bytes, but valid.
        let reordered = format!(
            "{}.{payload}",
            URL_SAFE_NO_PAD.encode(format!(r#"{{"typ":"at+jwt","kid":"{}","alg":"HS256"}}"#, key.kid))
        );
        let signature = key.signer(b"").sign(reordered.as_bytes());
        let reordered = format!("{reordered}.{}", URL_SAFE_NO_PAD.encode(signature));
        assert!(codec.verify(&reordered, 1_100).is_ok());
        let with_jku = resign(&serde_json::json!({ "alg": "HS256", "typ": "at+jwt", "kid": key.kid, "jku": "x" }));
        assert_eq!(codec.verify(&with_jku, 1_100).err(), Some(Rejection::Header));
        let none = resign(&serde_json::json!({ "alg": "none", "typ": "at+jwt", "kid": key.kid }));
        assert_eq!(codec.verify(&none, 1_100).err(), Some(Rejection::Header));
        // Padding, or the other alphabet, in any segment.
        for bad in [
            format!("{token}="),
            token.replacen('.', "=.", 1),
            token.replace('-', "+"),
        ] {
            if bad != token {
                assert!(codec.verify(&bad, 1_100).is_err(), "{bad}");
            }
        }
    }
}
