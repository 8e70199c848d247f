//! A differential oracle for the guard: arbitrary bytes as a token's header
//! and claims (split at the first `\n`, or changes to a genuine token's
//! when they parse as JSON objects), signed with the right HS256 key, so that
//! the signature never refuses them. Whatever the guard admits, jsonwebtoken
//! 12 must admit with the equivalent validation (HS256 pinned, `exp` and
//! `nbf` with no leeway, `exp` and `sub` required, no audience): the guard
//! may be stricter (`typ`, `kid`, `sid`, `jti`, revocation), never looser.
#![no_main]

mod common;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use rocket::http::Header;
use serde_json::{Map, Value};
use sha2::Sha256;

thread_local! {
    static APP: common::App = common::app();
}

fn sign(header: &[u8], claims: &[u8], key: &[u8]) -> String {
    let signed = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

fn jsonwebtoken_admits(token: &str, key: &[u8]) -> bool {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.leeway = 0;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "sub"]);
    let Ok(key) = jsonwebtoken::DecodingKey::from_secret(key) else {
        return false;
    };
    jsonwebtoken::decode::<Value>(token, &key, &validation).is_ok()
}

/// `base` with the fields of `changes` (a JSON object) set; `changes` raw
/// when it is not one.
fn merged(base: &Map<String, Value>, changes: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<Map<String, Value>>(changes) {
        Ok(changes) => {
            let mut merged = base.clone();
            merged.extend(changes);
            serde_json::to_vec(&merged).unwrap()
        }
        Err(_) => changes.to_vec(),
    }
}

fuzz_target!(|data: &[u8]| {
    APP.with(|app| {
        let key = STANDARD.decode(app.secret()).unwrap();
        let (header, claims) = match data.iter().position(|&b| b == b'\n') {
            Some(at) => (&data[..at], &data[at + 1..]),
            None => (&b""[..], data),
        };
        let (genuine_header, genuine_claims) = app.genuine();
        let token = sign(&merged(&genuine_header, header), &merged(&genuine_claims, claims), &key);
        let status = app
            .client
            .get("/me")
            .header(Header::new("Authorization", format!("Bearer {token}")))
            .dispatch()
            .status();
        assert!(status.code < 500, "{status} for {data:?}");
        if status.code == 200 {
            assert!(jsonwebtoken_admits(&token, &key), "admitted by the guard only: {token}");
        }
    });
});
