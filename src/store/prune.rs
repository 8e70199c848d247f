//! Prune batches: each deletes what no token can still need, for at most
//! [`PRUNE_BATCH_BUDGET`] of work, as one write of the group-committing writer.

use std::time::{Duration, Instant};

use rusqlite::params;

use super::{StoreError, Tx};

/// The longest a prune batch works, roughly: the requests' writes committed
/// with it wait about this long more (2 ms doubled the refresh p99 under
/// `cargo bench --bench prune`).
pub(crate) const PRUNE_BATCH_BUDGET: Duration = Duration::from_micros(500);
/// Rows a prune batch looks at (or deletes) at a time, between two looks at
/// the clock.
const PRUNE_CHUNK: u32 = 64;

/// Which rows a prune pass may delete: those no token can still need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PruneCutoffs {
    /// Sessions whose `expires_at` is at or before this: none of their tokens
    /// can be accepted any more.
    pub expired_at_or_before: i64,
    /// Revoked sessions whose `revoked_at` is at or before this: every access
    /// token issued before the revocation has expired.
    pub revoked_at_or_before: i64,
    /// Blocklisted `jti`s whose token's `exp` is at or before this.
    pub blocklist_expired_at_or_before: i64,
    /// Failure counters whose window started at or before this have ended.
    pub window_started_at_or_before: i64,
    /// Networks a user last signed in from at or before this are forgotten.
    pub known_network_used_at_or_before: i64,
}

/// The tables whose rows expire one by one.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expiring {
    Blocklist,
    FailureCounters,
    KnownNetworks,
}

/// What one prune batch deleted.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PrunedBatch {
    pub sessions: usize,
    pub revoked_tokens: usize,
    pub auth_failures: usize,
    pub known_networks: usize,
    /// Where a walk of the sessions goes on (the last rowid looked at); `None`
    /// when nothing more of this kind is left.
    pub resume_after: Option<i64>,
}

impl Tx<'_> {
    /// Deletes dead sessions (expired, or revoked longer ago than any access
    /// token lives), walking the table in rowid order from `after`: at most
    /// `batch` sessions or [`PRUNE_BATCH_BUDGET`] of work. No index is kept on
    /// expiry, so that a refresh writes the session's row alone; a pass reads
    /// the whole table instead, a few rows at a time.
    pub(crate) fn prune_sessions(
        &self,
        cutoffs: PruneCutoffs,
        after: i64,
        batch: u32,
    ) -> Result<PrunedBatch, StoreError> {
        let started = Instant::now();
        let mut look = self.0.prepare_cached(
            "SELECT rowid, expires_at <= ?2 OR coalesce(revoked_at <= ?3, 0) FROM sessions
             WHERE rowid > ?1 ORDER BY rowid LIMIT ?4",
        )?;
        let mut delete = self.0.prepare_cached("DELETE FROM sessions WHERE rowid = ?1")?;
        let mut pruned = PrunedBatch::default();
        let mut cursor = after;
        loop {
            if pruned.sessions >= batch as usize || started.elapsed() >= PRUNE_BATCH_BUDGET {
                pruned.resume_after = Some(cursor);
                return Ok(pruned);
            }
            let rows: Vec<(i64, bool)> = look
                .query_map(
                    params![
                        cursor,
                        cutoffs.expired_at_or_before,
                        cutoffs.revoked_at_or_before,
                        PRUNE_CHUNK
                    ],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )?
                .collect::<Result<_, _>>()?;
            for &(rowid, dead) in &rows {
                if pruned.sessions >= batch as usize {
                    pruned.resume_after = Some(cursor);
                    return Ok(pruned);
                }
                cursor = rowid;
                if dead {
                    pruned.sessions += delete.execute([rowid])?;
                }
            }
            if rows.len() < PRUNE_CHUNK as usize {
                return Ok(pruned);
            }
        }
    }

    /// Deletes the rows of `table` past their time (blocklisted `jti`s whose
    /// token expired, failure counters whose window ended, networks not used
    /// for long): at most `batch` rows or [`PRUNE_BATCH_BUDGET`] of work.
    pub(crate) fn prune_expired(
        &self,
        table: Expiring,
        cutoffs: PruneCutoffs,
        batch: u32,
    ) -> Result<PrunedBatch, StoreError> {
        let (delete, cutoff) = match table {
            Expiring::Blocklist => (
                "DELETE FROM revoked_tokens WHERE jti IN
                     (SELECT jti FROM revoked_tokens WHERE expires_at <= ?1 LIMIT ?2)",
                cutoffs.blocklist_expired_at_or_before,
            ),
            Expiring::FailureCounters => (
                "DELETE FROM auth_failures WHERE scope IN
                     (SELECT scope FROM auth_failures WHERE window_start <= ?1 LIMIT ?2)",
                cutoffs.window_started_at_or_before,
            ),
            Expiring::KnownNetworks => (
                "DELETE FROM auth_known_networks WHERE scope IN
                     (SELECT scope FROM auth_known_networks WHERE last_success <= ?1 LIMIT ?2)",
                cutoffs.known_network_used_at_or_before,
            ),
        };
        let (deleted, exhausted) = self.prune_in_chunks(delete, cutoff, batch)?;
        let mut pruned = PrunedBatch {
            resume_after: (!exhausted).then_some(0),
            ..PrunedBatch::default()
        };
        *match table {
            Expiring::Blocklist => &mut pruned.revoked_tokens,
            Expiring::FailureCounters => &mut pruned.auth_failures,
            Expiring::KnownNetworks => &mut pruned.known_networks,
        } = deleted;
        Ok(pruned)
    }

    /// Runs `delete` (cutoff ?1, limit ?2) in chunks until `batch` rows, the
    /// time budget, or nothing is left. Returns the rows deleted and whether
    /// nothing is left.
    fn prune_in_chunks(&self, delete: &str, cutoff: i64, batch: u32) -> Result<(usize, bool), StoreError> {
        let started = Instant::now();
        let mut statement = self.0.prepare_cached(delete)?;
        let mut deleted = 0usize;
        while deleted < batch as usize && started.elapsed() < PRUNE_BATCH_BUDGET {
            let chunk = PRUNE_CHUNK.min(batch - deleted as u32);
            let rows = statement.execute(params![cutoff, chunk])?;
            deleted += rows;
            if rows < chunk as usize {
                return Ok((deleted, true));
            }
        }
        Ok((deleted, false))
    }
}
