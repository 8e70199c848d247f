//! The mountable endpoints: refresh, logout, logout everywhere, the session list.

use rocket::http::Status;
use rocket::request::Request;
use rocket::response::{self, Responder};
use rocket::serde::json::{self, Json};
use rocket::{delete, get, post, Route, State};
use serde::{Deserialize, Serialize};

use crate::error::{json_response, Error};
use crate::guard::AuthUser;
use crate::manager::{ClientInfo, SessionInfo, Sessions, TokenPair};

/// The crate's endpoints, to mount under a base of the app's choosing:
///
/// | method, path | answer |
/// |---|---|
/// | `POST /refresh` `{"refresh_token"}` | 200 token response; 401 invalid, expired, revoked or reused |
/// | `POST /logout` (Bearer) | 204; the token and its session stop working |
/// | `POST /logout-all` (Bearer) | 204; every session of the user stops working |
/// | `GET /sessions` (Bearer) | 200 the user's active sessions, the current one marked |
/// | `DELETE /sessions/<id>` (Bearer) | 204; 404 unless it is the caller's own active session |
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
    rocket::routes![refresh, logout, logout_all, list_sessions, revoke_session]
}

/// The body of `POST /refresh`.
#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
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
    Refused(Error),
    BadBody(BadBody),
}

#[post("/refresh", data = "<body>")]
async fn refresh(
    sessions: &State<Sessions>,
    client: ClientInfo,
    body: Result<Json<RefreshRequest>, json::Error<'_>>,
) -> RefreshResponse {
    let body = match body {
        Ok(body) => body,
        Err(json::Error::Io(_)) => return RefreshResponse::BadBody(BadBody(Status::PayloadTooLarge)),
        Err(json::Error::Parse(..)) => return RefreshResponse::BadBody(BadBody(Status::BadRequest)),
    };
    match sessions.refresh(&body.refresh_token, &client).await {
        Ok(pair) => RefreshResponse::Tokens(pair),
        Err(error) => RefreshResponse::Refused(error),
    }
}

#[post("/logout")]
async fn logout(sessions: &State<Sessions>, user: AuthUser) -> Result<Status, Error> {
    sessions.logout(&user).await?;
    Ok(Status::NoContent)
}

#[post("/logout-all")]
async fn logout_all(sessions: &State<Sessions>, user: AuthUser) -> Result<Status, Error> {
    sessions.logout_everywhere(&user).await?;
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
async fn revoke_session(sessions: &State<Sessions>, user: AuthUser, id: &str) -> Result<Status, Error> {
    sessions.revoke_session(&user.id, id).await?;
    Ok(Status::NoContent)
}

impl<'r> Responder<'r, 'static> for TokenPair {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        rocket::Response::build_from(Json(self).respond_to(request)?)
            .raw_header("Cache-Control", "no-store")
            .raw_header("Pragma", "no-cache")
            .ok()
    }
}
