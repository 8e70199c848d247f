//! Checking a DPoP proof (RFC 9449 §4.3): its form, header and key, its
//! signature, then its claims against the request. What it proves is the
//! key's thumbprint (RFC 7638); the caller compares that with the session's
//! and remembers the proof ([`super::replay`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{DpopSettings, ProofError};
use crate::crypto::replay_key;
use crate::jwk::{ClientAlgorithm, ClientJwsHeader, ClientKey, CompactJws, ReadKey};

/// The `typ` of a DPoP proof.
const PROOF_TYPE: &str = "dpop+jwt";
/// Longer proofs are refused before any decoding: a proof with a P-256 key,
/// an `ath` and a nonce is about 700 bytes.
pub(crate) const MAX_PROOF_LEN: usize = 2048;
/// The longest `jti` accepted.
const MAX_JTI_LEN: usize = 256;

/// The request a proof must be for.
pub(crate) struct ProofTarget<'a> {
    /// The request's method, as sent (`GET`, `POST`).
    pub method: &'a str,
    /// The request's URL without query or fragment, as the server sees it:
    /// `scheme://authority/path`.
    pub url: &'a str,
    /// At a resource: the access token the proof must name (`ath`).
    pub access_token: Option<&'a str>,
}

/// A proof that passed every check but the replay and binding ones.
#[derive(Debug, Clone)]
pub(crate) struct CheckedProof {
    /// The key's RFC 7638 SHA-256 thumbprint, base64url.
    pub thumbprint: String,
    /// The key under which the replay cache remembers the proof.
    pub replay_key: [u8; 16],
    /// When the proof stops being accepted (its `iat` + the window): it is
    /// remembered until then.
    pub remember_until: i64,
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    ath: Option<String>,
    nonce: Option<String>,
}

/// Checks `proof` (the `DPoP` header's value) for `target` at `now`: form,
/// header, key, signature, then `htm`, `htu`, `iat`, `ath` and, with
/// nonces on, `nonce` (by `nonce_ok`). Replay and binding are the caller's.
pub(crate) fn check(
    proof: &str,
    target: &ProofTarget<'_>,
    settings: &DpopSettings,
    now: i64,
    nonce_ok: impl Fn(&str) -> bool,
) -> Result<CheckedProof, ProofError> {
    let jws = CompactJws::split(proof, MAX_PROOF_LEN).ok_or(ProofError::Malformed)?;
    let header: ClientJwsHeader<'_> = serde_json::from_slice(&jws.header).map_err(|_| ProofError::Header)?;
    let (Some(PROOF_TYPE), Some(alg), Some(jwk), None) = (header.typ, header.alg, header.jwk, header.crit) else {
        return Err(ProofError::Header);
    };
    let accepted: Vec<ClientAlgorithm> = settings.algorithms.iter().map(|alg| alg.client()).collect();
    let algorithm = ClientAlgorithm::named(alg, &accepted).ok_or(ProofError::Algorithm)?;
    let ReadKey { key, thumbprint, .. } = ClientKey::read(&jwk, algorithm).ok_or(ProofError::Key)?;
    // ES256 signatures with a high `s` are accepted: browsers' WebCrypto
    // makes them, and a proof's twin gains nothing (its `jti` is the same).
    if !key.verify(jws.signed.as_bytes(), &jws.signature) {
        return Err(ProofError::Signature);
    }
    let claims: ProofClaims = serde_json::from_slice(&jws.payload).map_err(|_| ProofError::Claims)?;
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(ProofError::Claims);
    }
    if claims.htm != target.method {
        return Err(ProofError::Method);
    }
    if normalised_url(&claims.htu).is_none_or(|htu| Some(htu) != normalised_url(target.url)) {
        return Err(ProofError::Url);
    }
    if claims.iat < now.saturating_sub(settings.window) || claims.iat > now.saturating_add(settings.leeway) {
        return Err(ProofError::Time);
    }
    if let Some(token) = target.access_token {
        if claims.ath.as_deref() != Some(access_token_hash(token).as_str()) {
            return Err(ProofError::AccessTokenHash);
        }
    }
    if settings.nonces && !claims.nonce.as_deref().is_some_and(&nonce_ok) {
        return Err(ProofError::NonceNeeded);
    }
    let replay_key = replay_key(b"rocket_sqlite_sessions dpop jti\0", &thumbprint, &claims.jti);
    Ok(CheckedProof {
        thumbprint,
        replay_key,
        remember_until: claims.iat.saturating_add(settings.window).saturating_add(1),
    })
}

/// `ath`: base64url(SHA-256(the access token)) (RFC 9449 §4.2).
pub(crate) fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// An `http` or `https` URL as compared (RFC 9449 §4.3 step 9, RFC 3986
/// §6.2.2–6.2.3): without query or fragment, scheme and host in lower case,
/// the scheme's default port dropped, an empty path as `/`. `None` for
/// anything else.
pub(crate) fn normalised_url(url: &str) -> Option<String> {
    let url = url.split(['?', '#']).next()?;
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    let (authority, path) = rest.find('/').map_or((rest, "/"), |slash| rest.split_at(slash));
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_compare_without_query_fragment_case_or_default_port() {
        for (a, b) in [
            ("https://Example.COM:443/token?x=1#f", "https://example.com/token"),
            ("HTTP://example.com:80", "http://example.com/"),
            (
                "http://127.0.0.1:8000/auth/refresh",
                "http://127.0.0.1:8000/auth/refresh?",
            ),
        ] {
            assert_eq!(normalised_url(a), normalised_url(b), "{a} {b}");
            assert!(normalised_url(a).is_some());
        }
        for (a, b) in [
            ("https://example.com/token", "http://example.com/token"),
            ("https://example.com:8443/token", "https://example.com/token"),
            ("https://example.com/Token", "https://example.com/token"),
        ] {
            assert_ne!(normalised_url(a), normalised_url(b), "{a} {b}");
        }
        for bad in [
            "ftp://example.com/",
            "example.com/token",
            "https:///x",
            "https://user@example.com/",
        ] {
            assert_eq!(normalised_url(bad), None, "{bad}");
        }
    }
}
