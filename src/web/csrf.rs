//! The CSRF guards: [`CsrfToken`], the token a page puts in its forms, and
//! [`CsrfProtected`], the proof an unsafe route without a session guard asks
//! for.

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};

use crate::csrf::{CsrfBinding, CsrfRefusal};
use crate::error::Error;
use crate::web::csrf_proof::{check_origin, presented_csrf_token};
use crate::web::request::{fairing_missing, managed, record, Verdict};
use crate::web::verdict::verdict;

/// The CSRF token to put in a page's forms: the session's when signed in, else
/// one bound to a pre-session cookie (set now if missing), so login forms are
/// protected too.
///
/// ```
/// # use rocket::get;
/// # use rocket::response::content::RawHtml;
/// use rocket_sqlite_sessions::CsrfToken;
///
/// #[get("/login")]
/// fn login_form(csrf: CsrfToken) -> RawHtml<String> {
///     RawHtml(format!(
///         r#"<form method="post" action="/login">
///              <input type="hidden" name="csrf_token" value="{}">
///              <input name="username"> <input name="password" type="password">
///            </form>"#,
///         csrf.as_str()
///     ))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct CsrfToken(String);

impl CsrfToken {
    /// The token, base64url: safe in an HTML attribute and a header.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl rocket::Sentinel for CsrfToken {
    fn abort(rocket: &rocket::Rocket<rocket::Ignite>) -> bool {
        fairing_missing(rocket, "CsrfToken")
    }
}

impl rocket::Sentinel for CsrfProtected {
    fn abort(rocket: &rocket::Rocket<rocket::Ignite>) -> bool {
        fairing_missing(rocket, "CsrfProtected")
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for CsrfToken {
    type Error = Error;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let sessions = match managed(request) {
            Ok(sessions) => sessions,
            Err(failure) => return Outcome::Error(failure),
        };
        let token = match verdict(request, sessions).await {
            Verdict::User(user) => sessions.csrf_token(&user.session_id),
            _ => {
                let value = sessions.pre_session_value(request.cookies());
                sessions.csrf_token_for(CsrfBinding::PreSession(&value))
            }
        };
        // The page will carry it: the response hook keeps it out of caches.
        record(request).mark_csrf_token_given();
        Outcome::Success(CsrfToken(token))
    }
}

/// A request guard for unsafe routes without [`AuthUser`](crate::AuthUser),
/// such as a login form's `POST`: the request comes from the app's own origin
/// and carries a CSRF token of the signed-in session or of the pre-session
/// cookie. Fails with 403.
#[derive(Debug, Clone, Copy)]
pub struct CsrfProtected;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for CsrfProtected {
    type Error = Error;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let sessions = match managed(request) {
            Ok(sessions) => sessions,
            Err(failure) => return Outcome::Error(failure),
        };
        let refused = |reason: CsrfRefusal| {
            log::debug!(
                "rocket_sqlite_sessions: {} {}: CSRF check failed: {reason}",
                request.method(),
                request.uri().path()
            );
            record(request).mark_refused(Status::Forbidden);
            Outcome::Error((Status::Forbidden, Error::CsrfRefused))
        };
        if let Err(reason) = check_origin(request, &sessions.settings().browser) {
            return refused(reason);
        }
        let Some(presented) = presented_csrf_token(request) else {
            return refused(CsrfRefusal::MissingToken);
        };
        let pre_session = request
            .cookies()
            .get(&sessions.settings().browser.csrf_cookie)
            .map(|c| c.value().to_string());
        let by_pre_session = pre_session
            .as_deref()
            .is_some_and(|value| sessions.csrf_token_matches(CsrfBinding::PreSession(value), presented));
        let by_session = || async {
            match verdict(request, sessions).await {
                Verdict::User(user) => sessions.csrf_token_matches(CsrfBinding::Session(&user.session_id), presented),
                _ => false,
            }
        };
        if by_pre_session || by_session().await {
            Outcome::Success(CsrfProtected)
        } else {
            refused(CsrfRefusal::WrongToken)
        }
    }
}
