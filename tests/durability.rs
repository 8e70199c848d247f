//! What survives what, with real processes: a power cut (a filesystem that
//! forgets unsynced writes), `-wal` and `-shm` deleted under running
//! processes, a clean stop, a database file restored from a copy.
//!
//! The servers are this test binary again, running the ignored test `serve`
//! (the minimal test app on the system clock).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::process::{free_port, http, json_field, wait_until_listening, DemoProcess};
use rocket_sqlite_sessions::testing::TestHarness;
use rocket_sqlite_sessions::Sessions;

/// Set in a child process: the port `serve` listens on.
const SERVE_PORT: &str = "ROCKET_SESSIONS_TEST_SERVE_PORT";

/// The tests of this file one at a time: each starts and kills servers on
/// ports picked free a moment before, and two at once could pick the same
/// one (and one test's requests reach the other's server as it is killed).
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[rocket::async_test]
#[ignore = "the server half of the process tests, which start it"]
async fn serve() {
    let port: u16 = std::env::var(SERVE_PORT)
        .expect("started by a process test")
        .parse()
        .unwrap();
    let figment = rocket::Config::figment().merge(("port", port));
    let _ = common::with_routes(rocket::custom(figment).attach(Sessions::fairing()))
        .launch()
        .await;
}

/// A server process on `database`; killed (SIGKILL) when dropped.
struct Server {
    port: u16,
    child: Child,
}

impl Server {
    fn start(database: &Path, secret: &str, durability: &str) -> Server {
        let port = free_port();
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["serve", "--exact", "--ignored", "--nocapture"])
            .env(SERVE_PORT, port.to_string())
            .env("ROCKET_LOG_LEVEL", "critical")
            .env(
                "ROCKET_SESSIONS",
                format!(
                    "{{database=\"{}\",secret=\"{secret}\",auto_prune=false,durability=\"{durability}\"}}",
                    database.display()
                ),
            )
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        wait_until_listening(port);
        Server { port, child }
    }

    /// A login: its access and refresh tokens.
    fn login(&self, user: &str) -> (String, String) {
        let (status, body) = http(self.port, "POST", &format!("/login/{user}"), &[], "");
        assert_eq!(status, 200, "{body}");
        (json_field(&body, "access_token"), json_field(&body, "refresh_token"))
    }

    /// A refresh: the status, and the new tokens when 200.
    fn refresh(&self, refresh: &str) -> (u16, Option<(String, String)>) {
        let (status, body) = http(
            self.port,
            "POST",
            "/auth/refresh",
            &[("Content-Type", "application/json")],
            &format!("{{\"refresh_token\":\"{refresh}\"}}"),
        );
        let tokens = (status == 200).then(|| (json_field(&body, "access_token"), json_field(&body, "refresh_token")));
        (status, tokens)
    }

    fn logout(&self, access: &str) -> u16 {
        http(
            self.port,
            "POST",
            "/auth/logout",
            &[("Authorization", &format!("Bearer {access}"))],
            "",
        )
        .0
    }

    /// SIGTERM, then waits for the process to end (Rocket's shutdown).
    fn stop(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let started = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no stop 30 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no shutdown at all.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `database`'s `-wal` or `-shm` file.
fn companion(database: &Path, suffix: &str) -> PathBuf {
    let mut path = database.as_os_str().to_owned();
    path.push(suffix);
    path.into()
}

fn integrity(database: &Path) -> String {
    let connection = rusqlite::Connection::open(database).unwrap();
    connection
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap()
}

/// A session as its client knows it.
struct Known {
    access: String,
    refresh: String,
    logged_out: bool,
}

/// Logins, refreshes and logouts on `server` for `duration`: the sessions as
/// their clients know them, and how many writes were answered.
fn workload(server: &Server, duration: Duration, round: usize) -> (Vec<Known>, usize) {
    let mut sessions: Vec<Known> = Vec::new();
    let started = Instant::now();
    let mut step = 0usize;
    while started.elapsed() < duration || sessions.len() < 6 {
        let live: Vec<usize> = (0..sessions.len()).filter(|&n| !sessions[n].logged_out).collect();
        match step % 3 {
            1 if !live.is_empty() => {
                let known = &mut sessions[live[step % live.len()]];
                let (status, tokens) = server.refresh(&known.refresh);
                assert_eq!(status, 200);
                (known.access, known.refresh) = tokens.unwrap();
            }
            2 if live.len() > 2 => {
                let known = &mut sessions[live[0]];
                assert_eq!(server.logout(&known.access), 204);
                known.logged_out = true;
            }
            _ => {
                let (access, refresh) = server.login(&format!("r{round}-u{step}"));
                sessions.push(Known {
                    access,
                    refresh,
                    logged_out: false,
                });
            }
        }
        step += 1;
    }
    (sessions, step)
}

/// What a restarted server makes of what was answered before: the
/// logins and rotations it forgot (the latest refresh token refused) and the
/// logouts it forgot (a logged-out session's refresh token accepted).
fn forgotten(server: &Server, sessions: &[Known]) -> (usize, usize) {
    let (mut writes, mut logouts) = (0, 0);
    for known in sessions {
        let (status, _) = server.refresh(&known.refresh);
        match (known.logged_out, status) {
            (false, 200) | (true, 401) => {}
            (false, 401) => writes += 1,
            (true, 200) => logouts += 1,
            (_, other) => panic!("a refresh after the restart answered {other}"),
        }
    }
    (writes, logouts)
}

/// tests/powercut/lazyfs.py mounted on `mountpoint`, its files in `backing`.
struct LazyFs {
    process: Child,
    mountpoint: PathBuf,
}

impl LazyFs {
    fn mount(backing: &Path, mountpoint: &Path) -> LazyFs {
        std::fs::create_dir_all(backing).unwrap();
        std::fs::create_dir_all(mountpoint).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/powercut/lazyfs.py");
        let process = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(backing)
            .arg(mountpoint)
            .stdout(Stdio::null())
            .spawn()
            .expect("Debian's python3 with python3-fusepy");
        let fs = LazyFs {
            process,
            mountpoint: mountpoint.to_path_buf(),
        };
        let started = Instant::now();
        while !std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .contains(&format!(" {} fuse", mountpoint.display()))
        {
            assert!(started.elapsed() < Duration::from_secs(20), "lazyfs did not mount");
            std::thread::sleep(Duration::from_millis(20));
        }
        fs
    }

    /// The power cut: the filesystem dies with everything not synced.
    fn cut(mut self) {
        self.process.kill().unwrap();
        self.process.wait().unwrap();
        self.unmount();
    }

    fn unmount(&self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mountpoint)
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        self.unmount();
    }
}

/// One round: a workload on the lazy filesystem, the server killed and the
/// power cut right after its last answer, then a server on what the disk
/// kept. Gives (answered writes, forgotten writes, forgotten logouts).
fn power_cut_round(durability: &str, round: usize) -> (usize, usize, usize) {
    let harness = TestHarness::new();
    let root = harness.database().parent().unwrap().join(format!("powercut-{round}"));
    let (backing, mountpoint) = (root.join("disk"), root.join("mnt"));
    let database = mountpoint.join("sessions.db");

    let fs = LazyFs::mount(&backing, &mountpoint);
    let server = Server::start(&database, harness.secret(), durability);
    let (sessions, answered) = workload(&server, Duration::from_millis(1500), round);
    server.kill();
    fs.cut();

    let fs = LazyFs::mount(&backing, &mountpoint);
    let server = Server::start(&database, harness.secret(), durability);
    let (writes, logouts) = forgotten(&server, &sessions);
    server.stop();
    drop(fs);
    assert_eq!(integrity(&backing.join("sessions.db")), "ok", "after the power cut");
    (answered, writes, logouts)
}

#[test]
#[cfg_attr(
    not(lazyfs),
    ignore = "needs FUSE as root and Debian's python3-fusepy (see testsuite/build.rs)"
)]
fn a_power_cut_loses_nothing_that_was_answered() {
    let _serial = one_at_a_time();
    let (mut answered, mut lost) = (0, 0);
    for round in 0..2 {
        let (writes, forgotten_writes, forgotten_logouts) = power_cut_round("power_loss", round);
        answered += writes;
        assert_eq!(
            (forgotten_writes, forgotten_logouts),
            (0, 0),
            "round {round}: logins or rotations, and logouts, answered then forgotten"
        );
        lost += forgotten_writes + forgotten_logouts;
    }
    println!("durability = \"power_loss\": {lost} of {answered} answered writes lost to power cuts");
}

#[test]
#[cfg_attr(
    not(lazyfs),
    ignore = "needs FUSE as root and Debian's python3-fusepy (see testsuite/build.rs)"
)]
fn with_process_crash_durability_a_power_cut_loses_the_last_writes() {
    let _serial = one_at_a_time();
    // The same cut that loses nothing by default loses what was answered
    // since the last checkpoint: the test can fail.
    let mut rounds = Vec::new();
    for round in 0..3 {
        let (answered, writes, logouts) = power_cut_round("process_crash", round);
        rounds.push((answered, writes, logouts));
        if writes + logouts > 0 {
            println!(
                "durability = \"process_crash\": round {round} lost {writes} logins or rotations and {logouts} \
                 logouts of {answered} answered writes"
            );
            return;
        }
    }
    panic!("no power cut lost anything with synchronous = NORMAL: {rounds:?}");
}

#[test]
fn a_clean_stop_leaves_the_database_as_one_file() {
    let _serial = one_at_a_time();
    let harness = TestHarness::new();
    let database = harness.database().to_path_buf();
    let server = Server::start(&database, harness.secret(), "power_loss");
    let mut refresh = server.login("alice").1;
    for _ in 0..100 {
        refresh = server.refresh(&refresh).1.unwrap().1;
    }
    assert!(companion(&database, "-wal").exists());
    server.stop();
    for suffix in ["-wal", "-shm"] {
        assert!(!companion(&database, suffix).exists(), "{suffix} is left after SIGTERM");
    }
    // The file alone holds everything: a copy of it serves the session.
    let copy = database.with_file_name("copy.db");
    std::fs::copy(&database, &copy).unwrap();
    let server = Server::start(&copy, harness.secret(), "power_loss");
    assert_eq!(server.refresh(&refresh).0, 200);
}

#[test]
fn a_database_restored_from_a_copy_is_not_combined_with_the_old_wal() {
    let _serial = one_at_a_time();
    for stop in ["SIGTERM", "SIGKILL"] {
        let harness = TestHarness::new();
        let database = harness.database().to_path_buf();
        let server = Server::start(&database, harness.secret(), "power_loss");
        let (_, before) = server.login("alice");
        server.stop();
        let backup = database.with_file_name("backup.db");
        std::fs::copy(&database, &backup).unwrap();

        // More sessions, then the file is put back from the copy under the
        // running app, which is then stopped.
        let server = Server::start(&database, harness.secret(), "power_loss");
        let after: Vec<String> = (0..30).map(|n| server.login(&format!("u{n}")).1).collect();
        let restored = database.with_file_name("restored.db");
        std::fs::copy(&backup, &restored).unwrap();
        std::fs::rename(&restored, &database).unwrap();
        assert_eq!(server.refresh(&after[0]).0, 503, "the replacement is noticed");
        match stop {
            "SIGTERM" => server.stop(),
            _ => server.kill(),
        }

        let server = Server::start(&database, harness.secret(), "power_loss");
        assert_eq!(server.refresh(&before).0, 200, "{stop}: the restored content is served");
        assert_eq!(
            server.refresh(&after[1]).0,
            401,
            "{stop}: nothing of the old WAL replayed"
        );
        server.stop();
        assert_eq!(integrity(&database), "ok", "{stop}");
    }
}

#[test]
fn a_deleted_wal_is_noticed_and_nothing_answered_before_is_lost() {
    let _serial = one_at_a_time();
    let harness = TestHarness::new();
    let database = harness.database().to_path_buf();
    let server = Server::start(&database, harness.secret(), "power_loss");
    let sessions: Vec<(String, String)> = (0..20).map(|n| server.login(&format!("u{n}"))).collect();
    for (access, _) in &sessions[..10] {
        assert_eq!(server.logout(access), 204);
    }
    std::fs::remove_file(companion(&database, "-wal")).unwrap();
    // Not acknowledged: it would go to a file nobody opens again.
    assert_eq!(server.logout(&sessions[10].0), 503);
    assert_eq!(http(server.port, "POST", "/login/late", &[], "").0, 503);
    server.kill();

    let server = Server::start(&database, harness.secret(), "power_loss");
    for (n, (_, refresh)) in sessions.iter().enumerate() {
        let expected = if n < 10 { 401 } else { 200 };
        assert_eq!(server.refresh(refresh).0, expected, "session {n} after the restart");
    }
    server.stop();
    assert_eq!(integrity(&database), "ok");
}

#[test]
fn a_deleted_shm_stops_every_process_sharing_the_file() {
    let _serial = one_at_a_time();
    let harness = TestHarness::new();
    let database = harness.database().to_path_buf();
    let (a, b) = (
        Server::start(&database, harness.secret(), "power_loss"),
        Server::start(&database, harness.secret(), "power_loss"),
    );
    let revoked: Vec<(String, String)> = (0..10).map(|n| a.login(&format!("u{n}"))).collect();
    let kept = b.login("kept");
    for (access, _) in &revoked {
        assert_eq!(b.logout(access), 204);
    }
    std::fs::remove_file(companion(&database, "-shm")).unwrap();
    for server in [&a, &b] {
        assert_eq!(http(server.port, "POST", "/login/late", &[], "").0, 503);
    }
    // A process started now (a rolling deploy) makes a new -shm: the old
    // ones still refuse.
    let c = Server::start(&database, harness.secret(), "power_loss");
    assert_eq!(a.refresh(&kept.1).0, 503);
    c.kill();
    a.kill();
    b.kill();

    let server = Server::start(&database, harness.secret(), "power_loss");
    for (access, refresh) in &revoked {
        assert_eq!(server.refresh(refresh).0, 401, "an answered logout came undone");
        let _ = access;
    }
    assert_eq!(server.refresh(&kept.1).0, 200);
    server.stop();
    assert_eq!(integrity(&database), "ok");
}

/// One request that may get no answer (the server is killed meanwhile): the
/// status, if any.
fn try_http(port: u16, path: &str, body: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.get(9..12)?.parse().ok()
}

/// Five demo processes killed while 16 right-password logins each are
/// checking, on `database` (its users in `users`), then a new user signs in.
fn killed_during_logins(secret: &str, database: &str, users: &str) {
    // A network is throttled after 20 failures: 5 kills during 16 logins each
    // would pass that several times over if unfinished checks counted.
    let sessions = format!("{{database=\"{database}\",secret=\"{secret}\",ip_max_failures=20,login_max_failures=20}}");
    let variables = [("ROCKET_DEMO_USERS", users)];
    let start = || DemoProcess::start_configured(&sessions, "off", &variables, Stdio::null());
    let credentials = |user: &str| format!("{{\"username\":\"{user}\",\"password\":\"correct horse battery staple\"}}");
    let demo = start();
    assert_eq!(try_http(demo.port, "/auth/register", &credentials("alice")), Some(201));
    demo.kill();

    let mut cut_short = 0;
    for _ in 0..5 {
        let demo = start();
        let port = demo.port;
        let (answered, first_answer) = std::sync::mpsc::channel();
        let logins: Vec<_> = (0..16)
            .map(|_| {
                let (body, answered) = (credentials("alice"), answered.clone());
                std::thread::spawn(move || {
                    let status = try_http(port, "/auth/login", &body);
                    let _ = answered.send(());
                    status
                })
            })
            .collect();
        // At the first answer the others are counted and waiting for their
        // password hash (the demo runs one per core).
        first_answer.recv().unwrap();
        demo.kill();
        let statuses: Vec<Option<u16>> = logins.into_iter().map(|login| login.join().unwrap()).collect();
        assert!(!statuses.contains(&Some(429)), "{statuses:?}");
        cut_short += statuses.iter().filter(|status| status.is_none()).count();
    }
    assert!(cut_short >= 10, "only {cut_short} logins were cut short by the kills");

    let demo = start();
    assert_eq!(
        try_http(demo.port, "/auth/register", &credentials("newcomer")),
        Some(201)
    );
    assert_eq!(
        try_http(demo.port, "/auth/login", &credentials("newcomer")),
        Some(200),
        "a new user with the right password, after {cut_short} logins cut short"
    );
    assert_eq!(try_http(demo.port, "/auth/login", &credentials("alice")), Some(200));
}

#[test]
fn processes_killed_during_right_password_logins_lock_no_one_out() {
    let _serial = one_at_a_time();
    let harness = TestHarness::new();
    let database = harness.database().display().to_string();
    killed_during_logins(harness.secret(), &database, &database);
}

#[test]
#[cfg_attr(
    not(postgres_server),
    ignore = "needs PostgreSQL: --features postgres and ROCKET_SESSIONS_TEST_POSTGRES (see testsuite/build.rs)"
)]
fn processes_killed_during_right_password_logins_on_postgres_lock_no_one_out() {
    let _serial = one_at_a_time();
    let runtime = rocket::tokio::runtime::Runtime::new().unwrap();
    let common::backend::Backend::Postgres { url, .. } = runtime.block_on(common::backend::Backend::postgres()) else {
        unreachable!()
    };
    let harness = TestHarness::new();
    let users = harness.database().display().to_string();
    killed_during_logins(harness.secret(), &url, &users);
}

#[test]
fn a_deleted_wal_stops_every_process_sharing_the_file_and_loses_nothing_answered() {
    let _serial = one_at_a_time();
    let harness = TestHarness::new();
    let database = harness.database().to_path_buf();
    let (a, b) = (
        Server::start(&database, harness.secret(), "power_loss"),
        Server::start(&database, harness.secret(), "power_loss"),
    );
    let sessions: Vec<(String, String)> = (0..20)
        .map(|n| {
            if n % 2 == 0 {
                a.login(&format!("u{n}"))
            } else {
                b.login(&format!("u{n}"))
            }
        })
        .collect();
    for (n, (access, _)) in sessions.iter().enumerate().take(10) {
        let server = if n % 2 == 0 { &b } else { &a };
        assert_eq!(server.logout(access), 204);
    }
    std::fs::remove_file(companion(&database, "-wal")).unwrap();
    for server in [&a, &b] {
        assert_eq!(http(server.port, "POST", "/login/late", &[], "").0, 503);
    }
    a.kill();
    b.kill();

    let server = Server::start(&database, harness.secret(), "power_loss");
    for (n, (_, refresh)) in sessions.iter().enumerate() {
        let expected = if n < 10 { 401 } else { 200 };
        assert_eq!(server.refresh(refresh).0, expected, "session {n} after the restart");
    }
    server.stop();
    assert_eq!(integrity(&database), "ok");
}
