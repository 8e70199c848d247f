//! The storage seam: [`SessionStore`], the whole operations the crate asks of a
//! backend, and the backends behind it.
//!
//! Each operation is one transaction: a login's session, a refresh's decision
//! and rotation, a revocation with its feed entries, a throttled attempt with
//! its counters. The refresh decision itself is
//! [`rotation::decide`](crate::rotation::decide), a pure
//! function every backend calls inside its transaction.
//!
//! **The revocation feed.** Every revocation is written, in the transaction
//! that makes it, to an append-only log with a sequence number handed out in
//! commit order. Each process loads the revocations and the log's last number
//! in one snapshot at launch, then follows the log from there
//! (the service's feed follower): a revocation made by another process reaches this one's
//! memory within about [`FEED_POLL`].
//!
//! Backends: SQLite ([`sqlite`], always built) and PostgreSQL (`postgres`,
//! behind the cargo feature of that name). `rusqlite` is used only under
//! `src/store/sqlite/`, `tokio-postgres` only under `src/store/postgres/`.

mod database;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::crypto::IdKey;
use crate::rotation::{Decision, Presented, RefreshState, RotationPolicy};
pub use database::Durability;
#[cfg_attr(not(feature = "postgres"), allow(unused_imports))]
pub(crate) use database::{redact_password, Database};

/// The user id of the cut-off that `end_every_session` makes for everyone: no
/// user has it (a login needs a non-empty user id).
pub(crate) const EVERYONE: &str = "";

/// The longest a revocation made by another process takes to reach this one
/// when nothing wakes the feed sooner: the safety poll of PostgreSQL, the
/// `data_version` poll of SQLite is shorter.
pub(crate) const FEED_POLL: Duration = Duration::from_secs(1);

/// A failure of the session store: busy, full, read-only or I/O, the database
/// gone or unreachable, a schema from a newer version. Its message says what
/// failed and, where it can, how to fix it; it never contains a token.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    kind: ErrorKind,
    message: String,
}

/// What kind of failure a [`StoreError`] is, for the crate's own decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// The database (or its directory, or its mount) cannot be written.
    ReadOnly,
    /// The schema was written by a newer version of the crate.
    Schema,
    /// PostgreSQL ended the transaction to resolve a deadlock or a
    /// serialisation failure: it changed nothing, and running it again may
    /// pass.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Conflict,
    /// Anything else: busy, full, I/O, a constraint, a lost connection, a bug.
    Other,
}

impl StoreError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn other(message: impl Into<String>) -> Self {
        StoreError::new(ErrorKind::Other, message)
    }

    pub(crate) fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// What a store operation gives back: boxed, so [`SessionStore`] stays
/// object-safe and `Sessions` non-generic.
pub(crate) type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A session to insert at login.
pub(crate) struct NewSession {
    pub id: String,
    pub user_id: String,
    pub now: i64,
    pub expires_at: i64,
    pub absolute_expires_at: i64,
    pub client: ClientRecord,
    pub claims_json: String,
    /// The SHA-256 of its first refresh token.
    pub refresh_hash: [u8; 32],
    /// Its own refresh lifetime (`None`: the configured one).
    pub refresh_ttl: Option<i64>,
    /// Whether its cookies outlive the browser session.
    pub persistent: bool,
    /// The most live sessions its user may have, and what to do past it.
    pub limit: Option<SessionLimit>,
    /// The cut-off counter when the login's credential check began: the
    /// login is refused when its user's cut-off is later. `None`: no check.
    pub checked_at_mark: Option<i64>,
    /// The thumbprint of the DPoP key the session is bound to, when its
    /// login carried a proof.
    pub dpop_jkt: Option<String>,
}

/// The most live sessions of one user (`max_sessions`), and whether a login
/// past it ends the oldest (or is refused).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionLimit {
    pub max: u32,
    pub end_oldest: bool,
}

/// What became of a login's session.
#[derive(Debug)]
pub(crate) enum Created {
    /// Inserted; these sessions of the user were ended to keep it within its
    /// limit (revoked, with their feed entries).
    Session { ended: Vec<String> },
    /// Refused: its credential check began before a cut-off of its user.
    Superseded,
    /// Refused: the user has its limit of live sessions.
    TooMany,
}

/// A refresh token presented for session `session_id`.
pub(crate) struct RefreshRequest {
    pub session_id: String,
    pub presented: Presented,
    pub now: i64,
    pub policy: RotationPolicy,
    pub client: ClientRecord,
    /// The session's claims from now on, when the claims source replaced
    /// them: written with the rotation.
    pub claims_json: Option<String>,
    /// The cut-off counter read before the claims source was asked: with
    /// `claims_json`, a cut-off of the user numbered after it refuses the
    /// refresh (`Refusal::StaleClaims`), decided in the rotation's
    /// transaction.
    pub claims_mark: Option<i64>,
}

/// Where a client connected from, as recorded on its session.
#[derive(Clone)]
pub(crate) struct ClientRecord {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
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
    pub label: Option<String>,
}

/// A revocation to make, in one transaction with its feed entries.
pub(crate) enum Revocation {
    /// One session (a logout or reuse), and the blocklisting of the access
    /// token `(jti, exp)` that asked for it.
    Session {
        session_id: String,
        reason: &'static str,
        blocklist: Option<(String, i64)>,
    },
    /// Every live session of a user but `keep`, and a cut-off for the user:
    /// a login whose credential check began before it is refused.
    UserSessions {
        user_id: String,
        keep: Option<String>,
        reason: &'static str,
        blocklist: Option<(String, i64)>,
    },
    /// One session, only if it is a live session of `user_id` (a device the
    /// user signs out).
    OwnSession { user_id: String, session_id: String },
}

/// What is revoked, as one entry of the feed or of the launch snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Revoked {
    /// A session, revoked at this time: its access tokens are refused.
    Session { id: String, revoked_at: i64 },
    /// One access token, until its `exp`.
    Token { jti: String, expires_at: i64 },
}

/// Everything revoked, read in one snapshot with the feed's position, as
/// fixed-size keys (nothing allocated per row).
pub(crate) struct RevocationSnapshot {
    /// Each blocklisted `jti` and its token's `exp`.
    pub jtis: Vec<(IdKey, i64)>,
    /// Each revoked session and when it was revoked.
    pub sessions: Vec<(IdKey, i64)>,
    /// The sequence number of the last feed entry in the snapshot.
    pub cursor: i64,
}

/// Feed entries after a cursor, in sequence order.
pub(crate) struct FeedPage {
    pub entries: Vec<Revoked>,
    /// The sequence number of the last entry given (the cursor when none).
    pub cursor: i64,
}

/// The app data update of [`SessionStore::update_session_data`]: the new data
/// for the current data, or `None` to keep it (the update is refused).
pub(crate) type DataUpdate = Box<dyn FnOnce(&str) -> Option<String> + Send>;

/// One throttling scope of a login attempt: an HMAC of a username or a
/// network, never the name itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FailureScope {
    pub key: [u8; 32],
    /// Failures in a window past which attempts are refused.
    pub limit: u32,
    /// A network whose recent success for the user waives this scope's limit.
    pub waived_by: Option<[u8; 32]>,
}

/// A login attempt to check and count, in one transaction, before the
/// credentials are checked.
pub(crate) struct Attempt {
    pub scopes: Vec<FailureScope>,
    pub now: i64,
    pub window: i64,
    /// A known network counts when its last success is after this time.
    pub known_since: i64,
    /// The most counters kept (`max_failure_scopes`).
    pub capacity: u64,
}

/// A counted attempt: the cut-off counter as its check began, and the row
/// that marks its check in progress (see `SessionStore::count_attempt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counted {
    pub seq: i64,
    pub pending: i64,
}

/// Refused until this unix time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ThrottledUntil(pub i64);

/// Right credentials: what to forget, uncount and remember, in one
/// transaction.
pub(crate) struct PassedCredentials {
    /// The check's row in progress: its count is taken back only while the
    /// row is there (a launch may have taken it back already).
    pub pending: i64,
    pub forget: [u8; 32],
    pub uncount: Vec<[u8; 32]>,
    pub known_network: [u8; 32],
    pub now: i64,
    pub window: i64,
    pub capacity: u64,
}

/// The cut-offs of a prune pass: rows at or before them are no longer needed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PruneCutoffs {
    /// Sessions whose `expires_at` is at or before this: none of their tokens
    /// can be accepted any more.
    pub expired_at_or_before: i64,
    /// Revoked sessions whose `revoked_at` is at or before this: every access
    /// token issued before the revocation has expired. Feed entries of
    /// sessions go at the same time.
    pub revoked_at_or_before: i64,
    /// Blocklisted `jti`s (and their feed entries) whose token's `exp` is at
    /// or before this.
    pub blocklist_expired_at_or_before: i64,
    /// Failure counters whose window started at or before this have ended.
    pub window_started_at_or_before: i64,
    /// Networks a user last signed in from at or before this are forgotten.
    pub known_network_used_at_or_before: i64,
    /// User cut-offs made at or before this: no login still in flight can
    /// have checked its credentials before them.
    pub user_cutoff_at_or_before: i64,
}

/// The kinds of rows a pass deletes, in order: sessions (found by a walk of
/// the table), then the rows that expire one by one.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PruneKind {
    Sessions,
    Blocklist,
    RevocationFeed,
    FailureCounters,
    KnownNetworks,
    UserCutoffs,
}

impl PruneKind {
    /// Every kind, in the order a pass deletes them.
    pub(crate) const ALL: [PruneKind; 6] = [
        PruneKind::Sessions,
        PruneKind::Blocklist,
        PruneKind::RevocationFeed,
        PruneKind::FailureCounters,
        PruneKind::KnownNetworks,
        PruneKind::UserCutoffs,
    ];
}

/// What one prune batch deleted, and where the next batch of its kind starts
/// (`None`: the kind is done).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PrunedBatch {
    pub deleted: usize,
    pub resume_after: Option<i64>,
}

/// Held for a prune pass: while one process holds it no other prunes (on
/// PostgreSQL, an advisory lock on a connection of its own). Given back with
/// [`SessionStore::end_prune_turn`]; dropped instead, it is released later
/// (when the server sees its connection close).
pub(crate) type PruneTurn = Box<dyn std::any::Any + Send + Sync>;

/// The whole operations the crate asks of a backend. Object-safe, so the
/// crate holds an `Arc<dyn SessionStore>` and stays non-generic.
pub(crate) trait SessionStore: Send + Sync + 'static {
    /// Inserts a session with its first refresh token's hash, unless its
    /// credential check began before a cut-off of its user, or the user has
    /// its limit of sessions (ending the oldest, when so configured). A login
    /// and a cut-off of one user never interleave, nor two logins of one user
    /// under a limit.
    fn create_session(&self, session: NewSession) -> StoreFuture<'_, Created>;

    /// Reads the session's refresh state, decides what the presented token
    /// does to it ([`rotation::decide`](crate::rotation::decide)) and applies that (a rotation, or the
    /// revocation of the session with its feed entry), in one transaction
    /// that no other refresh of the session interleaves with. `None` when
    /// there is no such session.
    fn refresh(&self, refresh: RefreshRequest) -> StoreFuture<'_, Option<(RefreshState, Decision)>>;

    /// The user of session `session_id`, live or not, and the cut-off
    /// counter in the same read; `None` when there is no such session.
    fn session_user(&self, session_id: String) -> StoreFuture<'_, Option<(String, i64)>>;

    /// Binds session `session_id` to a browser's device key (DBSC): its
    /// thumbprint and its JWK, unless it is bound to a key already, revoked,
    /// or expired at `now`; whether it was bound now.
    fn bind_device(&self, session_id: String, thumbprint: String, key: String, now: i64) -> StoreFuture<'_, bool>;

    /// The JWK of the device key session `session_id` is bound to, when it
    /// is.
    fn device_key(&self, session_id: String) -> StoreFuture<'_, Option<String>>;

    /// Makes a revocation and writes its feed entries, in one transaction;
    /// gives the sessions that were live until now.
    fn revoke(&self, revocation: Revocation, now: i64) -> StoreFuture<'_, Vec<String>>;

    /// Ends every live session of every user, with their feed entries and a
    /// cut-off for everyone, in one transaction; gives the sessions ended,
    /// each with its user.
    fn end_every_session(&self, now: i64) -> StoreFuture<'_, Vec<(String, String)>>;

    /// Replaces the app claims of every live session of `user_id`, with a
    /// cut-off for the user made at `now`; gives how many sessions there were.
    fn update_claims(&self, user_id: String, claims_json: String, now: i64) -> StoreFuture<'_, usize>;

    /// The active (not revoked, not expired) sessions of `user_id`, most
    /// recently used first.
    fn active_sessions(&self, user_id: String, now: i64) -> StoreFuture<'_, Vec<SessionRecord>>;

    /// The app data (a JSON object) of a live session; `None` when the session
    /// is revoked, expired or unknown.
    fn session_data(&self, session_id: String, now: i64) -> StoreFuture<'_, Option<String>>;

    /// Replaces a live session's data with `update`'s result, in one
    /// transaction. `None` when the session is not live, `Some(false)` when
    /// `update` kept the data.
    fn update_session_data(&self, session_id: String, now: i64, update: DataUpdate) -> StoreFuture<'_, Option<bool>>;

    /// Sets (or with `None` removes) the label of a live session of
    /// `user_id`; `false` when there is no such session.
    fn set_session_label(
        &self,
        user_id: String,
        session_id: String,
        label: Option<String>,
        now: i64,
    ) -> StoreFuture<'_, bool>;

    /// Checks every scope of a login attempt against its limit and, unless one
    /// is reached, counts the attempt in each, making room under the cap
    /// without evicting the attempt's own counters. Gives the cut-off
    /// counter as the attempt began ([`SessionStore::cutoff_mark`]).
    fn count_attempt(&self, attempt: Attempt) -> StoreFuture<'_, Result<Counted, ThrottledUntil>>;

    /// The check of a counted attempt ended with wrong credentials: its row in
    /// progress goes, its count stays.
    fn attempt_failed(&self, pending: i64) -> StoreFuture<'_, ()>;

    /// At launch: takes back the counts of the checks still marked in
    /// progress (their process died before they ended; those older than
    /// `window` only go, their window has ended) and deletes their rows;
    /// gives how many were taken back.
    fn take_back_pending(&self, now: i64, window: i64) -> StoreFuture<'_, usize>;

    /// The cut-off counter now: a login whose credentials are read after this
    /// is refused only by a cut-off made later.
    fn cutoff_mark(&self) -> StoreFuture<'_, i64>;

    /// Right credentials: forgets, uncounts and remembers, in one transaction;
    /// gives whether the network was new for the user.
    fn credentials_passed(&self, passed: PassedCredentials) -> StoreFuture<'_, bool>;

    /// Deletes one short batch of `kind` rows no longer needed, starting after
    /// `after` (a position of the backend's own; `i64::MIN` to start).
    fn prune_batch(
        &self,
        kind: PruneKind,
        cutoffs: PruneCutoffs,
        after: i64,
        batch: u32,
    ) -> StoreFuture<'_, PrunedBatch>;

    /// The right to run a prune pass now, or `None` when another process is
    /// running one.
    fn prune_turn(&self) -> StoreFuture<'_, Option<PruneTurn>>;

    /// Gives a prune turn back, at once.
    fn end_prune_turn(&self, turn: PruneTurn) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;

    /// Everything revoked and the feed's last sequence number, in one snapshot.
    fn load_revocations(&self) -> StoreFuture<'_, RevocationSnapshot>;

    /// At most `limit` feed entries after `cursor`, in sequence order.
    fn revocations_after(&self, cursor: i64, limit: u32) -> StoreFuture<'_, FeedPage>;

    /// Returns when the feed may have new entries (another process committed,
    /// a notification came, a connection came back) or after `at_most`.
    fn wait_for_revocations(&self, at_most: Duration) -> StoreFuture<'_, ()>;

    /// Closes the backend for this process at shutdown: the writes already
    /// queued run, then every connection closes (SQLite: the WAL copied into
    /// the file and removed); reads and writes after it fail.
    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// Opens (creating and migrating as needed) the backend `database` names.
pub(crate) async fn open(database: &Database) -> Result<Arc<dyn SessionStore>, StoreError> {
    match database {
        Database::Sqlite(path, durability) => {
            let (path, durability) = (path.clone(), *durability);
            let store = rocket::tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&path, durability))
                .await
                .map_err(|e| StoreError::other(format!("opening the SQLite store failed: {e}")))??;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "postgres")]
        Database::Postgres { url, listen, pooled } => Ok(Arc::new(
            postgres::PostgresStore::open(url, listen.as_deref(), *pooled).await?,
        )),
    }
}
