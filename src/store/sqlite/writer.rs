//! The SQLite backend's one write path.
//!
//! Every write (login, refresh, logout, revocations,
//! failure counts, session data, prune batches) is a closure queued with
//! [`SqliteStore::write`]. One blocking thread at a time takes all the writes
//! waiting and runs them on the one writing connection, in one
//! `BEGIN IMMEDIATE` transaction (group commit), and answers each once the
//! commit is known: no caller hears `Ok` for a write that is not durable, and
//! an error or a panic in one write rolls back that write only. The first
//! write of a batch runs straight in the transaction: should it fail, the
//! transaction holds nothing else, so it is rolled back whole and the rest
//! run in a new one. Each later write runs in a savepoint of its own. Reads
//! run on a pool of connections beside it (WAL lets them run during a
//! write), on Tokio's blocking pool.

use std::panic::AssertUnwindSafe;

use rusqlite::Connection;

use super::{lock, Shared, SqliteStore};
use crate::log_limit::LogLimit;
use crate::store::{ErrorKind, StoreError};

/// Repeated failures of whole batches.
static BATCH_FAILURES: LogLimit = LogLimit::new();

#[derive(Default)]
pub(super) struct Queue {
    writes: Vec<Box<dyn PendingWrite>>,
    running: bool,
}

/// The writing side of a batch's transaction: the operations a [`SqliteStore::write`]
/// closure can run (see the `impl Tx` blocks of the sibling modules).
pub(crate) struct Tx<'c>(pub(super) &'c Connection);

/// A queued write, type-erased.
trait PendingWrite: Send {
    /// Runs the write in the batch's transaction, in a savepoint of its own
    /// unless it is the transaction's first (`first`); gives how to answer it
    /// once the commit is known, and whether it succeeded. A first write that
    /// failed left its changes in the transaction: the caller rolls it back.
    fn run(self: Box<Self>, connection: &Connection, first: bool) -> (Answer, bool);
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
    fn run(self: Box<Self>, connection: &Connection, first: bool) -> (Answer, bool) {
        let Pending { work, reply } = *self;
        let outcome = if first {
            caught(|| work(&Tx(connection)))
        } else {
            in_savepoint(connection, |connection| work(&Tx(connection)))
        };
        let succeeded = outcome.is_ok();
        let answer: Answer = Box::new(move |committed| {
            let _ = reply.send(match (outcome, committed) {
                (Ok(value), Ok(())) => Ok(value),
                (Ok(_), Err(error)) => Err(error.clone()),
                (Err(error), _) => Err(error),
            });
        });
        (answer, succeeded)
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

impl SqliteStore {
    /// Runs `work` in the next batch's transaction and gives its result once
    /// that transaction is committed (see the module docs). An error or a
    /// panic of `work` rolls back its own changes only.
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
}

impl Shared {
    /// Runs batches until no write is waiting.
    pub(super) fn run_batches(&self) {
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

    /// Runs the writes waiting, on `connection` (the writer, locked by the
    /// caller), until none is left: at shutdown.
    pub(super) fn drain(&self, connection: &mut Connection) {
        loop {
            let writes = std::mem::take(&mut lock(&self.queue).writes);
            if writes.is_empty() {
                return;
            }
            if let Err(error) = self.run_batch(connection, writes) {
                BATCH_FAILURES.log(log::Level::Error, format_args!("a batch of writes failed: {error}"));
            }
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
        if let Err(error) = self.ensure_file(connection) {
            // Logged once, when the loss was found.
            fail_all(writes, &error);
            return Ok(());
        }
        let mut writes = writes.into_iter();
        let mut answers = Vec::with_capacity(writes.len());
        loop {
            let transaction = match Immediate::begin(connection) {
                Ok(transaction) => transaction,
                Err(error) => {
                    let error = StoreError::from(error);
                    fail_all(writes.collect(), &error);
                    return Err(error);
                }
            };
            let Some(first) = writes.next() else {
                return Ok(());
            };
            let (answer, succeeded) = first.run(transaction.0, true);
            if !succeeded {
                // Its changes are all the transaction holds (a rollback SQLite
                // already did is not done again); its answer is its own error.
                let undone = transaction.finish().map_err(StoreError::from);
                answer(Ok(()));
                if let Err(error) = undone {
                    fail_all(writes.collect(), &error);
                    return Err(error);
                }
                if writes.len() == 0 {
                    return Ok(());
                }
                continue;
            }
            answers.push(answer);
            for write in writes.by_ref() {
                if transaction.is_autocommit() {
                    break;
                }
                answers.push(write.run(transaction.0, false).0);
            }
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
            // A `-wal` deleted during the batch is noticed before anyone
            // hears `Ok` (its frames are then copied into the file).
            let committed = transaction
                .commit()
                .map_err(StoreError::from)
                .and_then(|()| self.ensure_file(connection));
            for answer in answers {
                answer(committed.as_ref().map(|_| ()));
            }
            return committed;
        }
    }
}

/// A batch's `BEGIN IMMEDIATE` transaction on the writing connection, rolled
/// back unless committed. rusqlite's `Transaction` parses `BEGIN IMMEDIATE`
/// and `COMMIT` anew for each batch (~4,000 instructions of a refresh's
/// ~100,000, `scripts/instructions.sh`); these statements are cached.
struct Immediate<'c>(&'c Connection);

impl<'c> Immediate<'c> {
    fn begin(connection: &'c Connection) -> rusqlite::Result<Self> {
        connection.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(Immediate(connection))
    }

    fn is_autocommit(&self) -> bool {
        self.0.is_autocommit()
    }

    /// Commits; on failure the transaction is rolled back (when SQLite has
    /// not done so already).
    fn commit(self) -> rusqlite::Result<()> {
        self.0.prepare_cached("COMMIT")?.execute([]).map(drop)
    }

    /// Rolls back whatever the transaction holds (nothing when SQLite
    /// already rolled it back).
    fn finish(self) -> rusqlite::Result<()> {
        let connection = self.0;
        std::mem::forget(self);
        rollback(connection)
    }
}

impl Drop for Immediate<'_> {
    fn drop(&mut self) {
        let _ = rollback(self.0);
    }
}

/// Rolls back the open transaction of `connection`, if there is one.
fn rollback(connection: &Connection) -> rusqlite::Result<()> {
    if connection.is_autocommit() {
        return Ok(());
    }
    connection.prepare_cached("ROLLBACK")?.execute([]).map(drop)
}

/// Runs `work`, a panic of it made an error.
fn caught<T>(work: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    std::panic::catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|_| {
        Err(StoreError::new(
            ErrorKind::Other,
            "a write panicked; its changes were rolled back",
        ))
    })
}

/// Runs `work` in a savepoint of the open transaction: on error (or panic),
/// only its own changes are rolled back.
fn in_savepoint<T>(
    connection: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // Cached: parsing these for every write of a batch showed in profiles.
    connection.prepare_cached("SAVEPOINT batched_write")?.execute([])?;
    match caught(|| work(connection)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Durability;

    fn blocklist(tx: &Tx<'_>, jti: &str) -> Result<(), StoreError> {
        tx.0.execute("INSERT INTO revoked_tokens (jti, expires_at) VALUES (?1, 1)", [jti])?;
        Ok(())
    }

    /// One write for [`run_batch`]: blocklists `jti`, then succeeds (0),
    /// fails (1) or panics (2).
    fn planned(
        jti: String,
        plan: u8,
    ) -> (
        Box<dyn PendingWrite>,
        rocket::tokio::sync::oneshot::Receiver<Result<(), StoreError>>,
    ) {
        let (reply, answer) = rocket::tokio::sync::oneshot::channel();
        let work = move |tx: &Tx<'_>| {
            blocklist(tx, &jti)?;
            match plan {
                1 => Err(StoreError::new(ErrorKind::Other, "a failing write")),
                2 => panic!("a write that panics"),
                _ => Ok(()),
            }
        };
        (Box::new(Pending { work, reply }), answer)
    }

    #[rocket::async_test]
    async fn whichever_write_of_a_batch_fails_only_its_own_changes_are_lost() {
        let directory = std::env::temp_dir().join(format!("rss-first-{}", crate::crypto::random_id()));
        std::fs::create_dir_all(&directory).unwrap();
        let store = SqliteStore::open(&directory.join("sessions.db"), Durability::PowerLoss).unwrap();
        // The first write runs outside a savepoint: these put the failing
        // write first, alone, twice in a row and after it.
        let plans: [&[u8]; 7] = [
            &[1, 0, 0],
            &[2, 0],
            &[1],
            &[1, 1, 0],
            &[1, 2, 1],
            &[0, 1, 0],
            &[0, 2, 1, 0],
        ];
        for (case, plan) in plans.iter().enumerate() {
            let (writes, answers): (Vec<_>, Vec<_>) = plan
                .iter()
                .enumerate()
                .map(|(n, &step)| planned(format!("c{case}-{n}"), step))
                .unzip();
            let shared = store.shared.clone();
            rocket::tokio::task::spawn_blocking(move || {
                let mut connection = lock(&shared.writer);
                shared.run_batch(&mut connection, writes)
            })
            .await
            .unwrap()
            .unwrap();
            for (n, answer) in answers.into_iter().enumerate() {
                let outcome = answer.await.unwrap();
                assert_eq!(outcome.is_ok(), plan[n] == 0, "case {case}, write {n}: {outcome:?}");
            }
            let prefix = format!("c{case}-%");
            let kept: Vec<String> = store
                .read(move |reader| {
                    Ok(reader
                        .0
                        .prepare("SELECT jti FROM revoked_tokens WHERE jti LIKE ?1 ORDER BY jti")?
                        .query_map([prefix], |row| row.get(0))?
                        .collect::<Result<_, _>>()?)
                })
                .await
                .unwrap();
            let expected: Vec<String> = (0..plan.len())
                .filter(|&n| plan[n] == 0)
                .map(|n| format!("c{case}-{n}"))
                .collect();
            assert_eq!(kept, expected, "case {case}");
        }
        // The writer is left with no transaction open.
        assert_eq!(store.write(|_| Ok(7)).await.unwrap(), 7);
        assert!(lock(&store.shared.writer).is_autocommit());
        drop(store);
        let _ = std::fs::remove_dir_all(directory);
    }

    #[rocket::async_test]
    async fn a_failing_batched_write_rolls_back_only_its_own_changes() {
        let directory = std::env::temp_dir().join(format!("rss-batch-{}", crate::crypto::random_id()));
        std::fs::create_dir_all(&directory).unwrap();
        let store = SqliteStore::open(&directory.join("sessions.db"), Durability::PowerLoss).unwrap();
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
