//! The demo's account pages: the devices signed in (readable names, relative
//! times), signing out one device, the others or all of them, and changing
//! the password (which needs a recent sign-in).

use rocket::form::{Form, FromForm};
use rocket::http::{CookieJar, Status};
use rocket::response::content::RawHtml;
use rocket::response::Redirect;
use rocket::{get, post, State};
use rocket_sqlite_sessions::{AuthUser, ClientInfo, CsrfProtected, CsrfToken, Error, FreshAuthUser, Sessions};

use super::api::{set_password, LoginError};
use super::pages::{csrf_field, escape, html_page, to_login, Page};
use super::users::{user_claims, username_of, verify_credentials, PasswordHashing, Users};

/// `seconds` ago, for people: "just now", "2 minutes ago", "3 days ago".
pub(crate) fn ago(seconds: i64) -> String {
    let (count, unit) = match seconds.max(0) {
        s if s < 60 => return "just now".to_string(),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86_400 => (s / 3600, "hour"),
        s => (s / 86_400, "day"),
    };
    format!("{count} {unit}{} ago", if count == 1 { "" } else { "s" })
}

#[get("/account/sessions")]
pub(crate) async fn account_sessions(user: Option<AuthUser>, csrf: CsrfToken, sessions: &State<Sessions>) -> Page {
    let Some(user) = user else {
        return to_login("/account/sessions");
    };
    let Ok(listed) = sessions.sessions(&user.id).await else {
        return to_login("/account/sessions");
    };
    let now = sessions.now();
    let when = |at: chrono::DateTime<chrono::Utc>| {
        format!(
            r#"{ago}<br><small><time datetime="{iso}">{exact}</time></small>"#,
            ago = ago(now - at.timestamp()),
            iso = at.to_rfc3339(),
            exact = at.format("%Y-%m-%d %H:%M UTC"),
        )
    };
    let rows: String = listed
        .iter()
        .map(|session| {
            let current = session.id == user.session_id;
            let action = if current {
                "<em>This device</em>".to_string()
            } else {
                format!(
                    r#"<form class="inline" method="post" action="/account/sessions/{id}/revoke">{csrf}<button type="submit">Sign out</button></form>"#,
                    id = escape(&session.id),
                    csrf = csrf_field(&csrf)
                )
            };
            let label = session.label.as_deref().unwrap_or("");
            let name = format!(
                r#"<form class="inline" method="post" action="/account/sessions/{id}/label">{csrf}<input name="label" value="{label}" maxlength="64" placeholder="Name this device" aria-label="Name"><button type="submit">Save</button></form>"#,
                id = escape(&session.id),
                label = escape(label),
                csrf = csrf_field(&csrf)
            );
            format!(
                r#"<tr class="{class}" data-session="{id}"><td><strong class="label">{label}</strong> <span class="device" title="{agent}">{device}</span><br>{name}</td><td>{ip}</td><td>{created}</td><td>{seen}</td><td>{action}</td></tr>"#,
                class = if current { "current" } else { "other" },
                id = escape(&session.id),
                label = escape(label),
                agent = escape(session.user_agent.as_deref().unwrap_or("")),
                device = escape(session.device.as_deref().unwrap_or("Unknown device")),
                ip = escape(session.ip.as_deref().unwrap_or("")),
                created = when(session.created_at),
                seen = when(session.last_seen_at),
            )
        })
        .collect();
    let csrf = csrf_field(&csrf);
    Page::Html(html_page(
        "Your devices",
        &format!(
            r#"<table><thead><tr><th>Device</th><th>IP</th><th>Signed in</th><th>Last seen</th><th></th></tr></thead>
<tbody>{rows}</tbody></table>
<form class="inline" method="post" action="/account/logout-others">{csrf}<button type="submit" id="logout-others">Sign out all other devices</button></form>
<form class="inline" method="post" action="/account/logout-all">{csrf}<button type="submit" id="logout-all">Sign out everywhere</button></form>
<p><a href="/account/password">Change your password</a> · <a href="/">Back</a></p>"#
        ),
    ))
}

/// The answer of an action on another device: back to the list, or, when
/// the sign-in is older than `fresh_age`, the page that asks for the
/// password first (401).
#[derive(rocket::Responder)]
pub(crate) enum Managed {
    Done(Box<Redirect>),
    Confirm((Status, RawHtml<String>)),
    Failed(Error),
}

impl From<Result<(), Error>> for Managed {
    fn from(outcome: Result<(), Error>) -> Self {
        match outcome {
            Ok(()) => Managed::Done(Box::new(Redirect::to("/account/sessions"))),
            Err(error) => Managed::Failed(error),
        }
    }
}

/// Asks for the password before an action on the user's other devices when
/// the sign-in is old (ASVS 5.0 7.5.2): a stolen old session cannot end or
/// rename its owner's others.
fn fresh_or_confirm(sessions: &Sessions, user: &AuthUser, csrf: &CsrfToken) -> Result<(), Managed> {
    match sessions.require_fresh(user) {
        Ok(()) => Ok(()),
        Err(Error::LoginTooOld { .. }) => Err(Managed::Confirm((Status::Unauthorized, confirm_form(csrf, None)))),
        Err(error) => Err(Managed::Failed(error)),
    }
}

fn confirm_form(csrf: &CsrfToken, message: Option<&str>) -> RawHtml<String> {
    let message = message.map_or(String::new(), |m| format!(r#"<p class="error">{}</p>"#, escape(m)));
    html_page(
        "Confirm it's you",
        &format!(
            r#"{message}<p>You signed in a while ago. Enter your password to manage your other devices.</p>
<form method="post" action="/account/confirm">
{csrf}
<label>Password<br><input name="password" type="password" autocomplete="current-password" required></label><br>
<button type="submit" id="confirm">Confirm</button>
</form>
<p><a href="/account/sessions">Back</a></p>"#,
            csrf = csrf_field(csrf)
        ),
    )
}

#[post("/account/sessions/<id>/revoke")]
pub(crate) async fn revoke_device(user: AuthUser, csrf: CsrfToken, sessions: &State<Sessions>, id: &str) -> Managed {
    if id != user.session_id {
        if let Err(confirm) = fresh_or_confirm(sessions, &user, &csrf) {
            return confirm;
        }
    }
    sessions.revoke_session(&user.id, id).await.into()
}

/// The name field of a session's row.
#[derive(FromForm)]
pub(crate) struct LabelForm {
    #[field(name = "csrf_token")]
    _csrf_token: String,
    label: String,
}

/// Names one of the user's sessions ("Work laptop"); an empty name removes it.
#[post("/account/sessions/<id>/label", data = "<form>")]
pub(crate) async fn label_device(
    user: AuthUser,
    csrf: CsrfToken,
    sessions: &State<Sessions>,
    id: &str,
    form: Form<LabelForm>,
) -> Managed {
    if id != user.session_id {
        if let Err(confirm) = fresh_or_confirm(sessions, &user, &csrf) {
            return confirm;
        }
    }
    sessions.set_session_label(&user.id, id, Some(&form.label)).await.into()
}

/// Every other device of the user signs out; this one stays.
#[post("/account/logout-others")]
pub(crate) async fn logout_others(user: AuthUser, csrf: CsrfToken, sessions: &State<Sessions>) -> Managed {
    if let Err(confirm) = fresh_or_confirm(sessions, &user, &csrf) {
        return confirm;
    }
    sessions.logout_others(&user).await.map(|_| ()).into()
}

/// The field of the confirm page.
#[derive(FromForm)]
pub(crate) struct ConfirmForm {
    #[field(name = "csrf_token")]
    _csrf_token: String,
    password: String,
}

/// A fresh sign-in of the user signed in on this browser: the password
/// checked (throttled as a login), then a new session replaces this one, so
/// the actions on other devices are open for `fresh_age`.
#[post("/account/confirm", data = "<form>")]
#[allow(clippy::too_many_arguments)]
pub(crate) async fn confirm_submit(
    _csrf: CsrfProtected,
    csrf: CsrfToken,
    user: AuthUser,
    users: &State<Users>,
    hashing: &State<PasswordHashing>,
    sessions: &State<Sessions>,
    client: ClientInfo,
    cookies: &CookieJar<'_>,
    form: Form<ConfirmForm>,
) -> Result<Redirect, (Status, RawHtml<String>)> {
    let refuse = |status: Status, message: &str| (status, confirm_form(&csrf, Some(message)));
    let Some(username) = username_of(&user) else {
        return Err(refuse(Status::Unauthorized, "Please sign in."));
    };
    let check = match sessions.credential_check(&username, &client).await {
        Ok(check) => check,
        Err(Error::Throttled { retry_after }) => {
            return Err(refuse(
                Status::TooManyRequests,
                &format!("Too many wrong passwords; try again in {retry_after} seconds."),
            ))
        }
        Err(_) => return Err(refuse(Status::ServiceUnavailable, "Please try again shortly.")),
    };
    let found = verify_credentials(users, hashing, username.clone(), form.into_inner().password)
        .await
        .map_err(|_| refuse(Status::ServiceUnavailable, "Please try again shortly."))?;
    let Some(found) = found.filter(|found| found.id.to_string() == user.id) else {
        let _ = check.failed().await;
        return Err(refuse(Status::Unauthorized, "Wrong password."));
    };
    if found.banned {
        let _ = check.passed().await;
        return Err(refuse(Status::Forbidden, "This account is disabled."));
    }
    let pair = check
        .login(found.id, user_claims(&username, &found.role), &client)
        .await
        .map_err(|_| refuse(Status::Conflict, "Your account changed; please try again."))?;
    // This browser's old session ends: the fresh one replaces it.
    let _ = sessions.end_browser_session(cookies).await;
    sessions.set_cookies(cookies, &pair);
    Ok(Redirect::to("/account/sessions"))
}

/// Every device of the user signs out, this one too.
#[post("/account/logout-all")]
pub(crate) async fn logout_all(
    user: AuthUser,
    sessions: &State<Sessions>,
    cookies: &CookieJar<'_>,
) -> Result<Redirect, Error> {
    sessions.logout_all(&user.id).await?;
    sessions.clear_cookies(cookies);
    Ok(Redirect::to("/login"))
}

fn password_form(csrf: &CsrfToken, message: Option<&str>) -> RawHtml<String> {
    let message = message.map_or(String::new(), |m| format!(r#"<p class="error">{}</p>"#, escape(m)));
    html_page(
        "Change your password",
        &format!(
            r#"{message}<form method="post" action="/account/password">
{csrf}
<label>Current password<br><input name="current_password" type="password" autocomplete="current-password" required></label><br>
<label>New password (8 characters or more)<br><input name="new_password" type="password" autocomplete="new-password" minlength="8" required></label><br>
<button type="submit">Change password</button>
</form>
<p>Your other devices will be signed out. <a href="/account/sessions">Back</a></p>"#,
            csrf = csrf_field(csrf)
        ),
    )
}

#[get("/account/password")]
pub(crate) fn password_page(user: Option<AuthUser>, csrf: CsrfToken) -> Page {
    match user {
        Some(_) => Page::Html(password_form(&csrf, None)),
        None => to_login("/account/password"),
    }
}

/// The fields of the password form.
#[derive(FromForm)]
pub(crate) struct PasswordForm {
    #[field(name = "csrf_token")]
    _csrf_token: String,
    current_password: String,
    new_password: String,
}

/// Changes the password of a user who signed in recently (a stolen session
/// is not enough), and signs their other devices out.
#[post("/account/password", data = "<form>")]
#[allow(clippy::too_many_arguments)]
pub(crate) async fn password_submit(
    _csrf: CsrfProtected,
    csrf: CsrfToken,
    user: Result<FreshAuthUser, Error>,
    users: &State<Users>,
    hashing: &State<PasswordHashing>,
    sessions: &State<Sessions>,
    client: ClientInfo,
    form: Form<PasswordForm>,
) -> Result<Redirect, (Status, RawHtml<String>)> {
    let refuse = |status: Status, message: &str| (status, password_form(&csrf, Some(message)));
    let user = match user {
        Ok(FreshAuthUser(user)) => user,
        Err(Error::LoginTooOld { .. }) => {
            return Err(refuse(
                Status::Unauthorized,
                "You signed in a while ago: sign out, sign in again, then change your password.",
            ))
        }
        Err(_) => return Err(refuse(Status::Unauthorized, "Please sign in.")),
    };
    let PasswordForm {
        current_password,
        new_password,
        ..
    } = form.into_inner();
    match set_password(users, hashing, sessions, &client, &user, current_password, new_password).await {
        Ok(()) => Ok(Redirect::to("/account/sessions")),
        Err(LoginError::Crate(Error::Throttled { retry_after })) => Err(refuse(
            Status::TooManyRequests,
            &format!("Too many wrong passwords; try again in {retry_after} seconds."),
        )),
        Err(LoginError::Crate(_)) => Err(refuse(Status::Conflict, "Your account changed; please try again.")),
        Err(LoginError::Other((status, body))) => {
            Err(refuse(status, body["message"].as_str().unwrap_or("Please try again.")))
        }
    }
}
