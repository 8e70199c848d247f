//! Sessions, their refresh state, revocations and the revocation feed.

use rusqlite::{params, OptionalExtension};

use super::{Reader, Tx};
use crate::crypto::IdKey;
use crate::store::{
    Created, FeedPage, NewSession, Revocation, RevocationSnapshot, Revoked, SessionRecord, StoreError, EVERYONE,
};

impl Tx<'_> {
    /// Inserts a session with its first refresh token's hash, unless its
    /// credential check began before a cut-off of its user, or its user has
    /// its limit of sessions (ending the oldest when so configured). One
    /// write transaction at a time: a cut-off, or another login, is wholly
    /// before or after.
    pub(crate) fn create_session(&self, session: &NewSession) -> Result<Created, StoreError> {
        if let Some(mark) = session.checked_at_mark {
            if self.cutoff_of(&session.user_id)?.is_some_and(|cutoff| cutoff > mark) {
                return Ok(Created::Superseded);
            }
        }
        let mut ended = Vec::new();
        if let Some(limit) = session.limit {
            let live: Vec<String> = self
                .0
                .prepare_cached(
                    "SELECT id FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2
                     ORDER BY created_at, rowid",
                )?
                .query_map(params![session.user_id, session.now], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            let excess = (live.len() + 1).saturating_sub(limit.max as usize);
            if excess > 0 && !limit.end_oldest {
                return Ok(Created::TooMany);
            }
            for id in live.into_iter().take(excess) {
                self.revoke_session(&id, session.now, "session limit", None)?;
                ended.push(id);
            }
        }
        self.0
            .prepare_cached(
                "INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at,
                                       absolute_expires_at, ip, user_agent, claims, refresh_hash,
                                       refresh_ttl, persistent, dpop_jkt)
                 VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                session.id,
                session.user_id,
                session.now,
                session.expires_at,
                session.absolute_expires_at,
                session.client.ip,
                session.client.user_agent,
                session.claims_json,
                session.refresh_hash,
                session.refresh_ttl,
                session.persistent,
                session.dpop_jkt,
            ])?;
        Ok(Created::Session { ended })
    }

    /// The counter's number at `user_id`'s latest cut-off, or everyone's
    /// when later.
    fn cutoff_of(&self, user_id: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT max(seq) FROM user_cutoffs WHERE user_id IN (?1, ?2)")?
            .query_row([user_id, EVERYONE], |row| row.get(0))?)
    }

    /// Ends every live session of every user, after a cut-off for everyone;
    /// gives the sessions ended, with their users.
    pub(crate) fn end_every_session(&self, now: i64) -> Result<Vec<(String, String)>, StoreError> {
        self.cut_off(EVERYONE, now)?;
        let ended = self
            .0
            .prepare_cached(
                "UPDATE sessions SET revoked_at = ?1, revoked_reason = 'logout everyone'
                 WHERE revoked_at IS NULL RETURNING id, user_id",
            )?
            .query_map([now], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<Vec<(String, String)>, _>>()?;
        for (id, _) in &ended {
            self.append_to_feed(Some(id), None, now)?;
        }
        Ok(ended)
    }

    /// Makes a cut-off for `user_id` at `now`: the counter's next number.
    fn cut_off(&self, user_id: &str, now: i64) -> Result<(), StoreError> {
        let seq: i64 = self
            .0
            .prepare_cached("UPDATE cutoff_counter SET n = n + 1 WHERE id = 1 RETURNING n")?
            .query_row([], |row| row.get(0))?;
        self.0
            .prepare_cached(
                "INSERT INTO user_cutoffs (user_id, seq, at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (user_id) DO UPDATE SET seq = excluded.seq, at = excluded.at",
            )?
            .execute(params![user_id, seq, now])?;
        Ok(())
    }

    /// Makes `revocation` with its feed entries; gives the sessions that were
    /// live until now.
    pub(crate) fn revoke(&self, revocation: &Revocation, now: i64) -> Result<Vec<String>, StoreError> {
        match revocation {
            Revocation::Session {
                session_id,
                reason,
                blocklist,
            } => {
                let blocklist = blocklist.as_ref().map(|(jti, exp)| (jti.as_str(), *exp));
                let live = self.revoke_session(session_id, now, reason, blocklist)?;
                Ok(if live { vec![session_id.clone()] } else { Vec::new() })
            }
            Revocation::UserSessions {
                user_id,
                keep,
                reason,
                blocklist,
            } => {
                let blocklist = blocklist.as_ref().map(|(jti, exp)| (jti.as_str(), *exp));
                self.revoke_user_sessions(user_id, keep.as_deref(), now, reason, blocklist)
            }
            Revocation::OwnSession { user_id, session_id } => {
                let live = self.revoke_own_session(user_id, session_id, now)?;
                Ok(if live { vec![session_id.clone()] } else { Vec::new() })
            }
        }
    }

    /// Revokes one session and, when given, blocklists an access token's `jti`
    /// until its `exp`, with their feed entries. Returns whether the session
    /// was live until now.
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
        if changed == 1 {
            self.append_to_feed(Some(session_id), None, now)?;
        }
        if let Some((jti, expires_at)) = blocklist {
            self.blocklist(jti, expires_at)?;
        }
        Ok(changed == 1)
    }

    /// Blocklists an access token's `jti` until its `exp`, with its feed entry.
    fn blocklist(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        let added = self
            .0
            .prepare_cached("INSERT OR IGNORE INTO revoked_tokens (jti, expires_at) VALUES (?1, ?2)")?
            .execute(params![jti, expires_at])?;
        if added == 1 {
            self.append_to_feed(None, Some(jti), expires_at)?;
        }
        Ok(())
    }

    /// Appends a revoked session or a blocklisted token to the revocation feed.
    fn append_to_feed(&self, session_id: Option<&str>, jti: Option<&str>, at: i64) -> Result<(), StoreError> {
        self.0
            .prepare_cached("INSERT INTO revocation_log (session_id, jti, at) VALUES (?1, ?2, ?3)")?
            .execute(params![session_id, jti, at])?;
        Ok(())
    }

    /// Revokes every live session of `user_id` but `keep` (when given), makes
    /// a cut-off for the user, and blocklists `blocklist`'s `jti` when given;
    /// returns the revoked ids.
    fn revoke_user_sessions(
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
        for id in &ids {
            self.append_to_feed(Some(id), None, now)?;
        }
        self.cut_off(user_id, now)?;
        if let Some((jti, expires_at)) = blocklist {
            self.blocklist(jti, expires_at)?;
        }
        Ok(ids)
    }

    /// Revokes `session_id` only if it is an active session of `user_id`.
    fn revoke_own_session(&self, user_id: &str, session_id: &str, now: i64) -> Result<bool, StoreError> {
        let changed = self
            .0
            .prepare_cached(
                "UPDATE sessions SET revoked_at = ?3, revoked_reason = 'revoked by user'
                 WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL AND expires_at > ?3",
            )?
            .execute(params![session_id, user_id, now])?;
        if changed == 1 {
            self.append_to_feed(Some(session_id), None, now)?;
        }
        Ok(changed == 1)
    }

    /// Replaces the app claims of every live session of `user_id`, with a
    /// cut-off for the user.
    pub(crate) fn update_claims(&self, user_id: &str, claims_json: &str, now: i64) -> Result<usize, StoreError> {
        let updated = self
            .0
            .prepare_cached("UPDATE sessions SET claims = ?2 WHERE user_id = ?1 AND revoked_at IS NULL")?
            .execute(params![user_id, claims_json])?;
        self.cut_off(user_id, now)?;
        Ok(updated)
    }

    /// Replaces a live session's app data with `update`'s result for the current
    /// data. `None` when the session is not live, `Some(false)` when `update`
    /// kept the data (gave `None`).
    pub(crate) fn update_session_data(
        &self,
        id: &str,
        now: i64,
        update: impl FnOnce(&str) -> Option<String>,
    ) -> Result<Option<bool>, StoreError> {
        let current: Option<String> = self
            .0
            .prepare_cached("SELECT data FROM sessions WHERE id = ?1 AND revoked_at IS NULL AND expires_at > ?2")?
            .query_row(params![id, now], |row| row.get(0))
            .optional()?;
        let Some(current) = current else {
            return Ok(None);
        };
        let Some(data) = update(&current) else {
            return Ok(Some(false));
        };
        if data != current {
            self.0
                .prepare_cached("UPDATE sessions SET data = ?2 WHERE id = ?1")?
                .execute(params![id, data])?;
        }
        Ok(Some(true))
    }

    /// Sets the label of a live session of `user_id`; `false` when there is
    /// none.
    pub(crate) fn set_session_label(
        &self,
        user_id: &str,
        id: &str,
        label: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let updated = self
            .0
            .prepare_cached(
                "UPDATE sessions SET label = ?3
                 WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL AND expires_at > ?4",
            )?
            .execute(params![id, user_id, label, now])?;
        Ok(updated == 1)
    }
}

impl Reader<'_> {
    /// The user of session `id`, live or not.
    pub(crate) fn session_user(&self, id: &str) -> Result<Option<(String, i64)>, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT user_id, (SELECT n FROM cutoff_counter WHERE id = 1) FROM sessions WHERE id = ?1")?
            .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?)
    }

    /// The cut-off counter now.
    pub(crate) fn cutoff_mark(&self) -> Result<i64, StoreError> {
        cutoff_mark(self.0)
    }

    /// The active (not revoked, not expired) sessions of `user_id`, most recently
    /// used first.
    pub(crate) fn active_sessions(&self, user_id: &str, now: i64) -> Result<Vec<SessionRecord>, StoreError> {
        let sessions = self
            .0
            .prepare_cached(
                "SELECT id, created_at, last_seen_at, expires_at, ip, user_agent, label
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
                    label: row.get(6)?,
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

    /// Every blocklisted `jti` and revoked session still stored, and the
    /// feed's last sequence number, in one read transaction (one snapshot):
    /// following the feed from there misses nothing and repeats nothing. Not
    /// filtered by time: a wall clock stepped forward at launch must not make
    /// the process forget a revocation that pruning has kept.
    pub(crate) fn revocations(&self) -> Result<RevocationSnapshot, StoreError> {
        let snapshot = self.0.unchecked_transaction()?;
        let cursor = snapshot.query_row("SELECT coalesce(max(seq), 0) FROM revocation_log", [], |row| row.get(0))?;
        // Each id read in place (`get_ref`) into its key: no allocation a row.
        let keyed = |row: &rusqlite::Row<'_>| -> rusqlite::Result<(IdKey, i64)> {
            Ok((IdKey::of(row.get_ref(0)?.as_str()?), row.get(1)?))
        };
        let jtis = snapshot
            .prepare("SELECT jti, expires_at FROM revoked_tokens")?
            .query_map([], keyed)?
            .collect::<Result<Vec<_>, _>>()?;
        // Through the partial index `sessions_revoked`: only revoked
        // sessions are read, not every session.
        let sessions = snapshot
            .prepare("SELECT id, revoked_at FROM sessions WHERE revoked_at IS NOT NULL")?
            .query_map([], keyed)?
            .collect::<Result<Vec<_>, _>>()?;
        snapshot.finish()?;
        Ok(RevocationSnapshot { jtis, sessions, cursor })
    }

    /// At most `limit` feed entries after `cursor`, in sequence order.
    pub(crate) fn revocations_after(&self, cursor: i64, limit: u32) -> Result<FeedPage, StoreError> {
        let mut last = cursor;
        let entries = self
            .0
            .prepare_cached("SELECT seq, session_id, jti, at FROM revocation_log WHERE seq > ?1 ORDER BY seq LIMIT ?2")?
            .query_map(params![cursor, limit], |row| {
                let seq: i64 = row.get(0)?;
                let (session_id, jti): (Option<String>, Option<String>) = (row.get(1)?, row.get(2)?);
                let at: i64 = row.get(3)?;
                Ok((seq, session_id, jti, at))
            })?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter_map(|(seq, session_id, jti, at)| {
                last = seq;
                match (session_id, jti) {
                    (Some(id), _) => Some(Revoked::Session { id, revoked_at: at }),
                    (None, Some(jti)) => Some(Revoked::Token { jti, expires_at: at }),
                    (None, None) => None,
                }
            })
            .collect();
        Ok(FeedPage { entries, cursor: last })
    }
}

/// The cut-off counter, read on `connection` (a reader's, or the writer's in
/// a credential check's write).
pub(super) fn cutoff_mark(connection: &rusqlite::Connection) -> Result<i64, StoreError> {
    Ok(connection
        .prepare_cached("SELECT n FROM cutoff_counter WHERE id = 1")?
        .query_row([], |row| row.get(0))?)
}
