//! DBSC over HTTP: the registration offer on every answer that sets a new
//! session's refresh cookie, and the two routes a browser calls,
//! `POST /dbsc/register` and `POST /dbsc/refresh`.

use rocket::http::{CookieJar, Header, Status};
use rocket::request::{FromRequest, Outcome, Request};
use rocket::response::{self, Responder, Response};
use rocket::serde::json::Json;
use rocket::{post, Rocket, State};
use serde_json::{json, Value};

use crate::client::ClientInfo;
use crate::dbsc::challenge::Purpose;
use crate::dbsc::{CHALLENGE_HEADER, REGISTRATION_HEADER, RESPONSE_HEADER, SESSION_ID_HEADER};
use crate::error::{log_store_failure, Error};
use crate::sessions::{DeviceRefusal, Issued, Sessions, TokenPair};
use crate::web::responses::json_response;

/// The names of the DBSC routes, found among the mounted routes at launch.
const REGISTER_ROUTE: &str = "dbsc_register";
const REFRESH_ROUTE: &str = "dbsc_refresh";

/// Where the DBSC routes are mounted: `(registration, refresh)`, or `None`
/// when [`routes()`](crate::routes) is not mounted.
pub(crate) fn dbsc_paths<P: rocket::Phase>(rocket: &Rocket<P>) -> Option<(String, String)> {
    let path = |name: &str| {
        rocket
            .routes()
            .find(|route| route.name.as_deref() == Some(name))
            .map(|route| route.uri.path().to_string())
    };
    Some((path(REGISTER_ROUTE)?, path(REFRESH_ROUTE)?))
}

/// Offers registration (`Secure-Session-Registration`) on `response` when it
/// sets a new unbound session's refresh cookie: a sign-in, or a silent
/// refresh of a session whose browser has not registered yet.
pub(crate) fn offer_registration(sessions: &Sessions, response: &mut Response<'_>) {
    let Some(dbsc) = sessions.dbsc_settings() else {
        return;
    };
    let refresh_cookie = &sessions.settings().browser.refresh_cookie;
    let session = response.headers().get("Set-Cookie").find_map(|header| {
        let cookie = rocket::http::Cookie::parse(header).ok()?;
        (cookie.name() == refresh_cookie && !cookie.value().is_empty())
            .then(|| sessions.refresh_token_session(cookie.value()))
            .flatten()
    });
    if let Some(session_id) = session {
        let challenge = sessions.dbsc_challenge(Purpose::Registration, &session_id);
        response.set_header(Header::new(
            REGISTRATION_HEADER,
            format!(r#"(ES256 RS256);path="{}";challenge="{challenge}""#, dbsc.register_path),
        ));
    }
}

/// What a browser's DBSC request carries: its signed answer and, for a
/// refresh, the session it names.
pub(crate) struct DbscRequest {
    answer: Option<String>,
    session_id: Option<String>,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for DbscRequest {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let headers = request.headers();
        // `Sec-Secure-Session-Id` is a structured-field string: quoted.
        let session_id = headers
            .get_one(SESSION_ID_HEADER)
            .map(|value| value.trim().trim_matches('"').to_string())
            .filter(|value| !value.is_empty() && value.len() <= 64);
        Outcome::Success(DbscRequest {
            answer: headers.get_one(RESPONSE_HEADER).map(|value| value.trim().to_string()),
            session_id,
        })
    }
}

/// The answer of a DBSC route.
pub(crate) enum DbscResponse {
    /// New cookies (set in the jar) and the session's instructions.
    Bound(Value, String, String),
    /// 403 with a new challenge.
    Challenge(String, String),
    /// No cookie: 401.
    Refused,
    /// The session is over: instructions to stop refreshing it (the cookies
    /// are cleared).
    Ended(Option<String>),
    /// A store failure: 503.
    Failed(Error),
}

fn challenge_header(challenge: &str, session_id: &str) -> Header<'static> {
    Header::new(CHALLENGE_HEADER, format!(r#""{challenge}";id="{session_id}""#))
}

impl<'r> Responder<'r, 'static> for DbscResponse {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        match self {
            DbscResponse::Bound(instructions, challenge, session_id) => {
                Response::build_from(Json(instructions).respond_to(request)?)
                    .header(challenge_header(&challenge, &session_id))
                    .raw_header("Cache-Control", "no-store")
                    .ok()
            }
            DbscResponse::Challenge(challenge, session_id) => Ok(json_response(
                Status::Forbidden,
                "dbsc_challenge",
                "Sign the challenge in Secure-Session-Challenge with the session's key.",
            )
            .header(challenge_header(&challenge, &session_id))
            .finalize()),
            DbscResponse::Refused => Ok(json_response(
                Status::Unauthorized,
                "dbsc_refused",
                "The device-bound session could not be renewed.",
            )
            .finalize()),
            DbscResponse::Ended(session_id) => {
                let body = json!({ "session_identifier": session_id, "continue": false });
                Response::build_from(Json(body).respond_to(request)?)
                    .raw_header("Cache-Control", "no-store")
                    .ok()
            }
            DbscResponse::Failed(error) => error.respond_to(request),
        }
    }
}

/// The session instructions of the spec for `pair`'s session.
fn instructions(sessions: &Sessions, pair: &TokenPair) -> Value {
    let refresh_url = sessions.dbsc_settings().map(|dbsc| dbsc.refresh_path.clone());
    json!({
        "session_identifier": pair.session_id,
        "refresh_url": refresh_url,
        "scope": { "include_site": false, "scope_specification": [] },
        "credentials": [{
            "type": "cookie",
            "name": sessions.settings().browser.access_cookie,
            "attributes": sessions.access_cookie_attributes(),
        }],
    })
}

/// The answer to a registration or refresh's outcome; `session_id` is the
/// session the request named, for a new challenge.
fn answer(
    sessions: &Sessions,
    jar: &CookieJar<'_>,
    outcome: Result<Issued, DeviceRefusal>,
    session_id: Option<String>,
    purpose: Purpose,
) -> DbscResponse {
    match outcome {
        Ok(issued) => {
            sessions.set_cookies(jar, &issued.pair);
            let next = sessions.dbsc_challenge(Purpose::Refresh, &issued.pair.session_id);
            DbscResponse::Bound(instructions(sessions, &issued.pair), next, issued.pair.session_id)
        }
        Err(DeviceRefusal::Challenge) => match session_id {
            Some(session_id) => DbscResponse::Challenge(sessions.dbsc_challenge(purpose, &session_id), session_id),
            None => DbscResponse::Refused,
        },
        Err(DeviceRefusal::Refused(reason)) => {
            log::debug!("rocket_sqlite_sessions: DBSC: {reason}");
            DbscResponse::Refused
        }
        Err(DeviceRefusal::Ended) => {
            sessions.clear_cookies(jar);
            DbscResponse::Ended(session_id)
        }
        Err(DeviceRefusal::Failed(Error::Store(cause))) => {
            log_store_failure(format_args!("DBSC"), &cause);
            DbscResponse::Failed(Error::Store(cause))
        }
        Err(DeviceRefusal::Failed(other)) => DbscResponse::Failed(other),
    }
}

/// The browser registers its key for the session of its refresh cookie.
#[post("/dbsc/register")]
pub(crate) async fn dbsc_register(
    sessions: &State<Sessions>,
    client: ClientInfo,
    jar: &CookieJar<'_>,
    dbsc: DbscRequest,
) -> DbscResponse {
    if sessions.dbsc_settings().is_none() {
        return DbscResponse::Refused;
    }
    let refresh = jar
        .get(&sessions.settings().browser.refresh_cookie)
        .map(|cookie| cookie.value().to_string());
    let session_id = refresh
        .as_deref()
        .and_then(|token| sessions.refresh_token_session(token));
    let outcome = match (refresh, dbsc.answer) {
        (Some(refresh), Some(answer)) => sessions.register_device(&refresh, &answer, &client).await,
        (Some(_), None) => Err(DeviceRefusal::Challenge),
        (None, _) => Err(DeviceRefusal::Refused("no session cookie to bind")),
    };
    answer(sessions, jar, outcome, session_id, Purpose::Registration)
}

/// The browser renews a device-bound session's cookies, with the session's
/// key's signature over a challenge (403 with one first).
#[post("/dbsc/refresh")]
pub(crate) async fn dbsc_refresh(
    sessions: &State<Sessions>,
    client: ClientInfo,
    jar: &CookieJar<'_>,
    dbsc: DbscRequest,
) -> DbscResponse {
    let Some(settings) = sessions.dbsc_settings() else {
        return DbscResponse::Refused;
    };
    let Some(session_id) = dbsc.session_id else {
        return DbscResponse::Refused;
    };
    let refresh = jar
        .get(&settings.refresh_cookie)
        .map(|cookie| cookie.value().to_string());
    let outcome = sessions
        .refresh_device(&session_id, refresh.as_deref(), dbsc.answer.as_deref(), &client)
        .await;
    answer(sessions, jar, outcome, Some(session_id), Purpose::Refresh)
}
