//! Access tokens already verified: the guard's shortcut for a token it has
//! checked before.
//!
//! A client sends the same access token with every request for its whole
//! life, and everything the check decides about it but its times is the same
//! each time: the signature, the header, the claims' form, the lifetime, the
//! issuer and the audience depend on the token and the keys alone, and the
//! keys are fixed for the life of the server. So the claims of a token that
//! passed the whole check are kept here, under the token itself; presented
//! again, the very same token (compared in constant time) gets them back
//! without base64, HMAC or JSON, and its times are checked against the clock
//! of this request as the full check would. Revocations are not this module's:
//! the caller checks them whichever path gave the claims, and may keep a
//! number with the token ([`Kept::note`]): the guard notes the revocation
//! generation in which it last found the token unrevoked, and looks again
//! once anything has been revoked since.
//!
//! Bounded: [`SLOTS`] entries at most, each for a token of at most
//! [`MAX_CACHED_LEN`] bytes (longer ones are checked in full each time), in a
//! direct-mapped table: a token takes the slot its hash names, replacing the
//! one there. Only tokens that passed the check get in, so a client without a
//! valid token cannot add anything, and one with many can only make others
//! miss, which costs them the full check, never a wrong answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::Confirmation;
use crate::crypto::{constant_time_eq, random_bytes};
use crate::user::AuthUser;

/// How many verified tokens are kept at most: 2 to the power of
/// [`SLOT_BITS`].
pub(crate) const SLOTS: usize = 1 << SLOT_BITS;
const SLOT_BITS: u32 = 10;
/// Longer tokens are not kept: the bound on the memory of an entry.
pub(crate) const MAX_CACHED_LEN: usize = 1024;

/// A token that passed the whole check, and what its claims say: the user,
/// shared with every request that presents it (not copied), `nbf`, and its
/// confirmation claim.
struct Verified {
    token: Box<[u8]>,
    user: Arc<AuthUser>,
    nbf: Option<i64>,
    cnf: Option<Confirmation>,
    /// The caller's note on the token (see [`Kept::note`]).
    note: AtomicU64,
}

/// A kept token: its claims, and a number the caller keeps with it while it
/// is kept (the guard's: the revocation generation in which it last found
/// the token unrevoked).
#[derive(Clone)]
pub(crate) struct Kept(Arc<Verified>);

impl Kept {
    /// What [`note`](Self::note) reads before anything was noted.
    pub(crate) const NO_NOTE: u64 = u64::MAX;

    /// The user the token names.
    pub(crate) fn user(&self) -> &Arc<AuthUser> {
        &self.0.user
    }

    /// Its `nbf` claim.
    pub(crate) fn nbf(&self) -> Option<i64> {
        self.0.nbf
    }

    /// Its confirmation claim.
    pub(crate) fn cnf(&self) -> &Option<Confirmation> {
        &self.0.cnf
    }

    /// The last number noted ([`NO_NOTE`](Self::NO_NOTE) at first).
    pub(crate) fn note(&self) -> u64 {
        self.0.note.load(Ordering::SeqCst)
    }

    pub(crate) fn set_note(&self, note: u64) {
        self.0.note.store(note, Ordering::SeqCst);
    }
}

/// The verified tokens (see the module docs).
pub(crate) struct VerifiedTokens {
    /// Mixed into the slot of a token, so that which tokens share a slot
    /// differs from one server to the next.
    seed: u64,
    slots: Box<[Mutex<Option<Arc<Verified>>>]>,
}

impl VerifiedTokens {
    pub(crate) fn new() -> Self {
        VerifiedTokens {
            seed: u64::from_ne_bytes(random_bytes()),
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// The slot of `token`, from its last 8 bytes: part of its signature,
    /// which for a token that can get in (a valid one) no client can choose.
    fn slot(&self, token: &str) -> &Mutex<Option<Arc<Verified>>> {
        let mut tail = [0; 8];
        let last = &token.as_bytes()[token.len().saturating_sub(8)..];
        tail[..last.len()].copy_from_slice(last);
        let mixed = (u64::from_le_bytes(tail) ^ self.seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // The top bits of the product: those that every bit of the tail moves.
        &self.slots[(mixed >> (u64::BITS - SLOT_BITS)) as usize]
    }

    /// The kept `token`, when this very token passed the check before.
    pub(crate) fn find(&self, token: &str) -> Option<Kept> {
        if token.len() > MAX_CACHED_LEN {
            return None;
        }
        // The lock is held only to take the entry: comparing and cloning
        // happen outside it.
        let entry = self
            .slot(token)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        constant_time_eq(&entry.token, token.as_bytes()).then_some(Kept(entry))
    }

    /// Keeps what the claims of `token`, which just passed the whole check,
    /// say; `None` for a token too long to keep.
    pub(crate) fn keep(
        &self,
        token: &str,
        user: Arc<AuthUser>,
        nbf: Option<i64>,
        cnf: Option<Confirmation>,
    ) -> Option<Kept> {
        if token.len() > MAX_CACHED_LEN {
            return None;
        }
        let entry = Arc::new(Verified {
            token: token.as_bytes().into(),
            user,
            nbf,
            cnf,
            note: AtomicU64::new(Kept::NO_NOTE),
        });
        let replaced = self
            .slot(token)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(entry.clone());
        // Freed outside the lock.
        drop(replaced);
        Some(Kept(entry))
    }

    /// How many tokens are kept now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.iter().filter(|slot| slot.lock().unwrap().is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(sub: &str) -> Arc<AuthUser> {
        let claims: super::super::AccessClaims = serde_json::from_value(serde_json::json!({
            "sub": sub, "sid": "s", "jti": "j", "iat": 1, "exp": 2, "auth_time": 1, "roles": ["a"],
        }))
        .unwrap();
        Arc::new(claims.into_user())
    }

    fn keep(tokens: &VerifiedTokens, token: &str, sub: &str) -> Option<Kept> {
        tokens.keep(token, user(sub), None, None)
    }

    fn sub_of(tokens: &VerifiedTokens, token: &str) -> Option<String> {
        tokens.find(token).map(|kept| kept.user().id.clone())
    }

    #[test]
    fn only_the_very_same_token_finds_its_claims() {
        let tokens = VerifiedTokens::new();
        let token = format!("{}.{}.{}", "h".repeat(40), "p".repeat(200), "s".repeat(43));
        assert_eq!(sub_of(&tokens, &token), None, "nothing kept yet");
        keep(&tokens, &token, "u1");
        assert_eq!(sub_of(&tokens, &token).as_deref(), Some("u1"));
        // The same signature (the same slot) with another byte before it, a
        // prefix, and the token with a byte more: none is the token.
        let mut other = token.clone().into_bytes();
        other[10] = b'x';
        let other = String::from_utf8(other).unwrap();
        for near in [other.as_str(), &token[1..], &format!("h{token}")] {
            assert_eq!(sub_of(&tokens, near), None, "{near}");
        }
    }

    #[test]
    fn a_token_replaces_the_one_in_its_slot_and_the_table_stays_bounded() {
        let tokens = VerifiedTokens::new();
        for n in 0..10 * SLOTS {
            keep(&tokens, &format!("header.payload.signature{n:08}"), &n.to_string());
        }
        let kept = tokens.len();
        assert!(kept <= SLOTS && kept > SLOTS / 2, "{kept} kept");
        // The last one is there, whatever it replaced.
        let last = 10 * SLOTS - 1;
        assert_eq!(
            sub_of(&tokens, &format!("header.payload.signature{last:08}")),
            Some(last.to_string())
        );
    }

    #[test]
    fn a_note_stays_with_its_token_until_it_is_replaced() {
        let tokens = VerifiedTokens::new();
        let kept = keep(&tokens, "header.payload.signature", "u").unwrap();
        assert_eq!(kept.note(), Kept::NO_NOTE);
        kept.set_note(7);
        assert_eq!(tokens.find("header.payload.signature").unwrap().note(), 7);
        // Kept again (a second first check at once): a new entry, no note.
        keep(&tokens, "header.payload.signature", "u");
        assert_eq!(tokens.find("header.payload.signature").unwrap().note(), Kept::NO_NOTE);
    }

    #[test]
    fn a_token_longer_than_the_cap_is_not_kept() {
        let tokens = VerifiedTokens::new();
        let long = "t".repeat(MAX_CACHED_LEN + 1);
        assert!(keep(&tokens, &long, "u").is_none());
        assert_eq!((tokens.len(), sub_of(&tokens, &long)), (0, None));
        let longest = "t".repeat(MAX_CACHED_LEN);
        keep(&tokens, &longest, "u");
        assert_eq!(sub_of(&tokens, &longest).as_deref(), Some("u"));
    }
}
