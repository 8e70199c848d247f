//! The demo app: a small API on rocket_sqlite_sessions.
//!
//! ```text
//! cargo run --example demo
//! ```
//!
//! Users live in the demo's own table (`demo_users`) in the same SQLite file as
//! the sessions, passwords hashed with Argon2id. Registration, login (throttled
//! by the crate's `credential_check`, and refused with 409 when a password or
//! role change overtook it), password change (a `FreshAuthUser`
//! route), `/me` and `/health` are the demo's; `/auth/refresh`, `/auth/logout`,
//! `/auth/logout-all`, `/auth/sessions` and `/auth/revoke` come from
//! `rocket_sqlite_sessions::routes()`, `/.well-known/jwks.json` from
//! `rocket_sqlite_sessions::jwks_routes()`.
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
//!
//! **Roles.** The first user to register is the admin, the others members.
//! Access tokens carry `{"username", "roles"}` (typed in `users::Claims`);
//! `GET /admin/users`, `PUT /admin/users/<username>/role`,
//! `POST /admin/users/<username>/ban` and `POST /admin/logout-everyone` take
//! an `Authorized<Admin>` guard (403 for members). Each refresh reads the
//! user's role and ban from the table (`users::claims_source`, registered
//! with `Sessions::set_claims_source` once the pool exists): a role change
//! reaches the user's sessions at their next refresh, a ban ends them. A role
//! change and a ban are also cut-offs (`update_claims`, `logout_all`), so a
//! login in flight is refused. The last admin can be neither demoted nor
//! banned.
//!
//! **Audit log.** Every session event (login, refresh, logout, revoked
//! session, reuse detected) is logged after its commit; throttled attempts at
//! most once a minute.
//!
//! **Logs.** Rocket's own lines about each request are left out (see
//! `logging.rs`) but at `log_level = "debug"`; failures of the users table
//! are logged at most once a minute.
//!
//! The files: `main.rs` (the app, the audit log), `users.rs` (the users
//! table, roles, password hashing), `api.rs` (the JSON API), `pages.rs` (the
//! HTML pages), `errors.rs` (JSON errors), `logging.rs` (the logger). Each imports what it uses by name,
//! and none imports one that imports it.

mod account;
mod api;
mod errors;
mod logging;
mod pages;
pub(crate) mod users;

use account::{
    account_sessions, confirm_submit, label_device, logout_all, logout_others, password_page, password_submit,
    revoke_device,
};
use api::{admin_users, ban_user, change_password, change_role, health, login, logout_everyone, me, register};
use pages::{error_answer, home, login_page, login_submit, logout_page, register_page, register_submit};
use rocket::{catchers, routes, Build, Rocket};
use rocket_sqlite_sessions::{SessionEvent, Sessions};
use users::{users_closer, users_fairing, PasswordHashing};

/// The demo's routes, catchers and users table on `rocket`, which must have the
/// sessions fairing attached.
pub fn app(rocket: Rocket<Build>) -> Rocket<Build> {
    rocket
        .attach(users_fairing())
        .attach(users_closer())
        .manage(PasswordHashing::new())
        .mount(
            "/",
            routes![health, me, admin_users, change_role, ban_user, logout_everyone],
        )
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
                label_device,
                logout_others,
                confirm_submit,
                logout_all,
                password_page,
                password_submit,
                logout_page
            ],
        )
        .mount("/auth", routes![register, login, change_password])
        .mount("/auth", rocket_sqlite_sessions::routes())
        .mount("/", rocket_sqlite_sessions::jwks_routes())
        .register("/", catchers![error_answer])
}

/// The audit log: every session event, after it was committed. A stolen
/// refresh token (reuse detected) is a warning. Throttled attempts come as
/// fast as a client sends them: at most one line a minute.
fn audit(event: &SessionEvent) {
    static THROTTLED: logging::EveryMinute = logging::EveryMinute::new();
    match event {
        SessionEvent::ReuseDetected { .. } => log::warn!("demo audit: {event:?}"),
        SessionEvent::Throttled { .. } => THROTTLED.log(log::Level::Info, format_args!("demo audit: {event:?}")),
        _ => log::info!("demo audit: {event:?}"),
    }
}

#[rocket::main]
async fn main() {
    // Before Rocket builds, so that it keeps this logger.
    logging::install();
    if let Err(error) = app(rocket::build().attach(Sessions::fairing().events(audit)))
        .launch()
        .await
    {
        // Rocket has logged the cause (a bad `[sessions]` key is named there).
        eprintln!("the demo did not start: {error}");
        std::process::exit(1);
    }
}
