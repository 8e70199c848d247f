//! Configuration: every bad value fails launch with a message naming its key.

mod common;

use common::logs::{capture_logs, logged};
use rocket::figment::Figment;
use rocket::local::asynchronous::Client;
use rocket_sqlite_sessions::testing::TestHarness;
use serde_json::{json, Value};

/// Launches the test app on `figment`; returns whether it launched.
async fn launches(harness: &TestHarness, figment: Figment) -> bool {
    capture_logs();
    let rocket = rocket::custom(figment).attach(harness.fairing());
    match Client::tracked(rocket).await {
        Ok(_) => true,
        Err(error) => match error.kind() {
            rocket::error::ErrorKind::FailedFairings(failed) => {
                assert!(failed.iter().all(|info| info.name == "rocket_sqlite_sessions"));
                false
            }
            other => panic!("launch failed for another reason: {other:?}"),
        },
    }
}

#[rocket::async_test]
async fn each_bad_value_fails_launch_naming_its_key() {
    let cases: [(&str, Value, &str); 11] = [
        ("access_ttl", json!(0), "sessions.access_ttl"),
        ("refresh_ttl", json!(0), "sessions.refresh_ttl"),
        ("idle_timeout", json!(0), "sessions.idle_timeout"),
        ("absolute_timeout", json!(0), "sessions.absolute_timeout"),
        ("secret", json!("c2hvcnQ="), "sessions.secret"),
        ("secret", json!("*** not base64 ***"), "sessions.secret"),
        (
            "prune_schedule",
            json!("every other tuesday"),
            "sessions.prune_schedule",
        ),
        ("leeway", json!(5000), "sessions.leeway"),
        ("issuer", json!(""), "sessions.issuer"),
        ("access_ttl", json!("fifteen minutes"), "access_ttl"),
        ("acess_ttl", json!(60), "acess_ttl"),
    ];
    for (key, value, named) in cases {
        let harness = TestHarness::new();
        let figment = harness.figment().merge((format!("sessions.{key}"), value));
        assert!(!launches(&harness, figment).await, "launch should fail for {key}");
        assert!(logged(named), "no log line names {named}");
    }
    assert!(!logged("*** not base64 ***"), "a rejected secret is never echoed");
}

#[rocket::async_test]
async fn a_database_path_that_cannot_be_opened_fails_launch() {
    let harness = TestHarness::new();
    let path = harness.directory().join("no-such-directory").join("sessions.db");
    let figment = harness.figment().merge(("sessions.database", &path));
    assert!(!launches(&harness, figment).await);
    assert!(logged("sessions.database"));
    assert!(logged("no-such-directory"));
}

#[rocket::async_test]
async fn a_database_from_a_newer_version_is_refused() {
    let harness = TestHarness::new();
    let connection = rusqlite::Connection::open(harness.database()).unwrap();
    connection.pragma_update(None, "user_version", 99).unwrap();
    drop(connection);
    assert!(!launches(&harness, harness.figment()).await);
    assert!(logged("schema version is 99"));
}

#[rocket::async_test]
async fn migrations_run_once_and_a_second_launch_reuses_the_schema() {
    let harness = TestHarness::new();
    assert!(launches(&harness, harness.figment()).await);
    assert!(launches(&harness, harness.figment()).await);
    let connection = rusqlite::Connection::open(harness.database()).unwrap();
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../sql/sqlite"))
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().extension().is_some_and(|e| e == "sql"))
        .count();
    assert_eq!(version, migrations as i64, "one schema version per file in sql/sqlite/");
    let mode: String = connection
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

/// A figment with no `sessions.secret` at all in `profile`, and a Rocket
/// `secret_key` so that only the sessions secret can fail launch.
fn without_secret(harness: &TestHarness, profile: &str) -> Figment {
    Figment::from(rocket::Config::default())
        .merge(("secret_key", "hPRYyVRiMyxpw5sBB1XeCMN1kFsDCqKvBi2QJxBVHQk="))
        .merge(("sessions.database", harness.database()))
        .select(profile)
}

#[rocket::async_test]
async fn a_missing_secret_fails_launch_outside_the_debug_profile() {
    let harness = TestHarness::new();
    assert!(!launches(&harness, without_secret(&harness, "release")).await);
    assert!(logged("`sessions.secret`: is required outside the debug profile"));
}

#[rocket::async_test]
async fn a_missing_secret_in_debug_generates_one_with_a_warning() {
    let harness = TestHarness::new();
    assert!(launches(&harness, without_secret(&harness, "debug")).await);
    assert!(logged("WARN rocket_sqlite_sessions: `sessions.secret` is not set"));
}

#[rocket::async_test]
#[cfg_attr(not(feature = "postgres"), ignore = "needs --features postgres")]
async fn a_postgres_database_that_cannot_be_used_fails_launch_without_its_password() {
    let harness = TestHarness::new();
    // Nothing listens there.
    let url = "postgres://app:hunter2-secret@127.0.0.1:1/app?sslmode=require";
    assert!(!launches(&harness, harness.figment().merge(("sessions.database", url))).await);
    assert!(logged(
        "invalid `sessions.database`: cannot use the PostgreSQL database"
    ));
    assert!(logged("postgres://app:***@127.0.0.1:1/app?sslmode=require"));
    assert!(!common::logs::lines().iter().any(|line| line.contains("hunter2")));
}

/// A PostgreSQL launch error keeps the operating system's cause: a missing
/// socket and a refused port are told apart (both were "error connecting to
/// server").
#[rocket::async_test]
#[cfg_attr(not(feature = "postgres"), ignore = "needs --features postgres")]
async fn a_postgres_launch_error_names_the_os_cause() {
    let harness = TestHarness::new();
    let missing_socket = "postgresql://app:hunter3-secret@localhost/app?host=/tmp/no-such-socket-dir-5c1e";
    assert!(!launches(&harness, harness.figment().merge(("sessions.database", missing_socket))).await);
    let refused = "postgresql://app:hunter3-secret@127.0.0.1:1/app?connect_timeout=5";
    assert!(!launches(&harness, harness.figment().merge(("sessions.database", refused))).await);
    let lines = common::logs::lines();
    let about = |needle: &str| {
        lines
            .iter()
            .find(|line| line.contains("cannot use the PostgreSQL database") && line.contains(needle))
            .cloned()
            .unwrap_or_else(|| panic!("no launch error for {needle}: {lines:#?}"))
    };
    assert!(about("no-such-socket-dir-5c1e").contains("No such file or directory"));
    assert!(about("127.0.0.1:1").contains("Connection refused"));
    assert!(!lines.iter().any(|line| line.contains("hunter3")));
}
