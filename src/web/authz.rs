//! Authorization: [`Authorized`], a guard that admits a user whose claims a
//! [`Policy`] allows, and answers 403 otherwise.

use std::marker::PhantomData;

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome, Request};
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::user::AuthUser;
use crate::web::request::{fairing_missing, record};

/// Who may pass an [`Authorized`] guard: a predicate over the user's claims.
///
/// ```
/// use rocket::get;
/// use rocket_sqlite_sessions::{AuthUser, Authorized, Policy};
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Claims {
///     roles: Vec<String>,
/// }
///
/// struct Admin;
///
/// impl Policy for Admin {
///     type Claims = Claims;
///
///     fn allows(user: &AuthUser<Claims>) -> bool {
///         user.claims.roles.iter().any(|role| role == "admin")
///     }
/// }
///
/// #[get("/admin")]
/// fn admin(user: Authorized<Admin>) -> String {
///     format!("welcome, {}", user.id)
/// }
/// ```
pub trait Policy: Send + Sync + 'static {
    /// The claims the policy reads (see [`AuthUser`]'s typed claims).
    type Claims: DeserializeOwned + Send + Sync + 'static;

    /// Whether `user` may pass.
    fn allows(user: &AuthUser<Self::Claims>) -> bool;
}

/// A request guard: an [`AuthUser`] whose claims `P` allows.
///
/// A request without a valid token is refused as by [`AuthUser`] (401); a
/// valid one that `P` does not allow answers 403 with
/// `{"error": "forbidden", "message": …}` ([`Error::Forbidden`]). It derefs to
/// the [`AuthUser`].
pub struct Authorized<P: Policy> {
    user: AuthUser<P::Claims>,
    policy: PhantomData<fn() -> P>,
}

impl<P: Policy> Authorized<P> {
    /// The user, without the proof of the policy.
    pub fn into_inner(self) -> AuthUser<P::Claims> {
        self.user
    }
}

impl<P: Policy> std::ops::Deref for Authorized<P> {
    type Target = AuthUser<P::Claims>;

    fn deref(&self) -> &AuthUser<P::Claims> {
        &self.user
    }
}

impl<P: Policy> std::fmt::Debug for Authorized<P>
where
    P::Claims: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Authorized").field(&self.user).finish()
    }
}

impl<P: Policy> rocket::Sentinel for Authorized<P> {
    fn abort(rocket: &rocket::Rocket<rocket::Ignite>) -> bool {
        fairing_missing(rocket, "Authorized")
    }
}

#[rocket::async_trait]
impl<'r, P: Policy> FromRequest<'r> for Authorized<P> {
    type Error = Error;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let user = match AuthUser::<P::Claims>::from_request(request).await {
            Outcome::Success(user) => user,
            Outcome::Error(error) => return Outcome::Error(error),
            Outcome::Forward(status) => return Outcome::Forward(status),
        };
        if P::allows(&user) {
            Outcome::Success(Authorized {
                user,
                policy: PhantomData,
            })
        } else {
            log::debug!(
                "rocket_sqlite_sessions: {} {}: user {} refused by the policy {}",
                request.method(),
                request.uri().path(),
                user.id,
                std::any::type_name::<P>()
            );
            // The response hook gives the 403 the crate's body, whatever catcher
            // the app has.
            record(request).mark_policy_refused();
            Outcome::Error((Status::Forbidden, Error::Forbidden))
        }
    }
}
