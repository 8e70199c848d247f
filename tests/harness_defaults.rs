//! The test harness in an app's own project: no `leeway` in its Rocket.toml,
//! and the documented expiry example holds (`advance(access_ttl)` and the
//! token is refused). Its own binary: it points `ROCKET_CONFIG` at an app's
//! Rocket.toml before any Rocket reads its configuration.

use rocket::http::{Header, Status};
use rocket::local::asynchronous::Client;
use rocket::{get, routes};
use rocket_sqlite_sessions::testing::TestHarness;
use rocket_sqlite_sessions::{AuthUser, ClientInfo, Sessions, TokenPair};

#[get("/")]
fn page(user: AuthUser) -> String {
    user.id
}

#[rocket::post("/login")]
async fn login(sessions: &rocket::State<Sessions>) -> TokenPair {
    sessions.login("alice", (), &ClientInfo::default()).await.unwrap()
}

#[rocket::async_test]
async fn in_an_app_the_documented_expiry_example_holds() {
    // An app's Rocket.toml: nothing about leeway (or anything else).
    let directory = std::env::temp_dir().join(format!("rss-app-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&directory).unwrap();
    std::fs::write(directory.join("Rocket.toml"), "[default]\nlog_level = \"off\"\n").unwrap();
    std::env::set_var("ROCKET_CONFIG", directory.join("Rocket.toml"));

    let harness = TestHarness::new();
    let leeway = harness.figment().extract_inner::<i64>("sessions.leeway").ok();
    assert_eq!(leeway, Some(0), "the harness's default");
    let set: i64 = harness
        .figment()
        .merge(("sessions.leeway", 5))
        .extract_inner("sessions.leeway")
        .unwrap();
    assert_eq!(set, 5, "an app's own leeway wins");

    let client = Client::tracked(harness.rocket().mount("/", routes![page, login]))
        .await
        .unwrap();
    let tokens: serde_json::Value = client.post("/login").dispatch().await.into_json().await.unwrap();
    let bearer = Header::new(
        "Authorization",
        format!("Bearer {}", tokens["access_token"].as_str().unwrap()),
    );
    assert_eq!(
        client.get("/").header(bearer.clone()).dispatch().await.status(),
        Status::Ok
    );
    harness.clock().advance(15 * 60); // the default access TTL
    assert_eq!(
        client.get("/").header(bearer).dispatch().await.status(),
        Status::Unauthorized
    );
    let _ = std::fs::remove_dir_all(directory);
}
