//! One error type for the crate. How each variant answers over HTTP is the
//! web layer's business (its `Responder`).

use crate::log_limit::LogLimit;
use crate::store::StoreError;

/// Store failures answered with 503: while the disk is full every request
/// fails the same way, and one line a minute says so.
static STORE_FAILURES: LogLimit = LogLimit::new();

/// Logs a store failure met while answering `context` (at most one line a
/// minute).
pub(crate) fn log_store_failure(context: std::fmt::Arguments<'_>, cause: &StoreError) {
    STORE_FAILURES.log(
        log::Level::Error,
        format_args!("{context}: session store failure: {cause}"),
    );
}

/// Claims source failures answered with 503, likewise at most a line a minute.
static CLAIMS_SOURCE_FAILURES: LogLimit = LogLimit::new();

/// Logs a failed claims source lookup met while answering `context` (at most
/// one line a minute).
pub(crate) fn log_claims_source_failure(context: std::fmt::Arguments<'_>, cause: &str) {
    CLAIMS_SOURCE_FAILURES.log(log::Level::Error, format_args!("{context}: {cause}"));
}

/// The one message every token failure carries, whatever the cause: the client
/// learns nothing about which check failed.
pub const INVALID_TOKEN_MESSAGE: &str = "The token is missing, malformed, expired or revoked.";

/// What went wrong in a session operation.
///
/// As a Rocket [`Responder`](rocket::response::Responder) each variant becomes a JSON body
/// `{"error": "<code>", "message": "…"}` with a fixed text: details of store
/// failures go to the log, never to the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The access or refresh token is missing, malformed, expired, revoked, reused,
    /// or fails any other check. Answers 401 with
    /// `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3).
    #[error("invalid token")]
    InvalidToken,
    /// Too many failed attempts for this username or client: answers 429 with
    /// `Retry-After`.
    #[error("too many failed attempts; retry after {retry_after} s")]
    Throttled {
        /// Seconds until an attempt is accepted again.
        retry_after: u64,
    },
    /// The action needs a login more recent than `fresh_age` seconds. Answers 401
    /// with `WWW-Authenticate: Bearer error="insufficient_user_authentication"`
    /// and `max_age` (RFC 9470).
    #[error("a more recent login is required")]
    LoginTooOld {
        /// The longest a login may date back, in seconds (`fresh_age`).
        max_age: i64,
    },
    /// A cookie-authenticated unsafe request came from another origin or
    /// without the session's CSRF token. Answers 403.
    #[error("CSRF check failed")]
    CsrfRefused,
    /// The caller is signed in but not allowed to do this (an
    /// [`Authorized`](crate::Authorized) guard's policy refused, or the app
    /// decided so). Answers 403 with `{"error": "forbidden", …}`.
    #[error("forbidden")]
    Forbidden,
    /// The user's sessions were ended or their claims replaced (a password
    /// or role change, logout everywhere) while this login was checking the
    /// credentials, or its credential check is older than
    /// `login_failure_window`: the login may rest on a stale password or
    /// stale roles, so it is refused. Answers 409 with
    /// `{"error": "login_superseded", …}`; the user signs in again.
    #[error("the login was superseded by a change to the user; sign in again")]
    LoginSuperseded,
    /// The username or password was wrong: one answer for both, so that it
    /// tells no one which usernames exist. The crate never returns it
    /// itself; an app returns it after
    /// [`CredentialCheck::failed`](crate::CredentialCheck::failed), to answer
    /// 401 with `{"error": "invalid_credentials", …}` in the crate's shape.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The user already has `max_sessions` live sessions and
    /// `at_max_sessions = "refuse"`. Answers 409 with
    /// `{"error": "too_many_sessions", …}`: the user signs out elsewhere first.
    #[error("the user has the most sessions allowed")]
    TooManySessions,
    /// A login or refresh request carried a DPoP proof (RFC 9449) that failed
    /// a check (signature, method, URL, time, a proof seen before), or
    /// `dpop = "required"` and it carried none. Answers 400 with
    /// `{"error": "invalid_dpop_proof", …}` (§5).
    #[error("invalid DPoP proof")]
    InvalidDpopProof,
    /// A DPoP proof lacked the server's current nonce (`dpop_nonces`).
    /// Answers 400 with `{"error": "use_dpop_nonce", …}` and a `DPoP-Nonce`
    /// header; the client makes a new proof with it and retries (RFC 9449
    /// §8).
    #[error("a DPoP proof needs the server's nonce")]
    UseDpopNonce,
    /// The session does not exist or is not the caller's own. Answers 404.
    #[error("no such session among the user's active sessions")]
    SessionNotFound,
    /// A session label longer than
    /// [`MAX_SESSION_LABEL_CHARS`](crate::MAX_SESSION_LABEL_CHARS) or with
    /// control characters. Answers 422 `{"error": "invalid_label", …}`.
    #[error("a session label is at most 64 characters, without control characters")]
    InvalidLabel,
    /// The SQLite store failed (locked, full, read-only, I/O, the file deleted).
    /// Answers 503 with `Retry-After`; the cause is logged (at most one line a
    /// minute). Nothing already committed is lost, and a failed write changed
    /// nothing, so the request can be retried.
    #[error("session store failure: {0}")]
    Store(#[from] StoreError),
    /// The app's [`ClaimsSource`](crate::ClaimsSource) could not answer at a
    /// refresh (its lookup failed). Answers 503 with `Retry-After`, like a
    /// store failure; nothing was rotated, so the refresh can be retried.
    #[error("{0}")]
    ClaimsSourceFailed(String),
    /// A mistake of the calling code: claims that are not a JSON object or use
    /// a name the crate sets, an empty user id, a session value too large.
    /// Answers 500 (the app has a bug to fix); the message, logged, says what
    /// and how to fix it.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A bug or an unexpected failure (a panicked blocking task, corrupt stored
    /// claims). Answers 500; the cause is logged.
    #[error("internal error: {0}")]
    Internal(String),
}
