//! Cookies across sibling subdomains in a real browser: headless Chromium
//! (over WebDriver) on `https://app.example.test` and `https://api.example.test`,
//! both mapped to loopback (`--host-resolver-rules`), over TLS with a
//! certificate of the test's own CA (`openssl`; Chromium trusts exactly that
//! certificate's key, `--ignore-certificate-errors-spki-list`). The app signs in
//! on `app.`, a page there fetches `api.` with credentials and gets the
//! session's user; a page on another site (`evil.test`) posts a form to the
//! API with the cookies (`same_site = "none"`), and the CSRF check refuses it.
//!
//! Needs Debian's `chromium`, `chromium-driver` and `openssl` (see build.rs).

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use rocket::http::{CookieJar, Header};
use rocket::response::content::RawHtml;
use rocket::{get, post, routes, State};
use rocket_sqlite_sessions::testing::TestHarness;
use rocket_sqlite_sessions::{AuthUser, ClientInfo, Error, Sessions};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The port the app listens on (every host name of the test maps to it).
struct Port(u16);

/// Signs `ada` in (a test's shortcut for a login form) and shows a page.
#[get("/sign-in")]
async fn sign_in(
    sessions: &State<Sessions>,
    client: ClientInfo,
    jar: &CookieJar<'_>,
) -> Result<RawHtml<&'static str>, Error> {
    let pair = sessions.login("ada", json!({ "name": "ada" }), &client).await?;
    sessions.set_cookies(jar, &pair);
    Ok(RawHtml("<!doctype html><p>signed in</p>"))
}

/// The API's answer: the session's user.
#[get("/whoami")]
fn whoami(user: AuthUser) -> String {
    user.id
}

/// An unsafe API route.
#[post("/whoami")]
fn whoami_post(user: AuthUser) -> String {
    user.id
}

/// Another site's page, whose form posts to the API with the user's cookies.
#[get("/attack")]
fn attack(port: &State<Port>) -> RawHtml<String> {
    RawHtml(format!(
        r#"<!doctype html><form id="attack" method="post" action="https://api.example.test:{}/whoami"><input name="x" value="1"></form>"#,
        port.0
    ))
}

/// CORS for the app's own origin, as an API answering its sibling does.
struct Cors(String);

#[rocket::async_trait]
impl rocket::fairing::Fairing for Cors {
    fn info(&self) -> rocket::fairing::Info {
        rocket::fairing::Info {
            name: "CORS for app.example.test",
            kind: rocket::fairing::Kind::Response,
        }
    }

    async fn on_response<'r>(&self, request: &'r rocket::Request<'_>, response: &mut rocket::Response<'r>) {
        if request.headers().get_one("Origin") == Some(self.0.as_str()) {
            response.set_header(Header::new("Access-Control-Allow-Origin", self.0.clone()));
            response.set_header(Header::new("Access-Control-Allow-Credentials", "true"));
        }
    }
}

/// A CA, and a certificate for the test's host names signed by it; gives
/// the certificate and key files and the base64 SHA-256 of its public key.
fn certificate(directory: &Path) -> (String, String, String) {
    let run = |script: &str| {
        let status = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(directory)
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success(), "{script}");
    };
    run(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
         -subj '/CN=rocket_sqlite_sessions test CA' -keyout ca.key -out ca.pem",
    );
    run(
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '/CN=app.example.test' \
         -keyout server.key -out server.csr",
    );
    run(
        "printf 'subjectAltName=DNS:app.example.test,DNS:api.example.test,DNS:evil.test\\n' > server.ext && \
         openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
         -extfile server.ext -out server.pem",
    );
    let spki = Command::new("sh")
        .arg("-c")
        .arg("openssl x509 -in server.pem -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64")
        .current_dir(directory)
        .output()
        .unwrap();
    let spki = String::from_utf8(spki.stdout).unwrap().trim().to_string();
    let path = |name: &str| directory.join(name).display().to_string();
    (path("server.pem"), path("server.key"), spki)
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn browser(driver_port: u16, profile: &Path, spki: &str) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--host-resolver-rules=MAP app.example.test 127.0.0.1, MAP api.example.test 127.0.0.1, MAP evil.test 127.0.0.1",
                format!("--ignore-certificate-errors-spki-list={spki}"),
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

#[rocket::async_test]
#[cfg_attr(
    not(browser),
    ignore = "needs Debian's chromium and chromium-driver (see testsuite/build.rs)"
)]
async fn a_session_signed_in_on_app_is_read_by_api_and_a_cross_site_post_is_refused() {
    let harness = TestHarness::new();
    let (cert, key, spki) = certificate(harness.directory());
    let port = free_port();
    let app_origin = format!("https://app.example.test:{port}");
    let figment = harness
        .figment()
        .merge(("port", port))
        .merge(("log_level", "off"))
        .merge(("tls.certs", cert))
        .merge(("tls.key", key))
        .merge(("sessions.cookie_domain", "example.test"))
        .merge(("sessions.same_site", "none"))
        .merge(("sessions.allowed_origins", [app_origin.clone()]));
    let rocket = rocket::custom(figment)
        .attach(harness.fairing())
        .attach(Cors(app_origin.clone()))
        .manage(Port(port))
        .mount("/", routes![sign_in, whoami, whoami_post, attack]);
    let ignited = rocket.ignite().await.expect("the server ignites");
    let shutdown = ignited.shutdown();
    rocket::tokio::spawn(ignited.launch());
    wait_for_port(port);

    let driver_port = free_port();
    let _driver = Driver(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver"),
    );
    wait_for_port(driver_port);
    let client = browser(driver_port, &harness.directory().join("profile"), &spki).await;

    client.goto(&format!("{app_origin}/sign-in")).await.unwrap();
    assert!(text(&client).await.contains("signed in"));
    // A cross-origin fetch from the app's page to the API, with credentials:
    // the cookie set for example.test goes with it.
    let user = client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch(arguments[0], {credentials: 'include'}).then(r => r.text().then(t => done(r.status + ' ' + t)))
               .catch(e => done('failed: ' + e));",
            vec![json!(format!("https://api.example.test:{port}/whoami"))],
        )
        .await
        .unwrap();
    assert_eq!(user, json!("200 ada"));

    // Another site's form posts to the API; the cookies go (SameSite=None),
    // and the CSRF check refuses it.
    client.goto(&format!("https://evil.test:{port}/attack")).await.unwrap();
    client
        .execute("document.getElementById('attack').submit();", vec![])
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut page = String::new();
    while Instant::now() < deadline {
        page = text(&client).await;
        if page.contains("csrf_failed") || page.contains("invalid_token") {
            break;
        }
        rocket::tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(page.contains("csrf_failed"), "the forged POST got: {page}");
    let _ = client.close().await;
    shutdown.notify();
}
