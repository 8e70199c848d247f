//! The one request-local record of this crate: the managed [`Sessions`],
//! looked up once per request, and everything the crate's guards decided
//! about the request (the verdict, a refusal, cookie changes, a stale login,
//! a policy refusal, the CSRF field of a form), which the fairing's response
//! hook reads. Each entry is written once: the first decision stands.

use std::sync::{Arc, OnceLock};

use rocket::http::Status;
use rocket::request::Request;

use crate::client::ProofOutcome;
use crate::config::Settings;
use crate::csrf::CsrfRefusal;
use crate::error::Error;
use crate::sessions::{Sessions, TokenPair};
use crate::token::Rejection;
use crate::user::AuthUser;

/// What the guards decided for a request.
pub(crate) enum Verdict {
    /// A valid session: the user, shared with the guard's shortcut for a
    /// token it keeps (each guard copies it once).
    User(Arc<AuthUser>),
    /// A token failure: 401.
    Rejected(Rejection),
    /// A cookie-authenticated unsafe request without valid CSRF proof: 403.
    Csrf(CsrfRefusal),
    /// The store failed during a silent refresh: 503.
    Unavailable,
}

/// A change to the session cookies, written by the response hook.
pub(crate) enum CookieChange {
    /// A silent refresh: the new pair.
    Set(TokenPair),
    /// The session is over: stop the browser sending dead cookies.
    Clear,
}

/// What this crate knows and decided about one request.
pub(crate) struct RequestRecord {
    sessions: Option<Sessions>,
    /// The verdict, shared by every guard and the response hook (one silent
    /// refresh at most).
    verdict: OnceLock<Verdict>,
    /// Set when a guard of this crate failed the request itself, with the
    /// status it gave: [`AuthUser`] (401, 403, 503), `CsrfProtected` or the
    /// cookie refresh route (403). The verdict alone may have been asked by
    /// another guard, such as `CsrfToken`, so it cannot tell.
    refused: OnceLock<Status>,
    /// The cookie change the verdict decided (a rotation, or clearing).
    cookies: OnceLock<CookieChange>,
    /// Set when `FreshAuthUser` refused a valid token for its age: the `max_age`.
    stale_login: OnceLock<i64>,
    /// Set when `Authorized` refused a valid user.
    policy_refused: OnceLock<()>,
    /// The `csrf_token` field found at the start of a form body.
    csrf_field: OnceLock<Option<String>>,
    /// Set when `CsrfToken` gave the handler a token: the response may carry
    /// it.
    csrf_token_given: OnceLock<()>,
    /// The DPoP proof of a login or refresh request, checked once.
    token_request_proof: OnceLock<ProofOutcome>,
}

/// The record of `request`, made at its first use.
pub(crate) fn record<'r>(request: &'r Request<'_>) -> &'r RequestRecord {
    request.local_cache(|| RequestRecord {
        sessions: request.rocket().state::<Sessions>().cloned(),
        verdict: OnceLock::new(),
        refused: OnceLock::new(),
        cookies: OnceLock::new(),
        stale_login: OnceLock::new(),
        policy_refused: OnceLock::new(),
        csrf_field: OnceLock::new(),
        csrf_token_given: OnceLock::new(),
        token_request_proof: OnceLock::new(),
    })
}

impl RequestRecord {
    /// The managed sessions; `None` when the fairing is not attached.
    pub(crate) fn sessions(&self) -> Option<&Sessions> {
        self.sessions.as_ref()
    }

    /// The verdict, once decided.
    pub(crate) fn verdict(&self) -> Option<&Verdict> {
        self.verdict.get()
    }

    /// Records `verdict` unless one was decided already; gives the one that
    /// stands.
    pub(crate) fn decide(&self, verdict: Verdict) -> &Verdict {
        let _ = self.verdict.set(verdict);
        self.verdict.get().expect("a verdict was just set")
    }

    /// Records that a guard of this crate failed the request with `status`.
    pub(crate) fn mark_refused(&self, status: Status) {
        let _ = self.refused.set(status);
    }

    /// Whether [`AuthUser`] refused the request for its token (401).
    pub(crate) fn token_refused(&self) -> bool {
        self.refused.get() == Some(&Status::Unauthorized)
    }

    /// Whether a guard of this crate refused the request for CSRF (403).
    pub(crate) fn csrf_refused(&self) -> bool {
        self.refused.get() == Some(&Status::Forbidden)
    }

    /// Records the cookie change of the verdict.
    pub(crate) fn change_cookies(&self, change: CookieChange) {
        let _ = self.cookies.set(change);
    }

    /// The cookie change of the verdict, if any.
    pub(crate) fn cookie_change(&self) -> Option<&CookieChange> {
        self.cookies.get()
    }

    /// Records that the login is older than `max_age`.
    pub(crate) fn mark_stale_login(&self, max_age: i64) {
        let _ = self.stale_login.set(max_age);
    }

    /// The `max_age` a stale login was refused for.
    pub(crate) fn stale_login(&self) -> Option<i64> {
        self.stale_login.get().copied()
    }

    /// Records that a policy refused the user.
    pub(crate) fn mark_policy_refused(&self) {
        let _ = self.policy_refused.set(());
    }

    /// Whether a policy refused the user (403).
    pub(crate) fn policy_refused(&self) -> bool {
        self.policy_refused.get().is_some()
    }

    /// Records the `csrf_token` field of the form body.
    pub(crate) fn peeked_csrf_field(&self, field: Option<String>) {
        let _ = self.csrf_field.set(field);
    }

    /// Records that the handler was given a CSRF token.
    pub(crate) fn mark_csrf_token_given(&self) {
        let _ = self.csrf_token_given.set(());
    }

    /// Whether the handler was given a CSRF token.
    pub(crate) fn csrf_token_given(&self) -> bool {
        self.csrf_token_given.get().is_some()
    }

    /// The DPoP proof of a login or refresh request, checked by `check` the
    /// first time it is asked.
    pub(crate) fn token_request_proof(&self, check: impl FnOnce() -> ProofOutcome) -> &ProofOutcome {
        self.token_request_proof.get_or_init(check)
    }

    /// The `csrf_token` field of the form body, when one was read.
    pub(crate) fn csrf_field(&self) -> Option<&str> {
        self.csrf_field.get().and_then(Option::as_deref)
    }
}

/// The managed [`Sessions`], or the 500 a guard answers (with a log line saying
/// how to fix it) when the fairing is not attached.
/// The first value of the request header `name` (ASCII case ignored),
/// found by walking the request's few headers: Rocket's header map hashes a
/// looked-up name with SipHash, ~350 instructions a lookup, and the login,
/// refresh and logout routes look up several (`scripts/instructions.sh`).
pub(crate) fn first_header<'r>(request: &'r Request<'_>, name: &str) -> Option<&'r str> {
    let headers = request.headers();
    let found = headers
        .iter()
        .find(|header| header.name().as_str().eq_ignore_ascii_case(name))?;
    match found.value {
        std::borrow::Cow::Borrowed(value) => Some(value),
        // Rocket lends its headers; should a value ever be owned, look it up.
        std::borrow::Cow::Owned(_) => headers.get_one(name),
    }
}

pub(crate) fn managed<'r>(request: &'r Request<'_>) -> Result<&'r Sessions, (Status, Error)> {
    record(request).sessions().ok_or_else(fairing_not_attached)
}

/// The 500 a guard answers when the fairing is not attached, with a log line
/// saying how to fix it.
pub(crate) fn fairing_not_attached() -> (Status, Error) {
    log::error!("rocket_sqlite_sessions: a session guard is used but Sessions::fairing() is not attached");
    (
        Status::InternalServerError,
        Error::Internal("Sessions::fairing() is not attached".into()),
    )
}

/// The validated configuration, when the fairing is attached.
pub(crate) fn managed_settings<'r>(request: &'r Request<'_>) -> Option<&'r Settings> {
    record(request).sessions().map(Sessions::settings)
}

/// Whether `rocket` lacks the fairing: a guard's [`Sentinel`](rocket::Sentinel)
/// then aborts launch, with a log line saying how to fix it.
pub(crate) fn fairing_missing(rocket: &rocket::Rocket<rocket::Ignite>, guard: &str) -> bool {
    let missing = rocket.state::<Sessions>().is_none();
    if missing {
        log::error!(
            "rocket_sqlite_sessions: a route uses the `{guard}` guard, but Sessions::fairing() is not \
             attached; add `.attach(Sessions::fairing())` to the Rocket"
        );
    }
    missing
}
