//! No issued token ever reaches the log, at any level.

use rocket::http::Status;
use rocket::local::asynchronous::Client;
use serde_json::{json, Value};

use crate::common::bearer;
use crate::common::logs::{capture_logs, lines};
use crate::demo::{self, post_json};

#[rocket::async_test]
async fn a_full_session_lifecycle_logs_no_token() {
    capture_logs();
    let harness = demo::harness();
    let client = Client::tracked(demo::app(harness.rocket())).await.unwrap();
    let post = |path: &'static str, body: Value| post_json(&client, path, body);
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
    let bearer = |tokens: &Value| bearer(tokens["access_token"].as_str().unwrap());

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
        .header(crate::common::bearer(&tampered))
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
    let harness = demo::harness();
    let rocket = rocket::custom(harness.figment().merge(("log_level", "debug"))).attach(harness.fairing());
    let _client = Client::tracked(rocket).await.unwrap();
    assert!(
        lines()
            .iter()
            .any(|line| line.starts_with("WARN") && line.contains(r#"log_level = "debug""#)),
        "a warning names the setting"
    );
}

/// A failing store is logged a line a minute, with the part that failed,
/// however many requests it fails: the session store by the crate (its 503
/// lines are limited), the demo's users table by the demo.
#[rocket::async_test]
async fn store_failures_are_logged_at_most_once_a_minute_and_labelled() {
    capture_logs();
    let harness = demo::harness();
    let client = Client::tracked(demo::app(harness.rocket())).await.unwrap();
    let credentials = json!({ "username": "alice", "password": "password one" });
    assert_eq!(
        post_json(&client, "/auth/register", credentials.clone()).await.status(),
        Status::Created
    );
    // The session store fails every login.
    let connection = rusqlite::Connection::open(harness.database()).unwrap();
    connection
        .execute_batch(
            "CREATE TRIGGER no_logins BEFORE INSERT ON sessions \
             BEGIN SELECT RAISE(FAIL, 'session store down 7f3a'); END;",
        )
        .unwrap();
    for _ in 0..50 {
        let answer = post_json(&client, "/auth/login", credentials.clone()).await;
        assert_eq!(answer.status(), Status::ServiceUnavailable);
    }
    let about = |needle: &str| {
        lines()
            .into_iter()
            .filter(|line| line.contains(needle))
            .collect::<Vec<_>>()
    };
    let session_lines = about("session store down 7f3a");
    assert!(session_lines.len() <= 1, "{session_lines:#?}");
    assert!(
        session_lines.iter().all(|line| !line.contains("users table")),
        "a session-store failure is not the users table's: {session_lines:#?}"
    );
    // The users table fails every login (each left counted: fewer than
    // `login_max_failures`).
    connection
        .execute_batch("DROP TRIGGER no_logins; ALTER TABLE demo_users RENAME TO gone_7f3a;")
        .unwrap();
    for _ in 0..9 {
        let answer = post_json(&client, "/auth/login", credentials.clone()).await;
        assert_eq!(answer.status(), Status::ServiceUnavailable);
    }
    let users_lines = about("no such table: demo_users");
    assert!(users_lines.len() <= 1, "{} lines: {users_lines:#?}", users_lines.len());
    assert!(
        users_lines.iter().all(|line| line.contains("users table")),
        "{users_lines:#?}"
    );
}
