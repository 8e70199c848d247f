//! What stock OAuth 2.0 clients speak: the refresh grant as an
//! `application/x-www-form-urlencoded` form (RFC 6749 §6) with its errors
//! (§5.2), and token revocation (RFC 7009).

use std::collections::HashMap;

use rocket::data::{Data, FromData, Limits, Outcome, ToByteUnit};
use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use rocket::{post, State};
use serde::Deserialize;

use crate::client::ClientInfo;
use crate::error::Error;
use crate::sessions::Sessions;

/// An RFC 6749 §5.2 error: 400 with `{"error", "error_description"}`.
pub(super) struct OAuthError {
    code: &'static str,
    description: &'static str,
}

impl OAuthError {
    fn invalid_request(description: &'static str) -> Self {
        OAuthError {
            code: "invalid_request",
            description,
        }
    }

    /// Every refused refresh token, whatever the cause: one answer.
    pub(super) fn invalid_grant() -> Self {
        OAuthError {
            code: "invalid_grant",
            description: "The refresh token is invalid, expired, revoked or was already used.",
        }
    }
}

impl<'r> Responder<'r, 'static> for OAuthError {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let body = serde_json::json!({ "error": self.code, "error_description": self.description }).to_string();
        Response::build()
            .status(Status::BadRequest)
            .header(ContentType::JSON)
            .header(Header::new("Cache-Control", "no-store"))
            .header(Header::new("Pragma", "no-cache"))
            .sized_body(body.len(), std::io::Cursor::new(body))
            .ok()
    }
}

/// The parameters of a form body (RFC 6749 §3.1: none may appear twice).
/// `None` with the error to answer when the body is not one.
async fn form_parameters(request: &Request<'_>, data: Data<'_>) -> Result<HashMap<String, String>, OAuthError> {
    let limit = request.limits().get("form").unwrap_or_else(|| 32.kibibytes());
    let read = data
        .open(limit)
        .into_string()
        .await
        .map_err(|_| OAuthError::invalid_request("The form body could not be read."))?;
    if !read.is_complete() {
        return Err(OAuthError::invalid_request(
            "The form body is larger than the `form` data limit.",
        ));
    }
    let mut parameters = HashMap::new();
    for pair in read.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |text: &str| {
            rocket::http::RawStr::new(text)
                .url_decode()
                .map(|decoded| decoded.into_owned())
                .map_err(|_| OAuthError::invalid_request("A form parameter is not valid UTF-8."))
        };
        if parameters.insert(decode(name)?, decode(value)?).is_some() {
            return Err(OAuthError::invalid_request("A parameter is given more than once."));
        }
    }
    Ok(parameters)
}

/// The body of `POST /refresh`: the crate's JSON (also when sent with a form
/// content type, as `curl -d` does: a body starting with `{`), or an RFC 6749
/// form.
pub(super) enum RefreshBody {
    /// `{"refresh_token": "…"}`.
    Json(String),
    /// The JSON body is not that: 400, or 413 past the `json` limit.
    BadJson(Status),
    /// `grant_type=refresh_token&refresh_token=…`, or the §5.2 error to
    /// answer.
    Form(Result<String, OAuthError>),
}

/// The JSON body of `POST /refresh`.
#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

/// How much of a form body is looked at for a JSON object's `{`.
const JSON_SNIFF_BYTES: usize = 64;

#[rocket::async_trait]
impl<'r> FromData<'r> for RefreshBody {
    type Error = std::convert::Infallible;

    async fn from_data(request: &'r Request<'_>, mut data: Data<'r>) -> Outcome<'r, Self> {
        let form = request
            .content_type()
            .is_some_and(|content_type| content_type.is_form());
        // A JSON object sent as a form (`curl -d '{"refresh_token": …}'`):
        // an RFC 6749 form starts with a field name, never with `{`.
        let json_as_form = form
            && data
                .peek(JSON_SNIFF_BYTES)
                .await
                .iter()
                .find(|byte| !byte.is_ascii_whitespace())
                == Some(&b'{');
        if !form || json_as_form {
            // What `Json` does, without its boxed future and its copy of the
            // body in the request's cache: past the `json` limit 413; not
            // UTF-8, or not the JSON asked for, 400.
            let limit = request.limits().get("json").unwrap_or(Limits::JSON);
            return Outcome::Success(match data.open(limit).into_string().await {
                Ok(body) if body.is_complete() => match serde_json::from_str::<RefreshRequest>(&body) {
                    Ok(body) => RefreshBody::Json(body.refresh_token),
                    Err(_) => RefreshBody::BadJson(Status::BadRequest),
                },
                Ok(_) => RefreshBody::BadJson(Status::PayloadTooLarge),
                Err(_) => RefreshBody::BadJson(Status::BadRequest),
            });
        }
        let grant = match form_parameters(request, data).await {
            Err(error) => Err(error),
            Ok(parameters) => match (parameters.get("grant_type"), parameters.get("refresh_token")) {
                (None, _) => Err(OAuthError::invalid_request("The grant_type parameter is missing.")),
                (Some(grant), _) if grant != "refresh_token" => Err(OAuthError {
                    code: "unsupported_grant_type",
                    description: "Only the refresh_token grant is supported here.",
                }),
                (Some(_), None) => Err(OAuthError::invalid_request("The refresh_token parameter is missing.")),
                (Some(_), Some(token)) => Ok(token.clone()),
            },
        };
        Outcome::Success(RefreshBody::Form(grant))
    }
}

/// The body of `POST /revoke`: the token (RFC 7009 §2.1), or the error to
/// answer. `token_type_hint` is read but not needed: both kinds are tried.
pub(super) struct RevocationRequest(Result<String, OAuthError>);

#[rocket::async_trait]
impl<'r> FromData<'r> for RevocationRequest {
    type Error = std::convert::Infallible;

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> Outcome<'r, Self> {
        let form = request
            .content_type()
            .is_some_and(|content_type| content_type.is_form());
        if !form {
            return Outcome::Success(RevocationRequest(Err(OAuthError::invalid_request(
                "The body must be an application/x-www-form-urlencoded form with a token parameter.",
            ))));
        }
        let token = form_parameters(request, data).await.and_then(|parameters| {
            parameters
                .get("token")
                .cloned()
                .ok_or_else(|| OAuthError::invalid_request("The token parameter is missing."))
        });
        Outcome::Success(RevocationRequest(token))
    }
}

/// 200, empty, whatever the token was (RFC 7009 §2.2).
#[derive(rocket::Responder)]
#[response(status = 200)]
pub(super) struct Revoked {
    body: (),
    cache: Header<'static>,
}

/// The answer of `POST /revoke`.
#[derive(rocket::Responder)]
pub(super) enum RevocationResponse {
    Done(Revoked),
    BadRequest(OAuthError),
    /// The store failed: 503, nothing was revoked; retry.
    Failed(Error),
}

/// `POST /revoke`, RFC 7009: `token=…` (a refresh or an access token of
/// this server) and an optional `token_type_hint`. 200 for any token, valid
/// or not; a refresh token's session ends, with its access tokens; an access
/// token is blocklisted and its session ends. Junk costs no store access.
#[post("/revoke", data = "<body>")]
pub(super) async fn revoke(
    sessions: &State<Sessions>,
    client: ClientInfo,
    body: RevocationRequest,
) -> RevocationResponse {
    let token = match body.0 {
        Ok(token) => token,
        Err(error) => return RevocationResponse::BadRequest(error),
    };
    match sessions.revoke_token_from(&token, client.ip).await {
        Ok(_) => RevocationResponse::Done(Revoked {
            body: (),
            cache: Header::new("Cache-Control", "no-store"),
        }),
        Err(error) => RevocationResponse::Failed(error),
    }
}
