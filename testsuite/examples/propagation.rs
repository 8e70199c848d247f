//! Measures how long a revocation takes to reach another process: two demo
//! processes on one database; a user signs in on A, B accepts the access
//! token, A logs it out, and B is asked every 0.5 ms until it refuses it.
//! Prints p50, p90, p99 and the largest of `trials` measurements, in ms.
//!
//! ```text
//! cargo build --release --features postgres --example demo --example propagation
//! target/release/examples/propagation <database> [trials]
//! ```
//!
//! `database` is a SQLite path or a PostgreSQL URL (the demo's users then go
//! to a SQLite file beside the temporary directory's other files). Run by
//! `scripts/backends.sh`.

#[allow(dead_code)]
#[path = "../../tests/common/process.rs"]
mod process;

use std::time::{Duration, Instant};

use base64::Engine as _;
use process::{json_field, DemoProcess};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(database) = args.first() else {
        eprintln!("usage: propagation <database> [trials]");
        std::process::exit(2);
    };
    let trials: usize = args.get(1).map_or(200, |n| n.parse().expect("a number of trials"));
    let directory = std::env::temp_dir().join(format!("propagation-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let users = directory.join("users.db").display().to_string();
    let secret = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let variables = [
        ("ROCKET_PROFILE", "release"),
        ("ROCKET_SECRET_KEY", secret.as_str()),
        ("ROCKET_DEMO_USERS", users.as_str()),
    ];
    let start = || DemoProcess::start_with(database, &secret, &variables);
    let (a, b) = (start(), start());

    let json = [("Content-Type", "application/json")];
    let credentials = r#"{"username":"propagation","password":"propagation-password"}"#;
    assert_eq!(a.http("POST", "/auth/register", &json, credentials).0, 201);
    let mut took = Vec::with_capacity(trials);
    for _ in 0..trials {
        let (status, body) = a.http("POST", "/auth/login", &json, credentials);
        assert_eq!(status, 200, "login: {body}");
        let bearer = format!("Bearer {}", json_field(&body, "access_token"));
        let authorized = [("Authorization", bearer.as_str())];
        assert_eq!(b.http("GET", "/me", &authorized, "").0, 200);
        assert_eq!(a.http("POST", "/auth/logout", &authorized, "").0, 204);
        let logged_out = Instant::now();
        loop {
            match b.http("GET", "/me", &authorized, "").0 {
                401 => break,
                200 if logged_out.elapsed() < Duration::from_secs(10) => std::thread::sleep(Duration::from_micros(500)),
                other => panic!("B answered {other} {:?} after the logout", logged_out.elapsed()),
            }
        }
        took.push(logged_out.elapsed());
    }
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "{trials} logouts on A, refused by B after: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
    drop((a, b));
    let _ = std::fs::remove_dir_all(directory);
}
