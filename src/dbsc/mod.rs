//! Device Bound Session Credentials (DBSC, W3C WebAppSec draft): a browser
//! binds a cookie session to a key it keeps in the device (a TPM), and
//! renews the session's short-lived cookie only by signing the server's
//! challenge with it. Here: the challenges ([`challenge`]) and the browser's
//! signed answers ([`answer`]); which session is bound to which key is the
//! service's business.

pub(crate) mod answer;
pub(crate) mod challenge;

/// The header a sign-in answers with to offer registration.
pub(crate) const REGISTRATION_HEADER: &str = "Secure-Session-Registration";
/// The header a browser's signed answer comes in.
pub(crate) const RESPONSE_HEADER: &str = "Secure-Session-Response";
/// The header a challenge goes out in.
pub(crate) const CHALLENGE_HEADER: &str = "Secure-Session-Challenge";
/// The header a refresh names its session in.
pub(crate) const SESSION_ID_HEADER: &str = "Sec-Secure-Session-Id";

/// DBSC's settings: the bound session's refresh cookie, and where the
/// crate's DBSC routes are mounted (found at launch).
#[derive(Debug, Clone)]
pub(crate) struct DbscSettings {
    pub refresh_cookie: String,
    /// The registration route's path (`/auth/dbsc/register`).
    pub register_path: String,
    /// The refresh route's path: the bound refresh cookie's `Path`.
    pub refresh_path: String,
}
