//! The app's hooks into session management: where claims come from at a
//! refresh ([`ClaimsSource`]), and what happened ([`SessionEvents`]).

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

/// Where a session's claims come from at each refresh, so that a change of a
/// user's roles reaches their next access token (at most `access_ttl` late)
/// without any store read in the guard, and a banned or deleted user's
/// sessions end. Registered with
/// [`SessionsFairing::claims_source`](crate::SessionsFairing::claims_source).
///
/// It is asked, and its answer checked, before the refresh rotates anything:
/// a lookup that fails answers 503 and the refresh token stays good for a
/// retry; claims that are not a JSON object (or use a name the crate sets)
/// answer 500, likewise with nothing rotated.
///
/// Any `Fn(String) -> impl Future` is a source when its output is a
/// [`ClaimsDecision`], a `Result<ClaimsDecision, E>` (`E: Display`: an error
/// is a failed lookup), or an `Option<serde_json::Value>` (`None` keeps the
/// session's claims, `Some` replaces them).
///
/// ```
/// use rocket_sqlite_sessions::{ClaimsDecision, Sessions};
/// use serde_json::json;
///
/// let fairing = Sessions::fairing().claims_source(|user_id: String| async move {
///     // Look the user up in the app's own table here; an error is a 503.
///     let found: Result<Option<(bool, &str)>, std::io::Error> = Ok(Some((false, "admin")));
///     Ok::<_, std::io::Error>(match found? {
///         None => ClaimsDecision::End("user deleted"),
///         Some((true, _)) => ClaimsDecision::End("banned"),
///         Some((false, role)) => ClaimsDecision::Replace(json!({ "roles": [role] })),
///     })
/// });
/// ```
pub trait ClaimsSource: Send + Sync + 'static {
    /// What `user_id`'s session gets at its refresh, or why the lookup
    /// failed.
    fn claims(
        &self,
        user_id: &str,
    ) -> Pin<Box<dyn Future<Output = Result<ClaimsDecision, ClaimsSourceError>> + Send + '_>>;
}

/// What a [`ClaimsSource`] decides for a session at its refresh.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClaimsDecision {
    /// Keep the session's claims (those given at login, or since then by
    /// [`Sessions::update_claims`](crate::Sessions::update_claims) or this
    /// source).
    Keep,
    /// The claims of the new access token, a JSON object; the session keeps
    /// them from now on.
    Replace(Value),
    /// End the session (a banned or deleted user): the refresh is refused
    /// (401), the session revoked like a logout, and a
    /// [`SessionEvent::SessionRevoked`] told with this reason.
    End(&'static str),
}

/// Why a [`ClaimsSource`] could not answer: its lookup failed. The refresh
/// answers 503 and rotates nothing; the message is logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimsSourceError(String);

impl ClaimsSourceError {
    /// A failed lookup, with what went wrong.
    pub fn new(message: impl fmt::Display) -> Self {
        ClaimsSourceError(message.to_string())
    }
}

impl fmt::Display for ClaimsSourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClaimsSourceError {}

/// What a claims source closure may give: see [`ClaimsSource`].
pub trait IntoClaimsDecision {
    /// The decision, or the lookup's failure.
    fn into_decision(self) -> Result<ClaimsDecision, ClaimsSourceError>;
}

impl IntoClaimsDecision for ClaimsDecision {
    fn into_decision(self) -> Result<ClaimsDecision, ClaimsSourceError> {
        Ok(self)
    }
}

impl IntoClaimsDecision for Option<Value> {
    fn into_decision(self) -> Result<ClaimsDecision, ClaimsSourceError> {
        Ok(self.map_or(ClaimsDecision::Keep, ClaimsDecision::Replace))
    }
}

impl<E: fmt::Display> IntoClaimsDecision for Result<ClaimsDecision, E> {
    fn into_decision(self) -> Result<ClaimsDecision, ClaimsSourceError> {
        self.map_err(ClaimsSourceError::new)
    }
}

impl<F, Fut> ClaimsSource for F
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoClaimsDecision,
{
    fn claims(
        &self,
        user_id: &str,
    ) -> Pin<Box<dyn Future<Output = Result<ClaimsDecision, ClaimsSourceError>> + Send + '_>> {
        let decided = self(user_id.to_string());
        Box::pin(async move { decided.await.into_decision() })
    }
}

/// Something that happened to a session, told to [`SessionEvents`] once, after
/// it was committed: enough for an audit log or an alert.
///
/// Variants and their fields may be added in a minor version: match with
/// `..` (`SessionEvent::LoggedIn { user_id, .. }`) and a `_` arm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A user signed in: a new session.
    #[non_exhaustive]
    LoggedIn {
        /// The user.
        user_id: String,
        /// The new session.
        session_id: String,
        /// The client's address, when known.
        ip: Option<IpAddr>,
        /// Whether the user had not signed in from this network (an IPv4
        /// address, an IPv6 /64) within `absolute_timeout`: the cue for a
        /// "new sign-in" alert. `None` for a login made without a
        /// [`CredentialCheck`](crate::CredentialCheck).
        new_network: Option<bool>,
        /// When, on the sessions' clock (unix seconds; [`Sessions::now`](crate::Sessions::now)).
        at: i64,
    },
    /// A refresh token was exchanged for a new pair.
    #[non_exhaustive]
    Refreshed {
        /// The session's user.
        user_id: String,
        /// The session.
        session_id: String,
        /// The client's address, when known.
        ip: Option<IpAddr>,
        /// When, on the sessions' clock (unix seconds; [`Sessions::now`](crate::Sessions::now)).
        at: i64,
    },
    /// A user signed out of one session with its access token.
    #[non_exhaustive]
    LoggedOut {
        /// The user.
        user_id: String,
        /// The session ended.
        session_id: String,
        /// The client's address, when known (the crate's `/logout` route).
        ip: Option<IpAddr>,
        /// When, on the sessions' clock (unix seconds; [`Sessions::now`](crate::Sessions::now)).
        at: i64,
    },
    /// A session was ended by another action: logout everywhere, the other
    /// sessions ended at a password change, a device signed out remotely,
    /// every session of every user ended.
    #[non_exhaustive]
    SessionRevoked {
        /// The session's user.
        user_id: String,
        /// The session ended.
        session_id: String,
        /// Why: `"logout everywhere"`, `"other sessions ended"`,
        /// `"revoked by user"`, `"logout everyone"`, `"session limit"` (the
        /// user's oldest, ended by a login past `max_sessions`),
        /// `"replaced by a new login"` (a browser's), `"token revoked"` (RFC 7009, [`Sessions::revoke_token`](crate::Sessions::revoke_token)), or the claims source's
        /// reason (`"banned"`).
        reason: &'static str,
        /// Who ended it, when known: the user id of the caller (the user
        /// signing out their other sessions or a device, or logging in past
        /// `max_sessions`). `None` when the app ended it (`logout_all`,
        /// `logout_everyone`) or the claims source did.
        actor: Option<String>,
        /// The address of the request that ended it, when known.
        ip: Option<IpAddr>,
        /// When, on the sessions' clock (unix seconds; [`Sessions::now`](crate::Sessions::now)).
        at: i64,
    },
    /// A refresh token already rotated was presented again after the grace
    /// window: a stolen token, most likely. The session is revoked.
    #[non_exhaustive]
    ReuseDetected {
        /// The session's user.
        user_id: String,
        /// The session, now revoked.
        session_id: String,
        /// The address that presented the old token, when known.
        ip: Option<IpAddr>,
        /// When, on the sessions' clock (unix seconds; [`Sessions::now`](crate::Sessions::now)).
        at: i64,
    },
    /// A login attempt was refused for too many failures.
    #[non_exhaustive]
    Throttled {
        /// The username tried, as the client sent it: at most
        /// [`MAX_EVENT_USERNAME_BYTES`] of it, on a character boundary, and
        /// then `…` when it was longer. Control characters are kept: log it
        /// with `{:?}` (as `SessionEvent`'s `Debug` does), never raw.
        username: String,
        /// The client's address, when known.
        ip: Option<IpAddr>,
        /// Seconds until an attempt is accepted again.
        retry_after: u64,
        /// When, on the sessions' clock (unix seconds; [`Sessions::now`](crate::Sessions::now)).
        at: i64,
    },
}

/// The most bytes of a username an event carries ([`SessionEvent::Throttled`]):
/// a username comes from the client, and events go to logs.
pub const MAX_EVENT_USERNAME_BYTES: usize = 64;

/// `username` as an event carries it: at most [`MAX_EVENT_USERNAME_BYTES`] of
/// it, cut on a character boundary and marked with `…` when longer.
pub(crate) fn event_username(username: &str) -> String {
    if username.len() <= MAX_EVENT_USERNAME_BYTES {
        return username.to_string();
    }
    let mut end = MAX_EVENT_USERNAME_BYTES;
    while !username.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &username[..end])
}

impl SessionEvent {
    /// When it happened, on the sessions' clock (unix seconds).
    pub fn at(&self) -> i64 {
        match self {
            SessionEvent::LoggedIn { at, .. }
            | SessionEvent::Refreshed { at, .. }
            | SessionEvent::LoggedOut { at, .. }
            | SessionEvent::SessionRevoked { at, .. }
            | SessionEvent::ReuseDetected { at, .. }
            | SessionEvent::Throttled { at, .. } => *at,
        }
    }
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
