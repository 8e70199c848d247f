//! [`KeyTable`]: a set of [`IdKey`]s, each with the time until which it
//! matters, in one flat array of 24-byte slots, at most three in four taken:
//! 32 bytes an entry when built in one pass (at launch, after pruning), at
//! most 64 as it grows between; and a lookup that reads one or two cache
//! lines whatever the size (the keys are random bytes, so open addressing
//! with linear probing spreads them evenly).

use crate::crypto::IdKey;

/// An empty slot's `until`: no entry has it (see [`KeyTable::insert`]).
const EMPTY: i64 = i64::MIN;

#[derive(Clone, Copy)]
struct Slot {
    key: IdKey,
    until: i64,
}

const VACANT: Slot = Slot {
    key: IdKey([0; 16]),
    until: EMPTY,
};

/// Keys and their times; inserting a key again keeps the later time.
pub(crate) struct KeyTable {
    slots: Vec<Slot>,
    len: usize,
}

impl Default for KeyTable {
    fn default() -> Self {
        KeyTable::with_capacity(0)
    }
}

impl KeyTable {
    /// Room for `entries` before it grows.
    pub(crate) fn with_capacity(entries: usize) -> KeyTable {
        KeyTable {
            slots: vec![VACANT; slots_for(entries)],
            len: 0,
        }
    }

    /// `entries` in one pass, sized for them.
    pub(crate) fn from_entries(entries: impl ExactSizeIterator<Item = (IdKey, i64)>) -> KeyTable {
        let mut table = KeyTable::with_capacity(entries.len());
        for (key, until) in entries {
            table.insert(key, until);
        }
        table
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The slot where a probe for `key` starts: its first 8 bytes, mixed by
    /// one multiplication (they are uniform already, being random or a
    /// digest), scaled to the table.
    fn home(&self, key: &IdKey) -> usize {
        let mut first = [0u8; 8];
        first.copy_from_slice(&key.0[..8]);
        let mixed = u64::from_le_bytes(first).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        ((u128::from(mixed) * self.slots.len() as u128) >> 64) as usize
    }

    /// The slot holding `key`, or the vacant one where it would go.
    fn find(&self, key: &IdKey) -> usize {
        let mut at = self.home(key);
        loop {
            let slot = &self.slots[at];
            if slot.until == EMPTY || slot.key == *key {
                return at;
            }
            at += 1;
            if at == self.slots.len() {
                at = 0;
            }
        }
    }

    pub(crate) fn contains(&self, key: &IdKey) -> bool {
        self.slots[self.find(key)].until != EMPTY
    }

    /// Adds `key` until `until` (a key already there keeps the later time).
    pub(crate) fn insert(&mut self, key: IdKey, until: i64) {
        // `EMPTY` marks a vacant slot; the earliest time is one later.
        let until = until.max(EMPTY + 1);
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let at = self.find(&key);
        let slot = &mut self.slots[at];
        if slot.until == EMPTY {
            *slot = Slot { key, until };
            self.len += 1;
        } else {
            slot.until = slot.until.max(until);
        }
    }

    fn grow(&mut self) {
        self.rebuild(self.slots.len() * 2, |_| true);
    }

    /// Drops every entry whose time is at or before `now`; gives how many.
    pub(crate) fn forget_until(&mut self, now: i64) -> usize {
        // A vacant slot's `EMPTY` is never later than `now`.
        let kept = self.slots.iter().filter(|slot| slot.until > now).count();
        let forgotten = self.len - kept;
        if forgotten > 0 {
            self.rebuild(slots_for(kept), |until| until > now);
        }
        forgotten
    }

    /// Moves the entries whose time `keep`s into a new array of `slots`
    /// slots, which holds them under three in four.
    fn rebuild(&mut self, slots: usize, keep: impl Fn(i64) -> bool) {
        let old = std::mem::replace(&mut self.slots, vec![VACANT; slots]);
        self.len = 0;
        for slot in old.into_iter().filter(|slot| slot.until != EMPTY && keep(slot.until)) {
            // Each key is there once: its place is the first vacant one.
            let at = self.find(&slot.key);
            self.slots[at] = slot;
            self.len += 1;
        }
    }
}

/// Slots for `entries`, at most three in four taken: probes stay short.
fn slots_for(entries: usize) -> usize {
    entries.saturating_mul(4).div_ceil(3).max(16)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::crypto::random_bytes;

    #[test]
    fn the_table_agrees_with_a_map_through_inserts_growth_and_forgetting() {
        let mut table = KeyTable::default();
        let mut model: HashMap<IdKey, i64> = HashMap::new();
        let keys: Vec<IdKey> = (0..5_000).map(|_| IdKey(random_bytes())).collect();
        for (n, key) in keys.iter().enumerate() {
            let until = (n % 97) as i64;
            table.insert(*key, until);
            let kept = model.entry(*key).or_insert(until);
            *kept = (*kept).max(until);
            if n % 3 == 0 {
                // Again, later: the later time stays.
                table.insert(*key, until + 50);
                model.insert(*key, until + 50);
            }
        }
        assert_eq!(table.len(), model.len());
        assert!(keys.iter().all(|key| table.contains(key)));
        assert!(!table.contains(&IdKey(random_bytes())));
        let forgotten = table.forget_until(40);
        let before = model.len();
        model.retain(|_, until| *until > 40);
        assert_eq!(forgotten, before - model.len());
        assert_eq!(table.len(), model.len());
        for key in &keys {
            assert_eq!(table.contains(key), model.contains_key(key));
        }
    }

    #[test]
    fn a_full_row_of_slots_wraps_around() {
        // Ten keys whose probes all start at the last slot: nine of them
        // wrap around to the first slots.
        let mut table = KeyTable::with_capacity(12);
        let last = table.slots.len() - 1;
        let mut at_end = Vec::new();
        while at_end.len() < 10 {
            let key = IdKey(random_bytes());
            if table.home(&key) == last {
                at_end.push(key);
            }
        }
        for key in &at_end {
            table.insert(*key, 1);
        }
        assert_eq!(table.slots.len(), last + 1, "no growth: the probes wrapped");
        assert!(at_end.iter().all(|key| table.contains(key)));
        assert!(table.slots[..9].iter().all(|slot| slot.until != EMPTY));
        assert!(!table.contains(&IdKey(random_bytes())));
    }

    #[test]
    fn an_entry_loaded_in_one_pass_costs_at_most_32_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 24);
        let entries = 100_000;
        let table = KeyTable::from_entries((0..entries).map(|_| (IdKey(random_bytes()), 1)));
        assert_eq!(table.len(), entries);
        // (A slot's rounding and the smallest table aside.)
        let slot = std::mem::size_of::<Slot>();
        assert!(table.slots.len() * slot <= entries * 32 + 16 * slot);
        // Growing one at a time: at most twice that.
        let mut grown = KeyTable::default();
        for _ in 0..entries {
            grown.insert(IdKey(random_bytes()), 1);
        }
        assert!(grown.slots.len() * slot <= entries * 64 + 16 * slot);
    }

    #[test]
    fn times_outside_the_range_are_kept() {
        let mut table = KeyTable::default();
        table.insert(IdKey([1; 16]), i64::MIN);
        table.insert(IdKey([2; 16]), i64::MAX);
        assert!(table.contains(&IdKey([1; 16])) && table.contains(&IdKey([2; 16])));
        assert_eq!(table.forget_until(0), 1);
        assert!(table.contains(&IdKey([2; 16])));
    }
}
