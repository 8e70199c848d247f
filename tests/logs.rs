//! No issued token ever reaches the log, at any level.

mod common;
#[allow(dead_code)]
#[path = "../examples/demo/main.rs"]
mod demo;

use common::logs::{capture_logs, lines};
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::Client;
use rocket_sqlite_sessions::testing::TestHarness;
use serde_json::{json, Value};

#[rocket::async_test]
async fn a_full_session_lifecycle_logs_no_token() {
    capture_logs();
    let harness = TestHarness::new();
    let client = Client::tracked(demo::app(harness.rocket())).await.unwrap();
    let post = |path: &'static str, body: Value| {
        client
            .post(path)
            .header(ContentType::JSON)
            .body(body.to_string())
            .dispatch()
    };
    let mut issued: Vec<String> = Vec::new();
    let mut remember = |tokens: &Value| {
        for field in ["access_token", "refresh_token"] {
            issued.push(tokens[field].as_str().unwrap().to_string());
        }
    };

    post(
        "/auth/register",
        json!({ "username": "alice", "password": "password one" }),
    )
    .await;
    let credentials = json!({ "username": "alice", "password": "password one" });
    let first: Value = post("/auth/login", credentials.clone())
        .await
        .into_json()
        .await
        .unwrap();
    remember(&first);
    let second: Value = post("/auth/login", credentials.clone())
        .await
        .into_json()
        .await
        .unwrap();
    remember(&second);
    let bearer = |tokens: &Value| {
        Header::new(
            "Authorization",
            format!("Bearer {}", tokens["access_token"].as_str().unwrap()),
        )
    };

    assert_eq!(
        client.get("/me").header(bearer(&first)).dispatch().await.status(),
        Status::Ok
    );
    let rotated: Value = post("/auth/refresh", json!({ "refresh_token": first["refresh_token"] }))
        .await
        .into_json()
        .await
        .unwrap();
    remember(&rotated);
    // Failures of every kind: a tampered token, a wrong password, reuse.
    let tampered = format!("{}x", rotated["access_token"].as_str().unwrap());
    let tampered_status = client
        .get("/me")
        .header(Header::new("Authorization", format!("Bearer {tampered}")))
        .dispatch()
        .await
        .status();
    assert_eq!(tampered_status, Status::Unauthorized);
    post(
        "/auth/login",
        json!({ "username": "alice", "password": "wrong password" }),
    )
    .await;
    harness.clock().advance(11);
    let reuse_status = post("/auth/refresh", json!({ "refresh_token": first["refresh_token"] }))
        .await
        .status();
    assert_eq!(reuse_status, Status::Unauthorized);
    client.post("/auth/logout").header(bearer(&second)).dispatch().await;
    let sessions = client.rocket().state::<rocket_sqlite_sessions::Sessions>().unwrap();
    sessions.prune_now().await.unwrap();
    client.terminate().await;

    let logged = lines();
    assert!(
        logged.iter().any(|line| line.contains("was presented again")),
        "the capture sees the crate's log lines"
    );
    for token in &issued {
        for line in &logged {
            assert!(!line.contains(token.as_str()), "a token was logged: {line}");
            // Not even the signature part of an access token.
            if let Some((_, signature)) = token.rsplit_once('.') {
                assert!(!line.contains(signature), "a token signature was logged: {line}");
            }
        }
    }
    assert!(!logged.iter().any(|line| line.contains(&tampered)));
    assert!(!logged.iter().any(|line| line.contains("password one")));
}

#[rocket::async_test]
async fn a_log_level_that_prints_credentials_gets_a_launch_warning() {
    capture_logs();
    let harness = TestHarness::new();
    let rocket = rocket::custom(harness.figment().merge(("log_level", "debug"))).attach(harness.fairing());
    let _client = Client::tracked(rocket).await.unwrap();
    assert!(
        lines()
            .iter()
            .any(|line| line.starts_with("WARN") && line.contains(r#"log_level = "debug""#)),
        "a warning names the setting"
    );
}
