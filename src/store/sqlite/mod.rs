//! The SQLite backend: every SQL statement for SQLite and every rusqlite call
//! of the crate.
//!
//! **One write path.** Every write (login, refresh, logout, revocations,
//! failure counts, session data, prune batches) is a closure queued with
//! [`SqliteStore::write`]. One blocking thread at a time takes all the writes
//! waiting and runs them on the one writing connection, in one
//! `BEGIN IMMEDIATE` transaction, each in a savepoint of its own (group
//! commit), and answers each once the commit is known: no caller hears `Ok`
//! for a write that is not durable, and an error or a panic in one write rolls
//! back that write only. Reads run on a pool of connections beside it (WAL lets
//! them run during a write), on Tokio's blocking pool.
//!
//! **A bounded WAL.** Checkpoints are automatic in SQLite only when a commit
//! finds the WAL long, and then that commit pays for them. Here a background
//! thread checkpoints every 200 ms without blocking writes (`PASSIVE`); but
//! under steady writes a passive checkpoint never catches up, and SQLite
//! restarts the WAL from its start only when a write begins with every frame
//! copied back. So once the `-wal` file passes [`WAL_LIMIT_BYTES`], the writing
//! thread itself finishes the checkpoint between two batches, when no write of
//! this process can add frames; the next batch then restarts the WAL and SQLite
//! cuts the file back to the limit (`journal_size_limit`). The file stays
//! within the limit plus one batch, unless a reader holds an old snapshot.
//!
//! **The file is watched.** Before each batch (and every 200 ms) the path is
//! checked to still name the file opened at launch; once it is deleted or
//! replaced, every read and write fails with a [`StoreError`] (503) instead of
//! going to a file nobody will open again, and one error line is logged.
//!
//! Files are created readable and writable by their owner only (0600); SQLite
//! gives the `-wal` and `-shm` files the database file's mode.

mod failures;
mod migrate;
mod prune;
mod sessions;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use crate::log_limit::LogLimit;
use crate::rotation::{Decision, RefreshState};
use crate::store::{
    Attempt, DataUpdate, FeedPage, NewSession, PassedCredentials, PruneCutoffs, PruneKind, PruneTurn, PrunedBatch,
    RefreshRequest, Revocation, RevocationSnapshot, SessionRecord, SessionStore, StoreFuture, ThrottledUntil,
};

use super::{ErrorKind, StoreError};

/// How long a connection waits for SQLite's write lock (held by another
/// process) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Reading connections in the pool; readers in WAL mode run beside the writer.
const POOL_SIZE: u32 = 8;
/// The writer's page cache, in KiB (SQLite's default is 2 MiB): pruning touches
/// pages all over the indexes.
const WRITER_CACHE_KIB: i64 = -32 * 1024;
/// Statements each connection keeps prepared.
const STATEMENT_CACHE: usize = 64;
/// How often the background checkpointer copies the WAL into the database and
/// checks that the file is still there.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// Past this size the `-wal` file is checkpointed to its end by the writing
/// thread, and cut back to it at the next restart (`journal_size_limit`).
pub(crate) const WAL_LIMIT_BYTES: u64 = 16 * 1024 * 1024;

/// How often the revocation feed asks `data_version` whether anything was
/// committed: a revocation in another process reaches this one within about
/// this long plus one read.
const DATA_VERSION_POLL: Duration = Duration::from_millis(100);

/// Repeated failures of the background checkpointer.
static CHECKPOINT_FAILURES: LogLimit = LogLimit::new();
/// Repeated failures of whole batches.
static BATCH_FAILURES: LogLimit = LogLimit::new();

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        let kind = match error.sqlite_error_code() {
            Some(ErrorCode::ReadOnly) => ErrorKind::ReadOnly,
            _ => ErrorKind::Other,
        };
        StoreError::new(kind, format!("sqlite: {error}"))
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(error: r2d2::Error) -> Self {
        StoreError::new(ErrorKind::Other, format!("connection pool: {error}"))
    }
}

/// The SQLite file behind the sessions.
#[derive(Clone)]
pub(crate) struct SqliteStore {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    /// What the path named at launch.
    identity: Option<FileIdentity>,
    /// Set once the path no longer names that file.
    lost: AtomicBool,
    pool: r2d2::Pool<SqliteConnectionManager>,
    /// The one writing connection: only the thread running batches takes it.
    writer: Mutex<Connection>,
    /// Writes waiting for the next batch, and whether a thread runs batches.
    queue: Mutex<Queue>,
    /// Held for each checkpoint: the background one and the writer's catch-up.
    checkpointing: Mutex<()>,
    /// A connection kept to ask `PRAGMA data_version` (did any other
    /// connection, in this process or another, commit?) and the last answer.
    watch: Mutex<(Connection, i64)>,
}

#[derive(Default)]
struct Queue {
    writes: Vec<Box<dyn PendingWrite>>,
    running: bool,
}

/// The writing side of a batch's transaction: the operations a [`SqliteStore::write`]
/// closure can run (see the `impl Tx` blocks of the submodules).
pub(crate) struct Tx<'c>(&'c Connection);

/// A pooled reading connection: the operations a [`SqliteStore::read`] closure can
/// run.
pub(crate) struct Reader<'c>(&'c Connection);

/// A queued write, type-erased.
trait PendingWrite: Send {
    /// Runs the write in the batch's transaction; gives how to answer it once
    /// the commit is known.
    fn run(self: Box<Self>, connection: &Connection) -> Answer;
    /// Answers without running: the batch could not run.
    fn fail(self: Box<Self>, error: StoreError);
}

/// How a write is answered once its batch's commit succeeded or failed.
type Answer = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;

struct Pending<T, F> {
    work: F,
    reply: rocket::tokio::sync::oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> PendingWrite for Pending<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Tx<'_>) -> Result<T, StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, connection: &Connection) -> Answer {
        let Pending { work, reply } = *self;
        let outcome = in_savepoint(connection, |connection| work(&Tx(connection)));
        Box::new(move |committed| {
            let _ = reply.send(match (outcome, committed) {
                (Ok(value), Ok(())) => Ok(value),
                (Ok(_), Err(error)) => Err(error.clone()),
                (Err(error), _) => Err(error),
            });
        })
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

impl SqliteStore {
    /// Opens (creating if needed, mode 0600) and migrates the file at `path`,
    /// and checks that it can be written. Errors name the path and say what to
    /// check.
    pub(crate) fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let cannot = |error: StoreError| {
            let (verb, fix) = match error.kind() {
                ErrorKind::Schema => return error,
                ErrorKind::ReadOnly => (
                    "write",
                    "check that the file and its directory are writable by this process and not on a \
                     read-only mount",
                ),
                ErrorKind::Other => ("open", "check that its directory exists and is writable"),
            };
            StoreError::new(
                error.kind(),
                format!("cannot {verb} `{}`: {error}; {fix}", path.display()),
            )
        };
        create_private(path).map_err(cannot)?;
        let mut writer = open_connection(path).map_err(|e| cannot(e.into()))?;
        writer
            .pragma_update(None, "cache_size", WRITER_CACHE_KIB)
            .map_err(|e| cannot(e.into()))?;
        if writer.is_readonly("main").map_err(|e| cannot(e.into()))? {
            return Err(cannot(StoreError::new(ErrorKind::ReadOnly, "the file is read-only")));
        }
        // Migrating always writes (the schema version is stored again), so a
        // file that cannot be written fails here, not at the first logout.
        migrate::migrate(&mut writer).map_err(cannot)?;

        let manager = SqliteConnectionManager::file(path).with_init(configure);
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .connection_timeout(BUSY_TIMEOUT)
            .build(manager)
            .map_err(|e| cannot(e.into()))?;
        let watch = open_connection(path).map_err(|e| cannot(e.into()))?;
        let shared = Arc::new(Shared {
            watch: Mutex::new((watch, 0)),
            path: path.to_path_buf(),
            identity: FileIdentity::of(path),
            lost: AtomicBool::new(false),
            pool,
            writer: Mutex::new(writer),
            queue: Mutex::default(),
            checkpointing: Mutex::new(()),
        });
        start_checkpointer(&shared).map_err(cannot)?;
        Ok(SqliteStore { shared })
    }

    /// Runs `work` in a savepoint of the next batch's transaction and gives its
    /// result once that transaction is committed (see the module docs). An
    /// error of `work` rolls back its own changes only.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = rocket::tokio::sync::oneshot::channel();
        let start_batches = {
            let mut queue = lock(&self.shared.queue);
            queue.writes.push(Box::new(Pending { work, reply }));
            !std::mem::replace(&mut queue.running, true)
        };
        if start_batches {
            let shared = self.shared.clone();
            rocket::tokio::task::spawn_blocking(move || shared.run_batches());
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::new(
                ErrorKind::Other,
                "the batch running this write stopped before answering; see the log",
            ))
        })
    }

    /// Runs `work` on a pooled reading connection, on Tokio's blocking pool.
    pub(crate) async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Reader<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let shared = self.shared.clone();
        rocket::tokio::task::spawn_blocking(move || {
            shared.ensure_file()?;
            let connection = shared.pool.get()?;
            work(&Reader(&connection))
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::new(ErrorKind::Other, format!("a store read failed: {e}"))))
    }
}

impl SessionStore for SqliteStore {
    fn create_session(&self, session: NewSession) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |tx| tx.create_session(&session)))
    }

    fn refresh(&self, refresh: RefreshRequest) -> StoreFuture<'_, Option<(RefreshState, Decision)>> {
        Box::pin(self.write(move |tx| tx.refresh(&refresh)))
    }

    fn revoke(&self, revocation: Revocation, now: i64) -> StoreFuture<'_, Vec<String>> {
        Box::pin(self.write(move |tx| match &revocation {
            Revocation::Session {
                session_id,
                reason,
                blocklist,
            } => {
                let blocklist = blocklist.as_ref().map(|(jti, exp)| (jti.as_str(), *exp));
                let live = tx.revoke_session(session_id, now, reason, blocklist)?;
                Ok(if live { vec![session_id.clone()] } else { Vec::new() })
            }
            Revocation::UserSessions {
                user_id,
                keep,
                reason,
                blocklist,
            } => {
                let blocklist = blocklist.as_ref().map(|(jti, exp)| (jti.as_str(), *exp));
                tx.revoke_user_sessions(user_id, keep.as_deref(), now, reason, blocklist)
            }
            Revocation::OwnSession { user_id, session_id } => {
                let live = tx.revoke_own_session(user_id, session_id, now)?;
                Ok(if live { vec![session_id.clone()] } else { Vec::new() })
            }
        }))
    }

    fn update_claims(&self, user_id: String, claims_json: String) -> StoreFuture<'_, usize> {
        Box::pin(self.write(move |tx| tx.update_claims(&user_id, &claims_json)))
    }

    fn active_sessions(&self, user_id: String, now: i64) -> StoreFuture<'_, Vec<SessionRecord>> {
        Box::pin(self.read(move |reader| reader.active_sessions(&user_id, now)))
    }

    fn session_data(&self, session_id: String, now: i64) -> StoreFuture<'_, Option<String>> {
        Box::pin(self.read(move |reader| reader.session_data(&session_id, now)))
    }

    fn update_session_data(&self, session_id: String, now: i64, update: DataUpdate) -> StoreFuture<'_, Option<bool>> {
        Box::pin(self.write(move |tx| tx.update_session_data(&session_id, now, update)))
    }

    fn count_attempt(&self, attempt: Attempt) -> StoreFuture<'_, Result<(), ThrottledUntil>> {
        Box::pin(self.write(move |tx| {
            tx.count_attempt(
                &attempt.scopes,
                attempt.now,
                attempt.window,
                attempt.known_since,
                attempt.capacity,
            )
        }))
    }

    fn credentials_passed(&self, passed: PassedCredentials) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |tx| {
            tx.forget_failures(&passed.forget)?;
            for scope in &passed.uncount {
                tx.uncount_attempt(scope, passed.now, passed.window)?;
            }
            tx.remember_network(&passed.known_network, passed.now, passed.capacity)
        }))
    }

    fn prune_batch(
        &self,
        kind: PruneKind,
        cutoffs: PruneCutoffs,
        after: i64,
        batch: u32,
    ) -> StoreFuture<'_, PrunedBatch> {
        Box::pin(self.write(move |tx| tx.prune(kind, cutoffs, after, batch)))
    }

    fn prune_turn(&self) -> StoreFuture<'_, Option<PruneTurn>> {
        // Two processes pruning one file take turns batch by batch at the
        // write lock, and a batch deletes only what is already dead.
        Box::pin(async { Ok(Some(Box::new(()) as PruneTurn)) })
    }

    fn end_prune_turn(&self, _turn: PruneTurn) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }

    fn load_revocations(&self) -> StoreFuture<'_, RevocationSnapshot> {
        Box::pin(self.read(|reader| reader.revocations()))
    }

    fn revocations_after(&self, cursor: i64, limit: u32) -> StoreFuture<'_, FeedPage> {
        Box::pin(self.read(move |reader| reader.revocations_after(cursor, limit)))
    }

    fn wait_for_revocations(&self, at_most: Duration) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let deadline = std::time::Instant::now() + at_most;
            loop {
                let shared = self.shared.clone();
                let changed = rocket::tokio::task::spawn_blocking(move || shared.data_changed())
                    .await
                    .unwrap_or_else(|e| Err(StoreError::other(format!("asking data_version failed: {e}"))))?;
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if changed || left.is_zero() {
                    return Ok(());
                }
                rocket::tokio::time::sleep(left.min(DATA_VERSION_POLL)).await;
            }
        })
    }
}

impl Shared {
    /// Whether a connection other than the watching one committed since the
    /// last call: SQLite's `data_version`, a read of shared memory.
    fn data_changed(&self) -> Result<bool, StoreError> {
        self.ensure_file()?;
        let mut watch = lock(&self.watch);
        let version: i64 = watch
            .0
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |row| row.get(0))?;
        Ok(std::mem::replace(&mut watch.1, version) != version)
    }

    /// Runs batches until no write is waiting.
    fn run_batches(&self) {
        // Should this thread unwind, the next write starts another runner
        // (the writes it held are dropped, which answers them with an error).
        struct Runner<'a>(&'a Shared);
        impl Drop for Runner<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    lock(&self.0.queue).running = false;
                }
            }
        }
        let _runner = Runner(self);
        loop {
            let writes = {
                let mut queue = lock(&self.queue);
                if queue.writes.is_empty() {
                    queue.running = false;
                    return;
                }
                std::mem::take(&mut queue.writes)
            };
            let mut connection = lock(&self.writer);
            if let Err(error) = self.run_batch(&mut connection, writes) {
                BATCH_FAILURES.log(log::Level::Error, format_args!("a batch of writes failed: {error}"));
            }
            self.bound_wal(&connection);
        }
    }

    /// Runs `writes` in one transaction and answers each; the error is the
    /// batch's own failure, for the log.
    fn run_batch(&self, connection: &mut Connection, writes: Vec<Box<dyn PendingWrite>>) -> Result<(), StoreError> {
        let fail_all = |writes: Vec<Box<dyn PendingWrite>>, error: &StoreError| {
            for write in writes {
                write.fail(error.clone());
            }
        };
        if let Err(error) = self.ensure_file() {
            // Logged once, when the loss was found.
            fail_all(writes, &error);
            return Ok(());
        }
        let transaction = match connection.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(transaction) => transaction,
            Err(error) => {
                let error = StoreError::from(error);
                fail_all(writes, &error);
                return Err(error);
            }
        };
        let mut answers = Vec::with_capacity(writes.len());
        let mut writes = writes.into_iter();
        for write in writes.by_ref() {
            answers.push(write.run(&transaction));
            // Some failures (a full disk, an I/O error) make SQLite roll back
            // the whole transaction: what ran so far is gone, and what follows
            // would run outside any transaction.
            if transaction.is_autocommit() {
                let error = StoreError::new(
                    ErrorKind::Other,
                    "SQLite rolled the batch back after a failing write (full disk or I/O error?)",
                );
                for answer in answers {
                    answer(Err(&error));
                }
                fail_all(writes.collect(), &error);
                return Err(error);
            }
        }
        let committed = transaction.commit().map_err(StoreError::from);
        for answer in answers {
            answer(committed.as_ref().map(|_| ()));
        }
        committed
    }

    /// Finishes the checkpoint when the WAL has passed its limit (see the
    /// module docs).
    fn bound_wal(&self, connection: &Connection) {
        if wal_bytes(&self.path) <= WAL_LIMIT_BYTES {
            return;
        }
        let _only_checkpoint = lock(&self.checkpointing);
        match checkpoint(connection) {
            Ok((frames, copied)) if copied < frames => log::debug!(
                "rocket_sqlite_sessions: WAL catch-up left {} of {frames} frames to readers",
                frames - copied
            ),
            Ok(_) => {}
            Err(error) => CHECKPOINT_FAILURES.log(log::Level::Warn, format_args!("WAL checkpoint failed: {error}")),
        }
    }

    /// `Ok` while the path names the file opened at launch.
    fn ensure_file(&self) -> Result<(), StoreError> {
        if !self.lost.load(Ordering::SeqCst) && FileIdentity::of(&self.path) == self.identity {
            return Ok(());
        }
        let message = format!(
            "the database file `{}` was deleted or replaced while the app was running; every read and \
             write now fails (503) so that none is lost silently. Put the file back and restart the app",
            self.path.display()
        );
        if !self.lost.swap(true, Ordering::SeqCst) {
            log::error!("rocket_sqlite_sessions: {message}");
        }
        Err(StoreError::new(ErrorKind::Other, message))
    }
}

/// The device and inode a path names (its existence elsewhere than on Unix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    #[cfg(unix)]
    device: u64,
    #[cfg(unix)]
    inode: u64,
}

impl FileIdentity {
    fn of(path: &Path) -> Option<FileIdentity> {
        let metadata = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Some(FileIdentity {
                device: metadata.dev(),
                inode: metadata.ino(),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = metadata;
            Some(FileIdentity {})
        }
    }
}

/// Creates `path` empty with mode 0600 when it does not exist (SQLite would
/// create it 0644); warns when an existing file is open to other users.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let io_error = |error: std::io::Error| {
        let kind = match error.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => ErrorKind::ReadOnly,
            _ => ErrorKind::Other,
        };
        StoreError::new(kind, error.to_string())
    };
    match std::fs::metadata(path) {
        Ok(metadata) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = metadata.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    log::warn!(
                        "rocket_sqlite_sessions: `{}` can be read or written by other users (mode {mode:o}); \
                         it holds session data: `chmod 600` it",
                        path.display()
                    );
                }
            }
            #[cfg(not(unix))]
            let _ = metadata;
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            match options.open(path) {
                Ok(_) => Ok(()),
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                Err(error) => Err(io_error(error)),
            }
        }
        Err(error) => Err(io_error(error)),
    }
}

/// A connection to `path`, configured.
fn open_connection(path: &Path) -> Result<Connection, rusqlite::Error> {
    let mut connection = Connection::open(path)?;
    configure(&mut connection)?;
    Ok(connection)
}

/// Per-connection settings: WAL so readers never wait on the writer, NORMAL sync
/// (durable across application crashes; WAL keeps the file consistent across power
/// loss), no automatic checkpoints (see the module docs), and a WAL file cut
/// back to [`WAL_LIMIT_BYTES`] when it restarts.
fn configure(connection: &mut Connection) -> Result<(), rusqlite::Error> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    connection.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA wal_autocheckpoint = 0;
         PRAGMA journal_size_limit = {WAL_LIMIT_BYTES};"
    ))
}

/// The size of the `-wal` file beside `database`; 0 when there is none.
fn wal_bytes(database: &Path) -> u64 {
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).map_or(0, |metadata| metadata.len())
}

/// One passive checkpoint: the frames in the WAL and those copied back.
fn checkpoint(connection: &Connection) -> rusqlite::Result<(i64, i64)> {
    connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get(1)?, row.get(2)?))
    })
}

/// Starts the thread that checkpoints the WAL and checks the file in the
/// background. It ends once the store is dropped, with a last checkpoint.
fn start_checkpointer(shared: &Arc<Shared>) -> Result<(), StoreError> {
    let connection = open_connection(&shared.path)?;
    let store: Weak<Shared> = Arc::downgrade(shared);
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while let Some(shared) = store.upgrade() {
                if shared.ensure_file().is_ok() {
                    let _only_checkpoint = lock(&shared.checkpointing);
                    if let Err(error) = checkpoint(&connection) {
                        CHECKPOINT_FAILURES.log(log::Level::Warn, format_args!("WAL checkpoint failed: {error}"));
                    }
                }
                drop(shared);
                std::thread::sleep(CHECKPOINT_EVERY);
            }
            let _ = connection.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
        })
        .map_err(|e| {
            StoreError::new(
                ErrorKind::Other,
                format!("cannot start the WAL checkpointer thread: {e}"),
            )
        })?;
    Ok(())
}

/// Runs `work` in a savepoint of the open transaction: on error (or panic),
/// only its own changes are rolled back.
fn in_savepoint<T>(
    connection: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // Cached: parsing these for every write of a batch showed in profiles.
    connection.prepare_cached("SAVEPOINT batched_write")?.execute([])?;
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| work(connection))).unwrap_or_else(|_| {
        Err(StoreError::new(
            ErrorKind::Other,
            "a write panicked; its changes were rolled back",
        ))
    });
    match outcome {
        Ok(value) => {
            connection.prepare_cached("RELEASE batched_write")?.execute([])?;
            Ok(value)
        }
        Err(error) => {
            if !connection.is_autocommit() {
                let _ = connection.execute_batch("ROLLBACK TO batched_write; RELEASE batched_write");
            }
            Err(error)
        }
    }
}

/// Locks `mutex`; a panic while it was held cannot leave its data half-updated
/// here (each holder replaces or takes whole values), so poisoning is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocklist(tx: &Tx<'_>, jti: &str) -> Result<(), StoreError> {
        tx.0.execute("INSERT INTO revoked_tokens (jti, expires_at) VALUES (?1, 1)", [jti])?;
        Ok(())
    }

    #[rocket::async_test]
    async fn a_failing_batched_write_rolls_back_only_its_own_changes() {
        let directory = std::env::temp_dir().join(format!("rss-batch-{}", crate::token::random_id()));
        std::fs::create_dir_all(&directory).unwrap();
        let store = SqliteStore::open(&directory.join("sessions.db")).unwrap();
        let writes = (0..32).map(|n| {
            let store = store.clone();
            rocket::tokio::spawn(async move {
                store
                    .write(move |tx| {
                        blocklist(tx, &format!("jti-{n}"))?;
                        match n % 4 {
                            1 => Err(StoreError::new(ErrorKind::Other, "a failing write")),
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
            .read(|reader| {
                Ok(reader
                    .0
                    .prepare("SELECT jti FROM revoked_tokens ORDER BY CAST(substr(jti, 5) AS INTEGER)")?
                    .query_map([], |row| row.get(0))?
                    .collect::<Result<_, _>>()?)
            })
            .await
            .unwrap();
        let expected: Vec<String> = (0..32)
            .filter(|n| n % 4 == 0 || n % 4 == 3)
            .map(|n| format!("jti-{n}"))
            .collect();
        assert_eq!(kept, expected);
        // The writer still works after a panic.
        assert_eq!(store.write(|_| Ok(7)).await.unwrap(), 7);
        drop(store);
        let _ = std::fs::remove_dir_all(directory);
    }
}
