//! The demo's JSON API: register, login, password change, `/me`, the admin's
//! role changes, `/health`, and JSON for every error.

use rocket::http::Status;
use rocket::serde::json::{self, Json};
use rocket::{get, post, put, State};
use rocket_sqlite_sessions::{AuthUser, Authorized, ClientInfo, FreshAuthUser, Sessions, TokenPair};
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::{api_error, sessions_unavailable, unavailable, ApiError};
use super::users::{
    ban, blocking, canonical_username, create_user, find_user, list_users, new_password_hash, password_matches,
    set_role, user_claims, username_of, verify_credentials, Admin, Claims, PasswordHashing, Users, MAX_PASSWORD_BYTES,
    MIN_PASSWORD_CHARS, REGISTRATION_SCOPE, ROLES,
};

#[derive(Deserialize)]
pub(crate) struct Credentials {
    username: String,
    password: String,
}

/// Maps a body that is not `{"username","password"}` to 422 (400 when it is
/// not UTF-8, 413 when too large).
pub(crate) fn credentials(body: Result<Json<Credentials>, json::Error<'_>>) -> Result<Credentials, ApiError> {
    match body {
        Ok(Json(credentials)) => Ok(credentials),
        Err(json::Error::Io(error)) if error.kind() == std::io::ErrorKind::InvalidData => Err(api_error(
            Status::BadRequest,
            "invalid_request",
            "The body must be JSON, in UTF-8: {\"username\": \"…\", \"password\": \"…\"}.",
        )),
        Err(json::Error::Io(_)) => Err(api_error(
            Status::PayloadTooLarge,
            "payload_too_large",
            "The request body is too large.",
        )),
        Err(json::Error::Parse(..)) => Err(api_error(
            Status::UnprocessableEntity,
            "invalid_request",
            "The body must be JSON: {\"username\": \"…\", \"password\": \"…\"}.",
        )),
    }
}

#[post("/register", data = "<body>")]
pub(crate) async fn register(
    users: &State<Users>,
    hashing: &State<PasswordHashing>,
    sessions: &State<Sessions>,
    client: ClientInfo,
    body: Result<Json<Credentials>, json::Error<'_>>,
) -> Result<(Status, Json<Value>), LoginError> {
    let Credentials { username, password } = credentials(body)?;
    let username = canonical_username(&username)?;
    // Throttled per network, before any lookup or hashing (429).
    let check = sessions
        .credential_check(REGISTRATION_SCOPE, &client)
        .await
        .map_err(login_error)?;
    let created = create_user(users, hashing, username, password).await;
    let _ = check.failed().await;
    let (user_id, _) = created?;
    Ok((Status::Created, Json(json!({ "user_id": user_id }))))
}

pub(crate) fn invalid_credentials() -> ApiError {
    api_error(
        Status::Unauthorized,
        "invalid_credentials",
        "Invalid username or password.",
    )
}

/// The crate's errors, but throttling, as the demo's JSON answers.
pub(crate) fn session_error(error: rocket_sqlite_sessions::Error) -> ApiError {
    use rocket_sqlite_sessions::Error;
    match error {
        Error::Store(_) => sessions_unavailable(),
        other => {
            log::error!("demo: {other}");
            api_error(
                Status::InternalServerError,
                "internal_error",
                "An internal error occurred.",
            )
        }
    }
}

/// A login-like failure: the crate's own answer (429 with `Retry-After`, 409
/// when the user changed while signing in, 409 `too_many_sessions` past
/// `max_sessions` with `at_max_sessions = "refuse"`), or one of the demo's.
#[derive(rocket::Responder)]
pub(crate) enum LoginError {
    Crate(rocket_sqlite_sessions::Error),
    Other(ApiError),
}

impl From<ApiError> for LoginError {
    fn from(error: ApiError) -> Self {
        LoginError::Other(error)
    }
}

pub(crate) fn login_error(error: rocket_sqlite_sessions::Error) -> LoginError {
    match error {
        answered @ (rocket_sqlite_sessions::Error::Throttled { .. }
        | rocket_sqlite_sessions::Error::LoginSuperseded
        | rocket_sqlite_sessions::Error::TooManySessions
        | rocket_sqlite_sessions::Error::InvalidDpopProof
        | rocket_sqlite_sessions::Error::UseDpopNonce) => LoginError::Crate(answered),
        other => LoginError::Other(session_error(other)),
    }
}

/// The body of `POST /auth/login`: JSON `{"username", "password"}`, or the
/// password grant of RFC 6749 §4.3 (`grant_type=password&username=…&password=…`),
/// a form, as stock OAuth clients send it (with a DPoP proof, the session is
/// bound to the client's key like any other login).
pub(crate) struct LoginBody(Result<Credentials, ApiError>);

/// RFC 6749 §4.3.2; other fields (`client_id`, `scope`) are ignored.
#[derive(rocket::FromForm)]
struct PasswordGrant {
    grant_type: String,
    username: String,
    password: String,
}

#[rocket::async_trait]
impl<'r> rocket::data::FromData<'r> for LoginBody {
    type Error = std::convert::Infallible;

    async fn from_data(request: &'r rocket::Request<'_>, data: rocket::Data<'r>) -> rocket::data::Outcome<'r, Self> {
        use rocket::data::{Outcome, ToByteUnit};
        // The limit of JSON bodies (Rocket's `limits.json`, 1 MiB by default).
        let limit = request.limits().get("json").unwrap_or(1.mebibytes());
        let body = match data.open(limit).into_string().await {
            Ok(body) if body.is_complete() => body.into_inner(),
            Ok(_) => return Outcome::Success(LoginBody(credentials(Err(too_large())))),
            Err(error) => return Outcome::Success(LoginBody(credentials(Err(json::Error::Io(error))))),
        };
        let form = request
            .content_type()
            .is_some_and(|content_type| content_type.is_form());
        if form {
            if let Ok(grant) = rocket::form::Form::<PasswordGrant>::parse_encoded(rocket::http::RawStr::new(&body)) {
                let credentials = if grant.grant_type == "password" {
                    Ok(Credentials {
                        username: grant.username,
                        password: grant.password,
                    })
                } else {
                    Err(api_error(
                        Status::BadRequest,
                        "unsupported_grant_type",
                        "Sign in with grant_type=password.",
                    ))
                };
                return Outcome::Success(LoginBody(credentials));
            }
        }
        // JSON, whatever the content type says (`curl -d` sends a form's).
        let parsed = json::from_str::<Credentials>(&body).map_err(|error| json::Error::Parse(&body, error));
        Outcome::Success(LoginBody(credentials(parsed.map(Json))))
    }
}

fn too_large() -> json::Error<'static> {
    json::Error::Io(std::io::Error::other("the body is larger than the limit"))
}

#[post("/login", data = "<body>")]
pub(crate) async fn login(
    users: &State<Users>,
    hashing: &State<PasswordHashing>,
    sessions: &State<Sessions>,
    client: ClientInfo,
    body: LoginBody,
) -> Result<TokenPair, LoginError> {
    let Credentials { username, password } = body.0?;
    // A name no user can have is refused before anything else: it is never
    // counted, hashed for or logged.
    let username = canonical_username(&username)?;
    // Throttled attempts are refused before any password hashing.
    let check = sessions
        .credential_check(&username, &client)
        .await
        .map_err(login_error)?;
    let user = verify_credentials(users, hashing, username.clone(), password).await?;
    match user {
        // The password was right, but an admin banned the account.
        Some(user) if user.banned => {
            check.passed().await.map_err(login_error)?;
            Err(account_disabled().into())
        }
        // Refused (409) if a password or role change came while verifying.
        Some(user) => check
            .login(user.id, user_claims(&username, &user.role), &client)
            .await
            .map_err(login_error),
        None => {
            check.failed().await.map_err(login_error)?;
            Err(invalid_credentials().into())
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Changes the password of a user who logged in recently, and ends every other
/// session of theirs (the current one stays).
#[post("/password", data = "<body>")]
pub(crate) async fn change_password(
    users: &State<Users>,
    hashing: &State<PasswordHashing>,
    sessions: &State<Sessions>,
    client: ClientInfo,
    user: FreshAuthUser,
    body: Result<Json<PasswordChange>, json::Error<'_>>,
) -> Result<Status, LoginError> {
    let PasswordChange {
        current_password,
        new_password,
    } = match body {
        Ok(Json(change)) => change,
        Err(_) => {
            return Err(api_error(
                Status::UnprocessableEntity,
                "invalid_request",
                "The body must be JSON: {\"current_password\": \"…\", \"new_password\": \"…\"}.",
            )
            .into())
        }
    };
    set_password(users, hashing, sessions, &client, &user, current_password, new_password).await?;
    Ok(Status::NoContent)
}

/// Sets `user`'s password to `new_password` if `current_password` is theirs,
/// and ends every other session of theirs (this one stays): the JSON API's
/// and the account page's password change.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn set_password(
    users: &Users,
    hashing: &PasswordHashing,
    sessions: &Sessions,
    client: &ClientInfo,
    user: &AuthUser,
    current_password: String,
    new_password: String,
) -> Result<(), LoginError> {
    if new_password.chars().count() < MIN_PASSWORD_CHARS || new_password.len() > MAX_PASSWORD_BYTES {
        return Err(api_error(
            Status::UnprocessableEntity,
            "invalid_password",
            "The new password must be at least 8 characters (and at most 1024 bytes).",
        )
        .into());
    }
    let id: i64 = user.id_as().map_err(|_| invalid_credentials())?;
    let username = username_of(user).ok_or_else(invalid_credentials)?;
    // Wrong current passwords count against the username like failed logins.
    let check = sessions
        .credential_check(&username, client)
        .await
        .map_err(login_error)?;
    let pool = users.pool.clone();
    let found = blocking(move || {
        let connection = pool.get().map_err(unavailable)?;
        find_user(&connection, &username)
    })
    .await?;
    let new_hash = match found {
        Some((_, stored, _)) => {
            hashing
                .run(move |area| {
                    password_matches(&current_password, &stored, area).then(|| new_password_hash(&new_password, area))
                })
                .await?
        }
        None => None,
    };
    let changed = match new_hash {
        Some(hash) => {
            let hash = hash.map_err(unavailable)?;
            let pool = users.pool.clone();
            blocking(move || {
                pool.get()
                    .map_err(unavailable)?
                    .execute(
                        "UPDATE demo_users SET password_hash = ?1 WHERE id = ?2",
                        rusqlite::params![hash, id],
                    )
                    .map_err(unavailable)?;
                Ok(true)
            })
            .await?
        }
        None => false,
    };
    if !changed {
        check.failed().await.map_err(login_error)?;
        return Err(api_error(
            Status::Forbidden,
            "invalid_credentials",
            "The current password is wrong.",
        )
        .into());
    }
    check.passed().await.map_err(login_error)?;
    sessions.logout_others(user).await.map_err(login_error)?;
    Ok(())
}

/// The caller, from the token alone: no database read, so this is the guard's
/// cost beside `/health` in the load test (`scripts/load.sh`).
#[get("/me")]
pub(crate) fn me(user: AuthUser<Claims>) -> Result<Json<Value>, ApiError> {
    let not_found = || {
        api_error(
            Status::Unauthorized,
            "invalid_token",
            rocket_sqlite_sessions::INVALID_TOKEN_MESSAGE,
        )
    };
    let user_id: i64 = user.id_as().map_err(|_| not_found())?;
    Ok(Json(json!({
        "user_id": user_id,
        "username": user.claims.username,
        "roles": user.claims.roles,
        "session_id": user.session_id,
        "sender_constrained": user.is_sender_constrained(),
        "device_bound": user.is_device_bound(),
    })))
}

/// `GET /admin/users`, for admins: every user and their role.
#[get("/admin/users")]
pub(crate) async fn admin_users(_admin: Authorized<Admin>, users: &State<Users>) -> Result<Json<Value>, ApiError> {
    let listed = list_users(users).await?;
    Ok(Json(Value::Array(
        listed
            .into_iter()
            .map(|(username, role)| json!({ "username": username, "role": role }))
            .collect(),
    )))
}

#[derive(Deserialize)]
pub(crate) struct RoleChange {
    role: String,
}

/// `PUT /admin/users/<username>/role` `{"role": "admin" | "member"}`, for
/// admins: 204. The user's sessions carry the new role from their next refresh
/// on (at most `access_ttl` later).
#[put("/admin/users/<username>/role", data = "<body>")]
pub(crate) async fn change_role(
    admin: Authorized<Admin>,
    users: &State<Users>,
    sessions: &State<Sessions>,
    username: &str,
    body: Result<Json<RoleChange>, json::Error<'_>>,
) -> Result<Status, ApiError> {
    let role = body
        .ok()
        .and_then(|body| ROLES.into_iter().find(|role| *role == body.role))
        .ok_or_else(|| {
            api_error(
                Status::UnprocessableEntity,
                "invalid_role",
                "The body must be {\"role\": \"admin\"} or {\"role\": \"member\"}.",
            )
        })?;
    let no_such_user = || api_error(Status::NotFound, "not_found", "No such user.");
    let username = &canonical_username(username).map_err(|_| no_such_user())?;
    let Some(user_id) = set_role(users, username.to_string(), role).await? else {
        return Err(api_error(Status::NotFound, "not_found", "No such user."));
    };
    sessions
        .update_claims(user_id, user_claims(username, role))
        .await
        .map_err(session_error)?;
    log::info!("demo: {} made {username} {role}", admin.claims.username);
    Ok(Status::NoContent)
}

/// `POST /admin/users/<username>/ban`, for admins: 204. The user's sessions
/// end at once (their access tokens are refused, their refreshes too: the
/// claims source says banned), and they cannot sign in again (403
/// `account_disabled`). The last admin cannot be banned (409 `last_admin`).
#[post("/admin/users/<username>/ban")]
pub(crate) async fn ban_user(
    admin: Authorized<Admin>,
    users: &State<Users>,
    sessions: &State<Sessions>,
    username: &str,
) -> Result<Status, ApiError> {
    let username =
        &canonical_username(username).map_err(|_| api_error(Status::NotFound, "not_found", "No such user."))?;
    let Some(user_id) = ban(users, username.to_string()).await? else {
        return Err(api_error(Status::NotFound, "not_found", "No such user."));
    };
    // Also a cut-off: a login of theirs in flight is refused.
    sessions.logout_all(user_id).await.map_err(session_error)?;
    log::warn!("demo: {} banned {username}", admin.claims.username);
    Ok(Status::NoContent)
}

/// `POST /admin/logout-everyone`, for admins: 204. Every session of every
/// user ends (incident response); everyone signs in again.
#[post("/admin/logout-everyone")]
pub(crate) async fn logout_everyone(admin: Authorized<Admin>, sessions: &State<Sessions>) -> Result<Status, ApiError> {
    let ended = sessions.logout_everyone().await.map_err(session_error)?;
    log::warn!("demo: {} ended every session ({ended})", admin.claims.username);
    Ok(Status::NoContent)
}

/// A banned account's answer to the right password.
pub(crate) fn account_disabled() -> ApiError {
    api_error(Status::Forbidden, "account_disabled", "This account is disabled.")
}

#[get("/health")]
pub(crate) fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// An error the demo does not answer itself, as JSON.
pub(crate) fn json_error(status: Status) -> ApiError {
    let code = status.reason_lossy().to_ascii_lowercase().replace([' ', '-'], "_");
    api_error(status, &code, status.reason_lossy())
}
