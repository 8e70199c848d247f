//! Failed-attempt counters for throttling: one row per scope and window, at
//! most a configured number of rows.

use rusqlite::{params, OptionalExtension};

use super::{StoreError, Tx};

/// A throttling scope and its limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FailureScope {
    /// An HMAC of the username or the client network: never the name itself.
    pub key: [u8; 32],
    /// Failures in one window after which attempts are refused.
    pub limit: u32,
}

/// A refused attempt: when the window that refused it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ThrottledUntil(pub i64);

impl Tx<'_> {
    /// Counts one attempt in every scope, or in none when one of them has
    /// reached its limit within its window: then the latest end of such a
    /// window. The check and the count are one write, so concurrent attempts
    /// are counted one after the other and no more than `limit` get through.
    ///
    /// A scope's window starts at its first counted attempt and lasts `window`
    /// seconds. At most `capacity` scopes are kept: a new one takes the place of
    /// those whose window started first.
    pub(crate) fn count_attempt(
        &self,
        scopes: &[FailureScope],
        now: i64,
        window: i64,
        capacity: u64,
    ) -> Result<Result<(), ThrottledUntil>, StoreError> {
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
                if failures >= i64::from(scope.limit) {
                    throttled_until = throttled_until.max(Some(start.saturating_add(window)));
                }
            }
            stored.push((row.is_some(), live.is_some()));
        }
        if let Some(until) = throttled_until {
            return Ok(Err(ThrottledUntil(until)));
        }
        // Room for every new scope at once, so that one cannot push out another.
        let new_scopes = stored.iter().filter(|(exists, _)| !exists).count();
        if new_scopes > 0 {
            self.make_room(capacity, new_scopes as i64)?;
        }
        for (scope, (_, live)) in scopes.iter().zip(stored) {
            if live {
                self.0
                    .prepare_cached("UPDATE auth_failures SET failures = failures + 1 WHERE scope = ?1")?
                    .execute([scope.key])?;
                continue;
            }
            self.0
                .prepare_cached(
                    "INSERT INTO auth_failures (scope, window_start, failures) VALUES (?1, ?2, 1)
                     ON CONFLICT (scope) DO UPDATE SET window_start = excluded.window_start, failures = 1",
                )?
                .execute(params![scope.key, now])?;
        }
        Ok(Ok(()))
    }

    /// Deletes the scopes whose window started first until `new` more fit
    /// within `capacity`.
    fn make_room(&self, capacity: u64, new: i64) -> Result<(), StoreError> {
        let count: i64 = self
            .0
            .prepare_cached("SELECT count FROM auth_failure_scopes")?
            .query_row([], |row| row.get(0))?;
        let excess = count
            .saturating_add(new)
            .saturating_sub(i64::try_from(capacity).unwrap_or(i64::MAX));
        if excess > 0 {
            self.0
                .prepare_cached(
                    "DELETE FROM auth_failures WHERE scope IN
                         (SELECT scope FROM auth_failures ORDER BY window_start LIMIT ?1)",
                )?
                .execute([excess])?;
        }
        Ok(())
    }

    /// Takes back one attempt counted in `scope`'s current window (an attempt
    /// that turned out to succeed).
    pub(crate) fn uncount_attempt(&self, scope: &[u8; 32], now: i64, window: i64) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE auth_failures SET failures = failures - 1
                 WHERE scope = ?1 AND failures > 0 AND window_start > ?2",
            )?
            .execute(params![scope, now.saturating_sub(window)])?;
        Ok(())
    }

    /// Forgets `scope`'s failures.
    pub(crate) fn forget_failures(&self, scope: &[u8; 32]) -> Result<(), StoreError> {
        self.0
            .prepare_cached("DELETE FROM auth_failures WHERE scope = ?1")?
            .execute([scope])?;
        Ok(())
    }
}
