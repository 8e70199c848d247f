//! The demo's HTML pages for browsers: tokens in cookies, CSRF tokens in forms.

use rocket::form::{Form, FromForm};
use rocket::http::{CookieJar, Status};
use rocket::response::content::RawHtml;
use rocket::response::Redirect;
use rocket::serde::json::Json;
use rocket::{get, post, State};
use rocket_sqlite_sessions::{AuthUser, ClientInfo, CsrfProtected, CsrfToken, LoginOptions, Sessions};

use super::api::{json_error, session_error};
use super::errors::ApiError;
use super::users::{
    canonical_username, create_user, user_claims, username_of, verify_credentials, PasswordHashing, Users,
    REGISTRATION_SCOPE,
};

// ---- Browser pages: cookies, CSRF, session data. No JavaScript needed. -------

/// Text made safe for HTML.
pub(crate) fn escape(text: &str) -> String {
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

pub(crate) fn html_page(title: &str, body: &str) -> RawHtml<String> {
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
pub(crate) fn csrf_field(csrf: &CsrfToken) -> String {
    format!(r#"<input type="hidden" name="csrf_token" value="{}">"#, csrf.as_str())
}

/// A page, or a redirect elsewhere (signed out, or already signed in).
#[derive(rocket::Responder)]
pub(crate) enum Page {
    Html(RawHtml<String>),
    Elsewhere(Box<Redirect>),
}

pub(crate) fn redirect(to: &'static str) -> Page {
    Page::Elsewhere(Box::new(Redirect::to(to)))
}

/// To the sign-in page, which comes back to `next` (a path of the demo;
/// the home page, where a sign-in goes anyway, needs none).
pub(crate) fn to_login(next: &str) -> Page {
    if next == "/" {
        return redirect("/login");
    }
    let next = rocket::http::RawStr::new(next).percent_encode().into_owned();
    Page::Elsewhere(Box::new(Redirect::to(format!("/login?next={next}"))))
}

/// `next` when it is a path of this site (one leading `/`, no `//` or `/\`,
/// no control characters); else the home page.
pub(crate) fn local_path(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.chars().any(char::is_control) =>
        {
            path.to_string()
        }
        _ => "/".to_string(),
    }
}

/// The sign-in form; after a refusal it keeps the username typed, and it
/// carries where to go after signing in (`next`).
pub(crate) fn login_form(csrf: &CsrfToken, error: Option<&str>, username: &str, next: &str) -> RawHtml<String> {
    let error = error.map_or(String::new(), |e| format!(r#"<p class="error">{}</p>"#, escape(e)));
    html_page(
        "Sign in",
        &format!(
            r#"{error}<form method="post" action="/login">
{csrf}
<input type="hidden" name="next" value="{next}">
<label>Username<br><input name="username" autocomplete="username" value="{username}" required></label><br>
<label>Password<br><input name="password" type="password" autocomplete="current-password" required></label><br>
<label><input type="checkbox" name="remember" value="yes"> Keep me signed in on this device</label><br>
<button type="submit">Sign in</button>
</form>
<p>No account yet? <a href="/register">Register</a></p>"#,
            csrf = csrf_field(csrf),
            next = escape(next),
            username = escape(username),
        ),
    )
}

pub(crate) fn register_form(csrf: &CsrfToken, error: Option<&str>) -> RawHtml<String> {
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
pub(crate) fn signed_out_page(user: Option<AuthUser>, form: impl FnOnce() -> RawHtml<String>) -> Page {
    match user {
        Some(_) => redirect("/"),
        None => Page::Html(form()),
    }
}

#[get("/register")]
pub(crate) fn register_page(user: Option<AuthUser>, csrf: CsrfToken) -> Page {
    signed_out_page(user, || register_form(&csrf, None))
}

/// The fields of the sign-in and registration forms.
#[derive(FromForm)]
pub(crate) struct CredentialsForm {
    #[field(name = "csrf_token")]
    _csrf_token: String,
    username: String,
    password: String,
    /// "Keep me signed in": without it, the sign-in's cookies end with the
    /// browser (`LoginOptions::session_only`).
    #[field(default = false)]
    remember: bool,
    /// Where to go once signed in (the sign-in form's; a path of the demo).
    next: Option<String>,
}

/// Registers a user from the form and signs them in.
#[post("/register", data = "<form>")]
#[allow(clippy::too_many_arguments)]
pub(crate) async fn register_submit(
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
    let username = canonical_username(&username).map_err(refuse)?;
    let check = match sessions.credential_check(REGISTRATION_SCOPE, &client).await {
        Ok(check) => check,
        Err(rocket_sqlite_sessions::Error::Throttled { retry_after }) => {
            return Err((
                Status::TooManyRequests,
                register_form(
                    &csrf,
                    Some(&format!(
                        "Too many accounts were made from here; try again in {retry_after} seconds."
                    )),
                ),
            ))
        }
        Err(_) => {
            return Err((
                Status::ServiceUnavailable,
                register_form(&csrf, Some("Please try again shortly.")),
            ))
        }
    };
    let created = create_user(users, hashing, username.clone(), password).await;
    let _ = check.failed().await;
    let (user_id, role) = created.map_err(refuse)?;
    let pair = sessions
        .login(user_id, user_claims(&username, &role), &client)
        .await
        .map_err(|e| refuse(session_error(e)))?;
    // The browser's previous session, if any, ends: its cookies are replaced.
    let _ = sessions.end_browser_session(cookies).await;
    sessions.set_cookies(cookies, &pair);
    Ok(Redirect::to("/"))
}

#[get("/login?<next>")]
pub(crate) fn login_page(user: Option<AuthUser>, csrf: CsrfToken, next: Option<&str>) -> Page {
    signed_out_page(user, || login_form(&csrf, None, "", &local_path(next)))
}

#[post("/login", data = "<form>")]
#[allow(clippy::too_many_arguments)]
pub(crate) async fn login_submit(
    _csrf: CsrfProtected,
    csrf: CsrfToken,
    users: &State<Users>,
    hashing: &State<PasswordHashing>,
    sessions: &State<Sessions>,
    client: ClientInfo,
    cookies: &CookieJar<'_>,
    form: Form<CredentialsForm>,
) -> Result<Redirect, (Status, RawHtml<String>)> {
    let CredentialsForm {
        username,
        password,
        remember,
        next,
        ..
    } = form.into_inner();
    let next = local_path(next.as_deref());
    let typed = username.clone();
    let refuse = |status: Status, message: &str| (status, login_form(&csrf, Some(message), &typed, &next));
    // A name no user can have: refused before anything else.
    let username =
        canonical_username(&username).map_err(|_| refuse(Status::Unauthorized, "Invalid username or password."))?;
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
    let Some(user) = user_id else {
        let _ = check.failed().await;
        return Err(refuse(Status::Unauthorized, "Invalid username or password."));
    };
    if user.banned {
        let _ = check.passed().await;
        return Err(refuse(Status::Forbidden, "This account is disabled."));
    }
    let options = if remember {
        LoginOptions::new()
    } else {
        LoginOptions::new().session_only()
    };
    let pair = match check
        .login_with(user.id, user_claims(&username, &user.role), &client, options)
        .await
    {
        Ok(pair) => pair,
        Err(rocket_sqlite_sessions::Error::LoginSuperseded) => {
            return Err(refuse(
                Status::Conflict,
                "Your account changed while you signed in; please sign in again.",
            ))
        }
        Err(rocket_sqlite_sessions::Error::TooManySessions) => {
            return Err(refuse(
                Status::Conflict,
                "You are signed in on too many devices. Sign out on one of them (Your devices, on a \
                 device where you are signed in), then sign in here again.",
            ))
        }
        Err(_) => return Err(refuse(Status::ServiceUnavailable, "Please try again shortly.")),
    };
    // The browser's previous session, if any, ends: its cookies are replaced.
    let _ = sessions.end_browser_session(cookies).await;
    sessions.set_cookies(cookies, &pair);
    Ok(Redirect::to(next))
}

#[get("/")]
pub(crate) async fn home(user: Option<AuthUser>, csrf: CsrfToken, sessions: &State<Sessions>) -> Page {
    let Some(user) = user else {
        return to_login("/");
    };
    let Some(username) = username_of(&user) else {
        return to_login("/");
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
<p><a href="/account/sessions">Your devices</a> · <a href="/account/password">Change your password</a></p>
<form method="post" action="/logout">{csrf}<button type="submit">Sign out</button></form>"#,
            username = escape(&username),
            csrf = csrf_field(&csrf)
        ),
    ))
}

#[post("/logout")]
pub(crate) async fn logout_page(
    user: AuthUser,
    sessions: &State<Sessions>,
    cookies: &CookieJar<'_>,
) -> Result<Redirect, rocket_sqlite_sessions::Error> {
    sessions.logout(&user).await?;
    sessions.clear_cookies(cookies);
    Ok(Redirect::to("/login"))
}

/// An error the demo does not answer itself: a page for a browser (a request
/// that prefers HTML), JSON for everything else.
#[derive(rocket::Responder)]
pub(crate) enum ErrorAnswer {
    Page((Status, RawHtml<String>)),
    Json(ApiError),
}

#[rocket::catch(default)]
pub(crate) fn error_answer(status: Status, request: &rocket::Request<'_>) -> ErrorAnswer {
    let wants_html = request
        .accept()
        .is_some_and(|accept| accept.preferred().media_type().is_html());
    if !wants_html {
        return ErrorAnswer::Json(json_error(status));
    }
    let advice = match status.code {
        401 => r#"<p>Please <a href="/login">sign in</a> again.</p>"#,
        403 => r#"<p>Your account may not open this page. <a href="/">Home</a></p>"#,
        404 => r#"<p>There is no such page. <a href="/">Home</a></p>"#,
        _ => r#"<p>Please try again shortly. <a href="/">Home</a></p>"#,
    };
    ErrorAnswer::Page((status, html_page(&escape(status.reason_lossy()), advice)))
}
