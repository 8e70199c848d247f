//! Key rotation across restarts, login and refresh throttling, fresh logins.

mod common;

use std::net::SocketAddr;

use base64::Engine as _;
use common::{assert_invalid_token, bearer, tokens_of, App};
use rocket::figment::Figment;
use rocket::http::{ContentType, Status};
use rocket::local::asynchronous::LocalResponse;
use rocket::{post, routes};
use rocket_sqlite_sessions::testing::TestHarness;
use rocket_sqlite_sessions::{FreshAuthUser, Sessions};
use serde_json::{json, Value};

fn key(kid: &str, byte: u8) -> Value {
    json!({ "kid": kid, "secret": base64::engine::general_purpose::STANDARD.encode([byte; 32]) })
}

/// The harness's database and clock with `keys`, and no Rocket.toml (whose
/// debug `secret` would clash with `keys`).
fn with_keys(harness: &TestHarness, keys: Value) -> impl FnOnce(Figment) -> Figment {
    let database = harness.database();
    move |_| {
        Figment::from(rocket::Config::debug_default())
            .merge(("sessions.database", database))
            .merge(("sessions.keys", keys))
    }
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[rocket::async_test]
async fn keys_rotate_across_restarts() {
    // 1. One key.
    let harness = TestHarness::new();
    let configure = with_keys(&harness, json!([key("2026-05", 1)]));
    let app = App::start_with(harness, configure).await;
    let old = app.login("alice").await;
    assert_eq!(kid_of(&old.access), "2026-05");

    // 2. A new key first: it signs, the old one still verifies.
    let harness = app.stop().await;
    let configure = with_keys(&harness, json!([key("2026-11", 2), key("2026-05", 1)]));
    let app = App::start_with(harness, configure).await;
    assert_eq!(
        app.whoami_status(&old.access).await,
        Status::Ok,
        "the old key still verifies"
    );
    let new = app.login("alice").await;
    assert_eq!(kid_of(&new.access), "2026-11", "the first key signs");
    let rotated = app.rotate(&old.refresh).await;
    assert_eq!(
        kid_of(&rotated.access),
        "2026-11",
        "a refresh gets a token of the new key"
    );

    // 3. The old key retired: its tokens fail, the new key's pass.
    let harness = app.stop().await;
    let configure = with_keys(&harness, json!([key("2026-11", 2)]));
    let app = App::start_with(harness, configure).await;
    assert_invalid_token(app.whoami(&old.access).await).await;
    assert_eq!(app.whoami_status(&new.access).await, Status::Ok);
    assert_eq!(app.whoami_status(&rotated.access).await, Status::Ok);
}

#[rocket::async_test]
async fn a_token_naming_a_known_kid_but_signed_with_another_key_is_refused() {
    let harness = TestHarness::new();
    let configure = with_keys(&harness, json!([key("a", 1), key("b", 2)]));
    let app = App::start_with(harness, configure).await;
    let tokens = app.login("alice").await;
    assert_eq!(kid_of(&tokens.access), "a");
    // Re-sign the same header (kid "a") with key "b".
    let (input, _) = tokens.access.rsplit_once('.').unwrap();
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&[2u8; 32]).unwrap();
    mac.update(input.as_bytes());
    let forged = format!(
        "{input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    );
    assert_invalid_token(app.whoami(&forged).await).await;
}

// ---- throttling -------------------------------------------------------------

#[post("/sensitive")]
fn sensitive(user: FreshAuthUser) -> String {
    user.id.clone()
}

async fn throttled_app(configure: impl FnOnce(Figment) -> Figment) -> App {
    let harness = TestHarness::new();
    let rocket = common::rocket_on(&harness, configure).mount("/", routes![sensitive]);
    let client = rocket::local::asynchronous::Client::tracked(rocket).await.unwrap();
    App {
        harness: harness.into(),
        client,
    }
}

fn from(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 40000)
}

async fn attempt<'c>(app: &'c App, username: &str, password: &str, ip: &str) -> LocalResponse<'c> {
    app.client
        .post(format!("/try-login/{username}/{password}"))
        .remote(from(ip))
        .dispatch()
        .await
}

async fn refresh_from<'c>(app: &'c App, ip: &str, token: &str) -> LocalResponse<'c> {
    app.client
        .post("/auth/refresh")
        .remote(from(ip))
        .header(ContentType::JSON)
        .body(json!({ "refresh_token": token }).to_string())
        .dispatch()
        .await
}

fn retry_after(response: &LocalResponse<'_>) -> i64 {
    response
        .headers()
        .get_one("Retry-After")
        .expect("Retry-After")
        .parse()
        .unwrap()
}

#[rocket::async_test]
async fn failed_logins_throttle_that_username_until_the_window_passes() {
    let app = throttled_app(|f| {
        f.merge(("sessions.login_max_failures", 3))
            .merge(("sessions.login_failure_window", 600))
    })
    .await;
    for n in 0..3 {
        assert_eq!(
            attempt(&app, "alice", "wrong", "192.0.2.1").await.status(),
            Status::Unauthorized
        );
        app.harness.clock().advance(10 * n + 1);
    }
    // Failures at t, t+1 and t+12; now is t+33: the first leaves the window at t+600.
    let refused = attempt(&app, "alice", "right", "192.0.2.1").await;
    assert_eq!(
        refused.status(),
        Status::TooManyRequests,
        "a right password is throttled too"
    );
    let wait = retry_after(&refused);
    assert_eq!(wait, 600 - 33);
    let body: Value = refused.into_json().await.unwrap();
    assert_eq!(body["error"], "too_many_attempts");

    assert_eq!(
        attempt(&app, "bob", "right", "192.0.2.1").await.status(),
        Status::Ok,
        "other usernames are unaffected"
    );
    app.harness.clock().advance(wait - 1);
    assert_eq!(
        attempt(&app, "alice", "right", "192.0.2.1").await.status(),
        Status::TooManyRequests
    );
    app.harness.clock().advance(1);
    assert_eq!(
        attempt(&app, "alice", "right", "192.0.2.1").await.status(),
        Status::Ok,
        "the window passed"
    );
}

#[rocket::async_test]
async fn a_successful_login_forgets_the_usernames_failures() {
    let app = throttled_app(|f| f.merge(("sessions.login_max_failures", 3))).await;
    for _ in 0..2 {
        attempt(&app, "alice", "wrong", "192.0.2.1").await;
    }
    assert_eq!(attempt(&app, "alice", "right", "192.0.2.1").await.status(), Status::Ok);
    for _ in 0..2 {
        attempt(&app, "alice", "wrong", "192.0.2.1").await;
    }
    assert_eq!(attempt(&app, "alice", "right", "192.0.2.1").await.status(), Status::Ok);
}

#[rocket::async_test]
async fn failed_logins_from_one_network_throttle_its_logins_but_never_a_genuine_refresh() {
    let app = throttled_app(|f| {
        f.merge(("sessions.ip_max_failures", 4))
            .merge(("sessions.login_max_failures", 100))
    })
    .await;
    let honest = app.login("carol").await;
    for _ in 0..10 {
        let response = refresh_from(&app, "198.51.100.7", &"A".repeat(96)).await;
        assert_eq!(
            response.status(),
            Status::Unauthorized,
            "junk refreshes are refused, not counted"
        );
    }
    for user in ["u1", "u2", "u3", "u4"] {
        assert_eq!(
            attempt(&app, user, "wrong", "198.51.100.7").await.status(),
            Status::Unauthorized
        );
    }
    let login = attempt(&app, "u5", "right", "198.51.100.7").await;
    assert_eq!(login.status(), Status::TooManyRequests);
    assert!(retry_after(&login) > 0);
    let refresh = refresh_from(&app, "198.51.100.7", &honest.refresh).await;
    assert_eq!(
        refresh.status(),
        Status::Ok,
        "a genuine refresh token is never refused by the network's throttle"
    );

    assert_eq!(
        attempt(&app, "u5", "right", "203.0.113.9").await.status(),
        Status::Ok,
        "other networks are not throttled"
    );
    app.harness.clock().advance(900);
    assert_eq!(
        attempt(&app, "u5", "right", "198.51.100.7").await.status(),
        Status::Ok,
        "the window passed"
    );
}

#[rocket::async_test]
async fn an_ipv6_64_counts_as_one_network_and_a_mapped_ipv4_as_its_ipv4() {
    let app = throttled_app(|f| {
        f.merge(("sessions.ip_max_failures", 3))
            .merge(("sessions.login_max_failures", 100))
    })
    .await;
    for (user, ip) in [
        ("u1", "2001:db8:1:2::1"),
        ("u2", "2001:db8:1:2::ff"),
        ("u3", "2001:db8:1:2:abcd::3"),
    ] {
        assert_eq!(attempt(&app, user, "wrong", ip).await.status(), Status::Unauthorized);
    }
    assert_eq!(
        attempt(&app, "u4", "right", "2001:db8:1:2::9").await.status(),
        Status::TooManyRequests,
        "one /64, one counter"
    );
    assert_eq!(
        attempt(&app, "u4", "right", "2001:db8:1:3::9").await.status(),
        Status::Ok,
        "the next /64 is another network"
    );
    for (user, ip) in [("v1", "192.0.2.7"), ("v2", "::ffff:192.0.2.7"), ("v3", "192.0.2.7")] {
        assert_eq!(attempt(&app, user, "wrong", ip).await.status(), Status::Unauthorized);
    }
    assert_eq!(
        attempt(&app, "v4", "right", "::ffff:192.0.2.7").await.status(),
        Status::TooManyRequests,
        "an IPv4-mapped address counts as the IPv4 address"
    );
}

/// The failure counters' scopes stored in `harness`'s database.
fn stored_scopes(harness: &TestHarness) -> Vec<Vec<u8>> {
    rusqlite::Connection::open(harness.database())
        .unwrap()
        .prepare("SELECT scope FROM auth_failures ORDER BY scope")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[rocket::async_test]
async fn failure_counters_hold_keyed_hashes_only_and_go_after_the_window() {
    let app = throttled_app(|f| f.merge(("sessions.auto_prune", false))).await;
    attempt(&app, "alice-secret-name", "wrong", "192.0.2.1").await;
    assert_eq!(
        common::count_rows(&app.harness, "auth_failures"),
        3,
        "a counter for the username from this network, for the username, for the network"
    );
    let bytes = std::fs::read(app.harness.database()).unwrap_or_default();
    let wal = std::fs::read(format!("{}-wal", app.harness.database().display())).unwrap_or_default();
    for file in [bytes, wal] {
        assert!(
            !file.windows(17).any(|w| w == b"alice-secret-name"),
            "no username on disk"
        );
    }
    // Keyed: another server (another secret) counts the same name and address
    // under other scopes, so a stolen file cannot be matched against guesses.
    let other = throttled_app(|f| f).await;
    attempt(&other, "alice-secret-name", "wrong", "192.0.2.1").await;
    let (ours, theirs) = (stored_scopes(&app.harness), stored_scopes(&other.harness));
    assert_eq!((ours.len(), theirs.len()), (3, 3));
    assert!(
        ours.iter().all(|scope| !theirs.contains(scope)),
        "scopes depend on the key"
    );

    let sessions = app.client.rocket().state::<Sessions>().unwrap();
    assert_eq!(sessions.prune_now().await.unwrap().auth_failures, 0);
    app.harness.clock().advance(900);
    assert_eq!(sessions.prune_now().await.unwrap().auth_failures, 3);
    assert_eq!(common::count_rows(&app.harness, "auth_failures"), 0);
}

// ---- fresh logins -----------------------------------------------------------

#[rocket::async_test]
async fn a_sensitive_action_needs_a_recent_login_even_after_refreshes() {
    let app = throttled_app(|f| f.merge(("sessions.fresh_age", 300))).await;
    let tokens = app.login("alice").await;
    let fresh = app
        .client
        .post("/sensitive")
        .header(bearer(&tokens.access))
        .dispatch()
        .await;
    assert_eq!(fresh.status(), Status::Ok);

    app.harness.clock().advance(301);
    let refreshed = tokens_of(app.refresh(&tokens.refresh).await).await;
    assert_eq!(
        app.whoami_status(&refreshed.access).await,
        Status::Ok,
        "the session itself is fine"
    );
    let stale = app
        .client
        .post("/sensitive")
        .header(bearer(&refreshed.access))
        .dispatch()
        .await;
    assert_eq!(stale.status(), Status::Unauthorized);
    assert_eq!(
        stale.headers().get_one("WWW-Authenticate"),
        Some(r#"Bearer error="insufficient_user_authentication", max_age=300"#)
    );
    let body: Value = stale.into_json().await.unwrap();
    assert_eq!(body["error"], "insufficient_user_authentication");

    let relogin = app.login("alice").await;
    let again = app
        .client
        .post("/sensitive")
        .header(bearer(&relogin.access))
        .dispatch()
        .await;
    assert_eq!(again.status(), Status::Ok);
    assert_invalid_token(app.client.post("/sensitive").header(bearer("garbage")).dispatch().await).await;
}

#[rocket::async_test]
async fn strangers_cannot_lock_a_user_out_of_a_network_they_signed_in_from() {
    let app = throttled_app(|f| {
        f.merge(("sessions.login_max_failures", 10))
            .merge(("sessions.login_max_failures_global", 30))
    })
    .await;
    assert_eq!(
        attempt(&app, "alice", "right", "192.0.2.1").await.status(),
        Status::Ok,
        "alice signs in from home"
    );
    // Ten strangers' networks, ten wrong passwords each.
    for network in 0..10 {
        for _ in 0..10 {
            attempt(&app, "alice", "wrong", &format!("203.0.113.{network}")).await;
        }
    }
    let stranger = attempt(&app, "alice", "wrong", "203.0.113.0").await;
    assert_eq!(stranger.status(), Status::TooManyRequests);
    assert_eq!(
        attempt(&app, "alice", "right", "192.0.2.1").await.status(),
        Status::Ok,
        "home, where alice signed in before, is not locked by strangers"
    );
    assert_eq!(
        attempt(&app, "alice", "right", "198.51.100.1").await.status(),
        Status::TooManyRequests,
        "a new network meets the cap for all networks together"
    );
}

// ---- refresh tokens issued before the second format --------------------------

/// A refresh token as the crate issued them before the second format (until
/// December 2026): generation `generation` of session `session`,
/// tagged with HMAC-SHA-256 under the key derived from `secret`, and the
/// SHA-256 the store kept of it.
fn first_format_token(secret: &[u8], session: &[u8], generation: u64) -> (String, Vec<u8>) {
    use hmac::{KeyInit, Mac};
    use sha2::Digest;
    let mut derive = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    derive.update(b"rocket_sqlite_sessions refresh key");
    let key = derive.finalize().into_bytes();
    let mut bytes = Vec::from(session);
    bytes.extend_from_slice(&generation.to_be_bytes());
    bytes.extend_from_slice(&[7u8; 32]);
    let mut tag = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    tag.update(b"tag\0");
    tag.update(&bytes);
    bytes.extend_from_slice(&tag.finalize().into_bytes()[..16]);
    let hash = sha2::Sha256::digest(&bytes).to_vec();
    (base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes), hash)
}

fn generation_field(refresh: &str) -> [u8; 8] {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(refresh)
        .unwrap();
    bytes[16..24].try_into().unwrap()
}

#[rocket::async_test]
async fn a_refresh_token_issued_before_the_second_format_still_rotates_once() {
    let app = App::start().await;
    let tokens = app.login("alice").await;
    assert_eq!(
        generation_field(&tokens.refresh)[0],
        0x80,
        "new tokens have the second format"
    );
    // The session as a database of the previous version holds it: its
    // current token of the first format, stored as its SHA-256.
    let session = &base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&tokens.refresh)
        .unwrap()[..16];
    let (old, hash) = first_format_token(&app.secret(), session, 0);
    let connection = rusqlite::Connection::open(app.harness.database()).unwrap();
    let changed = connection
        .execute(
            "UPDATE sessions SET refresh_hash = ?1 WHERE refresh_generation = 0",
            [&hash],
        )
        .unwrap();
    assert_eq!(changed, 1);

    assert_invalid_token(app.refresh(&tokens.refresh).await).await;
    let next = app.rotate(&old).await;
    assert_eq!(
        generation_field(&next.refresh),
        [0x80, 0, 0, 0, 0, 0, 0, 1],
        "its successor has the second format"
    );
    assert_eq!(app.whoami_status(&next.access).await, Status::Ok);
    // Within the grace window the old token gets the same successor again.
    assert_eq!(app.rotate(&old).await.refresh, next.refresh);
    let after = app.rotate(&next.refresh).await;
    assert_eq!(generation_field(&after.refresh)[7], 2);
    // Past its successor's rotation the old token is reuse: the session ends.
    assert_invalid_token(app.refresh(&old).await).await;
    assert_invalid_token(app.refresh(&after.refresh).await).await;
    assert_eq!(app.whoami_status(&after.access).await, Status::Unauthorized);
}
