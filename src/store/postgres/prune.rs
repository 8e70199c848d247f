//! Prune batches: `DELETE … WHERE key IN (SELECT … LIMIT n)`, each its own
//! transaction, found through the expiry indexes.

use deadpool_postgres::Object;

use super::sql::{self, p};
use super::ADVISORY_KEY;
use crate::store::{PruneCutoffs, PruneKind, PruneTurn, PrunedBatch, StoreError};

/// Deletes at most `batch` rows of `kind` that nothing needs any more. The
/// capped tables' batches lock their count row first, in the lock order of
/// `failures.rs`.
pub(super) async fn batch(
    client: &mut Object,
    kind: PruneKind,
    cutoffs: PruneCutoffs,
    batch: u32,
) -> Result<PrunedBatch, StoreError> {
    // $1 and $2 the cut-offs ($2 is used by two kinds only), $3 the batch.
    let (delete, first, second) = match kind {
        PruneKind::Sessions => (
            "DELETE FROM sessions WHERE id IN
                 (SELECT id FROM sessions WHERE expires_at <= $1 OR revoked_at <= $2 LIMIT $3)",
            cutoffs.expired_at_or_before,
            cutoffs.revoked_at_or_before,
        ),
        PruneKind::Blocklist => (
            "DELETE FROM revoked_tokens WHERE jti IN
                 (SELECT jti FROM revoked_tokens WHERE expires_at <= $1 AND $2::bigint IS NOT NULL LIMIT $3)",
            cutoffs.blocklist_expired_at_or_before,
            0,
        ),
        // A session's entry goes with its session's row.
        PruneKind::RevocationFeed => (
            "DELETE FROM revocation_log WHERE seq IN
                 (SELECT seq FROM revocation_log
                  WHERE at <= $1 AND (jti IS NOT NULL OR at <= $2) LIMIT $3)",
            cutoffs.blocklist_expired_at_or_before,
            cutoffs.revoked_at_or_before,
        ),
        PruneKind::FailureCounters => (
            "DELETE FROM auth_failures WHERE scope IN
                 (SELECT scope FROM auth_failures WHERE window_start <= $1 AND $2::bigint IS NOT NULL LIMIT $3)",
            cutoffs.window_started_at_or_before,
            0,
        ),
        PruneKind::KnownNetworks => (
            "DELETE FROM auth_known_networks WHERE scope IN
                 (SELECT scope FROM auth_known_networks WHERE last_success <= $1 AND $2::bigint IS NOT NULL LIMIT $3)",
            cutoffs.known_network_used_at_or_before,
            0,
        ),
        PruneKind::UserCutoffs => (
            "DELETE FROM user_cutoffs WHERE user_id IN
                 (SELECT user_id FROM user_cutoffs WHERE at <= $1 AND $2::bigint IS NOT NULL LIMIT $3)",
            cutoffs.user_cutoff_at_or_before,
            0,
        ),
    };
    let tx = client.transaction().await?;
    let counted = match kind {
        PruneKind::FailureCounters => Some("auth_failures"),
        PruneKind::KnownNetworks => Some("auth_known_networks"),
        _ => None,
    };
    if let Some(table) = counted {
        super::failures::lock_count(&tx, table).await?;
    }
    let limit = i64::from(batch);
    let deleted = sql::execute(&tx, delete, &[p(&first), p(&second), p(&limit)]).await?;
    tx.commit().await?;
    Ok(PrunedBatch {
        deleted: deleted as usize,
        resume_after: (deleted >= batch as u64).then_some(0),
    })
}

/// The prune turn on `client`, a connection of its own: a transaction left
/// open for the pass, holding a transaction-level advisory lock; `None` when
/// another instance holds it. A transaction, not the session: behind a
/// pooler in transaction mode a session's lock would stay on whichever
/// server connection took it. (Read committed, it holds no snapshot between
/// statements, so it keeps nothing from vacuum.)
pub(super) async fn take_turn(client: deadpool_postgres::ClientWrapper) -> Result<Option<PruneTurn>, StoreError> {
    client.batch_execute("BEGIN").await?;
    let taken: bool = sql::query_one(
        &client,
        "SELECT pg_try_advisory_xact_lock($1, hashtext(current_schema()))",
        &[p(&ADVISORY_KEY)],
    )
    .await?
    .get(0);
    if !taken {
        client.batch_execute("ROLLBACK").await?;
        return Ok(None);
    }
    Ok(Some(Box::new(client) as PruneTurn))
}

/// Gives a turn back at once (the commit releases the lock); on failure the
/// lock goes with the connection, dropped here.
pub(super) async fn end_turn(turn: PruneTurn) {
    let Ok(client) = turn.downcast::<deadpool_postgres::ClientWrapper>() else {
        return;
    };
    let _ = client.batch_execute("COMMIT").await;
}
