//! A browser's signed answer to a DBSC challenge (`Secure-Session-Response`):
//! a JWT with `typ: dbsc+jwt`, signed with the session's key, whose `jti` is
//! the challenge. At registration it carries the new public key (as the
//! header's `jwk`, or as the `key` claim of earlier drafts).

use serde::Deserialize;

use crate::jwk::{ClientAlgorithm, ClientJwsHeader, ClientKey, CompactJws, Jwk, ReadKey};

/// The `typ` of an answer.
const ANSWER_TYPE: &str = "dbsc+jwt";
/// Longer answers are refused before any decoding: an RS256 answer with a
/// 4096-bit key is about 2 KB.
const MAX_ANSWER_LEN: usize = 4096;
/// The algorithms browsers sign with (the spec's: ES256, and RS256 where a
/// TPM has no elliptic curves).
pub(crate) const ALGORITHMS: [ClientAlgorithm; 2] = [ClientAlgorithm::Es256, ClientAlgorithm::Rs256];

#[derive(Deserialize)]
struct AnswerClaims {
    jti: String,
    key: Option<Jwk>,
}

/// Why an answer was refused: for a debug log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AnswerError {
    Malformed,
    Header,
    Key,
    Signature,
    Claims,
}

impl AnswerError {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            AnswerError::Malformed => "the DBSC answer is not a compact JWS",
            AnswerError::Header => "the DBSC answer's header is not typ dbsc+jwt with ES256 or RS256",
            AnswerError::Key => "the DBSC answer's key is not a valid public key of its algorithm",
            AnswerError::Signature => "the DBSC answer's signature does not verify",
            AnswerError::Claims => "the DBSC answer's claims are missing or mistyped",
        }
    }
}

/// A registration answer: the new key, checked to have signed it, and the
/// challenge it answers.
pub(crate) fn registration(answer: &str) -> Result<(ReadKey, String), AnswerError> {
    let (jws, algorithm, jwk) = opened(answer)?;
    let claims: AnswerClaims = serde_json::from_slice(&jws.payload).map_err(|_| AnswerError::Claims)?;
    let jwk = jwk.or(claims.key).ok_or(AnswerError::Key)?;
    let read = ClientKey::read(&jwk, algorithm).ok_or(AnswerError::Key)?;
    if !read.key.verify(jws.signed.as_bytes(), &jws.signature) {
        return Err(AnswerError::Signature);
    }
    Ok((read, claims.jti))
}

/// A refresh answer, signed by `key` (the session's): the challenge it
/// answers.
pub(crate) fn refresh(answer: &str, key: &ClientKey) -> Result<String, AnswerError> {
    let (jws, algorithm, _) = opened(answer)?;
    if algorithm != key.algorithm() {
        return Err(AnswerError::Header);
    }
    if !key.verify(jws.signed.as_bytes(), &jws.signature) {
        return Err(AnswerError::Signature);
    }
    let claims: AnswerClaims = serde_json::from_slice(&jws.payload).map_err(|_| AnswerError::Claims)?;
    Ok(claims.jti)
}

/// `answer` split and its header checked (`typ: dbsc+jwt`, no `crit`, an
/// `alg` browsers sign with): the algorithm, and the `jwk` the header may
/// carry.
fn opened(answer: &str) -> Result<(CompactJws<'_>, ClientAlgorithm, Option<Jwk>), AnswerError> {
    let jws = CompactJws::split(answer, MAX_ANSWER_LEN).ok_or(AnswerError::Malformed)?;
    let header: ClientJwsHeader<'_> = serde_json::from_slice(&jws.header).map_err(|_| AnswerError::Header)?;
    let (Some(ANSWER_TYPE), Some(alg), None) = (header.typ, header.alg, header.crit) else {
        return Err(AnswerError::Header);
    };
    let algorithm = ClientAlgorithm::named(alg, &ALGORITHMS).ok_or(AnswerError::Header)?;
    let jwk = header.jwk;
    Ok((jws, algorithm, jwk))
}
