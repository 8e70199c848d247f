//! What stock OAuth 2.0 clients speak, over HTTP: the refresh grant as a
//! form (RFC 6749 §6) with §5.2's errors, and token revocation (RFC 7009).
//! The JSON contract of `/auth/refresh` stays as it was.

mod common;

use common::{assert_invalid_token, tokens_of, App};
use rocket::http::{ContentType, Status};
use serde_json::Value;

async fn form<'c>(app: &'c App, path: &str, body: &str) -> rocket::local::asynchronous::LocalResponse<'c> {
    app.client
        .post(path.to_string())
        .header(ContentType::Form)
        .body(body)
        .dispatch()
        .await
}

async fn oauth_error(response: rocket::local::asynchronous::LocalResponse<'_>) -> String {
    assert_eq!(response.status(), Status::BadRequest);
    assert_eq!(response.headers().get_one("Cache-Control"), Some("no-store"));
    let body: Value = response.into_json().await.unwrap();
    assert!(body["error_description"].is_string(), "{body}");
    body["error"].as_str().unwrap().to_string()
}

#[rocket::async_test]
async fn a_form_refresh_rotates_as_rfc_6749_says() {
    let app = App::start().await;
    let first = app.login("alice").await;
    let response = form(
        &app,
        "/auth/refresh",
        &format!(
            "grant_type=refresh_token&refresh_token={}&client_id=mobile",
            first.refresh
        ),
    )
    .await;
    assert_eq!(response.status(), Status::Ok);
    let second = tokens_of(response).await;
    assert_eq!(app.whoami_status(&second.access).await, Status::Ok);
    // The old token after the grace window: reuse, as with JSON.
    app.harness.clock().advance(11);
    let replayed = form(
        &app,
        "/auth/refresh",
        &format!("grant_type=refresh_token&refresh_token={}", first.refresh),
    )
    .await;
    assert_eq!(oauth_error(replayed).await, "invalid_grant");
    assert_invalid_token(app.whoami(&second.access).await).await;
}

#[rocket::async_test]
async fn form_refresh_errors_are_rfc_6749_section_5_2s() {
    let app = App::start().await;
    let tokens = app.login("alice").await;
    let cases = [
        ("grant_type=refresh_token&refresh_token=AAAA", "invalid_grant"),
        ("grant_type=refresh_token&refresh_token=", "invalid_grant"),
        ("grant_type=password&username=a&password=b", "unsupported_grant_type"),
        ("refresh_token=AAAA", "invalid_request"),
        ("grant_type=refresh_token", "invalid_request"),
        (
            "grant_type=refresh_token&refresh_token=a&refresh_token=b",
            "invalid_request",
        ),
        ("grant_type=refresh_token&refresh_token=%FF%FE", "invalid_request"),
    ];
    for (body, expected) in cases {
        assert_eq!(
            oauth_error(form(&app, "/auth/refresh", body).await).await,
            expected,
            "{body}"
        );
    }
    let huge = format!("grant_type=refresh_token&refresh_token={}", "A".repeat(64 * 1024));
    assert_eq!(
        oauth_error(form(&app, "/auth/refresh", &huge).await).await,
        "invalid_request"
    );
    // Nothing above touched the session.
    assert_eq!(app.refresh(&tokens.refresh).await.status(), Status::Ok);
}

#[rocket::async_test]
async fn the_json_contract_of_refresh_is_unchanged() {
    let app = App::start().await;
    let tokens = app.login("alice").await;
    assert_invalid_token(app.refresh("AAAA").await).await;
    let garbage = app
        .client
        .post("/auth/refresh")
        .header(ContentType::JSON)
        .body("{not json")
        .dispatch()
        .await;
    assert_eq!(garbage.status(), Status::BadRequest);
    assert_eq!(app.refresh(&tokens.refresh).await.status(), Status::Ok);
}

#[rocket::async_test]
async fn revoking_a_refresh_token_ends_its_session_and_its_access_tokens() {
    let app = App::start().await;
    let phone = app.login("alice").await;
    let laptop = app.login("alice").await;
    let response = form(
        &app,
        "/auth/revoke",
        &format!("token={}&token_type_hint=refresh_token", phone.refresh),
    )
    .await;
    assert_eq!(response.status(), Status::Ok);
    assert_eq!(response.headers().get_one("Cache-Control"), Some("no-store"));
    assert_invalid_token(app.whoami(&phone.access).await).await;
    assert_invalid_token(app.refresh(&phone.refresh).await).await;
    assert_eq!(
        app.whoami_status(&laptop.access).await,
        Status::Ok,
        "another session stays"
    );
    // Again: still 200.
    let again = form(&app, "/auth/revoke", &format!("token={}", phone.refresh)).await;
    assert_eq!(again.status(), Status::Ok);
}

#[rocket::async_test]
async fn revoking_an_access_token_blocklists_it_and_ends_its_session() {
    let app = App::start().await;
    let tokens = app.login("alice").await;
    // The hint is only a hint.
    let response = form(
        &app,
        "/auth/revoke",
        &format!("token={}&token_type_hint=refresh_token", tokens.access),
    )
    .await;
    assert_eq!(response.status(), Status::Ok);
    assert_invalid_token(app.whoami(&tokens.access).await).await;
    assert_invalid_token(app.refresh(&tokens.refresh).await).await;
}

/// Any token, valid or not, is 200 (RFC 7009 §2.2), and junk writes nothing.
#[rocket::async_test]
async fn revoking_junk_answers_200_and_writes_nothing() {
    let app = App::start().await;
    let tokens = app.login("alice").await;
    let before = common::count_rows(&app.harness, "revocation_log");
    for junk in ["AAAA", "", "a.b.c", &"x".repeat(5000), &tokens.refresh[..40]] {
        let response = form(&app, "/auth/revoke", &format!("token={junk}")).await;
        assert_eq!(response.status(), Status::Ok, "{junk}");
    }
    assert_eq!(common::count_rows(&app.harness, "revocation_log"), before);
    assert_eq!(app.whoami_status(&tokens.access).await, Status::Ok);
    let missing = form(&app, "/auth/revoke", "token_type_hint=access_token").await;
    assert_eq!(oauth_error(missing).await, "invalid_request");
    let json = app
        .client
        .post("/auth/revoke")
        .header(ContentType::JSON)
        .body(r#"{"token":"AAAA"}"#)
        .dispatch()
        .await;
    assert_eq!(oauth_error(json).await, "invalid_request");
}

/// A JSON body sent with a form content type (`curl -d '{…}'`) is the
/// crate's JSON contract, not a form missing `grant_type`: an RFC 6749 form
/// never starts with `{`.
#[rocket::async_test]
async fn a_json_body_sent_as_a_form_is_read_as_json() {
    let app = App::start().await;
    let first = app.login("alice").await;
    let response = form(
        &app,
        "/auth/refresh",
        &format!("  {{\"refresh_token\":\"{}\"}}", first.refresh),
    )
    .await;
    assert_eq!(response.status(), Status::Ok);
    let second = tokens_of(response).await;
    assert_eq!(app.whoami_status(&second.access).await, Status::Ok);
    // Refused as JSON is refused: the generic 401, not a §5.2 400.
    assert_invalid_token(
        form(
            &app,
            "/auth/refresh",
            &format!("{{\"refresh_token\":\"{}x\"}}", second.refresh),
        )
        .await,
    )
    .await;
}
