//! A differential oracle for the crate's JWT code: every access token the
//! guard admits is also admitted by jsonwebtoken 12 with the equivalent
//! validation (HS256 pinned, `exp` and `nbf` with no leeway, `exp` and `sub`
//! required). Tokens are genuine ones with random changes to their header and
//! claims, signed again with the right key, so that the signature is never
//! what refuses them: the claim checks are compared. The crate checks more
//! than jsonwebtoken can (`typ`, `kid`, `jti`, `sid`, revocation), so the
//! oracle runs one way only: admitted here ⇒ admitted there.

mod common;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use proptest::prelude::*;
use rocket::http::{Header, Status};
use rocket::local::blocking::Client;
use rocket_sqlite_sessions::testing::TestHarness;
use serde_json::{json, Map, Value};
use sha2::Sha256;

#[rocket::get("/whoami")]
fn whoami(_user: rocket_sqlite_sessions::AuthUser) -> &'static str {
    "ok"
}

#[rocket::post("/login/<user>")]
async fn login(
    sessions: &rocket::State<rocket_sqlite_sessions::Sessions>,
    client: rocket_sqlite_sessions::ClientInfo,
    user: &str,
) -> Result<rocket_sqlite_sessions::TokenPair, rocket_sqlite_sessions::Error> {
    sessions.login(user, json!({ "role": "member" }), &client).await
}

/// The app, a genuine access token's header and claims, and the key.
fn app() -> Fixture {
    let harness = TestHarness::new();
    let client = Client::tracked(
        rocket::custom(harness.figment())
            .attach(harness.fairing())
            .mount("/", rocket::routes![whoami, login]),
    )
    .unwrap();
    let pair: Value = client.post("/login/alice").dispatch().into_json().unwrap();
    let access = pair["access_token"].as_str().unwrap();
    let part = |n: usize| -> Map<String, Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(access.split('.').nth(n).unwrap()).unwrap()).unwrap()
    };
    let key = STANDARD.decode(harness.secret()).unwrap();
    (harness, client, part(0), part(1), key)
}

/// `header.claims`, signed with HS256 under `key`.
fn sign(header: &Value, claims: &Value, key: &[u8]) -> String {
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// jsonwebtoken's verdict with the validation equivalent to the crate's.
fn jsonwebtoken_admits(token: &str, key: &[u8]) -> bool {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.leeway = 0;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "sub"]);
    let key = jsonwebtoken::DecodingKey::from_secret(key).expect("an HMAC key");
    jsonwebtoken::decode::<Value>(token, &key, &validation).is_ok()
}

/// A change to a header or claim value.
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-100_000i64..100_000).prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-zA-Z0-9+/_.-]{0,12}".prop_map(Value::String),
        Just(json!("HS256")),
        Just(json!("none")),
        Just(json!("at+jwt")),
        Just(json!("JWT")),
        Just(json!([])),
        Just(json!({})),
    ]
}

/// Which field a change touches: one the crate reads, or another.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("alg".to_string()),
        Just("typ".to_string()),
        Just("kid".to_string()),
        Just("crit".to_string()),
        Just("exp".to_string()),
        Just("nbf".to_string()),
        Just("iat".to_string()),
        Just("sub".to_string()),
        Just("sid".to_string()),
        Just("jti".to_string()),
        Just("auth_time".to_string()),
        Just("iss".to_string()),
        Just("aud".to_string()),
        "[a-z]{1,4}".prop_map(String::from),
    ]
}

/// One change: set a header field, set a claim, remove a header field or
/// remove a claim; the times as offsets from the genuine ones.
#[derive(Debug, Clone)]
enum Change {
    Header(String, Value),
    Claim(String, Value),
    ClaimOffset(String, i64),
    RemoveHeader(String),
    RemoveClaim(String),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (field(), value()).prop_map(|(f, v)| Change::Header(f, v)),
        (field(), value()).prop_map(|(f, v)| Change::Claim(f, v)),
        (
            prop_oneof![Just("exp"), Just("nbf"), Just("iat"), Just("auth_time")],
            -2_000i64..2_000
        )
            .prop_map(|(f, d)| Change::ClaimOffset(f.to_string(), d)),
        field().prop_map(Change::RemoveHeader),
        field().prop_map(Change::RemoveClaim),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_token_the_guard_admits_jsonwebtoken_admits(changes in prop::collection::vec(change(), 0..4)) {
        APP.with(|app| -> Result<(), TestCaseError> {
            let (_harness, client, header, claims, key) = app;
            let (mut header, mut claims) = (header.clone(), claims.clone());
            for change in &changes {
                match change {
                    Change::Header(f, v) => { header.insert(f.clone(), v.clone()); }
                    Change::Claim(f, v) => { claims.insert(f.clone(), v.clone()); }
                    Change::ClaimOffset(f, d) => {
                        let base = claims.get(f).and_then(Value::as_i64).unwrap_or(0);
                        claims.insert(f.clone(), json!(base + d));
                    }
                    Change::RemoveHeader(f) => { header.remove(f); }
                    Change::RemoveClaim(f) => { claims.remove(f); }
                }
            }
            let token = sign(&Value::Object(header), &Value::Object(claims), key);
            let status = client
                .get("/whoami")
                .header(Header::new("Authorization", format!("Bearer {token}")))
                .dispatch()
                .status();
            prop_assert!(status == Status::Ok || status == Status::Unauthorized, "{status}");
            if status == Status::Ok {
                prop_assert!(jsonwebtoken_admits(&token, key), "admitted by the guard only: {changes:?}");
            }
            Ok(())
        })?;
    }
}

/// The app and its genuine token, made once per test thread.
type Fixture = (TestHarness, Client, Map<String, Value>, Map<String, Value>, Vec<u8>);

thread_local! {
    static APP: Fixture = app();
}

/// The oracle's two ends: the genuine token signed again is admitted by both,
/// and a changed `iss`, which jsonwebtoken ignores, by both too; an expired
/// one by neither.
#[test]
fn the_oracle_sees_both_verdicts() {
    APP.with(|(_harness, client, header, claims, key)| {
        let admitted = |claims: &Map<String, Value>| {
            let token = sign(&Value::Object(header.clone()), &Value::Object(claims.clone()), key);
            let status = client
                .get("/whoami")
                .header(Header::new("Authorization", format!("Bearer {token}")))
                .dispatch()
                .status();
            (status == Status::Ok, jsonwebtoken_admits(&token, key))
        };
        assert_eq!(admitted(claims), (true, true));
        let mut expired = claims.clone();
        expired.insert("exp".into(), json!(claims["iat"].as_i64().unwrap() - 1));
        assert_eq!(admitted(&expired), (false, false));
    });
}
