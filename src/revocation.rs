//! What is revoked, held in memory so the guard never waits on the store.
//!
//! The store is the durable copy; [`Revocations`] is rebuilt from it at ignite and
//! given every revocation once the store has committed it (this process's own,
//! and other processes' through the feed), so memory and disk never disagree.
//! Each entry is kept for as long as it can still reject a token: a `jti`
//! until its token's `exp` plus `leeway`, a session until every access token
//! issued before its revocation has expired.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use crate::store::Revoked;

/// Revoked session ids and blocklisted `jti`s, each with the unix time after which
/// no access token it could reject is still within its `exp` (plus leeway).
#[derive(Default)]
pub(crate) struct Revocations {
    jtis: RwLock<HashMap<String, i64>>,
    sessions: RwLock<HashMap<String, i64>>,
    /// The longest an access token lives, and the clock skew allowed: how
    /// long a revocation matters.
    access_ttl: i64,
    leeway: i64,
}

impl Revocations {
    /// Empty, for access tokens living `access_ttl` seconds with `leeway`.
    pub(crate) fn new(access_ttl: i64, leeway: i64) -> Self {
        Revocations {
            access_ttl,
            leeway,
            ..Revocations::default()
        }
    }

    /// The last moment a blocklisted access token expiring at `exp` can be
    /// accepted.
    fn token_until(&self, exp: i64) -> i64 {
        exp.saturating_add(self.leeway)
    }

    /// The last moment an access token issued before `revoked_at` can be accepted.
    fn session_until(&self, revoked_at: i64) -> i64 {
        revoked_at.saturating_add(self.access_ttl).saturating_add(self.leeway)
    }

    /// Puts a committed revocation (read from the feed, or just made) into
    /// memory.
    pub(crate) fn apply(&self, revoked: Revoked) {
        match revoked {
            Revoked::Token { jti, expires_at } => self.revoke_jti(jti, self.token_until(expires_at)),
            Revoked::Session { id, revoked_at } => self.revoke_session(id, self.session_until(revoked_at)),
        }
    }

    /// Replaces everything with what the store says is revoked, whatever the
    /// clock says (pruning decides what is over).
    pub(crate) fn load_snapshot(&self, revoked: Vec<Revoked>) {
        let (mut jtis, mut sessions) = (Vec::new(), Vec::new());
        for revoked in revoked {
            match revoked {
                Revoked::Token { jti, expires_at } => jtis.push((jti, self.token_until(expires_at))),
                Revoked::Session { id, revoked_at } => sessions.push((id, self.session_until(revoked_at))),
            }
        }
        self.load(jtis, sessions);
    }

    /// Whether an access token with this `jti` and `sid` must be refused.
    pub(crate) fn is_revoked(&self, jti: &str, session_id: &str) -> bool {
        read(&self.sessions).contains_key(session_id) || read(&self.jtis).contains_key(jti)
    }

    pub(crate) fn revoke_jti(&self, jti: String, until: i64) {
        write(&self.jtis).insert(jti, until);
    }

    pub(crate) fn revoke_session(&self, session_id: String, until: i64) {
        write(&self.sessions).insert(session_id, until);
    }

    /// Replaces everything with what the store says is revoked.
    fn load(&self, jtis: Vec<(String, i64)>, sessions: Vec<(String, i64)>) {
        *write(&self.jtis) = jtis.into_iter().collect();
        *write(&self.sessions) = sessions.into_iter().collect();
    }

    /// Drops every entry whose time has passed; returns how many.
    pub(crate) fn forget_expired(&self, now: i64) -> usize {
        let mut forgotten = 0;
        for lock in [&self.jtis, &self.sessions] {
            let mut map = write(lock);
            let before = map.len();
            map.retain(|_, until| *until > now);
            forgotten += before - map.len();
        }
        forgotten
    }

    /// How many `jti`s and sessions are held.
    pub(crate) fn len(&self) -> (usize, usize) {
        (read(&self.jtis).len(), read(&self.sessions).len())
    }
}

// A panic while holding one of these locks cannot leave a map half-updated (each
// update is one insert), so a poisoned lock is still safe to use.
fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoking_a_session_or_a_jti_rejects_the_token() {
        let revocations = Revocations::default();
        assert!(!revocations.is_revoked("j1", "s1"));
        revocations.revoke_jti("j1".into(), 100);
        assert!(revocations.is_revoked("j1", "s9"));
        revocations.revoke_session("s2".into(), 100);
        assert!(revocations.is_revoked("j9", "s2"));
        assert!(!revocations.is_revoked("j9", "s9"));
        revocations.load(vec![], vec![("s3".into(), 5)]);
        assert_eq!(revocations.len(), (0, 1));
        assert!(!revocations.is_revoked("j1", "s2"));
    }

    #[test]
    fn forgetting_keeps_what_can_still_reject_a_token() {
        let revocations = Revocations::default();
        revocations.revoke_jti("old".into(), 10);
        revocations.revoke_jti("live".into(), 11);
        revocations.revoke_session("old".into(), 9);
        assert_eq!(revocations.forget_expired(10), 2);
        assert!(revocations.is_revoked("live", "x"));
        assert!(!revocations.is_revoked("old", "old"));
    }
}
