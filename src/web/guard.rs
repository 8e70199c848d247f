//! The session guards: [`AuthUser`] (the struct is the ground's, its
//! `FromRequest` is here) and [`FreshAuthUser`].

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::user::AuthUser;
use crate::web::request::{fairing_missing, fairing_not_attached, record, Verdict};
use crate::web::verdict::verdict_in;

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
        let record = record(request);
        let Some(sessions) = record.sessions() else {
            return Outcome::Error(fairing_not_attached());
        };
        let (method, path) = (request.method(), request.uri().path());
        let (status, error) = match verdict_in(record, request, sessions).await {
            Verdict::User(user) => match AuthUser::clone(user).typed::<C>() {
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
        record.mark_refused(status);
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

#[rocket::async_trait]
impl<'r, C: DeserializeOwned + Send + Sync + 'static> FromRequest<'r> for FreshAuthUser<C> {
    type Error = Error;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let user = match AuthUser::<C>::from_request(request).await {
            Outcome::Success(user) => user,
            Outcome::Error(error) => return Outcome::Error(error),
            Outcome::Forward(status) => return Outcome::Forward(status),
        };
        let Some(sessions) = record(request).sessions() else {
            unreachable!("AuthUser succeeded, so Sessions is managed");
        };
        match sessions.check_fresh(&user) {
            Ok(()) => Outcome::Success(FreshAuthUser(user)),
            Err(max_age) => {
                record(request).mark_stale_login(max_age);
                Outcome::Error((Status::Unauthorized, Error::LoginTooOld { max_age }))
            }
        }
    }
}
