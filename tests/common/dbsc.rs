//! A browser's side of Device Bound Session Credentials, written from the
//! W3C draft for the tests: a device key (P-256 for ES256, or RSA for
//! RS256), the signed answers to challenges (`dbsc+jwt`), and a cookie jar
//! that honours each cookie's `Path`, as a browser does.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rocket::http::Cookie;
use rocket::local::asynchronous::{LocalRequest, LocalResponse};
use serde_json::{json, Value};

use super::dpop::DpopKey;

/// An RSA test key, public in this repository (`openssl genpkey -algorithm RSA`).
const RSA_PEM: &str = r#"-----BEGIN PRIVATE KEY-----
MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQC7Ra+M8Ix4eCuJ
8w2aAagLdRsaMXsMEmZg0na8pwhqY2XmAdBLxOqV8tlIXQyAuG8ICPf7fLLpeJQZ
d+7yXR2gHC9FiTX3ZCzoDGx+5/Cq2wu2dhwNTeW926zm2Q6pUlnEAXgLadcqM6NM
9HAqsThKIUq3EXSJ9xm7HV5ICQDonpWKXny+9NspwBS/kL++IVLIVAB+ZjsW52Vr
CAcR2SoRS3SNyyzE2mb2MR3LP1pojdQyfWlfDfOAlUEUJFrjIdnLXarxQ8whDsSS
8Uy425j83JMSwivrGYTr6NQU0S+LW6KGTyY5p3SK4/frl9r9zSioIdk+RYw0j7PJ
c4ivJ+XNAgMBAAECggEAJL5C9+G4heh6DmpwSD+782eKJkUAEfnIOYYBwvj41zri
YtMHRd6AcmRACokrK1REgKyVzzODvPgqAqc77DSl2+S7x6Zovr3aa7sITIwAdd1d
enLJBTk78tjXn0GGNWWRdDofjgm5rC+OgkpReabk1vKaQLn9hhZD56kW9wZBNeKV
kUDPvD+K+t+IbjPWsm/13ZPfLWuYwpEvMKtW4Q6kjFfNFGHq2RFFmG9RHwDOnwgR
4KqbKVYc4UhFQHz8pOts/rauYb2WWD0BHhuL3bLveI4YjdCh8WS4onDnoKMSPIQb
aQlsSwbYuJp9IAQR2QQ8IL0Gw3Aio6beJZI4jAXuQQKBgQDkLDsY19P5JPZqE3Hf
+zA0lxPiswQZDACosG0WFvgsEpZBRx5odKd3d3PKDcGhTxlOwxTpJGj5nSnwEN0K
7zNCkTHpDr0DPvyGLSfUoRisW46b80+VvPiPmf/kdepGeLTj82CNv9HZ64zJ/F5r
zJ9qxj/9KMmFAiYIwMkKfMhFbQKBgQDSHIAqnQ0rHcX3r4eWZrhfCQePTMQ7JQNZ
7vIIRo12Ocpx2zxn4ESkL2TZsQyluKJDlNjwwYXDsrgBWgmKvvuLEeveEVAz0+tB
O386m+GuLPweAcT+rpu3eCoOmSoLz/WTW8wd2O1PiV3k6Hs022Oc1XxfnQ6RHGIg
aJwyKM7F4QKBgQCe6d9O8iKEByZHwrswz/VG62HCJgPYne9njVisZdr6dweG901K
WtS3884FD4eoHTr3DA9oQR+LmdY3iMcqcmY1GoK0Wrtxo1Ck8pYnFPvmLu4n11G6
bB6BhTQfnbBI3JC/oiXBE7PIHrGzi70HP0BYUTMH0nxn0pNCzWI3l6i0EQKBgQCQ
JeGAWtMH+5sv/IrHEp33BVjcZUxTT2dnMdl2+ABhVfCgAEsG8QPmqGVGPINyxqL8
Pog/VGWTB2/Z7Y2SVMh6dscdST9+7yr9S/ZTnVJNjqtBYvFl0SEf1B72ePoxtHDE
sjvtVkApSxLR0vWEI+fJV2XGqxetUo23sk1G1FxXwQKBgQCPTHl+upFGUa8uWKdn
A05Dywh8Hqrwuk+bdL4Psj1pqecqp3T8w27pAOirO0HK0A8aPKILeAQqejMKFM0D
xlugDrZYMCIenWF81koNDTgPypc97mWxA99lGBaPxdaq5X1tESIU0s/80Gzjmc8B
ON/zfvsTNoyVHR5WW1uwdxDEEg==
-----END PRIVATE KEY-----
"#;

/// A device key: P-256, signing as a DPoP client's does, or RSA.
pub enum DeviceKey {
    Es256(DpopKey),
    Rs256(Box<rsa::pkcs1v15::SigningKey<sha2::Sha256>>, Value),
}

impl DeviceKey {
    /// A new P-256 key.
    pub fn es256() -> DeviceKey {
        DeviceKey::Es256(DpopKey::es256())
    }

    /// The repository's RSA test key.
    pub fn rs256() -> DeviceKey {
        use rsa::pkcs8::DecodePrivateKey as _;
        use rsa::traits::PublicKeyParts as _;
        let private = rsa::PrivateKey::from_pkcs8_pem(RSA_PEM).expect("the test RSA key");
        let public = private.to_public_key();
        let jwk = json!({
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(public.n().to_be_bytes()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_be_bytes().iter().skip_while(|b| **b == 0).copied().collect::<Vec<u8>>()),
        });
        DeviceKey::Rs256(Box::new(rsa::pkcs1v15::SigningKey::new(private)), jwk)
    }

    /// The public JWK.
    pub fn jwk(&self) -> Value {
        match self {
            DeviceKey::Es256(key) => key.jwk(),
            DeviceKey::Rs256(_, jwk) => jwk.clone(),
        }
    }

    fn alg(&self) -> &'static str {
        match self {
            DeviceKey::Es256(_) => "ES256",
            DeviceKey::Rs256(..) => "RS256",
        }
    }

    /// A compact JWS of `header` and `payload` signed by this key.
    pub fn sign(&self, header: &Value, payload: &Value) -> String {
        let key = match self {
            DeviceKey::Es256(key) => return key.sign(header, payload),
            DeviceKey::Rs256(key, _) => key,
        };
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        use rsa::signature::{SignatureEncoding as _, Signer as _};
        format!(
            "{message}.{}",
            URL_SAFE_NO_PAD.encode(key.sign(message.as_bytes()).to_vec())
        )
    }

    /// The registration answer to `challenge`: the public key in the header.
    pub fn registration(&self, challenge: &str, audience: &str) -> String {
        let header = json!({ "alg": self.alg(), "typ": "dbsc+jwt", "jwk": self.jwk() });
        self.sign(&header, &json!({ "jti": challenge, "aud": audience, "iat": 0 }))
    }

    /// A refresh answer to `challenge`.
    pub fn refresh(&self, challenge: &str, audience: &str) -> String {
        let header = json!({ "alg": self.alg(), "typ": "dbsc+jwt" });
        self.sign(&header, &json!({ "jti": challenge, "aud": audience, "iat": 0 }))
    }
}

/// The parameters of a `Secure-Session-Registration` header:
/// `(ES256 RS256);path="…";challenge="…"`.
pub fn registration_offer(response: &LocalResponse<'_>) -> Option<(String, String)> {
    let value = response.headers().get_one("Secure-Session-Registration")?;
    let parameter = |name: &str| {
        value.split(';').find_map(|part| {
            let (key, value) = part.trim().split_once('=')?;
            (key == name).then(|| value.trim_matches('"').to_string())
        })
    };
    Some((parameter("path")?, parameter("challenge")?))
}

/// The challenge and session id of a `Secure-Session-Challenge` header:
/// `"…";id="…"`.
pub fn challenge_of(response: &LocalResponse<'_>) -> Option<(String, String)> {
    let value = response.headers().get_one("Secure-Session-Challenge")?;
    let (challenge, id) = value.split_once(";id=")?;
    Some((
        challenge.trim_matches('"').to_string(),
        id.trim_matches('"').to_string(),
    ))
}

/// A browser's cookies: each sent only to paths under its own.
#[derive(Default, Clone)]
pub struct Jar {
    cookies: Vec<(String, String, String)>,
}

impl Jar {
    /// Takes in the `Set-Cookie` headers of `response`.
    pub fn take(&mut self, response: &LocalResponse<'_>) {
        for header in response.headers().get("Set-Cookie") {
            let cookie = Cookie::parse(header.to_string()).expect("a cookie");
            let path = cookie.path().unwrap_or("/").to_string();
            self.cookies
                .retain(|(name, _, at)| !(name == cookie.name() && *at == path));
            let expired = cookie.max_age().is_some_and(|age| age.is_zero()) || cookie.value().is_empty();
            if !expired {
                self.cookies
                    .push((cookie.name().to_string(), cookie.value().to_string(), path));
            }
        }
    }

    /// The value of cookie `name`, whatever its path.
    pub fn get(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, value, _)| value.clone())
    }

    /// Sets cookie `name` for `path` (a thief's hand).
    pub fn put(&mut self, name: &str, value: &str, path: &str) {
        self.cookies.retain(|(n, _, at)| !(n == name && at == path));
        self.cookies
            .push((name.to_string(), value.to_string(), path.to_string()));
    }

    /// The cookies a request to `path` carries.
    pub fn for_path(&self, path: &str) -> Vec<(String, String)> {
        self.cookies
            .iter()
            .filter(|(_, _, at)| at == "/" || path == at || path.starts_with(&format!("{}/", at.trim_end_matches('/'))))
            .map(|(name, value, _)| (name.clone(), value.clone()))
            .collect()
    }

    /// `request` to `path` with the cookies for it.
    pub fn attach<'c>(&self, request: LocalRequest<'c>, path: &str) -> LocalRequest<'c> {
        request.cookies(
            self.for_path(path)
                .into_iter()
                .map(|(name, value)| Cookie::new(name, value))
                .collect::<Vec<_>>(),
        )
    }
}
