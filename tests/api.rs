//! The app-facing API: typed claims, fresh roles, authorization, events,
//! launch checks.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::logs::{capture_logs, logged};
use common::{bearer, tokens_of, App, Tokens};
use rocket::figment::Figment;
use rocket::http::{ContentType, Status};
use rocket::local::asynchronous::Client;
use rocket::serde::json::Json;
use rocket::{get, post, routes, State};
use rocket_sqlite_sessions::testing::TestHarness;
use rocket_sqlite_sessions::{
    AuthUser, Authorized, ClientInfo, Error, ErrorResponse, LoginOptions, Policy, SessionEvent, Sessions,
    SessionsFairing, TokenPair,
};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
struct Claims {
    roles: Vec<String>,
}

struct Admin;

impl Policy for Admin {
    type Claims = Claims;

    fn allows(user: &AuthUser<Claims>) -> bool {
        user.claims.roles.iter().any(|role| role == "admin")
    }
}

#[post("/login-as/<user>/<role>")]
async fn login_as(sessions: &State<Sessions>, client: ClientInfo, user: &str, role: &str) -> Result<TokenPair, Error> {
    sessions.login(user, json!({ "roles": [role] }), &client).await
}

#[get("/roles")]
fn roles(user: AuthUser<Claims>) -> Json<Vec<String>> {
    Json(user.claims.roles)
}

#[get("/admin")]
fn admin(user: Authorized<Admin>) -> String {
    format!("welcome, {}", user.id)
}

#[post("/demote/<user>")]
async fn demote(sessions: &State<Sessions>, user: &str) -> Result<Json<usize>, Error> {
    Ok(Json(
        sessions.update_claims(user, json!({ "roles": ["member"] })).await?,
    ))
}

#[post("/browser-login/<user>/<remember>")]
async fn browser_login(
    sessions: &State<Sessions>,
    client: ClientInfo,
    cookies: &rocket::http::CookieJar<'_>,
    user: &str,
    remember: bool,
) -> Result<(), Error> {
    let options = if remember {
        LoginOptions::new()
    } else {
        LoginOptions::new().session_only()
    };
    let pair = sessions
        .login_with(user, json!({ "roles": [] }), &client, options)
        .await?;
    sessions.set_cookies(cookies, &pair);
    Ok(())
}

#[post("/login-for/<user>/<refresh_ttl>/<absolute_timeout>")]
async fn login_for(
    sessions: &State<Sessions>,
    client: ClientInfo,
    user: &str,
    refresh_ttl: u64,
    absolute_timeout: u64,
) -> Result<TokenPair, Error> {
    let options = LoginOptions::new()
        .refresh_ttl(Duration::from_secs(refresh_ttl))
        .absolute_timeout(Duration::from_secs(absolute_timeout));
    sessions.login_with(user, (), &client, options).await
}

#[get("/teapot")]
fn teapot() -> ErrorResponse {
    ErrorResponse::new(Status::ImATeapot, "teapot", "Short and stout.")
}

/// The test app on a fresh harness, with `fairing` (from the harness) changed.
/// A wrong password for the username in the body, every time.
#[post("/guess", data = "<username>")]
async fn guess(sessions: &State<Sessions>, client: ClientInfo, username: String) -> Result<Status, Error> {
    sessions.credential_check(&username, &client).await?.failed().await?;
    Ok(Status::Unauthorized)
}

async fn app_with(fairing: impl FnOnce(SessionsFairing) -> SessionsFairing) -> App {
    let harness = Arc::new(TestHarness::new());
    capture_logs();
    let figment = harness.figment().merge(("limits.string", "2 MiB"));
    let rocket = common::with_routes(rocket::custom(figment).attach(fairing(harness.fairing()))).mount(
        "/",
        routes![login_as, roles, admin, demote, teapot, browser_login, login_for, guess],
    );
    let client = Client::tracked(rocket).await.expect("the app launches");
    App { harness, client }
}

async fn login_as_role(app: &App, user: &str, role: &str) -> Tokens {
    let response = app.client.post(format!("/login-as/{user}/{role}")).dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    tokens_of(response).await
}

async fn get(app: &App, path: &str, access: &str) -> (Status, String) {
    let response = app.client.get(path.to_string()).header(bearer(access)).dispatch().await;
    (response.status(), response.into_string().await.unwrap_or_default())
}

#[rocket::async_test]
async fn typed_claims_are_deserialised_for_the_route_and_a_token_without_them_is_refused() {
    let app = app_with(|fairing| fairing).await;
    let admin = login_as_role(&app, "ada", "admin").await;
    assert_eq!(
        get(&app, "/roles", &admin.access).await,
        (Status::Ok, r#"["admin"]"#.into())
    );
    // The test app's plain login gives claims without `roles`.
    let plain = app.login("bob").await;
    assert_eq!(get(&app, "/roles", &plain.access).await.0, Status::Unauthorized);
    assert_eq!(
        app.whoami_status(&plain.access).await,
        Status::Ok,
        "AuthUser keeps the JSON object"
    );
}

#[rocket::async_test]
async fn the_policy_guard_admits_admins_and_answers_403_to_others() {
    let app = app_with(|fairing| fairing).await;
    let admin = login_as_role(&app, "ada", "admin").await;
    let member = login_as_role(&app, "bob", "member").await;
    assert_eq!(
        get(&app, "/admin", &admin.access).await,
        (Status::Ok, "welcome, ada".into())
    );
    let (status, body) = get(&app, "/admin", &member.access).await;
    assert_eq!(status, Status::Forbidden);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({ "error": "forbidden", "message": "You are not allowed to do this." })
    );
    let response = app.client.get("/admin").dispatch().await;
    assert_eq!(response.status(), Status::Unauthorized, "no token: 401, not 403");
}

#[rocket::async_test]
async fn a_demoted_user_loses_the_role_at_the_next_refresh() {
    let app = app_with(|fairing| fairing).await;
    let ada = login_as_role(&app, "ada", "admin").await;
    let laptop = login_as_role(&app, "ada", "admin").await;
    let demoted = app.client.post("/demote/ada").dispatch().await;
    assert_eq!(demoted.into_json::<usize>().await, Some(2), "both sessions");
    assert_eq!(
        get(&app, "/admin", &ada.access).await.0,
        Status::Ok,
        "until the token expires"
    );
    for tokens in [&ada, &laptop] {
        let renewed = app.rotate(&tokens.refresh).await;
        assert_eq!(get(&app, "/admin", &renewed.access).await.0, Status::Forbidden);
        assert_eq!(get(&app, "/roles", &renewed.access).await.1, r#"["member"]"#);
    }
}

#[rocket::async_test]
async fn a_claims_source_is_consulted_at_each_refresh() {
    let roles = Arc::new(Mutex::new(vec!["admin"]));
    let current = roles.clone();
    let app = app_with(move |fairing| {
        fairing.claims_source(move |user_id: String| {
            let roles = current.lock().unwrap().clone();
            async move { (user_id == "ada").then(|| json!({ "roles": roles })) }
        })
    })
    .await;
    let ada = login_as_role(&app, "ada", "admin").await;
    let bob = login_as_role(&app, "bob", "admin").await;
    *roles.lock().unwrap() = vec!["member"];
    let ada = app.rotate(&ada.refresh).await;
    assert_eq!(get(&app, "/admin", &ada.access).await.0, Status::Forbidden);
    let bob = app.rotate(&bob.refresh).await;
    assert_eq!(
        get(&app, "/admin", &bob.access).await.0,
        Status::Ok,
        "None keeps the session's claims"
    );
}

/// Events as the app is told them.
type Told = Arc<Mutex<Vec<SessionEvent>>>;

/// An app whose events sink records every event.
async fn app_recording_events() -> (App, Told) {
    let events = Told::default();
    let sink = events.clone();
    let app =
        app_with(move |fairing| fairing.events(move |event: &SessionEvent| sink.lock().unwrap().push(event.clone())))
            .await;
    (app, events)
}

/// Events as their `Debug` text: the variants are `#[non_exhaustive]`, so a
/// test (like an app) cannot build one to compare with.
trait MapDebug {
    fn map_debug(&self) -> Vec<String>;
}

impl MapDebug for [SessionEvent] {
    fn map_debug(&self) -> Vec<String> {
        self.iter().map(|event| format!("{event:?}")).collect()
    }
}

impl MapDebug for Vec<SessionEvent> {
    fn map_debug(&self) -> Vec<String> {
        self.as_slice().map_debug()
    }
}

#[rocket::async_test]
async fn logout_everyone_tells_one_event_per_session_ended() {
    let (app, events) = app_recording_events().await;
    let (alice, bob) = (app.login("alice").await, app.login("bob").await);
    events.lock().unwrap().clear();
    let now = app.manager().now();
    assert_eq!(app.manager().logout_everyone().await.unwrap(), 2);
    let mut told = std::mem::take(&mut *events.lock().unwrap());
    told.sort_by_key(|event| format!("{event:?}"));
    let revoked = |user: &str, tokens: &Tokens| {
        format!(
            "SessionRevoked {{ user_id: {user:?}, session_id: {:?}, reason: \"logout everyone\", actor: None, \
             ip: None, at: {now} }}",
            common::session_id_of(&tokens.access)
        )
    };
    assert_eq!(told.map_debug(), [revoked("alice", &alice), revoked("bob", &bob)]);
    assert_eq!(app.manager().logout_everyone().await.unwrap(), 0);
    assert!(events.lock().unwrap().is_empty(), "nothing more ended");
}

#[rocket::async_test]
async fn events_fire_once_each_after_commit_with_their_fields() {
    let (app, events) = app_recording_events().await;
    let take = || std::mem::take(&mut *events.lock().unwrap());
    let session = |tokens: &Tokens| common::session_id_of(&tokens.access);
    let t0 = app.manager().now();
    let from: std::net::SocketAddr = "192.0.2.7:40000".parse().unwrap();
    let localhost = Some(from.ip());
    let refresh_from = |refresh: String| {
        let client = &app.client;
        async move {
            client
                .post("/auth/refresh")
                .remote(from)
                .header(ContentType::JSON)
                .body(json!({ "refresh_token": refresh }).to_string())
                .dispatch()
                .await
        }
    };

    let first = tokens_of(app.client.post("/login/alice").remote(from).dispatch().await).await;
    let sid = session(&first);
    assert_eq!(
        take().map_debug(),
        [format!(
            "LoggedIn {{ user_id: \"alice\", session_id: {sid:?}, ip: {localhost:?}, new_network: None, at: {t0} }}"
        )]
    );
    let second = tokens_of(refresh_from(first.refresh.clone()).await).await;
    assert_eq!(
        take().map_debug(),
        [format!(
            "Refreshed {{ user_id: \"alice\", session_id: {sid:?}, ip: {localhost:?}, at: {t0} }}"
        )]
    );
    app.harness.clock().advance(11);
    assert_eq!(refresh_from(first.refresh.clone()).await.status(), Status::Unauthorized);
    assert_eq!(
        take().map_debug(),
        [format!(
            "ReuseDetected {{ user_id: \"alice\", session_id: {sid:?}, ip: {localhost:?}, at: {} }}",
            t0 + 11
        )]
    );
    assert_eq!(app.refresh_status(&second.refresh).await, Status::Unauthorized);
    assert_eq!(take(), [], "a refused refresh is no event");

    let (phone, laptop) = (app.login("bob").await, app.login("bob").await);
    take();
    assert_eq!(app.post_bearer("/auth/logout", &phone.access).await, Status::NoContent);
    assert_eq!(
        take().map_debug(),
        [format!(
            "LoggedOut {{ user_id: \"bob\", session_id: {:?}, ip: None, at: {} }}",
            session(&phone),
            t0 + 11
        )]
    );
    let third = app.login("bob").await;
    take();
    assert_eq!(
        app.post_bearer("/auth/logout-all", &third.access).await,
        Status::NoContent
    );
    let mut revoked = take();
    revoked.sort_by_key(|event| format!("{event:?}"));
    let mut expected = [session(&laptop), session(&third)].map(|session_id| {
        format!(
            "SessionRevoked {{ user_id: \"bob\", session_id: {session_id:?}, reason: \"logout everywhere\", \
             actor: Some(\"bob\"), ip: None, at: {} }}",
            t0 + 11
        )
    });
    expected.sort();
    assert_eq!(revoked.map_debug(), expected);

    for _ in 0..10 {
        app.client.post("/try-login/carol/wrong").remote(from).dispatch().await;
    }
    take();
    let throttled = app.client.post("/try-login/carol/right").remote(from).dispatch().await;
    assert_eq!(throttled.status(), Status::TooManyRequests);
    match take().as_slice() {
        [SessionEvent::Throttled {
            username,
            ip,
            retry_after,
            at,
            ..
        }] => {
            assert_eq!((username.as_str(), *ip, *at), ("carol", localhost, t0 + 11));
            assert!(*retry_after > 0);
        }
        other => panic!("one Throttled event, not {other:?}"),
    }
}

/// An attacker's username reaches the app's event sink (and its log) cut to
/// `MAX_EVENT_USERNAME_BYTES` and marked, however long it was.
#[rocket::async_test]
async fn a_throttled_attempt_tells_a_huge_username_cut_and_marked() {
    let (app, events) = app_recording_events().await;
    let from = std::net::SocketAddr::from(([192, 0, 2, 44], 5000));
    // Spend the network's budget (`ip_max_failures`, 100), then try 1 MiB
    // usernames.
    for n in 0..100 {
        app.client
            .post("/guess")
            .remote(from)
            .body(format!("user-{n}"))
            .dispatch()
            .await;
    }
    events.lock().unwrap().clear();
    let huge = "é".repeat(512 * 1024);
    for _ in 0..3 {
        let response = app
            .client
            .post("/guess")
            .remote(from)
            .body(huge.clone())
            .dispatch()
            .await;
        assert_eq!(response.status(), Status::TooManyRequests);
    }
    let told = std::mem::take(&mut *events.lock().unwrap());
    assert_eq!(told.len(), 3);
    for event in told {
        let SessionEvent::Throttled { username, .. } = &event else {
            panic!("a Throttled event, not {event:?}");
        };
        let max = rocket_sqlite_sessions::MAX_EVENT_USERNAME_BYTES;
        assert!(username.len() <= max + '…'.len_utf8(), "{} bytes told", username.len());
        assert!(username.ends_with('…'), "marked as cut");
        assert!(username.starts_with("éé"), "cut on a character boundary: {username}");
        assert!(format!("{event:?}").len() < 1024);
    }
    // A short one is told whole.
    let response = app.client.post("/guess").remote(from).body("carol").dispatch().await;
    assert_eq!(response.status(), Status::TooManyRequests);
    let told = std::mem::take(&mut *events.lock().unwrap());
    match told.as_slice() {
        [SessionEvent::Throttled { username, .. }] => assert_eq!(username, "carol"),
        other => panic!("one Throttled event, not {other:?}"),
    }
}

#[rocket::async_test]
async fn a_login_through_its_check_says_whether_the_network_is_new_for_the_user() {
    let (app, events) = app_recording_events().await;
    app.directory().set("dana", "right", "member");
    let login_from = |from: &'static str| {
        let client = &app.client;
        async move {
            let response = client
                .post("/gated-login/dana/right")
                .remote(from.parse().unwrap())
                .dispatch()
                .await;
            assert_eq!(response.status(), Status::Ok);
        }
    };
    let new_network = || {
        let told = std::mem::take(&mut *events.lock().unwrap());
        told.iter()
            .find_map(|event| match event {
                SessionEvent::LoggedIn { new_network, ip, .. } => Some((*new_network, *ip)),
                _ => None,
            })
            .expect("a LoggedIn event")
    };
    login_from("192.0.2.7:40000").await;
    assert_eq!(new_network(), (Some(true), Some("192.0.2.7".parse().unwrap())));
    login_from("192.0.2.7:40001").await;
    assert_eq!(new_network().0, Some(false), "signed in from there before");
    login_from("198.51.100.1:40000").await;
    assert_eq!(new_network().0, Some(true), "another network");
}

#[rocket::async_test]
async fn hooks_registered_after_ignite_replace_the_fairings() {
    let app =
        app_with(|fairing| fairing.claims_source(|_user: String| async { Some(json!({ "role": "guest" })) })).await;
    let events = Arc::new(Mutex::new(Vec::<SessionEvent>::new()));
    let sink = events.clone();
    app.manager()
        .set_events(move |event: &SessionEvent| sink.lock().unwrap().push(event.clone()));
    app.manager()
        .set_claims_source(|_user: String| async { Some(json!({ "role": "late" })) });
    let first = app.login("alice").await;
    let next = app.rotate(&first.refresh).await;
    let whoami: Value = app.whoami(&next.access).await.into_json().await.unwrap();
    assert_eq!(whoami["role"], "late", "the source set after ignite answers");
    let told = events.lock().unwrap().clone();
    assert!(
        matches!(
            told.as_slice(),
            [SessionEvent::LoggedIn { .. }, SessionEvent::Refreshed { .. }]
        ),
        "{told:?}"
    );
    assert!(told.iter().all(|event| event.at() == app.manager().now()));
}

#[rocket::async_test]
async fn a_logout_that_is_not_stored_fires_no_event() {
    let (app, events) = app_recording_events().await;
    let tokens = app.login("alice").await;
    events.lock().unwrap().clear();
    // Sessions cannot be written: the logout fails (503) and nothing happened.
    let connection = rusqlite::Connection::open(app.harness.database()).unwrap();
    connection
        .execute_batch(
            "CREATE TRIGGER no_revocations BEFORE UPDATE ON sessions BEGIN SELECT RAISE(FAIL, 'disk full'); END;",
        )
        .unwrap();
    assert_eq!(
        app.post_bearer("/auth/logout", &tokens.access).await,
        Status::ServiceUnavailable
    );
    assert_eq!(*events.lock().unwrap(), []);
}

#[rocket::async_test]
async fn the_app_answers_its_own_errors_in_the_crates_shape() {
    let app = app_with(|fairing| fairing).await;
    let response = app.client.get("/teapot").dispatch().await;
    assert_eq!(response.status(), Status::ImATeapot);
    assert_eq!(response.content_type(), Some(ContentType::JSON));
    assert_eq!(response.headers().get_one("Cache-Control"), Some("no-store"));
    assert_eq!(
        response.into_json::<Value>().await,
        Some(json!({ "error": "teapot", "message": "Short and stout." }))
    );
}

#[get("/private")]
fn private(user: AuthUser) -> String {
    user.id
}

#[rocket::async_test]
async fn a_rocket_without_the_fairing_fails_launch_naming_the_fix() {
    capture_logs();
    let rocket = rocket::custom(TestHarness::new().figment()).mount("/", routes![private]);
    let Err(error) = Client::tracked(rocket).await else {
        panic!("launch should fail")
    };
    assert!(
        matches!(error.kind(), rocket::error::ErrorKind::SentinelAborts(_)),
        "{error:?}"
    );
    assert!(logged("add `.attach(Sessions::fairing())` to the Rocket"));
}

#[rocket::async_test]
async fn attaching_the_fairing_twice_is_a_launch_error_not_a_panic() {
    capture_logs();
    let harness = TestHarness::new();
    let rocket = rocket::custom(harness.figment())
        .attach(harness.fairing())
        .attach(harness.fairing());
    let Err(error) = Client::tracked(rocket).await else {
        panic!("launch should fail")
    };
    assert!(
        matches!(error.kind(), rocket::error::ErrorKind::FailedFairings(_)),
        "{error:?}"
    );
    assert!(logged("Sessions::fairing() is attached twice"));
}

#[rocket::async_test]
async fn a_release_launch_needs_only_the_sessions_secret() {
    capture_logs();
    let harness = TestHarness::new();
    // Rocket.toml's release profile, no Rocket `secret_key`: only
    // `sessions.secret` and the database.
    let figment = Figment::from(rocket::Config::figment())
        .select("release")
        .merge(("sessions.database", harness.database()))
        .merge(("sessions.secret", harness.secret()));
    let rocket = common::with_routes(rocket::custom(figment).attach(harness.fairing()));
    let client = Client::tracked(rocket)
        .await
        .expect("a release launch with only sessions.secret");
    let response = client.post("/login/alice").dispatch().await;
    assert_eq!(response.status(), Status::Ok);
}

/// The session cookies a response sets, as `Set-Cookie` header values.
fn session_cookies(response: &rocket::local::asynchronous::LocalResponse<'_>) -> Vec<String> {
    response
        .headers()
        .get("Set-Cookie")
        .filter(|header| header.starts_with("__Host-"))
        .map(str::to_string)
        .collect()
}

#[rocket::async_test]
async fn a_session_only_login_sets_cookies_without_max_age_and_keeps_them_so_across_refreshes() {
    let app = app_with(|fairing| fairing).await;
    let remembered = app.client.post("/browser-login/ada/true").dispatch().await;
    let cookies = session_cookies(&remembered);
    assert_eq!(cookies.len(), 2);
    assert!(cookies.iter().all(|cookie| cookie.contains("Max-Age=")), "{cookies:?}");

    let response = app.client.post("/browser-login/bob/false").dispatch().await;
    let cookies = session_cookies(&response);
    assert_eq!(cookies.len(), 2);
    for cookie in &cookies {
        assert!(!cookie.contains("Max-Age") && !cookie.contains("Expires"), "{cookie}");
    }
    // The access cookie's token expires; the guard refreshes silently, and the
    // new cookies are session-only too.
    app.harness.clock().advance(15 * 60 + 1);
    let page = app.client.get("/roles").dispatch().await;
    assert_eq!(page.status(), Status::Ok, "a silent refresh");
    let renewed = session_cookies(&page);
    assert_eq!(renewed.len(), 2, "both cookies renewed");
    for cookie in &renewed {
        assert!(!cookie.contains("Max-Age") && !cookie.contains("Expires"), "{cookie}");
    }
}

#[rocket::async_test]
async fn a_login_with_its_own_lifetimes_keeps_them_across_refreshes() {
    let app = app_with(|fairing| fairing).await;
    let short = tokens_of(app.client.post("/login-for/ada/60/1000").dispatch().await).await;
    let default = app.login("bob").await;
    app.harness.clock().advance(50);
    let short = app.rotate(&short.refresh).await;
    let default = app.rotate(&default.refresh).await;
    // 61 s without a refresh: past this session's refresh_ttl of 60 s only.
    app.harness.clock().advance(61);
    assert_eq!(app.refresh_status(&short.refresh).await, Status::Unauthorized);
    assert_eq!(app.refresh_status(&default.refresh).await, Status::Ok);

    // Refreshed every 50 s, a session still ends at its own absolute timeout.
    let mut capped = tokens_of(app.client.post("/login-for/cy/60/120").dispatch().await).await;
    for _ in 0..2 {
        app.harness.clock().advance(50);
        capped = app.rotate(&capped.refresh).await;
    }
    app.harness.clock().advance(21);
    assert_eq!(app.refresh_status(&capped.refresh).await, Status::Unauthorized);
}

/// The value of the cookie `name` in `app`'s client.
fn cookie_value(app: &App, name: &str) -> String {
    app.client
        .cookies()
        .get(name)
        .expect("the cookie is set")
        .value()
        .to_string()
}

/// A browser signed in on `app` (session-long cookies in the tracked client),
/// and its session's CSRF token.
async fn browser_signed_in(app: &App, user: &str) -> String {
    let response = app.client.post(format!("/browser-login/{user}/true")).dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    let access = cookie_value(app, "__Host-access_token");
    app.manager().csrf_token(&common::session_id_of(&access))
}

#[rocket::async_test]
async fn a_silent_refresh_with_a_failing_claims_source_answers_503_and_keeps_the_cookies() {
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let source_failing = failing.clone();
    let app = app_with(move |fairing| {
        fairing.claims_source(move |_user: String| {
            let failing = source_failing.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                if failing {
                    Err("the users table is locked")
                } else {
                    Ok(rocket_sqlite_sessions::ClaimsDecision::Keep)
                }
            }
        })
    })
    .await;
    browser_signed_in(&app, "ada").await;
    let before = cookie_value(&app, "__Host-refresh_token");
    app.harness.clock().advance(901); // the access cookie is expired
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let unavailable = app.client.get("/whoami").dispatch().await;
    assert_eq!(unavailable.status(), Status::ServiceUnavailable);
    assert!(
        session_cookies(&unavailable).is_empty(),
        "nothing rotated, nothing cleared"
    );
    assert_eq!(cookie_value(&app, "__Host-refresh_token"), before);
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let refreshed = app.client.get("/whoami").dispatch().await;
    assert_eq!(
        refreshed.status(),
        Status::Ok,
        "the same refresh cookie works once the source answers"
    );
    assert_eq!(session_cookies(&refreshed).len(), 2);
}

#[rocket::async_test]
async fn the_crates_logout_in_cookie_mode_needs_csrf_proof_and_clears_the_cookies() {
    let app = app_with(|fairing| fairing).await;
    let csrf = browser_signed_in(&app, "ada").await;
    let access = cookie_value(&app, "__Host-access_token");
    let refused = app.client.post("/auth/logout").dispatch().await;
    assert_eq!(refused.status(), Status::Forbidden, "no CSRF token");
    assert_eq!(app.whoami_status(&access).await, Status::Ok, "still signed in");

    let response = app
        .client
        .post("/auth/logout")
        .header(rocket::http::Header::new("X-CSRF-Token", csrf))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::NoContent);
    let cleared = session_cookies(&response);
    assert_eq!(cleared.len(), 2);
    assert!(cleared.iter().all(|cookie| cookie.contains("Max-Age=0")), "{cleared:?}");
    assert_eq!(app.whoami_status(&access).await, Status::Unauthorized);
}

#[rocket::async_test]
async fn the_crates_logout_others_in_cookie_mode_needs_csrf_proof_and_keeps_this_session() {
    let app = app_with(|fairing| fairing).await;
    let other = app.login("ada").await;
    let csrf = browser_signed_in(&app, "ada").await;
    let access = cookie_value(&app, "__Host-access_token");
    let refused = app.client.post("/auth/logout-others").dispatch().await;
    assert_eq!(refused.status(), Status::Forbidden, "no CSRF token");
    assert_eq!(app.whoami_status(&other.access).await, Status::Ok, "nothing ended");

    let response = app
        .client
        .post("/auth/logout-others")
        .header(rocket::http::Header::new("X-CSRF-Token", csrf))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::NoContent);
    assert!(session_cookies(&response).is_empty(), "this session's cookies stay");
    assert_eq!(app.whoami_status(&other.access).await, Status::Unauthorized);
    assert_eq!(app.whoami_status(&access).await, Status::Ok);
}

#[rocket::async_test]
async fn the_crates_refresh_in_cookie_mode_rotates_the_cookies() {
    let app = app_with(|fairing| fairing).await;
    let csrf = browser_signed_in(&app, "ada").await;
    let before = cookie_value(&app, "__Host-refresh_token");

    let refused = app.client.post("/auth/refresh").dispatch().await;
    assert_eq!(refused.status(), Status::Forbidden, "no CSRF token");
    let foreign = app
        .client
        .post("/auth/refresh")
        .header(rocket::http::Header::new("Origin", "https://evil.example"))
        .header(rocket::http::Header::new("X-CSRF-Token", csrf.clone()))
        .dispatch()
        .await;
    assert_eq!(foreign.status(), Status::Forbidden, "a foreign origin");

    let response = app
        .client
        .post("/auth/refresh")
        .header(rocket::http::Header::new("X-CSRF-Token", csrf.clone()))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::NoContent);
    assert_eq!(session_cookies(&response).len(), 2, "both cookies rotated");
    let after = cookie_value(&app, "__Host-refresh_token");
    assert_ne!(before, after);
    assert_eq!(
        app.refresh_status(&after).await,
        Status::Ok,
        "the new refresh token works"
    );

    // A dead refresh cookie: 401, and the cookies are cleared.
    app.harness.clock().advance(11);
    let stale = app
        .client
        .post("/auth/refresh")
        .cookie(rocket::http::Cookie::new("__Host-refresh_token", after))
        .header(rocket::http::Header::new("X-CSRF-Token", csrf))
        .dispatch()
        .await;
    assert_eq!(stale.status(), Status::Unauthorized);
    assert!(session_cookies(&stale)
        .iter()
        .all(|cookie| cookie.contains("Max-Age=0")));
}

/// An answer that asks to be cached, whoever sees it.
#[derive(rocket::Responder)]
struct Cacheable {
    body: String,
    cache: rocket::http::Header<'static>,
}

impl Cacheable {
    fn new(body: &str) -> Self {
        Cacheable {
            body: body.to_string(),
            cache: rocket::http::Header::new("Cache-Control", "public, max-age=600"),
        }
    }
}

#[get("/cacheable")]
fn cacheable(_user: AuthUser) -> Cacheable {
    Cacheable::new("mine")
}

/// The same for anyone, with a CSRF token in it.
#[get("/cacheable-form")]
fn cacheable_form(csrf: rocket_sqlite_sessions::CsrfToken) -> Cacheable {
    Cacheable::new(csrf.as_str())
}

#[rocket::async_test]
async fn a_cookie_authenticated_answer_is_never_cacheable_whatever_the_handler_says() {
    capture_logs();
    let harness = TestHarness::new();
    let rocket = common::with_routes(rocket::custom(harness.figment()).attach(harness.fairing()))
        .mount("/", routes![browser_login, cacheable, cacheable_form]);
    let client = Client::tracked(rocket).await.unwrap();
    let form = client.get("/cacheable-form").dispatch().await;
    assert_eq!(form.status(), Status::Ok);
    assert_eq!(
        form.headers().get_one("Cache-Control"),
        Some("no-store"),
        "a CSRF token in it"
    );
    assert_eq!(form.headers().get_one("Vary"), Some("Cookie"));
    // A bearer client's answer is the handler's to decide.
    let tokens = tokens_of(client.post("/login/bob").dispatch().await).await;
    let bearer_page = client.get("/cacheable").header(bearer(&tokens.access)).dispatch().await;
    assert_eq!(bearer_page.status(), Status::Ok);
    assert_eq!(
        bearer_page.headers().get_one("Cache-Control"),
        Some("public, max-age=600")
    );
    // A browser's is never cacheable.
    assert_eq!(
        client.post("/browser-login/ada/true").dispatch().await.status(),
        Status::Ok
    );
    let page = client.get("/cacheable").dispatch().await;
    assert_eq!(page.status(), Status::Ok);
    assert_eq!(page.headers().get_one("Cache-Control"), Some("no-store"));
    assert_eq!(page.headers().get_one("Vary"), Some("Cookie"));
}

/// Every other page, for signed-in users.
#[get("/<_path..>", rank = 20)]
fn any_page(_user: AuthUser, _path: rocket::http::uri::Segments<'_, rocket::http::uri::fmt::Path>) -> &'static str {
    "a page"
}

#[rocket::async_test]
async fn a_browser_page_refused_by_the_guard_is_redirected_to_login_url() {
    capture_logs();
    let harness = Arc::new(TestHarness::new());
    let figment = harness.figment().merge(("sessions.login_url", "/login"));
    let rocket = common::with_routes(rocket::custom(figment).attach(harness.fairing())).mount(
        "/",
        routes![login_as, roles, admin, demote, teapot, browser_login, login_for],
    );
    let app = App {
        harness,
        client: Client::tracked(rocket).await.unwrap(),
    };
    let html = rocket::http::Header::new("Accept", "text/html,application/xhtml+xml");
    let page = app.client.get("/roles?tab=all").header(html.clone()).dispatch().await;
    assert_eq!(page.status(), Status::SeeOther);
    assert_eq!(
        page.headers().get_one("Location"),
        Some("/login?next=%2Froles%3Ftab%3Dall")
    );
    let api = app.client.get("/roles").header(ContentType::JSON).dispatch().await;
    assert_eq!(api.status(), Status::Unauthorized, "an API call gets the JSON 401");
    let bearer_call = app
        .client
        .get("/roles")
        .header(html)
        .header(bearer("junk"))
        .dispatch()
        .await;
    assert_eq!(
        bearer_call.status(),
        Status::Unauthorized,
        "a bearer client gets the 401"
    );
}

/// `next` is never a protocol-relative URL once the app decodes it: one
/// leading slash, no backslash, however the path was written. Over real HTTP,
/// since the local client tidies `//` away before Rocket sees it.
#[rocket::async_test]
async fn next_is_a_path_of_the_app_however_the_request_path_was_written() {
    capture_logs();
    let harness = TestHarness::new();
    let port = common::process::free_port();
    let figment = harness
        .figment()
        .merge(("sessions.login_url", "/login"))
        .merge(("port", port))
        .merge(("log_level", "off"));
    let rocket = common::with_routes(rocket::custom(figment).attach(harness.fairing())).mount("/", routes![any_page]);
    let ignited = rocket.ignite().await.unwrap();
    let shutdown = ignited.shutdown();
    rocket::tokio::spawn(ignited.launch());
    common::process::wait_until_listening(port);
    for asked in [
        "//evil.example",
        "///evil.example?tab=all",
        "/\\evil.example",
        "/%2F/evil.example",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "/%5C%5Cevil.example",
        "/%0D%0A/evil.example",
    ] {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            stream,
            "GET {asked} HTTP/1.1\r\nHost: localhost\r\nAccept: text/html\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 303"), "{asked}: {answer}");
        let location = answer
            .lines()
            .find_map(|line| line.strip_prefix("location: "))
            .unwrap_or_else(|| panic!("{asked}: {answer}"));
        let next = location
            .strip_prefix("/login?next=")
            .unwrap_or_else(|| panic!("{asked}: {location}"));
        let next = rocket::http::RawStr::new(next).percent_decode_lossy();
        assert!(
            next.starts_with('/') && !next.starts_with("//"),
            "{asked} → next {next}"
        );
        assert!(!next.contains('\\'), "{asked} → next {next}");
        assert!(next.starts_with("/evil.example"), "{asked} → next {next}");
    }
    shutdown.notify();
}

#[rocket::async_test]
async fn a_login_url_that_is_not_a_path_of_the_app_fails_launch() {
    capture_logs();
    for url in ["https://evil.example/login", "//evil.example", "login", "/login?x=1"] {
        let harness = TestHarness::new();
        let figment = harness.figment().merge(("sessions.login_url", url));
        let Err(error) = Client::tracked(rocket::custom(figment).attach(harness.fairing())).await else {
            panic!("{url} was accepted");
        };
        assert!(matches!(error.kind(), rocket::error::ErrorKind::FailedFairings(_)));
    }
    assert!(logged("invalid `sessions.login_url`"));
}

#[rocket::async_test]
async fn an_app_keeps_its_own_table_in_the_sessions_file() {
    let app = app_with(|fairing| fairing).await;
    let path = app.manager().database_path().expect("a SQLite file").to_path_buf();
    assert_eq!(path, app.harness.database());
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    connection
        .execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL); INSERT INTO notes (body) VALUES ('hello');")
        .unwrap();
    let tokens = app.login("alice").await;
    let harness = app.stop().await;
    // The crate's migrations and pruning leave the app's table alone.
    let app = App::start_with(harness, |figment| figment).await;
    app.manager().prune_now().await.unwrap();
    assert_eq!(app.refresh_status(&tokens.refresh).await, Status::Ok);
    let body: String = connection
        .query_row("SELECT body FROM notes", [], |row| row.get(0))
        .unwrap();
    assert_eq!(body, "hello");
}

/// The user id back as the app's own type, for the next id.
#[get("/next-id")]
fn next_id(user: AuthUser) -> Result<String, Status> {
    let id: i64 = user.id_as().map_err(|_| Status::UnprocessableEntity)?;
    Ok((id + 1).to_string())
}

/// A login with a numeric user id, as an app's users table gives.
#[post("/login-number/<id>")]
async fn login_number(sessions: &State<Sessions>, client: ClientInfo, id: i64) -> Result<TokenPair, Error> {
    sessions.login(id, json!({}), &client).await
}

#[rocket::async_test]
async fn the_user_id_comes_back_as_the_type_it_was_given_in() {
    capture_logs();
    let harness = Arc::new(TestHarness::new());
    let rocket = common::with_routes(harness.rocket()).mount("/", routes![next_id, login_number]);
    let client = Client::tracked(rocket).await.unwrap();
    let app = App { harness, client };
    for id in [41_i64, -7, i64::MAX - 1] {
        let response = app.client.post(format!("/login-number/{id}")).dispatch().await;
        assert_eq!(response.status(), Status::Ok);
        let tokens = tokens_of(response).await;
        let next = app
            .client
            .get("/next-id")
            .header(bearer(&tokens.access))
            .dispatch()
            .await;
        assert_eq!(next.status(), Status::Ok);
        assert_eq!(next.into_string().await.unwrap(), (id + 1).to_string());
    }
    // An id of another type does not parse: the app's error, not a guess.
    let alice = app.login("alice").await;
    let next = app
        .client
        .get("/next-id")
        .header(bearer(&alice.access))
        .dispatch()
        .await;
    assert_eq!(next.status(), Status::UnprocessableEntity);
}

/// A login route in the README's shape: the crate's throttle, `check.login`
/// for the right password, `Error::InvalidCredentials` for a wrong one.
#[post("/password-login/<username>/<password>")]
async fn password_login(
    sessions: &State<rocket_sqlite_sessions::Sessions>,
    client: rocket_sqlite_sessions::ClientInfo,
    username: &str,
    password: &str,
) -> Result<rocket_sqlite_sessions::TokenPair, rocket_sqlite_sessions::Error> {
    let check = sessions.credential_check(username, &client).await?;
    if password == "right" {
        check.login(username, (), &client).await
    } else {
        check.failed().await?;
        Err(rocket_sqlite_sessions::Error::InvalidCredentials)
    }
}

#[rocket::async_test]
async fn a_wrong_password_is_answered_in_the_crates_shape() {
    let harness = Arc::new(TestHarness::new());
    let figment = harness.figment().merge(("sessions.login_max_failures", 2));
    let rocket = rocket::custom(figment)
        .attach(harness.fairing())
        .mount("/", routes![password_login]);
    let client = Client::tracked(rocket).await.unwrap();
    for _ in 0..2 {
        let wrong = client.post("/password-login/alice/wrong").dispatch().await;
        assert_eq!(wrong.status(), Status::Unauthorized);
        assert_eq!(
            wrong.into_json::<Value>().await,
            Some(json!({ "error": "invalid_credentials", "message": "Invalid username or password." }))
        );
    }
    let throttled = client.post("/password-login/alice/right").dispatch().await;
    assert_eq!(throttled.status(), Status::TooManyRequests);
    let other = client.post("/password-login/bob/right").dispatch().await;
    assert_eq!(other.status(), Status::Ok);
}
