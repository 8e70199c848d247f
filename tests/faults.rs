//! The store under faults: failed writes that change nothing, a read-only or
//! vanished file, clock steps, racing guesses.

mod common;

use common::process::{http, json_field, DemoProcess};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{assert_invalid_token, App};
use rocket::futures::future::join_all;
use rocket::http::Status;
use rocket::{post, routes, State};
use rocket_sqlite_sessions::testing::TestHarness;
use rocket_sqlite_sessions::{ClientInfo, Error, Sessions};

/// The tests of this file that start demo processes, one at a time: each
/// picks a free port a moment before the process takes it, and two at once
/// could pick the same one.
fn one_process_test_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How many password checks ran.
#[derive(Default)]
struct Checks(AtomicUsize);

#[post("/counted-login/<username>")]
async fn counted_login(
    sessions: &State<Sessions>,
    checks: &State<Checks>,
    client: ClientInfo,
    username: &str,
) -> Result<Status, Error> {
    let check = sessions.credential_check(username, &client).await?;
    checks.0.fetch_add(1, Ordering::SeqCst);
    rocket::tokio::task::yield_now().await; // a password hash takes a while
    check.failed().await?;
    Ok(Status::Unauthorized)
}

#[rocket::async_test]
async fn fifty_concurrent_wrong_passwords_get_at_most_the_limit_of_checks() {
    let harness = TestHarness::new();
    let rocket = common::rocket_on(&harness, |f| f.merge(("sessions.login_max_failures", 10)))
        .manage(Checks::default())
        .mount("/", routes![counted_login]);
    let client = rocket::local::asynchronous::Client::tracked(rocket).await.unwrap();
    let statuses: Vec<Status> =
        join_all((0..50).map(|_| async { client.post("/counted-login/alice").dispatch().await.status() })).await;
    let checked = client.rocket().state::<Checks>().unwrap().0.load(Ordering::SeqCst);
    assert_eq!(checked, 10, "only login_max_failures guesses reach the password check");
    assert_eq!(statuses.iter().filter(|s| **s == Status::Unauthorized).count(), 10);
    assert_eq!(statuses.iter().filter(|s| **s == Status::TooManyRequests).count(), 40);
}

/// Makes every write to `sessions` fail, as a full or read-only disk does.
fn break_session_writes(harness: &TestHarness) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open(harness.database()).unwrap();
    connection
        .execute_batch(
            "CREATE TRIGGER simulated_disk_failure BEFORE UPDATE ON sessions
             BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
        )
        .unwrap();
    connection
}

#[rocket::async_test]
async fn a_logout_that_cannot_be_stored_changes_nothing_and_its_retry_works() {
    let app = App::start().await;
    let tokens = app.login("alice").await;
    let side = break_session_writes(&app.harness);

    assert_eq!(
        app.post_bearer("/auth/logout", &tokens.access).await,
        Status::ServiceUnavailable
    );
    // Memory and disk agree: the logout did not happen, so it can be retried.
    assert_eq!(app.whoami_status(&tokens.access).await, Status::Ok);

    side.execute_batch("DROP TRIGGER simulated_disk_failure").unwrap();
    assert_eq!(app.post_bearer("/auth/logout", &tokens.access).await, Status::NoContent);
    assert_invalid_token(app.whoami(&tokens.access).await).await;
    assert_invalid_token(app.refresh(&tokens.refresh).await).await;

    let app = App::start_with(app.stop().await, |figment| figment).await;
    assert_invalid_token(app.whoami(&tokens.access).await).await;
    assert_invalid_token(app.refresh(&tokens.refresh).await).await;
}

#[rocket::async_test]
async fn a_logged_out_token_stays_refused_when_the_clock_steps_forward_then_back() {
    let app = App::configured(|f| f.merge(("sessions.auto_prune", false))).await;
    let tokens = app.login("alice").await;
    assert_eq!(app.post_bearer("/auth/logout", &tokens.access).await, Status::NoContent);

    let sessions = app.client.rocket().state::<Sessions>().unwrap();
    app.harness.clock().step(20 * 60); // the wall clock jumps 20 minutes ahead
    sessions.prune_now().await.unwrap();
    app.harness.clock().step(-20 * 60); // and is set right
    assert_eq!(
        common::count_rows(&app.harness, "revoked_tokens"),
        1,
        "the pass kept the blocklist row"
    );
    assert_invalid_token(app.whoami(&tokens.access).await).await;
    let app = App::start_with(app.stop().await, |figment| figment).await;
    assert_invalid_token(app.whoami(&tokens.access).await).await;
}

#[rocket::async_test]
async fn a_refresh_after_the_clock_steps_back_issues_a_token_this_server_accepts() {
    let app = App::start().await;
    let tokens = app.login("alice").await;
    app.harness.clock().step(-3600);
    let refreshed = app.rotate(&tokens.refresh).await;
    assert_eq!(app.whoami_status(&refreshed.access).await, Status::Ok);
}

#[cfg(unix)]
#[rocket::async_test]
async fn database_files_are_created_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let app = App::start().await;
    app.login("alice").await;
    let database = app.harness.database();
    for file in [
        database.clone(),
        database.with_extension("db-wal"),
        database.with_extension("db-shm"),
    ] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", file.display());
    }
}

#[rocket::async_test]
async fn a_deleted_database_file_is_noticed_and_writes_answer_503() {
    use common::logs::{capture_logs, lines};
    capture_logs();
    let app = App::start().await;
    let tokens = app.login("alice").await;
    let database = app.harness.database();
    for file in [
        database.clone(),
        database.with_extension("db-wal"),
        database.with_extension("db-shm"),
    ] {
        let _ = std::fs::remove_file(file);
    }
    for _ in 0..5 {
        let response = app.client.post("/login/bob").dispatch().await;
        assert_eq!(
            response.status(),
            Status::ServiceUnavailable,
            "no write is silently lost"
        );
    }
    assert_eq!(app.refresh_status(&tokens.refresh).await, Status::ServiceUnavailable);
    // The background check runs every 200 ms: give it a few turns.
    rocket::tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let reported = format!(
        "ERROR rocket_sqlite_sessions: the database file `{}` was deleted or replaced",
        database.display()
    );
    let logged = lines().iter().filter(|line| line.starts_with(&reported)).count();
    assert_eq!(logged, 1, "the loss is logged once, not once per request");
    let failures = lines()
        .iter()
        .filter(|line| line.contains("session store failure"))
        .count();
    assert!(failures <= 1, "503s are logged at most once a minute: {failures}");
}

/// Makes `path` unwritable even for root (`chattr +i`), or with `chmod` for
/// anyone else. When neither works here the test is skipped (`false`), except
/// in CI (`.ci/run` sets `CI`), where it fails.
#[cfg(unix)]
fn make_read_only(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o400)).unwrap();
    let writable = || std::fs::OpenOptions::new().append(true).open(path).is_ok();
    if writable() {
        let _ = std::process::Command::new("chattr").arg("+i").arg(path).status();
    }
    if writable() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to make a file read-only (chattr +i as root)"
        );
        eprintln!("skipped: cannot make a file read-only on this machine");
        return false;
    }
    true
}

#[cfg(unix)]
fn make_writable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::process::Command::new("chattr").arg("-i").arg(path).status();
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(unix)]
#[rocket::async_test]
async fn a_database_that_cannot_be_written_fails_launch_naming_its_path() {
    use common::logs::{capture_logs, logged};
    capture_logs();
    let harness = App::start().await.stop().await;
    let database = harness.database();
    if !make_read_only(&database) {
        return;
    }
    let launched = rocket::local::asynchronous::Client::tracked(common::rocket_on(&harness, |f| f)).await;
    make_writable(&database);
    match launched {
        Ok(_) => panic!("a read-only database must not launch"),
        Err(error) => assert!(
            matches!(error.kind(), rocket::error::ErrorKind::FailedFairings(_)),
            "{error}"
        ),
    }
    assert!(
        logged(&format!("cannot write `{}`", database.display())),
        "the log names the path"
    );
}

/// The `-shm` file beside the database, as SQLite names it.
fn shm_of(database: &std::path::Path) -> std::path::PathBuf {
    let mut shm = database.as_os_str().to_owned();
    shm.push("-shm");
    shm.into()
}

#[cfg(unix)]
#[rocket::async_test]
async fn a_shm_file_that_cannot_be_written_fails_launch_naming_it() {
    use common::logs::{capture_logs, logged};
    capture_logs();
    let harness = App::start().await.stop().await;
    let database = harness.database();
    // Another process's connection keeps the -shm file there.
    let other = rusqlite::Connection::open(&database).unwrap();
    let _: i64 = other
        .query_row("SELECT count(*) FROM sessions", [], |row| row.get(0))
        .unwrap();
    let shm = shm_of(&database);
    assert!(shm.exists());
    if !make_read_only(&shm) {
        return;
    }
    let launched = rocket::local::asynchronous::Client::tracked(common::rocket_on(&harness, |f| f)).await;
    make_writable(&shm);
    assert!(
        launched.map_err(|error| error.kind().to_string()).is_err(),
        "launch fails"
    );
    assert!(
        logged(&format!("cannot write `{}`", shm.display())),
        "the log names the -shm file"
    );
}

/// A `-shm` file the kernel no longer lets anyone write, while the app runs:
/// a write into SQLite's mapping of it would be SIGBUS, the end of the
/// process. Every read and write answers 503 instead, and the log says why.
#[cfg(unix)]
#[rocket::async_test]
async fn a_shm_file_made_read_only_while_running_answers_503_instead_of_sigbus() {
    use common::logs::{capture_logs, logged};
    capture_logs();
    let app = App::start().await;
    let tokens = app.login("alice").await;
    let shm = shm_of(&app.harness.database());
    assert!(shm.exists());
    if !make_read_only(&shm) {
        return;
    }
    let login = app.client.post("/login/bob").dispatch().await.status();
    let logout = app.post_bearer("/auth/logout", &tokens.access).await;
    let refresh = app.refresh(&tokens.refresh).await.status();
    let listed = app
        .client
        .get("/auth/sessions")
        .header(common::bearer(&tokens.access))
        .dispatch()
        .await
        .status();
    make_writable(&shm);
    assert_eq!(
        [login, logout, refresh, listed],
        [Status::ServiceUnavailable; 4],
        "the process is alive and says so"
    );
    assert!(logged(&format!("`{}` (SQLite's shared-memory index", shm.display())));
}

#[rocket::async_test]
async fn a_database_file_replaced_under_the_app_is_noticed() {
    let app = App::start().await;
    app.login("alice").await;
    let database = app.harness.database();
    let copy = database.with_extension("copy");
    std::fs::copy(&database, &copy).unwrap();
    std::fs::rename(&copy, &database).unwrap(); // a restore from a backup, say
    let response = app.client.post("/login/bob").dispatch().await;
    assert_eq!(
        response.status(),
        Status::ServiceUnavailable,
        "writes to a file nobody opens again are refused"
    );
}

#[cfg(unix)]
#[rocket::async_test]
async fn a_checkpoint_failing_again_and_again_logs_one_warning_a_minute() {
    use common::logs::{capture_logs, lines};
    capture_logs();
    let app = App::start().await;
    let database = app.harness.database();
    app.login("alice").await; // frames in the WAL for the checkpointer to copy
    if !make_read_only(&database) {
        return;
    }
    // Writes still reach the WAL; every checkpoint (one each 200 ms) fails.
    for n in 0..10 {
        app.login(&format!("user-{n}")).await;
        rocket::tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    make_writable(&database);
    let warnings = lines()
        .iter()
        .filter(|line| line.contains("WAL checkpoint failed"))
        .count();
    assert_eq!(warnings, 1, "1.5 s of failing checkpoints, one warning");
}

/// The demo's log does not grow with refused requests: Rocket's own lines
/// about each request are left out by the demo's logger, at `critical` (two
/// a request before) and at `normal`.
#[test]
fn refused_requests_add_no_log_line_to_the_demo() {
    let _serial = one_process_test_at_a_time();
    for level in ["critical", "normal"] {
        let harness = TestHarness::new();
        let log = harness.directory().join(format!("demo-{level}.log"));
        let demo = DemoProcess::start_logging(
            &harness.database().display().to_string(),
            harness.secret(),
            level,
            &[],
            std::fs::File::create(&log).unwrap().into(),
        );
        let launched = std::fs::read_to_string(&log).unwrap().lines().count();
        for n in 0..100 {
            let bearer = format!("Bearer junk-{n}");
            assert_eq!(http(demo.port, "GET", "/me", &[("Authorization", &bearer)], "").0, 401);
        }
        assert_eq!(http(demo.port, "GET", "/no-such-page", &[], "").0, 404);
        demo.kill();
        let written = std::fs::read_to_string(&log).unwrap();
        let added: Vec<&str> = written.lines().skip(launched).collect();
        assert!(
            added.len() <= 2,
            "{level}: {} lines for 101 refused requests: {added:#?}",
            added.len()
        );
        assert!(
            launched > 0 || level == "critical",
            "{level}: the launch is logged: {written}"
        );
    }
}

#[rocket::async_test]
// The lock only keeps other test threads' processes off its port; this
// test's own runtime never waits on it.
#[allow(clippy::await_holding_lock)]
async fn nothing_acknowledged_is_lost_when_the_process_is_killed() {
    let _serial = one_process_test_at_a_time();
    let harness = TestHarness::new();
    let demo = DemoProcess::start(&harness.database().display().to_string(), harness.secret());
    let port = demo.port;
    let json = [("Content-Type", "application/json")];
    let credentials = r#"{"username":"alice","password":"correct horse"}"#;
    assert_eq!(http(port, "POST", "/auth/register", &json, credentials).0, 201);
    let (_, kept) = http(port, "POST", "/auth/login", &json, credentials);
    let (_, ended) = http(port, "POST", "/auth/login", &json, credentials);
    let mut refresh = json_field(&kept, "refresh_token");
    for _ in 0..50 {
        let (status, body) = http(
            port,
            "POST",
            "/auth/refresh",
            &json,
            &format!(r#"{{"refresh_token":"{refresh}"}}"#),
        );
        assert_eq!(status, 200);
        refresh = json_field(&body, "refresh_token");
    }
    let ended_access = json_field(&ended, "access_token");
    let bearer = format!("Bearer {ended_access}");
    assert_eq!(
        http(port, "POST", "/auth/logout", &[("Authorization", &bearer)], "").0,
        204
    );
    demo.kill(); // SIGKILL: no shutdown, no last checkpoint

    harness.clock().set(chrono::Utc::now().timestamp());
    let app = App::start_with(harness, |figment| figment).await;
    assert_eq!(
        app.refresh_status(&refresh).await,
        Status::Ok,
        "the 50th rotation survived"
    );
    assert_invalid_token(app.whoami(&ended_access).await).await;
    assert_invalid_token(app.refresh(&json_field(&ended, "refresh_token")).await).await;
}

#[test]
fn the_demo_fails_at_once_on_a_bad_database_path_or_secret_and_writes_nothing() {
    let harness = TestHarness::new();
    let directory = harness.database().parent().unwrap().join("demo-launch");
    std::fs::create_dir_all(&directory).unwrap();
    let secret = harness.secret();
    let cases = [
        (
            format!(
                "{{database=\"{}/no-such-dir/sessions.db\",secret=\"{secret}\"}}",
                directory.display()
            ),
            "invalid `sessions.database`: cannot open",
        ),
        (
            format!(
                "{{database=\"{}/sessions.db\",secret=\"too-short\"}}",
                directory.display()
            ),
            "invalid `sessions.secret`",
        ),
    ];
    for (sessions, why) in cases {
        let started = std::time::Instant::now();
        let output = std::process::Command::new(common::process::demo_binary())
            .env("ROCKET_PORT", common::process::free_port().to_string())
            .env("ROCKET_SESSIONS", &sessions)
            .output()
            .unwrap();
        assert!(!output.status.success());
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "it took {:?}",
            started.elapsed()
        );
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(said.contains(why), "{said}");
        assert!(!said.contains("unable to open database file"), "{said}");
        let written: Vec<_> = std::fs::read_dir(&directory).unwrap().collect();
        assert!(written.is_empty(), "{written:?}");
    }
}

#[test]
fn the_demos_launch_lines_read_as_rocket_writes_them() {
    let _serial = one_process_test_at_a_time();
    let harness = TestHarness::new();
    let log = harness.directory().join("demo-launch.log");
    let demo = DemoProcess::start_logging(
        &harness.database().display().to_string(),
        harness.secret(),
        "normal",
        &[],
        std::fs::File::create(&log).unwrap().into(),
    );
    demo.kill();
    let written = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = written.lines().collect();
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("Rocket has launched from http://")),
        "{written}"
    );
    assert!(!written.contains("Warning: Rocket has launched"), "{written}");
    let shield = lines
        .iter()
        .position(|line| *line == "Shield:")
        .expect("the shield's heading");
    assert!(
        lines[shield + 1..]
            .iter()
            .take(3)
            .any(|line| line.starts_with("X-Content-Type-Options: nosniff")),
        "the shield's heading lists its headers: {written}"
    );
}
