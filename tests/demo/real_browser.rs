//! The demo in a real browser: headless Chromium driven over WebDriver
//! (chromedriver), the demo served on a loopback port with the test's clock.
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the test is
//! ignored, with the reason (testsuite/build.rs), unless `REQUIRE_BROWSER=1`
//! or `CI` is set (as by `.ci/run`, which installs them): then it fails.

use crate::demo;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use rocket::{get, routes};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while rocket::tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        rocket::tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Launches `rocket` on `port` in the background; returns its shutdown handle.
async fn serve(rocket: rocket::Rocket<rocket::Build>, port: u16) -> rocket::Shutdown {
    let ignited = rocket.ignite().await.expect("the server ignites");
    let shutdown = ignited.shutdown();
    rocket::tokio::spawn(ignited.launch());
    wait_for_port(port).await;
    shutdown
}

/// A page on another site whose form posts to the app's logout.
#[get("/")]
fn attacker_page(target: &rocket::State<AttackTarget>) -> rocket::response::content::RawHtml<String> {
    rocket::response::content::RawHtml(format!(
        r#"<!doctype html><form id="attack" method="post" action="{}/logout"><input name="x" value="1"></form>"#,
        target.0
    ))
}

struct AttackTarget(String);

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn browser(driver_port: u16, profile: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1000,700",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a Chromium session")
}

async fn text(client: &Client) -> String {
    client.find(Locator::Css("body")).await.unwrap().text().await.unwrap()
}

async fn path(client: &Client) -> String {
    client.current_url().await.unwrap().path().to_string()
}

async fn sign_in(client: &Client, base: &str) {
    client.goto(&format!("{base}/login")).await.unwrap();
    fill_in_and_submit(client).await;
    client
        .wait()
        .for_url(&format!("{base}/").parse().unwrap())
        .await
        .unwrap();
}

/// Types alice's name and password into the page's form and submits it.
async fn fill_in_and_submit(client: &Client) {
    client
        .find(Locator::Css("input[name=username]"))
        .await
        .unwrap()
        .send_keys("alice")
        .await
        .unwrap();
    client
        .find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys("password one")
        .await
        .unwrap();
    client
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn cookie(client: &Client, name: &str) -> Option<fantoccini::cookies::Cookie<'static>> {
    client
        .get_all_cookies()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name() == name)
}

/// Runs `script` (its last argument is the callback) and returns its result.
async fn run(client: &Client, script: &str) -> Value {
    client.execute_async(script, vec![]).await.unwrap()
}

#[rocket::async_test]
#[cfg_attr(
    not(browser),
    ignore = "needs Debian's chromium and chromium-driver (see testsuite/build.rs)"
)]
async fn the_demo_in_headless_chromium() {
    assert!(
        Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists(),
        "the browser test needs {CHROMIUM} and {CHROMEDRIVER}: install Debian's chromium and chromium-driver"
    );
    let harness = demo::harness();
    let (app_port, attacker_port, driver_port) = (free_port(), free_port(), free_port());
    let base = format!("http://localhost:{app_port}");
    let app = demo::app(
        rocket::custom(harness.figment().merge(("port", app_port)).merge(("log_level", "off")))
            .attach(harness.fairing()),
    );
    let app_shutdown = serve(app, app_port).await;
    let attacker = rocket::custom(
        rocket::Config::figment()
            .merge(("port", attacker_port))
            .merge(("log_level", "off")),
    )
    .manage(AttackTarget(base.clone()))
    .mount("/", routes![attacker_page]);
    let attacker_shutdown = serve(attacker, attacker_port).await;
    let _driver = Driver(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    wait_for_port(driver_port).await;

    // A newcomer starts from the front page: to sign-in, to registration.
    let first = browser(driver_port, &harness.directory().join("profile-1")).await;
    first.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(path(&first).await, "/login");
    click_to(&first, Locator::LinkText("Register"), &format!("{base}/register")).await;
    fill_in_and_submit(&first).await;
    first
        .wait()
        .for_url(&format!("{base}/").parse().unwrap())
        .await
        .unwrap();
    assert!(
        text(&first).await.contains("Signed in as alice"),
        "registered and signed in"
    );

    // The cookies, as the browser stored them.
    for (name, ttl) in [("__Host-access_token", 900), ("__Host-refresh_token", 1_209_600)] {
        let stored = cookie(&first, name).await.unwrap_or_else(|| panic!("{name} is stored"));
        assert_eq!(stored.secure(), Some(true), "{name} Secure");
        assert_eq!(stored.http_only(), Some(true), "{name} HttpOnly");
        assert_eq!(stored.same_site(), Some(rocket::http::SameSite::Lax), "{name} SameSite");
        assert_eq!(stored.path(), Some("/"), "{name} Path");
        assert!(stored.domain().is_none_or(|d| d == "localhost"), "{name} is host-only");
        let expires = stored.expires_datetime().unwrap().unix_timestamp();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(expires <= now + ttl + 5, "{name} lives no longer than its token");
    }

    // The access token expires: a reload still shows the page, with new cookies.
    let before = cookie(&first, "__Host-access_token").await.unwrap().value().to_string();
    harness.clock().advance(901);
    first.refresh().await.unwrap();
    assert!(text(&first).await.contains("Signed in as alice"));
    let after = cookie(&first, "__Host-access_token").await.unwrap().value().to_string();
    assert_ne!(before, after, "the access cookie was renewed");

    // Ten parallel requests at the moment of expiry all go through.
    harness.clock().advance(901);
    let statuses = run(
        &first,
        "const done = arguments[arguments.length - 1];
         Promise.all(Array.from({length: 10}, () => fetch('/').then(r => r.status))).then(done);",
    )
    .await;
    assert_eq!(statuses, json!([200, 200, 200, 200, 200, 200, 200, 200, 200, 200]));
    first.goto(&format!("{base}/")).await.unwrap();
    assert!(
        text(&first).await.contains("Signed in as alice"),
        "still signed in after the race"
    );

    // A second browser shows up in the sessions page; revoking it signs it out.
    let second = browser(driver_port, &harness.directory().join("profile-2")).await;
    sign_in(&second, &base).await;
    first.goto(&format!("{base}/account/sessions")).await.unwrap();
    let rows = first.find_all(Locator::Css("tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(text(&first).await.contains("This device"));
    let screenshot = first.screenshot().await.unwrap();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    std::fs::write(shots.join("sessions-page.png"), &screenshot).unwrap();
    let revoke = || async {
        first
            .find(Locator::Css("tr.other form[action$='/revoke'] button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    };
    // The first browser signed in more than 5 minutes ago (fresh_age): the
    // page asks for its password before signing another device out.
    revoke().await;
    first
        .wait()
        .for_element(Locator::Css("form[action='/account/confirm']"))
        .await
        .unwrap();
    first
        .find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys("password one")
        .await
        .unwrap();
    first.find(Locator::Id("confirm")).await.unwrap().click().await.unwrap();
    first
        .wait()
        .for_element(Locator::Css("tr.other form[action$='/revoke'] button"))
        .await
        .unwrap();
    revoke().await;
    // The URL is the same before and after the form's redirect: wait for the new page.
    let mut rows = 0;
    for _ in 0..100 {
        rows = first.find_all(Locator::Css("tbody tr")).await.unwrap().len();
        if rows == 1 {
            break;
        }
        rocket::tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(rows, 1, "the revoked session is gone from the list");
    second.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(path(&second).await, "/login", "the revoked browser is sent to login");

    // A form on another site posting to /logout changes nothing.
    first.goto(&format!("http://127.0.0.1:{attacker_port}/")).await.unwrap();
    first
        .execute("document.getElementById('attack').submit();", vec![])
        .await
        .unwrap();
    rocket::tokio::time::sleep(Duration::from_millis(500)).await;
    first.goto(&format!("{base}/")).await.unwrap();
    assert!(
        text(&first).await.contains("Signed in as alice"),
        "the cross-site logout did nothing"
    );

    // A same-origin fetch POST without the CSRF token is refused.
    let status = run(
        &first,
        "const done = arguments[arguments.length - 1];
         fetch('/logout', {method: 'POST'}).then(r => done(r.status));",
    )
    .await;
    assert_eq!(status, json!(403));
    first.refresh().await.unwrap();
    assert!(text(&first).await.contains("Signed in as alice"));

    // A stale form (its CSRF token from an earlier session) submitted after
    // the access token expired is refused, and rotates nothing: 11 s later,
    // past the grace window, the user is still signed in, nothing revoked.
    harness.clock().advance(901);
    first
        .execute(
            "const field = document.querySelector('form[action=\"/logout\"] input[name=csrf_token]');
             field.value = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
             field.form.submit();",
            vec![],
        )
        .await
        .unwrap();
    wait_for_text(&first, "csrf_failed").await;
    harness.clock().advance(11);
    first.goto(&format!("{base}/")).await.unwrap();
    assert!(
        text(&first).await.contains("Signed in as alice"),
        "a stale form leaves the user signed in"
    );

    // A step-up answer (401 from FreshAuthUser, through a catcher) after the
    // access token expired still delivers the rotated cookies.
    harness.clock().advance(901);
    let csrf = first
        .find(Locator::Css("input[name=csrf_token]"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    let before = cookie(&first, "__Host-refresh_token")
        .await
        .unwrap()
        .value()
        .to_string();
    let status = run(
        &first,
        &format!(
            "const done = arguments[arguments.length - 1];
             fetch('/auth/password', {{method: 'POST', headers: {{'Content-Type': 'application/json',
                 'X-CSRF-Token': '{csrf}'}}, body: JSON.stringify({{current_password: 'password one',
                 new_password: 'password two'}})}}).then(r => done(r.status));"
        ),
    )
    .await;
    assert_eq!(status, json!(401), "the login is no longer fresh");
    let after = cookie(&first, "__Host-refresh_token")
        .await
        .unwrap()
        .value()
        .to_string();
    assert_ne!(before, after, "the browser holds the rotated refresh token");
    harness.clock().advance(11);
    first.goto(&format!("{base}/")).await.unwrap();
    assert!(
        text(&first).await.contains("Signed in as alice"),
        "still signed in, nothing revoked as reuse"
    );

    // Logout clears the cookies.
    click_to(
        &first,
        Locator::Css("form[action='/logout'] button"),
        &format!("{base}/login"),
    )
    .await;
    assert!(cookie(&first, "__Host-access_token").await.is_none());
    assert!(cookie(&first, "__Host-refresh_token").await.is_none());

    // Signed in again with "keep me signed in" ticked: cookies that outlive
    // the browser (the second browser's, without it, do not).
    first
        .find(Locator::Css("input[name=remember]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    fill_in_and_submit(&first).await;
    first
        .wait()
        .for_url(&format!("{base}/").parse().unwrap())
        .await
        .unwrap();
    let kept = cookie(&first, "__Host-refresh_token").await.unwrap();
    assert!(kept.expires_datetime().is_some(), "a persistent cookie");

    // The password page, from a fresh sign-in: the change goes through and
    // the second browser is signed out.
    second.goto(&format!("{base}/")).await.unwrap();
    sign_in(&second, &base).await;
    assert!(
        cookie(&second, "__Host-refresh_token")
            .await
            .unwrap()
            .expires_datetime()
            .is_none(),
        "without the box, a session cookie"
    );
    click_to(
        &first,
        Locator::LinkText("Change your password"),
        &format!("{base}/account/password"),
    )
    .await;
    for (field, value) in [("current_password", "password one"), ("new_password", "password two")] {
        first
            .find(Locator::Css(&format!("input[name={field}]")))
            .await
            .unwrap()
            .send_keys(value)
            .await
            .unwrap();
    }
    click_to(
        &first,
        Locator::Css("form[action='/account/password'] button"),
        &format!("{base}/account/sessions"),
    )
    .await;
    let devices = first.find_all(Locator::Css("tbody tr")).await.unwrap();
    assert_eq!(devices.len(), 1, "the other browser was signed out");
    let device = first
        .find(Locator::Css("span.device"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(device.ends_with(" on Linux"), "a readable device: {device}");
    assert!(text(&first).await.contains("just now"), "a relative time");
    let name = first.find(Locator::Css("input[name=label]")).await.unwrap();
    name.send_keys("Work laptop").await.unwrap();
    first
        .find(Locator::Css("form[action$='/label'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&first, "Work laptop").await;
    assert_eq!(
        first
            .find(Locator::Css("strong.label"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Work laptop"
    );
    second.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(path(&second).await, "/login");

    // Sign out everywhere: this browser too.
    click_to(&first, Locator::Id("logout-all"), &format!("{base}/login")).await;
    assert!(cookie(&first, "__Host-access_token").await.is_none());
    first.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(path(&first).await, "/login");

    // A page that does not exist is a page, not JSON.
    first.goto(&format!("{base}/no/such/page")).await.unwrap();
    assert!(text(&first).await.contains("There is no such page"));

    first.close().await.unwrap();
    second.close().await.unwrap();
    app_shutdown.notify();
    attacker_shutdown.notify();
}

/// Clicks what `locator` finds and waits for the browser to reach `url`.
async fn click_to(client: &Client, locator: Locator<'_>, url: &str) {
    client.find(locator).await.unwrap().click().await.unwrap();
    client.wait().for_url(&url.parse().unwrap()).await.unwrap();
}

/// Waits (real time, bounded) until the page's text contains `needle`.
async fn wait_for_text(client: &Client, needle: &str) {
    for _ in 0..100 {
        if let Ok(body) = client.find(Locator::Css("body")).await {
            if body.text().await.is_ok_and(|text| text.contains(needle)) {
                return;
            }
        }
        rocket::tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the page never showed {needle:?}: {}", text(client).await);
}
