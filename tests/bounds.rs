//! Storage that stays bounded whatever clients send: one live refresh branch
//! per session, a constant number of rows per session, no rows for junk, a
//! bounded number of failure counters, a bounded WAL.

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use common::{assert_invalid_token, tokens_of, App};
use rocket::futures::future::join_all;
use rocket::http::{ContentType, Status};
use rocket_sqlite_sessions::testing::TestHarness;
use rocket_sqlite_sessions::Sessions;
use serde_json::json;

/// Rows in every table of the file, crate's and SQLite's own alike.
fn total_rows(harness: &TestHarness) -> i64 {
    let connection = rusqlite::Connection::open(harness.database()).unwrap();
    let tables: Vec<String> = connection
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    tables
        .iter()
        .map(|table| {
            connection
                .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |row| {
                    row.get::<_, i64>(0)
                })
                .unwrap()
        })
        .sum()
}

/// A pseudo-random public-looking IPv4 address, different for each `n`.
fn address(n: u32) -> SocketAddr {
    let mixed = n.wrapping_mul(2_654_435_761).rotate_left(7) | 0x0100_0000;
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(mixed)), 40_000)
}

#[rocket::async_test]
async fn twenty_parallel_replays_within_the_grace_window_share_one_successor() {
    let app = App::start().await;
    let first = app.login("alice").await;
    app.rotate(&first.refresh).await; // the victim's own rotation
    let replies = join_all((0..20).map(|_| app.refresh(&first.refresh))).await;
    let mut successors = HashSet::new();
    for reply in replies {
        assert_eq!(
            reply.status(),
            Status::Ok,
            "a replay within the grace window is answered"
        );
        successors.insert(tokens_of(reply).await.refresh);
    }
    assert_eq!(
        successors.len(),
        1,
        "every replay gets the same successor: one live branch"
    );
    let successor = successors.into_iter().next().unwrap();

    // After the window, the copies held by the replays are earlier tokens as
    // soon as anyone rotates: presenting one again revokes the session.
    app.harness.clock().advance(11);
    let next = app.rotate(&successor).await;
    app.harness.clock().advance(11);
    assert_invalid_token(app.refresh(&successor).await).await;
    assert_invalid_token(app.refresh(&next.refresh).await).await;
    assert_invalid_token(app.whoami(&next.access).await).await;
}

#[rocket::async_test]
async fn a_session_keeps_a_constant_number_of_rows_over_1000_refreshes() {
    let app = App::start().await;
    let mut tokens = app.login("alice").await;
    let after_login = total_rows(&app.harness);
    for _ in 0..1000 {
        tokens = app.rotate(&tokens.refresh).await;
    }
    assert_eq!(
        total_rows(&app.harness),
        after_login,
        "rows per session do not grow with refreshes"
    );
    assert_eq!(app.whoami_status(&tokens.access).await, Status::Ok);
}

#[rocket::async_test]
async fn failure_counters_never_pass_max_failure_scopes() {
    let app = App::configured(|f| f.merge(("sessions.max_failure_scopes", 50))).await;
    let sessions = app.client.rocket().state::<Sessions>().unwrap();
    for n in 0..300u32 {
        let client = rocket_sqlite_sessions::ClientInfo::new(Some(address(n).ip()), None);
        let check = sessions.credential_check(&format!("user-{n}"), &client).await.unwrap();
        check.failed().await.unwrap();
    }
    assert_eq!(common::count_rows(&app.harness, "auth_failures"), 50);
    // The newest counters are the ones kept: the last username still counts.
    let last = rocket_sqlite_sessions::ClientInfo::default();
    for _ in 0..10 {
        let check = sessions.credential_check("user-299", &last).await.unwrap();
        check.failed().await.unwrap();
    }
    assert!(matches!(
        sessions.credential_check("user-299", &last).await,
        Err(rocket_sqlite_sessions::Error::Throttled { .. })
    ));
}

#[rocket::async_test]
async fn ten_thousand_junk_refreshes_from_random_addresses_write_no_row() {
    let app = App::start().await;
    let before = total_rows(&app.harness);
    let shapes = [
        "A".repeat(43),
        "B".repeat(96),
        "not a token".to_string(),
        format!("{}x", "C".repeat(95)),
    ];
    for n in 0..10_000u32 {
        let response = app
            .client
            .post("/auth/refresh")
            .remote(address(n))
            .header(ContentType::JSON)
            .body(json!({ "refresh_token": shapes[n as usize % shapes.len()] }).to_string())
            .dispatch()
            .await;
        assert_eq!(response.status(), Status::Unauthorized);
    }
    assert_eq!(total_rows(&app.harness), before, "junk leaves nothing behind");
}

/// The `-wal` file's size, 0 when it does not exist.
fn wal_bytes(harness: &TestHarness) -> u64 {
    std::fs::metadata(harness.database().with_extension("db-wal")).map_or(0, |m| m.len())
}

#[rocket::async_test]
async fn the_wal_stays_bounded_under_sustained_writes() {
    const MIB: u64 = 1 << 20;
    let app = App::start().await;
    let sessions = app.client.rocket().state::<Sessions>().unwrap().clone();
    let mut session_ids = Vec::new();
    for n in 0..16 {
        session_ids.push(common::session_id_of(&app.login(&format!("writer-{n}")).await.access));
    }
    let writers: Vec<_> = session_ids
        .into_iter()
        .map(|session_id| {
            let sessions = sessions.clone();
            async move {
                // 32 KiB of session data rewritten 128 times: 4 MiB of pages per
                // writer, 64 MiB in all, four times the bound.
                for round in 0..128u32 {
                    let value = format!("{round:08}").repeat(4 * 1024);
                    sessions.set_session_value(&session_id, "blob", value).await.unwrap();
                }
            }
        })
        .collect();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        let path = app.harness.database().with_extension("db-wal");
        rocket::tokio::spawn(async move {
            let mut largest = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                largest = largest.max(std::fs::metadata(&path).map_or(0, |m| m.len()));
                rocket::tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            largest
        })
    };
    join_all(writers).await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let largest = sampler.await.unwrap().max(wal_bytes(&app.harness));
    eprintln!("largest WAL: {:.1} MiB", largest as f64 / MIB as f64);
    assert!(
        largest <= 24 * MIB,
        "the WAL reached {:.1} MiB",
        largest as f64 / MIB as f64
    );
}
