//! Schema migrations for PostgreSQL, with their own version table.

use deadpool_postgres::Object;

use super::sql::{self, p};
use super::ADVISORY_KEY;
use crate::store::{ErrorKind, StoreError};

/// The migrations, in order; the schema's version is how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../sql/postgres/0001_init.sql"),
    include_str!("../../../sql/postgres/0002_login_options.sql"),
    include_str!("../../../sql/postgres/0003_user_cutoffs.sql"),
    include_str!("../../../sql/postgres/0004_session_labels.sql"),
    include_str!("../../../sql/postgres/0005_pending_attempts.sql"),
    include_str!("../../../sql/postgres/0006_dpop.sql"),
    include_str!("../../../sql/postgres/0007_device_bound.sql"),
];

/// The schema version this build writes.
const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// Brings the schema (the first of the connection's `search_path`) to
/// [`SCHEMA_VERSION`], in one transaction. Instances starting together take
/// turns (an advisory lock); a schema from a newer build fails with a message.
pub(super) async fn migrate(client: &mut Object) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    sql::execute(
        &tx,
        "SELECT pg_advisory_xact_lock($1, hashtext(current_schema() || ' migrate'))",
        &[p(&(ADVISORY_KEY + 1))],
    )
    .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS rocket_sessions_schema (
             only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
             version  integer NOT NULL
         )",
    )
    .await?;
    let found: i32 = sql::query_opt(&tx, "SELECT version FROM rocket_sessions_schema", &[])
        .await?
        .map_or(0, |row| row.get(0));
    if !(0..=SCHEMA_VERSION).contains(&found) {
        return Err(StoreError::new(
            ErrorKind::Schema,
            format!(
                "the database's schema version is {found}, but this build of rocket_sqlite_sessions knows \
                 versions 0 to {SCHEMA_VERSION}; upgrade the crate or point `sessions.database` at another \
                 database or schema"
            ),
        ));
    }
    for sql in &MIGRATIONS[found as usize..] {
        tx.batch_execute(sql).await?;
    }
    sql::execute(
        &tx,
        "INSERT INTO rocket_sessions_schema (version) VALUES ($1)
         ON CONFLICT (only_row) DO UPDATE SET version = excluded.version",
        &[p(&SCHEMA_VERSION)],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
