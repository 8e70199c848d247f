//! Browser apps' session cookies: tokens in `__Host-` cookies, written by
//! the handler or by the fairing's response hook after a silent refresh.
//!
//! A request with an `Authorization` header is judged by it alone. Without one,
//! [`AuthUser`](crate::AuthUser) reads the access cookie; when that is missing or
//! expired and the refresh cookie is valid, it rotates the pair, sets both
//! cookies on the response and lets the request through (racing requests get
//! the same successor within the refresh token's grace window, so none of them
//! logs the user out).
//!
//! The guard does not write its cookie changes (a rotation, or clearing dead
//! cookies) to the request's cookie jar: Rocket drops the jar's changes when a
//! catcher answers (a 401, a 403, a 404), and a rotation the browser never
//! hears of turns into reuse a few seconds later. The fairing's response hook
//! writes them instead, whatever answered, unless the handler set those
//! cookies itself (a login or a logout).
//!
//! No response of a browser's session may be kept by a cache: whatever the
//! handler answered, `Cache-Control: no-store` and `Vary: Cookie` go on every
//! response to a request that sent a session cookie, every response that sets
//! one (or the pre-session CSRF cookie), and every response whose handler was
//! given a CSRF token (`CsrfToken`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rocket::http::{Cookie, CookieJar, SameSite};
use rocket::request::Request;

use crate::config::SameSitePolicy;
use crate::crypto::random_bytes;
use crate::dbsc::DbscSettings;
use crate::error::Error;
use crate::sessions::{Sessions, TokenPair};
use crate::web::request::{record, CookieChange};

impl Sessions {
    /// Puts `pair` in the session cookies: `__Host-` names by default, `Secure`,
    /// `HttpOnly`, `SameSite` as configured, `Path=/`, no `Domain` (or, with
    /// `cookie_domain`, that `Domain` and `__Secure-` names), `Max-Age` the
    /// token's lifetime. For a browser login form:
    ///
    /// ```no_run
    /// # use rocket::{post, State, http::CookieJar, response::Redirect};
    /// # use rocket_sqlite_sessions::{ClientInfo, Error, Sessions};
    /// #[post("/login")]
    /// async fn login(sessions: &State<Sessions>, client: ClientInfo, cookies: &CookieJar<'_>)
    ///     -> Result<Redirect, Error>
    /// {
    ///     // …after checking the form's credentials…
    ///     let pair = sessions.login("42", (), &client).await?;
    ///     sessions.set_cookies(cookies, &pair);
    ///     Ok(Redirect::to("/"))
    /// }
    /// ```
    pub fn set_cookies(&self, jar: &CookieJar<'_>, pair: &TokenPair) {
        for cookie in self.cookies_for(&CookieChange::Set(pair.clone())) {
            jar.add(cookie);
        }
    }

    /// Ends the session the browser's refresh cookie belongs to, if any:
    /// call it at a login, before [`set_cookies`](Self::set_cookies)
    /// overwrites the cookies, so the session they named does not live on
    /// unseen (it is revoked like a logout, with a `SessionRevoked` event
    /// "replaced by a new login"). Gives whether a live session ended.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails; then nothing was revoked.
    pub async fn end_browser_session(&self, jar: &CookieJar<'_>) -> Result<bool, Error> {
        let refresh = jar
            .get(&self.settings().browser.refresh_cookie)
            .map(|c| c.value().to_string());
        match refresh {
            Some(token) => self.end_replaced_session(&token, None).await,
            None => Ok(false),
        }
    }

    /// Expires the session cookies (same name, path and attributes,
    /// `Max-Age=0`), for logout in the browser: both, and a device-bound
    /// session's refresh cookie (DBSC).
    pub fn clear_cookies(&self, jar: &CookieJar<'_>) {
        for cookie in self.cookies_for(&CookieChange::Clear) {
            jar.add(cookie);
        }
        if let Some(dbsc) = self.dbsc_settings() {
            jar.add(self.bound_refresh_cookie(dbsc, String::new(), Some(0)));
        }
    }

    /// The session cookies for `change`: the access and refresh cookies, and
    /// for a device-bound pair the bound refresh cookie instead of the
    /// other (which is expired).
    fn cookies_for(&self, change: &CookieChange) -> Vec<Cookie<'static>> {
        let settings = &self.settings().browser;
        let (access, refresh) = (&settings.access_cookie, &settings.refresh_cookie);
        match change {
            // A session-only login's cookies get no Max-Age: the browser
            // forgets them when it closes.
            CookieChange::Set(pair) => {
                let access = self.session_cookie(
                    access,
                    pair.access_token.clone(),
                    pair.persistent.then_some(pair.expires_in),
                );
                let refresh_max_age = pair.persistent.then_some(pair.refresh_expires_in);
                match self.dbsc_settings().filter(|_| pair.device_bound) {
                    Some(dbsc) => vec![
                        access,
                        self.bound_refresh_cookie(dbsc, pair.refresh_token.clone(), refresh_max_age),
                        self.session_cookie(refresh, String::new(), Some(0)),
                    ],
                    None => vec![
                        access,
                        self.session_cookie(refresh, pair.refresh_token.clone(), refresh_max_age),
                    ],
                }
            }
            CookieChange::Clear => vec![
                self.session_cookie(access, String::new(), Some(0)),
                self.session_cookie(refresh, String::new(), Some(0)),
            ],
        }
    }

    /// The refresh cookie of a device-bound session: sent to the DBSC
    /// refresh route only.
    fn bound_refresh_cookie(&self, dbsc: &DbscSettings, value: String, max_age: Option<i64>) -> Cookie<'static> {
        let mut cookie = self.session_cookie(&dbsc.refresh_cookie, value, max_age);
        cookie.set_path(dbsc.refresh_path.clone());
        cookie
    }

    /// The attributes of the access cookie as DBSC's session instructions
    /// name them (the bound cookie's).
    pub(crate) fn access_cookie_attributes(&self) -> String {
        // Read off the cookie itself, so the two never disagree.
        let cookie = self.session_cookie(&self.settings().browser.access_cookie, String::new(), None);
        let mut attributes = format!("Path={}; Secure; HttpOnly", cookie.path().unwrap_or("/"));
        if let Some(same_site) = cookie.same_site() {
            attributes.push_str(&format!("; SameSite={same_site}"));
        }
        if let Some(domain) = cookie.domain() {
            attributes.push_str(&format!("; Domain={domain}"));
        }
        attributes
    }

    /// Writes the guard's cookie change for `request` into `response`, and
    /// keeps the response out of caches when it belongs to a browser's
    /// session (see the module docs).
    pub(crate) fn finish_cookies<'r>(&self, request: &'r Request<'_>, response: &mut rocket::Response<'r>) {
        let settings = &self.settings().browser;
        let bound_refresh = self.dbsc_settings().map(|dbsc| dbsc.refresh_cookie.as_str());
        let is_ours = |name: &str| {
            name == settings.access_cookie || name == settings.refresh_cookie || Some(name) == bound_refresh
        };
        let sets_ours = response.headers().get("Set-Cookie").any(|header| {
            Cookie::parse(header).is_ok_and(|cookie| is_ours(cookie.name()) || cookie.name() == settings.csrf_cookie)
        });
        let record = record(request);
        let mut private =
            sets_ours || record.csrf_token_given() || request.cookies().iter().any(|cookie| is_ours(cookie.name()));
        if !sets_ours {
            if let Some(change) = record.cookie_change() {
                for cookie in self.cookies_for(change) {
                    response.adjoin_header(cookie);
                }
                private = true;
            }
        }
        if private {
            response.set_raw_header("Cache-Control", "no-store");
            let varies = response.headers().get("Vary").any(|vary| {
                vary.split(',')
                    .any(|name| name.trim().eq_ignore_ascii_case("cookie") || name.trim() == "*")
            });
            if !varies {
                response.adjoin_raw_header("Vary", "Cookie");
            }
        }
    }

    fn session_cookie(&self, name: &str, value: String, max_age: Option<i64>) -> Cookie<'static> {
        let browser = &self.settings().browser;
        let same_site = match browser.same_site {
            SameSitePolicy::Lax => SameSite::Lax,
            SameSitePolicy::Strict => SameSite::Strict,
            SameSitePolicy::None => SameSite::None,
        };
        // Secure always, whatever Rocket knows of TLS: behind a TLS-terminating
        // proxy Rocket itself speaks plain HTTP.
        let mut cookie = Cookie::build((name.to_string(), value))
            .path("/")
            .secure(true)
            .http_only(true)
            .same_site(same_site)
            .build();
        // Shared with the domain's subdomains (`cookie_domain`); host-only
        // otherwise.
        if let Some(domain) = &browser.cookie_domain {
            cookie.set_domain(domain.clone());
        }
        if let Some(max_age) = max_age {
            cookie.set_max_age(rocket::time::Duration::seconds(max_age.max(0)));
        }
        cookie
    }

    /// The value of the pre-session cookie, set now when missing.
    pub(crate) fn pre_session_value(&self, jar: &CookieJar<'_>) -> String {
        let name = &self.settings().browser.csrf_cookie;
        if let Some(cookie) = jar.get(name) {
            if URL_SAFE_NO_PAD
                .decode(cookie.value())
                .is_ok_and(|bytes| bytes.len() == 16)
            {
                return cookie.value().to_string();
            }
        }
        let value = URL_SAFE_NO_PAD.encode(random_bytes::<16>());
        // It lives as long as the browser session.
        jar.add(self.session_cookie(name, value.clone(), None));
        value
    }
}
