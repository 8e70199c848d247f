//! Sessions, revocations and the revocation feed (refreshes: `refresh.rs`).

use deadpool_postgres::{Object, Transaction};

use super::sql::{self, p};
use super::{CHANNEL, USER_LOCK_KEY};
use crate::crypto::IdKey;
use crate::store::{
    Created, DataUpdate, FeedPage, NewSession, Revocation, RevocationSnapshot, Revoked, SessionRecord, StoreError,
    EVERYONE,
};

/// Inserts a session with its first refresh token's hash, unless its
/// credential check began before a cut-off of its user (`false`). The
/// counter's row, read `FOR SHARE`, makes a cut-off in progress commit first
/// (its sessions' update then sees this one) or wait for this one.
pub(super) async fn create(tx: &Transaction<'_>, session: &NewSession) -> Result<Created, StoreError> {
    if let Some(mark) = session.checked_at_mark {
        sql::query_one(tx, "SELECT n FROM cutoff_counter WHERE id = 1 FOR SHARE", &[]).await?;
        let cutoff: Option<i64> = sql::query_one(
            tx,
            "SELECT max(seq) FROM user_cutoffs WHERE user_id IN ($1, $2)",
            &[p(&session.user_id), p(&EVERYONE)],
        )
        .await?
        .get(0);
        if cutoff.is_some_and(|cutoff| cutoff > mark) {
            return Ok(Created::Superseded);
        }
    }
    let mut ended = Vec::new();
    if let Some(limit) = session.limit {
        // Two logins of one user take turns: each counts the other's session.
        sql::execute(
            tx,
            "SELECT pg_advisory_xact_lock($1, hashtext(current_schema() || '/' || $2))",
            &[p(&USER_LOCK_KEY), p(&session.user_id)],
        )
        .await?;
        let live: Vec<String> = sql::query(
            tx,
            "SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2
             ORDER BY created_at, login_order",
            &[p(&session.user_id), p(&session.now)],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
        let excess = (live.len() + 1).saturating_sub(limit.max as usize);
        if excess > 0 && !limit.end_oldest {
            return Ok(Created::TooMany);
        }
        for id in live.into_iter().take(excess) {
            revoke_session(tx, &id, session.now, "session limit", None).await?;
            ended.push(id);
        }
    }
    sql::execute(
        tx,
        "INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at,
                               absolute_expires_at, ip, user_agent, claims, refresh_hash,
                               refresh_ttl, persistent, dpop_jkt)
         VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            p(&session.id),
            p(&session.user_id),
            p(&session.now),
            p(&session.expires_at),
            p(&session.absolute_expires_at),
            p(&session.client.ip),
            p(&session.client.user_agent),
            p(&session.claims_json),
            p(&session.refresh_hash.as_slice()),
            p(&session.refresh_ttl),
            p(&session.persistent),
            p(&session.dpop_jkt),
        ],
    )
    .await?;
    Ok(Created::Session { ended })
}

/// Makes a cut-off for `user_id` at `now`, first thing in its transaction:
/// the counter's row stays locked until the commit, so a login checking
/// against cut-offs waits for it, and it for such a login.
async fn cut_off(tx: &Transaction<'_>, user_id: &str, now: i64) -> Result<(), StoreError> {
    let seq: i64 = sql::query_one(tx, "UPDATE cutoff_counter SET n = n + 1 WHERE id = 1 RETURNING n", &[])
        .await?
        .get(0);
    sql::execute(
        tx,
        "INSERT INTO user_cutoffs (user_id, seq, at) VALUES ($1, $2, $3)
         ON CONFLICT (user_id) DO UPDATE SET seq = excluded.seq, at = excluded.at",
        &[p(&user_id), p(&seq), p(&now)],
    )
    .await?;
    Ok(())
}

/// The user of session `session_id`, live or not.
pub(super) async fn session_user(client: &Object, session_id: &str) -> Result<Option<(String, i64)>, StoreError> {
    Ok(sql::query_opt(
        &**client,
        "SELECT user_id, (SELECT n FROM cutoff_counter WHERE id = 1) FROM sessions WHERE id = $1",
        &[p(&session_id)],
    )
    .await?
    .map(|row| (row.get(0), row.get(1))))
}

/// The cut-off counter: the last number committed (a pooled connection's
/// read, or one inside a credential check's transaction).
pub(super) async fn cutoff_mark(client: &impl sql::Statements) -> Result<i64, StoreError> {
    Ok(sql::query_one(client, "SELECT n FROM cutoff_counter WHERE id = 1", &[])
        .await?
        .get(0))
}

/// Makes `revocation` with its feed entries; gives the sessions that were
/// live until now.
pub(super) async fn revoke(tx: &Transaction<'_>, revocation: &Revocation, now: i64) -> Result<Vec<String>, StoreError> {
    match revocation {
        Revocation::Session {
            session_id,
            reason,
            blocklist,
        } => {
            let live = revoke_session(tx, session_id, now, reason, blocklist.as_ref()).await?;
            Ok(if live { vec![session_id.clone()] } else { Vec::new() })
        }
        Revocation::UserSessions {
            user_id,
            keep,
            reason,
            blocklist,
        } => {
            cut_off(tx, user_id, now).await?;
            let ids: Vec<String> = sql::query(
                tx,
                "UPDATE sessions SET revoked_at = $2, revoked_reason = $3
                 WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $4
                 RETURNING id",
                &[p(user_id), p(&now), p(reason), p(keep)],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
            let mut entries: Vec<Revoked> = ids
                .iter()
                .map(|id| Revoked::Session {
                    id: id.clone(),
                    revoked_at: now,
                })
                .collect();
            if let Some((jti, expires_at)) = blocklist {
                entries.extend(blocklist_token(tx, jti, *expires_at).await?);
            }
            append_to_feed(tx, &entries).await?;
            Ok(ids)
        }
        Revocation::OwnSession { user_id, session_id } => {
            let live = sql::execute(
                tx,
                "UPDATE sessions SET revoked_at = $3, revoked_reason = 'revoked by user'
                 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3",
                &[p(session_id), p(user_id), p(&now)],
            )
            .await?
                == 1;
            if live {
                append_to_feed(
                    tx,
                    &[Revoked::Session {
                        id: session_id.clone(),
                        revoked_at: now,
                    }],
                )
                .await?;
            }
            Ok(if live { vec![session_id.clone()] } else { Vec::new() })
        }
    }
}

/// Revokes one session and blocklists `blocklist` when given, with their
/// feed entries; whether the session was live until now.
pub(super) async fn revoke_session(
    tx: &Transaction<'_>,
    session_id: &str,
    now: i64,
    reason: &str,
    blocklist: Option<&(String, i64)>,
) -> Result<bool, StoreError> {
    let live = sql::execute(
        tx,
        "UPDATE sessions SET revoked_at = $2, revoked_reason = $3
         WHERE id = $1 AND revoked_at IS NULL",
        &[p(&session_id), p(&now), p(&reason)],
    )
    .await?
        == 1;
    let mut entries = Vec::new();
    if live {
        entries.push(Revoked::Session {
            id: session_id.to_string(),
            revoked_at: now,
        });
    }
    if let Some((jti, expires_at)) = blocklist {
        entries.extend(blocklist_token(tx, jti, *expires_at).await?);
    }
    append_to_feed(tx, &entries).await?;
    Ok(live)
}

/// Blocklists an access token until its `exp`; its feed entry when it was not
/// blocklisted yet.
async fn blocklist_token(tx: &Transaction<'_>, jti: &str, expires_at: i64) -> Result<Option<Revoked>, StoreError> {
    let added = sql::execute(
        tx,
        "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING",
        &[p(&jti), p(&expires_at)],
    )
    .await?
        == 1;
    Ok(added.then(|| Revoked::Token {
        jti: jti.to_string(),
        expires_at,
    }))
}

/// Appends `entries` to the feed with the next sequence numbers and announces
/// them at commit. Taking the numbers locks the sequence row until then: the
/// numbers follow commit order.
async fn append_to_feed(tx: &Transaction<'_>, entries: &[Revoked]) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let count = entries.len() as i64;
    let last: i64 = sql::query_one(
        tx,
        "UPDATE revocation_sequence SET last = last + $1 RETURNING last",
        &[p(&count)],
    )
    .await?
    .get(0);
    for (seq, entry) in (last - count + 1..).zip(entries) {
        let (session_id, jti, at) = match entry {
            Revoked::Session { id, revoked_at } => (Some(id.as_str()), None, *revoked_at),
            Revoked::Token { jti, expires_at } => (None, Some(jti.as_str()), *expires_at),
        };
        sql::execute(
            tx,
            "INSERT INTO revocation_log (seq, session_id, jti, at) VALUES ($1, $2, $3, $4)",
            &[p(&seq), p(&session_id), p(&jti), p(&at)],
        )
        .await?;
    }
    sql::execute(tx, "SELECT pg_notify($1, current_schema())", &[p(&CHANNEL)]).await?;
    Ok(())
}

/// Replaces the app claims of every live session of `user_id`, after a
/// cut-off for the user; gives how many sessions there were.
pub(super) async fn update_claims(
    tx: &Transaction<'_>,
    user_id: &str,
    claims_json: &str,
    now: i64,
) -> Result<usize, StoreError> {
    cut_off(tx, user_id, now).await?;
    Ok(sql::execute(
        tx,
        "UPDATE sessions SET claims = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        &[p(&user_id), p(&claims_json)],
    )
    .await? as usize)
}

/// Ends every live session of every user, after a cut-off for everyone;
/// gives the sessions ended, with their users.
pub(super) async fn end_every_session(tx: &Transaction<'_>, now: i64) -> Result<Vec<(String, String)>, StoreError> {
    cut_off(tx, EVERYONE, now).await?;
    let ended: Vec<(String, String)> = sql::query(
        tx,
        "UPDATE sessions SET revoked_at = $1, revoked_reason = 'logout everyone'
         WHERE revoked_at IS NULL RETURNING id, user_id",
        &[p(&now)],
    )
    .await?
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect();
    let entries: Vec<Revoked> = ended
        .iter()
        .map(|(id, _)| Revoked::Session {
            id: id.clone(),
            revoked_at: now,
        })
        .collect();
    append_to_feed(tx, &entries).await?;
    Ok(ended)
}

/// The active sessions of `user_id`, most recently used first.
pub(super) async fn active(client: &Object, user_id: &str, now: i64) -> Result<Vec<SessionRecord>, StoreError> {
    Ok(sql::query(
        &**client,
        "SELECT id, created_at, last_seen_at, expires_at, ip, user_agent, label
         FROM sessions
         WHERE user_id = $1 AND expires_at > $2 AND revoked_at IS NULL
         ORDER BY last_seen_at DESC, created_at DESC",
        &[p(&user_id), p(&now)],
    )
    .await?
    .iter()
    .map(|row| SessionRecord {
        id: row.get(0),
        created_at: row.get(1),
        last_seen_at: row.get(2),
        expires_at: row.get(3),
        ip: row.get(4),
        user_agent: row.get(5),
        label: row.get(6),
    })
    .collect())
}

/// Sets the label of a live session of `user_id`; `false` when there is none.
pub(super) async fn set_label(
    client: &Object,
    user_id: &str,
    session_id: &str,
    label: Option<&str>,
    now: i64,
) -> Result<bool, StoreError> {
    let updated = sql::execute(
        &**client,
        "UPDATE sessions SET label = $3
         WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $4",
        &[p(&session_id), p(&user_id), p(&label), p(&now)],
    )
    .await?;
    Ok(updated == 1)
}

/// The app data of a live session.
pub(super) async fn data(client: &Object, session_id: &str, now: i64) -> Result<Option<String>, StoreError> {
    Ok(sql::query_opt(
        &**client,
        "SELECT data FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2",
        &[p(&session_id), p(&now)],
    )
    .await?
    .map(|row| row.get(0)))
}

/// Replaces a live session's data with `update`'s result, the row locked.
pub(super) async fn update_data(
    tx: &Transaction<'_>,
    session_id: &str,
    now: i64,
    update: DataUpdate,
) -> Result<Option<bool>, StoreError> {
    let select = "SELECT data FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 FOR UPDATE";
    let Some(row) = sql::query_opt(tx, select, &[p(&session_id), p(&now)]).await? else {
        return Ok(None);
    };
    let current: String = row.get(0);
    let Some(data) = update(&current) else {
        return Ok(Some(false));
    };
    if data != current {
        sql::execute(
            tx,
            "UPDATE sessions SET data = $2 WHERE id = $1",
            &[p(&session_id), p(&data)],
        )
        .await?;
    }
    Ok(Some(true))
}

/// Everything revoked and the feed's last number, in the transaction's one
/// snapshot (REPEATABLE READ).
pub(super) async fn revocations(tx: &Transaction<'_>) -> Result<RevocationSnapshot, StoreError> {
    // The sequence row, not max(seq): entries can all be pruned.
    let cursor: i64 = sql::query_one(tx, "SELECT last FROM revocation_sequence", &[])
        .await?
        .get(0);
    let keyed = |row: &tokio_postgres::Row| (IdKey::of(row.get::<_, &str>(0)), row.get::<_, i64>(1));
    let jtis = sql::query(tx, "SELECT jti, expires_at FROM revoked_tokens", &[])
        .await?
        .iter()
        .map(keyed)
        .collect();
    let sessions = sql::query(
        tx,
        "SELECT id, revoked_at FROM sessions WHERE revoked_at IS NOT NULL",
        &[],
    )
    .await?
    .iter()
    .map(keyed)
    .collect();
    Ok(RevocationSnapshot { jtis, sessions, cursor })
}

/// At most `limit` feed entries after `cursor`, in sequence order.
pub(super) async fn revocations_after(client: &Object, cursor: i64, limit: u32) -> Result<FeedPage, StoreError> {
    let limit = i64::from(limit);
    let rows = sql::query(
        &**client,
        "SELECT seq, session_id, jti, at FROM revocation_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        &[p(&cursor), p(&limit)],
    )
    .await?;
    let mut page = FeedPage {
        entries: Vec::with_capacity(rows.len()),
        cursor,
    };
    for row in rows {
        page.cursor = row.get(0);
        let (session_id, jti): (Option<String>, Option<String>) = (row.get(1), row.get(2));
        let at: i64 = row.get(3);
        match (session_id, jti) {
            (Some(id), _) => page.entries.push(Revoked::Session { id, revoked_at: at }),
            (None, Some(jti)) => page.entries.push(Revoked::Token { jti, expires_at: at }),
            (None, None) => {}
        }
    }
    Ok(page)
}
