//! A small browser app: a sign-in form with CSRF protection, the tokens in
//! `__Host-` cookies (refreshed silently by the guard), the user's devices,
//! and sign-out. `cargo run --example browser`, then open
//! http://localhost:8000/ (cookies named `__Host-` need HTTPS in most
//! browsers but localhost).
use rocket::form::{Form, FromForm};
use rocket::http::{CookieJar, Status};
use rocket::response::{content::RawHtml, Redirect};
use rocket::{get, launch, post, routes, Build, Rocket, State};
use rocket_sqlite_sessions::{AuthUser, ClientInfo, CsrfProtected, CsrfToken, Sessions, SessionsFairing};

#[derive(FromForm)]
struct SignIn {
    username: String,
    password: String,
}

/// The app's own user check: one user here; Argon2 and a table in a real app.
fn user_id_of(username: &str, password: &str) -> Option<i64> {
    (username == "ada" && password == "lovelace").then_some(1)
}

/// A hidden field with the page's CSRF token: every form of the app sends it.
fn csrf_field(csrf: &CsrfToken) -> String {
    format!(r#"<input type="hidden" name="csrf_token" value="{}">"#, csrf.as_str())
}

fn sign_in_page(csrf: &CsrfToken, error: &str) -> RawHtml<String> {
    RawHtml(format!(
        r#"<h1>Sign in</h1><p>{error}</p><form method="post" action="/login">{}
<input name="username"> <input name="password" type="password"> <button>Sign in</button></form>"#,
        csrf_field(csrf)
    ))
}

#[get("/login")]
fn login_page(csrf: CsrfToken) -> RawHtml<String> {
    sign_in_page(&csrf, "")
}

/// `CsrfProtected`: same origin and the form's token, before any session.
#[post("/login", data = "<form>")]
async fn login(
    _csrf: CsrfProtected,
    csrf: CsrfToken,
    sessions: &State<Sessions>,
    client: ClientInfo,
    jar: &CookieJar<'_>,
    form: Form<SignIn>,
) -> Result<Redirect, (Status, RawHtml<String>)> {
    let refused = |status, error| (status, sign_in_page(&csrf, error));
    let Ok(check) = sessions.credential_check(&form.username, &client).await else {
        return Err(refused(Status::TooManyRequests, "Too many attempts; try again later."));
    };
    let Some(id) = user_id_of(&form.username, &form.password) else {
        let _ = check.failed().await;
        return Err(refused(Status::Unauthorized, "Wrong username or password."));
    };
    let claims = serde_json::json!({ "name": form.username });
    let Ok(pair) = check.login(id, claims, &client).await else {
        return Err(refused(Status::ServiceUnavailable, "Please try again."));
    };
    sessions.set_cookies(jar, &pair); // __Host- cookies; the guard refreshes them silently
    Ok(Redirect::to("/"))
}

/// The signed-in page: the user's devices and a sign-out form.
#[get("/")]
async fn home(
    user: Option<AuthUser>,
    csrf: CsrfToken,
    sessions: &State<Sessions>,
) -> Result<RawHtml<String>, Redirect> {
    let user = user.ok_or_else(|| Redirect::to("/login"))?;
    let devices = sessions.sessions(&user.id).await.unwrap_or_default();
    let rows: String = devices
        .iter()
        .map(|device| {
            let name = device.device.as_deref().unwrap_or("Unknown device");
            let this = if device.id == user.session_id {
                " (this one)"
            } else {
                ""
            };
            format!("<li>{name}{this}</li>")
        })
        .collect();
    Ok(RawHtml(format!(
        r#"<h1>Signed in</h1><ul>{rows}</ul><form method="post" action="/logout">{}<button>Sign out</button></form>"#,
        csrf_field(&csrf)
    )))
}

/// An unsafe request authenticated by cookie: the guard checks the origin
/// and the form's CSRF token (403 otherwise).
#[post("/logout")]
async fn logout(user: AuthUser, sessions: &State<Sessions>, jar: &CookieJar<'_>) -> Redirect {
    let _ = sessions.logout(&user).await;
    sessions.clear_cookies(jar);
    Redirect::to("/login")
}

fn app(rocket: Rocket<Build>, sessions: SessionsFairing) -> Rocket<Build> {
    rocket
        .attach(sessions)
        .mount("/", routes![login_page, login, home, logout])
}

#[launch]
fn rocket() -> _ {
    app(rocket::build(), Sessions::fairing())
}

#[cfg(test)]
mod tests {
    use rocket::http::Status;
    use rocket::local::asynchronous::Client;
    use rocket_sqlite_sessions::testing::{Browser, TestHarness};

    #[rocket::async_test]
    async fn sign_in_devices_csrf_and_sign_out() {
        let harness = TestHarness::new();
        let client = Client::untracked(super::app(rocket::custom(harness.figment()), harness.fairing()))
            .await
            .unwrap();
        let (laptop, phone) = (Browser::new("Firefox/140 (X11; Linux)"), Browser::new("curl/8"));
        for browser in [&laptop, &phone] {
            browser.get(&client, "/login").await; // its CSRF token
            let signed_in = browser
                .submit(&client, "/login", &[("username", "ada"), ("password", "lovelace")])
                .await;
            assert_eq!(signed_in.location.as_deref(), Some("/"));
        }
        let home = laptop.get(&client, "/").await;
        assert!(
            home.body.contains("(this one)") && home.body.matches("<li>").count() == 2,
            "{}",
            home.body
        );

        // A forged sign-out (no CSRF token) is refused; the real one works.
        let forged = laptop.send(client.post("/logout")).await;
        assert_eq!(forged.status(), Status::Forbidden);
        assert_eq!(
            laptop.submit(&client, "/logout", &[]).await.location.as_deref(),
            Some("/login")
        );
        assert_eq!(laptop.get(&client, "/").await.location.as_deref(), Some("/login"));
        assert_eq!(
            phone.get(&client, "/").await.status,
            Status::Ok,
            "the other device stays signed in"
        );
    }
}
