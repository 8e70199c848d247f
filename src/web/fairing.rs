//! The fairing: configuration, store, feed follower and pruning at ignite;
//! the crate's answers on responses; pruning stopped at shutdown.

use std::sync::Arc;

use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::http::Status;
use rocket::{Build, Data, Orbit, Request, Response, Rocket};
use tokio_cron_scheduler::JobScheduler;

use crate::clock::Clock;
use crate::config::{ConfigError, SessionsConfig};
use crate::error::Error;
use crate::hooks::{ClaimsSource, Hooks, SessionEvents};
use crate::sessions::Sessions;
use crate::web::csrf_proof::{csrf_field_of, is_unsafe, CSRF_HEADER, CSRF_PEEK_BYTES};
use crate::web::dbsc::{dbsc_paths, offer_registration};
use crate::web::dpop::finish_dpop;
use crate::web::request::{first_header, record};
use crate::web::responses::{
    csrf_refused_response, forbidden_response, invalid_token_response, login_too_old_response,
};

/// The fairing returned by [`Sessions::fairing()`].
///
/// At ignite it reads and validates `[sessions]`, opens and migrates the
/// database (the SQLite file, or PostgreSQL), loads what is revoked into memory,
/// starts following the revocation feed and manages a [`Sessions`]; launch
/// fails with a message naming the offending key when anything is wrong. Unless
/// `auto_prune = false`, it starts the pruning job on `prune_schedule`, and stops
/// it at shutdown after the batch in progress. On each
/// response refused by [`AuthUser`](crate::AuthUser) it sets the uniform 401 body
/// and `WWW-Authenticate` header, whatever catcher the app has.
pub struct SessionsFairing {
    clock: Clock,
    hooks: Hooks,
    /// The pruning job, once started; stopped at shutdown.
    scheduler: rocket::tokio::sync::Mutex<Option<JobScheduler>>,
}

impl Sessions {
    /// The fairing that sets up session management from the `[sessions]` table of
    /// Rocket's configuration.
    pub fn fairing() -> SessionsFairing {
        SessionsFairing {
            clock: Clock::system(),
            hooks: Hooks::default(),
            scheduler: Default::default(),
        }
    }
}

impl SessionsFairing {
    /// Uses `clock` for every expiry decision instead of the system time: for
    /// tests, with a [`ManualClock`](crate::testing::ManualClock).
    pub fn with_clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// Consults `source` at each refresh, before anything rotates: keep or
    /// replace the session's claims, or end the session (see
    /// [`ClaimsSource`]). It costs each refresh one store read (the
    /// session's user) besides the lookup.
    pub fn claims_source(mut self, source: impl ClaimsSource) -> Self {
        self.hooks.claims_source = Some(Arc::new(source));
        self
    }

    /// Tells `events` of every login, refresh, logout, revoked session,
    /// detected reuse and throttled attempt, after commit (see
    /// [`SessionEvents`]).
    pub fn events(mut self, events: impl SessionEvents) -> Self {
        self.hooks.events = Some(Arc::new(events));
        self
    }
}

#[rocket::async_trait]
impl Fairing for SessionsFairing {
    fn info(&self) -> Info {
        Info {
            name: "rocket_sqlite_sessions",
            kind: Kind::Ignite | Kind::Request | Kind::Response | Kind::Shutdown,
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        if rocket.state::<Sessions>().is_some() {
            log::error!(
                "rocket_sqlite_sessions: Sessions::fairing() is attached twice (or `Sessions` is already \
                 managed); attach it once"
            );
            return Err(rocket);
        }
        let debug_profile = rocket.figment().profile() == rocket::Config::DEBUG_PROFILE;
        let settings = match SessionsConfig::from_figment(rocket.figment()).and_then(|c| c.validate(debug_profile)) {
            Ok(settings) => settings,
            Err(error) => {
                log::error!("rocket_sqlite_sessions: {error}");
                return Err(rocket);
            }
        };
        let log_level = rocket.figment().extract_inner::<rocket::config::LogLevel>("log_level");
        if matches!(log_level, Ok(rocket::config::LogLevel::Debug)) {
            log::warn!(
                "rocket_sqlite_sessions: Rocket's `log_level = \"debug\"` logs every request and response \
                 with its headers: `Authorization`, `Cookie` and `Set-Cookie`, tokens included. Use \
                 \"normal\" or lower anywhere but on a developer's machine."
            );
        }
        if settings.secret_was_generated {
            log::warn!(
                "rocket_sqlite_sessions: `sessions.secret` is not set; a random key is used for this run, \
                 so tokens will not survive a restart. Set a secret before deploying."
            );
        }
        let mut settings = settings;
        if let Some(dbsc) = settings.dbsc.as_mut() {
            let Some((register, refresh)) = dbsc_paths(&rocket) else {
                log::error!(
                    "rocket_sqlite_sessions: `sessions.dbsc = true` needs the crate's routes: mount \
                     rocket_sqlite_sessions::routes() (they include POST /dbsc/register and /dbsc/refresh)"
                );
                return Err(rocket);
            };
            (dbsc.register_path, dbsc.refresh_path) = (register, refresh);
        }
        let database = settings.database.clone();
        let auto_prune = settings.pruning.auto;
        let (sessions, cursor) = match Sessions::open(settings, self.clock.clone(), self.hooks.clone()).await {
            Ok(opened) => opened,
            Err(error) => {
                let message = match error {
                    // The store's message names the path and what to check.
                    Error::Store(cause) => cause.to_string(),
                    other => format!("cannot open `{database}`: {other}"),
                };
                let key = if message.starts_with("`listen_database`") {
                    "listen_database"
                } else {
                    "database"
                };
                let error = ConfigError::Invalid { key, message };
                log::error!("rocket_sqlite_sessions: {error}");
                return Err(rocket);
            }
        };
        sessions.follow_feed(cursor);
        if auto_prune {
            match sessions.start_pruning().await {
                Ok(scheduler) => *self.scheduler.lock().await = Some(scheduler),
                Err(error) => {
                    log::error!("rocket_sqlite_sessions: the pruning job did not start: {error}");
                    return Err(rocket);
                }
            }
        }
        Ok(rocket.manage(sessions))
    }

    async fn on_shutdown(&self, rocket: &Rocket<Orbit>) {
        if let Some(mut scheduler) = self.scheduler.lock().await.take() {
            if let Err(error) = scheduler.shutdown().await {
                log::warn!("rocket_sqlite_sessions: stopping the pruning job: {error}");
            }
        }
        if let Some(sessions) = rocket.state::<Sessions>() {
            sessions.stop_pruning().await;
            sessions.close_store().await;
        }
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        let record = record(request);
        let Some(sessions) = record.sessions() else {
            return;
        };
        if let Some(login) = login_redirect(sessions, request, response) {
            *response = login;
        }
        sessions.finish_cookies(request, response);
        offer_registration(sessions, response);
        // The 403 page of a policy (`Authorized`) the app's own catcher
        // rendered for a browser (a request preferring HTML) is kept;
        // anything else gets the crate's JSON. A refused token is always the
        // one generic 401, a failed CSRF check the crate's 403.
        let app_page = request
            .accept()
            .is_some_and(|accept| accept.preferred().media_type().is_html())
            && response
                .content_type()
                .is_some_and(|content_type| content_type.is_html());
        match response.status() {
            Status::Unauthorized => {
                if record.token_refused() {
                    response.merge(invalid_token_response());
                } else if let Some(max_age) = record.stale_login() {
                    response.merge(login_too_old_response(max_age));
                }
            }
            Status::Forbidden if record.csrf_refused() => response.merge(csrf_refused_response()),
            Status::Forbidden if record.policy_refused() && !app_page => response.merge(forbidden_response()),
            _ => {}
        }
        finish_dpop(sessions, request, record, response);
    }

    async fn on_request(&self, request: &mut Request<'_>, data: &mut Data<'_>) {
        // A form's csrf_token field must be read before the route's data guard
        // takes the body: peek at its start without consuming it.
        let form = request
            .content_type()
            .is_some_and(|content_type| content_type.is_form());
        if form && is_unsafe(request.method()) && request.headers().get_one(CSRF_HEADER).is_none() {
            let field = csrf_field_of(data.peek(CSRF_PEEK_BYTES).await);
            record(request).peeked_csrf_field(field);
        }
    }
}

/// The path and query asked for, as `next` carries it: the path decoded, with
/// backslashes as slashes, runs of slashes as one and no control characters,
/// so that it starts with exactly one `/` and an app that decodes `next` once
/// and redirects to it stays on its own site (`//evil.example`, `/\evil.example`
/// and `/%2F/evil.example` all become `/evil.example`).
fn app_path(request: &Request<'_>) -> String {
    let uri = request.uri();
    let raw = uri.path();
    let decoded = raw.percent_decode_lossy();
    let mut path = String::with_capacity(decoded.len() + 1);
    for c in decoded.chars().filter(|c| !c.is_control()) {
        let c = if c == '\\' { '/' } else { c };
        if !(c == '/' && path.ends_with('/')) {
            if path.is_empty() && c != '/' {
                path.push('/');
            }
            path.push(c);
        }
    }
    if path.is_empty() {
        path.push('/');
    }
    if let Some(query) = uri.query() {
        path.push('?');
        path.push_str(query.as_str());
    }
    path
}

/// The redirect to `login_url` that replaces a guard's 401 for a browser's
/// page request, when configured.
fn login_redirect<'r>(sessions: &Sessions, request: &Request<'_>, response: &Response<'r>) -> Option<Response<'r>> {
    let login_url = sessions.settings().browser.login_url.as_deref()?;
    let page_request = matches!(request.method(), rocket::http::Method::Get | rocket::http::Method::Head)
        && first_header(request, "Authorization").is_none()
        && request
            .headers()
            .get("Accept")
            .any(|accept| accept.to_ascii_lowercase().contains("text/html"));
    if response.status() != Status::Unauthorized || !record(request).token_refused() || !page_request {
        return None;
    }
    let next = rocket::http::RawStr::new(&app_path(request))
        .percent_encode()
        .into_owned();
    Some(
        Response::build()
            .status(Status::SeeOther)
            .raw_header("Location", format!("{login_url}?next={next}"))
            .raw_header("Cache-Control", "no-store")
            .finalize(),
    )
}
