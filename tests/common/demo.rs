//! The demo app as its tests drive it, with the helpers they share. Only the
//! `demo` test binary (tests/demo/) includes it, so the demo is compiled once.
#![allow(dead_code)]

use rocket::http::{ContentType, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use rocket::{Build, Rocket};
use rocket_sqlite_sessions::testing::TestHarness;
use serde_json::{json, Value};

#[allow(dead_code)]
#[path = "../../examples/demo/main.rs"]
mod example;

pub(crate) use example::users;

/// A fresh harness for one demo test. Every test of the binary starts here:
/// the binary's log capture is installed first, as it must be before any
/// Rocket is built.
pub fn harness() -> TestHarness {
    crate::common::logs::capture_logs();
    TestHarness::new()
}

/// The demo's routes, catchers and users table on `rocket` (see
/// `examples/demo/main.rs`).
pub fn app(rocket: Rocket<Build>) -> Rocket<Build> {
    example::app(rocket)
}

/// The demo on `harness`, behind a tracked client.
pub async fn start(harness: &TestHarness) -> Client {
    Client::tracked(app(harness.rocket())).await.expect("the demo launches")
}

/// POSTs `body` to `path` as JSON.
pub async fn post_json<'c>(client: &'c Client, path: &str, body: Value) -> LocalResponse<'c> {
    client
        .post(path.to_string())
        .header(ContentType::JSON)
        .body(body.to_string())
        .dispatch()
        .await
}

/// Registers `username` with `password`; the answer is the caller's to check.
pub async fn register<'c>(client: &'c Client, username: &str, password: &str) -> LocalResponse<'c> {
    post_json(
        client,
        "/auth/register",
        json!({ "username": username, "password": password }),
    )
    .await
}

/// Logs `username` in (asserting 200) and gives the token response.
pub async fn login(client: &Client, username: &str, password: &str) -> Value {
    let response = post_json(
        client,
        "/auth/login",
        json!({ "username": username, "password": password }),
    )
    .await;
    assert_eq!(response.status(), Status::Ok, "login as {username}");
    response.into_json().await.unwrap()
}
