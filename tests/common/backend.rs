//! The backends the acceptance suite runs on: SQLite always, PostgreSQL when
//! `ROCKET_SESSIONS_TEST_POSTGRES` names a server (CI starts one). A test
//! that needs a server is ignored without one (testsuite/build.rs), so here a
//! missing one is a failure.

use rocket::figment::Figment;

/// The variable naming the PostgreSQL database the tests may create schemas
/// in, as a URL: `postgresql://postgres@localhost/postgres?host=/tmp/pg`.
pub const POSTGRES_VARIABLE: &str = "ROCKET_SESSIONS_TEST_POSTGRES";

/// Where one test keeps its sessions.
pub enum Backend {
    /// The harness's SQLite file.
    Sqlite,
    /// A fresh schema of its own in the PostgreSQL database.
    Postgres { url: String, schema: String },
    /// A fresh database of its own, reached through PgBouncer in transaction
    /// mode (`url`; a pooler passes no `options`, so no schema of its own),
    /// the feed listening on a direct connection to it (`listen`).
    Pgbouncer { url: String, listen: String },
}

/// The variable naming PgBouncer (transaction pooling, in front of the
/// server of [`POSTGRES_VARIABLE`]), as a URL without a database:
/// `postgresql://postgres@127.0.0.1:6432`.
pub const PGBOUNCER_VARIABLE: &str = "ROCKET_SESSIONS_TEST_PGBOUNCER";

impl Backend {
    pub async fn sqlite() -> Backend {
        Backend::Sqlite
    }

    /// A fresh schema in the server of [`POSTGRES_VARIABLE`].
    pub async fn postgres() -> Backend {
        let base = std::env::var(POSTGRES_VARIABLE)
            .unwrap_or_else(|_| panic!("the PostgreSQL tests need {POSTGRES_VARIABLE} (see .ci/run)"));
        let schema = format!("test_{:016x}", rand::random::<u64>());
        let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_VARIABLE}: {e}"));
        let driver = rocket::tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("a fresh schema");
        drop(client);
        let _ = driver.await;
        let separator = if base.contains('?') { '&' } else { '?' };
        Backend::Postgres {
            url: format!("{base}{separator}options=-csearch_path%3D{schema}"),
            schema,
        }
    }

    /// A fresh database, through the PgBouncer of [`PGBOUNCER_VARIABLE`].
    pub async fn pgbouncer() -> Backend {
        let (Ok(pooler), Ok(direct)) = (std::env::var(PGBOUNCER_VARIABLE), std::env::var(POSTGRES_VARIABLE)) else {
            panic!("the PgBouncer tests need {PGBOUNCER_VARIABLE} and {POSTGRES_VARIABLE} (see .ci/run)");
        };
        let database = format!("test_{:016x}", rand::random::<u64>());
        let admin = Backend::admin().await.expect("the PostgreSQL test server");
        admin
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .await
            .expect("a fresh database");
        // The direct URL names the test server's `postgres` database: the
        // same server, another database.
        let listen = direct.replacen("/postgres?", &format!("/{database}?"), 1);
        assert_ne!(
            listen, direct,
            "{POSTGRES_VARIABLE} names the `postgres` database, with parameters"
        );
        Backend::Pgbouncer {
            url: format!("{pooler}/{database}?sslmode=disable"),
            listen,
        }
    }

    /// A connection to the test server (`None` without one), its driver
    /// spawned.
    pub async fn admin() -> Option<tokio_postgres::Client> {
        let base = std::env::var(POSTGRES_VARIABLE).ok()?;
        let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await.ok()?;
        rocket::tokio::spawn(connection);
        Some(client)
    }

    /// The rows of `table` in this backend's database (`harness`'s file for
    /// SQLite).
    pub async fn count_rows(&self, harness: &rocket_sqlite_sessions::testing::TestHarness, table: &str) -> i64 {
        match self {
            Backend::Sqlite => super::count_rows(harness, table),
            Backend::Postgres { schema, .. } => {
                let client = Backend::admin().await.expect("a PostgreSQL server");
                client
                    .query_one(&format!("SELECT count(*) FROM {schema}.{table}"), &[])
                    .await
                    .unwrap()
                    .get(0)
            }
            Backend::Pgbouncer { listen, .. } => {
                let (client, connection) = tokio_postgres::connect(listen, tokio_postgres::NoTls).await.unwrap();
                rocket::tokio::spawn(connection);
                client
                    .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                    .await
                    .unwrap()
                    .get(0)
            }
        }
    }

    /// `figment` pointed at this backend.
    pub fn configure(&self, figment: Figment) -> Figment {
        match self {
            Backend::Sqlite => figment,
            Backend::Postgres { url, .. } => figment.merge(("sessions.database", url.as_str())),
            Backend::Pgbouncer { url, listen } => figment
                .merge(("sessions.database", url.as_str()))
                .merge(("sessions.listen_database", listen.as_str()))
                .merge(("sessions.pooled", true)),
        }
    }
}
