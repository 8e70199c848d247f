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

use super::sql::{self, p};

use crate::store::{Attempt, Counted, PassedCredentials, StoreError, ThrottledUntil};

/// Checks every scope against its limit and, unless one is reached, counts
/// the attempt in each (see `SessionStore::count_attempt`).
pub(super) async fn count_attempt(
    tx: &Transaction<'_>,
    attempt: &Attempt,
) -> Result<Result<Counted, ThrottledUntil>, StoreError> {
    let existing = lock_count(tx, "auth_failures").await?;
    let read = "SELECT window_start, failures FROM auth_failures WHERE scope = $1";
    let known = "SELECT 1 FROM auth_known_networks WHERE scope = $1 AND last_success > $2";
    let mut stored = Vec::with_capacity(attempt.scopes.len());
    let mut throttled_until = None;
    for scope in &attempt.scopes {
        let row = sql::query_opt(tx, read, &[p(&scope.key.as_slice())]).await?;
        let row: Option<(i64, i64)> = row.map(|row| (row.get(0), row.get(1)));
        let live = row.filter(|(start, _)| attempt.now < start.saturating_add(attempt.window));
        if let Some((start, failures)) = live {
            if failures >= i64::from(scope.limit) {
                let waived = match scope.waived_by {
                    Some(network) => sql::query_opt(tx, known, &[p(&network.as_slice()), p(&attempt.known_since)])
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
    let increment = "UPDATE auth_failures SET failures = failures + 1 WHERE scope = $1";
    let restart = "INSERT INTO auth_failures (scope, window_start, failures) VALUES ($1, $2, 1)
                   ON CONFLICT (scope) DO UPDATE SET window_start = excluded.window_start, failures = 1";
    for (scope, (_, live)) in attempt.scopes.iter().zip(stored) {
        let key = scope.key.as_slice();
        if live {
            sql::execute(tx, increment, &[p(&key)]).await?;
        } else {
            sql::execute(tx, restart, &[p(&key), p(&attempt.now)]).await?;
        }
    }
    // Its check in progress (see sql/postgres/0005_pending_attempts.sql);
    // rows older than the window go with no take-back, their window ended.
    sql::execute(
        tx,
        "DELETE FROM auth_pending_attempts WHERE started_at <= $1",
        &[p(&attempt.now.saturating_sub(attempt.window))],
    )
    .await?;
    let scopes: Vec<u8> = keys.concat();
    let pending: i64 = sql::query_opt(
        tx,
        "INSERT INTO auth_pending_attempts (started_at, scopes) VALUES ($1, $2) RETURNING id",
        &[p(&attempt.now), p(&scopes.as_slice())],
    )
    .await?
    .map(|row| row.get(0))
    .ok_or_else(|| StoreError::other("INSERT … RETURNING gave no row"))?;
    // The cut-off counter as this check begins: the last one committed.
    let seq = super::sessions::cutoff_mark(tx).await?;
    Ok(Ok(Counted { seq, pending }))
}

/// Ends the check in progress `pending`; whether it was still marked.
pub(super) async fn end_pending(tx: &Transaction<'_>, pending: i64) -> Result<bool, StoreError> {
    Ok(sql::execute(tx, "DELETE FROM auth_pending_attempts WHERE id = $1", &[p(&pending)]).await? > 0)
}

/// At launch: takes back the count of every check still in progress (within
/// its window) and deletes them all.
pub(super) async fn take_back_pending(tx: &Transaction<'_>, now: i64, window: i64) -> Result<usize, StoreError> {
    // The count row first: see the lock order above.
    lock_count(tx, "auth_failures").await?;
    let rows = sql::query(
        tx,
        "DELETE FROM auth_pending_attempts RETURNING started_at, scopes",
        &[],
    )
    .await?;
    let window_opened_after = now.saturating_sub(window);
    let mut taken_back = 0;
    for row in rows {
        let (started_at, scopes): (i64, Vec<u8>) = (row.get(0), row.get(1));
        if started_at <= window_opened_after {
            continue;
        }
        for scope in scopes.chunks_exact(32) {
            uncount(tx, scope, window_opened_after).await?;
        }
        taken_back += 1;
    }
    Ok(taken_back)
}

/// Takes one attempt back from `scope`'s counter in its window; a counter
/// that this attempt alone kept goes.
async fn uncount(tx: &Transaction<'_>, scope: &[u8], window_opened_after: i64) -> Result<(), StoreError> {
    let drop_last = "DELETE FROM auth_failures WHERE scope = $1 AND failures <= 1 AND window_start > $2";
    let uncount = "UPDATE auth_failures SET failures = failures - 1
                   WHERE scope = $1 AND failures > 1 AND window_start > $2";
    let params = [p(&scope), p(&window_opened_after)];
    if sql::execute(tx, drop_last, &params).await? == 0 {
        sql::execute(tx, uncount, &params).await?;
    }
    Ok(())
}

/// Right credentials: forgets the username's failures here, uncounts the
/// attempt elsewhere, and remembers the network.
pub(super) async fn credentials_passed(tx: &Transaction<'_>, passed: &PassedCredentials) -> Result<bool, StoreError> {
    // The count row first: see the lock order above.
    lock_count(tx, "auth_failures").await?;
    sql::execute(
        tx,
        "DELETE FROM auth_failures WHERE scope = $1",
        &[p(&passed.forget.as_slice())],
    )
    .await?;
    // A counter this attempt alone kept goes; the others lose it. Unless a
    // launch took the count back already.
    if end_pending(tx, passed.pending).await? {
        let window_opened_after = passed.now.saturating_sub(passed.window);
        for scope in &passed.uncount {
            uncount(tx, scope, window_opened_after).await?;
        }
    }
    let network = passed.known_network.as_slice();
    let new_network = sql::query_opt(tx, "SELECT 1 FROM auth_known_networks WHERE scope = $1", &[p(&network)])
        .await?
        .is_none();
    if new_network {
        let existing = lock_count(tx, "auth_known_networks").await?;
        make_room(tx, Capped::KnownNetworks, existing, passed.capacity, 1, &[network]).await?;
    }
    sql::execute(
        tx,
        "INSERT INTO auth_known_networks (scope, last_success) VALUES ($1, $2)
         ON CONFLICT (scope) DO UPDATE SET last_success = excluded.last_success",
        &[p(&network), p(&passed.now)],
    )
    .await?;
    Ok(new_network)
}

/// The rows of a capped table, its count row locked until commit.
pub(super) async fn lock_count(tx: &Transaction<'_>, table: &str) -> Result<i64, StoreError> {
    Ok(sql::query_one(
        tx,
        "SELECT count FROM row_counts WHERE name = $1 FOR UPDATE",
        &[p(&table)],
    )
    .await?
    .get(0))
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
    sql::execute(tx, evict, &[p(&excess), p(&spared)]).await?;
    Ok(())
}
