//! What is revoked, held in memory so the guard never waits on the store.
//!
//! The store is the durable copy; [`Revocations`] is rebuilt from it at ignite and
//! given every revocation once the store has committed it (this process's own,
//! and other processes' through the feed), so memory and disk never disagree.
//! Each entry is kept for as long as it can still reject a token: a `jti`
//! until its token's `exp` plus `leeway`, a session until every access token
//! issued before its revocation has expired.

mod table;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use crate::crypto::IdKey;
use crate::store::{RevocationSnapshot, Revoked};
use table::KeyTable;

/// Revoked session ids and blocklisted `jti`s, each with the unix time after which
/// no access token it could reject is still within its `exp` (plus leeway).
/// Held as 16-byte keys ([`IdKey`]) in flat tables: about 32 bytes an entry,
/// and a lookup that does not slow down as they fill.
#[derive(Default)]
pub(crate) struct Revocations {
    jtis: RwLock<KeyTable>,
    sessions: RwLock<KeyTable>,
    /// The longest an access token lives, and the clock skew allowed: how
    /// long a revocation matters.
    access_ttl: i64,
    leeway: i64,
    /// One more after every change that can refuse a token (see
    /// [`generation`](Self::generation)).
    generation: AtomicU64,
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
            Revoked::Token { jti, expires_at } => self.revoke_jti(&jti, self.token_until(expires_at)),
            Revoked::Session { id, revoked_at } => self.revoke_session(&id, self.session_until(revoked_at)),
        }
    }

    /// Replaces everything with what the store says is revoked, whatever the
    /// clock says (pruning decides what is over).
    pub(crate) fn load_snapshot(&self, snapshot: &RevocationSnapshot) {
        let jtis = snapshot.jtis.iter().map(|&(key, exp)| (key, self.token_until(exp)));
        let sessions = snapshot.sessions.iter().map(|&(key, at)| (key, self.session_until(at)));
        let (jtis, sessions) = (KeyTable::from_entries(jtis), KeyTable::from_entries(sessions));
        *write(&self.jtis) = jtis;
        *write(&self.sessions) = sessions;
        self.changed();
    }

    /// How many times what is held has changed in a way that can refuse a
    /// token (a revocation put in, a snapshot loaded). A token found
    /// unrevoked by a check that began in generation `g` (read before the
    /// lookup) is still unrevoked while the generation is `g`: each change
    /// is in the tables before its generation can be read, and forgetting
    /// (which only drops what can no longer refuse a token) changes nothing.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Called once a change is in the tables (their write lock released).
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether an access token with this `jti` and `sid` must be refused.
    pub(crate) fn is_revoked(&self, jti: &str, session_id: &str) -> bool {
        read(&self.sessions).contains(&IdKey::of(session_id)) || read(&self.jtis).contains(&IdKey::of(jti))
    }

    pub(crate) fn revoke_jti(&self, jti: &str, until: i64) {
        write(&self.jtis).insert(IdKey::of(jti), until);
        self.changed();
    }

    pub(crate) fn revoke_session(&self, session_id: &str, until: i64) {
        write(&self.sessions).insert(IdKey::of(session_id), until);
        self.changed();
    }

    /// Drops every entry whose time has passed; returns how many.
    pub(crate) fn forget_expired(&self, now: i64) -> usize {
        write(&self.jtis).forget_until(now) + write(&self.sessions).forget_until(now)
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
        revocations.revoke_jti("j1", 100);
        assert!(revocations.is_revoked("j1", "s9"));
        revocations.revoke_session("s2", 100);
        assert!(revocations.is_revoked("j9", "s2"));
        assert!(!revocations.is_revoked("j9", "s9"));
        revocations.load_snapshot(&RevocationSnapshot {
            jtis: vec![],
            sessions: vec![(IdKey::of("s3"), 5)],
            cursor: 0,
        });
        assert_eq!(revocations.len(), (0, 1));
        assert!(!revocations.is_revoked("j1", "s2"));
        assert!(revocations.is_revoked("j1", "s3"));
    }

    #[test]
    fn every_change_that_can_refuse_a_token_is_a_new_generation() {
        let revocations = Revocations::default();
        let first = revocations.generation();
        revocations.revoke_jti("j1", 100);
        assert_eq!(revocations.generation(), first + 1);
        revocations.revoke_session("s1", 100);
        assert_eq!(revocations.generation(), first + 2);
        revocations.load_snapshot(&RevocationSnapshot {
            jtis: vec![],
            sessions: vec![],
            cursor: 0,
        });
        assert_eq!(revocations.generation(), first + 3);
        revocations.forget_expired(1000);
        assert_eq!(revocations.generation(), first + 3, "forgetting refuses nothing");
    }

    #[test]
    fn forgetting_keeps_what_can_still_reject_a_token() {
        let revocations = Revocations::default();
        revocations.revoke_jti("old", 10);
        revocations.revoke_jti("live", 11);
        revocations.revoke_session("old", 9);
        assert_eq!(revocations.forget_expired(10), 2);
        assert!(revocations.is_revoked("live", "x"));
        assert!(!revocations.is_revoked("old", "old"));
    }
}
