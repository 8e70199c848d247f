//! The connection that `LISTEN`s for revocations: outside the pool,
//! reconnected with a growing wait, and waking the feed follower after every
//! notification and every (re)connect.

use std::sync::Weak;
use std::time::Duration;

use rocket::tokio::sync::Notify;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::CHANNEL;
use crate::log_limit::LogLimit;
use crate::store::{StoreError, FEED_POLL};

/// The `application_name` of the listening connection, before its schema.
const LISTENER_NAME: &str = "rocket_sessions listener";
/// The longest wait between two attempts to reconnect the listener.
const MAX_RECONNECT_WAIT: Duration = Duration::from_secs(5);

/// Failures of the listening connection, logged at most once a minute.
static LISTENER_FAILURES: LogLimit = LogLimit::new();

/// Keeps a connection that `LISTEN`s on [`CHANNEL`], reconnecting with a
/// growing wait when it drops; wakes the feed after every notification and
/// every (re)connect. Ends once the store is dropped.
pub(super) async fn listen(config: tokio_postgres::Config, tls: MakeRustlsConnect, wake: Weak<Notify>) {
    let mut wait = Duration::from_millis(100);
    loop {
        match listen_once(&config, tls.clone(), &wake).await {
            Ok(()) => return,
            Err(error) => LISTENER_FAILURES.log(
                log::Level::Warn,
                format_args!(
                    "the PostgreSQL connection that listens for revocations failed: {error}; reconnecting \
                     (until then, revocations of other instances arrive within {} s)",
                    FEED_POLL.as_secs()
                ),
            ),
        }
        rocket::tokio::time::sleep(wait).await;
        wait = (wait * 2).min(MAX_RECONNECT_WAIT);
    }
}

/// Connects once to the `listen_database` and listens, at launch: the error
/// names the key.
pub(super) async fn try_listen(config: &tokio_postgres::Config, tls: MakeRustlsConnect) -> Result<(), StoreError> {
    let shown = |error: &dyn std::fmt::Display| {
        StoreError::other(format!(
            "`listen_database` cannot be used: {error}; check its URL (user, password, host) and that it \
             names the same database as `database`, directly (not through the pooler)"
        ))
    };
    let connecting = rocket::tokio::time::timeout(std::time::Duration::from_secs(10), config.connect(tls));
    let (client, connection) = match connecting.await {
        Ok(Ok(connected)) => connected,
        Ok(Err(error)) => return Err(shown(&error)),
        Err(_) => return Err(shown(&"no answer within 10 s")),
    };
    let driver = rocket::tokio::spawn(connection);
    let listened = client.batch_execute(&format!("LISTEN {CHANNEL}")).await;
    drop(client);
    let _ = driver.await;
    listened.map_err(|error| shown(&error))
}

/// One listening connection, until it fails (`Err`) or the store is gone
/// (`Ok`).
async fn listen_once(
    config: &tokio_postgres::Config,
    tls: MakeRustlsConnect,
    wake: &Weak<Notify>,
) -> Result<(), StoreError> {
    let (client, mut connection) = config.connect(tls).await?;
    let (messages, mut received) = rocket::tokio::sync::mpsc::unbounded_channel();
    // The connection does its I/O only while polled: a task polls it and
    // passes on what the server sends unasked.
    let driver = rocket::tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    if messages.send(Ok(())).is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    let _ = messages.send(Err(error));
                    return;
                }
                None => return,
            }
        }
    });
    // Named after its schema, so an operator sees which listener is whose in
    // pg_stat_activity.
    let listened = client
        .batch_execute(&format!(
            "LISTEN {CHANNEL}; SELECT set_config('application_name', '{LISTENER_NAME} ' || current_schema(), false)"
        ))
        .await;
    if let Err(error) = listened {
        driver.abort();
        return Err(error.into());
    }
    // Connected: whatever was missed while down is read now.
    if let Some(wake) = wake.upgrade() {
        wake.notify_one();
    }
    let outcome = loop {
        match received.recv().await {
            Some(Ok(())) => match wake.upgrade() {
                Some(wake) => wake.notify_one(),
                None => break Ok(()),
            },
            Some(Err(error)) => break Err(error.into()),
            None => break Err(StoreError::other("the listening connection closed")),
        }
    };
    driver.abort();
    outcome
}
