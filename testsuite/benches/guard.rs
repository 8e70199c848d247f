//! The guard's check beside its baselines, and the cost of each session write.
//! Run with `cargo bench --bench guard`; the table at the end gives each figure
//! as a ratio to its baseline, all measured in this one run (medians).
//!
//! - `guard/*`: the guard's whole check (`Authorization` header parse, HS256
//!   verification, header and claims checks, revocation lookups) with 100,000
//!   blocklisted `jti`s and 10,000 revoked sessions in memory, against a bare
//!   `jsonwebtoken::decode` of the same token. The whole check is of tokens
//!   the guard has not seen lately: it cycles through `TOKEN_POOL` of them,
//!   more than the guard keeps. `guard/seen_before` is the check of one token
//!   presented again and again, which the guard has kept (only its times and
//!   revocation checked).
//! - `guard/whole_check_eddsa`, `guard/whole_check_es256`: the whole check
//!   with an Ed25519 and a P-256 signing key (empty revocations), beside
//!   HS256's.
//! - `redis/*`: the same revocation lookup done the usual way, as one `EXISTS`
//!   round trip to a Redis blocklist holding the same 110,000 keys. The bench
//!   starts `redis-server` (Debian's `redis-server` package) on a free loopback
//!   port and stops it at the end; without it these are skipped with a message.
//! - `store/*`: login (token issue and session insert, no password hashing),
//!   refresh (rotation) and logout against SQLite, beside one bare committed
//!   SQLite insert and one `spawn_blocking` round trip.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use criterion::{BatchSize, Criterion};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rocket::local::asynchronous::Client;
use rocket::tokio::runtime::Runtime;
use rocket_sqlite_sessions::testing::TestHarness;
use rocket_sqlite_sessions::{AuthUser, ClientInfo, Sessions};
use serde::Deserialize;

const BLOCKLISTED_JTIS: usize = 100_000;
const REVOKED_SESSIONS: usize = 10_000;
/// Distinct tokens the whole-check benches cycle through: four times as many
/// as the guard keeps, so that nearly every check is a first sight.
const TOKEN_POOL: usize = 4096;

/// `Authorization` headers of `n` fresh logins of `sessions`.
fn token_pool(runtime: &Runtime, sessions: &Sessions, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let pair = runtime
                .block_on(sessions.login("bench-user", (), &ClientInfo::default()))
                .unwrap();
            format!("Bearer {}", pair.access_token)
        })
        .collect()
}

/// Checks the next header of `pool` with `sessions`.
fn check_next(sessions: &Sessions, pool: &[String], next: &mut usize) -> AuthUser {
    *next = (*next + 1) % pool.len();
    sessions.verify_authorization(black_box(&pool[*next])).unwrap()
}

/// The registered claims of one of our access tokens: what a bare
/// `jsonwebtoken::decode` deserialises.
#[derive(Deserialize)]
#[allow(dead_code)]
struct BareClaims {
    sub: String,
    sid: String,
    jti: String,
    iat: i64,
    exp: i64,
}

/// A Rocket on `harness` (no logging, no scheduled prune), launched.
async fn launch(harness: &TestHarness) -> Client {
    let figment = harness
        .figment()
        .merge(("log_level", "off"))
        .merge(("sessions.auto_prune", false));
    let rocket = rocket::custom(figment).attach(harness.fairing());
    Client::untracked(rocket).await.expect("the bench's Rocket launches")
}

/// Writes the revoked rows straight into the file, as a long-running app would
/// have accumulated them; the next launch loads them into memory.
fn seed_revocations(harness: &TestHarness) {
    let now = harness.clock().now();
    let mut connection = rusqlite::Connection::open(harness.database()).expect("open the bench database");
    let tx = connection.transaction().unwrap();
    {
        let mut jti = tx
            .prepare("INSERT INTO revoked_tokens (jti, expires_at) VALUES (?1, ?2)")
            .unwrap();
        for n in 0..BLOCKLISTED_JTIS {
            jti.execute(rusqlite::params![format!("revoked-jti-{n:07}"), now + 900])
                .unwrap();
        }
        let mut session = tx
            .prepare(
                "INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at, absolute_expires_at, revoked_at)
                 VALUES (?1, 'someone', ?2, ?2, ?3, ?3, ?2)",
            )
            .unwrap();
        for n in 0..REVOKED_SESSIONS {
            session
                .execute(rusqlite::params![format!("revoked-session-{n:05}"), now, now + 3600])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// `redis-server` on a free loopback port, killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts one, or says why it cannot.
    fn start() -> Result<RedisServer, String> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server ({e}); install Debian's redis-server package"))?;
        let server = RedisServer { child, port };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if server.connection().is_ok() {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("redis-server did not answer within 10 s".into())
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))?.get_connection()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn guard_benches(c: &mut Criterion, sessions: &Sessions, pool: &[String], header: &str, secret: &[u8]) {
    let token = header.strip_prefix("Bearer ").unwrap();
    let key = DecodingKey::from_secret(secret).expect("an HMAC key");
    let validation = Validation::new(Algorithm::HS256);
    let user = sessions.verify_authorization(header).expect("the bench token is valid");
    assert!(
        sessions.is_revoked("revoked-session-00042", "any"),
        "the revoked sessions are loaded"
    );
    assert!(
        sessions.is_revoked("any", "revoked-jti-0099999"),
        "the blocklist is loaded"
    );

    let mut group = c.benchmark_group("guard");
    group.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| jsonwebtoken::decode::<BareClaims>(black_box(token), &key, &validation).unwrap())
    });
    group.bench_function("whole_check", |b| {
        let mut next = 0;
        b.iter(|| check_next(sessions, pool, &mut next))
    });
    group.bench_function("seen_before", |b| {
        b.iter(|| sessions.verify_authorization(black_box(header)).unwrap())
    });
    group.bench_function("revocation_lookup", |b| {
        b.iter(|| sessions.is_revoked(black_box(&user.session_id), black_box(&user.jti)))
    });
    group.finish();
}

/// Bench keys, public in this repository (the tests' own): never use them.
const ED25519: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEII6guL+62hNr5/8Va7mF1C9nlq/02/DN40pvcT8ETjYS
-----END PRIVATE KEY-----
";
const P256: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgKUzANl4JrTFud6rU
XuIBWBF+D8u7X5DTWaGZI/2UcFyhRANCAAShtPGrO5/9gMKscNO1MJOUWBSwrDjr
hZbn0Ih4gAM+Yfp/anTAxHvFq7IcLf7H8QSgsz6oRITdAJR07bkZEiLW
-----END PRIVATE KEY-----
";

/// The guard's whole check with an Ed25519 (`EdDSA`) and a P-256 (`ES256`)
/// signing key, beside HS256's `guard/whole_check`.
fn asymmetric_benches(c: &mut Criterion, runtime: &Runtime) {
    let mut group = c.benchmark_group("guard");
    for (name, pem) in [("whole_check_eddsa", ED25519), ("whole_check_es256", P256)] {
        let harness = TestHarness::new();
        let figment = rocket::figment::Figment::from(rocket::Config::debug_default())
            .merge(("log_level", "off"))
            .merge(("sessions.auto_prune", false))
            .merge(("sessions.database", harness.database()))
            .merge((
                "sessions.keys",
                serde_json::json!([{ "kid": name, "private_key": pem }]),
            ));
        let client = runtime
            .block_on(Client::untracked(rocket::custom(figment).attach(harness.fairing())))
            .expect("the bench's Rocket launches");
        let sessions = client.rocket().state::<Sessions>().expect("managed Sessions").clone();
        let pool = token_pool(runtime, &sessions, TOKEN_POOL);
        group.bench_function(name, |b| {
            let mut next = 0;
            b.iter(|| check_next(&sessions, &pool, &mut next))
        });
        drop(client);
    }
    group.finish();
}

fn redis_benches(c: &mut Criterion, header: &str, user: &AuthUser, secret: &[u8]) {
    let server = match RedisServer::start() {
        Ok(server) => server,
        Err(why) => {
            eprintln!("redis benches skipped: {why}");
            return;
        }
    };
    let mut redis = server.connection().expect("connect to redis-server");
    let mut fill = redis::pipe();
    for n in 0..BLOCKLISTED_JTIS {
        fill.cmd("SET")
            .arg(format!("revoked:jti:revoked-jti-{n:07}"))
            .arg(1)
            .arg("EX")
            .arg(900)
            .ignore();
    }
    for n in 0..REVOKED_SESSIONS {
        fill.cmd("SET")
            .arg(format!("revoked:sid:revoked-session-{n:05}"))
            .arg(1)
            .arg("EX")
            .arg(3600)
            .ignore();
    }
    fill.query::<()>(&mut redis).expect("fill the Redis blocklist");
    let keys = [
        format!("revoked:jti:{}", user.jti),
        format!("revoked:sid:{}", user.session_id),
    ];
    let revoked: i64 = redis::cmd("EXISTS").arg(&keys).query(&mut redis).unwrap();
    assert_eq!(revoked, 0);

    let token = header.strip_prefix("Bearer ").unwrap();
    let key = DecodingKey::from_secret(secret).expect("an HMAC key");
    let validation = Validation::new(Algorithm::HS256);
    let mut group = c.benchmark_group("redis");
    group.bench_function("exists_round_trip", |b| {
        b.iter(|| {
            redis::cmd("EXISTS")
                .arg(black_box(&keys))
                .query::<i64>(&mut redis)
                .unwrap()
        })
    });
    group.bench_function("decode_then_exists", |b| {
        b.iter(|| {
            let claims = jsonwebtoken::decode::<BareClaims>(black_box(token), &key, &validation)
                .unwrap()
                .claims;
            redis::cmd("EXISTS")
                .arg(format!("revoked:jti:{}", claims.jti))
                .arg(format!("revoked:sid:{}", claims.sid))
                .query::<i64>(&mut redis)
                .unwrap()
        })
    });
    group.finish();
}

fn store_benches(c: &mut Criterion, runtime: &Runtime, sessions: &Sessions, directory: &Path) {
    let client = ClientInfo::new(Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))), Some("bench/1.0"));
    let login = || runtime.block_on(sessions.login("bench-user", (), &client)).unwrap();

    // The floor: one row committed on its own, with the store's pragmas.
    let bare = rusqlite::Connection::open(directory.join("bare.db")).unwrap();
    bare.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE rows (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, at INTEGER NOT NULL) STRICT;",
    )
    .unwrap();
    let mut n = 0u64;

    let mut group = c.benchmark_group("store");
    group.bench_function("sqlite_insert_commit", |b| {
        b.iter(|| {
            n += 1;
            bare.prepare_cached("INSERT INTO rows (id, user_id, at) VALUES (?1, 'bench-user', ?2)")
                .unwrap()
                .execute(rusqlite::params![format!("row-{n:012}"), n as i64])
                .unwrap()
        })
    });
    group.bench_function("spawn_blocking_round_trip", |b| {
        b.iter(|| runtime.block_on(async { rocket::tokio::task::spawn_blocking(|| black_box(1)).await.unwrap() }))
    });
    group.bench_function("login", |b| b.iter(login));
    group.bench_function("refresh", |b| {
        b.iter_batched(
            || login().refresh_token,
            |token| runtime.block_on(sessions.refresh(&token, &client)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("logout", |b| {
        b.iter_batched(
            || {
                let pair = login();
                sessions
                    .verify_authorization(&format!("Bearer {}", pair.access_token))
                    .unwrap()
            },
            |user| runtime.block_on(sessions.logout(&user)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Criterion's median of `bench` (`group/function`), in nanoseconds, if it was
/// measured after `since` (criterion keeps older runs' figures on disk).
fn median(bench: &str, since: SystemTime) -> Option<f64> {
    let path = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("criterion")
        .join(bench)
        .join("new/estimates.json");
    if std::fs::metadata(&path).and_then(|m| m.modified()).ok()? < since {
        return None;
    }
    let estimates: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

fn show(nanos: f64) -> String {
    if nanos >= 1000.0 {
        format!("{:.2} µs", nanos / 1000.0)
    } else {
        format!("{nanos:.0} ns")
    }
}

/// One line of the summary: a figure beside its baseline, each named by its
/// criterion `group/function`.
struct Ratio {
    figure: &'static str,
    measured: &'static str,
    baseline: &'static str,
    against: &'static str,
    target: &'static str,
}

const RATIOS: [Ratio; 11] = [
    Ratio {
        figure: "guard: a token seen before",
        measured: "guard/seen_before",
        baseline: "the whole check (first sight)",
        against: "guard/whole_check",
        target: "",
    },
    Ratio {
        figure: "guard: whole check, Ed25519 key (EdDSA)",
        measured: "guard/whole_check_eddsa",
        baseline: "the same with an HS256 secret",
        against: "guard/whole_check",
        target: "",
    },
    Ratio {
        figure: "guard: whole check, P-256 key (ES256)",
        measured: "guard/whole_check_es256",
        baseline: "the same with an HS256 secret",
        against: "guard/whole_check",
        target: "",
    },
    Ratio {
        figure: "guard: whole check",
        measured: "guard/whole_check",
        baseline: "bare jsonwebtoken::decode",
        against: "guard/jsonwebtoken_decode",
        target: "≤ 1.25",
    },
    Ratio {
        figure: "guard: revocation lookup (memory)",
        measured: "guard/revocation_lookup",
        baseline: "one Redis EXISTS round trip",
        against: "redis/exists_round_trip",
        target: "",
    },
    Ratio {
        figure: "guard: whole check",
        measured: "guard/whole_check",
        baseline: "one Redis EXISTS round trip",
        against: "redis/exists_round_trip",
        target: "",
    },
    Ratio {
        figure: "guard: whole check",
        measured: "guard/whole_check",
        baseline: "decode + Redis EXISTS (the usual design)",
        against: "redis/decode_then_exists",
        target: "",
    },
    Ratio {
        figure: "spawn_blocking round trip",
        measured: "store/spawn_blocking_round_trip",
        baseline: "bare SQLite insert + commit",
        against: "store/sqlite_insert_commit",
        target: "",
    },
    Ratio {
        figure: "login (no password hashing)",
        measured: "store/login",
        baseline: "bare SQLite insert + commit",
        against: "store/sqlite_insert_commit",
        target: "",
    },
    Ratio {
        figure: "refresh (rotation)",
        measured: "store/refresh",
        baseline: "bare SQLite insert + commit",
        against: "store/sqlite_insert_commit",
        target: "",
    },
    Ratio {
        figure: "logout",
        measured: "store/logout",
        baseline: "bare SQLite insert + commit",
        against: "store/sqlite_insert_commit",
        target: "",
    },
];

/// The ratios, from the medians criterion wrote in this run. A row whose
/// figures were not measured (filtered out, or Redis missing) is left out.
fn print_ratios(started: SystemTime) {
    println!();
    println!("| figure | median | baseline | median | ratio | target |");
    println!("|---|---|---|---|---|---|");
    for ratio in &RATIOS {
        let (Some(value), Some(base)) = (median(ratio.measured, started), median(ratio.against, started)) else {
            continue;
        };
        println!(
            "| {} | {} | {} | {} | {:.4} | {} |",
            ratio.figure,
            show(value),
            ratio.baseline,
            show(base),
            value / base,
            ratio.target
        );
    }
}

fn main() {
    let started = SystemTime::now();
    let runtime = Runtime::new().expect("a Tokio runtime");
    let harness = TestHarness::new();
    drop(runtime.block_on(launch(&harness))); // creates the schema
    seed_revocations(&harness);
    let client = runtime.block_on(launch(&harness));
    let sessions = client.rocket().state::<Sessions>().expect("managed Sessions").clone();
    let secret = base64::engine::general_purpose::STANDARD
        .decode(harness.secret())
        .unwrap();

    let pair = runtime
        .block_on(sessions.login("bench-user", (), &ClientInfo::default()))
        .unwrap();
    let header = format!("Bearer {}", pair.access_token);
    let user = sessions.verify_authorization(&header).unwrap();
    let pool = token_pool(&runtime, &sessions, TOKEN_POOL);

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    guard_benches(&mut c, &sessions, &pool, &header, &secret);
    asymmetric_benches(&mut c, &runtime);
    redis_benches(&mut c, &header, &user, &secret);
    store_benches(&mut c, &runtime, &sessions, harness.directory());
    c.final_summary();
    print_ratios(started);
    drop(client);
}
