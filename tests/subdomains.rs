//! Cookies shared across sibling subdomains (`cookie_domain`): `app.` signs
//! in, `api.` reads the session; CSRF still holds for every unsafe request.

mod common;

use rocket::http::{Cookie, CookieJar, Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use rocket::{get, post, routes, State};
use rocket_sqlite_sessions::testing::TestHarness;
use rocket_sqlite_sessions::{AuthUser, ClientInfo, Error, Sessions};

#[post("/sign-in/<user>")]
async fn sign_in(sessions: &State<Sessions>, client: ClientInfo, jar: &CookieJar<'_>, user: &str) -> Result<(), Error> {
    let pair = sessions.login(user, (), &client).await?;
    sessions.set_cookies(jar, &pair);
    Ok(())
}

#[get("/whoami")]
fn whoami(user: AuthUser) -> String {
    user.id
}

#[post("/whoami")]
fn whoami_post(user: AuthUser) -> String {
    user.id
}

async fn app(configure: impl FnOnce(rocket::figment::Figment) -> rocket::figment::Figment) -> (TestHarness, Client) {
    common::logs::capture_logs();
    let harness = TestHarness::new();
    let rocket = rocket::custom(configure(harness.figment()))
        .attach(harness.fairing())
        .mount("/", routes![sign_in, whoami, whoami_post]);
    let client = Client::untracked(rocket).await.unwrap();
    (harness, client)
}

/// Whether `rocket`'s launch fails in a fairing (the crate's).
async fn fails_launch(rocket: rocket::Rocket<rocket::Build>) -> bool {
    match Client::untracked(rocket).await {
        Ok(_) => false,
        Err(error) => matches!(error.kind(), rocket::error::ErrorKind::FailedFairings(_)),
    }
}

/// The `Set-Cookie` headers of `response`, parsed.
fn set_cookies(response: &LocalResponse<'_>) -> Vec<Cookie<'static>> {
    response
        .headers()
        .get("Set-Cookie")
        .map(|header| Cookie::parse(header.to_string()).unwrap())
        .collect()
}

#[rocket::async_test]
async fn a_session_signed_in_on_app_is_read_on_api_and_csrf_still_holds() {
    let (_harness, client) = app(|figment| {
        figment
            .merge(("sessions.cookie_domain", "example.test"))
            .merge(("sessions.allowed_origins", ["https://app.example.test"]))
    })
    .await;
    let signed_in = client
        .post("/sign-in/ada")
        .header(Header::new("Host", "app.example.test"))
        .dispatch()
        .await;
    assert_eq!(signed_in.status(), Status::Ok);
    let cookies = set_cookies(&signed_in);
    assert_eq!(cookies.len(), 2);
    for cookie in &cookies {
        assert!(cookie.name().starts_with("__Secure-"), "{cookie}");
        assert_eq!(cookie.domain(), Some("example.test"), "{cookie}");
        assert_eq!(cookie.secure(), Some(true));
        assert_eq!(cookie.http_only(), Some(true));
    }
    let access = cookies
        .iter()
        .find(|c| c.name() == "__Secure-access_token")
        .unwrap()
        .clone();
    let csrf = client
        .rocket()
        .state::<Sessions>()
        .unwrap()
        .csrf_token(&common::session_id_of(access.value()));

    // The sibling reads the session from the shared cookie.
    let read = client
        .get("/whoami")
        .header(Header::new("Host", "api.example.test"))
        .cookie(access.clone())
        .dispatch()
        .await;
    assert_eq!(read.status(), Status::Ok);
    assert_eq!(read.into_string().await.unwrap(), "ada");

    // An unsafe request from the listed sibling, with the token: admitted.
    let from_app = client
        .post("/whoami")
        .header(Header::new("Host", "api.example.test"))
        .header(Header::new("Origin", "https://app.example.test"))
        .header(Header::new("X-CSRF-Token", csrf.clone()))
        .cookie(access.clone())
        .dispatch()
        .await;
    assert_eq!(from_app.status(), Status::Ok);
    // From another site, or without the token: refused.
    let forged = client
        .post("/whoami")
        .header(Header::new("Host", "api.example.test"))
        .header(Header::new("Origin", "https://evil.example"))
        .header(Header::new("X-CSRF-Token", csrf))
        .cookie(access.clone())
        .dispatch()
        .await;
    assert_eq!(forged.status(), Status::Forbidden);
    let tokenless = client
        .post("/whoami")
        .header(Header::new("Host", "api.example.test"))
        .header(Header::new("Origin", "https://app.example.test"))
        .cookie(access)
        .dispatch()
        .await;
    assert_eq!(tokenless.status(), Status::Forbidden);
}

#[rocket::async_test]
async fn same_site_none_is_secure_and_host_cookies_never_carry_a_domain() {
    let (_harness, client) = app(|figment| figment.merge(("sessions.same_site", "none"))).await;
    let signed_in = client.post("/sign-in/ada").dispatch().await;
    for cookie in set_cookies(&signed_in) {
        assert_eq!(cookie.same_site(), Some(rocket::http::SameSite::None), "{cookie}");
        assert_eq!(cookie.secure(), Some(true));
        assert!(
            cookie.name().starts_with("__Host-") && cookie.domain().is_none(),
            "{cookie}"
        );
    }

    for (key, value, says) in [
        ("cookie_domain", "https://example.test", "is not a domain like"),
        ("cookie_domain", "localhost", "is not a domain like"),
        ("cookie_domain", "example.test:8000", "is not a domain like"),
    ] {
        let harness = TestHarness::new();
        let rocket =
            rocket::custom(harness.figment().merge((format!("sessions.{key}"), value))).attach(harness.fairing());
        assert!(fails_launch(rocket).await, "{key} = {value:?} launched");
        assert!(common::logs::logged(says), "{key} = {value:?}");
    }
    let harness = TestHarness::new();
    let figment = harness
        .figment()
        .merge(("sessions.cookie_domain", "example.test"))
        .merge(("sessions.access_cookie", "__Host-mine"));
    assert!(fails_launch(rocket::custom(figment).attach(harness.fairing())).await);
    assert!(common::logs::logged("a `__Host-` cookie may not carry a Domain"));
}
