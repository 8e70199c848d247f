//! Sessions, their refresh state and revocations.

use rusqlite::{params, OptionalExtension};

use super::{Reader, StoreError, Tx};
use crate::rotation::{self, Decision, Presented, RefreshState, RotationPolicy};

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
    /// The SHA-256 of its first refresh token.
    pub refresh_hash: [u8; 32],
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

/// What the store says is revoked.
pub(crate) struct StoredRevocations {
    /// Blocklisted `jti`s with their token's `exp`.
    pub jtis: Vec<(String, i64)>,
    /// Revoked session ids with the time of revocation.
    pub sessions: Vec<(String, i64)>,
}

/// Where a client connected from, as recorded on its session.
pub(crate) struct ClientRecord {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Tx<'_> {
    /// Inserts a session with its first refresh token's hash.
    pub(crate) fn create_session(&self, session: &NewSession<'_>) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at,
                                       absolute_expires_at, ip, user_agent, claims, refresh_hash)
                 VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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
                session.refresh_hash,
            ])?;
        Ok(())
    }

    /// Reads session `session_id`'s refresh state, decides what `presented`
    /// does to it ([`rotation::decide`]) and applies that, all in this
    /// transaction. `None` when there is no such session.
    pub(crate) fn refresh(
        &self,
        session_id: &str,
        presented: &Presented,
        now: i64,
        policy: &RotationPolicy,
        client: &ClientRecord,
    ) -> Result<Option<(RefreshState, Decision)>, StoreError> {
        let state = self
            .0
            .prepare_cached(
                "SELECT user_id, created_at, expires_at, absolute_expires_at, revoked_at IS NOT NULL,
                        refresh_generation, refresh_hash, previous_refresh_hash, refresh_rotated_at, claims
                 FROM sessions WHERE id = ?1",
            )?
            .query_row([session_id], |row| {
                Ok(RefreshState {
                    user_id: row.get(0)?,
                    created_at: row.get(1)?,
                    expires_at: row.get(2)?,
                    absolute_expires_at: row.get(3)?,
                    revoked: row.get(4)?,
                    generation: row.get(5)?,
                    current_hash: row.get(6)?,
                    previous_hash: row.get(7)?,
                    rotated_at: row.get(8)?,
                    claims_json: row.get(9)?,
                })
            })
            .optional()?;
        let Some(state) = state else {
            return Ok(None);
        };
        let mut decision = rotation::decide(presented, &state, now, policy);
        match decision {
            Decision::Refuse(_) | Decision::Replay { .. } => {}
            Decision::Revoke => {
                self.revoke_session(session_id, now, "refresh token reuse", None)?;
            }
            Decision::Rotate { expires_at } => {
                let rotated = self
                    .0
                    .prepare_cached(
                        "UPDATE sessions
                         SET refresh_generation = ?2, refresh_hash = ?3, previous_refresh_hash = ?4,
                             refresh_rotated_at = ?5, last_seen_at = ?5, expires_at = ?6,
                             ip = coalesce(?7, ip), user_agent = coalesce(?8, user_agent)
                         WHERE id = ?1 AND refresh_generation = ?9",
                    )?
                    .execute(params![
                        session_id,
                        state.generation + 1,
                        presented.successor_hashes[0],
                        presented.hash,
                        now,
                        expires_at,
                        client.ip,
                        client.user_agent,
                        state.generation,
                    ])?;
                // The row moved on since it was read (another writer): the
                // successor would name a lineage the store does not hold.
                if rotated == 0 {
                    decision = Decision::Refuse(rotation::Refusal::NotInLineage);
                }
            }
        }
        Ok(Some((state, decision)))
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
        let changed = self
            .0
            .prepare_cached(
                "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
                 WHERE id = ?1 AND revoked_at IS NULL",
            )?
            .execute(params![session_id, now, reason])?;
        if let Some((jti, expires_at)) = blocklist {
            self.blocklist(jti, expires_at)?;
        }
        Ok(changed == 1)
    }

    /// Blocklists an access token's `jti` until its `exp`.
    fn blocklist(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        self.0
            .prepare_cached("INSERT OR IGNORE INTO revoked_tokens (jti, expires_at) VALUES (?1, ?2)")?
            .execute(params![jti, expires_at])?;
        Ok(())
    }

    /// Revokes every live session of `user_id` but `keep` (when given), and
    /// blocklists `blocklist`'s `jti` when given; returns the revoked ids.
    pub(crate) fn revoke_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: i64,
        reason: &str,
        blocklist: Option<(&str, i64)>,
    ) -> Result<Vec<String>, StoreError> {
        let ids = self
            .0
            .prepare_cached(
                "UPDATE sessions SET revoked_at = ?2, revoked_reason = ?3
                 WHERE user_id = ?1 AND revoked_at IS NULL AND id IS NOT ?4
                 RETURNING id",
            )?
            .query_map(params![user_id, now, reason, keep], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        if let Some((jti, expires_at)) = blocklist {
            self.blocklist(jti, expires_at)?;
        }
        Ok(ids)
    }

    /// Revokes `session_id` only if it is an active session of `user_id`.
    pub(crate) fn revoke_own_session(&self, user_id: &str, session_id: &str, now: i64) -> Result<bool, StoreError> {
        let changed = self
            .0
            .prepare_cached(
                "UPDATE sessions SET revoked_at = ?3, revoked_reason = 'revoked by user'
                 WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL AND expires_at > ?3",
            )?
            .execute(params![session_id, user_id, now])?;
        Ok(changed == 1)
    }

    /// Replaces a live session's app data with `update`'s result for the current
    /// data. `None` when the session is not live.
    pub(crate) fn update_session_data<T>(
        &self,
        id: &str,
        now: i64,
        update: impl FnOnce(&str) -> (String, T),
    ) -> Result<Option<T>, StoreError> {
        let current: Option<String> = self
            .0
            .prepare_cached("SELECT data FROM sessions WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?2")?
            .query_row(params![id, now], |row| row.get(0))
            .optional()?;
        let Some(current) = current else {
            return Ok(None);
        };
        let (data, result) = update(&current);
        if data != current {
            self.0
                .prepare_cached("UPDATE sessions SET data = ?2 WHERE id = ?1")?
                .execute(params![id, data])?;
        }
        Ok(Some(result))
    }
}

impl Reader<'_> {
    /// The active (not revoked, not expired) sessions of `user_id`, most recently
    /// used first.
    pub(crate) fn active_sessions(&self, user_id: &str, now: i64) -> Result<Vec<SessionRecord>, StoreError> {
        let sessions = self
            .0
            .prepare_cached(
                "SELECT id, created_at, last_seen_at, expires_at, ip, user_agent
                 FROM sessions
                 WHERE user_id = ?1 AND expires_at > ?2 AND revoked_at IS NULL
                 ORDER BY last_seen_at DESC, created_at DESC",
            )?
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

    /// The app data (a JSON object) of a live session; `None` when the session
    /// is revoked, expired or unknown.
    pub(crate) fn session_data(&self, id: &str, now: i64) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT data FROM sessions WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?2")?
            .query_row(params![id, now], |row| row.get(0))
            .optional()?)
    }

    /// Every blocklisted `jti` and revoked session still stored. Not filtered by
    /// time: a wall clock stepped forward at launch must not make the process
    /// forget a revocation that pruning has kept.
    pub(crate) fn revocations(&self) -> Result<StoredRevocations, StoreError> {
        let jtis = self
            .0
            .prepare("SELECT jti, expires_at FROM revoked_tokens")?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        let sessions = self
            .0
            .prepare("SELECT id, revoked_at FROM sessions WHERE revoked_at IS NOT NULL")?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(StoredRevocations { jtis, sessions })
    }
}
