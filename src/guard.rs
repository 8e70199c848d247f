//! [`AuthUser`]: the request guard that admits a valid, unrevoked access token.

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::browser::{is_unsafe, CookieChange, CsrfBinding, CsrfRefusal, SessionCookies};
use crate::error::Error;
use crate::manager::{ClientInfo, Sessions};
use crate::token::Rejection;

/// The authenticated caller of a request: a request guard.
///
/// ```
/// # use rocket::get;
/// use rocket_sqlite_sessions::AuthUser;
///
/// #[get("/")]
/// fn page(user: AuthUser) -> String {
///     format!("hello {}", user.id)
/// }
/// ```
///
/// It reads `Authorization: Bearer <access token>`, or, without that header, the
/// access cookie of a browser app (refreshing silently from the refresh cookie,
/// and requiring CSRF proof for unsafe methods: see [`Sessions::set_cookies`]).
/// It checks the signature with
/// the one pinned algorithm (HS256), the header (`typ`, `kid`, no extensions),
/// `exp`, `nbf`, `iat`, `iss` and `aud` when configured, that the token is not a
/// refresh token, that its `jti` is not blocklisted and its session not revoked.
/// The revocation checks are answered from memory: the guard never waits on
/// SQLite.
///
/// Every failure answers 401 with `WWW-Authenticate: Bearer
/// error="invalid_token"` and the same JSON body, whatever the cause. Use
/// `Option<AuthUser>` where signing in is optional: a missing or bad token then
/// gives `None`.
///
/// **Typed claims.** `AuthUser<C>` deserialises the app's claims into `C`,
/// once per request; a token whose claims are not a `C` is refused like any
/// bad token. The default, `AuthUser`, keeps them as a JSON object.
///
/// ```
/// # use rocket::get;
/// use rocket_sqlite_sessions::AuthUser;
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Claims {
///     roles: Vec<String>,
/// }
///
/// #[get("/admin")]
/// fn admin(user: AuthUser<Claims>) -> String {
///     format!("{} has roles {:?}", user.id, user.claims.roles)
/// }
/// ```
#[derive(Debug, Clone)]
pub struct AuthUser<C = Map<String, Value>> {
    /// The user id (`sub`), as given to [`Sessions::login`].
    pub id: String,
    /// The session this token belongs to (`sid`).
    pub session_id: String,
    /// The token's unique id (`jti`).
    pub jti: String,
    /// When the token was issued (`iat`), unix seconds.
    pub issued_at: i64,
    /// When the token expires (`exp`), unix seconds.
    pub expires_at: i64,
    /// When the user logged in to this session (`auth_time`), unix seconds: a
    /// refresh keeps it.
    pub authenticated_at: i64,
    /// The app's claims: given at login, or since then by
    /// [`Sessions::update_claims`] or the fairing's
    /// [`claims_source`](crate::SessionsFairing::claims_source) at a refresh.
    pub claims: C,
}

impl AuthUser {
    /// This user with the claims deserialised into `C` (moved, not
    /// deserialised again, when `C` is the JSON object itself).
    pub(crate) fn typed<C: DeserializeOwned + 'static>(self) -> Result<AuthUser<C>, serde_json::Error> {
        let AuthUser {
            id,
            session_id,
            jti,
            issued_at,
            expires_at,
            authenticated_at,
            claims,
        } = self;
        // On the guard's path for every request: the default `C` takes the
        // map as it is, without an allocation or a parse.
        let mut slot = Some(claims);
        let same = (&mut slot as &mut dyn std::any::Any)
            .downcast_mut::<Option<C>>()
            .and_then(Option::take);
        let claims = match (same, slot) {
            (Some(same), _) => same,
            (None, Some(map)) => serde_json::from_value(Value::Object(map))?,
            (None, None) => unreachable!("the slot is emptied only when C is the map"),
        };
        Ok(AuthUser {
            id,
            session_id,
            jti,
            issued_at,
            expires_at,
            authenticated_at,
            claims,
        })
    }

    /// One app claim, deserialised; `None` when absent or of another type.
    ///
    /// ```
    /// # fn roles(user: &rocket_sqlite_sessions::AuthUser) {
    /// let roles: Vec<String> = user.claim("roles").unwrap_or_default();
    /// # }
    /// ```
    pub fn claim<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        self.claims.get(name).and_then(|value| T::deserialize(value).ok())
    }
}

/// What the guard decided for a request.
pub(crate) enum Verdict {
    /// A valid session.
    User(AuthUser),
    /// A token failure: 401.
    Rejected(Rejection),
    /// A cookie-authenticated unsafe request without valid CSRF proof: 403.
    Csrf(CsrfRefusal),
    /// The store failed during a silent refresh: 503.
    Unavailable,
}

/// The verdict, cached for the request so every guard and the fairing's
/// response hook share one decision (and one silent refresh).
struct CachedVerdict(Option<Verdict>);

/// Set when a guard of this crate fails a request itself, with the status it
/// gave: [`AuthUser`] (401, 403, 503) or [`CsrfProtected`](crate::CsrfProtected)
/// (403). The verdict alone may have been asked by another guard, such as
/// [`CsrfToken`](crate::CsrfToken), so it cannot tell.
struct GuardFailed(Option<Status>);

/// Records that a guard of this crate failed `request` with `status`.
pub(crate) fn mark_refused(request: &Request<'_>, status: Status) {
    request.local_cache(|| GuardFailed(Some(status)));
}

/// The request's verdict, decided once.
pub(crate) async fn verdict<'r>(request: &'r Request<'_>, sessions: &Sessions) -> &'r Verdict {
    let cached = match request.headers().get_one("Authorization") {
        // A bearer token is judged from memory, without awaiting anything: no
        // future to build for it.
        Some(_) => request.local_cache(|| CachedVerdict(Some(decide_bearer(request, sessions)))),
        // Boxed: the cookie path's future (a silent refresh) is large, and would
        // otherwise make every guard's future as large.
        None => {
            request
                .local_cache_async(async { CachedVerdict(Some(Box::pin(decide_cookies(request, sessions)).await)) })
                .await
        }
    };
    cached.0.as_ref().expect("a decided verdict")
}

/// Whether [`AuthUser`] refused `request` for its token (401).
pub(crate) fn token_refused(request: &Request<'_>) -> bool {
    request.local_cache(|| GuardFailed(None)).0 == Some(Status::Unauthorized)
}

/// Whether a guard of this crate refused `request` for CSRF (403).
pub(crate) fn csrf_refused(request: &Request<'_>) -> bool {
    request.local_cache(|| GuardFailed(None)).0 == Some(Status::Forbidden)
}

/// The verdict on a request with an `Authorization` header. It is judged alone:
/// an invalid one never falls back to cookies.
fn decide_bearer(request: &Request<'_>, sessions: &Sessions) -> Verdict {
    let mut authorization = request.headers().get("Authorization");
    // Two Authorization headers are one too many.
    let judged = match (authorization.next(), authorization.next()) {
        (Some(value), None) => sessions.authenticate_header(value),
        _ => Err(Rejection::Missing),
    };
    match judged {
        Ok(user) => Verdict::User(user),
        Err(rejection) => Verdict::Rejected(rejection),
    }
}

/// The verdict on a request without an `Authorization` header: its cookies.
/// Cookie changes (a rotation, clearing dead cookies) are left for the
/// fairing's response hook, which writes them whatever answers the request.
async fn decide_cookies(request: &Request<'_>, sessions: &Sessions) -> Verdict {
    let settings = &sessions.inner.settings;
    let jar = request.cookies();
    let access = jar.get(&settings.access_cookie).map(|c| c.value().to_string());
    let refresh = jar.get(&settings.refresh_cookie).map(|c| c.value().to_string());
    if access.is_none() && refresh.is_none() {
        return Verdict::Rejected(Rejection::Missing);
    }
    let change = |change: CookieChange| {
        request.local_cache(|| SessionCookies(Some(change)));
    };
    // For unsafe methods, before anything else and before any rotation: a
    // forged request stops here.
    let csrf = if is_unsafe(request.method()) {
        if let Err(refusal) = sessions.check_origin(request) {
            return Verdict::Csrf(refusal);
        }
        match Sessions::presented_csrf_token(request) {
            Some(presented) => Some(presented),
            None => return Verdict::Csrf(CsrfRefusal::MissingToken),
        }
    } else {
        None
    };
    let by_access = access.as_deref().map(|token| sessions.authenticate(token));
    let user = match (by_access, refresh) {
        (Some(Ok(user)), _) => user,
        (by_access, None) => {
            change(CookieChange::Clear);
            return Verdict::Rejected(by_access.map_or(Rejection::Missing, |r| r.unwrap_err()));
        }
        (_, Some(refresh)) => {
            // The refresh token names its session: a wrong CSRF token is
            // refused before the rotation, which would otherwise be lost.
            if let Some(presented) = csrf {
                match sessions.refresh_token_session(&refresh) {
                    Some(session_id) if sessions.csrf_token_matches(CsrfBinding::Session(&session_id), presented) => {}
                    Some(_) => return Verdict::Csrf(CsrfRefusal::WrongToken),
                    None => {
                        change(CookieChange::Clear);
                        return Verdict::Rejected(Rejection::Refresh);
                    }
                }
            }
            match sessions.refresh(&refresh, &ClientInfo::of(request)).await {
                Ok(pair) => match sessions.authenticate(&pair.access_token) {
                    Ok(user) => {
                        change(CookieChange::Set(pair));
                        user
                    }
                    Err(rejection) => return Verdict::Rejected(rejection),
                },
                Err(Error::Store(cause)) => {
                    crate::error::log_store_failure(format_args!("silent refresh"), &cause);
                    return Verdict::Unavailable;
                }
                Err(_) => {
                    change(CookieChange::Clear);
                    return Verdict::Rejected(Rejection::Refresh);
                }
            }
        }
    };
    if let Some(presented) = csrf {
        if !sessions.csrf_token_matches(CsrfBinding::Session(&user.session_id), presented) {
            return Verdict::Csrf(CsrfRefusal::WrongToken);
        }
    }
    Verdict::User(user)
}

/// Whether `rocket` lacks the fairing: a guard's [`Sentinel`](rocket::Sentinel)
/// then aborts launch, with a log line saying how to fix it.
pub(crate) fn fairing_missing(rocket: &rocket::Rocket<rocket::Ignite>, guard: &str) -> bool {
    let missing = rocket.state::<Sessions>().is_none();
    if missing {
        log::error!(
            "rocket_sqlite_sessions: a route uses the `{guard}` guard, but Sessions::fairing() is not \
             attached; add `.attach(Sessions::fairing())` to the Rocket"
        );
    }
    missing
}

/// The managed [`Sessions`], or the 500 a guard answers (with a log line saying
/// how to fix it) when the fairing is not attached.
pub(crate) fn managed<'r>(request: &'r Request<'_>) -> Result<&'r Sessions, (Status, Error)> {
    request.rocket().state::<Sessions>().ok_or_else(|| {
        log::error!("rocket_sqlite_sessions: a session guard is used but Sessions::fairing() is not attached");
        (
            Status::InternalServerError,
            Error::Internal("Sessions::fairing() is not attached".into()),
        )
    })
}

/// The token of an `Authorization: Bearer <token>` header value (RFC 6750 §2.1).
/// Tokens in the query string or body are never read.
pub(crate) fn bearer_token(value: &str) -> Result<&str, Rejection> {
    let (scheme, token) = value.split_once(' ').ok_or(Rejection::Missing)?;
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return Err(Rejection::Missing);
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() {
        return Err(Rejection::Missing);
    }
    Ok(token)
}

impl<C> rocket::Sentinel for AuthUser<C> {
    fn abort(rocket: &rocket::Rocket<rocket::Ignite>) -> bool {
        fairing_missing(rocket, "AuthUser")
    }
}

impl<C> rocket::Sentinel for FreshAuthUser<C> {
    fn abort(rocket: &rocket::Rocket<rocket::Ignite>) -> bool {
        fairing_missing(rocket, "FreshAuthUser")
    }
}

#[rocket::async_trait]
impl<'r, C: DeserializeOwned + Send + Sync + 'static> FromRequest<'r> for AuthUser<C> {
    type Error = Error;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let sessions = match managed(request) {
            Ok(sessions) => sessions,
            Err(failure) => return Outcome::Error(failure),
        };
        let (method, path) = (request.method(), request.uri().path());
        let (status, error) = match verdict(request, sessions).await {
            Verdict::User(user) => match user.clone().typed::<C>() {
                Ok(user) => return Outcome::Success(user),
                Err(error) => {
                    log::debug!(
                        "rocket_sqlite_sessions: {method} {path}: the token's claims are not a {}: {error}",
                        std::any::type_name::<C>()
                    );
                    (Status::Unauthorized, Error::InvalidToken)
                }
            },
            Verdict::Rejected(rejection) => {
                log::debug!("rocket_sqlite_sessions: {method} {path}: access token refused: {rejection}");
                (Status::Unauthorized, Error::InvalidToken)
            }
            Verdict::Csrf(refusal) => {
                log::debug!("rocket_sqlite_sessions: {method} {path}: CSRF check failed: {refusal}");
                (Status::Forbidden, Error::CsrfRefused)
            }
            Verdict::Unavailable => (
                Status::ServiceUnavailable,
                Error::Internal("the session store failed during a silent refresh".into()),
            ),
        };
        mark_refused(request, status);
        Outcome::Error((status, error))
    }
}

/// An [`AuthUser`] whose login is recent: no more than `fresh_age` seconds ago
/// (default 300). For sensitive actions such as changing a password, where a
/// stolen but valid session should not be enough (OWASP ASVS V7).
///
/// A refresh keeps the time of the login, so an old session stays stale however
/// often it is refreshed. A stale login answers 401 with
/// `WWW-Authenticate: Bearer error="insufficient_user_authentication", max_age=…`
/// (RFC 9470): the client should make the user sign in again. Any token failure
/// answers as for [`AuthUser`].
///
/// ```
/// # use rocket::post;
/// use rocket_sqlite_sessions::FreshAuthUser;
///
/// #[post("/account/delete")]
/// fn delete_account(user: FreshAuthUser) -> String {
///     format!("deleting {}", user.id)
/// }
/// ```
#[derive(Debug, Clone)]
pub struct FreshAuthUser<C = Map<String, Value>>(pub AuthUser<C>);

impl<C> std::ops::Deref for FreshAuthUser<C> {
    type Target = AuthUser<C>;

    fn deref(&self) -> &AuthUser<C> {
        &self.0
    }
}

/// Set when [`FreshAuthUser`] refused a valid token for its age: the `max_age`.
pub(crate) struct StaleLogin(pub(crate) Option<i64>);

impl StaleLogin {
    pub(crate) fn of(request: &Request<'_>) -> Option<i64> {
        request.local_cache(|| StaleLogin(None)).0
    }
}

#[rocket::async_trait]
impl<'r, C: DeserializeOwned + Send + Sync + 'static> FromRequest<'r> for FreshAuthUser<C> {
    type Error = Error;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let user = match AuthUser::<C>::from_request(request).await {
            Outcome::Success(user) => user,
            Outcome::Error(error) => return Outcome::Error(error),
            Outcome::Forward(status) => return Outcome::Forward(status),
        };
        let Some(sessions) = request.rocket().state::<Sessions>() else {
            unreachable!("AuthUser succeeded, so Sessions is managed");
        };
        match sessions.check_fresh(&user) {
            Ok(()) => Outcome::Success(FreshAuthUser(user)),
            Err(max_age) => {
                request.local_cache(|| StaleLogin(Some(max_age)));
                Outcome::Error((Status::Unauthorized, Error::LoginTooOld { max_age }))
            }
        }
    }
}
