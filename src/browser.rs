//! Browser apps: tokens in `__Host-` cookies, silent refresh, CSRF protection.
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
//! cookies itself (a login or a logout); and any response that sets them gets
//! `Cache-Control: no-store` and `Vary: Cookie`.
//!
//! Unsafe requests (anything but GET, HEAD, OPTIONS, TRACE) authenticated by
//! cookie must come from the app's own origin (`Sec-Fetch-Site` not
//! `cross-site`, `Origin` the app's own, scheme and port included, when sent)
//! and carry the session's CSRF token in the `X-CSRF-Token` header or a
//! `csrf_token` field among the complete fields in the first 512 bytes of a
//! url-encoded form (percent-decoded). The field of a multipart form is not
//! read: such forms need the header. The token is an HMAC of the session id
//! under a key derived from the signing key; it is not the JWT key. It is
//! checked before any silent refresh. Failures answer 403.

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
/// The form field that may carry a CSRF token, in a url-encoded form: among the
/// complete fields of the first 512 bytes of the body (first is safest).
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
/// url-encoded form body, percent-decoded.
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
    let decode = |text: &str| {
        rocket::http::RawStr::new(text)
            .url_decode()
            .ok()
            .map(|text| text.into_owned())
    };
    fields
        .into_iter()
        .filter_map(|field| field.split_once('='))
        .find(|(name, _)| decode(name).as_deref() == Some(CSRF_FIELD))
        .and_then(|(_, value)| decode(value))
}

/// The cookie changes the guard decided for a request, written by the
/// fairing's response hook.
pub(crate) struct SessionCookies(pub(crate) Option<CookieChange>);

/// A change to the session cookies.
pub(crate) enum CookieChange {
    /// A silent refresh: the new pair.
    Set(TokenPair),
    /// The session is over: stop the browser sending dead cookies.
    Clear,
}

/// An origin, normalised: scheme and host in lower case, the port explicit.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// `host[:port]` (IPv6 hosts in brackets), the port `default` when absent.
fn host_and_port(authority: &str, default: u16) -> Option<(String, u16)> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => default,
    };
    (!host.is_empty() && !host.contains(['/', '?', '#', '@', ' '])).then(|| (host.to_ascii_lowercase(), port))
}

/// Whether `text` is an origin `allowed_origins` can hold:
/// `http(s)://host[:port]`.
pub(crate) fn is_origin(text: &str) -> bool {
    parse_origin(text).is_some()
}

/// An `Origin` header's value (or an `allowed_origins` entry) read; `None`
/// for `null` and anything else that is not `http(s)://host[:port]`.
fn parse_origin(text: &str) -> Option<Origin> {
    let (scheme, authority) = text.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let (host, port) = host_and_port(authority, default_port(&scheme)?)?;
    Some(Origin { scheme, host, port })
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
        for cookie in self.cookies_for(&CookieChange::Set(pair.clone())) {
            jar.add(cookie);
        }
    }

    /// Expires both session cookies (same name, path and attributes, `Max-Age=0`),
    /// for logout in the browser.
    pub fn clear_cookies(&self, jar: &CookieJar<'_>) {
        for cookie in self.cookies_for(&CookieChange::Clear) {
            jar.add(cookie);
        }
    }

    /// The two session cookies for `change`.
    fn cookies_for(&self, change: &CookieChange) -> [Cookie<'static>; 2] {
        let settings = &self.inner.settings;
        let (access, refresh) = (&settings.access_cookie, &settings.refresh_cookie);
        match change {
            // A session-only login's cookies get no Max-Age: the browser
            // forgets them when it closes.
            CookieChange::Set(pair) => [
                self.session_cookie(
                    access,
                    pair.access_token.clone(),
                    pair.persistent.then_some(pair.expires_in),
                ),
                self.session_cookie(
                    refresh,
                    pair.refresh_token.clone(),
                    pair.persistent.then_some(pair.refresh_expires_in),
                ),
            ],
            CookieChange::Clear => [
                self.session_cookie(access, String::new(), Some(0)),
                self.session_cookie(refresh, String::new(), Some(0)),
            ],
        }
    }

    /// Writes the guard's cookie change for `request` into `response` (see the
    /// module docs), and keeps any response that sets the session cookies out
    /// of caches.
    pub(crate) fn finish_cookies<'r>(&self, request: &'r Request<'_>, response: &mut rocket::Response<'r>) {
        let settings = &self.inner.settings;
        let sets_ours = |response: &rocket::Response<'_>| {
            response.headers().get("Set-Cookie").any(|header| {
                Cookie::parse(header).is_ok_and(|cookie| {
                    cookie.name() == settings.access_cookie || cookie.name() == settings.refresh_cookie
                })
            })
        };
        let mut sets_them = sets_ours(response);
        if !sets_them {
            if let Some(change) = &request.local_cache(|| SessionCookies(None)).0 {
                for cookie in self.cookies_for(change) {
                    response.adjoin_header(cookie);
                }
                sets_them = true;
            }
        }
        if sets_them {
            response.set_raw_header("Cache-Control", "no-store");
            response.adjoin_raw_header("Vary", "Cookie");
        }
    }

    fn session_cookie(&self, name: &str, value: String, max_age: Option<i64>) -> Cookie<'static> {
        let same_site = match self.inner.settings.same_site {
            SameSitePolicy::Lax => SameSite::Lax,
            SameSitePolicy::Strict => SameSite::Strict,
        };
        // Secure always, whatever Rocket knows of TLS: behind a TLS-terminating
        // proxy Rocket itself speaks plain HTTP.
        let mut cookie = Cookie::build((name.to_string(), value))
            .path("/")
            .secure(true)
            .http_only(true)
            .same_site(same_site)
            .build();
        if let Some(max_age) = max_age {
            cookie.set_max_age(rocket::time::Duration::seconds(max_age.max(0)));
        }
        cookie
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
    /// Without `allowed_origins`, the origin must be the request's own: the
    /// `Host` (its port, or the scheme's default) and the scheme, when known
    /// (Rocket's TLS, or a trusted proxy's word); when nothing says which
    /// scheme the client used, `http` and `https` both pass.
    pub(crate) fn check_origin(&self, request: &Request<'_>) -> Result<(), CsrfRefusal> {
        let headers = request.headers();
        if headers.get_one("Sec-Fetch-Site") == Some("cross-site") {
            return Err(CsrfRefusal::CrossSite);
        }
        let Some(origin) = headers.get_one("Origin") else {
            return Ok(());
        };
        let Some(origin) = parse_origin(origin) else {
            return Err(CsrfRefusal::ForeignOrigin);
        };
        let allowed = &self.inner.settings.allowed_origins;
        let own = if allowed.is_empty() {
            let scheme_is_ours = crate::client::request_scheme(request).is_none_or(|scheme| scheme == origin.scheme);
            let default = default_port(&origin.scheme).unwrap_or(0);
            scheme_is_ours
                && headers
                    .get_one("Host")
                    .and_then(|host| host_and_port(host, default))
                    .is_some_and(|(host, port)| host == origin.host && port == origin.port)
        } else {
            allowed
                .iter()
                .filter_map(|allowed| parse_origin(allowed))
                .any(|allowed| allowed == origin)
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
        // It lives as long as the browser session.
        jar.add(self.session_cookie(name, value.clone(), None));
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

impl rocket::Sentinel for CsrfToken {
    fn abort(rocket: &rocket::Rocket<rocket::Ignite>) -> bool {
        crate::guard::fairing_missing(rocket, "CsrfToken")
    }
}

impl rocket::Sentinel for CsrfProtected {
    fn abort(rocket: &rocket::Rocket<rocket::Ignite>) -> bool {
        crate::guard::fairing_missing(rocket, "CsrfProtected")
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
    fn origins_are_compared_with_scheme_and_port() {
        let origin = |text| parse_origin(text);
        assert_eq!(origin("HTTPS://App.Example"), origin("https://app.example:443"));
        assert_ne!(origin("http://app.example"), origin("https://app.example"));
        assert_ne!(origin("https://app.example:8443"), origin("https://app.example"));
        assert_eq!(origin("http://[::1]:8000").map(|o| o.host), Some("::1".into()));
        for bad in [
            "null",
            "ftp://app.example",
            "https://",
            "https://a/b",
            "https://a:port",
            "app.example",
        ] {
            assert_eq!(origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_csrf_field_is_found_only_among_complete_leading_fields() {
        assert_eq!(csrf_field_of(b"csrf_token=abc&username=x").as_deref(), Some("abc"));
        assert_eq!(
            csrf_field_of(b"a=1&csrf%5Ftoken=%41bc").as_deref(),
            Some("Abc"),
            "percent-decoded"
        );
        assert_eq!(csrf_field_of(b"username=x&csrf_token=abc").as_deref(), Some("abc"));
        assert_eq!(csrf_field_of(b"username=x").as_deref(), None);
        let mut long = b"username=".to_vec();
        long.extend(std::iter::repeat_n(b'x', CSRF_PEEK_BYTES - 30));
        long.extend(b"&csrf_token=abcdefghijklmnop");
        long.truncate(CSRF_PEEK_BYTES);
        assert_eq!(csrf_field_of(&long), None, "a field cut by the peek is not trusted");
    }
}
