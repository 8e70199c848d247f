//! What only the PostgreSQL backend has: the listening connection. Skipped
//! without a server outside CI (see `common::backend`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::backend::Backend;
use common::App;
use rocket::http::Status;
use rocket_sqlite_sessions::testing::TestHarness;

/// The listening connections of `schema`'s instances.
async fn listeners(admin: &tokio_postgres::Client, schema: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&format!("rocket_sessions listener {schema}")],
        )
        .await
        .unwrap()
        .get(0)
}

/// Whether `app` refuses `access` within a second.
async fn refused_within_a_second(app: &App, access: &str) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(1) {
        if app.whoami_status(access).await == Status::Unauthorized {
            return true;
        }
        rocket::tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[rocket::async_test]
#[cfg_attr(
    not(postgres_server),
    ignore = "needs PostgreSQL: --features postgres and ROCKET_SESSIONS_TEST_POSTGRES (see testsuite/build.rs)"
)]
async fn the_listener_reconnects_after_its_connection_is_killed_and_revocations_still_arrive() {
    let backend = Backend::postgres().await;
    let Backend::Postgres { schema, .. } = &backend else {
        unreachable!()
    };
    let admin = Backend::admin().await.expect("the test server");
    let harness = Arc::new(TestHarness::new());
    let a = App::start_with(harness.clone(), |figment| backend.configure(figment)).await;
    let b = App::start_with(harness.clone(), |figment| backend.configure(figment)).await;
    let started = Instant::now();
    while listeners(&admin, schema).await < 2 {
        assert!(started.elapsed() < Duration::from_secs(5), "both instances listen");
        rocket::tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let killed: i64 = admin
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                                   WHERE application_name = $1) AS killed",
            &[&format!("rocket_sessions listener {schema}")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 2);
    // While the listeners are down or coming back, revocations still arrive.
    let first = a.login("alice").await;
    assert_eq!(a.post_bearer("/auth/logout", &first.access).await, Status::NoContent);
    assert!(refused_within_a_second(&b, &first.access).await);

    let started = Instant::now();
    while listeners(&admin, schema).await < 2 {
        assert!(started.elapsed() < Duration::from_secs(5), "the listeners came back");
        rocket::tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = a.login("alice").await;
    assert_eq!(b.whoami_status(&second.access).await, Status::Ok);
    assert_eq!(a.post_bearer("/auth/logout", &second.access).await, Status::NoContent);
    assert!(refused_within_a_second(&b, &second.access).await);
}

#[rocket::async_test]
#[cfg_attr(
    not(postgres_server),
    ignore = "needs PostgreSQL: --features postgres and ROCKET_SESSIONS_TEST_POSTGRES (see testsuite/build.rs)"
)]
async fn one_prune_pass_at_a_time_and_each_gives_its_turn_back_at_once() {
    let backend = Backend::postgres().await;
    let Backend::Postgres { schema, .. } = &backend else {
        unreachable!()
    };
    let app = App::start_with(TestHarness::new(), |figment| {
        backend.configure(figment).merge(("sessions.auto_prune", false))
    })
    .await;
    assert_eq!(app.manager().database_path(), None, "no file on PostgreSQL");
    // Passes one after the other all run: each gives the lock back before it
    // answers.
    for _ in 0..30 {
        assert!(app.manager().prune_now().await.unwrap().completed);
    }
    // While another process holds the turn, a pass leaves the work to it.
    let admin = Backend::admin().await.expect("the test server");
    let lock = "SELECT pg_advisory_lock(7500659, hashtext($1))";
    admin.execute(lock, &[&schema.as_str()]).await.unwrap();
    assert!(!app.manager().prune_now().await.unwrap().completed);
    let unlock = "SELECT pg_advisory_unlock(7500659, hashtext($1))";
    admin.execute(unlock, &[&schema.as_str()]).await.unwrap();
    assert!(app.manager().prune_now().await.unwrap().completed);
}

/// The statements PgBouncer ran for `database`, from its admin console's
/// `SHOW STATS` (`stats_users` may read it).
async fn statements_run(pooler: &str, database: &str) -> i64 {
    let (client, connection) =
        tokio_postgres::connect(&format!("{pooler}/pgbouncer?sslmode=disable"), tokio_postgres::NoTls)
            .await
            .expect("PgBouncer's admin console");
    rocket::tokio::spawn(connection);
    let messages = client.simple_query("SHOW STATS").await.unwrap();
    messages
        .iter()
        .find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) if row.get("database") == Some(database) => {
                row.get("total_query_count").and_then(|count| count.parse().ok())
            }
            _ => None,
        })
        .unwrap_or(0)
}

/// A refresh on PostgreSQL is two round trips, two statements: the session's
/// row read, and the rotation written only if the row is still as read (it
/// was four: begin, lock and read, update, commit). Counted by a real
/// PgBouncer, which sees every statement of the pool.
#[rocket::async_test]
#[cfg_attr(
    not(pgbouncer_server),
    ignore = "needs PgBouncer: --features postgres and ROCKET_SESSIONS_TEST_PGBOUNCER (see testsuite/build.rs)"
)]
async fn a_refresh_is_two_statements() {
    let backend = Backend::pgbouncer().await;
    let Backend::Pgbouncer { url, .. } = &backend else {
        unreachable!()
    };
    let pooler = url.rsplit_once('/').unwrap().0.to_string();
    let database = url.rsplit_once('/').unwrap().1.split('?').next().unwrap().to_string();
    let app = App::start_with(Arc::new(TestHarness::new()), |figment| backend.configure(figment)).await;
    let mut tokens = app.login("alice").await;
    let refreshes = 50;
    let before = statements_run(&pooler, &database).await;
    for _ in 0..refreshes {
        tokens = app.rotate(&tokens.refresh).await;
    }
    let ran = statements_run(&pooler, &database).await - before;
    eprintln!("statements for {refreshes} refreshes: {ran}");
    // The feed is read at least once a second besides: a few more at most.
    assert!(
        (2 * refreshes..=2 * refreshes + 6).contains(&ran),
        "{ran} statements for {refreshes} refreshes"
    );
    assert_eq!(app.whoami_status(&tokens.access).await, Status::Ok);
}

/// Nothing in the crate weakens `synchronous_commit`: a trigger on the
/// sessions table records the setting in force in each of the crate's
/// transactions that write a session (login, rotation, logout), and every
/// one is `on`; a database reached with `synchronous_commit = off` fails
/// launch, naming the setting.
#[rocket::async_test]
#[cfg_attr(
    not(postgres_server),
    ignore = "needs PostgreSQL: --features postgres and ROCKET_SESSIONS_TEST_POSTGRES (see testsuite/build.rs)"
)]
async fn every_commit_of_the_crate_is_synchronous_and_an_asynchronous_one_fails_launch() {
    let backend = Backend::postgres().await;
    let Backend::Postgres { schema, url } = &backend else {
        unreachable!()
    };
    let app = App::start_with(TestHarness::new(), |figment| backend.configure(figment)).await;
    let admin = Backend::admin().await.expect("the test server");
    admin
        .batch_execute(&format!(
            "CREATE TABLE {schema}.seen_synchronous_commit (setting TEXT NOT NULL);
             CREATE FUNCTION {schema}.note_synchronous_commit() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 INSERT INTO {schema}.seen_synchronous_commit VALUES (current_setting('synchronous_commit'));
                 RETURN NULL;
             END $$;
             CREATE TRIGGER note_synchronous_commit AFTER INSERT OR UPDATE ON {schema}.sessions
                 FOR EACH ROW EXECUTE FUNCTION {schema}.note_synchronous_commit();"
        ))
        .await
        .unwrap();
    let tokens = app.login("alice").await;
    let rotated = app.rotate(&tokens.refresh).await;
    assert_eq!(
        app.post_bearer("/auth/logout", &rotated.access).await,
        Status::NoContent
    );
    let seen: Vec<String> = admin
        .query(&format!("SELECT setting FROM {schema}.seen_synchronous_commit"), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(seen.len() >= 3, "login, rotation and logout wrote sessions: {seen:?}");
    assert!(seen.iter().all(|setting| setting == "on"), "{seen:?}");

    common::logs::capture_logs();
    let weakened = format!("{url}%20-csynchronous_commit%3Doff");
    let figment = TestHarness::new().figment().merge(("sessions.database", weakened));
    let launched = rocket::custom(figment)
        .attach(rocket_sqlite_sessions::Sessions::fairing())
        .ignite()
        .await;
    assert!(matches!(
        launched.map_err(|error| matches!(error.kind(), rocket::error::ErrorKind::FailedFairings(_))),
        Err(true)
    ));
    assert!(common::logs::logged("has `synchronous_commit = off`"));
}

/// A `listen_database` that cannot connect (an unknown user, as a wrong
/// password would be) fails launch naming the key, instead of launching with
/// revocations from other processes a second late.
#[rocket::async_test]
#[cfg_attr(
    not(postgres_server),
    ignore = "needs PostgreSQL: --features postgres and ROCKET_SESSIONS_TEST_POSTGRES (see testsuite/build.rs)"
)]
async fn a_listen_database_that_cannot_connect_fails_launch_naming_the_key() {
    let backend = Backend::postgres().await;
    let Backend::Postgres { url, .. } = &backend else {
        unreachable!()
    };
    common::logs::capture_logs();
    let wrong = url.replacen("postgres@", "no_such_user_5b2e:hunter4-secret@", 1);
    assert_ne!(&wrong, url);
    let figment = backend
        .configure(TestHarness::new().figment())
        .merge(("sessions.listen_database", wrong));
    let launched = rocket::custom(figment)
        .attach(rocket_sqlite_sessions::Sessions::fairing())
        .ignite()
        .await;
    assert!(matches!(
        launched.map_err(|error| matches!(error.kind(), rocket::error::ErrorKind::FailedFairings(_))),
        Err(true)
    ));
    assert!(common::logs::logged(
        "invalid `sessions.listen_database`: `listen_database` cannot be used"
    ));
    assert!(!common::logs::lines().iter().any(|line| line.contains("hunter4")));
}
