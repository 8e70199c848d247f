//! A browser for an app's tests (`testing::Browser`): several of them on one
//! Rocket local client, each with its own cookie jar, user agent and client
//! address, as real browsers would be. Here because it speaks HTTP; the
//! `testing` module gives it to apps.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;

use rocket::http::{ContentType, Cookie, Header, Status};
use rocket::local::asynchronous::{Client, LocalRequest, LocalResponse};

use super::CSRF_FIELD;

/// One browser: its own cookie jar, a `User-Agent`, a client address, and the
/// CSRF token of the last page it read.
///
/// Rocket's local [`Client`] has one cookie jar for every request, and its
/// requests carry no client address unless one is set. A `Browser` sends
/// each request through the same client with its own cookies, applies the
/// answer's `Set-Cookie` headers as a browser does (a cookie set to expire
/// is removed), and remembers the `csrf_token` field of the last page, which
/// [`Browser::submit`] sends back. Make the client with
/// [`Client::untracked`], so that it keeps no cookies of its own.
///
/// ```
/// use rocket::http::Status;
/// use rocket::local::asynchronous::Client;
/// use rocket_sqlite_sessions::testing::{Browser, TestHarness};
///
/// # rocket::async_test(async {
/// let harness = TestHarness::new();
/// let client = Client::untracked(harness.rocket()).await.unwrap();
/// let laptop = Browser::new("Firefox/140").at("192.0.2.1".parse().unwrap());
/// let phone = Browser::new("Safari/18 (iPhone)").at("192.0.2.2".parse().unwrap());
/// // … laptop.get(&client, "/login"), laptop.submit(&client, "/login", &[…]) …
/// assert_eq!(laptop.get(&client, "/nowhere").await.status, Status::NotFound);
/// assert_eq!(phone.cookie("__Host-access_token"), None);
/// # });
/// ```
pub struct Browser {
    jar: Mutex<BTreeMap<String, String>>,
    user_agent: String,
    address: SocketAddr,
    csrf_token: Mutex<Option<String>>,
}

/// What a [`Browser`] got for one request: a redirect is not followed.
#[derive(Debug, Clone)]
pub struct Page {
    /// The answer's status.
    pub status: Status,
    /// Its `Location` header, for a redirect.
    pub location: Option<String>,
    /// Its body (empty when it was not UTF-8).
    pub body: String,
}

impl Browser {
    /// A browser sending `User-Agent: user_agent` from 127.0.0.1, with an
    /// empty cookie jar.
    pub fn new(user_agent: &str) -> Browser {
        Browser {
            jar: Mutex::default(),
            user_agent: user_agent.to_string(),
            address: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            csrf_token: Mutex::default(),
        }
    }

    /// This browser, its requests coming from `address` (what
    /// [`ClientInfo`](crate::ClientInfo) sees when no proxy is trusted).
    pub fn at(mut self, address: IpAddr) -> Browser {
        self.address = SocketAddr::new(address, 0);
        self
    }

    /// Sends `request` (made on the browser's client) with this browser's
    /// cookies, user agent and address, and keeps the cookies it sets.
    pub async fn send<'c>(&self, request: LocalRequest<'c>) -> LocalResponse<'c> {
        let cookies: Vec<Cookie<'static>> = {
            let jar = self.jar.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            jar.iter()
                .map(|(name, value)| Cookie::new(name.clone(), value.clone()))
                .collect()
        };
        let response = request
            .header(Header::new("User-Agent", self.user_agent.clone()))
            .remote(self.address)
            .cookies(cookies)
            .dispatch()
            .await;
        let mut jar = self.jar.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for set in response.headers().get("Set-Cookie") {
            let Ok(cookie) = Cookie::parse(set.to_string()) else {
                continue;
            };
            let expired = cookie.max_age().is_some_and(|age| age.is_zero())
                || cookie.value().is_empty()
                || cookie
                    .expires_datetime()
                    .is_some_and(|at| at.unix_timestamp() <= chrono::Utc::now().timestamp());
            if expired {
                jar.remove(cookie.name());
            } else {
                jar.insert(cookie.name().to_string(), cookie.value().to_string());
            }
        }
        response
    }

    /// `GET uri`, remembering the page's CSRF token if it has one.
    pub async fn get(&self, client: &Client, uri: &str) -> Page {
        let page = read(self.send(client.get(uri.to_string())).await).await;
        self.remember_csrf_token(&page.body);
        page
    }

    /// Posts `fields` to `uri` as a url-encoded form, with the CSRF token of
    /// the last page this browser read (if any) as its first field, and
    /// remembers the answer's CSRF token if it has one.
    pub async fn submit(&self, client: &Client, uri: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.csrf_token();
        let form: Vec<String> = token
            .iter()
            .map(|token| (CSRF_FIELD, token.as_str()))
            .chain(fields.iter().copied())
            .map(|(name, value)| format!("{}={}", form_encode(name), form_encode(value)))
            .collect();
        let request = client
            .post(uri.to_string())
            .header(ContentType::Form)
            .body(form.join("&"));
        let page = read(self.send(request).await).await;
        self.remember_csrf_token(&page.body);
        page
    }

    /// The value of this browser's cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(name)
            .cloned()
    }

    /// The `csrf_token` field of the last page read that had one.
    pub fn csrf_token(&self) -> Option<String> {
        self.csrf_token
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn remember_csrf_token(&self, html: &str) {
        if let Some(token) = csrf_field_in(html) {
            *self.csrf_token.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(token);
        }
    }
}

async fn read(response: LocalResponse<'_>) -> Page {
    let status = response.status();
    let location = response.headers().get_one("Location").map(str::to_string);
    let body = response.into_string().await.unwrap_or_default();
    Page { status, location, body }
}

/// The value of the first `<input>` named `csrf_token` in `html`.
fn csrf_field_in(html: &str) -> Option<String> {
    let named = format!(r#"name="{CSRF_FIELD}""#);
    html.split("<input").skip(1).find_map(|tag| {
        let tag = &tag[..tag.find('>')?];
        if !tag.contains(&named) {
            return None;
        }
        let start = tag.find(r#"value=""#)? + r#"value=""#.len();
        let end = start + tag[start..].find('"')?;
        Some(tag[start..end].to_string())
    })
}

/// `text` for a url-encoded form: unreserved characters as they are, every
/// other byte as `%XX`.
fn form_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_field_is_found_whatever_the_attribute_order() {
        let html =
            r#"<form><input type="text" name="username"><input type="hidden" value="a-b_c" name="csrf_token"></form>"#;
        assert_eq!(csrf_field_in(html).as_deref(), Some("a-b_c"));
        assert_eq!(csrf_field_in("<p>no form</p>"), None);
    }

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(form_encode("a b&c=d+é"), "a%20b%26c%3Dd%2B%C3%A9");
    }
}
