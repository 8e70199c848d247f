//! Strict access tokens: each rejection of RFC 8725 and RFC 7519 §4.1, one test
//! per case, with tokens forged by the test from its own copy of the key.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{assert_invalid_token, App};
use hmac::{Hmac, KeyInit, Mac};
use rocket::http::Status;
use serde_json::{json, Map, Value};
use sha2::Sha256;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.payload.signature` with HS256 over the exact JSON texts given.
fn sign_raw(header: &str, payload: &str, key: &[u8]) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(input.as_bytes());
    format!("{input}.{}", b64(&mac.finalize().into_bytes()))
}

/// A genuine token taken apart, ready to be changed and signed again.
struct Forge {
    app: App,
    header: Map<String, Value>,
    claims: Map<String, Value>,
}

impl Forge {
    async fn new() -> Forge {
        Forge::on(App::start().await).await
    }

    async fn on(app: App) -> Forge {
        let tokens = app.login("alice").await;
        let part = |n: usize| -> Map<String, Value> {
            let segment = tokens.access.split('.').nth(n).unwrap();
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
        };
        let forge = Forge {
            header: part(0),
            claims: part(1),
            app,
        };
        // The control: the unchanged forge passes, so a 401 below is the change's.
        assert_eq!(
            forge.status(&forge.token()).await,
            Status::Ok,
            "the unchanged forge is accepted"
        );
        forge
    }

    fn token(&self) -> String {
        self.token_with(&Value::Object(self.header.clone()), &Value::Object(self.claims.clone()))
    }

    fn token_with(&self, header: &Value, claims: &Value) -> String {
        sign_raw(&header.to_string(), &claims.to_string(), &self.app.secret())
    }

    fn with_claim(&self, name: &str, value: Value) -> String {
        let mut claims = self.claims.clone();
        claims.insert(name.into(), value);
        self.token_with(&Value::Object(self.header.clone()), &Value::Object(claims))
    }

    fn without_claim(&self, name: &str) -> String {
        let mut claims = self.claims.clone();
        assert!(claims.remove(name).is_some(), "the genuine token has {name}");
        self.token_with(&Value::Object(self.header.clone()), &Value::Object(claims))
    }

    fn with_header(&self, name: &str, value: Value) -> String {
        let mut header = self.header.clone();
        header.insert(name.into(), value);
        self.token_with(&Value::Object(header), &Value::Object(self.claims.clone()))
    }

    fn without_header(&self, name: &str) -> String {
        let mut header = self.header.clone();
        header.remove(name);
        self.token_with(&Value::Object(header), &Value::Object(self.claims.clone()))
    }

    fn claim(&self, name: &str) -> i64 {
        self.claims[name].as_i64().unwrap()
    }

    async fn status(&self, token: &str) -> Status {
        self.app.whoami_status(token).await
    }

    async fn refused(&self, token: &str) {
        assert_invalid_token(self.app.whoami(token).await).await;
    }
}

macro_rules! missing_claim_is_refused {
    ($($test:ident: $claim:literal),* $(,)?) => {$(
        #[rocket::async_test]
        async fn $test() {
            let forge = Forge::new().await;
            forge.refused(&forge.without_claim($claim)).await;
        }
    )*};
}

missing_claim_is_refused! {
    missing_exp_is_refused: "exp",
    missing_iat_is_refused: "iat",
    missing_sub_is_refused: "sub",
    missing_sid_is_refused: "sid",
    missing_jti_is_refused: "jti",
    missing_auth_time_is_refused: "auth_time",
}

macro_rules! mistyped_claim_is_refused {
    ($($test:ident: $claim:literal = $value:expr),* $(,)?) => {$(
        #[rocket::async_test]
        async fn $test() {
            let forge = Forge::new().await;
            forge.refused(&forge.with_claim($claim, $value)).await;
        }
    )*};
}

mistyped_claim_is_refused! {
    exp_as_a_string_is_refused: "exp" = json!("9999999999"),
    exp_as_a_float_is_refused: "exp" = json!(9999999999.5),
    iat_as_a_string_is_refused: "iat" = json!("0"),
    sub_as_a_number_is_refused: "sub" = json!(42),
    sid_as_null_is_refused: "sid" = Value::Null,
    jti_as_an_array_is_refused: "jti" = json!(["a"]),
}

#[rocket::async_test]
async fn a_duplicated_claim_is_refused() {
    let forge = Forge::new().await;
    let claims = Value::Object(forge.claims.clone()).to_string();
    let duplicated = claims.replacen('{', r#"{"sub":"mallory","#, 1);
    let token = sign_raw(
        &Value::Object(forge.header.clone()).to_string(),
        &duplicated,
        &forge.app.secret(),
    );
    forge.refused(&token).await;
}

#[rocket::async_test]
async fn nbf_in_the_future_is_refused() {
    let forge = Forge::new().await;
    let iat = forge.claim("iat");
    assert_eq!(forge.status(&forge.with_claim("nbf", json!(iat))).await, Status::Ok);
    forge.refused(&forge.with_claim("nbf", json!(iat + 1))).await;
}

#[rocket::async_test]
async fn iat_in_the_future_is_refused() {
    let forge = Forge::new().await;
    let mut claims = forge.claims.clone();
    claims.insert("iat".into(), json!(forge.claim("iat") + 1));
    claims.insert("exp".into(), json!(forge.claim("exp") + 1));
    forge
        .refused(&forge.token_with(&Value::Object(forge.header.clone()), &Value::Object(claims)))
        .await;
}

#[rocket::async_test]
async fn auth_time_after_iat_is_refused() {
    let forge = Forge::new().await;
    forge
        .refused(&forge.with_claim("auth_time", json!(forge.claim("iat") + 1)))
        .await;
}

#[rocket::async_test]
async fn a_lifetime_longer_than_access_ttl_is_refused() {
    let forge = Forge::new().await;
    let iat = forge.claim("iat");
    assert_eq!(
        forge.status(&forge.with_claim("exp", json!(iat + 900))).await,
        Status::Ok
    );
    forge.refused(&forge.with_claim("exp", json!(iat + 901))).await;
}

#[rocket::async_test]
async fn an_issuer_or_audience_of_the_wrong_type_is_refused() {
    let app = App::configured(|figment| {
        figment
            .merge(("sessions.issuer", "https://auth.example"))
            .merge(("sessions.audience", "api"))
    })
    .await;
    let forge = Forge::on(app).await;
    forge.refused(&forge.with_claim("aud", json!(["api"]))).await;
    forge.refused(&forge.with_claim("iss", json!(1))).await;
    forge.refused(&forge.without_claim("aud")).await;
    forge.refused(&forge.without_claim("iss")).await;
}

#[rocket::async_test]
async fn another_algorithm_is_refused() {
    let forge = Forge::new().await;
    for alg in ["HS384", "HS512", "RS256", "ES256", "none", "hs256"] {
        forge.refused(&forge.with_header("alg", json!(alg))).await;
    }
}

#[rocket::async_test]
async fn a_crit_header_is_refused() {
    let forge = Forge::new().await;
    forge.refused(&forge.with_header("crit", json!(["exp"]))).await;
}

#[rocket::async_test]
async fn key_locating_headers_are_refused() {
    let forge = Forge::new().await;
    forge
        .refused(&forge.with_header("jku", json!("https://evil.example/jwks.json")))
        .await;
    forge
        .refused(&forge.with_header("x5u", json!("https://evil.example/cert.pem")))
        .await;
    forge.refused(&forge.with_header("x5c", json!(["MIIB"]))).await;
    let jwk = json!({ "kty": "oct", "k": b64(&forge.app.secret()) });
    forge.refused(&forge.with_header("jwk", jwk)).await;
}

#[rocket::async_test]
async fn a_wrong_or_missing_typ_is_refused() {
    let forge = Forge::new().await;
    forge.refused(&forge.with_header("typ", json!("JWT"))).await;
    forge.refused(&forge.without_header("typ")).await;
}

#[rocket::async_test]
async fn an_unknown_or_missing_kid_is_refused() {
    let forge = Forge::new().await;
    forge
        .refused(&forge.with_header("kid", json!("someone-elses-key")))
        .await;
    forge.refused(&forge.without_header("kid")).await;
}

#[rocket::async_test]
async fn base64_padding_is_refused() {
    let forge = Forge::new().await;
    let token = forge.token();
    let parts: Vec<&str> = token.split('.').collect();
    // A padded copy of each segment in turn.
    for index in 0..3 {
        let mut padded: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
        padded[index].push('=');
        forge.refused(&padded.join(".")).await;
    }
}

#[rocket::async_test]
async fn the_standard_base64_alphabet_is_refused() {
    let forge = Forge::new().await;
    // A token spelled differently in the two alphabets: one with - or _.
    let token = (0..)
        .map(|n| forge.with_claim("n", json!(n)))
        .find(|token| token.contains(['-', '_']))
        .unwrap();
    assert_eq!(forge.status(&token).await, Status::Ok);
    let standard = token.replace('-', "+").replace('_', "/");
    forge.refused(&standard).await;
}

#[rocket::async_test]
async fn non_canonical_base64_in_the_signature_is_refused() {
    let forge = Forge::new().await;
    let token = forge.token();
    // An HS256 signature is 32 bytes: 43 characters whose last one carries two
    // unused bits. Setting them decodes to the same bytes in a lax decoder.
    let last = token.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let value = alphabet.find(last).unwrap();
    let twin = alphabet.as_bytes()[value | 0b01] as char;
    let twin = if twin == last {
        alphabet.as_bytes()[value | 0b10] as char
    } else {
        twin
    };
    let mut altered = token.clone();
    altered.pop();
    altered.push(twin);
    assert_ne!(altered, token);
    forge.refused(&altered).await;
}

#[rocket::async_test]
async fn two_or_four_segments_are_refused() {
    let forge = Forge::new().await;
    let token = forge.token();
    let (head, _) = token.rsplit_once('.').unwrap();
    forge.refused(head).await;
    forge.refused(&format!("{token}.{}", b64(b"extra"))).await;
    forge.refused(&format!("{token}.")).await;
}

#[rocket::async_test]
async fn a_token_over_4_kib_is_refused_before_decoding() {
    let forge = Forge::new().await;
    // Valid in every other way: padding claims push it just past the cap.
    let filler_for = |len: usize| "x".repeat(len);
    let mut fits = None;
    for len in (2000..4000).rev() {
        let token = forge.with_claim("pad", json!(filler_for(len)));
        if token.len() <= 4096 {
            fits = Some(len);
            break;
        }
    }
    let fits = fits.unwrap();
    assert_eq!(
        forge.status(&forge.with_claim("pad", json!(filler_for(fits)))).await,
        Status::Ok
    );
    let over = forge.with_claim("pad", json!(filler_for(fits + 3)));
    assert!(over.len() > 4096);
    forge.refused(&over).await;
}

#[rocket::async_test]
async fn every_token_failure_has_the_same_body() {
    let forge = Forge::new().await;
    let failures = [
        forge.without_claim("exp"),
        forge.with_header("alg", json!("none")),
        forge.with_header("kid", json!("nope")),
        forge.with_claim("exp", json!(0)),
        "garbage".to_string(),
        "a".repeat(10_000),
    ];
    let mut bodies = Vec::new();
    for token in &failures {
        let response = forge.app.whoami(token).await;
        let www = response.headers().get_one("WWW-Authenticate").map(str::to_string);
        bodies.push((response.status(), www, response.into_string().await));
    }
    let refresh = forge.app.refresh("not-a-refresh-token").await;
    let www = refresh.headers().get_one("WWW-Authenticate").map(str::to_string);
    bodies.push((refresh.status(), www, refresh.into_string().await));
    assert!(bodies.windows(2).all(|pair| pair[0] == pair[1]), "{bodies:#?}");
}

#[rocket::async_test]
async fn extreme_times_never_overflow_into_acceptance() {
    let forge = Forge::new().await;
    let mut claims = forge.claims.clone();
    claims.insert("exp".into(), json!(i64::MAX));
    claims.insert("iat".into(), json!(i64::MIN));
    claims.insert("auth_time".into(), json!(i64::MIN));
    forge
        .refused(&forge.token_with(&Value::Object(forge.header.clone()), &Value::Object(claims)))
        .await;
    for (claim, value) in [("nbf", i64::MIN), ("exp", 253_402_300_800), ("auth_time", -1)] {
        forge.refused(&forge.with_claim(claim, json!(value))).await;
    }
}
