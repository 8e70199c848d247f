//! The demo's JSON errors: `{"error": code, "message": message}`, as the
//! crate answers its own.

use rocket::http::Status;
use rocket::serde::json::Json;
use serde_json::{json, Value};

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

pub(crate) fn unavailable(error: impl std::fmt::Display) -> ApiError {
    log::error!("demo: users table: {error}");
    api_error(
        Status::ServiceUnavailable,
        "unavailable",
        "The database is temporarily unavailable; try again shortly.",
    )
}
