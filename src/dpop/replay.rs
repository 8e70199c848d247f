//! The proofs accepted recently, so that none is accepted twice (RFC 9449
//! §11.1): each is remembered until its `iat` is out of the window, when it
//! would be refused anyway. Bounded: at most `dpop_replay_capacity` at once
//! (about 64 bytes each); when that many are younger than the window, new
//! proofs are refused until the oldest age out. Remembered by this process
//! only: see the module docs of the service for what that means with two.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Recently accepted proofs, by their replay key.
pub(crate) struct ReplayCache {
    capacity: usize,
    inner: Mutex<Remembered>,
}

#[derive(Default)]
struct Remembered {
    until: HashMap<[u8; 16], i64>,
    /// The keys in the order they came, to forget them in that order.
    order: VecDeque<([u8; 16], i64)>,
}

/// Why a proof could not be remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotRemembered {
    /// It was accepted before.
    Seen,
    /// `capacity` proofs are younger than the window.
    Full,
}

impl ReplayCache {
    /// An empty cache of at most `capacity` proofs.
    pub(crate) fn new(capacity: usize) -> Self {
        ReplayCache {
            capacity,
            inner: Mutex::new(Remembered::default()),
        }
    }

    /// Remembers `key` until `until`, unless it is remembered already or the
    /// cache is full; proofs whose time is over at `now` are forgotten first.
    pub(crate) fn remember(&self, key: [u8; 16], until: i64, now: i64) -> Result<(), NotRemembered> {
        let mut remembered = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Remembered { until: map, order } = &mut *remembered;
        // In arrival order, which is nearly the order of their ends: a proof
        // that ends early behind one that ends late is forgotten late, and
        // counts until then.
        while let Some(&(oldest, oldest_until)) = order.front() {
            if oldest_until > now {
                break;
            }
            order.pop_front();
            if map.get(&oldest) == Some(&oldest_until) {
                map.remove(&oldest);
            }
        }
        if map.get(&key).is_some_and(|&known_until| known_until > now) {
            return Err(NotRemembered::Seen);
        }
        if map.len() >= self.capacity {
            return Err(NotRemembered::Full);
        }
        map.insert(key, until);
        order.push_back((key, until));
        Ok(())
    }

    /// How many proofs are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap().until.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_is_accepted_once_while_remembered_and_the_cache_is_bounded() {
        let cache = ReplayCache::new(3);
        assert_eq!(cache.remember([1; 16], 100, 0), Ok(()));
        assert_eq!(cache.remember([1; 16], 100, 50), Err(NotRemembered::Seen));
        assert_eq!(cache.remember([2; 16], 100, 50), Ok(()));
        assert_eq!(cache.remember([3; 16], 110, 50), Ok(()));
        assert_eq!(cache.remember([4; 16], 110, 50), Err(NotRemembered::Full));
        assert_eq!(cache.len(), 3);
        // At 100 the first two are over: forgotten, room again.
        assert_eq!(cache.remember([4; 16], 160, 100), Ok(()));
        assert_eq!(cache.len(), 2);
        // A forgotten proof would be refused for its age anyway.
        assert_eq!(cache.remember([1; 16], 200, 150), Ok(()));
    }
}
