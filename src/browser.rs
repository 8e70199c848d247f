//! Browser apps: tokens in `__Host-` cookies, silent refresh, CSRF protection.
//!
//! A request with an `Authorization` header is judged by it alone. Without one,
//! [`AuthUser`](crate::AuthUser) reads the access cookie; when that is missing or
//! expired and the refresh cookie is valid, it rotates the pair, sets both
//! cookies on the response and lets the request through (racing requests get
//! the same successor within the refresh token's grace window, so none of them
//! logs the user out).
//!
//! Unsafe requests (anything but GET, HEAD, OPTIONS, TRACE) authenticated by
//! cookie must come from the app's own origin (`Sec-Fetch-Site` not
//! `cross-site`, `Origin` the app's own when sent) and carry the session's CSRF
//! token in the `X-CSRF-Token` header or a `csrf_token` form field, which must be
//! the form's first field. The token is an HMAC of the session id under a key
//! derived from the signing key; it is not the JWT key. Failures answer 403.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rocket::http::{Cookie, CookieJar, Method, SameSite};
use rocket::request::{FromRequest, Outcome, Request};
use sha2::Sha256;

use crate::config::SameSitePolicy;
use crate::error::Error;
use crate::manager::{Sessions, TokenPair};
use crate::token::random_bytes;

/// The header that may carry a CSRF token.
pub const CSRF_HEADER: &str = "X-CSRF-Token";
/// The form field that may carry a CSRF token: it must be the form's first field.
pub const CSRF_FIELD: &str = "csrf_token";
/// How much of a form body is looked at for the CSRF field.
pub(crate) const CSRF_PEEK_BYTES: usize = 512;

/// What a CSRF token is bound to.
#[derive(Clone, Copy)]
pub(crate) enum CsrfBinding<'a> {
    /// A signed-in session.
    Session(&'a str),
    /// The random value of the pre-session cookie (login forms).
    PreSession(&'a str),
}

impl CsrfBinding<'_> {
    fn message(&self) -> Vec<u8> {
        match self {
            CsrfBinding::Session(id) => [b"session\0".as_slice(), id.as_bytes()].concat(),
            CsrfBinding::PreSession(value) => [b"pre-session\0".as_slice(), value.as_bytes()].concat(),
        }
    }
}

/// A key for CSRF tokens, derived from a signing key.
pub(crate) fn csrf_key(signing_secret: &[u8]) -> [u8; 32] {
    crate::token::derive_key(signing_secret, b"rocket_sqlite_sessions csrf key")
}

fn csrf_mac(key: &[u8; 32], binding: CsrfBinding<'_>) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&binding.message());
    mac
}

/// Why a cookie-authenticated unsafe request was refused: for the debug log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CsrfRefusal {
    CrossSite,
    ForeignOrigin,
    MissingToken,
    WrongToken,
}

impl std::fmt::Display for CsrfRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CsrfRefusal::CrossSite => "Sec-Fetch-Site is cross-site",
            CsrfRefusal::ForeignOrigin => "the Origin is not the app's own",
            CsrfRefusal::MissingToken => "no CSRF token",
            CsrfRefusal::WrongToken => "the CSRF token is not this session's",
        })
    }
}

/// The `csrf_token` field found at the start of a form body by the fairing.
pub(crate) struct PeekedCsrfField(pub(crate) Option<String>);

/// Whether `method` may change state, so needs CSRF protection.
pub(crate) fn is_unsafe(method: Method) -> bool {
    !matches!(method, Method::Get | Method::Head | Method::Options | Method::Trace)
}

/// The `csrf_token` value among the complete fields at the start of a
/// url-encoded form body.
pub(crate) fn csrf_field_of(form_prefix: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(form_prefix).ok().or_else(|| {
        // The peek may cut a multi-byte character: keep the valid start.
        let valid = std::str::from_utf8(form_prefix).unwrap_err().valid_up_to();
        std::str::from_utf8(&form_prefix[..valid]).ok()
    })?;
    let mut fields: Vec<&str> = text.split('&').collect();
    if form_prefix.len() >= CSRF_PEEK_BYTES {
        fields.pop(); // possibly cut short
    }
    fields
        .into_iter()
        .filter_map(|field| field.split_once('='))
        .find(|(name, _)| *name == CSRF_FIELD)
        .map(|(_, value)| value.to_string())
}

impl Sessions {
    /// Puts `pair` in the session cookies: `__Host-` names by default, `Secure`,
    /// `HttpOnly`, `SameSite` as configured, `Path=/`, no `Domain`, `Max-Age` the
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
        let settings = &self.inner.settings;
        jar.add(self.session_cookie(&settings.access_cookie, pair.access_token.clone(), pair.expires_in));
        jar.add(self.session_cookie(
            &settings.refresh_cookie,
            pair.refresh_token.clone(),
            pair.refresh_expires_in,
        ));
    }

    /// Expires both session cookies (same name, path and attributes, `Max-Age=0`),
    /// for logout in the browser.
    pub fn clear_cookies(&self, jar: &CookieJar<'_>) {
        let settings = &self.inner.settings;
        for name in [&settings.access_cookie, &settings.refresh_cookie] {
            jar.add(self.session_cookie(name, String::new(), 0));
        }
    }

    fn session_cookie(&self, name: &str, value: String, max_age: i64) -> Cookie<'static> {
        let same_site = match self.inner.settings.same_site {
            SameSitePolicy::Lax => SameSite::Lax,
            SameSitePolicy::Strict => SameSite::Strict,
        };
        // Secure always, whatever Rocket knows of TLS: behind a TLS-terminating
        // proxy Rocket itself speaks plain HTTP.
        Cookie::build((name.to_string(), value))
            .path("/")
            .secure(true)
            .http_only(true)
            .same_site(same_site)
            .max_age(rocket::time::Duration::seconds(max_age.max(0)))
            .build()
    }

    /// The CSRF token of a signed-in session, for pages to put in forms
    /// (`csrf_token`) or scripts to send (`X-CSRF-Token`). The
    /// [`CsrfToken`] guard gives it to handlers.
    pub fn csrf_token(&self, session_id: &str) -> String {
        self.csrf_token_for(CsrfBinding::Session(session_id))
    }

    pub(crate) fn csrf_token_for(&self, binding: CsrfBinding<'_>) -> String {
        URL_SAFE_NO_PAD.encode(csrf_mac(&self.inner.csrf_keys[0], binding).finalize().into_bytes())
    }

    /// Whether `presented` is the CSRF token of `binding` under any current key
    /// (compared in constant time).
    pub(crate) fn csrf_token_matches(&self, binding: CsrfBinding<'_>, presented: &str) -> bool {
        let Ok(presented) = URL_SAFE_NO_PAD.decode(presented) else {
            return false;
        };
        self.inner
            .csrf_keys
            .iter()
            .any(|key| csrf_mac(key, binding).verify_slice(&presented).is_ok())
    }

    /// The same-origin part of CSRF protection: `Sec-Fetch-Site` and `Origin`.
    pub(crate) fn check_origin(&self, request: &Request<'_>) -> Result<(), CsrfRefusal> {
        let headers = request.headers();
        if headers.get_one("Sec-Fetch-Site") == Some("cross-site") {
            return Err(CsrfRefusal::CrossSite);
        }
        let Some(origin) = headers.get_one("Origin") else {
            return Ok(());
        };
        let allowed = &self.inner.settings.allowed_origins;
        let own = if allowed.is_empty() {
            let host = headers.get_one("Host");
            origin
                .split_once("://")
                .is_some_and(|(_, authority)| host.is_some_and(|host| authority.eq_ignore_ascii_case(host)))
        } else {
            allowed.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin))
        };
        if own {
            Ok(())
        } else {
            Err(CsrfRefusal::ForeignOrigin)
        }
    }

    /// The CSRF token a request presents, from the header or the form field.
    pub(crate) fn presented_csrf_token<'r>(request: &'r Request<'_>) -> Option<&'r str> {
        request
            .headers()
            .get_one(CSRF_HEADER)
            .or_else(|| request.local_cache(|| PeekedCsrfField(None)).0.as_deref())
    }

    /// The value of the pre-session cookie, set now when missing.
    pub(crate) fn pre_session_value(&self, jar: &CookieJar<'_>) -> String {
        let name = &self.inner.settings.csrf_cookie;
        if let Some(cookie) = jar.get(name) {
            if URL_SAFE_NO_PAD
                .decode(cookie.value())
                .is_ok_and(|bytes| bytes.len() == 16)
            {
                return cookie.value().to_string();
            }
        }
        let value = URL_SAFE_NO_PAD.encode(random_bytes::<16>());
        let mut cookie = self.session_cookie(name, value.clone(), 0);
        cookie.set_max_age(None); // lives as long as the browser session
        jar.add(cookie);
        value
    }
}

/// The CSRF token to put in a page's forms: the session's when signed in, else
/// one bound to a pre-session cookie (set now if missing), so login forms are
/// protected too.
///
/// ```
/// # use rocket::get;
/// # use rocket::response::content::RawHtml;
/// use rocket_sqlite_sessions::CsrfToken;
///
/// #[get("/login")]
/// fn login_form(csrf: CsrfToken) -> RawHtml<String> {
///     RawHtml(format!(
///         r#"<form method="post" action="/login">
///              <input type="hidden" name="csrf_token" value="{}">
///              <input name="username"> <input name="password" type="password">
///            </form>"#,
///         csrf.as_str()
///     ))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct CsrfToken(String);

impl CsrfToken {
    /// The token, base64url: safe in an HTML attribute and a header.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for CsrfToken {
    type Error = Error;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let sessions = match crate::guard::managed(request) {
            Ok(sessions) => sessions,
            Err(failure) => return Outcome::Error(failure),
        };
        let token = match crate::guard::verdict(request, sessions).await {
            crate::guard::Verdict::User(user) => sessions.csrf_token(&user.session_id),
            _ => {
                let value = sessions.pre_session_value(request.cookies());
                sessions.csrf_token_for(CsrfBinding::PreSession(&value))
            }
        };
        Outcome::Success(CsrfToken(token))
    }
}

/// A request guard for unsafe routes without [`AuthUser`](crate::AuthUser),
/// such as a login form's `POST`: the request comes from the app's own origin
/// and carries a CSRF token of the signed-in session or of the pre-session
/// cookie. Fails with 403.
#[derive(Debug, Clone, Copy)]
pub struct CsrfProtected;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for CsrfProtected {
    type Error = Error;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let sessions = match crate::guard::managed(request) {
            Ok(sessions) => sessions,
            Err(failure) => return Outcome::Error(failure),
        };
        let refused = |reason: CsrfRefusal| {
            log::debug!(
                "rocket_sqlite_sessions: {} {}: CSRF check failed: {reason}",
                request.method(),
                request.uri().path()
            );
            crate::guard::mark_refused(request, rocket::http::Status::Forbidden);
            Outcome::Error((rocket::http::Status::Forbidden, Error::CsrfRefused))
        };
        if let Err(reason) = sessions.check_origin(request) {
            return refused(reason);
        }
        let Some(presented) = Sessions::presented_csrf_token(request) else {
            return refused(CsrfRefusal::MissingToken);
        };
        let pre_session = request
            .cookies()
            .get(&sessions.inner.settings.csrf_cookie)
            .map(|c| c.value().to_string());
        let by_pre_session = pre_session
            .as_deref()
            .is_some_and(|value| sessions.csrf_token_matches(CsrfBinding::PreSession(value), presented));
        let by_session = || async {
            match crate::guard::verdict(request, sessions).await {
                crate::guard::Verdict::User(user) => {
                    sessions.csrf_token_matches(CsrfBinding::Session(&user.session_id), presented)
                }
                _ => false,
            }
        };
        if by_pre_session || by_session().await {
            Outcome::Success(CsrfProtected)
        } else {
            refused(CsrfRefusal::WrongToken)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_field_is_found_only_among_complete_leading_fields() {
        assert_eq!(csrf_field_of(b"csrf_token=abc&username=x").as_deref(), Some("abc"));
        assert_eq!(csrf_field_of(b"username=x&csrf_token=abc").as_deref(), Some("abc"));
        assert_eq!(csrf_field_of(b"username=x").as_deref(), None);
        let mut long = b"username=".to_vec();
        long.extend(std::iter::repeat_n(b'x', CSRF_PEEK_BYTES - 30));
        long.extend(b"&csrf_token=abcdefghijklmnop");
        long.truncate(CSRF_PEEK_BYTES);
        assert_eq!(csrf_field_of(&long), None, "a field cut by the peek is not trusted");
    }
}
