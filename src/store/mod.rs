//! Every SQL statement and every rusqlite call of the crate.
//!
//! The methods here block: callers on the async runtime run them through
//! `spawn_blocking`. Writes use `BEGIN IMMEDIATE`, so two writers queue on
//! SQLite's lock (with the busy timeout) instead of failing on a lock upgrade.

mod migrate;

use std::path::Path;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

/// How long a connection waits for SQLite's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections in the pool. SQLite has one writer at a time; readers in WAL mode
/// run beside it.
const POOL_SIZE: u32 = 8;

/// A failure of the SQLite store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error (busy, full, read-only, I/O, …).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// No pooled connection became free in time.
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
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
        let mut first = Connection::open(path)?;
        configure(&mut first)?;
        migrate::migrate(&mut first)?;
        drop(first);

        let manager = SqliteConnectionManager::file(path).with_init(configure);
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .connection_timeout(BUSY_TIMEOUT)
            .build(manager)?;
        Ok(Store { pool })
    }

    fn connection(&self) -> Result<r2d2::PooledConnection<SqliteConnectionManager>, StoreError> {
        Ok(self.pool.get()?)
    }

    /// Inserts a session and its first refresh token in one transaction.
    pub(crate) fn create_session(
        &self,
        session: &NewSession<'_>,
        refresh_hash: &[u8; 32],
        refresh_expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection()?;
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

    /// Looks up a presented refresh token by hash and applies `decide`'s verdict in
    /// the same immediate transaction, so two refreshes of one token are
    /// serialised and at most one rotates it. `None` when no such token exists.
    pub(crate) fn refresh(
        &self,
        hash: &[u8; 32],
        now: i64,
        client: &ClientRecord<'_>,
        decide: impl FnOnce(&PresentedRefresh) -> RefreshDecision,
    ) -> Result<Option<(PresentedRefresh, RefreshDecision)>, StoreError> {
        let mut connection = self.connection()?;
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let presented = transaction
            .prepare_cached(
                "SELECT s.id, s.user_id, t.expires_at, t.rotated_at, s.expires_at,
                        s.absolute_expires_at, s.revoked_at IS NOT NULL, s.claims
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
                revoke_session_in(&transaction, &presented.session_id, now, "refresh token reuse")?;
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
        transaction.commit()?;
        Ok(Some((presented, decision)))
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
        let mut connection = self.connection()?;
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

    /// Revokes every live session of `user_id`; returns their ids.
    pub(crate) fn revoke_user_sessions(
        &self,
        user_id: &str,
        now: i64,
        reason: &str,
    ) -> Result<Vec<String>, StoreError> {
        let connection = self.connection()?;
        let mut statement = connection.prepare_cached(
            "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
             WHERE user_id = ?1 AND revoked_at IS NULL
             RETURNING id",
        )?;
        let ids = statement
            .query_map(params![user_id, now, reason], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(ids)
    }

    /// Revokes `session_id` only if it is an active session of `user_id`.
    pub(crate) fn revoke_own_session(&self, user_id: &str, session_id: &str, now: i64) -> Result<bool, StoreError> {
        let connection = self.connection()?;
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

fn revoke_session_in(connection: &Connection, session_id: &str, now: i64, reason: &str) -> Result<bool, StoreError> {
    let changed = connection
        .prepare_cached(
            "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
             WHERE id = ?1 AND revoked_at IS NULL",
        )?
        .execute(params![session_id, now, reason])?;
    Ok(changed == 1)
}

/// Per-connection settings: WAL so readers never wait on the writer, NORMAL sync
/// (durable across application crashes; WAL keeps the file consistent across power
/// loss), foreign keys for the refresh-token → session cascade.
fn configure(connection: &mut Connection) -> Result<(), rusqlite::Error> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;",
    )
}
