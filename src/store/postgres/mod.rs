//! The PostgreSQL backend (cargo feature `postgres`): every SQL statement for
//! PostgreSQL and every `tokio-postgres` call of the crate.
//!
//! Each operation is one transaction on a pooled connection
//! (`deadpool-postgres`). A refresh is two statements, each its own
//! transaction: a read of its session's row, and a rotation written only if
//! the row is still as read (its generation, revocation and claims); of two
//! refreshes of one session, on any instances, one rotates and the other reads
//! again. A reuse to revoke takes the row `FOR UPDATE` in one transaction.
//!
//! **The revocation feed.** A revocation takes its sequence numbers from the
//! one row of `revocation_sequence`, which stays locked until it commits:
//! numbers are handed out in commit order. It sends `NOTIFY` in the same
//! transaction (delivered at commit). Each instance keeps one connection
//! outside the pool that `LISTEN`s; a notification wakes the feed follower,
//! which reads the log after its cursor. After every reconnect of that
//! connection the follower reads too (a catch-up of what was missed while it
//! was down), and it reads at least every [`FEED_POLL`] whatever happens.
//!
//! **Pruning.** One pass at a time over all instances: a pass holds a
//! session-level advisory lock on a connection of its own; another instance's
//! pass finds it taken and skips. Batches are `DELETE … WHERE key IN (SELECT
//! … LIMIT n)`, each its own transaction.
//!
//! Connections over TCP use TLS as `sslmode` asks (see [`tls`]); unix
//! sockets never do.

mod bound;
mod failures;
mod listener;
mod migrate;
mod prune;
mod refresh;
mod sessions;
mod sql;
mod tls;

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rocket::tokio::sync::Notify;

use crate::rotation::{Decision, RefreshState};
use crate::store::redact_password;
use crate::store::{
    Attempt, Counted, Created, DataUpdate, ErrorKind, FeedPage, NewSession, PassedCredentials, PruneCutoffs, PruneKind,
    PruneTurn, PrunedBatch, RefreshRequest, Revocation, RevocationSnapshot, SessionRecord, SessionStore, StoreError,
    StoreFuture, ThrottledUntil,
};

/// The channel revocations are announced on (the payload is the schema).
const CHANNEL: &str = "rocket_sessions_revocations";
/// Connections in the pool.
const POOL_SIZE: usize = 16;
/// How long a request waits for a pooled connection, or for a new one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The first key of the crate's advisory locks (the second is the schema's
/// hash): "rss" in ASCII.
const ADVISORY_KEY: i32 = 0x0072_7373;
/// The first key of the advisory lock that two logins of one user take under
/// a session limit (the second is a hash of the schema and the user): "rsu".
const USER_LOCK_KEY: i32 = 0x0072_7375;

/// Sessions kept in a PostgreSQL database.
pub(crate) struct PostgresStore {
    pool: Pool,
    /// Woken by the listener: a notification came, or it reconnected.
    wake: Arc<Notify>,
    /// The task that keeps the listening connection; ended with the store.
    listener: rocket::tokio::task::JoinHandle<()>,
    /// How statements are sent: prepared once per connection, or unnamed
    /// behind a pooler.
    mode: sql::Mode,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        // The server's message only: its DETAIL can quote a row's values.
        match error.as_db_error() {
            Some(db) => {
                use tokio_postgres::error::SqlState;
                // A prepared statement of this connection gone, or another's
                // in the way: a pooler in transaction mode shuffled them.
                let pooler = [SqlState::INVALID_SQL_STATEMENT_NAME, SqlState::DUPLICATE_PSTATEMENT].contains(db.code());
                let hint = if pooler {
                    "; behind a connection pooler in transaction mode (PgBouncer, Supavisor), set `sessions.pooled = true`"
                } else {
                    ""
                };
                let kind = match db.code() {
                    code if code == &SqlState::READ_ONLY_SQL_TRANSACTION => ErrorKind::ReadOnly,
                    code if code == &SqlState::T_R_DEADLOCK_DETECTED
                        || code == &SqlState::T_R_SERIALIZATION_FAILURE =>
                    {
                        ErrorKind::Conflict
                    }
                    _ => ErrorKind::Other,
                };
                StoreError::new(kind, format!("postgres: {} ({}){hint}", db.message(), db.code().code()))
            }
            None => StoreError::other(format!("postgres: {}", with_causes(&error))),
        }
    }
}

/// `error` and each of its causes, `: `-separated (tokio-postgres says "error
/// connecting to server" and keeps the OS error, "No such file or
/// directory" or "Connection refused", as its source). None of them holds the
/// connection's password: that stays in the `Config`.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let said = next.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = next.source();
    }
    text
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            deadpool_postgres::PoolError::Backend(error) => error.into(),
            other => StoreError::other(format!("postgres connection pool: {}", with_causes(&other))),
        }
    }
}

/// `operation`, run a second time when PostgreSQL ended the first for a
/// deadlock or a serialisation failure (which changed nothing).
async fn once_more_after_a_conflict<T, F>(operation: impl Fn() -> F) -> Result<T, StoreError>
where
    F: Future<Output = Result<T, StoreError>>,
{
    match operation().await {
        Err(error) if error.kind() == ErrorKind::Conflict => operation().await,
        done => done,
    }
}

/// The configuration and TLS connector of `url`; the error names the URL
/// without its password.
fn connection_settings(
    url: &str,
) -> Result<(tokio_postgres::Config, tokio_postgres_rustls::MakeRustlsConnect), StoreError> {
    let shown = redact_password(url);
    let not_a_url = |e: String| StoreError::other(format!("`{shown}` is not a PostgreSQL URL: {e}"));
    let (url, tls) = tls::split_url(url).map_err(not_a_url)?;
    let mut config = tokio_postgres::Config::from_str(&url).map_err(|e| not_a_url(e.to_string()))?;
    config.ssl_mode(tls.ssl_mode(&config));
    let connector = tls
        .connector()
        .map_err(|e| StoreError::other(format!("cannot use the PostgreSQL database `{shown}`: {e}")))?;
    Ok((config, connector))
}

impl PostgresStore {
    /// Connects to `url`, migrates, and starts listening for revocations (on
    /// `listen`, a direct URL, when `url` goes through a pooler; statements
    /// unnamed when `pooled`). Errors name the database (without its password)
    /// and say what to check.
    pub(crate) async fn open(url: &str, listen: Option<&str>, pooled: bool) -> Result<PostgresStore, StoreError> {
        let shown = redact_password(url);
        let (config, connector) = connection_settings(url)?;
        let (listen_config, listen_connector) = match listen {
            Some(listen) => connection_settings(listen)?,
            None => (config.clone(), connector.clone()),
        };
        let manager = Manager::from_config(
            config.clone(),
            connector.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::other(format!("cannot build a connection pool for `{shown}`: {e}")))?;
        let cannot = |error: StoreError| {
            StoreError::new(
                error.kind(),
                format!(
                    "cannot use the PostgreSQL database `{shown}`: {error}; check that the server runs, \
                     that the URL names it, and that its user may create tables there"
                ),
            )
        };
        {
            let mut client = pool.get().await.map_err(|e| cannot(e.into()))?;
            refuse_asynchronous_commit(&client, &shown).await?;
            migrate::migrate(&mut client)
                .await
                .map_err(|error| match error.kind() {
                    ErrorKind::Schema => error,
                    _ => cannot(error),
                })?;
        }
        if listen.is_some() {
            // A listener that could never connect would leave other
            // processes' revocations a second late: fail now instead.
            listener::try_listen(&listen_config, listen_connector.clone()).await?;
        }
        let wake = Arc::new(Notify::new());
        let listener = rocket::tokio::spawn(listener::listen(listen_config, listen_connector, Arc::downgrade(&wake)));
        let mode = if pooled {
            sql::Mode::Unnamed
        } else {
            sql::Mode::Prepared
        };
        Ok(PostgresStore {
            pool,
            wake,
            listener,
            mode,
        })
    }

    /// `operation`, its statements sent in this store's mode.
    fn scoped<'a, T: 'a>(
        &self,
        operation: impl Future<Output = T> + Send + 'a,
    ) -> Pin<Box<dyn Future<Output = T> + Send + 'a>> {
        Box::pin(sql::MODE.scope(self.mode, operation))
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }
}

/// Launch fails when the server would answer a commit before it is on
/// disk (`synchronous_commit = off`): the crate answers a logout only once it
/// is durable, and never weakens the setting itself.
async fn refuse_asynchronous_commit(client: &tokio_postgres::Client, shown: &str) -> Result<(), StoreError> {
    // An unnamed statement, parsed and run in one exchange: a named one (what
    // `query_one` with a string prepares) breaks behind a pooler in
    // transaction mode, whose next message may reach another server
    // connection (`prepared statement "s38" does not exist`, seen in CI).
    let row = client.query_typed_one("SHOW synchronous_commit", &[]).await?;
    let setting: String = row.get(0);
    if setting == "off" {
        return Err(StoreError::other(format!(
            "the PostgreSQL database `{shown}` has `synchronous_commit = off` for this connection: a \
             commit (a logout, a rotation) would be answered before it is durable, and a crash of the \
             server could undo it. Set it to `on` (postgresql.conf, or ALTER ROLE/DATABASE … SET \
             synchronous_commit = on)"
        )));
    }
    Ok(())
}

impl SessionStore for PostgresStore {
    fn create_session(&self, session: NewSession) -> StoreFuture<'_, Created> {
        self.scoped(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let created = sessions::create(&tx, &session).await?;
            tx.commit().await?;
            Ok(created)
        })
    }

    fn refresh(&self, refresh: RefreshRequest) -> StoreFuture<'_, Option<(RefreshState, Decision)>> {
        self.scoped(async move {
            let mut client = self.client().await?;
            refresh::refresh(&mut client, &refresh).await
        })
    }

    fn revoke(&self, revocation: Revocation, now: i64) -> StoreFuture<'_, Vec<String>> {
        self.scoped(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let revoked = sessions::revoke(&tx, &revocation, now).await?;
            tx.commit().await?;
            Ok(revoked)
        })
    }

    fn session_user(&self, session_id: String) -> StoreFuture<'_, Option<(String, i64)>> {
        self.scoped(async move {
            let client = self.client().await?;
            sessions::session_user(&client, &session_id).await
        })
    }

    fn bind_device(&self, session_id: String, thumbprint: String, key: String, now: i64) -> StoreFuture<'_, bool> {
        self.scoped(async move {
            let client = self.client().await?;
            bound::bind_device(&client, &session_id, &thumbprint, &key, now).await
        })
    }

    fn device_key(&self, session_id: String) -> StoreFuture<'_, Option<String>> {
        self.scoped(async move { bound::device_key(&self.client().await?, &session_id).await })
    }

    fn end_every_session(&self, now: i64) -> StoreFuture<'_, Vec<(String, String)>> {
        self.scoped(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let ended = sessions::end_every_session(&tx, now).await?;
            tx.commit().await?;
            Ok(ended)
        })
    }

    fn update_claims(&self, user_id: String, claims_json: String, now: i64) -> StoreFuture<'_, usize> {
        self.scoped(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let updated = sessions::update_claims(&tx, &user_id, &claims_json, now).await?;
            tx.commit().await?;
            Ok(updated)
        })
    }

    fn active_sessions(&self, user_id: String, now: i64) -> StoreFuture<'_, Vec<SessionRecord>> {
        self.scoped(async move {
            let client = self.client().await?;
            sessions::active(&client, &user_id, now).await
        })
    }

    fn set_session_label(
        &self,
        user_id: String,
        session_id: String,
        label: Option<String>,
        now: i64,
    ) -> StoreFuture<'_, bool> {
        self.scoped(async move {
            let client = self.client().await?;
            sessions::set_label(&client, &user_id, &session_id, label.as_deref(), now).await
        })
    }

    fn session_data(&self, session_id: String, now: i64) -> StoreFuture<'_, Option<String>> {
        self.scoped(async move {
            let client = self.client().await?;
            sessions::data(&client, &session_id, now).await
        })
    }

    fn update_session_data(&self, session_id: String, now: i64, update: DataUpdate) -> StoreFuture<'_, Option<bool>> {
        self.scoped(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let updated = sessions::update_data(&tx, &session_id, now, update).await?;
            tx.commit().await?;
            Ok(updated)
        })
    }

    fn cutoff_mark(&self) -> StoreFuture<'_, i64> {
        self.scoped(async move {
            let client = self.client().await?;
            sessions::cutoff_mark(&*client).await
        })
    }

    fn count_attempt(&self, attempt: Attempt) -> StoreFuture<'_, Result<Counted, ThrottledUntil>> {
        self.scoped(async move {
            let attempt = &attempt;
            once_more_after_a_conflict(|| async move {
                let mut client = self.client().await?;
                let tx = client.transaction().await?;
                let counted = failures::count_attempt(&tx, attempt).await?;
                tx.commit().await?;
                Ok(counted)
            })
            .await
        })
    }

    fn attempt_failed(&self, pending: i64) -> StoreFuture<'_, ()> {
        self.scoped(async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            failures::end_pending(&tx, pending).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn take_back_pending(&self, now: i64, window: i64) -> StoreFuture<'_, usize> {
        self.scoped(async move {
            once_more_after_a_conflict(|| async move {
                let mut client = self.client().await?;
                let tx = client.transaction().await?;
                let taken_back = failures::take_back_pending(&tx, now, window).await?;
                tx.commit().await?;
                Ok(taken_back)
            })
            .await
        })
    }

    fn credentials_passed(&self, passed: PassedCredentials) -> StoreFuture<'_, bool> {
        self.scoped(async move {
            let passed = &passed;
            once_more_after_a_conflict(|| async move {
                let mut client = self.client().await?;
                let tx = client.transaction().await?;
                let new_network = failures::credentials_passed(&tx, passed).await?;
                tx.commit().await?;
                Ok(new_network)
            })
            .await
        })
    }

    fn prune_batch(
        &self,
        kind: PruneKind,
        cutoffs: PruneCutoffs,
        _after: i64,
        batch: u32,
    ) -> StoreFuture<'_, PrunedBatch> {
        self.scoped(async move {
            let mut client = self.client().await?;
            prune::batch(&mut client, kind, cutoffs, batch).await
        })
    }

    fn prune_turn(&self) -> StoreFuture<'_, Option<PruneTurn>> {
        self.scoped(async move {
            // A connection of its own, out of the pool: the lock lives as long
            // as it, and is released by the server when the turn drops it.
            let client = deadpool_postgres::Object::take(self.client().await?);
            prune::take_turn(client).await
        })
    }

    fn end_prune_turn(&self, turn: PruneTurn) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(prune::end_turn(turn))
    }

    fn load_revocations(&self) -> StoreFuture<'_, RevocationSnapshot> {
        self.scoped(async move {
            let mut client = self.client().await?;
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let snapshot = sessions::revocations(&tx).await?;
            tx.commit().await?;
            Ok(snapshot)
        })
    }

    fn revocations_after(&self, cursor: i64, limit: u32) -> StoreFuture<'_, FeedPage> {
        self.scoped(async move {
            let client = self.client().await?;
            sessions::revocations_after(&client, cursor, limit).await
        })
    }

    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        // Every commit was durable when answered; the connections close with
        // the process.
        Box::pin(async {})
    }

    fn wait_for_revocations(&self, at_most: Duration) -> StoreFuture<'_, ()> {
        self.scoped(async move {
            let _ = rocket::tokio::time::timeout(at_most, self.wake.notified()).await;
            Ok(())
        })
    }
}
