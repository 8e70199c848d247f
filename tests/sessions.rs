//! Sessions over HTTP: rotation, reuse detection, logout, the device list,
//! restarts and timeouts.

mod common;

use common::{assert_invalid_token, bearer, App};
use rocket::futures::future::join_all;
use rocket::http::{ContentType, Header, Status};
use serde_json::json;

#[rocket::async_test]
async fn refresh_rotates_and_the_old_token_then_fails() {
    let app = App::start().await;
    let first = app.login("alice").await;
    let second = app.rotate(&first.refresh).await;
    assert_ne!(second.refresh, first.refresh);
    assert_ne!(second.access, first.access);
    assert_eq!(app.whoami_status(&second.access).await, Status::Ok);
    app.harness.clock().advance(11); // past reuse_grace = 10
    assert_invalid_token(app.refresh(&first.refresh).await).await;
}

#[rocket::async_test]
async fn reuse_after_the_grace_window_revokes_the_whole_session() {
    let app = App::start().await;
    let first = app.login("alice").await;
    let second = app.rotate(&first.refresh).await;
    let third = app.rotate(&second.refresh).await;
    app.harness.clock().advance(11);

    // An attacker replays the first token.
    assert_invalid_token(app.refresh(&first.refresh).await).await;

    // The legitimate client's newest tokens die with the session.
    assert_invalid_token(app.whoami(&third.access).await).await;
    assert_invalid_token(app.whoami(&second.access).await).await;
    assert_invalid_token(app.refresh(&third.refresh).await).await;
}

#[rocket::async_test]
async fn reuse_within_the_grace_window_gets_the_same_successor_and_keeps_the_session() {
    let app = App::start().await;
    let first = app.login("alice").await;
    let tab_one = app.rotate(&first.refresh).await;
    app.harness.clock().advance(5);
    let tab_two = app.rotate(&first.refresh).await;
    assert_eq!(tab_two.refresh, tab_one.refresh, "the same successor: one live branch");
    assert_ne!(tab_two.access, tab_one.access, "each request gets its own access token");
    assert_eq!(app.whoami_status(&tab_one.access).await, Status::Ok);
    assert_eq!(app.whoami_status(&tab_two.access).await, Status::Ok);
    let next = app.rotate(&tab_one.refresh).await;
    assert_eq!(
        app.rotate(&tab_two.refresh).await.refresh,
        next.refresh,
        "the other tab, moments later, gets the same successor again"
    );
    assert_eq!(app.refresh_status(&next.refresh).await, Status::Ok);
}

#[rocket::async_test]
async fn grace_window_does_not_slide_with_each_reuse() {
    let app = App::start().await;
    let first = app.login("alice").await;
    let newest = app.rotate(&first.refresh).await;
    app.harness.clock().advance(8);
    assert_eq!(app.refresh_status(&first.refresh).await, Status::Ok);
    app.harness.clock().advance(3); // 11 s after the first rotation
    assert_invalid_token(app.refresh(&first.refresh).await).await;
    assert_invalid_token(app.whoami(&newest.access).await).await;
}

#[rocket::async_test]
async fn without_grace_two_racing_refreshes_never_both_rotate() {
    let app = App::configured(|figment| figment.merge(("sessions.reuse_grace", 0))).await;
    let first = app.login("alice").await;
    let (a, b) = rocket::tokio::join!(app.refresh(&first.refresh), app.refresh(&first.refresh));
    let statuses = [a.status(), b.status()];
    assert!(
        statuses.iter().filter(|s| **s == Status::Ok).count() <= 1,
        "at most one rotation wins: {statuses:?}"
    );
    assert!(statuses.contains(&Status::Unauthorized), "{statuses:?}");
}

#[rocket::async_test]
async fn concurrent_refreshes_within_grace_all_succeed_and_the_session_lives() {
    let app = App::start().await;
    let first = app.login("alice").await;
    let responses = join_all((0..8).map(|_| app.refresh(&first.refresh))).await;
    let mut newest = None;
    for response in responses {
        assert_eq!(response.status(), Status::Ok);
        newest = Some(common::tokens_of(response).await);
    }
    let newest = newest.unwrap();
    assert_eq!(app.whoami_status(&newest.access).await, Status::Ok);
    assert_eq!(app.refresh_status(&newest.refresh).await, Status::Ok);
}

#[rocket::async_test]
async fn logout_ends_that_session_only() {
    let app = App::start().await;
    let laptop = app.login("alice").await;
    let phone = app.login("alice").await;
    assert_eq!(app.post_bearer("/auth/logout", &laptop.access).await, Status::NoContent);

    assert_invalid_token(app.whoami(&laptop.access).await).await;
    assert_invalid_token(app.refresh(&laptop.refresh).await).await;
    assert_eq!(app.whoami_status(&phone.access).await, Status::Ok);
    assert_eq!(app.refresh_status(&phone.refresh).await, Status::Ok);
    // Logging out twice with the same token is refused like any revoked token.
    assert_eq!(
        app.post_bearer("/auth/logout", &laptop.access).await,
        Status::Unauthorized
    );
}

#[rocket::async_test]
async fn logout_all_ends_every_session_of_the_user_only() {
    let app = App::start().await;
    let laptop = app.login("alice").await;
    let phone = app.login("alice").await;
    let bob = app.login("bob").await;
    assert_eq!(
        app.post_bearer("/auth/logout-all", &laptop.access).await,
        Status::NoContent
    );

    for tokens in [&laptop, &phone] {
        assert_invalid_token(app.whoami(&tokens.access).await).await;
        assert_invalid_token(app.refresh(&tokens.refresh).await).await;
    }
    assert_eq!(app.whoami_status(&bob.access).await, Status::Ok);
    assert_eq!(app.refresh_status(&bob.refresh).await, Status::Ok);
}

#[rocket::async_test]
async fn the_session_list_marks_the_current_session_and_shows_the_device() {
    let app = App::start().await;
    let laptop = app.login("alice").await;
    let phone_response = app
        .client
        .post("/login/alice")
        .header(Header::new("User-Agent", "Phone/1.0"))
        .dispatch()
        .await;
    let phone = common::tokens_of(phone_response).await;
    app.login("bob").await;

    let listed = app.sessions(&laptop.access).await;
    assert_eq!(listed.len(), 2, "only alice's sessions: {listed:?}");
    let current: Vec<_> = listed.iter().filter(|s| s["current"] == json!(true)).collect();
    assert_eq!(current.len(), 1);
    let whoami: serde_json::Value = app.whoami(&laptop.access).await.into_json().await.unwrap();
    assert_eq!(current[0]["id"], whoami["session_id"]);
    let other = listed.iter().find(|s| s["current"] == json!(false)).unwrap();
    assert_eq!(other["user_agent"], "Phone/1.0");
    for field in [
        "id",
        "created_at",
        "last_seen_at",
        "expires_at",
        "ip",
        "user_agent",
        "current",
    ] {
        assert!(other.get(field).is_some(), "field {field} in {other}");
    }

    // From the phone, the phone's session is the current one.
    let from_phone = app.sessions(&phone.access).await;
    let current = from_phone.iter().find(|s| s["current"] == json!(true)).unwrap();
    assert_eq!(current["id"], other["id"]);
}

#[rocket::async_test]
async fn a_user_revokes_their_own_device_but_never_another_users_session() {
    let app = App::start().await;
    let laptop = app.login("alice").await;
    let phone = app.login("alice").await;
    let bob = app.login("bob").await;
    let bob_session = app.sessions(&bob.access).await[0]["id"].as_str().unwrap().to_string();

    let response = app
        .client
        .delete(format!("/auth/sessions/{bob_session}"))
        .header(bearer(&laptop.access))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::NotFound);
    assert_eq!(app.whoami_status(&bob.access).await, Status::Ok, "bob is untouched");

    let unknown = app
        .client
        .delete(format!("/auth/sessions/{}", "x".repeat(5000)))
        .header(bearer(&laptop.access))
        .dispatch()
        .await;
    assert_eq!(unknown.status(), Status::NotFound);

    let phone_session = app
        .sessions(&laptop.access)
        .await
        .into_iter()
        .find(|s| s["current"] == json!(false))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let response = app
        .client
        .delete(format!("/auth/sessions/{phone_session}"))
        .header(bearer(&laptop.access))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::NoContent);
    assert_invalid_token(app.whoami(&phone.access).await).await;
    assert_invalid_token(app.refresh(&phone.refresh).await).await;
    assert_eq!(app.whoami_status(&laptop.access).await, Status::Ok);
    assert_eq!(app.sessions(&laptop.access).await.len(), 1);
}

#[rocket::async_test]
async fn a_restart_keeps_valid_tokens_valid_and_revoked_ones_revoked() {
    let app = App::start().await;
    let kept = app.login("alice").await;
    let ended = app.login("alice").await;
    let rotated_from = app.login("bob").await;
    let rotated = app.rotate(&rotated_from.refresh).await;
    assert_eq!(app.post_bearer("/auth/logout", &ended.access).await, Status::NoContent);

    let harness = app.stop().await;
    let app = App::start_with(harness, |figment| figment).await;

    assert_eq!(app.whoami_status(&kept.access).await, Status::Ok);
    assert_invalid_token(app.whoami(&ended.access).await).await;
    assert_invalid_token(app.refresh(&ended.refresh).await).await;
    assert_eq!(app.whoami_status(&rotated.access).await, Status::Ok);
    // Reuse detection survives the restart too.
    app.harness.clock().advance(11);
    assert_invalid_token(app.refresh(&rotated_from.refresh).await).await;
    assert_invalid_token(app.whoami(&rotated.access).await).await;
    assert_eq!(app.refresh_status(&kept.refresh).await, Status::Ok);
}

#[rocket::async_test]
async fn the_database_never_holds_a_raw_refresh_token() {
    let app = App::start().await;
    let mut issued = Vec::new();
    for user in ["alice", "bob", "carol"] {
        let tokens = app.login(user).await;
        let rotated = app.rotate(&tokens.refresh).await;
        issued.push(tokens.refresh);
        issued.push(rotated.refresh);
    }
    let harness = app.stop().await;
    let mut files = 0;
    for entry in std::fs::read_dir(harness.directory()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        files += 1;
        for token in &issued {
            let found = bytes.windows(token.len()).any(|window| window == token.as_bytes());
            assert!(!found, "a raw refresh token is in the database files");
        }
    }
    assert!(files >= 1);
}

#[rocket::async_test]
async fn the_idle_timeout_ends_a_session_that_is_not_refreshed() {
    let app = App::configured(|figment| {
        figment
            .merge(("sessions.access_ttl", 60))
            .merge(("sessions.idle_timeout", 600))
    })
    .await;
    let kept = app.login("alice").await;
    let idle = app.login("alice").await;
    app.harness.clock().advance(599);
    let kept = app.rotate(&kept.refresh).await;
    app.harness.clock().advance(1);
    assert_invalid_token(app.refresh(&idle.refresh).await).await;
    app.harness.clock().advance(598);
    assert_eq!(
        app.refresh_status(&kept.refresh).await,
        Status::Ok,
        "a refresh restarts the idle clock"
    );
    assert_eq!(
        app.sessions(&app.login("alice").await.access).await.len(),
        2,
        "the idle session is not listed"
    );
}

#[rocket::async_test]
async fn the_absolute_timeout_ends_a_session_however_often_it_is_refreshed() {
    let app = App::configured(|figment| {
        figment
            .merge(("sessions.access_ttl", 60))
            .merge(("sessions.idle_timeout", 100))
            .merge(("sessions.absolute_timeout", 250))
    })
    .await;
    let mut tokens = app.login("alice").await;
    for _ in 0..4 {
        app.harness.clock().advance(60);
        tokens = app.rotate(&tokens.refresh).await;
    }
    // 240 s after login: the access token is cut to the session's last 10 s.
    assert_eq!(tokens.expires_in, 10);
    app.harness.clock().advance(9);
    assert_eq!(app.whoami_status(&tokens.access).await, Status::Ok);
    app.harness.clock().advance(1);
    assert_invalid_token(app.whoami(&tokens.access).await).await;
    assert_invalid_token(app.refresh(&tokens.refresh).await).await;
}

#[rocket::async_test]
async fn an_expired_refresh_token_is_refused() {
    let app = App::configured(|figment| figment.merge(("sessions.refresh_ttl", 1000))).await;
    let tokens = app.login("alice").await;
    app.harness.clock().advance(1000);
    assert_invalid_token(app.refresh(&tokens.refresh).await).await;
}

#[rocket::async_test]
async fn bad_refresh_bodies_get_a_4xx_never_a_5xx() {
    let app = App::start().await;
    let cases: Vec<(Vec<u8>, Status)> = vec![
        // One byte that is not UTF-8: malformed, not too large.
        (vec![0xFF], Status::BadRequest),
        (b"{\"refresh_token\": \"\xC3\"}".to_vec(), Status::BadRequest),
    ];
    let cases = cases.into_iter().chain(
        Vec::<(String, Status)>::from([
            ("not json".into(), Status::BadRequest),
            ("{}".into(), Status::BadRequest),
            (json!({ "refresh_token": 5 }).to_string(), Status::BadRequest),
            (json!({ "refresh_token": "" }).to_string(), Status::Unauthorized),
            (
                json!({ "refresh_token": "x".repeat(100_000) }).to_string(),
                Status::Unauthorized,
            ),
            (
                json!({ "refresh_token": "é".repeat(43) }).to_string(),
                Status::Unauthorized,
            ),
            (
                format!("{{\"refresh_token\": \"{}\"}}", "a".repeat(2 << 20)),
                Status::PayloadTooLarge,
            ),
        ])
        .into_iter()
        .map(|(body, status)| (body.into_bytes(), status)),
    );
    for (body, expected) in cases {
        let response = app
            .client
            .post("/auth/refresh")
            .header(ContentType::JSON)
            .body(body)
            .dispatch()
            .await;
        assert_eq!(response.status(), expected);
        let error: serde_json::Value = response.into_json().await.expect("a JSON error body");
        assert!(error["error"].is_string());
    }
}

#[rocket::async_test]
async fn each_login_gets_a_fresh_random_session_id() {
    let app = App::start().await;
    let mut ids = std::collections::HashSet::new();
    for _ in 0..20 {
        let tokens = app.login("alice").await;
        let whoami: serde_json::Value = app.whoami(&tokens.access).await.into_json().await.unwrap();
        let id = whoami["session_id"].as_str().unwrap().to_string();
        assert_eq!(id.len(), 22, "128 random bits, base64url");
        ids.insert(id);
    }
    assert_eq!(ids.len(), 20, "no session id is ever reused");
}

/// Ending or renaming another session of the user needs a recent sign-in
/// (ASVS 5.0 7.5.2): an old session, even refreshed, answers 401
/// `insufficient_user_authentication` with `max_age` and ends nothing; its
/// own session it may end or name; a fresh sign-in may do it all.
#[rocket::async_test]
async fn ending_or_renaming_other_sessions_needs_a_recent_sign_in() {
    let app = App::start().await;
    let old = app.login("alice").await;
    let other = app.login("alice").await;
    let other_id = common::session_id_of(&other.access);
    app.harness.clock().advance(301); // past fresh_age (300)
                                      // A thief holding the old refresh token refreshes it: the sign-in stays old.
    let stolen = app.rotate(&old.refresh).await;
    let stale = |response: &rocket::local::asynchronous::LocalResponse<'_>| {
        assert_eq!(response.status(), Status::Unauthorized);
        assert_eq!(
            response.headers().get_one("WWW-Authenticate"),
            Some(r#"Bearer error="insufficient_user_authentication", max_age=300"#)
        );
    };
    let response = app
        .client
        .post("/auth/logout-others")
        .header(bearer(&stolen.access))
        .dispatch()
        .await;
    stale(&response);
    let response = app
        .client
        .delete(format!("/auth/sessions/{other_id}"))
        .header(bearer(&stolen.access))
        .dispatch()
        .await;
    stale(&response);
    let response = app
        .client
        .put(format!("/auth/sessions/{other_id}/label"))
        .header(bearer(&stolen.access))
        .header(ContentType::JSON)
        .body(json!({ "label": "Unknown device (suspicious)" }).to_string())
        .dispatch()
        .await;
    stale(&response);
    assert_eq!(app.whoami_status(&other.access).await, Status::Ok, "nothing ended");
    let listed = app.sessions(&other.access).await;
    assert!(
        listed.iter().all(|session| session["label"].is_null()),
        "nothing renamed"
    );

    // Its own session it may name and end.
    let own = common::session_id_of(&stolen.access);
    let named = app
        .client
        .put(format!("/auth/sessions/{own}/label"))
        .header(bearer(&stolen.access))
        .header(ContentType::JSON)
        .body(json!({ "label": "Old laptop" }).to_string())
        .dispatch()
        .await;
    assert_eq!(named.status(), Status::NoContent);

    // A fresh sign-in may end the others.
    let fresh = app.login("alice").await;
    let ended = app
        .client
        .delete(format!("/auth/sessions/{own}"))
        .header(bearer(&fresh.access))
        .dispatch()
        .await;
    assert_eq!(ended.status(), Status::NoContent);
    assert_eq!(
        app.post_bearer("/auth/logout-others", &fresh.access).await,
        Status::NoContent
    );
    assert_invalid_token(app.whoami(&other.access).await).await;
    assert_eq!(app.whoami_status(&fresh.access).await, Status::Ok);
}
