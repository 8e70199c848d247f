//! Pruning: expired rows go, rows still needed stay, the job keeps its schedule.

mod common;

use std::time::{Duration, Instant};

use common::logs::{capture_logs, logged};
use common::{assert_invalid_token, count_rows, App};
use rocket::figment::Figment;
use rocket::http::Status;
use rocket_sqlite_sessions::{PruneReport, Sessions};

fn sessions(app: &App) -> &Sessions {
    app.client.rocket().state::<Sessions>().expect("managed Sessions")
}

async fn prune(app: &App) -> PruneReport {
    let report = sessions(app).prune_now().await.expect("a prune pass");
    assert!(report.completed);
    report
}

fn deleted(report: &PruneReport) -> (usize, usize) {
    (report.sessions, report.revoked_tokens)
}

/// Waits (real time, bounded) until `condition` holds: only for the scheduler,
/// which runs on the wall clock.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(8);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        rocket::tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Short lifetimes, and no scheduled passes: they run only on demand.
fn manual(figment: Figment) -> Figment {
    figment
        .merge(("sessions.auto_prune", false))
        .merge(("sessions.access_ttl", 60))
        .merge(("sessions.idle_timeout", 600))
        .merge(("sessions.refresh_ttl", 1200))
}

/// A pass every second.
fn every_second(figment: Figment) -> Figment {
    manual(figment)
        .merge(("sessions.auto_prune", true))
        .merge(("sessions.prune_schedule", "* * * * * *"))
}

#[rocket::async_test]
async fn expired_rows_of_each_kind_go_and_live_ones_stay() {
    let app = App::configured(manual).await;
    let live = app.login("alice").await;
    let idle = app.login("bob").await;
    let revoked = app.login("carol").await;
    assert_eq!(
        app.post_bearer("/auth/logout", &revoked.access).await,
        Status::NoContent
    );

    app.harness.clock().advance(30); // carol's access token has 30 s to live
    assert_eq!(deleted(&prune(&app).await), (0, 0), "nothing is dead yet");
    app.harness.clock().advance(569);
    let live = app.rotate(&live.refresh).await;

    app.harness.clock().advance(1); // bob's session reaches its idle timeout
    let report = prune(&app).await;
    assert_eq!(deleted(&report), (2, 1), "bob's and carol's sessions, carol's jti");
    assert_eq!(
        report.revocations_forgotten, 2,
        "carol's jti and session leave memory too"
    );
    assert_eq!(count_rows(&app.harness, "sessions"), 1, "the live session stays");
    assert_eq!(count_rows(&app.harness, "revoked_tokens"), 0);

    assert_eq!(app.whoami_status(&live.access).await, Status::Ok);
    assert_eq!(app.refresh_status(&live.refresh).await, Status::Ok);
    assert_invalid_token(app.refresh(&idle.refresh).await).await;
    assert_invalid_token(app.refresh(&revoked.refresh).await).await;
    assert_eq!(deleted(&prune(&app).await), (0, 0));
}

#[rocket::async_test]
async fn small_batches_delete_everything_in_several_transactions() {
    let app = App::configured(|figment| manual(figment).merge(("sessions.prune_batch", 2))).await;
    for user in ["a", "b", "c", "d", "e"] {
        let tokens = app.login(user).await;
        app.post_bearer("/auth/logout", &tokens.access).await;
    }
    app.harness.clock().advance(600);
    let report = prune(&app).await;
    assert_eq!(deleted(&report), (5, 5));
    assert_eq!(report.feed_entries, 10, "the feed entries of 5 sessions and 5 jtis");
    assert_eq!(count_rows(&app.harness, "revocation_log"), 0);
    assert_eq!(
        report.batches,
        3 + 3 + 6 + 1 + 1 + 1,
        "three batches of at most two rows for sessions and for the blocklist, six for the feed (five \
         full, one that finds it empty), one each for failure counters, known networks and user cut-offs"
    );
}

#[rocket::async_test]
async fn a_revoked_token_stays_refused_until_exp_plus_leeway_and_its_row_goes_after() {
    let app = App::configured(|figment| manual(figment).merge(("sessions.leeway", 30))).await;
    let tokens = app.login("alice").await;
    let other = app.login("alice").await;
    assert_eq!(app.post_bearer("/auth/logout", &tokens.access).await, Status::NoContent);

    app.harness.clock().advance(60 + 29); // past exp, within the leeway
    assert_eq!(deleted(&prune(&app).await), (0, 0));
    assert_eq!(count_rows(&app.harness, "revoked_tokens"), 1);
    assert_invalid_token(app.whoami(&tokens.access).await).await;
    assert_eq!(
        app.whoami_status(&other.access).await,
        Status::Ok,
        "an unrevoked token of the same age passes"
    );

    app.harness.clock().advance(1);
    let report = prune(&app).await;
    assert_eq!(report.revoked_tokens, 1);
    assert_eq!(count_rows(&app.harness, "revoked_tokens"), 0);
    assert_invalid_token(app.whoami(&tokens.access).await).await;
}

#[rocket::async_test]
async fn reuse_detection_still_fires_after_a_pass() {
    let app = App::configured(|figment| {
        manual(figment)
            .merge(("sessions.refresh_ttl", 100))
            .merge(("sessions.idle_timeout", 100))
    })
    .await;
    let first = app.login("alice").await;
    app.harness.clock().advance(50);
    let second = app.rotate(&first.refresh).await;
    app.harness.clock().advance(70);
    let third = app.rotate(&second.refresh).await;
    app.harness.clock().advance(10); // the first token expired 30 s ago

    assert_eq!(deleted(&prune(&app).await), (0, 0), "a live session stays");
    assert_invalid_token(app.refresh(&first.refresh).await).await;
    assert_invalid_token(app.whoami(&third.access).await).await;
    assert_invalid_token(app.refresh(&third.refresh).await).await;
}

#[rocket::async_test]
async fn the_job_runs_on_schedule_and_stops_at_shutdown() {
    let app = App::configured(every_second).await;
    let tokens = app.login("alice").await;
    app.post_bearer("/auth/logout", &tokens.access).await;
    assert_eq!(count_rows(&app.harness, "revoked_tokens"), 1);
    app.harness.clock().advance(600);
    eventually("a scheduled pass deletes the expired rows", || {
        count_rows(&app.harness, "revoked_tokens") == 0 && count_rows(&app.harness, "sessions") == 0
    })
    .await;

    let harness = app.stop().await;
    let connection = rusqlite::Connection::open(harness.database()).unwrap();
    connection
        .execute(
            "INSERT INTO revoked_tokens (jti, expires_at) VALUES ('after-shutdown', 0)",
            [],
        )
        .unwrap();
    rocket::tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(count_rows(&harness, "revoked_tokens"), 1, "no pass runs after shutdown");
}

#[rocket::async_test]
async fn an_error_in_one_pass_does_not_stop_the_next() {
    capture_logs();
    let app = App::configured(every_second).await;
    let connection = rusqlite::Connection::open(app.harness.database()).unwrap();
    connection
        .execute_batch("ALTER TABLE revoked_tokens RENAME TO revoked_tokens_away")
        .unwrap();
    eventually("a pass fails and logs it", || logged("prune pass failed")).await;

    connection
        .execute_batch("ALTER TABLE revoked_tokens_away RENAME TO revoked_tokens")
        .unwrap();
    connection
        .execute("INSERT INTO revoked_tokens (jti, expires_at) VALUES ('expired', 0)", [])
        .unwrap();
    eventually("a later pass deletes the row", || {
        count_rows(&app.harness, "revoked_tokens") == 0
    })
    .await;
}

#[rocket::async_test]
async fn with_auto_prune_off_only_prune_now_deletes() {
    let app = App::configured(|figment| every_second(figment).merge(("sessions.auto_prune", false))).await;
    let connection = rusqlite::Connection::open(app.harness.database()).unwrap();
    connection
        .execute("INSERT INTO revoked_tokens (jti, expires_at) VALUES ('expired', 0)", [])
        .unwrap();
    rocket::tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(count_rows(&app.harness, "revoked_tokens"), 1, "no scheduled pass ran");
    assert_eq!(prune(&app).await.revoked_tokens, 1);
    assert_eq!(count_rows(&app.harness, "revoked_tokens"), 0);
}
