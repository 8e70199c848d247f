//! Fills a database for `scripts/load.sh`; not an example to copy.
//!
//! ```text
//! load_fixture sessions <database> <secret> <live> <revoked> <refresh tokens out>
//! load_fixture rows <database> <secret> <rows>
//! load_fixture limits <database> <secret> <live sessions> <blocklisted jtis>
//! ```
//!
//! `sessions` logs in `live` sessions through the crate (as the demo's login
//! does, without the password hash) and writes their refresh tokens, one per
//! line, for the refresh load; then logs in and out `revoked` more, leaving that
//! many blocklisted access tokens and revoked sessions.
//!
//! `rows` writes `rows` rows straight into the file, as a long-lived app would
//! have accumulated them: 90 % sessions (each with its refresh state; one in
//! nine revoked a minute ago), 10 % blocklisted `jti`s.
//!
//! `limits` writes `live sessions` live sessions and `blocklisted jtis`
//! blocklisted `jti`s straight into the file (for `scripts/limits.sh`).
//!
//! Both write ids shaped as the crate makes them (22 base64url characters,
//! 16 bytes).

use std::io::Write as _;
use std::time::Instant;

use rocket::figment::Figment;
use rocket_sqlite_sessions::{ClientInfo, Sessions};
use sha2::{Digest, Sha256};

fn usage() -> ! {
    eprintln!(
        "usage: load_fixture sessions <database> <secret> <live> <revoked> <tokens file>\n       \
         load_fixture rows <database> <secret> <rows>\n       \
         load_fixture limits <database> <secret> <live sessions> <blocklisted jtis>"
    );
    std::process::exit(2)
}

fn number(arg: Option<&String>) -> usize {
    arg.and_then(|n| n.parse().ok()).unwrap_or_else(|| usage())
}

/// The crate on `database`, ignited (schema migrated, revocations loaded), with
/// no scheduled pruning.
async fn sessions_on(database: &str, secret: &str) -> Sessions {
    let figment = Figment::from(rocket::Config::release_default())
        .merge(("log_level", "critical"))
        .merge(("secret_key", secret))
        .merge(("sessions.database", database))
        .merge(("sessions.secret", secret))
        .merge(("sessions.auto_prune", false));
    let rocket = rocket::custom(figment)
        .attach(Sessions::fairing())
        .ignite()
        .await
        .unwrap_or_else(|e| panic!("the fixture's Rocket does not ignite: {e}"));
    rocket.state::<Sessions>().expect("managed Sessions").clone()
}

async fn fill_sessions(sessions: &Sessions, live: usize, revoked: usize, tokens: &str) {
    let client = ClientInfo::new(Some([127, 0, 0, 1].into()), Some("load_fixture/1.0"));
    let claims = serde_json::json!({ "username": "load" });
    let started = Instant::now();
    let mut out = std::io::BufWriter::new(std::fs::File::create(tokens).expect("create the tokens file"));
    for _ in 0..live {
        let pair = sessions.login("1", &claims, &client).await.expect("login");
        writeln!(out, "{}", pair.refresh_token).unwrap();
    }
    out.flush().unwrap();
    for _ in 0..revoked {
        let pair = sessions.login("2", &claims, &client).await.expect("login");
        let user = sessions
            .verify_authorization(&format!("Bearer {}", pair.access_token))
            .expect("a fresh token verifies");
        sessions.logout(&user).await.expect("logout");
    }
    eprintln!(
        "load_fixture: {live} live sessions, {revoked} logged out, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// What [`write_rows`] writes.
struct Rows {
    /// Sessions, each with its refresh state.
    sessions: usize,
    /// One session in this many revoked a minute ago; `None`: all live.
    revoked_every: Option<usize>,
    /// Blocklisted `jti`s.
    jtis: usize,
    /// Seconds until the blocklisted tokens expire.
    jti_ttl: i64,
}

/// An id as the crate makes them: 16 bytes (here from a counter), base64url.
fn crate_shaped_id(kind: &str, n: usize) -> String {
    use base64::Engine as _;
    let digest = Sha256::digest(format!("load_fixture {kind} {n}"));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// Writes `rows` straight into the file, in one transaction, ids shaped as
/// the crate makes them.
fn write_rows(database: &str, rows: &Rows) {
    let started = Instant::now();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut connection = rusqlite::Connection::open(database).expect("open the database");
    let tx = connection.transaction().unwrap();
    let mut revoked = 0;
    {
        let mut session = tx
            .prepare(
                "INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at, absolute_expires_at,
                                       revoked_at, ip, user_agent, claims, refresh_generation, refresh_hash,
                                       previous_refresh_hash, refresh_rotated_at)
                 VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, '192.0.2.1', 'load_fixture/1.0', '{\"username\":\"load\"}',
                         1, ?7, ?8, ?3)",
            )
            .unwrap();
        for n in 0..rows.sessions {
            let revoked_at = rows.revoked_every.filter(|every| n % every == 0).map(|_| now - 60);
            revoked += usize::from(revoked_at.is_some());
            let hash = |generation: u8| Sha256::digest(format!("fixture-token-{n}-{generation}")).to_vec();
            session
                .execute(rusqlite::params![
                    crate_shaped_id("session", n),
                    format!("user{}", n % 10_000),
                    now - 3_600,
                    now + 86_400,
                    now + 30 * 86_400,
                    revoked_at,
                    hash(1),
                    hash(0)
                ])
                .unwrap();
        }
        let mut jti = tx
            .prepare("INSERT INTO revoked_tokens (jti, expires_at) VALUES (?1, ?2)")
            .unwrap();
        for n in 0..rows.jtis {
            jti.execute(rusqlite::params![crate_shaped_id("jti", n), now + rows.jti_ttl])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    connection.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    eprintln!(
        "load_fixture: {} sessions with their refresh state ({revoked} of them revoked) and {} blocklisted \
         jtis in {:.1} s",
        rows.sessions,
        rows.jtis,
        started.elapsed().as_secs_f64()
    );
}

#[rocket::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), Some(database), Some(secret)) = (args.first(), args.get(1), args.get(2)) else {
        usage()
    };
    let sessions = sessions_on(database, secret).await;
    match mode.as_str() {
        "sessions" => {
            let tokens = args.get(5).unwrap_or_else(|| usage());
            fill_sessions(&sessions, number(args.get(3)), number(args.get(4)), tokens).await
        }
        "rows" => {
            drop(sessions);
            let rows = number(args.get(3));
            let rows = Rows {
                sessions: rows - rows / 10,
                revoked_every: Some(9),
                jtis: rows / 10,
                jti_ttl: 600,
            };
            write_rows(database, &rows)
        }
        "limits" => {
            drop(sessions);
            let rows = Rows {
                sessions: number(args.get(3)),
                revoked_every: None,
                jtis: number(args.get(4)),
                jti_ttl: 86_400,
            };
            write_rows(database, &rows)
        }
        _ => usage(),
    }
}
