//! DPoP (RFC 9449): sender-constrained tokens. A client proves, with each
//! request, that it holds the private key a session was bound to at login:
//! a short JWT (the proof) signed by that key over the request's method and
//! URL, and, at a resource, the access token's hash. The proof is checked
//! here ([`proof`]), its `jti` remembered until it is too old to be accepted
//! ([`replay`]), and server nonces made and checked ([`nonce`]). Whose
//! session is bound to which key is the service's business.

pub(crate) mod nonce;
pub(crate) mod proof;
pub(crate) mod replay;

use std::fmt;

use serde::Deserialize;

use crate::jwk::ClientAlgorithm;

/// Whether bearer clients may, or must, bind their sessions to a key with
/// DPoP (RFC 9449): the `dpop` key of `[sessions]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DpopMode {
    /// DPoP is not spoken: a `DPoP` header is ignored, the `DPoP`
    /// authorization scheme refused, and no session is bound.
    Off,
    /// A login or refresh request that carries a DPoP proof binds (or must
    /// match) its session's key; sessions signed in without one work as
    /// bearer sessions. A bound session's tokens work only with proofs by
    /// its key.
    Allowed,
    /// As `allowed`, and a request with an `Authorization` header must use
    /// the `DPoP` scheme (a bearer token is refused), and a refresh outside
    /// the cookies needs a proof. Browser sessions (cookies) are not
    /// affected.
    Required,
}

/// A signature algorithm a DPoP proof may use (`dpop_algorithms`): only
/// asymmetric ones, never `none` or an HMAC (RFC 9449 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub enum ProofAlgorithm {
    /// ECDSA on P-256 with SHA-256 (a JWK with `kty` `EC`, `crv` `P-256`).
    #[serde(rename = "ES256")]
    Es256,
    /// Ed25519 (a JWK with `kty` `OKP`, `crv` `Ed25519`).
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl ProofAlgorithm {
    /// The `alg` header value.
    pub(crate) fn name(self) -> &'static str {
        self.client().name()
    }

    /// The client key algorithm it is.
    pub(crate) fn client(self) -> ClientAlgorithm {
        match self {
            ProofAlgorithm::Es256 => ClientAlgorithm::Es256,
            ProofAlgorithm::EdDsa => ClientAlgorithm::EdDsa,
        }
    }
}

/// DPoP's settings, validated.
#[derive(Debug, Clone)]
pub(crate) struct DpopSettings {
    pub mode: DpopMode,
    /// The algorithms accepted, in the order `algs` lists them.
    pub algorithms: Vec<ProofAlgorithm>,
    /// How old a proof's `iat` may be, in seconds; a proof is remembered as
    /// long.
    pub window: i64,
    /// How far in the future a proof's `iat` may be (the clock-skew
    /// allowance, `leeway`).
    pub leeway: i64,
    /// Whether proofs must carry a server nonce (§8).
    pub nonces: bool,
    /// The most proofs remembered at once.
    pub replay_capacity: usize,
}

impl DpopSettings {
    /// The `algs` parameter of a `WWW-Authenticate: DPoP` challenge.
    pub(crate) fn algs(&self) -> String {
        let names: Vec<&str> = self.algorithms.iter().map(|alg| alg.name()).collect();
        names.join(" ")
    }
}

/// Why a proof was refused: for a debug log line, never for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProofError {
    /// More than one `DPoP` header, or one too long or not a compact JWS.
    Malformed,
    /// The header is not `typ: dpop+jwt` with an `alg` and a public `jwk`.
    Header,
    /// An algorithm not accepted, or a key of another type.
    Algorithm,
    /// The `jwk` is not a valid public key (or carries private parts).
    Key,
    Signature,
    /// A claim is missing or mistyped.
    Claims,
    /// `htm` is not the request's method.
    Method,
    /// `htu` is not the request's URL.
    Url,
    /// `iat` is outside the window.
    Time,
    /// `ath` is missing or not the access token's hash.
    AccessTokenHash,
    /// The key is not the one the session is bound to.
    WrongKey,
    /// This proof was accepted before.
    Replayed,
    /// No nonce, or one too old: the client retries with the one given.
    NonceNeeded,
    /// The replay cache is full: new proofs are refused until old ones age
    /// out.
    Full,
    /// A DPoP request while `dpop = "off"`, or none where one is required.
    NotAccepted,
}

impl ProofError {
    /// What failed, for a debug log line.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            ProofError::Malformed => "malformed DPoP proof (not one compact JWS in one header)",
            ProofError::Header => "DPoP proof header is not typ dpop+jwt with alg and a public jwk",
            ProofError::Algorithm => "DPoP proof algorithm not accepted, or not the key's",
            ProofError::Key => "DPoP proof jwk is not a valid public key",
            ProofError::Signature => "DPoP proof signature does not verify",
            ProofError::Claims => "DPoP proof claims missing or mistyped",
            ProofError::Method => "DPoP proof htm is not the request's method",
            ProofError::Url => "DPoP proof htu is not the request's URL",
            ProofError::Time => "DPoP proof iat outside the window",
            ProofError::AccessTokenHash => "DPoP proof ath missing or not the access token's hash",
            ProofError::WrongKey => "DPoP proof key is not the session's",
            ProofError::Replayed => "DPoP proof replayed",
            ProofError::NonceNeeded => "DPoP proof without a current server nonce",
            ProofError::Full => "DPoP replay cache full",
            ProofError::NotAccepted => "DPoP not accepted here (dpop = \"off\")",
        }
    }
}

impl fmt::Display for ProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}
