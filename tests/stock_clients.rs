//! Stock clients, not the crate's code: Python's authlib (an OAuth 2.0
//! client) refreshes and revokes against the demo (a process of its own,
//! signing with an Ed25519 key), and PyJWT verifies its access tokens through
//! its JWKS alone, as another service in another language would
//! (`tests/stock_clients/oauth_client.py`). CI installs them from PyPI;
//! elsewhere the test skips without them.

mod common;

use std::process::{Command, Stdio};

use base64::Engine as _;
use common::process::{json_field, DemoProcess};
use rocket_sqlite_sessions::testing::TestHarness;
use serde_json::Value;

/// A test key, public in this repository (`openssl genpkey -algorithm ed25519`).
const ED25519: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEII6guL+62hNr5/8Va7mF1C9nlq/02/DN40pvcT8ETjYS
-----END PRIVATE KEY-----
";

#[test]
#[cfg_attr(
    not(python_clients),
    ignore = "needs python3 with authlib, pyjwt, cryptography and requests (see testsuite/build.rs)"
)]
fn authlib_refreshes_and_revokes_against_the_demo_and_pyjwt_verifies_through_its_jwks() {
    let harness = TestHarness::new();
    let key = harness.directory().join("ed25519.pem");
    std::fs::write(&key, ED25519).unwrap();
    // The release profile: Rocket.toml's debug `secret` would clash with `keys`.
    let sessions = format!(
        "{{database=\"{}\",keys=[{{kid=\"ed-2026\",private_key_file=\"{}\"}}]}}",
        harness.database().display(),
        key.display()
    );
    let secret_key = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
    let demo = DemoProcess::start_configured(
        &sessions,
        "off",
        &[("ROCKET_PROFILE", "release"), ("ROCKET_SECRET_KEY", &secret_key)],
        Stdio::null(),
    );
    let json = [("Content-Type", "application/json")];
    let credentials = r#"{"username":"alice","password":"correct horse"}"#;
    assert_eq!(demo.http("POST", "/auth/register", &json, credentials).0, 201);
    let (status, body) = demo.http("POST", "/auth/login", &json, credentials);
    assert_eq!(status, 200, "{body}");
    let (access, refresh) = (json_field(&body, "access_token"), json_field(&body, "refresh_token"));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/stock_clients/oauth_client.py");
    let ran = Command::new("python3")
        .arg(script)
        .args([format!("http://127.0.0.1:{}", demo.port), access, refresh])
        .output()
        .unwrap();
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    let said: Value = serde_json::from_slice(&ran.stdout).unwrap();
    assert_eq!(said["verified_alg"], "EdDSA", "{said}");
    assert!(said["verified_sub"].is_string());
    assert_eq!(said["refreshed"], true);
    assert_eq!(said["refreshed_sub"], said["verified_sub"]);
    assert_eq!(said["revoke_status"], 200);
    assert_eq!(said["after_revoke"], "invalid_grant");
    // The revoked session's access token is refused by the demo too.
    let bearer = format!("Bearer {}", said["refreshed_access"].as_str().unwrap());
    assert_eq!(demo.http("GET", "/me", &[("Authorization", &bearer)], "").0, 401);
}

/// panva's oauth4webapi (npm), a stock OAuth 2.0 client with DPoP, against
/// the demo with server nonces on: it signs in with the password grant, calls
/// `/me`, refreshes, logs out and revokes, each request with a proof by its
/// own key (`tests/stock_clients/node/dpop_client.mjs`). The session is bound
/// to that key: its tokens are refused as bearer tokens and with another
/// key's proofs. CI installs the client with `npm ci`.
#[test]
#[cfg_attr(
    not(node_clients),
    ignore = "needs node and `npm ci` in tests/stock_clients/node (see testsuite/build.rs)"
)]
fn oauth4webapi_signs_in_calls_refreshes_and_revokes_with_dpop_against_the_demo() {
    let harness = TestHarness::new();
    let sessions = format!("{{database=\"{}\",dpop_nonces=true}}", harness.database().display());
    let demo = DemoProcess::start_configured(&sessions, "off", &[], Stdio::null());
    let json = [("Content-Type", "application/json")];
    let credentials = r#"{"username":"alice","password":"correct horse"}"#;
    assert_eq!(demo.http("POST", "/auth/register", &json, credentials).0, 201);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/stock_clients/node/dpop_client.mjs");
    let ran = Command::new("node")
        .arg(script)
        .args([
            format!("http://127.0.0.1:{}", demo.port),
            "alice".into(),
            "correct horse".into(),
        ])
        .output()
        .unwrap();
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    let said: Value = serde_json::from_slice(&ran.stdout).unwrap();
    assert_eq!(said["token_type"], "dpop", "{said}");
    assert_eq!(said["cnf_jkt"], said["thumbprint"], "{said}");
    assert_eq!(
        (said["me_status"].as_u64(), said["sender_constrained"].as_bool()),
        (Some(200), Some(true))
    );
    assert!(
        said["nonce_retries"].as_u64().unwrap() >= 1,
        "the nonce was asked for: {said}"
    );
    assert_eq!(said["as_bearer_status"], 401, "{said}");
    assert_eq!(said["other_key_status"], 401, "{said}");
    assert_eq!(said["other_key_refresh"], "invalid_grant", "{said}");
    assert_eq!(said["refreshed_token_type"], "dpop", "{said}");
    assert_eq!(said["refreshed_me_status"], 200, "{said}");
    assert_eq!(said["logout_status"], 204, "{said}");
    assert_eq!(said["after_logout_status"], 401, "{said}");
    assert_eq!(said["after_revocation_status"], 401, "{said}");
}
