//! A DPoP client's key and proofs (RFC 9449 §4), made as a client makes
//! them, for the tests.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use rocket::http::Header;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The host the tests' requests name (`Host`), so proofs name it too.
pub const HOST: &str = "app.test";

/// `http://app.test<path>`: the URL a proof names for `path`.
pub fn url(path: &str) -> String {
    format!("http://{HOST}{path}")
}

/// The `Host` header of the tests' requests.
pub fn host() -> Header<'static> {
    Header::new("Host", HOST)
}

/// A client's DPoP key: P-256 (ES256) or Ed25519 (EdDSA).
pub enum DpopKey {
    Es256(p256::ecdsa::SigningKey),
    EdDsa(ed25519_dalek::SigningKey),
}

/// What a proof claims, each part changeable.
pub struct Claims<'a> {
    pub method: &'a str,
    pub url: String,
    pub iat: i64,
    pub access_token: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub jti: String,
}

impl DpopKey {
    /// A new P-256 key.
    pub fn es256() -> DpopKey {
        loop {
            if let Ok(key) = p256::ecdsa::SigningKey::from_slice(&rand::random::<[u8; 32]>()) {
                return DpopKey::Es256(key);
            }
        }
    }

    /// A new Ed25519 key.
    pub fn eddsa() -> DpopKey {
        DpopKey::EdDsa(ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>()))
    }

    /// The public JWK.
    pub fn jwk(&self) -> Value {
        match self {
            DpopKey::Es256(key) => {
                let point = key.verifying_key().to_sec1_point(false);
                json!({
                    "kty": "EC", "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                    "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
                })
            }
            DpopKey::EdDsa(key) => json!({
                "kty": "OKP", "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
            }),
        }
    }

    /// The RFC 7638 thumbprint, from the JWK's required members in order.
    pub fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let members = match self {
            DpopKey::Es256(_) => format!(r#"{{"crv":"P-256","kty":"EC","x":{},"y":{}}}"#, jwk["x"], jwk["y"]),
            DpopKey::EdDsa(_) => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":{}}}"#, jwk["x"]),
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(members.as_bytes()))
    }

    fn alg(&self) -> &'static str {
        match self {
            DpopKey::Es256(_) => "ES256",
            DpopKey::EdDsa(_) => "EdDSA",
        }
    }

    /// Signs `header` and `payload` as a compact JWS.
    pub fn sign(&self, header: &Value, payload: &Value) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let signature = match self {
            DpopKey::Es256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message.as_bytes());
                signature.to_bytes().to_vec()
            }
            DpopKey::EdDsa(key) => {
                use ed25519_dalek::Signer as _;
                key.sign(message.as_bytes()).to_bytes().to_vec()
            }
        };
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The claims of a proof for `method` on `path` at `iat`, a fresh `jti`.
    pub fn claims<'a>(&self, method: &'a str, path: &str, iat: i64) -> Claims<'a> {
        Claims {
            method,
            url: url(path),
            iat,
            access_token: None,
            nonce: None,
            jti: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
        }
    }

    /// A proof of `claims`.
    pub fn proof_of(&self, claims: &Claims<'_>) -> String {
        let header = json!({ "typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk() });
        let mut payload = json!({ "jti": claims.jti, "htm": claims.method, "htu": claims.url, "iat": claims.iat });
        if let Some(token) = claims.access_token {
            payload["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes())));
        }
        if let Some(nonce) = claims.nonce {
            payload["nonce"] = json!(nonce);
        }
        self.sign(&header, &payload)
    }

    /// A proof for `method` on `path` at `iat` (with `ath` for
    /// `access_token`).
    pub fn proof(&self, method: &str, path: &str, iat: i64, access_token: Option<&str>) -> String {
        let mut claims = self.claims(method, path, iat);
        claims.access_token = access_token;
        self.proof_of(&claims)
    }
}

/// The `DPoP` header carrying `proof`.
pub fn dpop(proof: String) -> Header<'static> {
    Header::new("DPoP", proof)
}

/// `Authorization: DPoP <token>`.
pub fn dpop_authorization(token: &str) -> Header<'static> {
    Header::new("Authorization", format!("DPoP {token}"))
}

/// The claims of a JWT, unverified.
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}
