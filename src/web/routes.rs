//! The mountable endpoints: refresh, logout, logout everywhere, the session
//! list, token revocation.

use rocket::http::{CookieJar, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Responder};
use rocket::serde::json::Json;
use rocket::{delete, get, post, put, Route, State};
use serde::{Deserialize, Serialize};

use crate::client::ClientInfo;
use crate::csrf::CsrfBinding;
use crate::error::Error;
use crate::sessions::{SessionInfo, Sessions, TokenPair};
use crate::user::AuthUser;
use crate::web::csrf_proof::{check_origin, presented_csrf_token};
use crate::web::dbsc::{dbsc_refresh, dbsc_register};
use crate::web::oauth::{revoke, OAuthError, RefreshBody};
use crate::web::request::{first_header, record};
use crate::web::responses::json_response;

/// The crate's endpoints, to mount under a base of the app's choosing:
///
/// | method, path | answer |
/// |---|---|
/// | `POST /refresh` `{"refresh_token"}` | 200 token response; 401 invalid, expired, revoked or reused |
/// | `POST /refresh` `grant_type=refresh_token&refresh_token=…` (a form, RFC 6749 §6) | 200 token response; 400 `invalid_grant` for any refused token, `unsupported_grant_type`, `invalid_request` (RFC 6749 §5.2) |
/// | `POST /refresh` (cookies, no JSON body) | 204 with both session cookies rotated; 401 (cookies cleared) as above; 403 without CSRF proof |
/// | `POST /revoke` `token=…` (a form, RFC 7009) | 200 for any token, valid or not: a refresh token's session ends, an access token is blocklisted and its session ends; 400 `invalid_request` without `token` |
/// | `POST /logout` (Bearer or cookies) | 204; the token and its session stop working; with cookies, both are cleared |
/// | `POST /logout-all` (Bearer or cookies) | 204; every session of the user stops working; with cookies, both are cleared |
/// | `POST /logout-others` (Bearer or cookies) | 204; every other session of the user stops working (after a password change), this one stays; 401 `insufficient_user_authentication` (with `max_age`) unless the user signed in within `fresh_age` ([`Sessions::require_fresh`]) |
/// | `GET /sessions` (Bearer) | 200 the user's active sessions (with `device`, `label`), the current one marked |
/// | `DELETE /sessions/<id>` (Bearer) | 204; 404 unless it is the caller's own active session; another than the caller's own needs a sign-in within `fresh_age`, as above |
/// | `PUT /sessions/<id>/label` `{"label": "Work laptop"}` (or `null`) | 204; 404 as above; 422 `invalid_label` past 64 characters or with control characters, `invalid_request` for another body; another session than the caller's needs a sign-in within `fresh_age`, as above |
/// | `POST /dbsc/register`, `POST /dbsc/refresh` (with `dbsc = true`) | Device Bound Session Credentials: a browser registers its device key for the session of its cookies, then renews them with the key's signature over a challenge (403 with `Secure-Session-Challenge` first); see the guide's DBSC page |
///
/// In cookie mode (a browser app, see [`Sessions::set_cookies`]) every one of
/// them is an unsafe request authenticated by cookie, so it needs the session's
/// CSRF token (`X-CSRF-Token` or a `csrf_token` form field) from the app's own
/// origin, as any other.
///
/// ```no_run
/// # use rocket::launch;
/// use rocket_sqlite_sessions::Sessions;
///
/// #[launch]
/// fn rocket() -> _ {
///     rocket::build()
///         .attach(Sessions::fairing())
///         .mount("/auth", rocket_sqlite_sessions::routes())
/// }
/// ```
pub fn routes() -> Vec<Route> {
    rocket::routes![
        refresh,
        logout,
        logout_all,
        logout_others,
        list_sessions,
        revoke_session,
        label_session,
        revoke,
        dbsc_register,
        dbsc_refresh
    ]
}

/// Why a request body was refused: 400, or 413 past the `json` data limit.
struct BadBody(Status);

impl<'r> Responder<'r, 'static> for BadBody {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let message = if self.0 == Status::PayloadTooLarge {
            "The request body is larger than the `json` data limit."
        } else {
            "The request body must be JSON: {\"refresh_token\": \"…\"}."
        };
        Ok(json_response(self.0, "invalid_request", message).finalize())
    }
}

#[derive(Responder)]
enum RefreshResponse {
    Tokens(TokenPair),
    Rotated(Status),
    Refused(Error),
    BadBody(BadBody),
    OAuth(OAuthError),
}

/// A browser's refresh: the refresh cookie, without an `Authorization` header
/// or a JSON body, with its CSRF proof checked against the cookie's session.
enum CookieRefresh {
    /// Not a cookie refresh: the JSON body decides.
    No,
    /// The refresh cookie, its CSRF proof valid.
    Token(String),
    /// The CSRF proof is missing or wrong, or the origin is foreign: 403.
    Refused,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for CookieRefresh {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let Some(sessions) = record(request).sessions() else {
            return Outcome::Success(CookieRefresh::No);
        };
        let json = request
            .content_type()
            .is_some_and(|content_type| content_type.is_json());
        let cookie = request.cookies().get(&sessions.settings().browser.refresh_cookie);
        let (Some(cookie), false, None) = (cookie, json, first_header(request, "Authorization")) else {
            return Outcome::Success(CookieRefresh::No);
        };
        let token = cookie.value().to_string();
        // Not a token of this server: 401 (and the cookies cleared), as any
        // dead refresh cookie.
        let Some(session) = sessions.refresh_token_session(&token) else {
            return Outcome::Success(CookieRefresh::Token(token));
        };
        let proof = check_origin(request, &sessions.settings().browser).is_ok()
            && presented_csrf_token(request)
                .is_some_and(|presented| sessions.csrf_token_matches(CsrfBinding::Session(&session), presented));
        if proof {
            Outcome::Success(CookieRefresh::Token(token))
        } else {
            record(request).mark_refused(Status::Forbidden);
            Outcome::Success(CookieRefresh::Refused)
        }
    }
}

#[post("/refresh", data = "<body>")]
async fn refresh(
    sessions: &State<Sessions>,
    client: ClientInfo,
    cookie: CookieRefresh,
    jar: &CookieJar<'_>,
    body: RefreshBody,
) -> RefreshResponse {
    // One call of `refresh` (one copy of its future in this one).
    let (token, via) = match (cookie, body) {
        (CookieRefresh::Refused, _) => return RefreshResponse::Refused(Error::CsrfRefused),
        (CookieRefresh::Token(token), _) => (token, RefreshVia::Cookie),
        (CookieRefresh::No, RefreshBody::Json(token)) => (token, RefreshVia::Json),
        (CookieRefresh::No, RefreshBody::BadJson(status)) => return RefreshResponse::BadBody(BadBody(status)),
        // RFC 6749 §6: a stock OAuth client's refresh, with §5.2's errors.
        (CookieRefresh::No, RefreshBody::Form(Err(error))) => return RefreshResponse::OAuth(error),
        (CookieRefresh::No, RefreshBody::Form(Ok(token))) => (token, RefreshVia::Form),
    };
    let from_cookies = matches!(via, RefreshVia::Cookie);
    match (via, sessions.refresh_pair(&token, &client, from_cookies).await) {
        (RefreshVia::Cookie, Ok(pair)) => {
            sessions.set_cookies(jar, &pair);
            RefreshResponse::Rotated(Status::NoContent)
        }
        (RefreshVia::Cookie, Err(Error::InvalidToken)) => {
            sessions.clear_cookies(jar);
            RefreshResponse::Refused(Error::InvalidToken)
        }
        (RefreshVia::Json | RefreshVia::Form, Ok(pair)) => RefreshResponse::Tokens(pair),
        (RefreshVia::Form, Err(Error::InvalidToken)) => RefreshResponse::OAuth(OAuthError::invalid_grant()),
        // Nothing rotated (the store or the claims source failed): cookies
        // stay for a retry.
        (_, Err(error)) => RefreshResponse::Refused(error),
    }
}

/// Where `POST /auth/refresh` found the refresh token, which decides how it
/// is answered.
enum RefreshVia {
    /// The refresh cookie: new cookies and 204.
    Cookie,
    /// The crate's JSON body: the JSON pair.
    Json,
    /// An RFC 6749 form: the pair, §5.2's `invalid_grant` for a bad token.
    Form,
}

/// Whether the request is authenticated by cookie (no `Authorization`
/// header): its logout clears the cookies.
struct CookieMode(bool);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for CookieMode {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(CookieMode(first_header(request, "Authorization").is_none()))
    }
}

#[post("/logout")]
async fn logout(
    sessions: &State<Sessions>,
    user: AuthUser,
    client: ClientInfo,
    mode: CookieMode,
    jar: &CookieJar<'_>,
) -> Result<Status, Error> {
    sessions.logout_from(&user, client.ip).await?;
    if mode.0 {
        sessions.clear_cookies(jar);
    }
    Ok(Status::NoContent)
}

#[post("/logout-all")]
async fn logout_all(
    sessions: &State<Sessions>,
    user: AuthUser,
    client: ClientInfo,
    mode: CookieMode,
    jar: &CookieJar<'_>,
) -> Result<Status, Error> {
    sessions.logout_everywhere(&user, client.ip).await?;
    if mode.0 {
        sessions.clear_cookies(jar);
    }
    Ok(Status::NoContent)
}

/// Ends the caller's other sessions: only with a recent sign-in (ASVS 5.0
/// 7.5.2), so a stolen old session cannot end its owner's others.
#[post("/logout-others")]
async fn logout_others(sessions: &State<Sessions>, user: AuthUser, client: ClientInfo) -> Result<Status, Error> {
    sessions.require_fresh(&user)?;
    sessions.logout_others_from(&user, client.ip).await?;
    Ok(Status::NoContent)
}

/// One entry of `GET /sessions`.
#[derive(Serialize)]
struct ListedSession {
    #[serde(flatten)]
    session: SessionInfo,
    current: bool,
}

#[get("/sessions")]
async fn list_sessions(sessions: &State<Sessions>, user: AuthUser) -> Result<Json<Vec<ListedSession>>, Error> {
    let listed = sessions
        .sessions(&user.id)
        .await?
        .into_iter()
        .map(|session| ListedSession {
            current: session.id == user.session_id,
            session,
        })
        .collect();
    Ok(Json(listed))
}

#[delete("/sessions/<id>")]
async fn revoke_session(
    sessions: &State<Sessions>,
    user: AuthUser,
    client: ClientInfo,
    id: &str,
) -> Result<Status, Error> {
    // Another session of the user needs a recent sign-in; the caller's own
    // does not (a logout).
    if id != user.session_id {
        sessions.require_fresh(&user)?;
    }
    sessions.revoke_session_from(&user.id, id, client.ip).await?;
    Ok(Status::NoContent)
}

/// The body of `PUT /sessions/<id>/label`.
#[derive(Deserialize)]
struct Label {
    label: Option<String>,
}

/// Why a label was not set: a body that is not `{"label": …}` (422
/// `invalid_request`), or the crate's error.
enum LabelRefused {
    Body,
    Session(Error),
}

impl<'r> Responder<'r, 'static> for LabelRefused {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        match self {
            LabelRefused::Body => Ok(json_response(
                Status::UnprocessableEntity,
                "invalid_request",
                "The request body must be JSON: {\"label\": \"…\"} or {\"label\": null}.",
            )
            .finalize()),
            LabelRefused::Session(error) => error.respond_to(request),
        }
    }
}

#[put("/sessions/<id>/label", data = "<body>")]
async fn label_session(
    sessions: &State<Sessions>,
    user: AuthUser,
    id: &str,
    body: Result<Json<Label>, rocket::serde::json::Error<'_>>,
) -> Result<Status, LabelRefused> {
    let Ok(Json(Label { label })) = body else {
        return Err(LabelRefused::Body);
    };
    if id != user.session_id {
        sessions.require_fresh(&user).map_err(LabelRefused::Session)?;
    }
    sessions
        .set_session_label(&user.id, id, label.as_deref())
        .await
        .map_err(LabelRefused::Session)?;
    Ok(Status::NoContent)
}
