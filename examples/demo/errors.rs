//! The demo's JSON errors: `{"error": code, "message": message}`, as the
//! crate answers its own.

use rocket::http::Status;
use rocket::serde::json::Json;
use serde_json::{json, Value};

use super::logging::EveryMinute;

/// A JSON error answer: `{"error": code, "message": message}`.
pub(crate) type ApiError = (Status, Json<Value>);

pub(crate) fn api_error(status: Status, code: &str, message: &str) -> ApiError {
    (status, Json(json!({ "error": code, "message": message })))
}

pub(crate) fn internal_error() -> ApiError {
    api_error(
        Status::InternalServerError,
        "internal_error",
        "An internal error occurred.",
    )
}

/// The 503 of a users-table failure, logged at most once a minute (with how
/// many were not logged since): an outage fails every request, and the log
/// must not grow with them.
pub(crate) fn unavailable(error: impl std::fmt::Display) -> ApiError {
    static FAILURES: EveryMinute = EveryMinute::new();
    FAILURES.log(log::Level::Error, format_args!("demo: users table: {error}"));
    service_unavailable()
}

/// The 503 of a session-store failure: the crate has logged it (at most once
/// a minute), so the demo does not.
pub(crate) fn sessions_unavailable() -> ApiError {
    service_unavailable()
}

fn service_unavailable() -> ApiError {
    api_error(
        Status::ServiceUnavailable,
        "unavailable",
        "The database is temporarily unavailable; try again shortly.",
    )
}
