//! Two processes on one database: what one revokes, the other refuses within
//! a second. On one SQLite file, and on one PostgreSQL schema when a server is
//! configured (see `common::backend`).
//!
//! The processes are this test binary again, running the ignored test
//! `serve` (the minimal test app on the system clock), so they are built with
//! the same features as the tests.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::backend::Backend;
use common::process::{free_port, http, json_field, wait_until_listening};
use rocket_sqlite_sessions::testing::TestHarness;
use rocket_sqlite_sessions::Sessions;

/// Set in a child process: the port `serve` listens on.
const SERVE_PORT: &str = "ROCKET_SESSIONS_TEST_SERVE_PORT";

#[rocket::async_test]
#[ignore = "the server half of the two-process tests, which start it"]
async fn serve() {
    let port: u16 = std::env::var(SERVE_PORT)
        .expect("started by a two-process test")
        .parse()
        .unwrap();
    let figment = rocket::Config::figment().merge(("port", port));
    let _ = common::with_routes(rocket::custom(figment).attach(Sessions::fairing()))
        .launch()
        .await;
}

/// A process serving the test app on `database`, killed when dropped.
struct Server {
    port: u16,
    child: Child,
}

impl Server {
    fn start(database: &str, secret: &str) -> Server {
        let port = free_port();
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["serve", "--exact", "--ignored", "--nocapture"])
            .env(SERVE_PORT, port.to_string())
            .env("ROCKET_LOG_LEVEL", "off")
            .env(
                "ROCKET_SESSIONS",
                format!("{{database=\"{database}\",secret=\"{secret}\",auto_prune=false}}"),
            )
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        wait_until_listening(port);
        Server { port, child }
    }

    fn login(&self, user: &str) -> String {
        let (status, body) = http(self.port, "POST", &format!("/login/{user}"), &[], "");
        assert_eq!(status, 200);
        json_field(&body, "access_token")
    }

    fn post_bearer(&self, path: &str, access: &str) -> u16 {
        http(
            self.port,
            "POST",
            path,
            &[("Authorization", &format!("Bearer {access}"))],
            "",
        )
        .0
    }

    /// How long this process took to refuse `access` (polled every 5 ms), or
    /// `None` when it still accepted it after a second.
    fn refused_within(&self, access: &str) -> Option<Duration> {
        let bearer = format!("Bearer {access}");
        let started = Instant::now();
        loop {
            match http(self.port, "GET", "/whoami", &[("Authorization", &bearer)], "").0 {
                401 => return Some(started.elapsed()),
                200 if started.elapsed() < Duration::from_secs(1) => std::thread::sleep(Duration::from_millis(5)),
                200 => return None,
                other => panic!("unexpected {other}"),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn revocations_made_by_one_process_reach_the_other(database: &str, secret: &str) {
    let (a, b) = (Server::start(database, secret), Server::start(database, secret));

    let access = b.login("alice");
    assert_eq!(
        http(
            b.port,
            "GET",
            "/whoami",
            &[("Authorization", &format!("Bearer {access}"))],
            ""
        )
        .0,
        200
    );
    assert_eq!(a.post_bearer("/auth/logout", &access), 204);
    assert!(
        b.refused_within(&access).is_some(),
        "B accepted a token A logged out, 1 s later"
    );

    let used_on_a = a.login("bob");
    let on_b = b.login("bob");
    assert_eq!(b.post_bearer("/auth/logout-all", &on_b), 204);
    assert!(
        a.refused_within(&used_on_a).is_some(),
        "A accepted a session B ended, 1 s later"
    );

    let (carol, dave) = (a.login("carol"), a.login("dave"));
    assert_eq!(http(b.port, "POST", "/logout-everyone", &[], "").0, 204);
    for access in [&carol, &dave] {
        assert!(
            a.refused_within(access).is_some(),
            "A accepted a token 1 s after B ended every session"
        );
    }
    let again = a.login("carol");
    assert_eq!(
        http(
            a.port,
            "GET",
            "/whoami",
            &[("Authorization", &format!("Bearer {again}"))],
            ""
        )
        .0,
        200,
        "logins after it work"
    );
}

#[rocket::async_test]
async fn two_processes_on_one_sqlite_file_share_revocations() {
    let harness = TestHarness::new();
    revocations_made_by_one_process_reach_the_other(&harness.database().display().to_string(), harness.secret());
}

#[rocket::async_test]
#[cfg_attr(
    not(postgres_server),
    ignore = "needs PostgreSQL: --features postgres and ROCKET_SESSIONS_TEST_POSTGRES (see testsuite/build.rs)"
)]
async fn two_processes_on_one_postgres_database_share_revocations() {
    let Backend::Postgres { url, .. } = Backend::postgres().await else {
        unreachable!()
    };
    revocations_made_by_one_process_reach_the_other(&url, TestHarness::new().secret());
}

/// What operators do beside a running process: read the file with the
/// `sqlite3` shell (here Python's sqlite3, on the system's SQLite), and
/// stop a second worker cleanly. Either closes the last connection *of its
/// process*; neither may take the running process's `-wal` and `-shm` from
/// under it, which SQLite does when it believes no other process has the
/// file open (its POSIX locks were once dropped by the crate reading the
/// file's header through a descriptor it then closed: every request then
/// answered 503).
#[rocket::async_test]
async fn another_process_closing_the_file_leaves_a_running_process_working() {
    let harness = TestHarness::new();
    let database = harness.database();
    let path = database.display().to_string();
    let running = Server::start(&path, harness.secret());
    let access = running.login("alice");
    let companions = |suffix: &str| std::path::PathBuf::from(format!("{path}{suffix}")).exists();
    // The system's SQLite, as the `sqlite3` shell uses it: Python's module.
    let read = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
             print(c.execute('SELECT count(*) FROM sessions').fetchone()[0]); c.close()",
            &path,
        ])
        .output()
        .expect("python3 (CI installs it)");
    assert_eq!(
        String::from_utf8_lossy(&read.stdout).trim(),
        "1",
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    assert!(
        companions("-wal") && companions("-shm"),
        "the shell's close took the WAL"
    );
    let second = Server::start(&path, harness.secret());
    second.login("bob");
    let stopped = Command::new("kill")
        .args(["-TERM", &second.child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let mut second = second;
    let _ = second.child.wait();
    assert!(
        companions("-wal") && companions("-shm"),
        "the second worker's shutdown took the WAL"
    );
    assert_eq!(running.post_bearer("/auth/logout", &access), 204);
    running.login("carol");
}
