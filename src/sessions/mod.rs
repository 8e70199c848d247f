//! The service: [`Sessions`], the managed state that logs in, refreshes,
//! lists and revokes. Nothing here sees a request: the web layer turns
//! requests into these calls.
//!
//! - [`login`]: a new session and its first token pair ([`TokenPair`],
//!   [`LoginOptions`]);
//! - [`refresh`]: rotating a refresh token;
//! - [`verify`]: checking an access token, from memory;
//! - [`dpop`]: DPoP proofs (RFC 9449), their replay cache and nonces;
//! - [`dbsc`]: browser sessions bound to a device key (DBSC);
//! - [`revoke`]: logout, logout everywhere, the other sessions, claims;
//! - [`devices`]: a user's list of sessions ([`SessionInfo`]) and revoking one;
//! - [`data`]: typed app data on the session;
//! - [`throttle`]: counting failed logins ([`CredentialCheck`]);
//! - [`prune`]: the pruning pass and its schedule ([`PruneReport`]);
//! - [`feed`]: following the revocation feed of other processes.

mod data;
mod dbsc;
mod devices;
mod dpop;
mod feed;
mod login;
mod prune;
mod refresh;
mod revoke;
mod throttle;
mod verify;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::derive_key;
use crate::csrf::{CsrfBinding, CsrfKeys};
use crate::error::Error;
use crate::hooks::{ClaimsSource, Hooks, SessionEvent, SessionEvents};
use crate::revocation::Revocations;
use crate::store::{self, Database, SessionStore};
use crate::token::{RefreshKeys, TokenCodec};

pub use data::MAX_SESSION_DATA_BYTES;
pub(crate) use dbsc::DeviceRefusal;
pub use devices::{SessionInfo, MAX_SESSION_LABEL_CHARS};
pub(crate) use login::Issued;
pub use login::{LoginMark, LoginOptions, TokenPair};
pub use prune::PruneReport;
pub use throttle::CredentialCheck;

/// Session management for one Rocket app: managed state put in place by
/// [`Sessions::fairing()`], reachable from handlers as `&State<Sessions>`.
///
/// Every method that touches SQLite runs it on Tokio's blocking pool (PostgreSQL
/// is asynchronous); checking an access token ([`AuthUser`](crate::AuthUser))
/// never touches the store at all.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn SessionStore>,
    codec: TokenCodec,
    /// Derive and tag refresh tokens.
    refresh_keys: RefreshKeys,
    /// CSRF keys derived from the signing keys, the first one current.
    csrf_keys: CsrfKeys,
    /// Keys the throttling scopes (an HMAC, so no stored scope reveals a name
    /// or an address).
    throttle_key: [u8; 32],
    revocations: Revocations,
    /// DPoP's replay cache and nonces.
    dpop: dpop::Dpop,
    /// DBSC's challenges and replay cache.
    dbsc: dbsc::Dbsc,
    clock: Clock,
    settings: Settings,
    /// Held for the length of a prune pass, so passes never overlap.
    prune_lock: rocket::tokio::sync::Mutex<()>,
    /// Set at shutdown: a prune pass stops before its next batch, the feed
    /// follower at its next wake-up.
    stopping: AtomicBool,
    /// Wakes the feed follower at shutdown.
    feed_stop: rocket::tokio::sync::Notify,
    /// The app's hooks: registered on the fairing, or later on the managed
    /// sessions (once the app's own state exists).
    hooks: RwLock<Hooks>,
}

/// Where the revocation feed stood when the revocations were loaded: the
/// follower starts there.
pub(crate) struct FeedCursor(i64);

impl Sessions {
    /// Opens the store and loads what is revoked into memory; the feed
    /// follower starts from the cursor given ([`follow_feed`](Self::follow_feed)).
    pub(crate) async fn open(settings: Settings, clock: Clock, hooks: Hooks) -> Result<(Sessions, FeedCursor), Error> {
        let store = store::open(&settings.database).await?;
        let secrets = || settings.keys.iter().map(|key| key.secret.as_slice());
        let sessions = Sessions {
            inner: Arc::new(Inner {
                codec: TokenCodec::new(&settings.keys, settings.tokens.clone()),
                csrf_keys: CsrfKeys::new(secrets()),
                refresh_keys: RefreshKeys::new(secrets()),
                throttle_key: derive_key(&settings.keys[0].secret, b"rocket_sqlite_sessions throttle key"),
                store,
                revocations: Revocations::new(settings.tokens.access_ttl, settings.tokens.leeway),
                dbsc: dbsc::Dbsc::new(&settings.keys[0].secret),
                dpop: dpop::Dpop::new(
                    &settings.dpop,
                    &derive_key(&settings.keys[0].secret, b"rocket_sqlite_sessions dpop nonce key"),
                ),
                clock,
                settings,
                prune_lock: rocket::tokio::sync::Mutex::new(()),
                stopping: AtomicBool::new(false),
                feed_stop: rocket::tokio::sync::Notify::new(),
                hooks: RwLock::new(hooks),
            }),
        };
        let cursor = sessions.load_revocations().await?;
        sessions.take_back_unfinished_checks().await?;
        Ok((sessions, FeedCursor(cursor)))
    }

    /// Credential checks still marked in progress at launch belong to a
    /// process that died during them (killed while hashing a password): they
    /// no longer count as failures (see [`CredentialCheck`](crate::CredentialCheck)).
    async fn take_back_unfinished_checks(&self) -> Result<(), Error> {
        let window = self.inner.settings.throttling.login_failure_window;
        let taken_back = self
            .inner
            .store
            .take_back_pending(self.inner.clock.now(), window)
            .await?;
        if taken_back > 0 {
            log::info!(
                "rocket_sqlite_sessions: {taken_back} credential checks left unfinished by a stopped process \
                 no longer count as failed logins"
            );
        }
        Ok(())
    }

    /// Rebuilds the in-memory revocation state from the store; gives the
    /// feed's position in the same snapshot.
    async fn load_revocations(&self) -> Result<i64, Error> {
        let snapshot = self.inner.store.load_revocations().await?;
        let revocations = &self.inner.revocations;
        revocations.load_snapshot(&snapshot);
        let (jtis, sessions) = revocations.len();
        log::info!("rocket_sqlite_sessions: {jtis} blocklisted tokens and {sessions} revoked sessions loaded");
        Ok(snapshot.cursor)
    }

    /// The validated configuration.
    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The JSON Web Key Set (RFC 7517) of the public keys that verify access
    /// tokens: every Ed25519 and P-256 key configured, with `kid`, `alg` and
    /// `use`. HS256 secrets have no public half: with only those, `{"keys":
    /// []}`. Served by [`jwks_routes`](crate::jwks_routes).
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .inner
            .settings
            .keys
            .iter()
            .filter_map(|key| key.public_jwk())
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// Now, in unix seconds, on the sessions' clock: the time every expiry
    /// decision uses (a test's [`ManualClock`](crate::testing::ManualClock)
    /// too), for an app's audit rows and its own expiry checks.
    pub fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// Uses `source` for the claims at each refresh from now on, in place of
    /// the one registered on the fairing, if any: for a source that needs the
    /// app's own state, made after the sessions (a pool on
    /// [`database_path`](Self::database_path)), from the app's own fairing.
    ///
    /// ```
    /// # use rocket::fairing::AdHoc;
    /// use rocket_sqlite_sessions::{ClaimsDecision, Sessions};
    ///
    /// // Attached after Sessions::fairing(), so the sessions are managed.
    /// let users = AdHoc::on_ignite("users", |rocket| async move {
    ///     let sessions = rocket.state::<Sessions>().expect("Sessions::fairing() is attached first");
    ///     // let pool = open_pool(sessions.database_path());
    ///     sessions.set_claims_source(|_user_id: String| async move { Some(serde_json::json!({ "roles": [] })) });
    ///     rocket
    /// });
    /// ```
    pub fn set_claims_source(&self, source: impl ClaimsSource) {
        write(&self.inner.hooks).claims_source = Some(Arc::new(source));
    }

    /// Tells `events` of every event from now on, in place of the sink
    /// registered on the fairing, if any (see
    /// [`set_claims_source`](Self::set_claims_source) for when).
    pub fn set_events(&self, events: impl SessionEvents) {
        write(&self.inner.hooks).events = Some(Arc::new(events));
    }

    /// The claims source, if any.
    fn claims_source(&self) -> Option<Arc<dyn ClaimsSource>> {
        read(&self.inner.hooks).claims_source.clone()
    }

    /// Tells the app's hooks of `event` (committed).
    fn emit(&self, event: impl FnOnce() -> SessionEvent) {
        let events = read(&self.inner.hooks).events.clone();
        if let Some(events) = events {
            events.on_event(&event());
        }
    }

    /// Whether shutdown has begun.
    fn stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    /// The SQLite file the sessions are kept in (`None` on PostgreSQL): an
    /// app may keep its own tables in it, with its own connections. The crate
    /// owns its tables (listed in the crate docs) and `PRAGMA user_version`.
    pub fn database_path(&self) -> Option<&std::path::Path> {
        match &self.inner.settings.database {
            Database::Sqlite(path, _) => Some(path),
            #[cfg(feature = "postgres")]
            Database::Postgres { .. } => None,
        }
    }

    /// The CSRF token of a signed-in session, for pages to put in forms
    /// (`csrf_token`) or scripts to send (`X-CSRF-Token`). The
    /// [`CsrfToken`](crate::CsrfToken) guard gives it to handlers.
    pub fn csrf_token(&self, session_id: &str) -> String {
        self.csrf_token_for(CsrfBinding::Session(session_id))
    }

    /// The CSRF token of `binding` under the current key.
    pub(crate) fn csrf_token_for(&self, binding: CsrfBinding<'_>) -> String {
        self.inner.csrf_keys.token(binding)
    }

    /// Whether `presented` is the CSRF token of `binding` under any current key
    /// (compared in constant time).
    pub(crate) fn csrf_token_matches(&self, binding: CsrfBinding<'_>, presented: &str) -> bool {
        self.inner.csrf_keys.matches(binding, presented)
    }
}

// A hook's registration is one assignment: a panic cannot leave the hooks
// half-written, so a poisoned lock is still good.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
