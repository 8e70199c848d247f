//! Schema migrations: numbered files in `sql/sqlite/`, embedded in the binary, applied in
//! one transaction and tracked by `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

use crate::store::{ErrorKind, StoreError};

/// Every migration, in order; the schema version is the number applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../sql/sqlite/0001_init.sql"),
    include_str!("../../../sql/sqlite/0002_auth_failures.sql"),
    include_str!("../../../sql/sqlite/0003_bounded_rows.sql"),
    include_str!("../../../sql/sqlite/0004_known_networks.sql"),
    include_str!("../../../sql/sqlite/0005_revocation_feed.sql"),
    include_str!("../../../sql/sqlite/0006_login_options.sql"),
    include_str!("../../../sql/sqlite/0007_user_cutoffs.sql"),
    include_str!("../../../sql/sqlite/0008_session_labels.sql"),
    include_str!("../../../sql/sqlite/0009_pending_attempts.sql"),
    include_str!("../../../sql/sqlite/0010_dpop.sql"),
    include_str!("../../../sql/sqlite/0011_device_bound.sql"),
];

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the schema up to [`SCHEMA_VERSION`], or refuses a database written by a
/// newer build. Concurrent callers are serialised by the immediate transaction.
/// It always writes (the version is stored again), so a file that cannot be
/// written fails here.
pub(crate) fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = transaction.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if !(0..=SCHEMA_VERSION).contains(&found) {
        return Err(StoreError::new(
            ErrorKind::Schema,
            format!(
                "the database's schema version is {found}, but this build of rocket_sqlite_sessions \
                 knows versions 0 to {SCHEMA_VERSION}; upgrade the crate or point `sessions.database` at \
                 another file"
            ),
        ));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        transaction.execute_batch(sql)?;
        transaction.pragma_update(None, "user_version", index as i64 + 1)?;
    }
    transaction.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    transaction.commit()?;
    Ok(())
}
