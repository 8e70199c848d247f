//! The SQLite backend: every SQL statement for SQLite and every rusqlite call
//! of the crate.
//!
//! - [`writer`]: one write path. Every write is a closure queued with
//!   [`SqliteStore::write`], run with the writes waiting beside it in one
//!   transaction (group commit) and answered once it is durable. Reads run on
//!   a pool of connections beside it (WAL lets them run during a write).
//! - [`file`]: the file itself, created 0600, its WAL bounded, it and its
//!   `-wal` and `-shm` watched for deletion or replacement, closed at
//!   shutdown.
//! - [`identity`]: what a path names (device, inode); at launch, a `-wal`
//!   written for another file (the database was restored from a copy) is
//!   moved aside, never replayed.
//! - [`sessions`], [`refresh`], [`failures`], [`prune`], [`migrate`]: the
//!   statements, as the PostgreSQL backend has them; [`refresh`] also
//!   decides a session's next rotation from the row the writer wrote last,
//!   compared with the row as it is by the rotation's `UPDATE`.

mod bound;
mod failures;
mod file;
mod identity;
mod migrate;
mod prune;
mod refresh;
mod sessions;
mod writer;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, ErrorCode};

use crate::rotation::{Decision, RefreshState};
use crate::store::{
    Attempt, Counted, Created, DataUpdate, Durability, ErrorKind, FeedPage, NewSession, PassedCredentials,
    PruneCutoffs, PruneKind, PruneTurn, PrunedBatch, RefreshRequest, Revocation, RevocationSnapshot, SessionRecord,
    SessionStore, StoreError, StoreFuture, ThrottledUntil,
};
use file::{
    check_companions, configure, count_wal_frames, create_private, open_connection, start_checkpointer, Companions,
};
use identity::{set_aside_foreign_companions, tag_file, FileIdentity, LaunchLock, WatchedPath};
use writer::Queue;
pub(crate) use writer::Tx;

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
/// How often the revocation feed asks `data_version` whether anything was
/// committed: a revocation in another process reaches this one within about
/// this long plus one read.
const DATA_VERSION_POLL: Duration = Duration::from_millis(100);

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
    path: WatchedPath,
    /// What the path named at launch.
    identity: Option<FileIdentity>,
    /// The `-wal` and `-shm` files opened with it.
    companions: Companions,
    /// Set once the path no longer names that file, or a companion changed.
    lost: AtomicBool,
    /// Set at shutdown, once every connection is closed (see `close`).
    closed: AtomicBool,
    /// What a commit survives.
    durability: Durability,
    /// The reading connections; `None` once closed.
    pool: RwLock<Option<r2d2::Pool<SqliteConnectionManager>>>,
    /// The background checkpointer, joined at `close`.
    checkpointer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The one writing connection: only the thread running batches takes it.
    writer: Mutex<Connection>,
    /// Writes waiting for the next batch, and whether a thread runs batches.
    queue: Mutex<Queue>,
    /// Held for each checkpoint: the background one and the writer's catch-up.
    checkpointing: Mutex<()>,
    /// The WAL frames past which the writer finishes a checkpoint.
    wal_frame_limit: u64,
    /// The writer's batches that committed since its last checkpoint.
    wal_batches: AtomicU32,
    /// The writing connection's last `PRAGMA data_version`: it changes when
    /// any other connection (another process's) commits, never for this
    /// process's own writes, whose revocations are in memory before their
    /// call returns: the feed is read only when someone else wrote.
    seen_version: AtomicI64,
    /// The session rows the writer wrote at its last rotations, which the
    /// next refreshes are decided from and compared with (see [`refresh`]).
    guesses: refresh::Guesses,
    /// The database file, opened once before any connection to read its
    /// header, and closed after them (declared last, so dropped last):
    /// closing any descriptor of the file releases every POSIX lock the
    /// process holds on it, SQLite's included, after which another process
    /// closing its connection (the `sqlite3` shell, a second worker
    /// stopping) believes it is the last one and deletes `-wal` and `-shm`
    /// from under this one.
    _header_reader: std::fs::File,
}

/// A pooled reading connection: the operations a [`SqliteStore::read`] closure can
/// run.
pub(crate) struct Reader<'c>(pub(super) &'c Connection);

impl SqliteStore {
    /// Opens (creating if needed, mode 0600) and migrates the file at `path`,
    /// and checks that it can be written. Errors name the path and say what to
    /// check.
    pub(crate) fn open(path: &Path, durability: Durability) -> Result<SqliteStore, StoreError> {
        let cannot = |error: StoreError| {
            let (verb, fix) = match error.kind() {
                ErrorKind::Schema => return error,
                ErrorKind::ReadOnly => (
                    "write",
                    "check that the file and its directory are writable by this process and not on a \
                     read-only mount",
                ),
                ErrorKind::Other | ErrorKind::Conflict => ("open", "check that its directory exists and is writable"),
            };
            StoreError::new(
                error.kind(),
                format!("cannot {verb} `{}`: {error}; {fix}", path.display()),
            )
        };
        // Until the file is tagged, another process starting beside waits.
        let _launch = LaunchLock::take(path);
        create_private(path).map_err(cannot)?;
        // Their own messages name the file.
        let header_reader =
            std::fs::File::open(path).map_err(|error| cannot(StoreError::new(ErrorKind::Other, error.to_string())))?;
        set_aside_foreign_companions(path, &header_reader)?;
        check_companions(path)?;
        let mut writer = open_connection(path, durability).map_err(|e| cannot(e.into()))?;
        writer
            .pragma_update(None, "cache_size", WRITER_CACHE_KIB)
            .map_err(|e| cannot(e.into()))?;
        // Each write of a batch but the first runs in a savepoint, whose undo copies of the
        // pages it changes SQLite keeps in a sub-journal. On a file it starts
        // as one 64 KiB buffer, allocated and freed again for every write;
        // in memory it grows in 1 KiB pieces, as many as the pages changed.
        writer
            .pragma_update(None, "temp_store", "MEMORY")
            .map_err(|e| cannot(e.into()))?;
        if writer.is_readonly("main").map_err(|e| cannot(e.into()))? {
            return Err(cannot(StoreError::new(ErrorKind::ReadOnly, "the file is read-only")));
        }
        // Migrating always writes (the schema version is stored again), so a
        // file that cannot be written fails here, not at the first logout.
        migrate::migrate(&mut writer).map_err(cannot)?;
        tag_file(&writer, path, &header_reader)?;
        let wal_frame_limit = count_wal_frames(&writer).map_err(|e| cannot(e.into()))?;

        let manager = SqliteConnectionManager::file(path).with_init(move |c| configure(c, durability));
        // Connections stay open: a new one made after `-wal` was deleted
        // would start another WAL beside the one the others still use.
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .idle_timeout(None)
            .max_lifetime(None)
            .connection_timeout(BUSY_TIMEOUT)
            .build(manager)
            .map_err(|e| cannot(e.into()))?;
        let watched = WatchedPath::new(path.to_path_buf());
        let shared = Arc::new(Shared {
            seen_version: AtomicI64::new(0),
            guesses: refresh::Guesses::default(),
            identity: FileIdentity::of(&watched),
            path: watched,
            companions: Companions::of(path),
            lost: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            durability,
            pool: RwLock::new(Some(pool)),
            checkpointer: Mutex::new(None),
            writer: Mutex::new(writer),
            queue: Mutex::default(),
            checkpointing: Mutex::new(()),
            wal_frame_limit,
            wal_batches: AtomicU32::new(0),
            _header_reader: header_reader,
        });
        start_checkpointer(&shared).map_err(cannot)?;
        Ok(SqliteStore { shared })
    }

    /// Runs `work` on a pooled reading connection, on Tokio's blocking pool.
    pub(crate) async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Reader<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let shared = self.shared.clone();
        rocket::tokio::task::spawn_blocking(move || {
            let connection = shared.reader()?;
            shared.ensure_file(&connection)?;
            work(&Reader(&connection))
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::new(ErrorKind::Other, format!("a store read failed: {e}"))))
    }
}

impl SessionStore for SqliteStore {
    fn create_session(&self, session: NewSession) -> StoreFuture<'_, Created> {
        Box::pin(self.write(move |tx| tx.create_session(&session)))
    }

    fn refresh(&self, refresh: RefreshRequest) -> StoreFuture<'_, Option<(RefreshState, Decision)>> {
        let shared = Arc::clone(&self.shared);
        Box::pin(self.write(move |tx| tx.refresh(&refresh, &shared.guesses)))
    }

    fn revoke(&self, revocation: Revocation, now: i64) -> StoreFuture<'_, Vec<String>> {
        Box::pin(self.write(move |tx| tx.revoke(&revocation, now)))
    }

    fn session_user(&self, session_id: String) -> StoreFuture<'_, Option<(String, i64)>> {
        Box::pin(self.read(move |reader| reader.session_user(&session_id)))
    }

    fn bind_device(&self, session_id: String, thumbprint: String, key: String, now: i64) -> StoreFuture<'_, bool> {
        Box::pin(self.write(move |tx| tx.bind_device(&session_id, &thumbprint, &key, now)))
    }

    fn device_key(&self, session_id: String) -> StoreFuture<'_, Option<String>> {
        Box::pin(self.read(move |reader| reader.device_key(&session_id)))
    }

    fn end_every_session(&self, now: i64) -> StoreFuture<'_, Vec<(String, String)>> {
        Box::pin(self.write(move |tx| tx.end_every_session(now)))
    }

    fn update_claims(&self, user_id: String, claims_json: String, now: i64) -> StoreFuture<'_, usize> {
        Box::pin(self.write(move |tx| tx.update_claims(&user_id, &claims_json, now)))
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

    fn set_session_label(
        &self,
        user_id: String,
        session_id: String,
        label: Option<String>,
        now: i64,
    ) -> StoreFuture<'_, bool> {
        Box::pin(self.write(move |tx| tx.set_session_label(&user_id, &session_id, label.as_deref(), now)))
    }

    fn count_attempt(&self, attempt: Attempt) -> StoreFuture<'_, Result<Counted, ThrottledUntil>> {
        Box::pin(self.write(move |tx| tx.count_attempt(&attempt)))
    }

    fn attempt_failed(&self, pending: i64) -> StoreFuture<'_, ()> {
        Box::pin(self.write(move |tx| tx.end_pending(pending).map(|_| ())))
    }

    fn take_back_pending(&self, now: i64, window: i64) -> StoreFuture<'_, usize> {
        Box::pin(self.write(move |tx| tx.take_back_pending(now, window)))
    }

    fn cutoff_mark(&self) -> StoreFuture<'_, i64> {
        Box::pin(self.read(|reader| reader.cutoff_mark()))
    }

    fn credentials_passed(&self, passed: PassedCredentials) -> StoreFuture<'_, bool> {
        Box::pin(self.write(move |tx| tx.credentials_passed(&passed)))
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

    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.close_file())
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

impl SqliteStore {
    /// Closes the file for this process at shutdown (see `Shared::close`),
    /// on a blocking thread.
    async fn close_file(&self) {
        let shared = self.shared.clone();
        let _ = rocket::tokio::task::spawn_blocking(move || shared.close()).await;
    }
}

impl Shared {
    /// A pooled reading connection.
    fn reader(&self) -> Result<r2d2::PooledConnection<SqliteConnectionManager>, StoreError> {
        let pool = self.pool.read().unwrap_or_else(PoisonError::into_inner).clone();
        match pool {
            Some(pool) => Ok(pool.get()?),
            None => Err(StoreError::new(
                ErrorKind::Other,
                "the sessions database was closed: the app is shutting down",
            )),
        }
    }

    /// Whether a connection other than the writing one (another process's)
    /// committed since the last call: SQLite's `data_version` on the
    /// writing connection, a read of shared memory, between two batches.
    fn data_changed(&self) -> Result<bool, StoreError> {
        let version: i64 = {
            let writer = lock(&self.writer);
            self.ensure_file(&writer)?;
            let version = writer
                .prepare_cached("PRAGMA data_version")?
                .query_row([], |row| row.get(0))?;
            version
        };
        Ok(self.seen_version.swap(version, Ordering::Relaxed) != version)
    }
}

/// Locks `mutex`; a panic while it was held cannot leave its data half-updated
/// here (each holder replaces or takes whole values), so poisoning is ignored.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
