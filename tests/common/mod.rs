//! Shared helpers: a minimal app on the crate, driven over HTTP by the local
//! client, each on its own temporary database and manual clock.
#![allow(dead_code)]

pub mod backend;
pub mod dbsc;
pub mod dpop;
pub mod process;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use rocket::figment::Figment;
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use rocket::serde::json::Json;
use rocket::tokio::sync::watch;
use rocket::{get, post, routes, State};
use rocket_sqlite_sessions::testing::TestHarness;
use rocket_sqlite_sessions::{
    AuthUser, ClientInfo, Error, Sessions, SessionsFairing, TokenPair, INVALID_TOKEN_MESSAGE,
};
use serde_json::{json, Value};

#[post("/login/<user>")]
async fn login(sessions: &State<Sessions>, client: ClientInfo, user: &str) -> Result<TokenPair, Error> {
    sessions.login(user, json!({ "role": "member" }), &client).await
}

#[get("/whoami")]
fn whoami(user: AuthUser) -> Json<Value> {
    Json(json!({
        "user_id": user.id,
        "session_id": user.session_id,
        "role": user.claim::<String>("role"),
        "sender_constrained": user.is_sender_constrained(),
    }))
}

/// A login route that wraps a fake credential check: the password is "right".
#[post("/try-login/<username>/<password>")]
async fn try_login(
    sessions: &State<Sessions>,
    client: ClientInfo,
    username: &str,
    password: &str,
) -> Result<Result<TokenPair, Status>, Error> {
    let check = sessions.credential_check(username, &client).await?;
    if password == "right" {
        check.passed().await?;
        Ok(Ok(sessions.login(username, (), &client).await?))
    } else {
        check.failed().await?;
        Ok(Err(Status::Unauthorized))
    }
}

/// The users of the gated login, as an app's own table would hold them: a
/// password and a role each. Its gate holds logins between reading a user
/// and logging in, so a test can change the user while logins are in flight.
pub struct Directory {
    users: Mutex<HashMap<String, (String, String)>>,
    arrived: AtomicUsize,
    open: watch::Sender<bool>,
}

impl Directory {
    fn new() -> Self {
        Directory {
            users: Mutex::default(),
            arrived: AtomicUsize::new(0),
            open: watch::channel(true).0,
        }
    }

    /// Sets `username`'s password and role.
    pub fn set(&self, username: &str, password: &str, role: &str) {
        self.users
            .lock()
            .unwrap()
            .insert(username.to_string(), (password.to_string(), role.to_string()));
    }

    /// Closes the gate: logins from now on wait at it, once they have read
    /// their user.
    pub fn close(&self) {
        self.arrived.store(0, Ordering::SeqCst);
        self.open.send_replace(false);
    }

    /// Opens the gate: the logins waiting there go on.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// Waits until `count` logins wait at the gate (10 s at most).
    pub async fn wait_for(&self, count: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.arrived.load(Ordering::SeqCst) < count {
            assert!(
                std::time::Instant::now() < deadline,
                "{count} logins never reached the gate"
            );
            rocket::tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    async fn arrive(&self) {
        let mut open = self.open.subscribe();
        self.arrived.fetch_add(1, Ordering::SeqCst);
        let _ = open.wait_for(|open| *open).await;
    }
}

/// A login as an app makes one: the credential check, the user's password
/// and role read from the directory, a wait at the gate (the login in
/// flight), then the login through the check.
#[post("/gated-login/<username>/<password>")]
async fn gated_login(
    sessions: &State<Sessions>,
    directory: &State<Directory>,
    client: ClientInfo,
    username: &str,
    password: &str,
) -> Result<Result<TokenPair, Status>, Error> {
    let check = sessions.credential_check(username, &client).await?;
    let user = directory.users.lock().unwrap().get(username).cloned();
    directory.arrive().await;
    match user {
        Some((right, role)) if right == password => {
            Ok(Ok(check.login(username, json!({ "role": role }), &client).await?))
        }
        _ => {
            check.failed().await?;
            Ok(Err(Status::Unauthorized))
        }
    }
}

/// Every session of every user ends (the test app's admin action).
#[post("/logout-everyone")]
async fn logout_everyone(sessions: &State<Sessions>) -> Result<Status, Error> {
    sessions.logout_everyone().await?;
    Ok(Status::NoContent)
}

#[get("/data/<key>")]
async fn get_data(sessions: &State<Sessions>, user: AuthUser, key: &str) -> Result<Json<Option<Value>>, Error> {
    Ok(Json(sessions.session_value(&user.session_id, key).await?))
}

#[post("/data/<key>", data = "<value>")]
async fn set_data(sessions: &State<Sessions>, user: AuthUser, key: &str, value: Json<Value>) -> Result<(), Error> {
    sessions
        .set_session_value(&user.session_id, key, value.into_inner())
        .await
}

#[get("/maybe")]
fn maybe(user: Option<AuthUser>) -> String {
    user.map_or_else(|| "anonymous".to_string(), |user| user.id)
}

/// A token pair as the client received it.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub expires_in: i64,
}

/// The test app: a harness and a client on it. Several apps can share a
/// harness (its file and clock): several processes on one database.
pub struct App {
    pub harness: Arc<TestHarness>,
    pub client: Client,
}

impl App {
    /// A fresh app with the configuration of Rocket.toml.
    pub async fn start() -> App {
        App::start_with(TestHarness::new(), |figment| figment).await
    }

    /// A fresh app whose configuration `configure` changes.
    pub async fn configured(configure: impl FnOnce(Figment) -> Figment) -> App {
        App::start_with(TestHarness::new(), configure).await
    }

    /// An app on an existing harness: the same file and clock.
    pub async fn start_with(harness: impl Into<Arc<TestHarness>>, configure: impl FnOnce(Figment) -> Figment) -> App {
        App::start_hooked(harness, configure, |fairing| fairing).await
    }

    /// An app on an existing harness, its fairing given hooks by `hook`.
    pub async fn start_hooked(
        harness: impl Into<Arc<TestHarness>>,
        configure: impl FnOnce(Figment) -> Figment,
        hook: impl FnOnce(SessionsFairing) -> SessionsFairing,
    ) -> App {
        let harness = harness.into();
        logs::capture_logs();
        let rocket = rocket::custom(configure(harness.figment())).attach(hook(harness.fairing()));
        let client = match Client::tracked(with_routes(rocket)).await {
            Ok(client) => client,
            Err(error) => {
                let lines = logs::lines();
                let last: Vec<&String> = lines.iter().rev().take(12).collect();
                panic!("the app launches: {error}; the last log lines, newest first: {last:#?}")
            }
        };
        App { harness, client }
    }

    /// The `Sessions` of this app.
    pub fn manager(&self) -> &Sessions {
        self.client
            .rocket()
            .state::<Sessions>()
            .expect("the fairing manages Sessions")
    }

    /// Shuts the app down, keeping its database and clock.
    pub async fn stop(self) -> Arc<TestHarness> {
        self.client.terminate().await;
        self.harness
    }

    pub async fn login(&self, user: &str) -> Tokens {
        let response = self.client.post(format!("/login/{user}")).dispatch().await;
        assert_eq!(response.status(), Status::Ok);
        tokens_of(response).await
    }

    pub async fn whoami(&self, access: &str) -> LocalResponse<'_> {
        self.client.get("/whoami").header(bearer(access)).dispatch().await
    }

    pub async fn whoami_status(&self, access: &str) -> Status {
        self.whoami(access).await.status()
    }

    pub async fn refresh(&self, refresh: &str) -> LocalResponse<'_> {
        self.client
            .post("/auth/refresh")
            .header(ContentType::JSON)
            .body(json!({ "refresh_token": refresh }).to_string())
            .dispatch()
            .await
    }

    /// Refreshes and expects success.
    pub async fn rotate(&self, refresh: &str) -> Tokens {
        let response = self.refresh(refresh).await;
        assert_eq!(response.status(), Status::Ok, "refresh should succeed");
        tokens_of(response).await
    }

    pub async fn refresh_status(&self, refresh: &str) -> Status {
        self.refresh(refresh).await.status()
    }

    pub async fn post_bearer(&self, path: &str, access: &str) -> Status {
        self.client
            .post(path.to_string())
            .header(bearer(access))
            .dispatch()
            .await
            .status()
    }

    pub async fn sessions(&self, access: &str) -> Vec<Value> {
        let response = self
            .client
            .get("/auth/sessions")
            .header(bearer(access))
            .dispatch()
            .await;
        assert_eq!(response.status(), Status::Ok);
        response.into_json::<Vec<Value>>().await.expect("a JSON list")
    }

    /// The users of the gated login.
    pub fn directory(&self) -> &Directory {
        self.client
            .rocket()
            .state::<Directory>()
            .expect("the minimal app manages a Directory")
    }

    /// A login through the gate (see [`Directory`]): its status, and its
    /// tokens when it got some.
    pub async fn gated_login(&self, username: &str, password: &str) -> (Status, Option<Tokens>) {
        let response = self
            .client
            .post(format!("/gated-login/{username}/{password}"))
            .dispatch()
            .await;
        match response.status() {
            Status::Ok => (Status::Ok, Some(tokens_of(response).await)),
            status => (status, None),
        }
    }

    pub fn secret(&self) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(self.harness.secret())
            .unwrap()
    }
}

/// The minimal app's Rocket on `harness`.
pub fn rocket_on(harness: &TestHarness, configure: impl FnOnce(Figment) -> Figment) -> rocket::Rocket<rocket::Build> {
    // Rocket installs its own logger at launch unless one is there: install the
    // capturing one first, so tests of this binary that check logs see them.
    logs::capture_logs();
    with_routes(rocket::custom(configure(harness.figment())).attach(harness.fairing()))
}

/// The minimal app's routes on `rocket`.
pub fn with_routes(rocket: rocket::Rocket<rocket::Build>) -> rocket::Rocket<rocket::Build> {
    rocket
        .manage(Directory::new())
        .mount(
            "/",
            routes![
                login,
                whoami,
                maybe,
                try_login,
                gated_login,
                logout_everyone,
                get_data,
                set_data
            ],
        )
        .mount("/auth", rocket_sqlite_sessions::routes())
        .mount("/", rocket_sqlite_sessions::jwks_routes())
}

pub fn bearer(token: &str) -> Header<'static> {
    Header::new("Authorization", format!("Bearer {token}"))
}

pub async fn tokens_of(response: LocalResponse<'_>) -> Tokens {
    assert_eq!(
        response.headers().get_one("Cache-Control"),
        Some("no-store"),
        "token responses are not cached"
    );
    let body: Value = response.into_json().await.expect("a token response");
    assert_eq!(body["token_type"], "Bearer");
    Tokens {
        access: body["access_token"].as_str().expect("access_token").to_string(),
        refresh: body["refresh_token"].as_str().expect("refresh_token").to_string(),
        expires_in: body["expires_in"].as_i64().expect("expires_in"),
    }
}

/// Asserts the one response every token failure gets.
pub async fn assert_invalid_token(response: LocalResponse<'_>) {
    assert_eq!(response.status(), Status::Unauthorized);
    assert_eq!(
        response.headers().get_one("WWW-Authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );
    assert_eq!(response.content_type(), Some(ContentType::JSON));
    let body: Value = response.into_json().await.expect("a JSON body");
    assert_eq!(
        body,
        json!({ "error": "invalid_token", "message": INVALID_TOKEN_MESSAGE })
    );
}

/// Count of rows in `table` of the harness's database, read directly.
pub fn count_rows(harness: &TestHarness, table: &str) -> i64 {
    let connection = rusqlite::Connection::open(harness.database()).unwrap();
    connection
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get(0))
        .unwrap()
}

/// A logger that keeps every line of the test binary, for tests that check what
/// is logged.
pub mod logs {
    use std::sync::{Mutex, Once};

    static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

    struct Capture;

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            LINES
                .lock()
                .unwrap()
                .push(format!("{} {}", record.level(), record.args()));
        }
        fn flush(&self) {}
    }

    /// Installs the capturing logger (once per test binary), at debug level.
    /// It must come before any Rocket of the binary launches.
    pub fn capture_logs() {
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            log::set_logger(&Capture)
                .expect("a Rocket launched before capture_logs(): call it before building any Rocket");
            log::set_max_level(log::LevelFilter::Debug);
        });
    }

    /// Every captured line so far.
    pub fn lines() -> Vec<String> {
        LINES.lock().unwrap().clone()
    }

    /// Whether any captured line contains `needle`.
    pub fn logged(needle: &str) -> bool {
        LINES.lock().unwrap().iter().any(|line| line.contains(needle))
    }
}

/// The `sid` claim of an access token (read without verifying it).
pub fn session_id_of(access: &str) -> String {
    let payload = access.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url claims"),
    )
    .expect("JSON claims");
    claims["sid"].as_str().expect("a sid claim").to_string()
}
