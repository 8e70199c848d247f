//! Properties over random input: no header or body gets a 2xx from a guarded
//! route, a 5xx, or a panic.

use crate::demo;

use proptest::prelude::*;
use rocket::http::{ContentType, Header, Status};
use rocket::local::blocking::Client;
use rocket_sqlite_sessions::testing::TestHarness;
use serde_json::{json, Value};

/// The demo with one signed-in user; returns a genuine access token.
fn demo() -> (TestHarness, Client, String) {
    let (harness, client, tokens) = demo_tokens();
    let access = tokens["access_token"].as_str().unwrap().to_string();
    (harness, client, access)
}

/// The demo with one signed-in user; returns its token response.
fn demo_tokens() -> (TestHarness, Client, Value) {
    let harness = demo::harness();
    let client = Client::tracked(demo::app(harness.rocket())).unwrap();
    let credentials = json!({ "username": "alice", "password": "password one" }).to_string();
    client
        .post("/auth/register")
        .header(ContentType::JSON)
        .body(&credentials)
        .dispatch();
    let tokens: Value = client
        .post("/auth/login")
        .header(ContentType::JSON)
        .body(&credentials)
        .dispatch()
        .into_json()
        .unwrap();
    (harness, client, tokens)
}

/// Asserts a guarded route's answer to hostile input: never 2xx, never 5xx.
fn refused(status: Status, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        !(200..300).contains(&status.code) && status.code < 500,
        "{what} got {status}"
    );
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Authorization header values: arbitrary text, and bearer tokens of JWT-ish
/// characters.
fn authorization() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "Bearer [A-Za-z0-9._=+/-]{0,600}",
        "(?i:bearer) +[A-Za-z0-9_-]{1,200}\\.[A-Za-z0-9_-]{1,400}\\.[A-Za-z0-9_-]{0,100}",
        ".{0,10}eyJ[A-Za-z0-9_-]{0,300}\\.eyJ[A-Za-z0-9_-]{0,300}\\.[A-Za-z0-9_-]{0,64}",
    ]
}

#[test]
fn random_authorization_headers_never_pass_a_guarded_route() {
    let (_harness, client, _) = demo();
    proptest!(config(), |(value in authorization())| {
        for path in ["/me", "/auth/sessions"] {
            let status = client.get(path).header(Header::new("Authorization", value.clone())).dispatch().status();
            refused(status, path)?;
        }
        let status = client.post("/auth/logout").header(Header::new("Authorization", value.clone())).dispatch().status();
        refused(status, "logout")?;
    });
}

#[test]
fn any_change_to_a_genuine_token_is_refused() {
    let (_harness, client, access) = demo();
    let ok = client
        .get("/me")
        .header(Header::new("Authorization", format!("Bearer {access}")))
        .dispatch();
    assert_eq!(ok.status(), Status::Ok);
    let len = access.len();
    proptest!(config(), |(position in 0..len, replacement in "[A-Za-z0-9._=+/-]")| {
        let mut changed = access.clone();
        changed.replace_range(position..position + 1, &replacement);
        prop_assume!(changed != access);
        let status = client
            .get("/me")
            .header(Header::new("Authorization", format!("Bearer {changed}")))
            .dispatch()
            .status();
        prop_assert_eq!(status, Status::Unauthorized, "changed at {}", position);
    });
}

#[test]
fn random_refresh_bodies_never_issue_tokens() {
    let (_harness, client, _) = demo();
    let body = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2000),
        "\\{\"refresh_token\": \"[A-Za-z0-9_-]{0,100}\"\\}".prop_map(String::into_bytes),
        // The length of a genuine token: past the format check, to the tag.
        "\\{\"refresh_token\": \"[A-Za-z0-9_-]{96}\"\\}".prop_map(String::into_bytes),
        any::<String>().prop_map(|token| json!({ "refresh_token": token }).to_string().into_bytes()),
    ];
    proptest!(config(), |(body in body)| {
        let status = client.post("/auth/refresh").header(ContentType::JSON).body(body).dispatch().status();
        refused(status, "refresh")?;
    });
}

#[test]
fn any_change_to_a_genuine_refresh_token_is_refused_and_harms_nothing() {
    let (_harness, client, tokens) = demo_tokens();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let present = |token: &str| {
        client
            .post("/auth/refresh")
            .header(ContentType::JSON)
            .body(json!({ "refresh_token": token }).to_string())
            .dispatch()
            .status()
    };
    let len = refresh.len();
    proptest!(config(), |(position in 0..len, replacement in "[A-Za-z0-9_-]")| {
        let mut changed = refresh.clone();
        changed.replace_range(position..position + 1, &replacement);
        prop_assume!(changed != refresh);
        prop_assert_eq!(present(&changed), Status::Unauthorized, "changed at {}", position);
    });
    assert_eq!(
        present(&refresh),
        Status::Ok,
        "the genuine token still works: nothing was revoked"
    );
}

#[test]
fn random_session_ids_never_revoke_anything_and_never_fail_hard() {
    let (_harness, client, access) = demo();
    proptest!(config(), |(id in "[^/?#]{1,300}")| {
        let encoded: String = url_encode(&id);
        let status = client
            .delete(format!("/auth/sessions/{encoded}"))
            .header(Header::new("Authorization", format!("Bearer {access}")))
            .dispatch()
            .status();
        prop_assert!(status.code < 500, "got {}", status);
        prop_assert_ne!(status, Status::NoContent);
    });
    let me = client
        .get("/me")
        .header(Header::new("Authorization", format!("Bearer {access}")))
        .dispatch();
    assert_eq!(me.status(), Status::Ok, "the session survived");
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
