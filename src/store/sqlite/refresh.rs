//! Refreshing a session: its refresh state read, the rotation decided
//! ([`rotation::decide`]) and written, in the batch's write transaction.
//!
//! **Guesses.** After a rotation this process committed, the writer knows the
//! session's row exactly as it wrote it, and most often the next refresh of
//! that session is the next thing to touch the row. So the writer keeps the
//! row it wrote (its *guess*, [`Guesses`]), decides the next refresh from it,
//! and writes that rotation with an `UPDATE` whose `WHERE` compares every
//! column the decision and the answer read with the guess: a compare-and-swap.
//! The read of the row is skipped (a quarter of a refresh's SQLite work,
//! `scripts/instructions.sh`). Nothing trusts a guess: when anything changed
//! the row since (a logout, a revocation, new claims, another process's
//! rotation, a batch whose commit failed), the `UPDATE` matches no row, and the
//! row is read and decided from as it is. Only a rotation is taken from a
//! guess; a replay, a refusal or a reuse is always decided from the row read.

use std::collections::HashMap;
use std::sync::Mutex;

use rusqlite::{params, OptionalExtension};

use super::{lock, Tx};
use crate::rotation::{self, Decision, Presented, RefreshState};
use crate::store::{RefreshRequest, StoreError};

/// The sessions whose row this process's writer wrote last, at most.
const GUESSES: usize = 1024;
/// A row whose texts (user id, claims, key thumbprints) are longer is not
/// kept: the bound on the memory of one guess.
const GUESS_TEXT_BYTES: usize = 1024;

/// The rows the writer wrote at its last rotation of each session (see the
/// module docs): at most [`GUESSES`] of [`GUESS_TEXT_BYTES`] of text each.
#[derive(Default)]
pub(super) struct Guesses(Mutex<HashMap<String, Guess>>);

/// A session's row as this process's writer wrote it, and its rowid.
struct Guess {
    rowid: i64,
    row: RefreshState,
}

impl Guesses {
    /// The guess for `session_id`, taken out: a refresh keeps the row it
    /// writes, and nothing else.
    fn take(&self, session_id: &str) -> Option<Guess> {
        let mut guesses = lock(&self.0);
        if guesses.is_empty() {
            return None;
        }
        guesses.remove(session_id)
    }

    /// Keeps `row`, the row `rowid` of session `session_id` as a rotation
    /// wrote it.
    fn keep(&self, session_id: &str, rowid: i64, row: RefreshState) {
        let text = row.user_id.len()
            + row.claims_json.len()
            + row.dpop_jkt.as_ref().map_or(0, String::len)
            + row.dbsc_jkt.as_ref().map_or(0, String::len);
        if text > GUESS_TEXT_BYTES {
            return;
        }
        let mut guesses = lock(&self.0);
        if guesses.len() >= GUESSES {
            if let Some(any) = guesses.keys().next().cloned() {
                guesses.remove(&any);
            }
        }
        guesses.insert(session_id.to_owned(), Guess { rowid, row });
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        lock(&self.0).len()
    }
}

/// The row `state` becomes when `presented` rotates it at `now`.
fn rotated(mut state: RefreshState, presented: &Presented, now: i64, expires_at: i64) -> RefreshState {
    state.generation += 1;
    state.previous_hash = Some(presented.hash);
    state.current_hash = Some(presented.successor_hashes[0]);
    state.rotated_at = Some(now);
    state.expires_at = expires_at;
    state
}

impl Tx<'_> {
    /// Reads session `session_id`'s refresh state (or takes this process's
    /// guess of it, see the module docs), decides what `presented` does to it
    /// ([`rotation::decide`]) and applies that, all in this transaction.
    /// `None` when there is no such session.
    pub(super) fn refresh(
        &self,
        request: &RefreshRequest,
        guesses: &Guesses,
    ) -> Result<Option<(RefreshState, Decision)>, StoreError> {
        let guess = guesses.take(&request.session_id);
        // Claims from a claims source are checked against the user's
        // cut-offs, which a guess does not hold: those read the row.
        if let Some(Guess { rowid, row }) = guess.filter(|_| request.claims_json.is_none()) {
            if let Decision::Rotate { expires_at } =
                rotation::decide(&request.presented, &row, request.now, &request.policy)
            {
                if self.rotate_guessed(request, rowid, &row, expires_at)? {
                    let written = rotated(row.clone(), &request.presented, request.now, expires_at);
                    guesses.keep(&request.session_id, rowid, written);
                    return Ok(Some((row, Decision::Rotate { expires_at })));
                }
            }
        }
        let Some((state, decision, rowid)) = self.refresh_read(request)? else {
            return Ok(None);
        };
        if let Decision::Rotate { expires_at } = decision {
            let mut written = rotated(state.clone(), &request.presented, request.now, expires_at);
            if let Some(claims) = &request.claims_json {
                written.claims_json.clone_from(claims);
            }
            guesses.keep(&request.session_id, rowid, written);
        }
        Ok(Some((state, decision)))
    }

    /// Writes the rotation of `guess` (row `rowid`) by `request`'s token,
    /// which [`rotation::decide`] found to be its current one, to
    /// `expires_at`, if the session's row is `guess` in every column a
    /// refresh reads: whether it was.
    fn rotate_guessed(
        &self,
        request: &RefreshRequest,
        rowid: i64,
        guess: &RefreshState,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let rotated = self
            .0
            .prepare_cached(
                "UPDATE sessions SET refresh_generation = ?3 + 1, refresh_hash = ?5, \
                 previous_refresh_hash = ?4, refresh_rotated_at = ?6, last_seen_at = ?6, expires_at = ?7, \
                 ip = coalesce(?8, ip), user_agent = coalesce(?9, user_agent) \
                 WHERE rowid = ?1 AND id = ?2 AND refresh_generation = ?3 AND refresh_hash = ?4 \
                 AND revoked_at IS NULL AND expires_at = ?10 AND user_id = ?11 AND created_at = ?12 \
                 AND absolute_expires_at = ?13 AND claims = ?14 AND refresh_ttl IS ?15 AND persistent = ?16 \
                 AND dpop_jkt IS ?17 AND dbsc_jkt IS ?18 AND previous_refresh_hash IS ?19 \
                 AND refresh_rotated_at IS ?20",
            )?
            .execute(params![
                rowid,
                request.session_id,
                guess.generation,
                request.presented.hash,
                request.presented.successor_hashes[0],
                request.now,
                expires_at,
                request.client.ip,
                request.client.user_agent,
                guess.expires_at,
                guess.user_id,
                guess.created_at,
                guess.absolute_expires_at,
                guess.claims_json,
                guess.refresh_ttl,
                guess.persistent,
                guess.dpop_jkt,
                guess.dbsc_jkt,
                guess.previous_hash,
                guess.rotated_at,
            ])?;
        Ok(rotated == 1)
    }

    /// [`refresh`](Self::refresh) from the row as read; with the row's rowid.
    fn refresh_read(&self, request: &RefreshRequest) -> Result<Option<(RefreshState, Decision, i64)>, StoreError> {
        let RefreshRequest {
            session_id,
            presented,
            now,
            policy,
            client,
            claims_json,
            claims_mark,
        } = request;
        let (session_id, now) = (session_id.as_str(), *now);
        // The row's rowid comes with it: the rotation below rewrites the row
        // by it, in this transaction, without looking the id up again.
        let found = self
            .0
            .prepare_cached(
                "SELECT user_id, created_at, expires_at, absolute_expires_at, revoked_at IS NOT NULL,
                        refresh_generation, refresh_hash, previous_refresh_hash, refresh_rotated_at, claims,
                        refresh_ttl, persistent, dpop_jkt, dbsc_jkt, rowid
                 FROM sessions WHERE id = ?1",
            )?
            .query_row([session_id], |row| {
                let state = RefreshState {
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
                    refresh_ttl: row.get(10)?,
                    persistent: row.get(11)?,
                    dpop_jkt: row.get(12)?,
                    dbsc_jkt: row.get(13)?,
                };
                Ok((state, row.get::<_, i64>(14)?))
            })
            .optional()?;
        let Some((state, rowid)) = found else {
            return Ok(None);
        };
        if let (Some(_), Some(mark)) = (claims_json, claims_mark) {
            let cut_after: bool = self
                .0
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM user_cutoffs WHERE user_id = ?1 AND seq > ?2)")?
                .query_row(params![state.user_id, mark], |row| row.get(0))?;
            if cut_after {
                return Ok(Some((state, Decision::Refuse(rotation::Refusal::StaleClaims), rowid)));
            }
        }
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
                             ip = coalesce(?7, ip), user_agent = coalesce(?8, user_agent),
                             claims = coalesce(?10, claims)
                         WHERE rowid = ?1 AND refresh_generation = ?9",
                    )?
                    .execute(params![
                        rowid,
                        state.generation + 1,
                        presented.successor_hashes[0],
                        presented.hash,
                        now,
                        expires_at,
                        client.ip,
                        client.user_agent,
                        state.generation,
                        claims_json,
                    ])?;
                // The row moved on since it was read (another writer): the
                // successor would name a lineage the store does not hold.
                if rotated == 0 {
                    decision = Decision::Refuse(rotation::Refusal::NotInLineage);
                }
            }
        }
        Ok(Some((state, decision, rowid)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::RotationPolicy;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{ClientRecord, Durability};

    const NOW: i64 = 1_000_000;

    fn hash(n: u8) -> [u8; 32] {
        [n; 32]
    }

    /// The session row the tests start from, as this process's writer wrote it.
    fn written() -> RefreshState {
        RefreshState {
            user_id: "user".into(),
            created_at: NOW - 1000,
            expires_at: NOW + 3600,
            absolute_expires_at: NOW + 86_400,
            revoked: false,
            generation: 5,
            current_hash: Some(hash(5)),
            previous_hash: Some(hash(4)),
            rotated_at: Some(NOW - 10),
            claims_json: r#"{"name":"a"}"#.into(),
            refresh_ttl: None,
            persistent: true,
            dpop_jkt: None,
            dbsc_jkt: None,
        }
    }

    fn request(generation: i64, proven_key: Option<&str>) -> RefreshRequest {
        RefreshRequest {
            session_id: "s1".into(),
            presented: Presented {
                generation,
                hash: hash(generation as u8),
                successor_hashes: vec![hash(generation as u8 + 1)],
                proven_key: proven_key.map(str::to_owned),
            },
            now: NOW,
            policy: RotationPolicy {
                reuse_grace: 30,
                lost_response_recovery: false,
                idle_timeout: 3600,
                refresh_ttl: 86_400,
            },
            client: ClientRecord {
                ip: Some("192.0.2.1".into()),
                user_agent: None,
            },
            claims_json: None,
            claims_mark: None,
        }
    }

    /// Everything of the session's row, for comparing two outcomes.
    fn row(tx: &Tx<'_>) -> String {
        tx.0.query_row("SELECT * FROM sessions", [], |row| {
            Ok((0..row.as_ref().column_count())
                .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                .collect::<Vec<_>>()
                .join("|"))
        })
        .optional()
        .unwrap()
        .unwrap_or_default()
    }

    /// Whatever another process or another write did to the row since this
    /// process's writer rotated it, a refresh decided from the guess ends as
    /// one decided from the row read: the same answer, the same row. Only
    /// the unchanged row is rotated from the guess.
    #[rocket::async_test]
    async fn a_guess_decides_only_what_the_row_read_would() {
        let directory = std::env::temp_dir().join(format!("rss-guess-{}", crate::crypto::random_id()));
        std::fs::create_dir_all(&directory).unwrap();
        let store = SqliteStore::open(&directory.join("sessions.db"), Durability::PowerLoss).unwrap();
        let compared = store
            .write(|tx| {
                let w = written();
                tx.0.execute(
                    "INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at, absolute_expires_at,
                                           claims, refresh_generation, refresh_hash, previous_refresh_hash,
                                           refresh_rotated_at)
                     VALUES ('s1', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?3)",
                    params![
                        w.user_id,
                        w.created_at,
                        w.rotated_at,
                        w.expires_at,
                        w.absolute_expires_at,
                        w.claims_json,
                        w.generation,
                        w.current_hash,
                        w.previous_hash
                    ],
                )?;
                let changes = [
                    "",
                    "UPDATE sessions SET revoked_at = 999000, revoked_reason = 'logout'",
                    // Another process's rotation, then its grace window's end.
                    "UPDATE sessions SET refresh_generation = 6, refresh_hash = x'0606060606060606060606060606060606060606060606060606060606060606', previous_refresh_hash = x'0505050505050505050505050505050505050505050505050505050505050505', refresh_rotated_at = 1000000",
                    "UPDATE sessions SET refresh_generation = 6, refresh_hash = x'0606060606060606060606060606060606060606060606060606060606060606', previous_refresh_hash = x'0505050505050505050505050505050505050505050505050505050505050505', refresh_rotated_at = 900000",
                    // Not a hash this crate writes: both fail alike.
                    "UPDATE sessions SET refresh_hash = x'07'",
                    "UPDATE sessions SET refresh_hash = NULL",
                    "UPDATE sessions SET previous_refresh_hash = NULL",
                    "UPDATE sessions SET refresh_rotated_at = 990000",
                    "UPDATE sessions SET refresh_rotated_at = NULL",
                    "UPDATE sessions SET user_id = 'someone else'",
                    "UPDATE sessions SET created_at = 1",
                    "UPDATE sessions SET expires_at = 999999",
                    "UPDATE sessions SET expires_at = 1000001",
                    "UPDATE sessions SET absolute_expires_at = 1000060",
                    r#"UPDATE sessions SET claims = '{"name":"b"}'"#,
                    "UPDATE sessions SET refresh_ttl = 60",
                    "UPDATE sessions SET persistent = 0",
                    "UPDATE sessions SET dpop_jkt = 'key'",
                    "UPDATE sessions SET dbsc_jkt = 'key'",
                    "UPDATE sessions SET ip = '198.51.100.7', label = 'phone', data = '{\"n\":1}'",
                    "DELETE FROM sessions",
                ];
                let mut compared = 0;
                for change in changes {
                    for (generation, key) in [(5, None), (4, None), (3, None), (6, None), (5, Some("key"))] {
                        let request = request(generation, key);
                        tx.0.execute_batch("SAVEPOINT one_case")?;
                        if !change.is_empty() {
                            tx.0.execute(change, [])?;
                        }
                        tx.0.execute_batch("SAVEPOINT guessed")?;
                        let guesses = Guesses::default();
                        guesses.keep("s1", 1, written());
                        let guessed = format!("{:?}", tx.refresh(&request, &guesses));
                        let guessed_row = row(tx);
                        let kept = guesses.len();
                        tx.0.execute_batch("ROLLBACK TO guessed")?;
                        let read = format!("{:?}", tx.refresh(&request, &Guesses::default()));
                        assert_eq!(guessed, read, "{change:?}, token {generation} {key:?}");
                        assert_eq!(guessed_row, row(tx), "{change:?}, token {generation} {key:?}");
                        // A rotation keeps the row it wrote; nothing else does.
                        assert_eq!(kept == 1, read.contains("Rotate"), "{change:?}, token {generation} {key:?}");
                        // The compare-and-swap itself: it writes only over
                        // the row as written.
                        tx.0.execute_batch("ROLLBACK TO guessed")?;
                        let swapped = tx.rotate_guessed(&request, 1, &written(), NOW + 3600)?;
                        // (It also checks that the token is the current one.)
                        let untouched = change.is_empty() || change.contains("label");
                        let current = generation == 5;
                        assert_eq!(swapped, untouched && current, "{change:?}, token {generation} {key:?}");
                        tx.0.execute_batch("ROLLBACK TO one_case; RELEASE one_case")?;
                        compared += 1;
                    }
                }
                Ok(compared)
            })
            .await
            .unwrap();
        assert_eq!(compared, 21 * 5);
        drop(store);
        let _ = std::fs::remove_dir_all(directory);
    }

    #[test]
    fn guesses_stay_bounded() {
        let guesses = Guesses::default();
        for n in 0..3 * GUESSES {
            guesses.keep(&format!("session {n}"), n as i64, written());
        }
        assert_eq!(guesses.len(), GUESSES);
        // A row with more text than a guess may hold is not kept.
        let mut long = written();
        long.claims_json = format!(r#"{{"a":"{}"}}"#, "x".repeat(GUESS_TEXT_BYTES));
        let fresh = Guesses::default();
        fresh.keep("long", 1, long);
        assert_eq!(fresh.len(), 0);
        assert!(fresh.take("long").is_none());
    }
}
