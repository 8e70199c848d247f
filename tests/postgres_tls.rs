//! PostgreSQL over TLS, against a real server that refuses unencrypted TCP
//! connections (CI's throwaway cluster: `ssl = on`, a CA of its own made with
//! openssl, `hostnossl … reject`). `ROCKET_SESSIONS_TEST_POSTGRES_TLS` names its
//! TCP URL and `ROCKET_SESSIONS_TEST_POSTGRES_CA_DIR` the directory with its
//! `ca.pem` and an unrelated `wrong-ca.pem`; without them the tests are
//! ignored (testsuite/build.rs), except in CI.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::backend::Backend;
use common::logs::{capture_logs, lines};
use common::App;
use rocket::http::Status;
use rocket_sqlite_sessions::testing::TestHarness;

/// The TLS server's URL and the directory of its CA files.
fn tls_server() -> (String, PathBuf) {
    let (Ok(url), Ok(ca_dir)) = (
        std::env::var("ROCKET_SESSIONS_TEST_POSTGRES_TLS"),
        std::env::var("ROCKET_SESSIONS_TEST_POSTGRES_CA_DIR"),
    ) else {
        panic!(
            "the PostgreSQL TLS tests need ROCKET_SESSIONS_TEST_POSTGRES_TLS and \
             ROCKET_SESSIONS_TEST_POSTGRES_CA_DIR (see .ci/run)"
        );
    };
    (url, PathBuf::from(ca_dir))
}

/// A fresh schema on the server, and the TLS URL to it with `tls` added.
async fn database(url: &str, tls: &str) -> String {
    let schema = format!("tls_{:016x}", rand::random::<u64>());
    let admin = Backend::admin()
        .await
        .expect("the PostgreSQL test server (unix socket)");
    admin.batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
    format!("{url}?options=-csearch_path%3D{schema}&{tls}")
}

async fn launches(url: &str) -> bool {
    let harness = TestHarness::new();
    let figment = harness.figment().merge(("sessions.database", url));
    rocket::local::asynchronous::Client::tracked(rocket::custom(figment).attach(harness.fairing()))
        .await
        .map_err(|error| error.kind().to_string())
        .is_ok()
}

/// The app works over `url`: a login, its token checked, a logout refused
/// afterwards on the same instance.
async fn works_over(url: String) {
    let app = App::start_with(Arc::new(TestHarness::new()), |figment| {
        figment.merge(("sessions.database", url))
    })
    .await;
    let tokens = app.login("alice").await;
    assert_eq!(app.whoami_status(&tokens.access).await, Status::Ok);
    let next = app.rotate(&tokens.refresh).await;
    assert_eq!(app.post_bearer("/auth/logout", &next.access).await, Status::NoContent);
    assert_eq!(app.whoami_status(&next.access).await, Status::Unauthorized);
}

#[rocket::async_test]
#[cfg_attr(
    not(postgres_tls_server),
    ignore = "needs PostgreSQL over TLS: --features postgres and ROCKET_SESSIONS_TEST_POSTGRES_TLS (see testsuite/build.rs)"
)]
async fn sslmode_require_encrypts_and_an_unencrypted_connection_is_refused_by_the_server() {
    capture_logs();
    let (url, _) = tls_server();
    works_over(database(&url, "sslmode=require").await).await;
    // The server takes TLS only: the connections above were encrypted.
    assert!(!launches(&database(&url, "sslmode=disable").await).await);
    assert!(
        lines().iter().any(|line| line.contains("no encryption")),
        "the server's refusal is told"
    );
}

#[rocket::async_test]
#[cfg_attr(
    not(postgres_tls_server),
    ignore = "needs PostgreSQL over TLS: --features postgres and ROCKET_SESSIONS_TEST_POSTGRES_TLS (see testsuite/build.rs)"
)]
async fn sslmode_verify_full_with_the_servers_ca_works() {
    capture_logs();
    let (url, ca_dir) = tls_server();
    let ca = ca_dir.join("ca.pem");
    let tls = format!("sslmode=verify-full&sslrootcert={}", ca.display());
    works_over(database(&url, &tls).await).await;
    let tls = format!("sslmode=verify-ca&sslrootcert={}", ca.display());
    works_over(database(&url, &tls).await).await;
}

#[rocket::async_test]
#[cfg_attr(
    not(postgres_tls_server),
    ignore = "needs PostgreSQL over TLS: --features postgres and ROCKET_SESSIONS_TEST_POSTGRES_TLS (see testsuite/build.rs)"
)]
async fn a_certificate_from_another_ca_fails_launch_naming_the_tls_cause() {
    capture_logs();
    let (url, ca_dir) = tls_server();
    let wrong = ca_dir.join("wrong-ca.pem");
    for mode in ["verify-full", "verify-ca", "require"] {
        let tls = format!("sslmode={mode}&sslrootcert={}", wrong.display());
        assert!(!launches(&database(&url, &tls).await).await, "{mode} with another CA");
    }
    let said: Vec<String> = lines()
        .into_iter()
        .filter(|line| line.contains("cannot use the PostgreSQL database") && line.contains("wrong-ca.pem"))
        .collect();
    assert_eq!(said.len(), 3, "{said:#?}");
    for line in &said {
        assert!(
            line.contains("invalid peer certificate") && line.contains("UnknownIssuer"),
            "{line}"
        );
    }
    let missing = format!(
        "sslmode=verify-full&sslrootcert={}",
        ca_dir.join("no-such-ca.pem").display()
    );
    assert!(!launches(&database(&url, &missing).await).await);
    assert!(lines().iter().any(|line| line.contains("cannot read sslrootcert")));
}
