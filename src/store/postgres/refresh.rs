//! Refreshing a session: a read of its row and a rotation written only if
//! the row is still as read, two round trips; the locked path for a reuse to
//! revoke.

use deadpool_postgres::{Object, Transaction};
use tokio_postgres::Row;

use super::sessions::revoke_session;
use super::sql::{self, p};
use crate::rotation::{self, Decision, RefreshState, Refusal};
use crate::store::{RefreshRequest, StoreError};

/// The cut-off mark a refresh is checked against: only when the claims
/// source replaced the claims (see `RefreshRequest::claims_mark`).
fn claims_mark(request: &RefreshRequest) -> Option<i64> {
    request.claims_json.as_ref().and(request.claims_mark)
}

/// A 32-byte hash column.
fn hash(row: &Row, column: usize) -> Option<[u8; 32]> {
    row.get::<_, Option<Vec<u8>>>(column)
        .and_then(|bytes| bytes.try_into().ok())
}

/// The refresh state of session `session_id`, its row locked until commit
/// when `lock`, and whether a cut-off of its user numbered after `mark`
/// exists (always `false` without a mark).
async fn refresh_state(
    client: &impl sql::Statements,
    session_id: &str,
    mark: Option<i64>,
    lock: bool,
) -> Result<Option<(RefreshState, bool)>, StoreError> {
    let select = if lock {
        "SELECT user_id, created_at, expires_at, absolute_expires_at, revoked_at IS NOT NULL,
                refresh_generation, refresh_hash, previous_refresh_hash, refresh_rotated_at, claims,
                refresh_ttl, persistent, dpop_jkt, dbsc_jkt,
                $2::bigint IS NOT NULL AND EXISTS
                    (SELECT 1 FROM user_cutoffs c WHERE c.user_id = sessions.user_id AND c.seq > $2)
         FROM sessions WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT user_id, created_at, expires_at, absolute_expires_at, revoked_at IS NOT NULL,
                refresh_generation, refresh_hash, previous_refresh_hash, refresh_rotated_at, claims,
                refresh_ttl, persistent, dpop_jkt, dbsc_jkt,
                $2::bigint IS NOT NULL AND EXISTS
                    (SELECT 1 FROM user_cutoffs c WHERE c.user_id = sessions.user_id AND c.seq > $2)
         FROM sessions WHERE id = $1"
    };
    let Some(row) = sql::query_opt(client, select, &[p(&session_id), p(&mark)]).await? else {
        return Ok(None);
    };
    let state = RefreshState {
        user_id: row.get(0),
        created_at: row.get(1),
        expires_at: row.get(2),
        absolute_expires_at: row.get(3),
        revoked: row.get(4),
        generation: row.get(5),
        current_hash: hash(&row, 6),
        previous_hash: hash(&row, 7),
        rotated_at: row.get(8),
        claims_json: row.get(9),
        refresh_ttl: row.get(10),
        persistent: row.get(11),
        dpop_jkt: row.get(12),
        dbsc_jkt: row.get(13),
    };
    Ok(Some((state, row.get(14))))
}

/// Rotates the session to `request`'s successor, unless its row changed since
/// `state` was read (another rotation, a revocation, new claims): whether it
/// did. One statement: its own transaction, or a part of the caller's.
async fn rotate(
    client: &impl sql::Statements,
    request: &RefreshRequest,
    state: &RefreshState,
    expires_at: i64,
) -> Result<bool, StoreError> {
    let updated = sql::execute(
        client,
        "UPDATE sessions
         SET refresh_generation = $2, refresh_hash = $3, previous_refresh_hash = $4,
             refresh_rotated_at = $5, last_seen_at = $5, expires_at = $6,
             ip = coalesce($7, ip), user_agent = coalesce($8, user_agent),
             claims = coalesce($9, claims)
         WHERE id = $1 AND refresh_generation = $10 AND revoked_at IS NULL AND claims = $11
           AND NOT ($12::bigint IS NOT NULL AND EXISTS
                    (SELECT 1 FROM user_cutoffs c WHERE c.user_id = sessions.user_id AND c.seq > $12))",
        &[
            p(&request.session_id),
            p(&(state.generation + 1)),
            p(&request.presented.successor_hashes[0].as_slice()),
            p(&request.presented.hash.as_slice()),
            p(&request.now),
            p(&expires_at),
            p(&request.client.ip),
            p(&request.client.user_agent),
            p(&request.claims_json),
            p(&state.generation),
            p(&state.claims_json),
            p(&claims_mark(request)),
        ],
    )
    .await?;
    Ok(updated == 1)
}

/// Decides what the presented token does to its session and applies that,
/// in two round trips at most for a refresh: the row is read, the decision
/// made from it, and a rotation written only if the row is still as read (its
/// generation, revocation and claims). A refresh that lost a race reads again
/// (and then, most likely, replays the winner's successor). A reuse to revoke,
/// or a second lost race, takes the locked path: the row read `FOR UPDATE` in
/// a transaction, as before.
pub(super) async fn refresh(
    client: &mut Object,
    request: &RefreshRequest,
) -> Result<Option<(RefreshState, Decision)>, StoreError> {
    for _ in 0..2 {
        let Some((state, stale)) = refresh_state(&**client, &request.session_id, claims_mark(request), false).await?
        else {
            return Ok(None);
        };
        if stale {
            return Ok(Some((state, Decision::Refuse(Refusal::StaleClaims))));
        }
        let decision = rotation::decide(&request.presented, &state, request.now, &request.policy);
        match decision {
            Decision::Refuse(_) | Decision::Replay { .. } => return Ok(Some((state, decision))),
            Decision::Rotate { expires_at } => {
                if rotate(&**client, request, &state, expires_at).await? {
                    return Ok(Some((state, decision)));
                }
            }
            Decision::Revoke => break,
        }
    }
    let tx = client.transaction().await?;
    let outcome = refresh_locked(&tx, request).await?;
    tx.commit().await?;
    Ok(outcome)
}

/// [`refresh`] with the session's row locked for the whole transaction.
async fn refresh_locked(
    tx: &Transaction<'_>,
    request: &RefreshRequest,
) -> Result<Option<(RefreshState, Decision)>, StoreError> {
    let (session_id, now) = (request.session_id.as_str(), request.now);
    let Some((state, stale)) = refresh_state(tx, session_id, claims_mark(request), true).await? else {
        return Ok(None);
    };
    if stale {
        return Ok(Some((state, Decision::Refuse(Refusal::StaleClaims))));
    }
    let mut decision = rotation::decide(&request.presented, &state, now, &request.policy);
    match decision {
        Decision::Refuse(_) | Decision::Replay { .. } => {}
        Decision::Revoke => {
            revoke_session(tx, session_id, now, "refresh token reuse", None).await?;
        }
        Decision::Rotate { expires_at } => {
            // The row is locked, so it is as read: only a cut-off of the user
            // committed since the read keeps the rotation from being written.
            if !rotate(tx, request, &state, expires_at).await? {
                decision = Decision::Refuse(Refusal::StaleClaims);
            }
        }
    }
    Ok(Some((state, decision)))
}
