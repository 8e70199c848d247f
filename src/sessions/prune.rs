//! The scheduled job that deletes expired rows, in small batches.
//!
//! A pass deletes, in this order: sessions that can no longer be used (past their
//! expiry, or revoked longer ago than any access token lives), found by walking
//! the table; then blocklisted `jti`s whose token has expired; then the
//! revocation feed's entries for both; then failure
//! counters whose window has ended; then networks users have not signed in
//! from for `absolute_timeout`; then the same from the in-memory revocation
//! state. Each batch is one write of the group-committing writer that ends at
//! `prune_batch` rows or after about 0.5 ms of work, whichever comes first, so
//! the requests' writes committed with it wait for at most one short batch;
//! and after each batch the pass pauses for as long as the batch took, leaving
//! the CPU to requests.
//!
//! Nothing still needed goes: a blocklisted `jti` stays until its token's `exp`
//! plus `leeway`, a revoked session until every access token issued before the
//! revocation has expired. The cut-offs come from
//! [`Clock::surely_passed`](crate::Clock): a wall clock stepped forward (and
//! back again) never makes a pass delete a revocation early.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use super::Sessions;
use crate::error::Error;
use crate::store::{PruneCutoffs, PruneKind};

/// What one prune pass deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneReport {
    /// Sessions deleted (expired, or revoked with no live access token left),
    /// with their refresh state.
    pub sessions: usize,
    /// Blocklist rows (`jti`s) deleted after their token's `exp`.
    pub revoked_tokens: usize,
    /// Revocation feed entries deleted: those of blocklist rows and sessions
    /// deleted, which no process needs any more.
    pub feed_entries: usize,
    /// Failure counters whose `login_failure_window` has ended.
    pub auth_failures: usize,
    /// Networks users signed in from, forgotten `absolute_timeout` after the
    /// last sign-in from there.
    pub known_networks: usize,
    /// User-wide cut-offs older than `login_failure_window`, which no login
    /// still in flight can precede.
    pub user_cutoffs: usize,
    /// In-memory revocation entries dropped for the same reason.
    pub revocations_forgotten: usize,
    /// Transactions the pass used.
    pub batches: usize,
    /// How long the pass took.
    pub duration: Duration,
    /// `false` when shutdown stopped the pass between two batches, or when
    /// another process was pruning the same database (PostgreSQL) and this
    /// pass left it to that one.
    pub completed: bool,
}

impl Sessions {
    /// Runs one prune pass now and reports what it deleted. Passes never overlap:
    /// this waits for a scheduled pass in progress to finish.
    ///
    /// # Errors
    /// [`Error::Store`] when a batch fails; the batches before it stay committed
    /// and the next pass starts over.
    pub async fn prune_now(&self) -> Result<PruneReport, Error> {
        let _pass = self.inner.prune_lock.lock().await;
        self.prune_pass().await
    }

    async fn prune_pass(&self) -> Result<PruneReport, Error> {
        let started = Instant::now();
        let settings = &self.inner.settings;
        let (access_ttl, leeway) = (settings.tokens.access_ttl, settings.tokens.leeway);
        let now = self.inner.clock.surely_passed();
        let cutoffs = PruneCutoffs {
            expired_at_or_before: now.saturating_sub(leeway),
            revoked_at_or_before: now.saturating_sub(access_ttl).saturating_sub(leeway),
            blocklist_expired_at_or_before: now.saturating_sub(leeway),
            window_started_at_or_before: now.saturating_sub(settings.throttling.login_failure_window),
            known_network_used_at_or_before: now.saturating_sub(settings.lifetimes.absolute_timeout),
            // A login whose check is older than the window is refused anyway.
            user_cutoff_at_or_before: now
                .saturating_sub(settings.throttling.login_failure_window)
                .saturating_sub(leeway),
        };
        let batch = settings.pruning.batch;
        let mut report = PruneReport::default();

        let Some(turn) = self.inner.store.prune_turn().await? else {
            log::info!("rocket_sqlite_sessions: prune pass skipped: another process is pruning");
            return Ok(self.finish(report, started, false));
        };
        let completed = self.prune_batches(cutoffs, batch, &mut report).await;
        // Given back before the pass answers, so that the next pass (of any
        // process) finds the turn free.
        self.inner.store.end_prune_turn(turn).await;
        if completed? {
            report.revocations_forgotten = self.inner.revocations.forget_expired(now);
            Ok(self.finish(report, started, true))
        } else {
            Ok(self.finish(report, started, false))
        }
    }

    /// Deletes every kind in batches, adding to `report`; `false` when
    /// shutdown stopped it between two batches.
    async fn prune_batches(&self, cutoffs: PruneCutoffs, batch: u32, report: &mut PruneReport) -> Result<bool, Error> {
        for kind in PruneKind::ALL {
            let mut after = i64::MIN;
            loop {
                if self.stopping() {
                    return Ok(false);
                }
                let batch_started = Instant::now();
                let pruned = self.inner.store.prune_batch(kind, cutoffs, after, batch).await?;
                yield_to_requests(batch_started.elapsed()).await;
                report.batches += 1;
                *match kind {
                    PruneKind::Sessions => &mut report.sessions,
                    PruneKind::Blocklist => &mut report.revoked_tokens,
                    PruneKind::RevocationFeed => &mut report.feed_entries,
                    PruneKind::FailureCounters => &mut report.auth_failures,
                    PruneKind::KnownNetworks => &mut report.known_networks,
                    PruneKind::UserCutoffs => &mut report.user_cutoffs,
                } += pruned.deleted;
                match pruned.resume_after {
                    Some(resume_after) => after = resume_after,
                    None => break,
                }
            }
        }
        Ok(true)
    }

    fn finish(&self, mut report: PruneReport, started: Instant, completed: bool) -> PruneReport {
        report.duration = started.elapsed();
        report.completed = completed;
        report
    }

    /// One scheduled pass: logged, never fatal to the job.
    async fn scheduled_prune(&self) {
        let Ok(_pass) = self.inner.prune_lock.try_lock() else {
            log::info!("rocket_sqlite_sessions: prune pass skipped: the previous one is still running");
            return;
        };
        match self.prune_pass().await {
            Ok(report) => log::info!(
                "rocket_sqlite_sessions: prune pass{} deleted {} sessions, {} blocklisted tokens, \
                 {} failure counters, {} known networks, {} user cut-offs ({} revocations forgotten) in {} \
                 batches, {:.1} ms",
                if report.completed { "" } else { " (stopped by shutdown)" },
                report.sessions,
                report.revoked_tokens,
                report.auth_failures,
                report.known_networks,
                report.user_cutoffs,
                report.revocations_forgotten,
                report.batches,
                report.duration.as_secs_f64() * 1000.0
            ),
            Err(error) => {
                log::error!("rocket_sqlite_sessions: prune pass failed: {error}; the next pass runs on schedule")
            }
        }
    }

    /// Stops pruning for shutdown: no new batch starts, and this returns once the
    /// batch in progress (if any) has committed or rolled back.
    pub(crate) async fn stop_pruning(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.feed_stop.notify_waiters();
        let _ = self.inner.prune_lock.lock().await;
    }

    /// Closes the store for this process, at shutdown after
    /// [`stop_pruning`](Self::stop_pruning): queued writes run, then every
    /// connection closes (a SQLite file is left without `-wal` and `-shm`
    /// when no other process uses it).
    pub(crate) async fn close_store(&self) {
        self.inner.store.close().await;
    }
}

/// Pauses a pass after a batch for as long as the batch took (waiting for the
/// write lock included): the pass uses at most about half of a core, and backs
/// off further when requests queue for the lock.
async fn yield_to_requests(batch_took: Duration) {
    rocket::tokio::time::sleep(batch_took).await;
}

impl Sessions {
    /// Starts the job that prunes on `prune_schedule`.
    pub(crate) async fn start_pruning(&self) -> Result<JobScheduler, JobSchedulerError> {
        let scheduler = JobScheduler::new().await?;
        let sessions = self.clone();
        let job = Job::new_async(self.inner.settings.pruning.schedule.as_str(), move |_, _| {
            let sessions = sessions.clone();
            Box::pin(async move { sessions.scheduled_prune().await })
        })?;
        scheduler.add(job).await?;
        scheduler.start().await?;
        Ok(scheduler)
    }
}
