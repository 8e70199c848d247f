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
    _harness: TestHarness,
}

pub fn app() -> App {
    let harness = TestHarness::new();
    let rocket = rocket::custom(harness.figment().merge(("log_level", "off")))
        .attach(harness.fairing())
        .mount("/", routes![me])
        .mount("/auth", rocket_sqlite_sessions::routes());
    App {
        client: Client::tracked(rocket).expect("the fuzz app launches"),
        _harness: harness,
    }
}

/// Hostile input may be refused any way but never accepted and never answered
/// with a server error.
pub fn assert_refused(status: rocket::http::Status, input: &[u8]) {
    assert!(
        !(200..300).contains(&status.code) && status.code < 500,
        "{status} for input {input:?}"
    );
}
