//! Failed-attempt counters for throttling, one row per scope and window, and
//! the networks each user signed in from; each table holds at most a
//! configured number of rows.

use rusqlite::{params, OptionalExtension};

use super::Tx;
use crate::store::{Attempt, Counted, PassedCredentials, StoreError, ThrottledUntil};

/// A table whose rows are capped, and how to find its oldest.
struct Capped {
    count: &'static str,
    evict_oldest: &'static str,
}

/// The most scopes one attempt touches, spared by the eviction it causes.
const SPARED: usize = 3;

const FAILURES: Capped = Capped {
    count: "SELECT count FROM auth_failure_scopes",
    evict_oldest: "DELETE FROM auth_failures WHERE scope IN
                       (SELECT scope FROM auth_failures WHERE scope NOT IN (?2, ?3, ?4)
                        ORDER BY window_start LIMIT ?1)",
};

const KNOWN_NETWORKS: Capped = Capped {
    count: "SELECT count FROM auth_known_network_count",
    evict_oldest: "DELETE FROM auth_known_networks WHERE scope IN
                       (SELECT scope FROM auth_known_networks WHERE scope NOT IN (?2, ?3, ?4)
                        ORDER BY last_success LIMIT ?1)",
};

impl Tx<'_> {
    /// Counts one attempt in every scope, or in none when one of them has
    /// reached its limit within its window (and is not waived): then the
    /// latest end of such a window. The check and the count are one write, so
    /// concurrent attempts are counted one after the other and no more than
    /// `limit` get through.
    ///
    /// A scope's window starts at its first counted attempt and lasts `window`
    /// seconds. A waiver holds for a network remembered after `known_since`. At
    /// most `capacity` scopes are kept: new ones take the place of those whose
    /// window started first.
    pub(crate) fn count_attempt(&self, attempt: &Attempt) -> Result<Result<Counted, ThrottledUntil>, StoreError> {
        let Attempt {
            scopes,
            now,
            window,
            known_since,
            capacity,
        } = attempt;
        let (now, window, known_since, capacity) = (*now, *window, *known_since, *capacity);
        let mut stored = Vec::with_capacity(scopes.len());
        let mut throttled_until = None;
        for scope in scopes {
            let row: Option<(i64, i64)> = self
                .0
                .prepare_cached("SELECT window_start, failures FROM auth_failures WHERE scope = ?1")?
                .query_row([scope.key], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            let live = row.filter(|(start, _)| now < start.saturating_add(window));
            if let Some((start, failures)) = live {
                if failures >= i64::from(scope.limit) && !self.is_known(scope.waived_by, known_since)? {
                    throttled_until = throttled_until.max(Some(start.saturating_add(window)));
                }
            }
            stored.push((row.is_some(), live.is_some()));
        }
        if let Some(until) = throttled_until {
            return Ok(Err(ThrottledUntil(until)));
        }
        // Room for every new scope at once, sparing this attempt's own.
        let new_scopes = stored.iter().filter(|(exists, _)| !exists).count();
        let keys: Vec<[u8; 32]> = scopes.iter().map(|scope| scope.key).collect();
        self.make_room(&FAILURES, capacity, new_scopes as i64, &keys)?;
        for (scope, (_, live)) in scopes.iter().zip(stored) {
            let statement = if live {
                "UPDATE auth_failures SET failures = failures + 1 WHERE scope = ?1"
            } else {
                "INSERT INTO auth_failures (scope, window_start, failures) VALUES (?1, ?2, 1)
                 ON CONFLICT (scope) DO UPDATE SET window_start = excluded.window_start, failures = 1"
            };
            let mut statement = self.0.prepare_cached(statement)?;
            if live {
                statement.execute([scope.key])?;
            } else {
                statement.execute(params![scope.key, now])?;
            }
        }
        let pending = self.mark_pending(&keys, now, window)?;
        // The cut-off counter as this check begins, read in its write.
        let seq = super::sessions::cutoff_mark(self.0)?;
        Ok(Ok(Counted { seq, pending }))
    }

    /// Marks the check of an attempt counted in `scopes` as in progress
    /// (see `sql/sqlite/0009_pending_attempts.sql`); rows older than the
    /// window go, with no take-back: their window has ended.
    fn mark_pending(&self, scopes: &[[u8; 32]], now: i64, window: i64) -> Result<i64, StoreError> {
        self.0
            .prepare_cached("DELETE FROM auth_pending_attempts WHERE started_at <= ?1")?
            .execute([now.saturating_sub(window)])?;
        self.0
            .prepare_cached("INSERT INTO auth_pending_attempts (started_at, scopes) VALUES (?1, ?2)")?
            .execute(params![now, scopes.concat()])?;
        Ok(self.0.last_insert_rowid())
    }

    /// Ends the check in progress `pending`; whether it was still marked.
    pub(crate) fn end_pending(&self, pending: i64) -> Result<bool, StoreError> {
        Ok(self
            .0
            .prepare_cached("DELETE FROM auth_pending_attempts WHERE id = ?1")?
            .execute([pending])?
            > 0)
    }

    /// At launch: takes back the count of every check still in progress
    /// (within its window) and deletes them all.
    pub(crate) fn take_back_pending(&self, now: i64, window: i64) -> Result<usize, StoreError> {
        let rows: Vec<(i64, Vec<u8>)> = self
            .0
            .prepare("SELECT started_at, scopes FROM auth_pending_attempts")?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut taken_back = 0;
        for (started_at, scopes) in &rows {
            if *started_at <= now.saturating_sub(window) {
                continue;
            }
            for scope in scopes.chunks_exact(32) {
                let scope: [u8; 32] = scope.try_into().expect("chunks of 32");
                self.uncount_attempt(&scope, now, window)?;
            }
            taken_back += 1;
        }
        self.0.execute("DELETE FROM auth_pending_attempts", [])?;
        Ok(taken_back)
    }

    /// Whether `network` was remembered after `since`.
    fn is_known(&self, network: Option<[u8; 32]>, since: i64) -> Result<bool, StoreError> {
        let Some(network) = network else {
            return Ok(false);
        };
        Ok(self
            .0
            .prepare_cached("SELECT 1 FROM auth_known_networks WHERE scope = ?1 AND last_success > ?2")?
            .exists(params![network, since])?)
    }

    /// Deletes the oldest rows of `table`, but `spared` (at most three), until
    /// `new` more fit within `capacity`.
    fn make_room(&self, table: &Capped, capacity: u64, new: i64, spared: &[[u8; 32]]) -> Result<(), StoreError> {
        if new == 0 {
            return Ok(());
        }
        assert!(
            (1..=SPARED).contains(&spared.len()),
            "one to {SPARED} scopes are spared"
        );
        let spared = |n: usize| spared[n.min(spared.len() - 1)];
        let count: i64 = self.0.prepare_cached(table.count)?.query_row([], |row| row.get(0))?;
        let excess = count
            .saturating_add(new)
            .saturating_sub(i64::try_from(capacity).unwrap_or(i64::MAX));
        if excess > 0 {
            self.0
                .prepare_cached(table.evict_oldest)?
                .execute(params![excess, spared(0), spared(1), spared(2)])?;
        }
        Ok(())
    }

    /// Takes back one attempt counted in `scope`'s current window (an attempt
    /// that turned out to succeed).
    /// Right credentials: forgets the scope's failures, uncounts the attempt
    /// elsewhere and remembers the network, in one write.
    /// Gives whether the network was new for the user.
    pub(crate) fn credentials_passed(&self, passed: &PassedCredentials) -> Result<bool, StoreError> {
        self.forget_failures(&passed.forget)?;
        // Unless a launch took the count back already.
        if self.end_pending(passed.pending)? {
            for scope in &passed.uncount {
                self.uncount_attempt(scope, passed.now, passed.window)?;
            }
        }
        self.remember_network(&passed.known_network, passed.now, passed.capacity)
    }

    /// Takes one attempt back from `scope`'s counter in its window; a
    /// counter that this attempt alone kept goes.
    pub(crate) fn uncount_attempt(&self, scope: &[u8; 32], now: i64, window: i64) -> Result<(), StoreError> {
        let window_opened_after = now.saturating_sub(window);
        let dropped = self
            .0
            .prepare_cached("DELETE FROM auth_failures WHERE scope = ?1 AND failures <= 1 AND window_start > ?2")?
            .execute(params![scope, window_opened_after])?;
        if dropped == 0 {
            self.0
                .prepare_cached(
                    "UPDATE auth_failures SET failures = failures - 1
                     WHERE scope = ?1 AND failures > 1 AND window_start > ?2",
                )?
                .execute(params![scope, window_opened_after])?;
        }
        Ok(())
    }

    /// Forgets `scope`'s failures.
    pub(crate) fn forget_failures(&self, scope: &[u8; 32]) -> Result<(), StoreError> {
        self.0
            .prepare_cached("DELETE FROM auth_failures WHERE scope = ?1")?
            .execute([scope])?;
        Ok(())
    }

    /// Remembers that a user signed in from a network (an HMAC of both) at
    /// `now`; at most `capacity` are kept, the least recently used going first.
    pub(crate) fn remember_network(&self, network: &[u8; 32], now: i64, capacity: u64) -> Result<bool, StoreError> {
        let known = self
            .0
            .prepare_cached("SELECT 1 FROM auth_known_networks WHERE scope = ?1")?
            .exists([network])?;
        if !known {
            self.make_room(&KNOWN_NETWORKS, capacity, 1, &[*network])?;
        }
        self.0
            .prepare_cached(
                "INSERT INTO auth_known_networks (scope, last_success) VALUES (?1, ?2)
                 ON CONFLICT (scope) DO UPDATE SET last_success = excluded.last_success",
            )?
            .execute(params![network, now])?;
        Ok(!known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::FailureScope;

    /// An attempt at 1000 in a window of 900 s, with room for ten counters.
    fn attempt(scopes: Vec<FailureScope>) -> Attempt {
        Attempt {
            scopes,
            now: 1000,
            window: 900,
            known_since: 0,
            capacity: 10,
        }
    }

    #[rocket::async_test]
    async fn making_room_never_evicts_the_scopes_of_the_attempt_counting() {
        let directory = std::env::temp_dir().join(format!("rss-failures-{}", crate::crypto::random_id()));
        std::fs::create_dir_all(&directory).unwrap();
        let store = SqliteStore::open(&directory.join("sessions.db"), crate::store::Durability::PowerLoss).unwrap();
        let scope = |byte: u8| FailureScope {
            key: [byte; 32],
            limit: 100,
            waived_by: None,
        };
        // A full table of ten counters, all of one window: the smallest key
        // would go first.
        for byte in 0..10 {
            let counted = store
                .write(move |tx| tx.count_attempt(&attempt(vec![scope(byte)])))
                .await
                .unwrap();
            assert!(counted.is_ok());
        }
        // An attempt counting the smallest key and a new one.
        store
            .write(move |tx| tx.count_attempt(&attempt(vec![scope(0), scope(200)])))
            .await
            .unwrap()
            .unwrap();
        let kept: Vec<(Vec<u8>, i64)> = store
            .read(|reader| {
                Ok(reader
                    .0
                    .prepare("SELECT scope, failures FROM auth_failures ORDER BY scope")?
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<Result<_, _>>()?)
            })
            .await
            .unwrap();
        assert_eq!(kept.len(), 10, "still ten");
        assert_eq!(kept[0], (vec![0; 32], 2), "the counter in use kept its count");
        assert_eq!(kept[1].0, vec![2; 32], "the oldest other one went");
        assert_eq!(kept[9].0, vec![200; 32]);
        drop(store);
        let _ = std::fs::remove_dir_all(directory);
    }
}
