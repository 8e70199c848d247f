//! Every SQL statement and every rusqlite call of the crate.
//!
//! The methods here block: callers on the async runtime run them through
//! `spawn_blocking`.
//!
//! Every write goes through one dedicated connection behind a mutex: SQLite has
//! one writer at a time anyway, and writers of this process then queue on the
//! mutex and wake the moment it is free, where SQLite's busy handler would sleep
//! in steps of up to 100 ms. Reads use a pool of connections beside it (WAL lets
//! them run during a write). Writes still use `BEGIN IMMEDIATE` and the busy
//! timeout, for other processes on the same file.
//!
//! The writes of the request path (login, refresh, logout) go through
//! [`Store::batched`] instead: they queue, and one blocking thread runs all that
//! are waiting in one transaction, each in its own savepoint (group commit). A
//! thread per write queueing on the mutex spent more time switching threads
//! than writing.

mod migrate;

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// How long a connection waits for SQLite's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Reading connections in the pool; readers in WAL mode run beside the writer.
const POOL_SIZE: u32 = 8;
/// The writer's page cache, in KiB (SQLite's default is 2 MiB): pruning touches
/// pages all over the indexes.
const WRITER_CACHE_KIB: i64 = -32 * 1024;
/// The longest a prune batch holds the write lock, roughly: a request waiting
/// for the lock waits about this long at most.
pub(crate) const PRUNE_BATCH_BUDGET: Duration = Duration::from_millis(2);
/// Rows a prune batch selects at a time, between two looks at the clock.
const PRUNE_CHUNK: u32 = 64;
/// How often the background checkpointer copies the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// A WAL this long (in pages) is checkpointed to its end, pausing writes for the
/// last few frames, so that it restarts instead of growing.
const WAL_FRAMES_BEFORE_CATCH_UP: i64 = 1000;

/// A failure of the SQLite store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error (busy, full, read-only, I/O, …).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// No pooled connection became free in time.
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    /// The background WAL checkpointer thread could not be started.
    #[error("cannot start the WAL checkpointer thread: {0}")]
    Checkpointer(std::io::Error),
    /// The file's schema was written by a newer (or unknown) version of the crate.
    #[error(
        "the database's schema version is {found}, but this build of rocket_sqlite_sessions \
         knows versions 0 to {supported}; upgrade the crate or point `sessions.database` at \
         another file"
    )]
    UnsupportedSchema {
        /// The file's `PRAGMA user_version`.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
}

/// The SQLite file behind the sessions: a pool of connections to it.
#[derive(Clone)]
pub(crate) struct Store {
    pool: r2d2::Pool<SqliteConnectionManager>,
    /// FIFO: a long prune pass queues behind the writes that were waiting.
    writer: Arc<rocket::tokio::sync::Mutex<Connection>>,
    /// Batched writes waiting for the writer.
    batch: Arc<Mutex<Batch>>,
}

/// What a batched write tells its caller once the batch's commit is known.
type Finish = Box<dyn FnOnce(Option<&rusqlite::Error>) + Send>;
/// A batched write: runs in the batch's transaction, returns its [`Finish`].
type BatchedWrite = Box<dyn FnOnce(&Connection) -> Finish + Send>;

/// The queue of batched writes, and whether a thread is running batches.
#[derive(Default)]
struct Batch {
    queue: Vec<BatchedWrite>,
    running: bool,
}

/// A session to insert at login.
pub(crate) struct NewSession<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub now: i64,
    pub expires_at: i64,
    pub absolute_expires_at: i64,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub claims_json: &'a str,
}

/// A session as listed to its user.
#[derive(Debug)]
pub(crate) struct SessionRecord {
    pub id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// What the store knows of a presented refresh token and its session.
#[derive(Debug)]
pub(crate) struct PresentedRefresh {
    pub session_id: String,
    pub session_created_at: i64,
    pub user_id: String,
    pub token_expires_at: i64,
    pub rotated_at: Option<i64>,
    pub session_expires_at: i64,
    pub absolute_expires_at: i64,
    pub session_revoked: bool,
    pub claims_json: String,
}

/// What to do with a presented refresh token, decided by the caller inside the
/// store's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefreshDecision {
    /// Refuse it; change nothing.
    Reject,
    /// It was reused: revoke its whole session.
    RevokeSession,
    /// Mark it rotated (unless it already is, within the grace window) and store
    /// its successor.
    Rotate {
        new_hash: [u8; 32],
        token_expires_at: i64,
        session_expires_at: i64,
    },
}

/// What the store says is revoked and can still reject a token.
pub(crate) struct StoredRevocations {
    /// Blocklisted `jti`s with their token's `exp`.
    pub jtis: Vec<(String, i64)>,
    /// Revoked session ids with the time of revocation.
    pub sessions: Vec<(String, i64)>,
}

/// Where a client connected from, as recorded on its session.
pub(crate) struct ClientRecord<'a> {
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

impl Store {
    /// Opens (creating if needed) and migrates the file at `path`.
    pub(crate) fn open(path: &Path) -> Result<Store, StoreError> {
        // One plain connection first: a bad path fails here at once, where the
        // pool would retry until its timeout.
        let mut writer = Connection::open(path)?;
        configure(&mut writer)?;
        writer.pragma_update(None, "cache_size", WRITER_CACHE_KIB)?;
        migrate::migrate(&mut writer)?;

        let manager = SqliteConnectionManager::file(path).with_init(configure);
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .connection_timeout(BUSY_TIMEOUT)
            .build(manager)?;
        let writer = Arc::new(rocket::tokio::sync::Mutex::new(writer));
        start_checkpointer(path, Arc::downgrade(&writer))?;
        Ok(Store {
            pool,
            writer,
            batch: Arc::default(),
        })
    }

    /// Runs `work` on the writer inside a savepoint of a transaction shared with
    /// the other batched writes waiting meanwhile (group commit), and gives its
    /// result once that transaction is committed: no caller hears `Ok` for a write
    /// that is not durable. An error of `work` rolls back its own savepoint only.
    /// The one thread running batches takes the writer's mutex for each batch,
    /// so pruning and the other writes still take turns with it.
    pub(crate) async fn batched<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (sender, receiver) = rocket::tokio::sync::oneshot::channel();
        let write: BatchedWrite = Box::new(move |connection| {
            let outcome = in_savepoint(connection, work);
            Box::new(move |commit_error| {
                let _ = sender.send(match (outcome, commit_error) {
                    (Ok(value), None) => Ok(value),
                    (Ok(_), Some(error)) => Err(StoreError::Sqlite(duplicate(error))),
                    (Err(error), _) => Err(error),
                });
            })
        });
        let start_batches = {
            let mut batch = self.batch.lock().unwrap_or_else(PoisonError::into_inner);
            batch.queue.push(write);
            !std::mem::replace(&mut batch.running, true)
        };
        if start_batches {
            let store = self.clone();
            rocket::tokio::task::spawn_blocking(move || store.run_batches());
        }
        receiver
            .await
            .unwrap_or_else(|_| Err(batch_error("the batched write failed before its commit; see the log")))
    }

    /// Runs batches until the queue is empty.
    fn run_batches(&self) {
        loop {
            let mut connection = self.writer();
            let writes = {
                let mut batch = self.batch.lock().unwrap_or_else(PoisonError::into_inner);
                if batch.queue.is_empty() {
                    batch.running = false;
                    return;
                }
                std::mem::take(&mut batch.queue)
            };
            let transaction = match connection.transaction_with_behavior(TransactionBehavior::Immediate) {
                Ok(transaction) => transaction,
                Err(error) => {
                    // Dropping the writes tells each caller it failed.
                    log::error!(
                        "rocket_sqlite_sessions: a batch of {} writes failed: {error}",
                        writes.len()
                    );
                    continue;
                }
            };
            let finishes: Vec<Finish> = writes.into_iter().map(|write| write(&transaction)).collect();
            let committed = transaction.commit();
            if let Err(error) = &committed {
                log::error!(
                    "rocket_sqlite_sessions: committing a batch of {} writes failed: {error}",
                    finishes.len()
                );
            }
            for finish in finishes {
                finish(committed.as_ref().err());
            }
        }
    }

    /// A pooled connection, for reads.
    fn connection(&self) -> Result<r2d2::PooledConnection<SqliteConnectionManager>, StoreError> {
        Ok(self.pool.get()?)
    }

    /// The one writing connection, for as long as the guard lives. Called only
    /// from blocking threads.
    fn writer(&self) -> rocket::tokio::sync::MutexGuard<'_, Connection> {
        self.writer.blocking_lock()
    }

    /// Inserts a session and its first refresh token in one transaction.
    pub(crate) fn create_session(
        &self,
        session: &NewSession<'_>,
        refresh_hash: &[u8; 32],
        refresh_expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut connection = self.writer();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        transaction
            .prepare_cached(
                "INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at,
                                       absolute_expires_at, ip, user_agent, claims)
                 VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                session.id,
                session.user_id,
                session.now,
                session.expires_at,
                session.absolute_expires_at,
                session.ip,
                session.user_agent,
                session.claims_json,
            ])?;
        transaction
            .prepare_cached(
                "INSERT INTO refresh_tokens (hash, session_id, parent_hash, issued_at, expires_at)
                 VALUES (?1, ?2, NULL, ?3, ?4)",
            )?
            .execute(params![&refresh_hash[..], session.id, session.now, refresh_expires_at])?;
        transaction.commit()?;
        Ok(())
    }

    /// Revokes one session and, when given, blocklists an access token's `jti`
    /// until its `exp`. Returns whether the session was live until now.
    pub(crate) fn revoke_session(
        &self,
        session_id: &str,
        now: i64,
        reason: &str,
        blocklist: Option<(&str, i64)>,
    ) -> Result<bool, StoreError> {
        let mut connection = self.writer();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let revoked = revoke_session_in(&transaction, session_id, now, reason)?;
        if let Some((jti, expires_at)) = blocklist {
            transaction
                .prepare_cached("INSERT OR IGNORE INTO revoked_tokens (jti, expires_at) VALUES (?1, ?2)")?
                .execute(params![jti, expires_at])?;
        }
        transaction.commit()?;
        Ok(revoked)
    }

    /// Revokes every live session of `user_id` but `keep` (when given); returns
    /// their ids.
    pub(crate) fn revoke_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: i64,
        reason: &str,
    ) -> Result<Vec<String>, StoreError> {
        let connection = self.writer();
        let mut statement = connection.prepare_cached(
            "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
             WHERE user_id = ?1 AND revoked_at IS NULL AND id IS NOT ?4
             RETURNING id",
        )?;
        let ids = statement
            .query_map(params![user_id, now, reason, keep], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(ids)
    }

    /// The app data (a JSON object) of a live session; `None` when the session
    /// is revoked, expired or unknown.
    pub(crate) fn session_data(&self, id: &str, now: i64) -> Result<Option<String>, StoreError> {
        let connection = self.connection()?;
        let data = connection
            .prepare_cached("SELECT data FROM sessions WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?2")?
            .query_row(params![id, now], |row| row.get(0))
            .optional()?;
        Ok(data)
    }

    /// Replaces a live session's app data with `update`'s result for the current
    /// data, in one transaction. `None` when the session is not live.
    pub(crate) fn update_session_data<T>(
        &self,
        id: &str,
        now: i64,
        update: impl FnOnce(&str) -> (String, T),
    ) -> Result<Option<T>, StoreError> {
        let mut connection = self.writer();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: Option<String> = transaction
            .prepare_cached("SELECT data FROM sessions WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?2")?
            .query_row(params![id, now], |row| row.get(0))
            .optional()?;
        let Some(current) = current else {
            return Ok(None);
        };
        let (data, result) = update(&current);
        transaction
            .prepare_cached("UPDATE sessions SET data = ?2 WHERE id = ?1")?
            .execute(params![id, data])?;
        transaction.commit()?;
        Ok(Some(result))
    }

    /// When `scope` stops being throttled: the time its `limit`-th most recent
    /// failure after `since` leaves the window, or `None` when it has fewer.
    pub(crate) fn throttled_until(
        &self,
        scope: &[u8; 32],
        since: i64,
        limit: u32,
        window: i64,
    ) -> Result<Option<i64>, StoreError> {
        throttled_until_in(&self.writer(), scope, since, limit, window)
    }

    /// Records one failed attempt in each scope.
    pub(crate) fn record_failure(&self, scopes: &[[u8; 32]], now: i64) -> Result<(), StoreError> {
        let mut connection = self.writer();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert = transaction.prepare_cached("INSERT INTO auth_failures (scope, at) VALUES (?1, ?2)")?;
            for scope in scopes {
                insert.execute(params![&scope[..], now])?;
            }
        }
        transaction.commit()?;
        Ok(())
    }

    /// Forgets the failures of `scope` (after a successful attempt).
    pub(crate) fn clear_failures(&self, scope: &[u8; 32]) -> Result<(), StoreError> {
        self.writer()
            .prepare_cached("DELETE FROM auth_failures WHERE scope = ?1")?
            .execute([&scope[..]])?;
        Ok(())
    }

    /// Revokes `session_id` only if it is an active session of `user_id`.
    pub(crate) fn revoke_own_session(&self, user_id: &str, session_id: &str, now: i64) -> Result<bool, StoreError> {
        let connection = self.writer();
        let changed = connection
            .prepare_cached(
                "UPDATE sessions SET revoked_at = ?3, revoked_reason = 'revoked by user'
                 WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL AND expires_at > ?3",
            )?
            .execute(params![session_id, user_id, now])?;
        Ok(changed == 1)
    }

    /// The active (not revoked, not expired) sessions of `user_id`, most recently
    /// used first.
    pub(crate) fn active_sessions(&self, user_id: &str, now: i64) -> Result<Vec<SessionRecord>, StoreError> {
        let connection = self.connection()?;
        let mut statement = connection.prepare_cached(
            "SELECT id, created_at, last_seen_at, expires_at, ip, user_agent
             FROM sessions
             WHERE user_id = ?1 AND expires_at > ?2 AND revoked_at IS NULL
             ORDER BY last_seen_at DESC, created_at DESC",
        )?;
        let sessions = statement
            .query_map(params![user_id, now], |row| {
                Ok(SessionRecord {
                    id: row.get(0)?,
                    created_at: row.get(1)?,
                    last_seen_at: row.get(2)?,
                    expires_at: row.get(3)?,
                    ip: row.get(4)?,
                    user_agent: row.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(sessions)
    }

    /// Blocklisted `jti`s with `exp` at or after `jtis_since`, and sessions revoked
    /// at or after `sessions_since`: what can still reject a live token.
    pub(crate) fn revocations(&self, jtis_since: i64, sessions_since: i64) -> Result<StoredRevocations, StoreError> {
        let connection = self.connection()?;
        let jtis = connection
            .prepare("SELECT jti, expires_at FROM revoked_tokens WHERE expires_at >= ?1")?
            .query_map([jtis_since], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        let sessions = connection
            .prepare("SELECT id, revoked_at FROM sessions WHERE revoked_at >= ?1")?
            .query_map([sessions_since], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(StoredRevocations { jtis, sessions })
    }
}

/// Which rows a prune pass may delete: those no token can still need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PruneCutoffs {
    /// Sessions whose `expires_at` is at or before this, with their refresh tokens:
    /// none of their tokens can be accepted any more.
    pub expired_at_or_before: i64,
    /// Revoked sessions whose `revoked_at` is at or before this: every access
    /// token issued before the revocation has expired.
    pub revoked_at_or_before: i64,
    /// Blocklisted `jti`s whose token's `exp` is at or before this.
    pub blocklist_expired_at_or_before: i64,
    /// Failed attempts at or before this are out of every throttling window.
    pub failures_at_or_before: i64,
}

/// What one prune batch deleted.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PrunedBatch {
    pub sessions: usize,
    pub refresh_tokens: usize,
    pub revoked_tokens: usize,
    pub auth_failures: usize,
    /// Nothing more of this kind is left to delete.
    pub exhausted: bool,
}

impl Store {
    /// Deletes dead sessions with all their refresh tokens, in one transaction
    /// that ends at `batch` sessions or after [`PRUNE_BATCH_BUDGET`] of work,
    /// whichever comes first.
    pub(crate) fn prune_sessions(&self, cutoffs: PruneCutoffs, batch: u32) -> Result<PrunedBatch, StoreError> {
        let mut connection = self.writer();
        let started = Instant::now();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut pruned = PrunedBatch::default();
        {
            let mut expired = transaction.prepare_cached("SELECT id FROM sessions WHERE expires_at <= ?1 LIMIT ?2")?;
            let mut revoked = transaction
                .prepare_cached("SELECT id FROM sessions WHERE revoked_at <= ?1 AND expires_at > ?2 LIMIT ?3")?;
            let mut delete_tokens = transaction.prepare_cached("DELETE FROM refresh_tokens WHERE session_id = ?1")?;
            let mut delete_session = transaction.prepare_cached("DELETE FROM sessions WHERE id = ?1")?;
            while pruned.sessions < batch as usize && started.elapsed() < PRUNE_BATCH_BUDGET {
                let chunk = PRUNE_CHUNK.min(batch - pruned.sessions as u32);
                let mut ids: Vec<String> = expired
                    .query_map(params![cutoffs.expired_at_or_before, chunk], |row| row.get(0))?
                    .collect::<Result<_, _>>()?;
                if ids.len() < chunk as usize {
                    let wanted = chunk as usize - ids.len();
                    let more = revoked
                        .query_map(
                            params![
                                cutoffs.revoked_at_or_before,
                                cutoffs.expired_at_or_before,
                                wanted as i64
                            ],
                            |row| row.get::<_, String>(0),
                        )?
                        .collect::<Result<Vec<_>, _>>()?;
                    ids.extend(more);
                }
                for id in &ids {
                    pruned.refresh_tokens += delete_tokens.execute([id])?;
                    pruned.sessions += delete_session.execute([id])?;
                }
                if ids.len() < chunk as usize {
                    pruned.exhausted = true;
                    break;
                }
            }
        }
        transaction.commit()?;
        Ok(pruned)
    }

    /// Deletes blocklist rows whose token has expired, in one transaction that
    /// ends at `batch` rows or after [`PRUNE_BATCH_BUDGET`], whichever comes first.
    pub(crate) fn prune_blocklist(&self, cutoffs: PruneCutoffs, batch: u32) -> Result<PrunedBatch, StoreError> {
        let deleted = self.prune_in_chunks(
            "DELETE FROM revoked_tokens WHERE jti IN
                 (SELECT jti FROM revoked_tokens WHERE expires_at <= ?1 LIMIT ?2)",
            cutoffs.blocklist_expired_at_or_before,
            batch,
        )?;
        Ok(PrunedBatch {
            revoked_tokens: deleted.0,
            exhausted: deleted.1,
            ..PrunedBatch::default()
        })
    }

    /// Deletes failed attempts older than every throttling window, like
    /// [`prune_blocklist`](Self::prune_blocklist).
    pub(crate) fn prune_auth_failures(&self, cutoffs: PruneCutoffs, batch: u32) -> Result<PrunedBatch, StoreError> {
        let deleted = self.prune_in_chunks(
            "DELETE FROM auth_failures WHERE rowid IN
                 (SELECT rowid FROM auth_failures WHERE at <= ?1 LIMIT ?2)",
            cutoffs.failures_at_or_before,
            batch,
        )?;
        Ok(PrunedBatch {
            auth_failures: deleted.0,
            exhausted: deleted.1,
            ..PrunedBatch::default()
        })
    }

    /// Runs `delete` (cutoff ?1, limit ?2) in chunks inside one transaction until
    /// `batch` rows, the time budget, or nothing is left. Returns the rows
    /// deleted and whether nothing is left.
    fn prune_in_chunks(&self, delete: &str, cutoff: i64, batch: u32) -> Result<(usize, bool), StoreError> {
        let mut connection = self.writer();
        let started = Instant::now();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (mut deleted, mut exhausted) = (0usize, false);
        {
            let mut statement = transaction.prepare_cached(delete)?;
            while deleted < batch as usize && started.elapsed() < PRUNE_BATCH_BUDGET {
                let chunk = PRUNE_CHUNK.min(batch - deleted as u32);
                let rows = statement.execute(params![cutoff, chunk])?;
                deleted += rows;
                if rows < chunk as usize {
                    exhausted = true;
                    break;
                }
            }
        }
        transaction.commit()?;
        Ok((deleted, exhausted))
    }
}

fn revoke_session_in(connection: &Connection, session_id: &str, now: i64, reason: &str) -> Result<bool, StoreError> {
    let changed = connection
        .prepare_cached(
            "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
             WHERE id = ?1 AND revoked_at IS NULL",
        )?
        .execute(params![session_id, now, reason])?;
    Ok(changed == 1)
}

/// Looks up a presented refresh token by hash and applies `decide`'s verdict in
/// the same write transaction (see [`Store::batched`]), so two refreshes of
/// one token are serialised and at most one rotates it. `None` when no such
/// token exists.
pub(crate) fn refresh_in(
    transaction: &Connection,
    hash: &[u8; 32],
    now: i64,
    client: &ClientRecord<'_>,
    decide: impl FnOnce(&PresentedRefresh) -> RefreshDecision,
) -> Result<Option<(PresentedRefresh, RefreshDecision)>, StoreError> {
    let presented = transaction
        .prepare_cached(
            "SELECT s.id, s.user_id, t.expires_at, t.rotated_at, s.expires_at,
                    s.absolute_expires_at, s.revoked_at IS NOT NULL, s.claims, s.created_at
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
             WHERE t.hash = ?1",
        )?
        .query_row(params![&hash[..]], |row| {
            Ok(PresentedRefresh {
                session_id: row.get(0)?,
                user_id: row.get(1)?,
                token_expires_at: row.get(2)?,
                rotated_at: row.get(3)?,
                session_expires_at: row.get(4)?,
                absolute_expires_at: row.get(5)?,
                session_revoked: row.get(6)?,
                claims_json: row.get(7)?,
                session_created_at: row.get(8)?,
            })
        })
        .optional()?;
    let Some(presented) = presented else {
        return Ok(None);
    };

    let decision = decide(&presented);
    match decision {
        RefreshDecision::Reject => return Ok(Some((presented, decision))),
        RefreshDecision::RevokeSession => {
            revoke_session_in(transaction, &presented.session_id, now, "refresh token reuse")?;
        }
        RefreshDecision::Rotate {
            new_hash,
            token_expires_at,
            session_expires_at,
        } => {
            // Within the grace window the token is already rotated; it keeps
            // its first rotation time so the window does not slide.
            transaction
                .prepare_cached("UPDATE refresh_tokens SET rotated_at = ?2 WHERE hash = ?1 AND rotated_at IS NULL")?
                .execute(params![&hash[..], now])?;
            transaction
                .prepare_cached(
                    "INSERT INTO refresh_tokens (hash, session_id, parent_hash, issued_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    &new_hash[..],
                    presented.session_id,
                    &hash[..],
                    now,
                    token_expires_at
                ])?;
            transaction
                .prepare_cached(
                    "UPDATE sessions
                     SET last_seen_at = ?2, expires_at = ?3,
                         ip = coalesce(?4, ip), user_agent = coalesce(?5, user_agent)
                     WHERE id = ?1",
                )?
                .execute(params![
                    presented.session_id,
                    now,
                    session_expires_at,
                    client.ip,
                    client.user_agent
                ])?;
        }
    }
    Ok(Some((presented, decision)))
}

/// Runs `work` in a savepoint of the open transaction: on error, only its own
/// changes are rolled back.
fn in_savepoint<T>(
    connection: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    connection.execute_batch("SAVEPOINT batched_write")?;
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| work(connection)))
        .unwrap_or_else(|_| Err(batch_error("a batched write panicked; its changes were rolled back")));
    match outcome {
        Ok(value) => {
            connection.execute_batch("RELEASE batched_write")?;
            Ok(value)
        }
        Err(error) => {
            let _ = connection.execute_batch("ROLLBACK TO batched_write; RELEASE batched_write");
            Err(error)
        }
    }
}

/// A copy of a commit's error for each write of the batch (rusqlite's errors
/// are not `Clone`).
fn duplicate(error: &rusqlite::Error) -> rusqlite::Error {
    match error {
        rusqlite::Error::SqliteFailure(code, message) => rusqlite::Error::SqliteFailure(*code, message.clone()),
        other => generic_sqlite_error(other.to_string()),
    }
}

/// A generic SQLite error carrying `message`.
fn generic_sqlite_error(message: impl Into<String>) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
        Some(message.into()),
    )
}

/// A batched write's failure that SQLite did not report itself.
fn batch_error(message: &str) -> StoreError {
    StoreError::Sqlite(generic_sqlite_error(message))
}

/// When the `limit`-th latest failure of `scope` since `since` stops counting
/// (it plus `window`), or `None` when there are fewer failures.
pub(crate) fn throttled_until_in(
    connection: &Connection,
    scope: &[u8; 32],
    since: i64,
    limit: u32,
    window: i64,
) -> Result<Option<i64>, StoreError> {
    let nth_latest = connection
        .prepare_cached(
            "SELECT at FROM auth_failures WHERE scope = ?1 AND at > ?2
             ORDER BY at DESC LIMIT 1 OFFSET ?3",
        )?
        .query_row(params![&scope[..], since, limit - 1], |row| row.get::<_, i64>(0))
        .optional()?;
    Ok(nth_latest.map(|at| at + window))
}

/// Per-connection settings: WAL so readers never wait on the writer, NORMAL sync
/// (durable across application crashes; WAL keeps the file consistent across power
/// loss), foreign keys for the refresh-token → session cascade, no automatic
/// checkpoints (the checkpointer thread does them, so no request pays for one),
/// and a WAL file cut back to 64 MiB when it restarts.
fn configure(connection: &mut Connection) -> Result<(), rusqlite::Error> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA wal_autocheckpoint = 0;
         PRAGMA journal_size_limit = 67108864;",
    )
}

/// Starts the thread that checkpoints the WAL in the background, so no request
/// pays for a checkpoint. The thread ends once the store is dropped, with a last
/// checkpoint.
fn start_checkpointer(path: &Path, writer: Weak<rocket::tokio::sync::Mutex<Connection>>) -> Result<(), StoreError> {
    let mut connection = Connection::open(path)?;
    configure(&mut connection)?;
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while writer.strong_count() > 0 {
                if let Err(error) = checkpoint(&connection, &writer) {
                    log::warn!("rocket_sqlite_sessions: WAL checkpoint failed: {error}");
                }
                std::thread::sleep(CHECKPOINT_EVERY);
            }
            let _ = connection.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
        })
        .map_err(StoreError::Checkpointer)?;
    Ok(())
}

/// One checkpoint. A PASSIVE checkpoint runs beside the writer and never blocks
/// it, but under steady writes it never catches up, and the WAL would grow without
/// bound. So when frames remain and the WAL is long, the rest is checkpointed
/// holding the writer lock (only the few frames written meanwhile are left), and
/// the next write restarts the WAL from its beginning.
fn checkpoint(connection: &Connection, writer: &Weak<rocket::tokio::sync::Mutex<Connection>>) -> rusqlite::Result<()> {
    let passive = |connection: &Connection| {
        connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        })
    };
    let (frames, checkpointed) = passive(connection)?;
    if frames > checkpointed && frames >= WAL_FRAMES_BEFORE_CATCH_UP {
        if let Some(writer) = writer.upgrade() {
            let _writes_paused = writer.blocking_lock();
            passive(connection)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocklist(connection: &Connection, jti: &str) -> Result<(), StoreError> {
        connection.execute("INSERT INTO revoked_tokens (jti, expires_at) VALUES (?1, 1)", [jti])?;
        Ok(())
    }

    #[rocket::async_test]
    async fn a_failing_batched_write_rolls_back_only_its_own_changes() {
        let directory = std::env::temp_dir().join(format!("rss-batch-{}", crate::token::random_id()));
        std::fs::create_dir_all(&directory).unwrap();
        let store = Store::open(&directory.join("sessions.db")).unwrap();
        let writes = (0..32).map(|n| {
            let store = store.clone();
            rocket::tokio::spawn(async move {
                store
                    .batched(move |connection| {
                        blocklist(connection, &format!("jti-{n}"))?;
                        match n % 4 {
                            1 => Err(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows)),
                            2 => panic!("a write that panics"),
                            _ => Ok(n),
                        }
                    })
                    .await
            })
        });
        let mut outcomes = Vec::new();
        for write in writes.collect::<Vec<_>>() {
            outcomes.push(write.await.unwrap());
        }
        for (n, outcome) in outcomes.iter().enumerate() {
            assert_eq!(outcome.is_ok(), n % 4 != 1 && n % 4 != 2, "write {n}: {outcome:?}");
        }
        let kept: Vec<String> = store
            .connection()
            .unwrap()
            .prepare("SELECT jti FROM revoked_tokens ORDER BY CAST(substr(jti, 5) AS INTEGER)")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected: Vec<String> = (0..32)
            .filter(|n| n % 4 == 0 || n % 4 == 3)
            .map(|n| format!("jti-{n}"))
            .collect();
        assert_eq!(kept, expected);
        // The writer still works after a panic.
        assert_eq!(store.batched(|_| Ok(7)).await.unwrap(), 7);
        drop(store);
        let _ = std::fs::remove_dir_all(directory);
    }
}
