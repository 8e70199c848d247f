//! How the crate answers over HTTP: the JSON error bodies, the `Responder`
//! of [`Error`], and [`ErrorResponse`] for the app's own errors.

use std::io::Cursor;

use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use rocket::serde::json::Json;

use crate::error::{log_claims_source_failure, log_store_failure, Error, INVALID_TOKEN_MESSAGE};
use crate::sessions::TokenPair;

/// The response every token failure gets, from a guard or from a route.
pub(crate) fn invalid_token_response<'o>() -> Response<'o> {
    json_response(Status::Unauthorized, "invalid_token", INVALID_TOKEN_MESSAGE)
        .header(Header::new("WWW-Authenticate", r#"Bearer error="invalid_token""#))
        .finalize()
}

/// The step-up answer of RFC 9470: the token is valid, but the login is too old.
pub(crate) fn login_too_old_response<'o>(max_age: i64) -> Response<'o> {
    json_response(
        Status::Unauthorized,
        "insufficient_user_authentication",
        "This action needs a recent login; sign in again.",
    )
    .header(Header::new(
        "WWW-Authenticate",
        format!(r#"Bearer error="insufficient_user_authentication", max_age={max_age}"#),
    ))
    .finalize()
}

/// The answer to a request that failed CSRF protection.
pub(crate) fn csrf_refused_response<'o>() -> Response<'o> {
    json_response(
        Status::Forbidden,
        "csrf_failed",
        "This request must come from the app's own pages, with their CSRF token.",
    )
    .finalize()
}

/// The answer to a signed-in caller who may not do this.
pub(crate) fn forbidden_response<'o>() -> Response<'o> {
    json_response(Status::Forbidden, "forbidden", "You are not allowed to do this.").finalize()
}

/// The answer to a request that a temporary failure stopped: 503, retry in a
/// second.
fn unavailable_response<'o>(message: &str) -> Response<'o> {
    json_response(Status::ServiceUnavailable, "unavailable", message)
        .header(Header::new("Retry-After", "1"))
        .finalize()
}

fn body(code: &str, message: &str) -> String {
    serde_json::json!({ "error": code, "message": message }).to_string()
}

pub(crate) fn json_response<'o>(status: Status, code: &str, message: &str) -> response::Builder<'o> {
    let body = body(code, message);
    let mut builder = Response::build();
    builder
        .status(status)
        .header(ContentType::JSON)
        .header(Header::new("Cache-Control", "no-store"))
        .sized_body(body.len(), Cursor::new(body));
    builder
}

/// An error answer in the crate's shape, for the app's own errors: the status,
/// a JSON body `{"error": "<code>", "message": "…"}` and
/// `Cache-Control: no-store`, as every error of the crate.
///
/// ```
/// # use rocket::post;
/// use rocket::http::Status;
/// use rocket_sqlite_sessions::ErrorResponse;
///
/// #[post("/notes")]
/// fn create_note() -> Result<&'static str, ErrorResponse> {
///     Err(ErrorResponse::new(Status::Conflict, "duplicate_note", "A note with this title exists."))
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    status: Status,
    code: String,
    message: String,
}

impl ErrorResponse {
    /// An answer with `status`, a machine-readable `code` and a `message` for
    /// people.
    pub fn new(status: Status, code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorResponse {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
}

impl<'r> Responder<'r, 'static> for ErrorResponse {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        Ok(json_response(self.status, &self.code, &self.message).finalize())
    }
}

impl<'r> Responder<'r, 'static> for Error {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let response = match self {
            Error::InvalidToken => invalid_token_response(),
            Error::Throttled { retry_after } => json_response(
                Status::TooManyRequests,
                "too_many_attempts",
                &format!("Too many failed attempts; try again in {retry_after} seconds."),
            )
            .header(Header::new("Retry-After", retry_after.to_string()))
            .finalize(),
            Error::LoginTooOld { max_age } => login_too_old_response(max_age),
            Error::CsrfRefused => csrf_refused_response(),
            Error::Forbidden => forbidden_response(),
            Error::InvalidCredentials => json_response(
                Status::Unauthorized,
                "invalid_credentials",
                "Invalid username or password.",
            )
            .finalize(),
            Error::TooManySessions => json_response(
                Status::Conflict,
                "too_many_sessions",
                "You are signed in on too many devices; sign out on one of them first.",
            )
            .finalize(),
            Error::LoginSuperseded => json_response(
                Status::Conflict,
                "login_superseded",
                "The account changed while signing in; sign in again.",
            )
            .finalize(),
            Error::InvalidLabel => json_response(
                Status::UnprocessableEntity,
                "invalid_label",
                "A session label is at most 64 characters, without control characters.",
            )
            .finalize(),
            Error::InvalidDpopProof => json_response(
                Status::BadRequest,
                "invalid_dpop_proof",
                "The DPoP proof is missing, malformed, expired, replayed or not for this request.",
            )
            .finalize(),
            Error::UseDpopNonce => json_response(
                Status::BadRequest,
                "use_dpop_nonce",
                "Make a new DPoP proof with the nonce in the DPoP-Nonce header.",
            )
            .finalize(),
            Error::SessionNotFound => json_response(
                Status::NotFound,
                "not_found",
                "No such session among your active sessions.",
            )
            .finalize(),
            Error::Store(cause) => {
                log_store_failure(format_args!("{} {}", request.method(), request.uri().path()), &cause);
                unavailable_response("The session store is temporarily unavailable; try again shortly.")
            }
            Error::ClaimsSourceFailed(cause) => {
                log_claims_source_failure(format_args!("{} {}", request.method(), request.uri().path()), &cause);
                unavailable_response("A service the sessions depend on is temporarily unavailable; try again shortly.")
            }
            Error::Internal(cause) | Error::InvalidArgument(cause) => {
                log::error!(
                    "rocket_sqlite_sessions: {} {}: internal error: {cause}",
                    request.method(),
                    request.uri().path()
                );
                json_response(
                    Status::InternalServerError,
                    "internal_error",
                    "An internal error occurred.",
                )
                .finalize()
            }
        };
        Ok(response)
    }
}

impl<'r> Responder<'r, 'static> for TokenPair {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        Response::build_from(Json(self).respond_to(request)?)
            .raw_header("Cache-Control", "no-store")
            .raw_header("Pragma", "no-cache")
            .ok()
    }
}
