//! The demo app: a small API on rocket_sqlite_sessions.
//!
//! ```text
//! cargo run --example demo
//! ```
//!
//! Users live in the demo's own table (`demo_users`) in the same SQLite file as
//! the sessions, passwords hashed with Argon2id. Registration, login (throttled
//! by the crate's `credential_check`), password change (a `FreshAuthUser`
//! route), `/me` and `/health` are the demo's; `/auth/refresh`, `/auth/logout`,
//! `/auth/logout-all` and `/auth/sessions` come from
//! `rocket_sqlite_sessions::routes()`.
//!
//! For browsers, plain HTML pages keep the tokens in cookies: `GET /register`,
//! `POST /register`, `GET /login`, `POST /login`, `GET /` (with a visit
//! counter in session data), `GET /account/sessions` with a revoke form per
//! device, and `POST /logout`. Every form carries the CSRF token as its first
//! field.
//!
//! Password hashing (Argon2id, 19 MiB each) runs at most once per core at a
//! time, in work areas allocated once and reused: a burst of logins queues
//! instead of multiplying the memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use argon2::password_hash::{rand_core::OsRng, Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use r2d2_sqlite::SqliteConnectionManager;
use rocket::fairing::AdHoc;
use rocket::form::{Form, FromForm};
use rocket::http::{CookieJar, Status};
use rocket::response::content::RawHtml;
use rocket::response::Redirect;
use rocket::serde::json::{self, Json};
use rocket::{catch, catchers, get, post, routes, Build, Orbit, Request, Rocket, State};
use rocket_sqlite_sessions::{
    AuthUser, ClientInfo, CsrfProtected, CsrfToken, FreshAuthUser, SessionEvent, Sessions, SessionsConfig, TokenPair,
};
use serde::Deserialize;
use serde_json::{json, Value};

type Pool = r2d2::Pool<SqliteConnectionManager>;

/// The demo's users table, in the sessions database file.
struct Users {
    pool: Pool,
}

const MIN_PASSWORD_CHARS: usize = 8;
const MAX_PASSWORD_BYTES: usize = 1024;
const MAX_USERNAME_CHARS: usize = 128;

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

/// A JSON error answer: `{"error": code, "message": message}`.
type ApiError = (Status, Json<Value>);

fn api_error(status: Status, code: &str, message: &str) -> ApiError {
    (status, Json(json!({ "error": code, "message": message })))
}

/// Maps a body that is not `{"username","password"}` to 422 (413 when too large).
fn credentials(body: Result<Json<Credentials>, json::Error<'_>>) -> Result<Credentials, ApiError> {
    match body {
        Ok(Json(credentials)) => Ok(credentials),
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

fn internal_error() -> ApiError {
    api_error(
        Status::InternalServerError,
        "internal_error",
        "An internal error occurred.",
    )
}

/// The most password hashes `rocket` (the demo) has computed at once.
pub fn peak_concurrent_hashes(rocket: &Rocket<Orbit>) -> usize {
    rocket
        .state::<PasswordHashing>()
        .map_or(0, |hashing| hashing.peak.load(Ordering::SeqCst))
}

/// Argon2 on at most one core each: a permit per core, and per permit a work
/// area allocated once and reused. (On Tokio's blocking pool without a cap,
/// 32 concurrent logins each allocated 19 MiB on their own thread, and glibc
/// kept the memory: 7 GB.)
struct PasswordHashing {
    permits: rocket::tokio::sync::Semaphore,
    work_areas: Mutex<Vec<Vec<Block>>>,
    /// Hashes being computed now, and the most ever at once.
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl PasswordHashing {
    fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        PasswordHashing {
            permits: rocket::tokio::sync::Semaphore::new(cores),
            work_areas: Mutex::new(Vec::new()),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Runs `work` with a work area, once a core is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self.permits.acquire().await.map_err(|_| internal_error())?;
        let mut area = self
            .work_areas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(running, Ordering::SeqCst);
        let done = rocket::tokio::task::spawn_blocking(move || {
            let result = work(&mut area);
            (area, result)
        })
        .await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        let (area, result) = done.map_err(|_| internal_error())?;
        self.work_areas.lock().unwrap_or_else(|e| e.into_inner()).push(area);
        Ok(result)
    }
}

/// Argon2 of `password` and `salt` into an output of `len` bytes, in `area`
/// (grown to the parameters' size the first time).
fn argon2_into(
    argon: &Argon2<'_>,
    password: &str,
    salt: &[u8],
    len: usize,
    area: &mut Vec<Block>,
) -> argon2::password_hash::Result<Output> {
    let blocks = argon.params().block_count();
    if area.len() < blocks {
        area.resize(blocks, Block::default());
    }
    Output::init_with(len, |out| {
        argon
            .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut area[..])
            .map_err(Into::into)
    })
}

/// A new Argon2id hash of `password`, as a PHC string.
fn new_password_hash(password: &str, area: &mut Vec<Block>) -> argon2::password_hash::Result<String> {
    let params = Params::default();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_bytes)?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let output = argon2_into(&argon, password, salt_bytes, Params::DEFAULT_OUTPUT_LEN, area)?;
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    }
    .to_string())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    rocket::tokio::task::spawn_blocking(work).await.unwrap_or_else(|_| {
        Err(api_error(
            Status::InternalServerError,
            "internal_error",
            "An internal error occurred.",
        ))
    })
}

fn unavailable(error: impl std::fmt::Display) -> ApiError {
    log::error!("demo: users table: {error}");
    api_error(
        Status::ServiceUnavailable,
        "unavailable",
        "The database is temporarily unavailable; try again shortly.",
    )
}

#[post("/register", data = "<body>")]
async fn register(
    users: &State<Users>,
    hashing: &State<PasswordHashing>,
    body: Result<Json<Credentials>, json::Error<'_>>,
) -> Result<(Status, Json<Value>), ApiError> {
    let Credentials { username, password } = credentials(body)?;
    let user_id = create_user(users, hashing, username, password).await?;
    Ok((Status::Created, Json(json!({ "user_id": user_id }))))
}

/// Checks a new user's name and password and stores them; the user's id.
async fn create_user(
    users: &Users,
    hashing: &PasswordHashing,
    username: String,
    password: String,
) -> Result<i64, ApiError> {
    let username_chars = username.chars().count();
    if username.trim().is_empty() || username_chars > MAX_USERNAME_CHARS || username.chars().any(char::is_control) {
        return Err(api_error(
            Status::UnprocessableEntity,
            "invalid_username",
            "The username must be 1 to 128 characters, not all spaces, with no control characters.",
        ));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(api_error(
            Status::UnprocessableEntity,
            "invalid_password",
            "The password must be at least 8 characters (and at most 1024 bytes).",
        ));
    }
    let hash = hashing
        .run(move |area| new_password_hash(&password, area))
        .await?
        .map_err(unavailable)?;
    let pool = users.pool.clone();
    let user_id = blocking(move || {
        let connection = pool.get().map_err(unavailable)?;
        let inserted = connection.execute(
            "INSERT INTO demo_users (username, password_hash, created_at) VALUES (?1, ?2, unixepoch())
             ON CONFLICT (username) DO NOTHING",
            rusqlite::params![username, hash],
        );
        match inserted {
            Ok(0) => Err(api_error(Status::Conflict, "username_taken", "That username is taken.")),
            Ok(_) => Ok(connection.last_insert_rowid()),
            Err(e) => Err(unavailable(e)),
        }
    })
    .await?;
    Ok(user_id)
}

/// A hash to verify against when the username is unknown, so both failures take
/// the same time.
fn decoy_hash(area: &mut Vec<Block>) -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| new_password_hash("decoy password", area).expect("hashing a constant succeeds"))
}

/// The id and password hash of `username`, if there is such a user.
fn find_user(connection: &rusqlite::Connection, username: &str) -> Result<Option<(i64, String)>, ApiError> {
    connection
        .query_row(
            "SELECT id, password_hash FROM demo_users WHERE username = ?1",
            [username],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(unavailable(e)),
        })
}

/// Whether `password` matches `stored`, an Argon2 PHC string, computed in
/// `area` (compared in constant time).
fn password_matches(password: &str, stored: &str, area: &mut Vec<Block>) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(hash.algorithm), Params::try_from(&hash)) else {
        return false;
    };
    let Ok(version) = hash.version.map_or(Ok(Version::V0x13), Version::try_from) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params);
    argon2_into(&argon, password, salt, expected.len(), area).is_ok_and(|computed| computed == expected)
}

/// The user id when `password` is `username`'s; `None` otherwise. Unknown users
/// cost the same password hash as known ones.
async fn verify_credentials(
    users: &Users,
    hashing: &PasswordHashing,
    username: String,
    password: String,
) -> Result<Option<i64>, ApiError> {
    let pool = users.pool.clone();
    let found = blocking(move || {
        let connection = pool.get().map_err(unavailable)?;
        find_user(&connection, &username)
    })
    .await?;
    hashing
        .run(move |area| {
            let matches = match &found {
                Some((_, stored)) => password_matches(&password, stored, area),
                // Unknown user: the same work, a certain no.
                None => {
                    std::hint::black_box(password_matches(&password, decoy_hash(area), area));
                    false
                }
            };
            found.filter(|_| matches).map(|(id, _)| id)
        })
        .await
}

fn invalid_credentials() -> ApiError {
    api_error(
        Status::Unauthorized,
        "invalid_credentials",
        "Invalid username or password.",
    )
}

/// The crate's errors, but throttling, as the demo's JSON answers.
fn session_error(error: rocket_sqlite_sessions::Error) -> ApiError {
    use rocket_sqlite_sessions::Error;
    match error {
        Error::Store(cause) => unavailable(cause),
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

/// A login-like failure: the crate's own 429 answer (with `Retry-After`), or one
/// of the demo's.
#[derive(rocket::Responder)]
enum LoginError {
    Throttled(rocket_sqlite_sessions::Error),
    Other(ApiError),
}

impl From<ApiError> for LoginError {
    fn from(error: ApiError) -> Self {
        LoginError::Other(error)
    }
}

fn login_error(error: rocket_sqlite_sessions::Error) -> LoginError {
    match error {
        throttled @ rocket_sqlite_sessions::Error::Throttled { .. } => LoginError::Throttled(throttled),
        other => LoginError::Other(session_error(other)),
    }
}

#[post("/login", data = "<body>")]
async fn login(
    users: &State<Users>,
    hashing: &State<PasswordHashing>,
    sessions: &State<Sessions>,
    client: ClientInfo,
    body: Result<Json<Credentials>, json::Error<'_>>,
) -> Result<TokenPair, LoginError> {
    let Credentials { username, password } = credentials(body)?;
    // Throttled attempts are refused before any password hashing.
    let check = sessions
        .credential_check(&username, &client)
        .await
        .map_err(login_error)?;
    let user_id = verify_credentials(users, hashing, username.clone(), password).await?;
    match user_id {
        Some(user_id) => {
            check.passed().await.map_err(login_error)?;
            sessions
                .login(&user_id.to_string(), username_claim(username), &client)
                .await
                .map_err(login_error)
        }
        None => {
            check.failed().await.map_err(login_error)?;
            Err(invalid_credentials().into())
        }
    }
}

#[derive(Deserialize)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Changes the password of a user who logged in recently, and ends every other
/// session of theirs (the current one stays).
#[post("/password", data = "<body>")]
async fn change_password(
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
    if new_password.chars().count() < MIN_PASSWORD_CHARS || new_password.len() > MAX_PASSWORD_BYTES {
        return Err(api_error(
            Status::UnprocessableEntity,
            "invalid_password",
            "The new password must be at least 8 characters (and at most 1024 bytes).",
        )
        .into());
    }
    let id: i64 = user.id.parse().map_err(|_| invalid_credentials())?;
    let username = username_of(&user).ok_or_else(invalid_credentials)?;
    // Wrong current passwords count against the username like failed logins.
    let check = sessions
        .credential_check(&username, &client)
        .await
        .map_err(login_error)?;
    let pool = users.pool.clone();
    let found = blocking(move || {
        let connection = pool.get().map_err(unavailable)?;
        find_user(&connection, &username)
    })
    .await?;
    let new_hash = match found {
        Some((_, stored)) => {
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
    sessions.logout_others(&user).await.map_err(login_error)?;
    Ok(Status::NoContent)
}

/// The caller, from the token alone: no database read, so this is the guard's
/// cost beside `/health` in the load test (`scripts/load.sh`).
#[get("/me")]
fn me(user: AuthUser) -> Result<Json<Value>, ApiError> {
    let not_found = || {
        api_error(
            Status::Unauthorized,
            "invalid_token",
            rocket_sqlite_sessions::INVALID_TOKEN_MESSAGE,
        )
    };
    let user_id: i64 = user.id.parse().map_err(|_| not_found())?;
    let username = username_of(&user).ok_or_else(not_found)?;
    Ok(Json(
        json!({ "user_id": user_id, "username": username, "session_id": user.session_id }),
    ))
}

// ---- Browser pages: cookies, CSRF, session data. No JavaScript needed. -------

/// Text made safe for HTML.
fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn html_page(title: &str, body: &str) -> RawHtml<String> {
    RawHtml(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #1d2330; }}
 h1 {{ font-size: 1.5rem; }} table {{ border-collapse: collapse; width: 100%; }}
 th, td {{ text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #d8dde6; vertical-align: top; }}
 .current {{ background: #eef6ee; }} .error {{ color: #a12020; }} form.inline {{ display: inline; }}
 input {{ font: inherit; margin: .2rem 0; }} button {{ font: inherit; padding: .2rem .8rem; }}
</style></head><body>
<h1>{title}</h1>
{body}
</body></html>"#
    ))
}

/// A hidden CSRF field: the first field of every form (the crate reads it there).
fn csrf_field(csrf: &CsrfToken) -> String {
    format!(r#"<input type="hidden" name="csrf_token" value="{}">"#, csrf.as_str())
}

/// A page, or a redirect elsewhere (signed out, or already signed in).
#[derive(rocket::Responder)]
enum Page {
    Html(RawHtml<String>),
    Elsewhere(Box<Redirect>),
}

fn redirect(to: &'static str) -> Page {
    Page::Elsewhere(Box::new(Redirect::to(to)))
}

fn login_form(csrf: &CsrfToken, error: Option<&str>) -> RawHtml<String> {
    let error = error.map_or(String::new(), |e| format!(r#"<p class="error">{}</p>"#, escape(e)));
    html_page(
        "Sign in",
        &format!(
            r#"{error}<form method="post" action="/login">
{csrf}
<label>Username<br><input name="username" autocomplete="username" required></label><br>
<label>Password<br><input name="password" type="password" autocomplete="current-password" required></label><br>
<button type="submit">Sign in</button>
</form>
<p>No account yet? <a href="/register">Register</a></p>"#,
            csrf = csrf_field(csrf)
        ),
    )
}

fn register_form(csrf: &CsrfToken, error: Option<&str>) -> RawHtml<String> {
    let error = error.map_or(String::new(), |e| format!(r#"<p class="error">{}</p>"#, escape(e)));
    html_page(
        "Register",
        &format!(
            r#"{error}<form method="post" action="/register">
{csrf}
<label>Username<br><input name="username" autocomplete="username" required></label><br>
<label>Password (8 characters or more)<br><input name="password" type="password" autocomplete="new-password" minlength="8" required></label><br>
<button type="submit">Register</button>
</form>
<p>Already registered? <a href="/login">Sign in</a></p>"#,
            csrf = csrf_field(csrf)
        ),
    )
}

/// `form` for a signed-out visitor; a signed-in one goes home.
fn signed_out_page(user: Option<AuthUser>, form: impl FnOnce() -> RawHtml<String>) -> Page {
    match user {
        Some(_) => redirect("/"),
        None => Page::Html(form()),
    }
}

#[get("/register")]
fn register_page(user: Option<AuthUser>, csrf: CsrfToken) -> Page {
    signed_out_page(user, || register_form(&csrf, None))
}

/// The fields of the sign-in and registration forms.
#[derive(FromForm)]
struct CredentialsForm {
    #[field(name = "csrf_token")]
    _csrf_token: String,
    username: String,
    password: String,
}

/// Registers a user from the form and signs them in.
#[post("/register", data = "<form>")]
#[allow(clippy::too_many_arguments)]
async fn register_submit(
    _csrf: CsrfProtected,
    csrf: CsrfToken,
    users: &State<Users>,
    hashing: &State<PasswordHashing>,
    sessions: &State<Sessions>,
    client: ClientInfo,
    cookies: &CookieJar<'_>,
    form: Form<CredentialsForm>,
) -> Result<Redirect, (Status, RawHtml<String>)> {
    let CredentialsForm { username, password, .. } = form.into_inner();
    let refuse = |(status, Json(body)): ApiError| {
        let message = body["message"].as_str().unwrap_or("Please try again.").to_string();
        (status, register_form(&csrf, Some(&message)))
    };
    let user_id = create_user(users, hashing, username.clone(), password)
        .await
        .map_err(refuse)?;
    let pair = sessions
        .login(&user_id.to_string(), username_claim(username), &client)
        .await
        .map_err(|e| refuse(session_error(e)))?;
    sessions.set_cookies(cookies, &pair);
    Ok(Redirect::to("/"))
}

#[get("/login")]
fn login_page(user: Option<AuthUser>, csrf: CsrfToken) -> Page {
    signed_out_page(user, || login_form(&csrf, None))
}

#[post("/login", data = "<form>")]
#[allow(clippy::too_many_arguments)]
async fn login_submit(
    _csrf: CsrfProtected,
    csrf: CsrfToken,
    users: &State<Users>,
    hashing: &State<PasswordHashing>,
    sessions: &State<Sessions>,
    client: ClientInfo,
    cookies: &CookieJar<'_>,
    form: Form<CredentialsForm>,
) -> Result<Redirect, (Status, RawHtml<String>)> {
    let CredentialsForm { username, password, .. } = form.into_inner();
    let refuse = |status: Status, message: &str| (status, login_form(&csrf, Some(message)));
    let check = match sessions.credential_check(&username, &client).await {
        Ok(check) => check,
        Err(rocket_sqlite_sessions::Error::Throttled { retry_after }) => {
            return Err(refuse(
                Status::TooManyRequests,
                &format!("Too many failed attempts; try again in {retry_after} seconds."),
            ))
        }
        Err(_) => return Err(refuse(Status::ServiceUnavailable, "Please try again shortly.")),
    };
    let user_id = verify_credentials(users, hashing, username.clone(), password)
        .await
        .map_err(|_| refuse(Status::ServiceUnavailable, "Please try again shortly."))?;
    let Some(user_id) = user_id else {
        let _ = check.failed().await;
        return Err(refuse(Status::Unauthorized, "Invalid username or password."));
    };
    let _ = check.passed().await;
    let pair = sessions
        .login(&user_id.to_string(), username_claim(username), &client)
        .await
        .map_err(|_| refuse(Status::ServiceUnavailable, "Please try again shortly."))?;
    sessions.set_cookies(cookies, &pair);
    Ok(Redirect::to("/"))
}

/// The app claim that carries the username in every access token of a session,
/// so pages and `/me` answer without a database read.
fn username_claim(username: String) -> Value {
    json!({ "username": username })
}

/// The username carried by `user`'s token (see [`username_claim`]).
fn username_of(user: &AuthUser) -> Option<String> {
    user.claim("username")
}

#[get("/")]
async fn home(user: Option<AuthUser>, csrf: CsrfToken, sessions: &State<Sessions>) -> Page {
    let Some(user) = user else {
        return redirect("/login");
    };
    let Some(username) = username_of(&user) else {
        return redirect("/login");
    };
    // A visit counter kept in the session's data.
    let visits: u64 = sessions
        .session_value(&user.session_id, "visits")
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
        + 1;
    let _ = sessions.set_session_value(&user.session_id, "visits", visits).await;
    Page::Html(html_page(
        "Demo",
        &format!(
            r#"<p>Signed in as {username}</p>
<p>Visits in this session: <span id="visits">{visits}</span></p>
<p><a href="/account/sessions">Your sessions</a></p>
<form method="post" action="/logout">{csrf}<button type="submit">Sign out</button></form>"#,
            username = escape(&username),
            csrf = csrf_field(&csrf)
        ),
    ))
}

#[get("/account/sessions")]
async fn account_sessions(user: Option<AuthUser>, csrf: CsrfToken, sessions: &State<Sessions>) -> Page {
    let Some(user) = user else {
        return redirect("/login");
    };
    let Ok(listed) = sessions.sessions(&user.id).await else {
        return redirect("/login");
    };
    let rows: String = listed
        .iter()
        .map(|session| {
            let current = session.id == user.session_id;
            let action = if current {
                "<em>This device</em>".to_string()
            } else {
                format!(
                    r#"<form class="inline" method="post" action="/account/sessions/{id}/revoke">{csrf}<button type="submit">Revoke</button></form>"#,
                    id = escape(&session.id),
                    csrf = csrf_field(&csrf)
                )
            };
            format!(
                r#"<tr class="{class}" data-session="{id}"><td>{device}</td><td>{ip}</td><td>{created}</td><td>{seen}</td><td>{action}</td></tr>"#,
                class = if current { "current" } else { "other" },
                id = escape(&session.id),
                device = escape(session.user_agent.as_deref().unwrap_or("unknown device")),
                ip = escape(session.ip.as_deref().unwrap_or("")),
                created = session.created_at.format("%Y-%m-%d %H:%M UTC"),
                seen = session.last_seen_at.format("%Y-%m-%d %H:%M UTC"),
            )
        })
        .collect();
    Page::Html(html_page(
        "Your sessions",
        &format!(
            r#"<table><thead><tr><th>Device</th><th>IP</th><th>Signed in</th><th>Last seen</th><th></th></tr></thead>
<tbody>{rows}</tbody></table>
<p><a href="/">Back</a></p>"#
        ),
    ))
}

#[post("/account/sessions/<id>/revoke")]
async fn revoke_device(
    user: AuthUser,
    sessions: &State<Sessions>,
    id: &str,
) -> Result<Redirect, rocket_sqlite_sessions::Error> {
    sessions.revoke_session(&user.id, id).await?;
    Ok(Redirect::to("/account/sessions"))
}

#[post("/logout")]
async fn logout_page(
    user: AuthUser,
    sessions: &State<Sessions>,
    cookies: &CookieJar<'_>,
) -> Result<Redirect, rocket_sqlite_sessions::Error> {
    sessions.logout(&user).await?;
    sessions.clear_cookies(cookies);
    Ok(Redirect::to("/login"))
}

#[get("/health")]
fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Every error the demo does not answer itself, as JSON.
#[catch(default)]
fn json_error(status: Status, _: &Request<'_>) -> (Status, Json<Value>) {
    let code = status.reason_lossy().to_ascii_lowercase().replace([' ', '-'], "_");
    api_error(status, &code, status.reason_lossy())
}

/// Opens the demo's users table: in the sessions file, or in the SQLite file
/// `demo_users` names (needed when the sessions are in PostgreSQL).
fn users_fairing() -> AdHoc {
    AdHoc::try_on_ignite("demo users", |rocket| async {
        let database = match rocket.figment().extract_inner::<std::path::PathBuf>("demo_users") {
            Ok(path) => path,
            Err(_) => match SessionsConfig::from_figment(rocket.figment()) {
                Ok(config) if config.database.to_string_lossy().starts_with("postgres") => {
                    log::error!(
                        "demo: the sessions are in PostgreSQL; name a SQLite file for the demo's users: \
                         `demo_users = \"users.db\"` in Rocket.toml or ROCKET_DEMO_USERS=users.db"
                    );
                    return Err(rocket);
                }
                Ok(config) => config.database,
                Err(e) => {
                    log::error!("demo: {e}");
                    return Err(rocket);
                }
            },
        };
        let manager = SqliteConnectionManager::file(&database).with_init(|c| {
            c.busy_timeout(std::time::Duration::from_secs(5))?;
            c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        });
        let opened = r2d2::Pool::builder()
            .max_size(4)
            .build(manager)
            .map_err(|e| e.to_string())
            .and_then(|pool| {
                pool.get()
                    .map_err(|e| e.to_string())?
                    .execute_batch(
                        "CREATE TABLE IF NOT EXISTS demo_users (
                         id            INTEGER PRIMARY KEY,
                         username      TEXT NOT NULL UNIQUE,
                         password_hash TEXT NOT NULL,
                         created_at    INTEGER NOT NULL
                     )",
                    )
                    .map_err(|e| e.to_string())?;
                Ok(pool)
            });
        match opened {
            Ok(pool) => Ok(rocket.manage(Users { pool })),
            Err(e) => {
                log::error!("demo: cannot open the users table in `{}`: {e}", database.display());
                Err(rocket)
            }
        }
    })
}

/// The demo's routes, catchers and users table on `rocket`, which must have the
/// sessions fairing attached.
pub fn app(rocket: Rocket<Build>) -> Rocket<Build> {
    rocket
        .attach(users_fairing())
        .manage(PasswordHashing::new())
        .mount("/", routes![health, me])
        .mount(
            "/",
            routes![
                register_page,
                register_submit,
                login_page,
                login_submit,
                home,
                account_sessions,
                revoke_device,
                logout_page
            ],
        )
        .mount("/auth", routes![register, login, change_password])
        .mount("/auth", rocket_sqlite_sessions::routes())
        .register("/", catchers![json_error])
}

/// The audit log: every session event, after it was committed. A stolen
/// refresh token (reuse detected) is a warning.
fn audit(event: &SessionEvent) {
    match event {
        SessionEvent::ReuseDetected { .. } => log::warn!("demo audit: {event:?}"),
        _ => log::info!("demo audit: {event:?}"),
    }
}

#[rocket::main]
async fn main() {
    if let Err(error) = app(rocket::build().attach(Sessions::fairing().events(audit)))
        .launch()
        .await
    {
        // Rocket has logged the cause (a bad `[sessions]` key is named there).
        eprintln!("the demo did not start: {error}");
        std::process::exit(1);
    }
}
