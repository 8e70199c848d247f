//! Ed25519 (`EdDSA`) and P-256 (`ES256`) signing keys beside HS256 secrets:
//! the algorithm comes from the key and is pinned per `kid`, the public
//! halves are served as a JWKS, and another library verifies with them.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{assert_invalid_token, App};
use hmac::{Hmac, KeyInit, Mac};
use rocket::figment::Figment;
use rocket::http::Status;
use rocket_sqlite_sessions::testing::TestHarness;
use serde_json::{json, Value};

/// Test keys, public in this repository: never use them anywhere else.
/// (`openssl genpkey -algorithm ed25519`, `… -algorithm EC -pkeyopt
/// ec_paramgen_curve:P-256`, `… ec_paramgen_curve:P-384`.)
const ED25519: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEII6guL+62hNr5/8Va7mF1C9nlq/02/DN40pvcT8ETjYS
-----END PRIVATE KEY-----
";
const P256: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgKUzANl4JrTFud6rU
XuIBWBF+D8u7X5DTWaGZI/2UcFyhRANCAAShtPGrO5/9gMKscNO1MJOUWBSwrDjr
hZbn0Ih4gAM+Yfp/anTAxHvFq7IcLf7H8QSgsz6oRITdAJR07bkZEiLW
-----END PRIVATE KEY-----
";
const P384: &str = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDAja4eS5Jhv3VeFXncB
cpW2xlegnOOfewtzz41xIFA8IDB6WHNoCgBb2vsCnFpxTEShZANiAASvylt45Ytx
ty7BN1y8QW3R7FBbjwLJ94+KmfkaMlkUIS4tB12BAQuW95McE0MkfQ7UmJeKwEHu
hRzOdt8zS7Xj1ND/JOObWYWRTJNcFpsFhwEoWG2C3k1kjEg9Lu5m6PU=
-----END PRIVATE KEY-----
";

fn hs256(kid: &str, byte: u8) -> Value {
    json!({ "kid": kid, "secret": base64::engine::general_purpose::STANDARD.encode([byte; 32]) })
}

/// The harness's database and clock with `keys`, and no Rocket.toml.
fn with_keys(harness: &TestHarness, keys: Value) -> impl FnOnce(Figment) -> Figment {
    let database = harness.database();
    move |_| {
        Figment::from(rocket::Config::debug_default())
            .merge(("log_level", "off"))
            .merge(("sessions.database", database))
            .merge(("sessions.keys", keys))
    }
}

async fn start(keys: Value) -> App {
    let harness = TestHarness::new();
    let configure = with_keys(&harness, keys);
    App::start_with(harness, configure).await
}

fn header_of(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

async fn jwks(app: &App) -> (Value, Option<String>) {
    let response = app.client.get("/.well-known/jwks.json").dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    let cache = response.headers().get_one("Cache-Control").map(str::to_string);
    (response.into_json().await.unwrap(), cache)
}

/// `token` verified by jsonwebtoken's own JWK code, as another Rust service
/// would: the key found by `kid` in the set, the algorithm from the key.
fn verified_elsewhere(token: &str, set: &Value) -> Value {
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(set.clone()).unwrap();
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let jwk = set.find(&kid).expect("the token's kid is in the set");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let algorithm = jwk.common.key_algorithm.unwrap().to_string().parse().unwrap();
    let mut validation = jsonwebtoken::Validation::new(algorithm);
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap().claims
}

#[rocket::async_test]
async fn an_ed25519_key_signs_eddsa_tokens_that_the_jwks_verifies() {
    let app = start(json!([{ "kid": "ed-1", "private_key": ED25519 }])).await;
    let tokens = app.login("alice").await;
    let header = header_of(&tokens.access);
    assert_eq!(
        (header["alg"].as_str(), header["kid"].as_str()),
        (Some("EdDSA"), Some("ed-1"))
    );
    assert_eq!(app.whoami_status(&tokens.access).await, Status::Ok);
    let next = app.rotate(&tokens.refresh).await;
    assert_eq!(app.whoami_status(&next.access).await, Status::Ok);

    let (set, cache) = jwks(&app).await;
    assert_eq!(cache.as_deref(), Some("public, max-age=300"));
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(
        (&key["kty"], &key["crv"], &key["kid"], &key["alg"], &key["use"]),
        (
            &json!("OKP"),
            &json!("Ed25519"),
            &json!("ed-1"),
            &json!("EdDSA"),
            &json!("sig")
        )
    );
    assert!(key.get("d").is_none(), "never the private part: {key}");
    assert_eq!(URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap().len(), 32);
    assert_eq!(verified_elsewhere(&next.access, &set)["sub"], "alice");
}

#[rocket::async_test]
async fn a_p256_key_signs_es256_tokens_that_the_jwks_verifies() {
    let app = start(json!([{ "kid": "ec-1", "private_key": P256 }, hs256("old", 1)])).await;
    let tokens = app.login("alice").await;
    assert_eq!(header_of(&tokens.access)["alg"], "ES256");
    assert_eq!(app.whoami_status(&tokens.access).await, Status::Ok);
    let (set, _) = jwks(&app).await;
    let keys = set["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "the HS256 secret has no public half: {set}");
    assert_eq!((&keys[0]["kty"], &keys[0]["crv"]), (&json!("EC"), &json!("P-256")));
    assert!(keys[0].get("d").is_none());
    assert_eq!(verified_elsewhere(&tokens.access, &set)["sub"], "alice");
}

#[rocket::async_test]
async fn with_only_hs256_secrets_the_jwks_is_empty() {
    let app = App::start().await;
    let (set, _) = jwks(&app).await;
    assert_eq!(set, json!({ "keys": [] }));
}

/// A token must use its `kid`'s own algorithm: an HS256 token "keyed" with
/// the public key (the JWK, or its `x`), an EdDSA token for an HS256 kid,
/// `none`: all refused with the one 401.
#[rocket::async_test]
async fn no_algorithm_confusion_is_possible() {
    let app = start(json!([{ "kid": "ed-1", "private_key": ED25519 }, hs256("hs-1", 7)])).await;
    let genuine = app.login("alice").await;
    let (set, _) = jwks(&app).await;
    let public = &set["keys"][0];
    let payload = genuine.access.split('.').nth(1).unwrap().to_string();
    let forge = |header: Value, key: &[u8]| {
        let signing_input = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(header.to_string()));
        let mac = Hmac::<sha2::Sha256>::new_from_slice(key)
            .unwrap()
            .chain_update(signing_input.as_bytes())
            .finalize()
            .into_bytes();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac))
    };
    let x = URL_SAFE_NO_PAD.decode(public["x"].as_str().unwrap()).unwrap();
    let forgeries = [
        forge(
            json!({ "alg": "HS256", "typ": "at+jwt", "kid": "ed-1" }),
            public.to_string().as_bytes(),
        ),
        forge(json!({ "alg": "HS256", "typ": "at+jwt", "kid": "ed-1" }), &x),
        forge(
            json!({ "alg": "HS256", "typ": "at+jwt", "kid": "ed-1" }),
            public["x"].as_str().unwrap().as_bytes(),
        ),
        format!(
            "{}.{payload}.",
            URL_SAFE_NO_PAD.encode(json!({ "alg": "none", "typ": "at+jwt", "kid": "ed-1" }).to_string())
        ),
    ];
    for forged in forgeries {
        assert_invalid_token(app.whoami(&forged).await).await;
    }
    // The genuine EdDSA signature under the HS256 kid's name.
    let mut parts: Vec<String> = genuine.access.split('.').map(str::to_string).collect();
    parts[0] = URL_SAFE_NO_PAD.encode(json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": "hs-1" }).to_string());
    assert_invalid_token(app.whoami(&parts.join(".")).await).await;
    assert_eq!(app.whoami_status(&genuine.access).await, Status::Ok);
}

/// Rotating from an HS256 secret to an Ed25519 key: the new key first signs,
/// the secret still verifies until it is retired.
#[rocket::async_test]
async fn an_hs256_secret_rotates_to_an_ed25519_key_across_restarts() {
    let harness = TestHarness::new();
    let configure = with_keys(&harness, json!([hs256("2026-05", 1)]));
    let app = App::start_with(harness, configure).await;
    let old = app.login("alice").await;

    let harness = app.stop().await;
    let path = harness.directory().join("ed25519.pem");
    std::fs::write(&path, ED25519).unwrap();
    let configure = with_keys(
        &harness,
        json!([{ "kid": "2026-11", "private_key_file": path }, hs256("2026-05", 1)]),
    );
    let app = App::start_with(harness, configure).await;
    assert_eq!(
        app.whoami_status(&old.access).await,
        Status::Ok,
        "the secret still verifies"
    );
    let rotated = app.rotate(&old.refresh).await;
    assert_eq!(
        header_of(&rotated.access)["alg"],
        "EdDSA",
        "a refresh gets the new key's token"
    );

    let harness = app.stop().await;
    let configure = with_keys(&harness, json!([{ "kid": "2026-11", "private_key_file": path }]));
    let app = App::start_with(harness, configure).await;
    assert_invalid_token(app.whoami(&old.access).await).await;
    assert_eq!(app.whoami_status(&rotated.access).await, Status::Ok);
}

#[rocket::async_test]
async fn a_bad_key_fails_launch_naming_it_and_never_quoting_it() {
    common::logs::capture_logs();
    let cases = [
        (
            json!([{ "kid": "k", "private_key": P384 }]),
            "not an Ed25519 or P-256 private key",
        ),
        (
            json!([{ "kid": "k", "private_key": "MC4CAQAwBQYDK2VwBCIEII6guL" }]),
            "PKCS#8 PEM",
        ),
        (
            json!([{ "kid": "k", "private_key": ED25519, "secret": "c2hvcnQ=" }]),
            "exactly one of",
        ),
        (json!([{ "kid": "k" }]), "exactly one of"),
        (
            json!([{ "kid": "k", "private_key_file": "/no/such/key-3e1.pem" }]),
            "cannot read private_key_file `/no/such/key-3e1.pem`",
        ),
    ];
    for (keys, said) in cases {
        let harness = TestHarness::new();
        let figment = with_keys(&harness, keys.clone())(harness.figment());
        let launched =
            rocket::local::asynchronous::Client::tracked(rocket::custom(figment).attach(harness.fairing())).await;
        assert!(launched.map_err(|e| e.kind().to_string()).is_err(), "{keys}");
        assert!(common::logs::logged(said), "no line says {said:?}");
    }
    let lines = common::logs::lines();
    for secret_part in [
        "MC4CAQAwBQYDK2VwBCIEII6guL",
        "MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDAja4eS5Jhv3VeFXncB",
    ] {
        assert!(
            !lines.iter().any(|line| line.contains(secret_part)),
            "a key reached the log"
        );
    }
}

/// `a − b` of two 32-byte big-endian numbers (`a ≥ b`).
fn minus_be(a: &[u8; 32], b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut digit = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = i16::from(digit < 0);
        if digit < 0 {
            digit += 256;
        }
        out[i] = digit as u8;
    }
    assert_eq!(borrow, 0);
    out
}

/// `a + b` of two 32-byte little-endian numbers (no overflow past 256 bits).
fn plus_le(a: &[u8], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    out
}

/// `token` with its signature replaced by `signature`.
fn resigned(token: &str, signature: &[u8]) -> String {
    let (signed, _) = token.rsplit_once('.').unwrap();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// ECDSA signatures come in twins, `(r, s)` and `(r, n − s)`, both valid for
/// the math; only the low-`s` one, which the crate signs, is accepted, so a
/// token has one string. Ed25519's `S + L` twin is refused too.
#[rocket::async_test]
async fn a_signature_twin_of_a_genuine_token_is_refused() {
    // The order n of P-256, and L of Ed25519 (little-endian).
    const N: [u8; 32] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xBC, 0xE6,
        0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
    ];
    const L: [u8; 32] = [
        0xED, 0xD3, 0xF5, 0x5C, 0x1A, 0x63, 0x12, 0x58, 0xD6, 0x9C, 0xF7, 0xA2, 0xDE, 0xF9, 0xDE, 0x14, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
    ];
    let half_n = {
        // n / 2, big-endian: a right shift by one bit.
        let mut half = [0u8; 32];
        let mut carry = 0u8;
        for i in 0..32 {
            half[i] = (N[i] >> 1) | (carry << 7);
            carry = N[i] & 1;
        }
        half
    };

    let app = start(json!([{ "kid": "ec-1", "private_key": P256 }])).await;
    for n in 0..40 {
        let tokens = app.login(&format!("user{n}")).await;
        let signature = URL_SAFE_NO_PAD
            .decode(tokens.access.rsplit_once('.').unwrap().1)
            .unwrap();
        let (r, s) = signature.split_at(32);
        assert!(s <= &half_n[..], "token {n} is signed with a high s");
        let twin = [r, &minus_be(&N, s)[..]].concat();
        assert_eq!(app.whoami_status(&tokens.access).await, Status::Ok);
        assert_invalid_token(app.whoami(&resigned(&tokens.access, &twin)).await).await;
    }

    let app = start(json!([{ "kid": "ed-1", "private_key": ED25519 }])).await;
    let tokens = app.login("alice").await;
    let signature = URL_SAFE_NO_PAD
        .decode(tokens.access.rsplit_once('.').unwrap().1)
        .unwrap();
    let (r, s) = signature.split_at(32);
    let twin = [r, &plus_le(s, &L)[..]].concat();
    assert_eq!(app.whoami_status(&tokens.access).await, Status::Ok);
    assert_invalid_token(app.whoami(&resigned(&tokens.access, &twin)).await).await;
}
