//! Prune batches: each deletes what no token can still need, for at most
//! [`PRUNE_BATCH_BUDGET`] of work, as one write of the group-committing writer.

use std::time::{Duration, Instant};

use rusqlite::params;

use super::Tx;
use crate::store::{PruneCutoffs, PruneKind, PrunedBatch, StoreError};

/// The longest a prune batch works, roughly: the requests' writes committed
/// with it wait about this long more (2 ms doubled the refresh p99 under
/// `cargo bench --bench prune`).
pub(crate) const PRUNE_BATCH_BUDGET: Duration = Duration::from_micros(500);
/// Rows a prune batch looks at (or deletes) at a time, between two looks at
/// the clock.
const PRUNE_CHUNK: u32 = 64;

impl Tx<'_> {
    /// One prune batch of `kind`.
    pub(crate) fn prune(
        &self,
        kind: PruneKind,
        cutoffs: PruneCutoffs,
        after: i64,
        batch: u32,
    ) -> Result<PrunedBatch, StoreError> {
        match kind {
            PruneKind::Sessions => self.prune_sessions(cutoffs, after, batch),
            _ => self.prune_expired(kind, cutoffs, batch),
        }
    }

    /// Deletes dead sessions (expired, or revoked longer ago than any access
    /// token lives), walking the table in rowid order from `after`: at most
    /// `batch` sessions or [`PRUNE_BATCH_BUDGET`] of work. No index is kept on
    /// expiry, so that a refresh writes the session's row alone; a pass reads
    /// the whole table instead, a few rows at a time.
    fn prune_sessions(&self, cutoffs: PruneCutoffs, after: i64, batch: u32) -> Result<PrunedBatch, StoreError> {
        let started = Instant::now();
        let mut look = self.0.prepare_cached(
            "SELECT rowid, expires_at <= ?2 OR coalesce(revoked_at <= ?3, 0) FROM sessions
             WHERE rowid > ?1 ORDER BY rowid LIMIT ?4",
        )?;
        let mut delete = self.0.prepare_cached("DELETE FROM sessions WHERE rowid = ?1")?;
        let mut pruned = PrunedBatch::default();
        let mut cursor = after;
        loop {
            if pruned.deleted >= batch as usize || started.elapsed() >= PRUNE_BATCH_BUDGET {
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
                if pruned.deleted >= batch as usize {
                    pruned.resume_after = Some(cursor);
                    return Ok(pruned);
                }
                cursor = rowid;
                if dead {
                    pruned.deleted += delete.execute([rowid])?;
                }
            }
            if rows.len() < PRUNE_CHUNK as usize {
                return Ok(pruned);
            }
        }
    }

    /// Deletes the rows of `table` past their time (blocklisted `jti`s whose
    /// token expired, feed entries no process needs, failure counters whose
    /// window ended, networks not used for long): at most `batch` rows or
    /// [`PRUNE_BATCH_BUDGET`] of work.
    fn prune_expired(&self, table: PruneKind, cutoffs: PruneCutoffs, batch: u32) -> Result<PrunedBatch, StoreError> {
        let (delete, cutoff) = match table {
            PruneKind::Sessions => unreachable!("sessions are pruned by a walk"),
            // ?3: a session's entry goes with its session's row.
            PruneKind::RevocationFeed => (
                "DELETE FROM revocation_log WHERE seq IN
                     (SELECT seq FROM revocation_log
                      WHERE at <= ?1 AND (jti IS NOT NULL OR at <= ?3) LIMIT ?2)",
                cutoffs.blocklist_expired_at_or_before,
            ),
            PruneKind::Blocklist => (
                "DELETE FROM revoked_tokens WHERE jti IN
                     (SELECT jti FROM revoked_tokens WHERE expires_at <= ?1 LIMIT ?2)",
                cutoffs.blocklist_expired_at_or_before,
            ),
            PruneKind::FailureCounters => (
                "DELETE FROM auth_failures WHERE scope IN
                     (SELECT scope FROM auth_failures WHERE window_start <= ?1 LIMIT ?2)",
                cutoffs.window_started_at_or_before,
            ),
            PruneKind::KnownNetworks => (
                "DELETE FROM auth_known_networks WHERE scope IN
                     (SELECT scope FROM auth_known_networks WHERE last_success <= ?1 LIMIT ?2)",
                cutoffs.known_network_used_at_or_before,
            ),
            PruneKind::UserCutoffs => (
                "DELETE FROM user_cutoffs WHERE user_id IN
                     (SELECT user_id FROM user_cutoffs WHERE at <= ?1 LIMIT ?2)",
                cutoffs.user_cutoff_at_or_before,
            ),
        };
        let (deleted, exhausted) = self.prune_in_chunks(delete, cutoff, batch, cutoffs.revoked_at_or_before)?;
        Ok(PrunedBatch {
            deleted,
            resume_after: (!exhausted).then_some(0),
        })
    }

    /// Runs `delete` (cutoff ?1, limit ?2, and `second` as ?3 where used) in
    /// chunks until `batch` rows, the time budget, or nothing is left. Returns
    /// the rows deleted and whether nothing is left.
    fn prune_in_chunks(&self, delete: &str, cutoff: i64, batch: u32, second: i64) -> Result<(usize, bool), StoreError> {
        let started = Instant::now();
        let mut statement = self.0.prepare_cached(delete)?;
        let mut deleted = 0usize;
        while deleted < batch as usize && started.elapsed() < PRUNE_BATCH_BUDGET {
            let chunk = PRUNE_CHUNK.min(batch - deleted as u32);
            let rows = if statement.parameter_count() == 3 {
                statement.execute(params![cutoff, chunk, second])?
            } else {
                statement.execute(params![cutoff, chunk])?
            };
            deleted += rows;
            if rows < chunk as usize {
                return Ok((deleted, true));
            }
        }
        Ok((deleted, false))
    }
}
