//! Failed-attempt counters and known networks, capped like SQLite's.
//!
//! Each attempt first locks the `row_counts` row of `auth_failures`: attempts
//! are checked and counted one at a time across instances, so concurrent
//! guesses cannot pass a limit or the cap together.
//!
//! **Lock order.** Every transaction that writes `auth_failures` locks its
//! count row first, before any counter row (the row-counting trigger would
//! otherwise take it after them, and two transactions could each hold what
//! the other waits for: PostgreSQL's 40P01), then `auth_known_networks`'s count
//! row, then known-network rows. A deadlock or serialisation failure is
//! retried once all the same (the transaction changed nothing).

use deadpool_postgres::Transaction;

use crate::store::{Attempt, PassedCredentials, StoreError, ThrottledUntil};

/// Checks every scope against its limit and, unless one is reached, counts
/// the attempt in each (see `SessionStore::count_attempt`).
pub(super) async fn count_attempt(
    tx: &Transaction<'_>,
    attempt: &Attempt,
) -> Result<Result<i64, ThrottledUntil>, StoreError> {
    let existing = lock_count(tx, "auth_failures").await?;
    let read = tx
        .prepare_cached("SELECT window_start, failures FROM auth_failures WHERE scope = $1")
        .await?;
    let known = tx
        .prepare_cached("SELECT 1 FROM auth_known_networks WHERE scope = $1 AND last_success > $2")
        .await?;
    let mut stored = Vec::with_capacity(attempt.scopes.len());
    let mut throttled_until = None;
    for scope in &attempt.scopes {
        let row = tx.query_opt(&read, &[&scope.key.as_slice()]).await?;
        let row: Option<(i64, i64)> = row.map(|row| (row.get(0), row.get(1)));
        let live = row.filter(|(start, _)| attempt.now < start.saturating_add(attempt.window));
        if let Some((start, failures)) = live {
            if failures >= i64::from(scope.limit) {
                let waived = match scope.waived_by {
                    Some(network) => tx
                        .query_opt(&known, &[&network.as_slice(), &attempt.known_since])
                        .await?
                        .is_some(),
                    None => false,
                };
                if !waived {
                    throttled_until = throttled_until.max(Some(start.saturating_add(attempt.window)));
                }
            }
        }
        stored.push((row.is_some(), live.is_some()));
    }
    if let Some(until) = throttled_until {
        return Ok(Err(ThrottledUntil(until)));
    }
    let new_scopes = stored.iter().filter(|(exists, _)| !exists).count() as i64;
    let keys: Vec<&[u8]> = attempt.scopes.iter().map(|scope| scope.key.as_slice()).collect();
    make_room(tx, Capped::Failures, existing, attempt.capacity, new_scopes, &keys).await?;
    let increment = tx
        .prepare_cached("UPDATE auth_failures SET failures = failures + 1 WHERE scope = $1")
        .await?;
    let restart = tx
        .prepare_cached(
            "INSERT INTO auth_failures (scope, window_start, failures) VALUES ($1, $2, 1)
             ON CONFLICT (scope) DO UPDATE SET window_start = excluded.window_start, failures = 1",
        )
        .await?;
    for (scope, (_, live)) in attempt.scopes.iter().zip(stored) {
        if live {
            tx.execute(&increment, &[&scope.key.as_slice()]).await?;
        } else {
            tx.execute(&restart, &[&scope.key.as_slice(), &attempt.now]).await?;
        }
    }
    // The cut-off counter as this check begins: the last one committed.
    Ok(Ok(super::sessions::cutoff_mark(tx).await?))
}

/// Right credentials: forgets the username's failures here, uncounts the
/// attempt elsewhere, and remembers the network.
pub(super) async fn credentials_passed(tx: &Transaction<'_>, passed: &PassedCredentials) -> Result<bool, StoreError> {
    // The count row first: see the lock order above.
    lock_count(tx, "auth_failures").await?;
    let forget = tx.prepare_cached("DELETE FROM auth_failures WHERE scope = $1").await?;
    tx.execute(&forget, &[&passed.forget.as_slice()]).await?;
    // A counter this attempt alone kept goes; the others lose it.
    let drop_last = tx
        .prepare_cached("DELETE FROM auth_failures WHERE scope = $1 AND failures <= 1 AND window_start > $2")
        .await?;
    let uncount = tx
        .prepare_cached(
            "UPDATE auth_failures SET failures = failures - 1
             WHERE scope = $1 AND failures > 1 AND window_start > $2",
        )
        .await?;
    let window_opened_after = passed.now.saturating_sub(passed.window);
    for scope in &passed.uncount {
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&scope.as_slice(), &window_opened_after];
        if tx.execute(&drop_last, &params).await? == 0 {
            tx.execute(&uncount, &params).await?;
        }
    }
    let network = passed.known_network.as_slice();
    let is_known = tx
        .prepare_cached("SELECT 1 FROM auth_known_networks WHERE scope = $1")
        .await?;
    let new_network = tx.query_opt(&is_known, &[&network]).await?.is_none();
    if new_network {
        let existing = lock_count(tx, "auth_known_networks").await?;
        make_room(tx, Capped::KnownNetworks, existing, passed.capacity, 1, &[network]).await?;
    }
    let remember = tx
        .prepare_cached(
            "INSERT INTO auth_known_networks (scope, last_success) VALUES ($1, $2)
             ON CONFLICT (scope) DO UPDATE SET last_success = excluded.last_success",
        )
        .await?;
    tx.execute(&remember, &[&network, &passed.now]).await?;
    Ok(new_network)
}

/// The rows of a capped table, its count row locked until commit.
pub(super) async fn lock_count(tx: &Transaction<'_>, table: &str) -> Result<i64, StoreError> {
    let statement = tx
        .prepare_cached("SELECT count FROM row_counts WHERE name = $1 FOR UPDATE")
        .await?;
    Ok(tx.query_one(&statement, &[&table]).await?.get(0))
}

/// A table whose rows are capped.
#[derive(Clone, Copy)]
enum Capped {
    Failures,
    KnownNetworks,
}

/// Evicts the oldest rows of `table` (never those of `spared`) so that `new`
/// more fit under `capacity`.
async fn make_room(
    tx: &Transaction<'_>,
    table: Capped,
    existing: i64,
    capacity: u64,
    new: i64,
    spared: &[&[u8]],
) -> Result<(), StoreError> {
    let excess = existing
        .saturating_add(new)
        .saturating_sub(i64::try_from(capacity).unwrap_or(i64::MAX));
    if new == 0 || excess <= 0 {
        return Ok(());
    }
    let evict = match table {
        Capped::Failures => {
            "DELETE FROM auth_failures WHERE scope IN
                 (SELECT scope FROM auth_failures WHERE NOT (scope = ANY ($2))
                  ORDER BY window_start LIMIT $1)"
        }
        Capped::KnownNetworks => {
            "DELETE FROM auth_known_networks WHERE scope IN
                 (SELECT scope FROM auth_known_networks WHERE NOT (scope = ANY ($2))
                  ORDER BY last_success LIMIT $1)"
        }
    };
    let statement = tx.prepare_cached(evict).await?;
    tx.execute(&statement, &[&excess, &spared]).await?;
    Ok(())
}
