//! Browser apps over HTTP: cookies, silent refresh, CSRF, session data, and the
//! demo's pages. Each `Browser` (the crate's `testing::Browser`) keeps its own
//! cookie jar, as a browser would.

use crate::demo;

use rocket::futures::future::join_all;
use rocket::http::{Accept, ContentType, Cookie, Header, Status};
use rocket::local::asynchronous::{Client, LocalRequest, LocalResponse};
use rocket_sqlite_sessions::testing::{Browser, TestHarness};
use rocket_sqlite_sessions::{Error, Sessions};
use serde_json::{json, Value};

const ACCESS: &str = "__Host-access_token";
const REFRESH: &str = "__Host-refresh_token";

struct Demo {
    harness: TestHarness,
    client: Client,
}

impl Demo {
    async fn start() -> Demo {
        let harness = demo::harness();
        let rocket = demo::app(harness.rocket());
        Demo::on(harness, rocket).await
    }

    /// The demo on `rocket`, built on `harness`, with alice registered.
    async fn on(harness: TestHarness, rocket: rocket::Rocket<rocket::Build>) -> Demo {
        let client = Client::untracked(rocket).await.unwrap();
        let demo = Demo { harness, client };
        let registered = demo::register(&demo.client, "alice", "password one").await.status();
        assert_eq!(registered, Status::Created);
        demo
    }

    fn sessions(&self) -> &Sessions {
        self.client.rocket().state::<Sessions>().unwrap()
    }
}

/// The demo's pages for a [`Browser`] (the crate's own test helper).
trait DemoBrowser {
    /// The page at `path`: its status, and its `Location` for a redirect,
    /// else its body.
    async fn page(&self, demo: &Demo, path: &'static str) -> (Status, String);
    /// The CSRF token of the page at `path`, which must answer 200.
    async fn csrf(&self, demo: &Demo, path: &'static str) -> String;
    /// Alice signs in through the login form, "keep me signed in" ticked.
    async fn sign_in<'c>(&self, demo: &'c Demo) -> LocalResponse<'c>;
}

impl DemoBrowser for Browser {
    async fn page(&self, demo: &Demo, path: &'static str) -> (Status, String) {
        let page = self.get(&demo.client, path).await;
        (page.status, page.location.unwrap_or(page.body))
    }

    async fn csrf(&self, demo: &Demo, path: &'static str) -> String {
        let page = self.get(&demo.client, path).await;
        assert_eq!(page.status, Status::Ok, "{path}: {}", page.body);
        self.csrf_token().expect("a csrf field")
    }

    async fn sign_in<'c>(&self, demo: &'c Demo) -> LocalResponse<'c> {
        let csrf = self.csrf(demo, "/login").await;
        self.send(demo.client.post("/login").header(ContentType::Form).body(format!(
            "csrf_token={csrf}&username=alice&password=password+one&remember=yes"
        )))
        .await
    }
}

fn csrf_in(html: &str) -> String {
    const FIELD: &str = r#"name="csrf_token" value=""#;
    let start = html.find(FIELD).expect("a csrf field") + FIELD.len();
    html[start..start + html[start..].find('"').unwrap()].to_string()
}

fn attributes(response: &LocalResponse<'_>, name: &str) -> Cookie<'static> {
    response
        .headers()
        .get("Set-Cookie")
        .map(|set| Cookie::parse(set.to_string()).unwrap())
        .find(|cookie| cookie.name() == name)
        .unwrap_or_else(|| panic!("no Set-Cookie for {name}"))
}

#[rocket::async_test]
async fn the_login_form_signs_in_with_host_cookies() {
    let demo = Demo::start().await;
    let browser = Browser::new("Browser/1");
    let response = browser.sign_in(&demo).await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(response.headers().get_one("Location"), Some("/"));
    for (name, ttl) in [(ACCESS, 900), (REFRESH, 1_209_600)] {
        let cookie = attributes(&response, name);
        assert_eq!(cookie.secure(), Some(true), "{name} Secure");
        assert_eq!(cookie.http_only(), Some(true), "{name} HttpOnly");
        assert_eq!(cookie.same_site(), Some(rocket::http::SameSite::Lax), "{name} SameSite");
        assert_eq!(cookie.path(), Some("/"), "{name} Path");
        assert_eq!(cookie.domain(), None, "{name} has no Domain");
        let max_age = cookie.max_age().unwrap().whole_seconds();
        assert!(max_age > 0 && max_age <= ttl, "{name} Max-Age {max_age}");
    }
    drop(response);
    let (status, html) = browser.page(&demo, "/").await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("Signed in as alice"), "{html}");
}

#[rocket::async_test]
async fn a_login_over_a_browser_session_ends_the_session_it_replaces() {
    let demo = Demo::start().await;
    let browser = Browser::new("Browser/1");
    // A sign-in form loaded while signed out, submitted after signing in
    // elsewhere in the same browser (another tab).
    let stale_form = browser.csrf(&demo, "/login").await;
    assert_eq!(browser.sign_in(&demo).await.status(), Status::SeeOther);
    let first = browser.cookie(REFRESH).unwrap();
    let response = browser
        .send(
            demo.client
                .post("/login")
                .header(ContentType::Form)
                .body(format!("csrf_token={stale_form}&username=alice&password=password+one")),
        )
        .await;
    assert_eq!(response.status(), Status::SeeOther);
    drop(response);
    let second = browser.cookie(REFRESH).unwrap();
    assert_ne!(first, second);
    let replaced = demo
        .client
        .post("/auth/refresh")
        .header(ContentType::JSON)
        .body(json!({ "refresh_token": first }).to_string())
        .dispatch()
        .await;
    assert_eq!(replaced.status(), Status::Unauthorized, "the replaced session ended");
    assert_eq!(
        demo.sessions().sessions("1").await.unwrap().len(),
        1,
        "one session, not two"
    );
    let (status, html) = browser.page(&demo, "/").await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("Signed in as alice"), "{html}");
}

#[rocket::async_test]
async fn strict_same_site_is_configurable() {
    let harness = demo::harness();
    let rocket =
        demo::app(rocket::custom(harness.figment().merge(("sessions.same_site", "strict"))).attach(harness.fairing()));
    let demo = Demo::on(harness, rocket).await;
    let browser = Browser::new("B");
    let response = browser.sign_in(&demo).await;
    assert_eq!(
        attributes(&response, ACCESS).same_site(),
        Some(rocket::http::SameSite::Strict)
    );
}

#[rocket::async_test]
async fn signed_out_pages_redirect_to_login() {
    let demo = Demo::start().await;
    let browser = Browser::new("B");
    assert_eq!(browser.page(&demo, "/").await, (Status::SeeOther, "/login".into()));
    assert_eq!(
        browser.page(&demo, "/account/sessions").await,
        (Status::SeeOther, "/login?next=%2Faccount%2Fsessions".into()),
        "the sign-in comes back to the page asked for"
    );
}

#[rocket::async_test]
async fn a_wrong_password_shows_the_form_again_with_401() {
    let demo = Demo::start().await;
    let browser = Browser::new("B");
    let csrf = browser.csrf(&demo, "/login").await;
    let response = browser
        .send(
            demo.client
                .post("/login")
                .header(ContentType::Form)
                .body(format!("csrf_token={csrf}&username=alice&password=wrong")),
        )
        .await;
    assert_eq!(response.status(), Status::Unauthorized);
    let html = response.into_string().await.unwrap();
    assert!(html.contains("Invalid username or password") && html.contains(r#"name="password""#));
    assert!(browser.cookie(ACCESS).is_none());
}

#[rocket::async_test]
async fn an_expired_access_cookie_is_refreshed_silently() {
    let demo = Demo::start().await;
    let browser = Browser::new("B");
    browser.sign_in(&demo).await;
    let (access, refresh) = (browser.cookie(ACCESS).unwrap(), browser.cookie(REFRESH).unwrap());
    demo.harness.clock().advance(901);
    let (status, html) = browser.page(&demo, "/").await;
    assert_eq!(status, Status::Ok, "{html}");
    assert!(html.contains("Signed in as"));
    assert_ne!(browser.cookie(ACCESS).unwrap(), access, "a new access cookie");
    assert_ne!(browser.cookie(REFRESH).unwrap(), refresh, "a rotated refresh cookie");
}

#[rocket::async_test]
async fn ten_racing_requests_at_expiry_all_pass_and_the_user_stays_signed_in() {
    let demo = Demo::start().await;
    let browser = Browser::new("B");
    browser.sign_in(&demo).await;
    demo.harness.clock().advance(901);
    let responses = join_all((0..10).map(|_| browser.send(demo.client.get("/")))).await;
    for response in responses {
        assert_eq!(response.status(), Status::Ok);
    }
    demo.harness.clock().advance(5);
    let (status, html) = browser.page(&demo, "/").await;
    assert_eq!(status, Status::Ok, "still signed in: {html}");
    demo.harness.clock().advance(901);
    assert_eq!(
        browser.page(&demo, "/").await.0,
        Status::Ok,
        "and the next refresh works"
    );
}

#[rocket::async_test]
async fn the_visit_counter_lives_in_session_data() {
    let demo = Demo::start().await;
    let browser = Browser::new("B");
    browser.sign_in(&demo).await;
    for expected in 1..=3 {
        let (_, html) = browser.page(&demo, "/").await;
        assert!(
            html.contains(&format!(r#"<span id="visits">{expected}</span>"#)),
            "{html}"
        );
    }
    let other = Browser::new("C");
    other.sign_in(&demo).await;
    let (_, html) = other.page(&demo, "/").await;
    assert!(
        html.contains(r#"<span id="visits">1</span>"#),
        "each session counts its own"
    );
}

#[rocket::async_test]
async fn revoking_another_device_sends_it_to_login() {
    let demo = Demo::start().await;
    let laptop = Browser::new("Laptop/1");
    let phone = Browser::new("Phone/2");
    laptop.sign_in(&demo).await;
    phone.sign_in(&demo).await;
    let (_, html) = laptop.page(&demo, "/account/sessions").await;
    assert!(
        html.contains("Phone/2") && html.contains("Laptop/1") && html.contains("This device"),
        "{html}"
    );
    const ROW: &str = r#"<tr class="other" data-session=""#;
    let start = html.find(ROW).unwrap() + ROW.len();
    let phone_session = &html[start..start + html[start..].find('"').unwrap()];
    let csrf = csrf_in(&html);
    let response = laptop
        .send(
            demo.client
                .post(format!("/account/sessions/{phone_session}/revoke"))
                .header(ContentType::Form)
                .body(format!("csrf_token={csrf}")),
        )
        .await;
    assert_eq!(response.status(), Status::SeeOther);
    drop(response);
    assert_eq!(phone.page(&demo, "/").await, (Status::SeeOther, "/login".into()));
    assert_eq!(laptop.page(&demo, "/").await.0, Status::Ok);
}

#[rocket::async_test]
async fn logout_expires_both_cookies_and_revokes_the_session() {
    let demo = Demo::start().await;
    let browser = Browser::new("B");
    browser.sign_in(&demo).await;
    let refresh = browser.cookie(REFRESH).unwrap();
    let csrf = browser.csrf(&demo, "/").await;
    let response = browser
        .send(
            demo.client
                .post("/logout")
                .header(ContentType::Form)
                .body(format!("csrf_token={csrf}")),
        )
        .await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(response.headers().get_one("Location"), Some("/login"));
    for name in [ACCESS, REFRESH] {
        let cookie = attributes(&response, name);
        assert_eq!(
            cookie.max_age().map(|age| age.whole_seconds()),
            Some(0),
            "{name} expired"
        );
        assert_eq!(
            (cookie.path(), cookie.secure()),
            (Some("/"), Some(true)),
            "{name} same attributes"
        );
    }
    drop(response);
    assert!(browser.cookie(ACCESS).is_none() && browser.cookie(REFRESH).is_none());
    // The refresh token is dead on the server too.
    let replay = demo
        .client
        .post("/auth/refresh")
        .header(ContentType::JSON)
        .body(json!({ "refresh_token": refresh }).to_string())
        .dispatch()
        .await;
    assert_eq!(replay.status(), Status::Unauthorized);
}

// ---- CSRF, rule by rule --------------------------------------------------------

async fn signed_in(demo: &Demo) -> (Browser, String) {
    let browser = Browser::new("B");
    browser.sign_in(demo).await;
    let csrf = browser.csrf(demo, "/").await;
    (browser, csrf)
}

async fn logout_with<'c>(demo: &'c Demo, browser: &Browser, request: LocalRequest<'c>) -> Status {
    let status = browser.send(request).await.status();
    let still = browser.page(demo, "/").await.0;
    if status == Status::Forbidden {
        assert_eq!(still, Status::Ok, "a refused logout changes nothing");
    }
    status
}

#[rocket::async_test]
async fn csrf_a_missing_token_is_refused() {
    let demo = Demo::start().await;
    let (browser, _) = signed_in(&demo).await;
    let response = browser
        .send(demo.client.post("/logout").header(ContentType::Form).body(""))
        .await;
    assert_eq!(response.status(), Status::Forbidden);
    let body: Value = response.into_json().await.unwrap();
    assert_eq!(body["error"], "csrf_failed");
    assert_eq!(browser.page(&demo, "/").await.0, Status::Ok);
}

#[rocket::async_test]
async fn csrf_another_sessions_token_is_refused() {
    let demo = Demo::start().await;
    let (browser, _) = signed_in(&demo).await;
    let (_, other_token) = signed_in(&demo).await;
    let request = demo
        .client
        .post("/logout")
        .header(Header::new("X-CSRF-Token", other_token));
    assert_eq!(logout_with(&demo, &browser, request).await, Status::Forbidden);
}

#[rocket::async_test]
async fn csrf_a_foreign_origin_is_refused() {
    let demo = Demo::start().await;
    let (browser, csrf) = signed_in(&demo).await;
    let request = demo
        .client
        .post("/logout")
        .header(Header::new("Host", "app.example"))
        .header(Header::new("Origin", "https://evil.example"))
        .header(Header::new("X-CSRF-Token", csrf.clone()));
    assert_eq!(logout_with(&demo, &browser, request).await, Status::Forbidden);
    let request = demo
        .client
        .post("/logout")
        .header(Header::new("Host", "app.example"))
        .header(Header::new("Origin", "https://app.example"))
        .header(Header::new("X-CSRF-Token", csrf));
    assert_eq!(
        logout_with(&demo, &browser, request).await,
        Status::SeeOther,
        "the app's own origin passes"
    );
}

#[rocket::async_test]
async fn csrf_sec_fetch_site_cross_site_is_refused() {
    let demo = Demo::start().await;
    let (browser, csrf) = signed_in(&demo).await;
    let request = demo
        .client
        .post("/logout")
        .header(Header::new("Sec-Fetch-Site", "cross-site"))
        .header(ContentType::Form)
        .body(format!("csrf_token={csrf}"));
    assert_eq!(logout_with(&demo, &browser, request).await, Status::Forbidden);
    let request = demo
        .client
        .post("/logout")
        .header(Header::new("Sec-Fetch-Site", "same-origin"))
        .header(ContentType::Form)
        .body(format!("csrf_token={csrf}"));
    assert_eq!(logout_with(&demo, &browser, request).await, Status::SeeOther);
}

#[rocket::async_test]
async fn csrf_the_header_or_the_first_form_field_passes() {
    let demo = Demo::start().await;
    let (browser, csrf) = signed_in(&demo).await;
    let late_field = demo
        .client
        .post("/logout")
        .header(ContentType::Form)
        .body(format!("{}&csrf_token={csrf}", "x=".to_string() + &"y".repeat(600)));
    assert_eq!(
        logout_with(&demo, &browser, late_field).await,
        Status::Forbidden,
        "past the peek: refused"
    );
    let header = demo.client.post("/logout").header(Header::new("X-CSRF-Token", csrf));
    assert_eq!(logout_with(&demo, &browser, header).await, Status::SeeOther);
}

#[rocket::async_test]
async fn csrf_bearer_requests_need_no_token() {
    let demo = Demo::start().await;
    let tokens: Value = demo
        .client
        .post("/auth/login")
        .header(ContentType::JSON)
        .body(json!({ "username": "alice", "password": "password one" }).to_string())
        .dispatch()
        .await
        .into_json()
        .await
        .unwrap();
    let response = demo
        .client
        .post("/auth/logout")
        .header(Header::new(
            "Authorization",
            format!("Bearer {}", tokens["access_token"].as_str().unwrap()),
        ))
        .header(Header::new("Sec-Fetch-Site", "cross-site"))
        .dispatch()
        .await;
    assert_eq!(response.status(), Status::NoContent);
}

#[rocket::async_test]
async fn a_bad_bearer_header_never_falls_back_to_cookies() {
    let demo = Demo::start().await;
    let (browser, _) = signed_in(&demo).await;
    let response = browser
        .send(
            demo.client
                .get("/me")
                .header(Header::new("Authorization", "Bearer garbage")),
        )
        .await;
    assert_eq!(response.status(), Status::Unauthorized);
    drop(response);
    assert_eq!(
        browser.send(demo.client.get("/me")).await.status(),
        Status::Ok,
        "the cookie alone passes"
    );
}

#[rocket::async_test]
async fn the_login_form_needs_its_pre_session_token() {
    let demo = Demo::start().await;
    let browser = Browser::new("B");
    let csrf = browser.csrf(&demo, "/login").await;
    assert!(browser.cookie("__Host-csrf").is_some(), "the pre-session cookie is set");
    for body in [
        "username=alice&password=password+one".to_string(),
        "csrf_token=AAAA&username=alice&password=password+one".to_string(),
    ] {
        let response = browser
            .send(demo.client.post("/login").header(ContentType::Form).body(body))
            .await;
        assert_eq!(response.status(), Status::Forbidden);
        let refusal: Value = response.into_json().await.unwrap();
        assert_eq!(
            refusal["error"], "csrf_failed",
            "the crate's answer, not the app's catcher"
        );
    }
    // Another browser's token does not fit this browser's pre-session cookie.
    let other = Browser::new("C");
    let other_csrf = other.csrf(&demo, "/login").await;
    let response = browser
        .send(
            demo.client
                .post("/login")
                .header(ContentType::Form)
                .body(format!("csrf_token={other_csrf}&username=alice&password=password+one")),
        )
        .await;
    assert_eq!(response.status(), Status::Forbidden);
    drop(response);
    let response = browser
        .send(
            demo.client
                .post("/login")
                .header(ContentType::Form)
                .body(format!("csrf_token={csrf}&username=alice&password=password+one")),
        )
        .await;
    assert_eq!(response.status(), Status::SeeOther);
}

// ---- session data ----------------------------------------------------------------

#[rocket::async_test]
async fn session_data_round_trips_and_dies_with_the_session() {
    let demo = Demo::start().await;
    let sessions = demo.sessions();
    let pair = sessions.login("7", (), &Default::default()).await.unwrap();
    let other = sessions.login("7", (), &Default::default()).await.unwrap();
    let id = &pair.session_id;

    assert_eq!(sessions.session_value::<u32>(id, "visits").await.unwrap(), None);
    sessions
        .set_session_value(id, "cart", vec!["apple", "pear"])
        .await
        .unwrap();
    sessions.set_session_value(id, "theme", "dark").await.unwrap();
    let cart: Vec<String> = sessions.session_value(id, "cart").await.unwrap().unwrap();
    assert_eq!(cart, ["apple", "pear"]);
    assert_eq!(
        sessions
            .session_value::<String>(&other.session_id, "theme")
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        sessions.session_value::<u32>(id, "theme").await,
        Err(Error::InvalidArgument(_))
    ));
    sessions.remove_session_value(id, "theme").await.unwrap();
    assert_eq!(sessions.session_value::<String>(id, "theme").await.unwrap(), None);
    let too_big = "x".repeat(rocket_sqlite_sessions::MAX_SESSION_DATA_BYTES);
    assert!(sessions.set_session_value(id, "big", too_big).await.is_err());
    assert_eq!(
        sessions
            .session_value::<Vec<String>>(id, "cart")
            .await
            .unwrap()
            .unwrap()
            .len(),
        2
    );

    sessions.revoke_session("7", id).await.unwrap();
    assert!(matches!(
        sessions.session_value::<Vec<String>>(id, "cart").await,
        Err(Error::SessionNotFound)
    ));
    assert!(matches!(
        sessions.set_session_value(id, "cart", 1).await,
        Err(Error::SessionNotFound)
    ));
    demo.harness.clock().advance(1_209_600);
    sessions.prune_now().await.unwrap();
    let connection = rusqlite::Connection::open(demo.harness.database()).unwrap();
    let rows: i64 = connection
        .query_row("SELECT count(*) FROM sessions WHERE data LIKE '%apple%'", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(rows, 0, "the data is gone with the session");
}

// ---- cookies that survive catchers ---------------------------------------------

/// A guarded route that ends in a 404 from the catcher.
#[rocket::get("/gone")]
fn gone(_user: rocket_sqlite_sessions::AuthUser) -> Option<String> {
    None
}

impl Demo {
    /// The demo with [`gone`] mounted.
    async fn with_gone() -> Demo {
        let harness = demo::harness();
        let rocket = demo::app(harness.rocket()).mount("/", rocket::routes![gone]);
        Demo::on(harness, rocket).await
    }
}

/// After 11 s more (past the grace window), whether the browser is still
/// signed in: a lost rotation would now be reuse, and revoke the session.
async fn still_signed_in(demo: &Demo, browser: &Browser) -> bool {
    demo.harness.clock().advance(11);
    let (status, html) = browser.page(demo, "/").await;
    status == Status::Ok && html.contains("Signed in as alice")
}

/// Asserts that the browser holds a refresh cookie other than `before` (the
/// rotation reached it) and stays signed in past the grace window.
async fn assert_rotation_delivered(demo: &Demo, browser: &Browser, before: &str) {
    assert_ne!(
        browser.cookie(REFRESH).unwrap(),
        before,
        "the rotated cookies reached the browser"
    );
    assert!(still_signed_in(demo, browser).await, "and nothing was revoked");
}

#[rocket::async_test]
async fn a_silent_refresh_survives_a_404_from_a_catcher() {
    let demo = Demo::with_gone().await;
    let browser = Browser::new("B");
    browser.sign_in(&demo).await;
    let refresh = browser.cookie(REFRESH).unwrap();
    demo.harness.clock().advance(901);
    let response = browser.send(demo.client.get("/gone")).await;
    assert_eq!(response.status(), Status::NotFound);
    drop(response);
    assert_rotation_delivered(&demo, &browser, &refresh).await;
}

#[rocket::async_test]
async fn a_silent_refresh_survives_a_step_up_401() {
    let demo = Demo::start().await;
    let browser = Browser::new("B");
    browser.sign_in(&demo).await;
    let csrf = browser.csrf(&demo, "/").await;
    let refresh = browser.cookie(REFRESH).unwrap();
    demo.harness.clock().advance(901); // the access token expired, the login is no longer fresh
    let response = browser
        .send(
            demo.client
                .post("/auth/password")
                .header(ContentType::JSON)
                .header(Header::new("X-CSRF-Token", csrf))
                .body(json!({ "current_password": "password one", "new_password": "password two" }).to_string()),
        )
        .await;
    assert_eq!(response.status(), Status::Unauthorized, "a step-up answer");
    drop(response);
    assert_rotation_delivered(&demo, &browser, &refresh).await;
}

#[rocket::async_test]
async fn a_stale_form_with_a_wrong_csrf_token_rotates_nothing() {
    let demo = Demo::start().await;
    let browser = Browser::new("B");
    browser.sign_in(&demo).await;
    let (access, refresh) = (browser.cookie(ACCESS).unwrap(), browser.cookie(REFRESH).unwrap());
    demo.harness.clock().advance(901);
    let response = browser
        .send(
            demo.client
                .post("/logout")
                .header(ContentType::Form)
                .body("csrf_token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        )
        .await;
    assert_eq!(response.status(), Status::Forbidden);
    assert!(response.headers().get_one("Set-Cookie").is_none(), "no rotation");
    drop(response);
    assert_eq!(
        (browser.cookie(ACCESS).unwrap(), browser.cookie(REFRESH).unwrap()),
        (access, refresh)
    );
    assert!(still_signed_in(&demo, &browser).await);
}

#[rocket::async_test]
async fn dead_cookies_are_cleared_on_401() {
    let demo = Demo::start().await;
    let browser = Browser::new("B");
    browser.sign_in(&demo).await;
    // The session ends elsewhere (its access token logs out over the API).
    let access = browser.cookie(ACCESS).unwrap();
    let logout = demo
        .client
        .post("/auth/logout")
        .header(Header::new("Authorization", format!("Bearer {access}")))
        .dispatch()
        .await;
    assert_eq!(logout.status(), Status::NoContent);
    let response = browser.send(demo.client.get("/me")).await;
    assert_eq!(response.status(), Status::Unauthorized);
    for name in [ACCESS, REFRESH] {
        assert_eq!(
            attributes(&response, name).max_age().map(|age| age.whole_seconds()),
            Some(0),
            "{name} is cleared"
        );
    }
    drop(response);
    assert!(browser.cookie(ACCESS).is_none() && browser.cookie(REFRESH).is_none());
}

#[rocket::async_test]
async fn a_response_that_sets_tokens_is_never_cached() {
    let demo = Demo::start().await;
    let browser = Browser::new("B");
    browser.sign_in(&demo).await;
    demo.harness.clock().advance(901);
    let response = browser.send(demo.client.get("/")).await;
    assert_eq!(response.status(), Status::Ok);
    assert!(response.headers().get_one("Set-Cookie").is_some(), "a silent refresh");
    assert_eq!(response.headers().get_one("Cache-Control"), Some("no-store"));
    assert_eq!(response.headers().get_one("Vary"), Some("Cookie"));
}

/// A page of a browser's session, or one carrying a CSRF token, is never kept
/// by a cache, whatever its handler answered: `GET /` (the CSRF token and the
/// username), `/account/sessions` (ids, addresses, user agents), `/me`, and
/// `/login` (the pre-session cookie's token).
#[rocket::async_test]
async fn every_page_of_a_browser_session_is_never_cached() {
    let demo = Demo::start().await;
    let stranger = Browser::new("S");
    let login = stranger.send(demo.client.get("/login").header(Accept::HTML)).await;
    assert_eq!(login.status(), Status::Ok);
    assert_eq!(login.headers().get_one("Cache-Control"), Some("no-store"), "/login");
    assert_eq!(login.headers().get_one("Vary"), Some("Cookie"), "/login");
    let browser = Browser::new("B");
    browser.sign_in(&demo).await;
    for path in ["/", "/account/sessions", "/me", "/login", "/health"] {
        let response = browser.send(demo.client.get(path).header(Accept::HTML)).await;
        assert_eq!(response.headers().get_one("Cache-Control"), Some("no-store"), "{path}");
        assert_eq!(response.headers().get_one("Vary"), Some("Cookie"), "{path}");
    }
    // A request without cookies or tokens stays cacheable.
    let health = demo.client.get("/health").dispatch().await;
    assert_eq!(health.headers().get_one("Cache-Control"), None);
}

// ---- the CSRF field and the origin, to the letter --------------------------------

#[rocket::async_test]
async fn csrf_a_percent_encoded_field_in_any_complete_leading_position_passes() {
    let demo = Demo::start().await;
    let (browser, csrf) = signed_in(&demo).await;
    let encoded: String = csrf.bytes().map(|b| format!("%{b:02X}")).collect();
    let request = demo
        .client
        .post("/logout")
        .header(ContentType::Form)
        .body(format!("a=1&b=2&csrf_token={encoded}"));
    assert_eq!(logout_with(&demo, &browser, request).await, Status::SeeOther);
}

#[rocket::async_test]
async fn csrf_a_multipart_form_needs_the_header() {
    let demo = Demo::start().await;
    let (browser, csrf) = signed_in(&demo).await;
    let body = format!("--XyZ\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{csrf}\r\n--XyZ--\r\n");
    let multipart = || {
        demo.client
            .post("/logout")
            .header(ContentType::new("multipart", "form-data").with_params(("boundary", "XyZ")))
            .body(body.clone())
    };
    assert_eq!(
        logout_with(&demo, &browser, multipart()).await,
        Status::Forbidden,
        "the field of a multipart body is not read"
    );
    let with_header = multipart().header(Header::new("X-CSRF-Token", csrf.clone()));
    assert_eq!(logout_with(&demo, &browser, with_header).await, Status::SeeOther);
}

#[rocket::async_test]
async fn csrf_the_origin_must_match_in_scheme_and_port() {
    let harness = demo::harness();
    let rocket = demo::app(
        rocket::custom(harness.figment().merge(("sessions.trusted_proxies", ["127.0.0.1"]))).attach(harness.fairing()),
    );
    let demo = Demo::on(harness, rocket).await;
    let (browser, csrf) = signed_in(&demo).await;
    let from = |origin: &'static str| {
        demo.client
            .post("/logout")
            .remote("127.0.0.1:40000".parse().unwrap()) // the trusted proxy
            .header(Header::new("Host", "app.example"))
            .header(Header::new("X-Forwarded-Proto", "https"))
            .header(Header::new("Origin", origin))
            .header(Header::new("X-CSRF-Token", csrf.clone()))
    };
    for foreign in ["http://app.example", "https://app.example:8443", "null"] {
        assert_eq!(
            logout_with(&demo, &browser, from(foreign)).await,
            Status::Forbidden,
            "{foreign}"
        );
    }
    // The scheme comes from the configured header alone: a client's own
    // `Forwarded: proto=https` behind a proxy that wrote `http` is not believed.
    let forged_scheme = demo
        .client
        .post("/logout")
        .remote("127.0.0.1:40000".parse().unwrap())
        .header(Header::new("Host", "app.example"))
        .header(Header::new("Forwarded", "for=203.0.113.9;proto=https"))
        .header(Header::new("X-Forwarded-Proto", "http"))
        .header(Header::new("Origin", "https://app.example"))
        .header(Header::new("X-CSRF-Token", csrf.clone()));
    assert_eq!(
        logout_with(&demo, &browser, forged_scheme).await,
        Status::Forbidden,
        "the browser used http, as the proxy says"
    );
    assert_eq!(
        logout_with(&demo, &browser, from("https://app.example:443")).await,
        Status::SeeOther,
        "the app's own origin, default port spelled out"
    );
}

#[rocket::async_test]
async fn a_browser_user_registers_from_the_sign_in_page() {
    let demo = Demo::start().await;
    let browser = Browser::new("B");
    assert_eq!(browser.page(&demo, "/").await, (Status::SeeOther, "/login".into()));
    let (_, login) = browser.page(&demo, "/login").await;
    assert!(
        login.contains(r#"href="/register""#),
        "the sign-in page links to registration"
    );
    let csrf = browser.csrf(&demo, "/register").await;
    let taken = browser
        .send(
            demo.client
                .post("/register")
                .header(ContentType::Form)
                .body(format!("csrf_token={csrf}&username=alice&password=another+password")),
        )
        .await;
    assert_eq!(taken.status(), Status::Conflict);
    assert!(taken.into_string().await.unwrap().contains("taken"));
    let response = browser
        .send(
            demo.client
                .post("/register")
                .header(ContentType::Form)
                .body(format!("csrf_token={csrf}&username=bob&password=correct+horse")),
        )
        .await;
    assert_eq!(response.status(), Status::SeeOther);
    assert_eq!(response.headers().get_one("Location"), Some("/"));
    drop(response);
    let (status, html) = browser.page(&demo, "/").await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("Signed in as bob"), "registered and signed in: {html}");
}

const CHROME_ON_LINUX: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.8078.73 Safari/537.36";
const SAFARI_ON_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 \
     (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";

#[rocket::async_test]
async fn two_browsers_of_one_user_are_two_readable_devices_with_their_own_addresses() {
    let demo = Demo::start().await;
    let laptop = Browser::new(CHROME_ON_LINUX).at("192.0.2.1".parse().unwrap());
    let phone = Browser::new(SAFARI_ON_IPHONE).at("192.0.2.2".parse().unwrap());
    for browser in [&laptop, &phone] {
        assert_eq!(browser.get(&demo.client, "/login").await.status, Status::Ok);
        let signed_in = browser
            .submit(
                &demo.client,
                "/login",
                &[("username", "alice"), ("password", "password one")],
            )
            .await;
        assert_eq!(signed_in.status, Status::SeeOther, "{}", signed_in.body);
        assert_eq!(signed_in.location.as_deref(), Some("/"));
    }
    assert_ne!(laptop.cookie(ACCESS), phone.cookie(ACCESS), "a cookie jar each");
    let listed = laptop.get(&demo.client, "/auth/sessions").await;
    assert_eq!(listed.status, Status::Ok);
    let listed: Vec<Value> = serde_json::from_str(&listed.body).unwrap();
    let mut devices: Vec<(String, String, bool, String)> = listed
        .iter()
        .map(|session| {
            (
                session["device"].as_str().unwrap().to_string(),
                session["ip"].as_str().unwrap().to_string(),
                session["current"].as_bool().unwrap(),
                session["user_agent"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    devices.sort();
    assert_eq!(
        devices,
        [
            (
                "Chrome 156 on Linux".into(),
                "192.0.2.1".into(),
                true,
                CHROME_ON_LINUX.into()
            ),
            (
                "Safari 18 on iPhone".into(),
                "192.0.2.2".into(),
                false,
                SAFARI_ON_IPHONE.into()
            ),
        ]
    );
    // The laptop names the phone; the page shows the name, escaped.
    let phones = listed.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    laptop.get(&demo.client, "/account/sessions").await;
    let named = laptop
        .submit(
            &demo.client,
            &format!("/account/sessions/{phones}/label"),
            &[("label", "Alice's <phone>")],
        )
        .await;
    assert_eq!(named.location.as_deref(), Some("/account/sessions"), "{}", named.body);
    let page = laptop.get(&demo.client, "/account/sessions").await.body;
    assert!(
        page.contains(r#"<strong class="label">Alice&#39;s &lt;phone&gt;</strong>"#),
        "{page}"
    );
    assert!(page.contains("Safari 18 on iPhone"), "{page}");
    // The CSRF token of the last page goes with a form: signing out works,
    // and only for this browser.
    assert_eq!(laptop.get(&demo.client, "/").await.status, Status::Ok);
    let signed_out = laptop.submit(&demo.client, "/logout", &[]).await;
    assert_eq!(signed_out.location.as_deref(), Some("/login"));
    assert_eq!(laptop.cookie(ACCESS), None);
    assert_eq!(
        phone.get(&demo.client, "/").await.status,
        Status::Ok,
        "the phone stays signed in"
    );
}

#[rocket::async_test]
async fn without_keep_me_signed_in_the_cookies_end_with_the_browser() {
    let demo = Demo::start().await;
    let browser = Browser::new("Browser/1");
    let csrf = browser.csrf(&demo, "/login").await;
    let response = browser
        .send(
            demo.client
                .post("/login")
                .header(ContentType::Form)
                .body(format!("csrf_token={csrf}&username=alice&password=password+one")),
        )
        .await;
    assert_eq!(response.status(), Status::SeeOther);
    for name in [ACCESS, REFRESH] {
        let cookie = attributes(&response, name);
        assert_eq!(cookie.max_age(), None, "{name}: a session cookie");
        assert_eq!(cookie.expires(), None, "{name}: a session cookie");
    }
    drop(response);
    assert_eq!(browser.page(&demo, "/").await.0, Status::Ok, "signed in all the same");
}

#[rocket::async_test]
async fn the_account_page_signs_out_the_other_devices_then_every_one() {
    let demo = Demo::start().await;
    let (laptop, phone) = (Browser::new("Laptop/1"), Browser::new("Phone/1"));
    for browser in [&laptop, &phone] {
        assert_eq!(browser.sign_in(&demo).await.status(), Status::SeeOther);
    }
    let page = laptop.get(&demo.client, "/account/sessions").await;
    assert!(page.body.contains("Sign out all other devices"), "{}", page.body);
    assert!(page.body.contains("just now"), "relative times: {}", page.body);
    let others = laptop.submit(&demo.client, "/account/logout-others", &[]).await;
    assert_eq!(others.location.as_deref(), Some("/account/sessions"));
    assert_eq!(phone.page(&demo, "/").await, (Status::SeeOther, "/login".to_string()));
    assert_eq!(laptop.page(&demo, "/").await.0, Status::Ok, "this device stays");
    assert_eq!(demo.sessions().sessions("1").await.unwrap().len(), 1);

    laptop.get(&demo.client, "/account/sessions").await;
    let everywhere = laptop.submit(&demo.client, "/account/logout-all", &[]).await;
    assert_eq!(everywhere.location.as_deref(), Some("/login"));
    assert_eq!(laptop.page(&demo, "/").await, (Status::SeeOther, "/login".to_string()));
    assert!(demo.sessions().sessions("1").await.unwrap().is_empty());
}

#[rocket::async_test]
async fn the_password_page_needs_a_recent_sign_in_and_signs_the_other_devices_out() {
    let demo = Demo::start().await;
    let (laptop, phone) = (Browser::new("Laptop/1"), Browser::new("Phone/1"));
    for browser in [&laptop, &phone] {
        assert_eq!(browser.sign_in(&demo).await.status(), Status::SeeOther);
    }
    assert_eq!(laptop.get(&demo.client, "/account/password").await.status, Status::Ok);
    let wrong = laptop
        .submit(
            &demo.client,
            "/account/password",
            &[("current_password", "not it"), ("new_password", "password two")],
        )
        .await;
    assert_eq!(wrong.status, Status::Forbidden);
    assert!(wrong.body.contains("The current password is wrong."), "{}", wrong.body);

    // Six minutes later the sign-in is no longer recent enough.
    demo.harness.clock().advance(6 * 60);
    let stale = laptop
        .submit(
            &demo.client,
            "/account/password",
            &[("current_password", "password one"), ("new_password", "password two")],
        )
        .await;
    assert_eq!(stale.status, Status::Unauthorized);
    assert!(stale.body.contains("sign in again"), "{}", stale.body);

    // Signed in again: the change goes through, and the phone is signed out.
    laptop.get(&demo.client, "/").await;
    laptop.submit(&demo.client, "/logout", &[]).await;
    assert_eq!(laptop.sign_in(&demo).await.status(), Status::SeeOther);
    laptop.get(&demo.client, "/account/password").await;
    let changed = laptop
        .submit(
            &demo.client,
            "/account/password",
            &[("current_password", "password one"), ("new_password", "password two")],
        )
        .await;
    assert_eq!(
        changed.location.as_deref(),
        Some("/account/sessions"),
        "{}",
        changed.body
    );
    assert_eq!(phone.page(&demo, "/").await, (Status::SeeOther, "/login".to_string()));
    assert_eq!(laptop.page(&demo, "/").await.0, Status::Ok);
    let login = |password: &'static str| {
        demo.client
            .post("/auth/login")
            .json(&json!({ "username": "alice", "password": password }))
    };
    assert_eq!(login("password one").dispatch().await.status(), Status::Unauthorized);
    assert_eq!(login("password two").dispatch().await.status(), Status::Ok);
}

#[rocket::async_test]
async fn a_browser_gets_an_error_page_and_an_api_client_json() {
    let demo = Demo::start().await;
    let browser = Browser::new("Browser/1");
    let page = browser
        .send(demo.client.get("/no/such/page").header(Accept::HTML))
        .await;
    assert_eq!(page.status(), Status::NotFound);
    assert_eq!(page.content_type(), Some(ContentType::HTML));
    assert!(page.into_string().await.unwrap().contains("There is no such page"));
    let api = demo.client.get("/no/such/page").dispatch().await;
    assert_eq!(api.status(), Status::NotFound);
    assert_eq!(api.into_json::<Value>().await.unwrap()["error"], "not_found");
}

/// With `max_sessions = 1` and `at_max_sessions = "refuse"`, a second login
/// answers 409 `too_many_sessions` on the API and a page that says what to
/// do in the browser: never a 500.
#[rocket::async_test]
async fn a_login_past_max_sessions_refused_is_a_409_not_a_500() {
    let harness = demo::harness();
    let figment = harness
        .figment()
        .merge(("sessions.max_sessions", 1))
        .merge(("sessions.at_max_sessions", "refuse"));
    let rocket = demo::app(rocket::custom(figment).attach(harness.fairing()));
    let demo = Demo::on(harness, rocket).await;
    demo::login(&demo.client, "alice", "password one").await;
    let second = demo::post_json(
        &demo.client,
        "/auth/login",
        json!({ "username": "alice", "password": "password one" }),
    )
    .await;
    assert_eq!(second.status(), Status::Conflict);
    let body: Value = second.into_json().await.unwrap();
    assert_eq!(body["error"], "too_many_sessions");

    let browser = Browser::new("Browser/1");
    let page = browser.sign_in(&demo).await;
    assert_eq!(page.status(), Status::Conflict);
    let page = page.into_string().await.unwrap();
    assert!(page.contains("too many devices"), "{page}");
    assert!(
        !crate::common::logs::logged("demo: the user has the most sessions allowed"),
        "no error line"
    );
}

/// An old sign-in (a stolen session cookie, say) cannot end or rename the
/// user's other devices: the page asks for the password first, and a right
/// one makes a fresh sign-in that can.
#[rocket::async_test]
async fn signing_out_other_devices_asks_for_the_password_after_a_while() {
    let demo = Demo::start().await;
    let (laptop, phone) = (Browser::new("Laptop/1"), Browser::new("Phone/1"));
    for browser in [&laptop, &phone] {
        assert_eq!(browser.sign_in(&demo).await.status(), Status::SeeOther);
    }
    demo.harness.clock().advance(301); // past fresh_age
    let phone_session = demo
        .sessions()
        .sessions("1")
        .await
        .unwrap()
        .into_iter()
        .find(|session| session.user_agent.as_deref() == Some("Phone/1"))
        .unwrap()
        .id;

    laptop.get(&demo.client, "/account/sessions").await;
    let others = laptop.submit(&demo.client, "/account/logout-others", &[]).await;
    assert_eq!(others.status, Status::Unauthorized);
    assert!(others.body.contains("Enter your password"), "{}", others.body);
    let revoke = format!("/account/sessions/{phone_session}/revoke");
    laptop.get(&demo.client, "/account/sessions").await;
    assert_eq!(
        laptop.submit(&demo.client, &revoke, &[]).await.status,
        Status::Unauthorized
    );
    let label = format!("/account/sessions/{phone_session}/label");
    laptop.get(&demo.client, "/account/sessions").await;
    let renamed = laptop.submit(&demo.client, &label, &[("label", "stolen")]).await;
    assert_eq!(renamed.status, Status::Unauthorized);
    assert_eq!(phone.page(&demo, "/").await.0, Status::Ok, "nothing ended");
    assert_eq!(demo.sessions().sessions("1").await.unwrap().len(), 2);

    laptop.get(&demo.client, "/account/sessions").await;
    let wrong = laptop
        .submit(&demo.client, "/account/confirm", &[("password", "not it")])
        .await;
    assert_eq!(wrong.status, Status::Unauthorized);
    assert!(wrong.body.contains("Wrong password"), "{}", wrong.body);
    let confirmed = laptop
        .submit(&demo.client, "/account/confirm", &[("password", "password one")])
        .await;
    assert_eq!(confirmed.location.as_deref(), Some("/account/sessions"));
    laptop.get(&demo.client, "/account/sessions").await;
    let others = laptop.submit(&demo.client, "/account/logout-others", &[]).await;
    assert_eq!(others.location.as_deref(), Some("/account/sessions"));
    assert_eq!(phone.page(&demo, "/").await, (Status::SeeOther, "/login".to_string()));
    assert_eq!(laptop.page(&demo, "/").await.0, Status::Ok);
    assert_eq!(
        demo.sessions().sessions("1").await.unwrap().len(),
        1,
        "the old laptop session ended too"
    );
}

/// The demo's pages as a newcomer meets them: a signed-out visit comes back
/// to the page after signing in (`next`, never another site), a wrong
/// password keeps the username typed, the devices page says "Your devices",
/// and a member opening an admin page in a browser gets a page, not JSON.
#[rocket::async_test]
async fn the_demo_pages_keep_their_word() {
    let demo = Demo::start().await; // alice, the first user: the admin
    assert_eq!(
        demo::register(&demo.client, "bob", "password two").await.status(),
        Status::Created
    );
    let browser = Browser::new("Browser/1");

    let visit = browser.get(&demo.client, "/account/sessions").await;
    assert_eq!(visit.status, Status::SeeOther);
    let login = visit.location.unwrap();
    assert!(login.starts_with("/login?next="), "{login}");
    let form = browser.get(&demo.client, &login).await;
    assert!(
        form.body.contains(r#"name="next" value="/account/sessions""#),
        "{}",
        form.body
    );

    let wrong = browser
        .submit(
            &demo.client,
            "/login",
            &[
                ("username", "bob"),
                ("password", "not it"),
                ("next", "/account/sessions"),
            ],
        )
        .await;
    assert_eq!(wrong.status, Status::Unauthorized);
    assert!(
        wrong.body.contains(r#"value="bob""#),
        "the username stays: {}",
        wrong.body
    );
    let signed_in = browser
        .submit(
            &demo.client,
            "/login",
            &[
                ("username", "bob"),
                ("password", "password two"),
                ("next", "/account/sessions"),
            ],
        )
        .await;
    assert_eq!(signed_in.location.as_deref(), Some("/account/sessions"));
    let devices = browser.get(&demo.client, "/account/sessions").await;
    assert!(devices.body.contains("<title>Your devices</title>"), "{}", devices.body);

    let admin_page = browser.send(demo.client.get("/admin/users").header(Accept::HTML)).await;
    assert_eq!(admin_page.status(), Status::Forbidden);
    assert_eq!(admin_page.content_type(), Some(ContentType::HTML));
    assert!(admin_page
        .into_string()
        .await
        .unwrap()
        .contains("may not open this page"));

    // `next` never leads off the site.
    let other = Browser::new("Browser/2");
    other.get(&demo.client, "/login").await;
    let offsite = other
        .submit(
            &demo.client,
            "/login",
            &[
                ("username", "bob"),
                ("password", "password two"),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(offsite.location.as_deref(), Some("/"));
}
