//! Access tokens: what the guard admits and what it refuses.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{assert_invalid_token, bearer, App};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rocket::http::{Header as HttpHeader, Status};
use serde_json::{json, Value};

/// Signs `claims` with `key` and the header fields of a genuine token.
fn forge(genuine: &str, claims: &Value, key: &[u8]) -> String {
    let real = jsonwebtoken::decode_header(genuine).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.typ = real.typ;
    header.kid = real.kid;
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(key).unwrap()).unwrap()
}

/// The claims of a genuine token, unverified.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[rocket::async_test]
async fn login_then_guarded_route_answers_with_the_user() {
    let app = App::start().await;
    let tokens = app.login("alice").await;
    assert_eq!(tokens.expires_in, 900);
    let response = app.whoami(&tokens.access).await;
    assert_eq!(response.status(), Status::Ok);
    let body: Value = response.into_json().await.unwrap();
    assert_eq!(body["user_id"], "alice");
    assert_eq!(body["role"], "member", "app claims travel in the token");
    assert_eq!(claims_of(&tokens.access)["sid"], body["session_id"]);
}

#[rocket::async_test]
async fn missing_token_is_refused() {
    let app = App::start().await;
    assert_invalid_token(app.client.get("/whoami").dispatch().await).await;
}

#[rocket::async_test]
async fn garbage_tokens_are_refused() {
    let app = App::start().await;
    for garbage in ["garbage", "a.b.c", "....", "Bearer", "eyJ.eyJ.", "é.é.é"] {
        assert_invalid_token(app.whoami(garbage).await).await;
    }
    for header in ["Basic YWxpY2U6cHc=", "Bearer", "Bearer ", "bearer"] {
        let response = app
            .client
            .get("/whoami")
            .header(HttpHeader::new("Authorization", header))
            .dispatch()
            .await;
        assert_invalid_token(response).await;
    }
}

#[rocket::async_test]
async fn a_token_in_the_query_string_is_never_read() {
    let app = App::start().await;
    let tokens = app.login("alice").await;
    let response = app
        .client
        .get(format!("/whoami?access_token={}", tokens.access))
        .dispatch()
        .await;
    assert_invalid_token(response).await;
}

#[rocket::async_test]
async fn two_authorization_headers_are_refused() {
    let app = App::start().await;
    let tokens = app.login("alice").await;
    let response = app
        .client
        .get("/whoami")
        .header(bearer(&tokens.access))
        .header(bearer(&tokens.access))
        .dispatch()
        .await;
    assert_invalid_token(response).await;
}

#[rocket::async_test]
async fn a_token_signed_with_another_key_is_refused() {
    let app = App::start().await;
    let tokens = app.login("alice").await;
    let forged = forge(&tokens.access, &claims_of(&tokens.access), &[9u8; 32]);
    assert_invalid_token(app.whoami(&forged).await).await;
    // The same claims with the app's own key pass: the key is what failed.
    let resigned = forge(&tokens.access, &claims_of(&tokens.access), &app.secret());
    assert_eq!(app.whoami_status(&resigned).await, Status::Ok);
}

#[rocket::async_test]
async fn alg_none_is_refused() {
    let app = App::start().await;
    let tokens = app.login("alice").await;
    let real = jsonwebtoken::decode_header(&tokens.access).unwrap();
    let header = json!({ "alg": "none", "typ": real.typ, "kid": real.kid });
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims_of(&tokens.access).to_string())
    );
    assert_invalid_token(app.whoami(&unsigned).await).await;
}

#[rocket::async_test]
async fn another_hmac_algorithm_with_the_right_key_is_refused() {
    let app = App::start().await;
    let tokens = app.login("alice").await;
    let real = jsonwebtoken::decode_header(&tokens.access).unwrap();
    let mut header = Header::new(Algorithm::HS512);
    header.typ = real.typ;
    header.kid = real.kid;
    let other = jsonwebtoken::encode(
        &header,
        &claims_of(&tokens.access),
        &EncodingKey::from_secret(&app.secret()).unwrap(),
    )
    .unwrap();
    assert_invalid_token(app.whoami(&other).await).await;
}

#[rocket::async_test]
async fn a_tampered_payload_is_refused() {
    let app = App::start().await;
    let tokens = app.login("alice").await;
    let mut claims = claims_of(&tokens.access);
    claims["sub"] = json!("mallory");
    let parts: Vec<&str> = tokens.access.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    assert_invalid_token(app.whoami(&tampered).await).await;
}

#[rocket::async_test]
async fn an_expired_token_is_refused() {
    let app = App::start().await;
    let tokens = app.login("alice").await;
    app.harness.clock().advance(899);
    assert_eq!(app.whoami_status(&tokens.access).await, Status::Ok);
    app.harness.clock().advance(1);
    assert_invalid_token(app.whoami(&tokens.access).await).await;
}

#[rocket::async_test]
async fn leeway_extends_acceptance_past_exp() {
    let app = App::configured(|figment| figment.merge(("sessions.leeway", 30))).await;
    let tokens = app.login("alice").await;
    app.harness.clock().advance(900 + 29);
    assert_eq!(app.whoami_status(&tokens.access).await, Status::Ok);
    app.harness.clock().advance(1);
    assert_invalid_token(app.whoami(&tokens.access).await).await;
}

#[rocket::async_test]
async fn a_token_from_the_future_is_refused() {
    let app = App::start().await;
    let tokens = app.login("alice").await;
    let mut claims = claims_of(&tokens.access);
    claims["nbf"] = json!(claims["iat"].as_i64().unwrap() + 60);
    assert_invalid_token(app.whoami(&forge(&tokens.access, &claims, &app.secret())).await).await;
    let mut claims = claims_of(&tokens.access);
    claims["iat"] = json!(claims["iat"].as_i64().unwrap() + 60);
    claims["exp"] = json!(claims["exp"].as_i64().unwrap() + 60);
    assert_invalid_token(app.whoami(&forge(&tokens.access, &claims, &app.secret())).await).await;
}

/// The guard keeps the tokens it has admitted (only their times are checked
/// again): a token seen before is still refused for its times, its
/// revocation, and any byte changed.
#[rocket::async_test]
async fn a_token_seen_before_is_checked_again_for_its_times_and_revocation() {
    let app = App::start().await;
    let tokens = app.login("alice").await;
    let iat = claims_of(&tokens.access)["iat"].as_i64().unwrap();
    assert_eq!(app.whoami_status(&tokens.access).await, Status::Ok, "seen once");
    // One character of the signature or of the payload changed, or one more.
    let mut parts: Vec<String> = tokens.access.split('.').map(str::to_string).collect();
    for part in [2, 1] {
        let mut changed = parts.clone();
        let first = changed[part].remove(0);
        changed[part].insert(0, if first == 'A' { 'B' } else { 'A' });
        assert_invalid_token(app.whoami(&changed.join(".")).await).await;
    }
    parts[2].push('A');
    assert_invalid_token(app.whoami(&parts.join(".")).await).await;
    // A token not yet valid (from a server whose clock is ahead) is refused,
    // then admitted once it is valid.
    let mut claims = claims_of(&tokens.access);
    claims["nbf"] = json!(iat + 60);
    let later = forge(&tokens.access, &claims, &app.secret());
    assert_invalid_token(app.whoami(&later).await).await;
    app.harness.clock().advance(60);
    assert_eq!(app.whoami_status(&later).await, Status::Ok);
    // Another session's logout changes nothing for this one; its own
    // logout refuses both of its tokens, seen before.
    let other = app.login("carol").await;
    assert_eq!(app.post_bearer("/auth/logout", &other.access).await, Status::NoContent);
    assert_invalid_token(app.whoami(&other.access).await).await;
    assert_eq!(app.whoami_status(&tokens.access).await, Status::Ok);
    assert_eq!(app.whoami_status(&tokens.access).await, Status::Ok);
    assert_eq!(app.post_bearer("/auth/logout", &tokens.access).await, Status::NoContent);
    assert_invalid_token(app.whoami(&tokens.access).await).await;
    assert_invalid_token(app.whoami(&later).await).await;
    // Expired: a token seen a second before its `exp`, and at it.
    let tokens = app.login("bob").await;
    app.harness.clock().advance(899);
    assert_eq!(app.whoami_status(&tokens.access).await, Status::Ok);
    app.harness.clock().advance(1);
    assert_invalid_token(app.whoami(&tokens.access).await).await;
}

#[rocket::async_test]
async fn a_refresh_token_is_not_an_access_token_nor_the_reverse() {
    let app = App::start().await;
    let tokens = app.login("alice").await;
    assert_invalid_token(app.whoami(&tokens.refresh).await).await;
    assert_invalid_token(app.refresh(&tokens.access).await).await;
    // The real pair still works: neither attempt spent anything.
    assert_eq!(app.whoami_status(&tokens.access).await, Status::Ok);
    assert_eq!(app.refresh_status(&tokens.refresh).await, Status::Ok);
}

#[rocket::async_test]
async fn issuer_and_audience_are_set_and_required_when_configured() {
    let app = App::configured(|figment| {
        figment
            .merge(("sessions.issuer", "https://auth.example"))
            .merge(("sessions.audience", "example-api"))
    })
    .await;
    let tokens = app.login("alice").await;
    let claims = claims_of(&tokens.access);
    assert_eq!(claims["iss"], "https://auth.example");
    assert_eq!(claims["aud"], "example-api");
    assert_eq!(app.whoami_status(&tokens.access).await, Status::Ok);

    for (claim, value) in [
        ("iss", json!("https://evil.example")),
        ("aud", json!("other-api")),
        ("iss", Value::Null),
        ("aud", Value::Null),
    ] {
        let mut forged = claims.clone();
        if value.is_null() {
            forged.as_object_mut().unwrap().remove(claim);
        } else {
            forged[claim] = value;
        }
        assert_invalid_token(app.whoami(&forge(&tokens.access, &forged, &app.secret())).await).await;
    }
}

#[rocket::async_test]
async fn an_oversized_token_gets_a_quick_401() {
    let app = App::start().await;
    let huge = "a".repeat(1 << 20);
    assert_invalid_token(app.whoami(&huge).await).await;
}

#[rocket::async_test]
async fn optional_auth_admits_anonymous_and_signed_in_callers() {
    let app = App::start().await;
    let tokens = app.login("alice").await;
    let anonymous = app.client.get("/maybe").dispatch().await;
    assert_eq!(anonymous.into_string().await.unwrap(), "anonymous");
    let signed_in = app.client.get("/maybe").header(bearer(&tokens.access)).dispatch().await;
    assert_eq!(signed_in.into_string().await.unwrap(), "alice");
    let bad = app.client.get("/maybe").header(bearer("garbage")).dispatch().await;
    assert_eq!(bad.status(), Status::Ok);
    assert_eq!(bad.into_string().await.unwrap(), "anonymous");
}

#[rocket::async_test]
async fn tokens_outside_a_guard_are_checked_as_the_guard_does() {
    let app = App::start().await;
    let sessions = app.client.rocket().state::<rocket_sqlite_sessions::Sessions>().unwrap();
    let tokens = app.login("alice").await;
    let header = format!("Bearer {}", tokens.access);
    let user = sessions.verify_authorization(&header).expect("a valid token");
    assert_eq!(user.id, "alice");
    assert!(!sessions.is_revoked(&user.session_id, &user.jti));
    for refused in [
        tokens.access.clone(),
        format!("Basic {}", tokens.access),
        format!("Bearer {}x", tokens.access),
    ] {
        assert!(matches!(
            sessions.verify_authorization(&refused),
            Err(rocket_sqlite_sessions::Error::InvalidToken)
        ));
    }

    assert_eq!(app.post_bearer("/auth/logout", &tokens.access).await, Status::NoContent);
    assert!(
        sessions.is_revoked(&user.session_id, "another jti"),
        "the session is revoked"
    );
    assert!(
        sessions.is_revoked("another session", &user.jti),
        "the jti is blocklisted"
    );
    assert!(matches!(
        sessions.verify_authorization(&header),
        Err(rocket_sqlite_sessions::Error::InvalidToken)
    ));
}

/// A refresh copies the session's claims as the store holds them into the
/// new access token (not parsed and written again): claims stored in another
/// spelling of the same object still reach the guard, and a row whose claims
/// are not a JSON object gets no token signed over them.
#[rocket::async_test]
async fn a_refresh_signs_the_stored_claims_and_never_a_corrupt_row() {
    let app = App::start().await;
    let tokens = app.login("alice").await;
    let set_claims = |claims: &str| {
        let connection = rusqlite::Connection::open(app.harness.database()).unwrap();
        let changed = connection
            .execute("UPDATE sessions SET claims = ?1 WHERE user_id = 'alice'", [claims])
            .unwrap();
        assert_eq!(changed, 1);
    };
    set_claims(r#" { "role" : "admin", "team": {"id": 7, "name": "caf\u00e9"} } "#);
    let next = app.rotate(&tokens.refresh).await;
    let claims = claims_of(&next.access);
    assert_eq!(claims["role"], "admin");
    assert_eq!(claims["team"], json!({"id": 7, "name": "café"}));
    assert_eq!(claims["sub"], "alice");
    let body: Value = app.whoami(&next.access).await.into_json().await.unwrap();
    assert_eq!(body["role"], "admin", "the guard reads the claims copied in");
    // A name given twice (a hand-edited row) is read as it always was: the
    // last one.
    set_claims(r#"{"role":"member","role":"admin"}"#);
    let twice = app.rotate(&next.refresh).await;
    let body: Value = app.whoami(&twice.access).await.into_json().await.unwrap();
    assert_eq!(body["role"], "admin");
    let next = twice;
    // No claims at all: the registered claims alone.
    set_claims("{}");
    let bare = app.rotate(&next.refresh).await;
    assert!(claims_of(&bare.access).get("role").is_none());
    assert_eq!(app.whoami_status(&bare.access).await, Status::Ok);
    // Not an object, or not JSON: nothing is signed over it.
    for corrupt in ["[1, 2]", r#"{"role": "admin""#, r#"{"role":"admin"} {"#, "", "null"] {
        set_claims(corrupt);
        let response = app.refresh(&bare.refresh).await;
        assert_eq!(response.status(), Status::InternalServerError, "{corrupt:?}");
        let body = response.into_string().await.unwrap_or_default();
        assert!(!body.contains("eyJ"), "no token in the answer: {body}");
    }
}
