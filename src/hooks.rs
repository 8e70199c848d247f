//! The app's hooks into session management: where claims come from at a
//! refresh ([`ClaimsSource`]), and what happened ([`SessionEvents`]).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

/// Where a session's claims come from at each refresh, so that a change of a
/// user's roles reaches their next access token (at most `access_ttl` late)
/// without any store read in the guard. Registered with
/// [`SessionsFairing::claims_source`](crate::SessionsFairing::claims_source).
///
/// Any `Fn(String) -> impl Future<Output = Option<serde_json::Value>>` is a
/// source: it gets the user id and gives the claims (a JSON object) for the
/// new access token, or `None` to keep the session's own (those given at login
/// or by [`Sessions::update_claims`](crate::Sessions::update_claims)).
///
/// ```
/// use rocket_sqlite_sessions::Sessions;
/// use serde_json::json;
///
/// let fairing = Sessions::fairing().claims_source(|user_id: String| async move {
///     // Look the user's roles up in the app's own table here.
///     let roles = if user_id == "1" { vec!["admin"] } else { vec![] };
///     Some(json!({ "roles": roles }))
/// });
/// ```
pub trait ClaimsSource: Send + Sync + 'static {
    /// The claims for `user_id`'s next access token, or `None` to keep the
    /// session's.
    fn claims(&self, user_id: &str) -> Pin<Box<dyn Future<Output = Option<Value>> + Send + '_>>;
}

impl<F, Fut> ClaimsSource for F
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<Value>> + Send + 'static,
{
    fn claims(&self, user_id: &str) -> Pin<Box<dyn Future<Output = Option<Value>> + Send + '_>> {
        Box::pin(self(user_id.to_string()))
    }
}

/// Something that happened to a session, told to [`SessionEvents`] once, after
/// it was committed: enough for an audit log or an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A user signed in: a new session.
    LoggedIn {
        /// The user.
        user_id: String,
        /// The new session.
        session_id: String,
        /// The client's address, when known.
        ip: Option<IpAddr>,
    },
    /// A refresh token was exchanged for a new pair.
    Refreshed {
        /// The session's user.
        user_id: String,
        /// The session.
        session_id: String,
        /// The client's address, when known.
        ip: Option<IpAddr>,
    },
    /// A user signed out of one session with its access token.
    LoggedOut {
        /// The user.
        user_id: String,
        /// The session ended.
        session_id: String,
    },
    /// A session was ended by another action: logout everywhere, the other
    /// sessions ended at a password change, a device signed out remotely,
    /// every session of every user ended.
    SessionRevoked {
        /// The session's user.
        user_id: String,
        /// The session ended.
        session_id: String,
        /// Why: `"logout everywhere"`, `"other sessions ended"`,
        /// `"revoked by user"`, `"logout everyone"`, `"session limit"` (the
        /// user's oldest, ended by a login past `max_sessions`).
        reason: &'static str,
    },
    /// A refresh token already rotated was presented again after the grace
    /// window: a stolen token, most likely. The session is revoked.
    ReuseDetected {
        /// The session's user.
        user_id: String,
        /// The session, now revoked.
        session_id: String,
        /// The address that presented the old token, when known.
        ip: Option<IpAddr>,
    },
    /// A login attempt was refused for too many failures.
    Throttled {
        /// The username tried.
        username: String,
        /// The client's address, when known.
        ip: Option<IpAddr>,
        /// Seconds until an attempt is accepted again.
        retry_after: u64,
    },
}

/// Told every [`SessionEvent`], after its commit. Registered with
/// [`SessionsFairing::events`](crate::SessionsFairing::events); any
/// `Fn(&SessionEvent)` is one. It runs on the request's task: keep it quick,
/// and spawn a task for anything slow (a webhook).
///
/// ```
/// use rocket_sqlite_sessions::{SessionEvent, Sessions};
///
/// let fairing = Sessions::fairing().events(|event: &SessionEvent| {
///     if let SessionEvent::ReuseDetected { user_id, ip, .. } = event {
///         log::warn!("stolen refresh token? user {user_id}, from {ip:?}");
///     }
/// });
/// ```
pub trait SessionEvents: Send + Sync + 'static {
    /// Called once per event, after it was committed.
    fn on_event(&self, event: &SessionEvent);
}

impl<F> SessionEvents for F
where
    F: Fn(&SessionEvent) + Send + Sync + 'static,
{
    fn on_event(&self, event: &SessionEvent) {
        self(event)
    }
}

/// The app's hooks, registered on the fairing and held by the sessions.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) claims_source: Option<Arc<dyn ClaimsSource>>,
    pub(crate) events: Option<Arc<dyn SessionEvents>>,
}

impl Hooks {
    /// Tells the app's [`SessionEvents`], if any, of `event` (committed).
    pub(crate) fn emit(&self, event: impl FnOnce() -> SessionEvent) {
        if let Some(events) = &self.events {
            events.on_event(&event());
        }
    }
}
