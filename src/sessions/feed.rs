//! Following the revocation feed: revocations made by other processes (a
//! second worker on the same SQLite file, another instance on the same
//! PostgreSQL database) reach this process's memory.
//!
//! Every revocation is appended to the store's log in the transaction that
//! makes it, with a sequence number in commit order. At launch the process
//! loads everything revoked and the log's last number in one snapshot; from
//! then on one task waits for the store to say something may have changed
//! (SQLite: `PRAGMA data_version`, polled every 100 ms; PostgreSQL:
//! `LISTEN/NOTIFY`, and a catch-up after every reconnect), or at most
//! [`FEED_POLL`], and applies the entries after its cursor. The process's own
//! revocations are in memory before their call returns; reading them again
//! from the log changes nothing.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{FeedCursor, Inner, Sessions};
use crate::log_limit::LogLimit;
use crate::store::FEED_POLL;

/// Entries read at a time.
const PAGE: u32 = 1000;
/// How long the follower waits after the store failed, before asking again.
const RETRY_AFTER: Duration = Duration::from_millis(250);

/// Failures to read the feed, logged at most once a minute.
static FEED_FAILURES: LogLimit = LogLimit::new();

impl Sessions {
    /// Starts the task that applies feed entries after `cursor`. It ends at
    /// shutdown, or once the `Sessions` are dropped.
    pub(crate) fn follow_feed(&self, cursor: FeedCursor) {
        let inner = Arc::downgrade(&self.inner);
        rocket::tokio::spawn(run(inner, cursor.0));
    }
}

async fn run(inner: Weak<Inner>, mut cursor: i64) {
    let mut caught_up = true;
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let sessions = Sessions { inner: strong };
        if sessions.inner.stopping.load(Ordering::SeqCst) {
            return;
        }
        if caught_up {
            rocket::tokio::select! {
                _ = sessions.inner.feed_stop.notified() => return,
                waited = sessions.inner.store.wait_for_revocations(FEED_POLL) => {
                    if let Err(error) = waited {
                        FEED_FAILURES.log(log::Level::Warn, format_args!("watching the revocation feed failed: {error}"));
                    }
                }
            }
        }
        match sessions.inner.store.revocations_after(cursor, PAGE).await {
            Ok(page) => {
                caught_up = page.entries.len() < PAGE as usize;
                for revoked in page.entries {
                    sessions.inner.revocations.apply(revoked);
                }
                cursor = page.cursor;
            }
            Err(error) => {
                FEED_FAILURES.log(
                    log::Level::Error,
                    format_args!(
                        "reading the revocation feed failed: {error}; revocations made by other processes \
                         reach this one once it can read again"
                    ),
                );
                caught_up = true;
                drop(sessions);
                rocket::tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}
