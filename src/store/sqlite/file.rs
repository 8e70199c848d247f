//! The SQLite file itself: created private, its WAL kept bounded, watched
//! for deletion or replacement.
//!
//! Checkpoints are automatic in SQLite only when a commit finds the WAL long,
//! and then that commit pays for them. Here a background thread checkpoints
//! every 200 ms without blocking writes (`PASSIVE`); but under steady writes it
//! never catches up, and SQLite restarts the WAL from its start only when a
//! write begins with every frame copied back. So once the WAL holds [`WAL_RESTART_FRAMES`]
//! frames (SQLite's own `wal_autocheckpoint` default), or after
//! [`WAL_RESTART_BATCHES`] of the writer's batches, the writing thread itself
//! finishes the checkpoint between two batches, when no write of this process
//! can add frames; the next batch then restarts the WAL and SQLite cuts the
//! file back to [`WAL_LIMIT_BYTES`] (`journal_size_limit`). The file stays
//! within about 4 MiB plus one batch, unless a reader holds an old snapshot.
//! The count of batches bounds what commits and reads walk in `-shm`: a chain
//! of every version of a page the WAL holds, one a batch at most. A session's
//! page rewritten by each of 1,000 refreshes cost each 4,800 instructions
//! there, 900 with 128 batches; under load a batch writes many pages, and the
//! frames' bound comes first, so checkpoints (and their `fsync`s) come no
//! more often than before.
//! The frames are counted by SQLite at each commit (its WAL hook, which
//! counts every connection's frames, another process's too): no `stat` of
//! the file for each batch.
//!
//! Before each batch (and every 200 ms) the path is
//! checked to still name the file opened at launch; once it is deleted or
//! replaced, every read and write fails with a [`StoreError`] (503) instead of
//! going to a file nobody will open again, and one error line is logged.
//!
//! Files are created readable and writable by their owner only (0600); SQLite
//! gives the `-wal` and `-shm` files the database file's mode.
//!
//! **The `-shm` file** is SQLite's shared-memory index of the WAL, mapped into
//! every connection's memory and written through that mapping by readers and
//! the writer alike. Once the kernel refuses writes to it (`chattr +i`, a mount
//! made read-only), a write through the mapping is not an error SQLite could
//! answer: the kernel kills the process with `SIGBUS`. So launch fails when
//! `-shm` or `-wal` exists and cannot be written or has another owner than the
//! database file, and while running the same check (`access(W_OK)`, which opens
//! nothing: closing a descriptor of the file would drop SQLite's locks on it)
//! runs before each write batch, each read and every 200 ms; once it fails,
//! every read and write answers 503, one error line names the file, and
//! nothing touches the mapping again. A change that lands between the check
//! and the write (microseconds) still ends the process with `SIGBUS`; nothing
//! acknowledged is lost, and the restart fails launch naming the file.

use std::cell::Cell;
use std::ffi::c_int;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, Weak};
use std::time::Duration;

use rusqlite::hooks::Wal;
use rusqlite::Connection;

use super::identity::{companion, FileIdentity, WatchedPath};
use super::{lock, Shared, BUSY_TIMEOUT, STATEMENT_CACHE};
use crate::log_limit::LogLimit;
use crate::store::{Durability, ErrorKind, StoreError};

/// How often the background checkpointer copies the WAL into the database and
/// checks that the file is still there.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// The `-wal` file is cut back to this size when it restarts.
pub(crate) const WAL_LIMIT_BYTES: u64 = 16 * 1024 * 1024;
/// Past this many frames the writer checkpoints the WAL (see the module docs).
pub(crate) const WAL_RESTART_FRAMES: u64 = 1000;
/// After this many of the writer's batches the writer checkpoints the WAL
/// however few frames it holds (see the module docs).
pub(crate) const WAL_RESTART_BATCHES: u32 = 128;

/// Repeated failures of the background checkpointer.
static CHECKPOINT_FAILURES: LogLimit = LogLimit::new();

thread_local! {
    /// The frames in the WAL after this thread's last commit on a writing
    /// connection, as SQLite's WAL hook told; taken by [`Shared::bound_wal`].
    static WAL_FRAMES: Cell<c_int> = const { Cell::new(0) };
}

/// The WAL hook of the writing connection (see [`count_wal_frames`]).
fn note_wal_frames(_: &Wal, frames: c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.set(frames);
    Ok(())
}

/// Has SQLite count the WAL's frames at each commit of `connection`, for
/// [`Shared::bound_wal`]; gives the frames the WAL may hold ([`WAL_RESTART_FRAMES`],
/// fewer for huge pages). After [`configure`], which would remove the hook.
pub(super) fn count_wal_frames(connection: &Connection) -> rusqlite::Result<u64> {
    let page_bytes: i64 = connection.pragma_query_value(None, "page_size", |row| row.get(0))?;
    connection.wal_hook(Some(note_wal_frames));
    // Each frame is a page and its 24-byte header.
    Ok((WAL_LIMIT_BYTES / (page_bytes.unsigned_abs() + 24)).min(WAL_RESTART_FRAMES))
}

impl Shared {
    /// Finishes the checkpoint when the WAL has passed
    /// [`WAL_RESTART_FRAMES`], or after [`WAL_RESTART_BATCHES`] batches that
    /// committed (see the module docs). Runs on the thread that ran the batch.
    pub(super) fn bound_wal(&self, connection: &Connection) {
        let frames = u64::try_from(WAL_FRAMES.replace(0)).unwrap_or(0);
        if frames == 0 {
            return;
        }
        let batches = self.wal_batches.fetch_add(1, Ordering::Relaxed) + 1;
        if frames <= self.wal_frame_limit && batches < WAL_RESTART_BATCHES {
            return;
        }
        self.wal_batches.store(0, Ordering::Relaxed);
        let _only_checkpoint = lock(&self.checkpointing);
        // A checkpoint writes the -shm mapping: not once it cannot be written.
        if writable_in_place(&self.companions.shm_path).is_err() {
            return;
        }
        match checkpoint(connection) {
            Ok((frames, copied)) if copied < frames => log::debug!(
                "rocket_sqlite_sessions: WAL catch-up left {} of {frames} frames to readers",
                frames - copied
            ),
            Ok(_) => {}
            Err(error) => CHECKPOINT_FAILURES.log(log::Level::Warn, format_args!("WAL checkpoint failed: {error}")),
        }
    }

    /// `Ok` while the path names the file opened at launch, its `-wal` and
    /// `-shm` files are the ones opened with it, and `-shm` can be written
    /// (see the module docs). `connection` is one of this process's: should
    /// `-wal` have been deleted or replaced, it copies what the WAL it still
    /// holds open has into the database file first (a full checkpoint), so
    /// that nothing answered is lost with the deleted file.
    pub(super) fn ensure_file(&self, connection: &Connection) -> Result<(), StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::new(
                ErrorKind::Other,
                "the sessions database was closed: the app is shutting down",
            ));
        }
        let message = if self.lost.load(Ordering::SeqCst) {
            None
        } else if FileIdentity::of(&self.path) != self.identity {
            Some(format!(
                "the database file `{}` was deleted or replaced while the app was running; every read and \
                 write now fails (503) so that none is lost silently. Put the file back and restart the app",
                self.path.display()
            ))
        } else if self.companions.shm.is_some() && FileIdentity::of(&self.companions.shm_path) != self.companions.shm {
            Some(format!(
                "`{}-shm` (SQLite's shared-memory index of the WAL, which every process using the database \
                 shares) was deleted or replaced while the app was running; every read and write now fails \
                 (503), since processes that no longer share it would corrupt the database. Stop every \
                 process using the database, then start them again",
                self.path.display()
            ))
        } else if self.companions.wal.is_some() && FileIdentity::of(&self.companions.wal_path) != self.companions.wal {
            Some(self.rescue_wal(connection))
        } else {
            let shm = &self.companions.shm_path;
            match writable_in_place(shm) {
                Ok(()) => return Ok(()),
                Err(error) => Some(format!(
                    "`{}` (SQLite's shared-memory index of the WAL) can no longer be written ({error}); \
                     every read and write now fails (503), since writing to it would kill the process \
                     (SIGBUS). Make it writable again (`chattr -i`, a writable mount) and restart the app",
                    shm.display()
                )),
            }
        };
        let first = !self.lost.swap(true, Ordering::SeqCst);
        let message = message.unwrap_or_else(|| {
            format!(
                "the database `{}` cannot be used any more (see the error logged before); restart the app",
                self.path.display()
            )
        });
        if first {
            log::error!("rocket_sqlite_sessions: {message}");
        }
        Err(StoreError::new(ErrorKind::Other, message))
    }

    /// The `-wal` file was deleted or replaced: copies what the WAL this
    /// process still holds open has into the database file (which SQLite
    /// syncs), once; gives the error line.
    fn rescue_wal(&self, connection: &Connection) -> String {
        let wal = &self.companions.wal_path;
        if self.lost.load(Ordering::SeqCst) {
            return format!("`{}` was deleted or replaced; restart the app", wal.display());
        }
        let _only_checkpoint = lock(&self.checkpointing);
        let copied = connection.query_row("PRAGMA wal_checkpoint(FULL)", [], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        });
        let outcome = match copied {
            Ok((0, frames, copied)) if frames == copied => {
                format!(
                    "the {copied} frames it held were copied into the database file first, so nothing answered is lost"
                )
            }
            Ok((_, frames, copied)) => format!(
                "only {copied} of the {frames} frames it held could be copied into the database file (a \
                 reader held them); writes answered before may be lost"
            ),
            Err(error) => format!(
                "copying the frames it held into the database file failed ({error}); writes answered \
                 before may be lost"
            ),
        };
        format!(
            "`{}` (SQLite's write-ahead log) was deleted or replaced while the app was running; {outcome}. \
             Every read and write now fails (503), since what goes on in a deleted file is lost at the \
             next stop. Restart the app (every process using the database)",
            wal.display()
        )
    }
}

/// The `-wal` and `-shm` files' paths, made once, and their identities as
/// this process opened them (`None`: not there at launch, not checked).
#[derive(Debug, Clone)]
pub(super) struct Companions {
    pub(super) wal_path: WatchedPath,
    pub(super) shm_path: WatchedPath,
    pub(super) wal: Option<FileIdentity>,
    pub(super) shm: Option<FileIdentity>,
}

impl Companions {
    pub(super) fn of(database: &Path) -> Companions {
        let (wal_path, shm_path) = (
            WatchedPath::new(companion(database, "-wal")),
            WatchedPath::new(companion(database, "-shm")),
        );
        Companions {
            wal: FileIdentity::of(&wal_path),
            shm: FileIdentity::of(&shm_path),
            wal_path,
            shm_path,
        }
    }
}

impl Drop for Shared {
    /// Closing the last connection to a WAL database checkpoints it and
    /// writes the `-shm` file: with that file unwritable, a close is SIGBUS.
    /// Then the connections are left open for the process's end instead.
    fn drop(&mut self) {
        if writable_in_place(&self.companions.shm_path).is_ok() {
            return;
        }
        log::warn!(
            "rocket_sqlite_sessions: `{}-shm` cannot be written: the database's connections are left open, \
             not closed (a close would write it)",
            self.path.display()
        );
        std::mem::forget(self.pool.get_mut().unwrap_or_else(PoisonError::into_inner).take());
        if let Ok(memory) = Connection::open_in_memory() {
            std::mem::forget(std::mem::replace(
                self.writer.get_mut().unwrap_or_else(|e| e.into_inner()),
                memory,
            ));
        }
    }
}

/// `Ok` when `path` does not exist or this process may write it: mode,
/// owner, immutable flag and mount, as `access(2)` answers, without opening
/// it (a close would release SQLite's POSIX locks on the file).
pub(super) fn writable_in_place(path: &WatchedPath) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        match rustix::fs::access(path.c_path(), rustix::fs::Access::WRITE_OK) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(errno) => Err(errno.into()),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// Launch's check of the `-wal` and `-shm` files left beside `database` (by a
/// crash, or by another process using it): each must be writable by this
/// process and have the database file's owner.
pub(super) fn check_companions(database: &Path) -> Result<(), StoreError> {
    for suffix in ["-wal", "-shm"] {
        let path = companion(database, suffix);
        let refused = |why: String| {
            StoreError::new(
                ErrorKind::ReadOnly,
                format!(
                    "cannot write `{}`: {why}; SQLite writes it beside the database (and a `-shm` that \
                     cannot be written would kill the process): give it the database file's owner and \
                     mode, clear `chattr +i`, or delete it while no process uses the database",
                    path.display()
                ),
            )
        };
        writable_in_place(&WatchedPath::new(path.clone())).map_err(|error| refused(error.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if let (Ok(file), Ok(main)) = (std::fs::metadata(&path), std::fs::metadata(database)) {
                if file.uid() != main.uid() {
                    return Err(refused(format!(
                        "it is owned by uid {}, the database file by uid {}",
                        file.uid(),
                        main.uid()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Creates `path` empty with mode 0600 when it does not exist (SQLite would
/// create it 0644); warns when an existing file is open to other users.
pub(super) fn create_private(path: &Path) -> Result<(), StoreError> {
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
pub(super) fn open_connection(path: &Path, durability: Durability) -> Result<Connection, rusqlite::Error> {
    let mut connection = Connection::open(path)?;
    configure(&mut connection, durability)?;
    Ok(connection)
}

/// Per-connection settings: WAL so readers never wait on the writer; the
/// WAL synced at every commit (`FULL`: durable across power loss) or only at
/// checkpoints (`NORMAL`: durable across the process's crashes, and the
/// file consistent across power loss), as `durability` says; no automatic
/// checkpoints (see the module docs), and a WAL file cut back to
/// [`WAL_LIMIT_BYTES`] when it restarts.
pub(super) fn configure(connection: &mut Connection, durability: Durability) -> Result<(), rusqlite::Error> {
    let synchronous = match durability {
        Durability::PowerLoss => "FULL",
        Durability::ProcessCrash => "NORMAL",
    };
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    connection.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = {synchronous};
         PRAGMA foreign_keys = ON;
         PRAGMA wal_autocheckpoint = 0;
         PRAGMA journal_size_limit = {WAL_LIMIT_BYTES};"
    ))
}

/// One passive checkpoint: the frames in the WAL and those copied back.
fn checkpoint(connection: &Connection) -> rusqlite::Result<(i64, i64)> {
    connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get(1)?, row.get(2)?))
    })
}

/// Starts the thread that checkpoints the WAL and checks the file in the
/// background. It ends once the store is closed or dropped, closing its
/// connection.
pub(super) fn start_checkpointer(shared: &Arc<Shared>) -> Result<(), StoreError> {
    let connection = open_connection(&shared.path, shared.durability)?;
    let shm = shared.companions.shm_path.clone();
    let store: Weak<Shared> = Arc::downgrade(shared);
    let thread = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            while let Some(shared) = store.upgrade() {
                if shared.closed.load(Ordering::SeqCst) {
                    break;
                }
                if shared.ensure_file(&connection).is_ok() {
                    let _only_checkpoint = lock(&shared.checkpointing);
                    // Asked again once the lock is held (waiting for it can
                    // take a while): a checkpoint writes the -shm mapping.
                    if writable_in_place(&shm).is_ok() {
                        if let Err(error) = checkpoint(&connection) {
                            CHECKPOINT_FAILURES.log(log::Level::Warn, format_args!("WAL checkpoint failed: {error}"));
                        }
                    }
                }
                drop(shared);
                std::thread::park_timeout(CHECKPOINT_EVERY);
            }
            // The close writes the -shm file: not when that would be SIGBUS
            // (see `Shared`'s `Drop`).
            if writable_in_place(&shm).is_err() {
                std::mem::forget(connection);
            }
        })
        .map_err(|e| {
            StoreError::new(
                ErrorKind::Other,
                format!("cannot start the WAL checkpointer thread: {e}"),
            )
        })?;
    *lock(&shared.checkpointer) = Some(thread);
    Ok(())
}

impl Shared {
    /// Closes the database for this process (Rocket's shutdown): waits for
    /// the batch in progress, runs the writes already queued, copies the
    /// whole WAL into the database file and empties it (`TRUNCATE`), then
    /// closes every connection, so the last process to stop leaves the
    /// database as one file (SQLite deletes `-wal` and `-shm` when its last
    /// connection closes). Every read and write after it fails (503).
    pub(super) fn close(&self) {
        let mut writer = lock(&self.writer);
        self.drain(&mut writer);
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        // Closing writes the -shm file: with it unwritable that is SIGBUS, so
        // the connections are left for the process's end (see `Drop`).
        if writable_in_place(&self.companions.shm_path).is_err() {
            return;
        }
        if !self.lost.load(Ordering::SeqCst) {
            let _only_checkpoint = lock(&self.checkpointing);
            if let Err(error) = writer.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
                log::warn!("rocket_sqlite_sessions: the last WAL checkpoint failed: {error}");
            }
        }
        if let Some(thread) = lock(&self.checkpointer).take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
        // Idle connections close now; one in use by a read closes when the
        // read gives it back.
        drop(self.pool.write().unwrap_or_else(PoisonError::into_inner).take());
        if let Ok(memory) = Connection::open_in_memory() {
            drop(std::mem::replace(&mut *writer, memory));
        }
    }
}
