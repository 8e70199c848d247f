//! Stock clients, not the crate's code: Python's authlib (an OAuth 2.0
//! client) refreshes and revokes against the crate's routes, and PyJWT
//! verifies access tokens through the JWKS alone, as another service in
//! another language would (`tests/stock_clients/oauth_client.py`). CI
//! installs them from PyPI; elsewhere the test skips without them.

mod common;

use std::process::Command;

use common::process::{free_port, http, json_field, wait_until_listening};
use rocket::figment::Figment;
use rocket_sqlite_sessions::testing::TestHarness;
use serde_json::{json, Value};

/// A test key, public in this repository (`openssl genpkey -algorithm ed25519`).
const ED25519: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEII6guL+62hNr5/8Va7mF1C9nlq/02/DN40pvcT8ETjYS
-----END PRIVATE KEY-----
";

/// Whether Python has the stock libraries; in CI they must be there.
fn python_has_them() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import authlib, jwt, requests, cryptography"])
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the stock-client tests: pip install authlib pyjwt cryptography requests (see .ci/run)"
        );
        eprintln!("skipped: python3 with authlib, pyjwt, cryptography and requests is needed");
    }
    found
}

#[rocket::async_test]
async fn authlib_refreshes_and_revokes_and_pyjwt_verifies_through_the_jwks() {
    if !python_has_them() {
        return;
    }
    let harness = TestHarness::new();
    let port = free_port();
    let figment = Figment::from(rocket::Config::debug_default())
        .merge(("port", port))
        .merge(("log_level", "off"))
        .merge(("sessions.database", harness.database()))
        .merge(("sessions.keys", json!([{ "kid": "ed-2026", "private_key": ED25519 }])));
    let rocket = common::with_routes(rocket::custom(figment).attach(harness.fairing()));
    let ignited = rocket.ignite().await.unwrap();
    let shutdown = ignited.shutdown();
    rocket::tokio::spawn(ignited.launch());
    wait_until_listening(port);

    let (status, body) = http(port, "POST", "/login/alice", &[], "");
    assert_eq!(status, 200);
    let (access, refresh) = (json_field(&body, "access_token"), json_field(&body, "refresh_token"));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stock_clients/oauth_client.py");
    let ran = rocket::tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .args([format!("http://127.0.0.1:{port}"), access, refresh])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    let said: Value = serde_json::from_slice(&ran.stdout).unwrap();
    assert_eq!(said["verified_sub"], "alice", "{said}");
    assert_eq!(said["verified_alg"], "EdDSA");
    assert_eq!(said["refreshed"], true);
    assert_eq!(said["refreshed_sub"], "alice");
    assert_eq!(said["revoke_status"], 200);
    assert_eq!(said["after_revoke"], "invalid_grant");
    // The revoked session's access token is refused here too.
    let bearer = format!("Bearer {}", said["refreshed_access"].as_str().unwrap());
    assert_eq!(http(port, "GET", "/whoami", &[("Authorization", &bearer)], "").0, 401);
    shutdown.notify();
}
