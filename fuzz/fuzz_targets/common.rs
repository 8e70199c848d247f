//! The app both targets drive: the crate's routes and one guarded route, on a
//! temporary database, logging off.

use rocket::local::blocking::Client;
use rocket::{get, routes};
use rocket_sqlite_sessions::testing::TestHarness;
use rocket_sqlite_sessions::AuthUser;

#[get("/me")]
fn me(user: AuthUser) -> String {
    user.id
}

pub struct App {
    pub client: Client,
    harness: TestHarness,
}

impl App {
    /// The key that signs access tokens (base64).
    #[allow(dead_code)]
    pub fn secret(&self) -> &str {
        self.harness.secret()
    }

    /// A genuine access token's header and claims, of a fresh login.
    #[allow(dead_code)]
    pub fn genuine(&self) -> (serde_json::Map<String, serde_json::Value>, serde_json::Map<String, serde_json::Value>) {
        use base64::Engine as _;
        let pair: serde_json::Value = self.client.post("/login").dispatch().into_json().expect("a token pair");
        let access = pair["access_token"].as_str().expect("an access token");
        let part = |n: usize| {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(access.split('.').nth(n).expect("three parts"))
                .expect("base64url");
            serde_json::from_slice(&bytes).expect("a JSON object")
        };
        (part(0), part(1))
    }
}

#[rocket::post("/login")]
async fn login(
    sessions: &rocket::State<rocket_sqlite_sessions::Sessions>,
    client: rocket_sqlite_sessions::ClientInfo,
) -> Result<rocket_sqlite_sessions::TokenPair, rocket_sqlite_sessions::Error> {
    sessions.login("fuzz", serde_json::json!({}), &client).await
}

pub fn app() -> App {
    let harness = TestHarness::new();
    let rocket = rocket::custom(harness.figment().merge(("log_level", "off")))
        .attach(harness.fairing())
        .mount("/", routes![me, login])
        .mount("/auth", rocket_sqlite_sessions::routes());
    App {
        client: Client::tracked(rocket).expect("the fuzz app launches"),
        harness,
    }
}

/// Hostile input may be refused any way but never accepted and never answered
/// with a server error.
#[allow(dead_code)]
pub fn assert_refused(status: rocket::http::Status, input: &[u8]) {
    assert!(
        !(200..300).contains(&status.code) && status.code < 500,
        "{status} for input {input:?}"
    );
}
