//! What DPoP costs a guarded request: `GET /guarded` with `AuthUser` through
//! the local client, a bearer token against a DPoP-bound token with a fresh
//! proof (ES256 or EdDSA) each time. The token is the same each time (the
//! guard keeps it, so its own signature is not checked again); the proof is
//! new each time, made outside the measurement, and its signature is what
//! DPoP adds. Run with `cargo bench --bench dpop`; the ratios are printed at
//! the end, medians of this one run.

#[path = "../../tests/common/dpop.rs"]
#[allow(dead_code)]
mod dpop;

use std::time::Duration;

use criterion::{BatchSize, Criterion};
use dpop::{DpopKey, HOST};
use rocket::http::Header;
use rocket::local::asynchronous::Client;
use rocket::tokio::runtime::Runtime;
use rocket::{get, routes};
use rocket_sqlite_sessions::testing::TestHarness;
use rocket_sqlite_sessions::AuthUser;
use serde_json::Value;

#[get("/guarded")]
fn guarded(user: AuthUser) -> String {
    user.id
}

/// A Rocket on `harness` with a guarded route and a login route.
async fn launch(harness: &TestHarness) -> Client {
    #[rocket::post("/login")]
    async fn login(
        sessions: &rocket::State<rocket_sqlite_sessions::Sessions>,
        client: rocket_sqlite_sessions::ClientInfo,
    ) -> Result<rocket_sqlite_sessions::TokenPair, rocket_sqlite_sessions::Error> {
        sessions.login("bench-user", (), &client).await
    }
    let figment = harness
        .figment()
        .merge(("log_level", "off"))
        .merge(("sessions.auto_prune", false))
        // Every measured proof is remembered: room for all of them.
        .merge(("sessions.dpop_replay_capacity", 10_000_000));
    let rocket = rocket::custom(figment)
        .attach(harness.fairing())
        .mount("/", routes![guarded, login]);
    Client::untracked(rocket).await.expect("the bench's Rocket launches")
}

/// The access token of a login, with a proof by `key` when given.
async fn access_token(client: &Client, key: Option<&DpopKey>, now: i64) -> String {
    let mut request = client.post("/login").header(Header::new("Host", HOST));
    if let Some(key) = key {
        request = request.header(Header::new("DPoP", key.proof("POST", "/login", now, None)));
    }
    let body: Value = request.dispatch().await.into_json().await.expect("a token pair");
    body["access_token"].as_str().expect("an access token").to_string()
}

fn main() {
    let runtime = Runtime::new().expect("a Tokio runtime");
    let harness = TestHarness::new();
    let client = runtime.block_on(launch(&harness));
    let now = harness.clock().now();
    let bearer = runtime.block_on(access_token(&client, None, now));
    let es256 = DpopKey::es256();
    let eddsa = DpopKey::eddsa();
    let es256_token = runtime.block_on(access_token(&client, Some(&es256), now));
    let eddsa_token = runtime.block_on(access_token(&client, Some(&eddsa), now));

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut group = c.benchmark_group("dpop");
    group.bench_function("bearer", |b| {
        b.iter(|| {
            let response = runtime.block_on(
                client
                    .get("/guarded")
                    .header(Header::new("Authorization", format!("Bearer {bearer}")))
                    .dispatch(),
            );
            assert_eq!(response.status().code, 200);
        })
    });
    for (name, key, token) in [("es256", &es256, &es256_token), ("eddsa", &eddsa, &eddsa_token)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || key.proof("GET", "/guarded", now, Some(token)),
                |proof| {
                    let response = runtime.block_on(
                        client
                            .get("/guarded")
                            .header(Header::new("Host", HOST))
                            .header(Header::new("Authorization", format!("DPoP {token}")))
                            .header(Header::new("DPoP", proof))
                            .dispatch(),
                    );
                    assert_eq!(response.status().code, 200);
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
    c.final_summary();
    print_ratios();
}

/// The medians criterion wrote, as ratios to the bearer request.
fn print_ratios() {
    let median = |name: &str| -> Option<f64> {
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("../criterion/dpop")
            .join(name)
            .join("new/estimates.json");
        let estimates: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        estimates["median"]["point_estimate"].as_f64()
    };
    let Some(bearer) = median("bearer") else {
        println!("no criterion estimates found: nothing to compare");
        return;
    };
    println!("\nGET /guarded, medians of this run:");
    println!("  bearer: {:.1} µs", bearer / 1000.0);
    for name in ["es256", "eddsa"] {
        if let Some(value) = median(name) {
            println!(
                "  DPoP {name}: {:.1} µs, {:.2}× the bearer request (+{:.1} µs)",
                value / 1000.0,
                value / bearer,
                (value - bearer) / 1000.0
            );
        }
    }
}
