//! The SQLite store under trouble: a 503, nothing lost.

mod common;

use common::App;
use rocket::http::Status;
use serde_json::Value;

#[rocket::async_test]
async fn a_locked_database_gets_503_and_loses_nothing_committed() {
    let app = App::start().await;
    let before = app.login("alice").await;

    // Another process holds the write lock longer than the busy timeout.
    let blocker = rusqlite::Connection::open(app.harness.database()).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let response = app.client.post("/login/bob").dispatch().await;
    assert_eq!(response.status(), Status::ServiceUnavailable);
    assert_eq!(response.headers().get_one("Retry-After"), Some("1"));
    let body: Value = response.into_json().await.unwrap();
    assert_eq!(body["error"], "unavailable");
    assert!(
        !body.to_string().contains("sqlite"),
        "no store detail reaches the client: {body}"
    );

    // Reads of what is revoked come from memory: the guard still answers.
    assert_eq!(app.whoami_status(&before.access).await, Status::Ok);

    blocker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(
        app.refresh_status(&before.refresh).await,
        Status::Ok,
        "committed sessions survive"
    );
    app.login("bob").await;
}
