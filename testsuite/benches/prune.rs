//! Pruning under load: 1,000,000 expired rows and 100,000 live ones, then a prune
//! pass while workers send guarded requests and refreshes, against the same load
//! without a prune. Run with `cargo bench --bench prune`.
//!
//! Requests go through Rocket's in-process local client (routing, guard, handler,
//! SQLite), so the figures are the server's own latency without a network.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::Client;
use rocket::{get, routes};
use rocket_sqlite_sessions::testing::TestHarness;
use rocket_sqlite_sessions::{AuthUser, ClientInfo, Sessions};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Live sessions (each holds its refresh state in its row).
const LIVE_SESSIONS: usize = 100_000;
/// Expired sessions plus expired blocklist rows: 1,000,000 expired rows.
const EXPIRED_SESSIONS: usize = 800_000;
const EXPIRED_JTIS: usize = 200_000;
/// Concurrent clients during the load.
const WORKERS: usize = 8;
const BASELINE: Duration = Duration::from_secs(5);

#[get("/whoami")]
fn whoami(user: AuthUser) -> String {
    user.id
}

#[derive(Default)]
struct Latencies {
    guarded: Vec<Duration>,
    refresh: Vec<Duration>,
}

impl Latencies {
    fn extend(&mut self, other: Latencies) {
        self.guarded.extend(other.guarded);
        self.refresh.extend(other.refresh);
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn file_size(harness: &TestHarness) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", harness.database().display())).ok())
        .map(|m| m.len())
        .sum()
}

/// One worker: a guarded request then a refresh, over and over, until `stop`.
async fn worker(client: Arc<Client>, mut access: String, mut refresh: String, stop: Arc<AtomicBool>) -> Latencies {
    let mut latencies = Latencies::default();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let response = client
            .get("/whoami")
            .header(Header::new("Authorization", format!("Bearer {access}")))
            .dispatch()
            .await;
        assert_eq!(response.status(), Status::Ok);
        latencies.guarded.push(started.elapsed());

        let started = Instant::now();
        let response = client
            .post("/auth/refresh")
            .header(ContentType::JSON)
            .body(format!(r#"{{"refresh_token":"{refresh}"}}"#))
            .dispatch()
            .await;
        assert_eq!(response.status(), Status::Ok, "refresh under load");
        let body: Value = response.into_json().await.unwrap();
        latencies.refresh.push(started.elapsed());
        access = body["access_token"].as_str().unwrap().to_string();
        refresh = body["refresh_token"].as_str().unwrap().to_string();
    }
    latencies
}

/// Runs the workers until `until` resolves; returns their latencies.
async fn load<F: std::future::Future<Output = ()>>(
    client: &Arc<Client>,
    chains: &[(String, String)],
    until: F,
) -> Latencies {
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = chains
        .iter()
        .map(|(access, refresh)| {
            rocket::tokio::spawn(worker(client.clone(), access.clone(), refresh.clone(), stop.clone()))
        })
        .collect();
    until.await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Latencies::default();
    for handle in handles {
        all.extend(handle.await.unwrap());
    }
    all
}

#[rocket::main]
async fn main() {
    let harness = TestHarness::new();
    let figment = harness
        .figment()
        .merge(("log_level", "off"))
        .merge(("sessions.auto_prune", false));
    let rocket = rocket::custom(figment)
        .attach(harness.fairing())
        .mount("/", routes![whoami])
        .mount("/auth", rocket_sqlite_sessions::routes());
    let client = Arc::new(Client::untracked(rocket).await.expect("launch"));
    let sessions = client.rocket().state::<Sessions>().unwrap().clone();

    eprintln!("logging in {LIVE_SESSIONS} live sessions …");
    let started = Instant::now();
    let mut pairs = Vec::with_capacity(LIVE_SESSIONS);
    for user in 0..LIVE_SESSIONS {
        pairs.push(
            sessions
                .login(&format!("user{user}"), (), &ClientInfo::default())
                .await
                .unwrap(),
        );
    }
    let login_time = started.elapsed();

    eprintln!("inserting {} expired rows …", EXPIRED_SESSIONS + EXPIRED_JTIS);
    let now = harness.clock().now();
    {
        let mut connection = rusqlite::Connection::open(harness.database()).unwrap();
        let tx = connection.transaction().unwrap();
        {
            let mut session = tx
                .prepare(
                    "INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at, absolute_expires_at,
                                           ip, user_agent, refresh_generation, refresh_hash)
                     VALUES (?1, ?2, ?3, ?3, ?4, ?5, '192.0.2.1', 'bench/1.0', 3, ?6)",
                )
                .unwrap();
            for n in 0..EXPIRED_SESSIONS {
                let id = format!("expired-session-{n:07}");
                let created = now - 40 * 86_400;
                let hash = Sha256::digest(id.as_bytes()).to_vec();
                session
                    .execute(rusqlite::params![
                        id,
                        format!("old{n}"),
                        created,
                        now - 86_400,
                        created + 30 * 86_400,
                        hash
                    ])
                    .unwrap();
            }
            let mut jti = tx
                .prepare("INSERT INTO revoked_tokens (jti, expires_at) VALUES (?1, ?2)")
                .unwrap();
            for n in 0..EXPIRED_JTIS {
                jti.execute(rusqlite::params![format!("expired-jti-{n:07}"), now - 3_600])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        connection.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    }
    let size_before = file_size(&harness);

    let chains: Vec<(String, String)> = pairs
        .iter()
        .take(WORKERS)
        .map(|p| (p.access_token.clone(), p.refresh_token.clone()))
        .collect();
    eprintln!("baseline load for {BASELINE:?} …");
    let mut baseline = load(&client, &chains, rocket::tokio::time::sleep(BASELINE)).await;

    let chains: Vec<(String, String)> = pairs
        .iter()
        .skip(WORKERS)
        .take(WORKERS)
        .map(|p| (p.access_token.clone(), p.refresh_token.clone()))
        .collect();
    eprintln!("prune under load …");
    let report = Arc::new(std::sync::Mutex::new(None));
    let pruning = {
        let (sessions, report) = (sessions.clone(), report.clone());
        async move {
            let done = sessions.prune_now().await.expect("prune pass");
            *report.lock().unwrap() = Some(done);
        }
    };
    let mut during = load(&client, &chains, pruning).await;
    let report = report.lock().unwrap().take().unwrap();
    let deleted = report.sessions + report.revoked_tokens;

    {
        let connection = rusqlite::Connection::open(harness.database()).unwrap();
        connection.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    }
    let size_after_prune = file_size(&harness);
    let vacuum_started = Instant::now();
    {
        let connection = rusqlite::Connection::open(harness.database()).unwrap();
        connection
            .execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    let vacuum_time = vacuum_started.elapsed();
    let size_after_vacuum = file_size(&harness);

    let row = |name: &str, base: &mut Vec<Duration>, load: &mut Vec<Duration>| {
        let (b50, b99) = (percentile(base, 0.50), percentile(base, 0.99));
        let (l50, l99) = (percentile(load, 0.50), percentile(load, 0.99));
        println!(
            "| {name} | {:.0} / {:.0} µs | {:.0} / {:.0} µs | {:.2} | {:.2} | {} / {} |",
            micros(b50),
            micros(b99),
            micros(l50),
            micros(l99),
            micros(l50) / micros(b50),
            micros(l99) / micros(b99),
            base.len(),
            load.len()
        );
    };
    println!();
    println!(
        "Setup: {LIVE_SESSIONS} logins in {:.1} s; {WORKERS} workers.",
        login_time.as_secs_f64()
    );
    println!(
        "Prune: {deleted} rows ({} sessions, {} blocklisted jtis) in {:.2} s, {} batches \
         ({:.1} ms each on average): {:.0} rows/s.",
        report.sessions,
        report.revoked_tokens,
        report.duration.as_secs_f64(),
        report.batches,
        report.duration.as_secs_f64() * 1000.0 / report.batches as f64,
        deleted as f64 / report.duration.as_secs_f64()
    );
    println!();
    println!("| request | p50 / p99 without prune | p50 / p99 during prune | p50 ratio | p99 ratio | samples |");
    println!("|---|---|---|---|---|---|");
    row("guarded GET", &mut baseline.guarded, &mut during.guarded);
    row("refresh", &mut baseline.refresh, &mut during.refresh);
    println!();
    println!(
        "Database file: {:.1} MB before, {:.1} MB after the prune (free pages are reused), {:.1} MB after VACUUM ({:.2} s).",
        size_before as f64 / 1e6,
        size_after_prune as f64 / 1e6,
        size_after_vacuum as f64 / 1e6,
        vacuum_time.as_secs_f64()
    );
}
