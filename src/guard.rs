//! [`AuthUser`]: the request guard that admits a valid, unrevoked access token.

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::manager::Sessions;
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
/// It reads `Authorization: Bearer <access token>` and checks the signature with
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
#[derive(Debug, Clone)]
pub struct AuthUser {
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
    /// The app's claims given at login.
    pub claims: Map<String, Value>,
}

impl AuthUser {
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

/// The guard's verdict, cached for the request so a second guard (or the fairing's
/// response hook) does not check again.
pub(crate) struct Authentication(pub(crate) Option<Result<AuthUser, Rejection>>);

impl Authentication {
    /// Whether this request was refused by the guard.
    pub(crate) fn rejected(request: &Request<'_>) -> bool {
        matches!(request.local_cache(|| Authentication(None)).0, Some(Err(_)))
    }
}

/// The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1). Tokens
/// in the query string or body are never read.
fn bearer_token<'r>(request: &'r Request<'_>) -> Result<&'r str, Rejection> {
    let mut values = request.headers().get("Authorization");
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(Rejection::Missing);
    };
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

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AuthUser {
    type Error = Error;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let Some(sessions) = request.rocket().state::<Sessions>() else {
            log::error!("rocket_sqlite_sessions: AuthUser used but Sessions::fairing() is not attached");
            return Outcome::Error((
                Status::InternalServerError,
                Error::Internal("Sessions::fairing() is not attached".into()),
            ));
        };
        let verdict = request.local_cache(|| {
            Authentication(Some(
                bearer_token(request).and_then(|token| sessions.authenticate(token)),
            ))
        });
        match &verdict.0 {
            Some(Ok(user)) => Outcome::Success(user.clone()),
            Some(Err(rejection)) => {
                log::debug!(
                    "rocket_sqlite_sessions: {} {}: access token refused: {rejection}",
                    request.method(),
                    request.uri().path()
                );
                Outcome::Error((Status::Unauthorized, Error::InvalidToken))
            }
            None => unreachable!("the verdict was just cached"),
        }
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
pub struct FreshAuthUser(pub AuthUser);

impl std::ops::Deref for FreshAuthUser {
    type Target = AuthUser;

    fn deref(&self) -> &AuthUser {
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
impl<'r> FromRequest<'r> for FreshAuthUser {
    type Error = Error;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let user = match AuthUser::from_request(request).await {
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
