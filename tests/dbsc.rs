//! Device Bound Session Credentials over HTTP, on every backend, with a
//! browser's side written from the W3C draft (tests/common/dbsc.rs): a
//! sign-in offers registration; the browser registers its key; from then on
//! the long-lived refresh cookie goes only to the DBSC refresh route, and
//! the short-lived access cookie is renewed only by a signature of the key
//! over a fresh challenge. Copied cookies stop working off the device.

mod common;

use std::sync::Arc;

use common::backend::Backend;
use common::dbsc::{challenge_of, registration_offer, DeviceKey, Jar};
use rocket::figment::Figment;
use rocket::http::{CookieJar, Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use rocket::{get, post, routes, State};
use rocket_sqlite_sessions::testing::TestHarness;
use rocket_sqlite_sessions::{AuthUser, ClientInfo, Error, Sessions};
use serde_json::{json, Value};

const ACCESS: &str = "__Host-access_token";
const REFRESH: &str = "__Host-refresh_token";
const BOUND_REFRESH: &str = "__Secure-dbsc_refresh";

#[post("/sign-in/<user>")]
async fn sign_in(sessions: &State<Sessions>, client: ClientInfo, jar: &CookieJar<'_>, user: &str) -> Result<(), Error> {
    let pair = sessions.login(user, json!({ "role": "member" }), &client).await?;
    sessions.set_cookies(jar, &pair);
    Ok(())
}

#[get("/whoami")]
fn whoami(user: AuthUser) -> rocket::serde::json::Json<Value> {
    rocket::serde::json::Json(json!({ "user_id": user.id, "device_bound": user.is_device_bound() }))
}

/// An app on `harness` and `backend`, DBSC on.
async fn app(harness: &TestHarness, backend: &Backend, configure: impl FnOnce(Figment) -> Figment) -> Client {
    let figment = configure(backend.configure(harness.figment()).merge(("sessions.dbsc", true)));
    let rocket = rocket::custom(figment)
        .attach(harness.fairing())
        .mount("/", routes![sign_in, whoami])
        .mount("/auth", rocket_sqlite_sessions::routes());
    Client::untracked(rocket).await.expect("the app launches")
}

/// A browser: its key and its cookies.
struct Browser {
    key: DeviceKey,
    jar: Jar,
}

impl Browser {
    fn new(key: DeviceKey) -> Browser {
        Browser {
            key,
            jar: Jar::default(),
        }
    }

    async fn post<'c>(&mut self, client: &'c Client, path: &str, headers: Vec<Header<'static>>) -> LocalResponse<'c> {
        let mut request = self.jar.attach(client.post(path.to_string()), path);
        for header in headers {
            request = request.header(header);
        }
        let response = request.dispatch().await;
        self.jar.take(&response);
        response
    }

    async fn whoami(&mut self, client: &Client) -> (Status, Value) {
        let response = self.jar.attach(client.get("/whoami"), "/whoami").dispatch().await;
        self.jar.take(&response);
        let status = response.status();
        (status, response.into_json().await.unwrap_or(Value::Null))
    }

    /// Signs in and registers: the session id and the refresh path.
    async fn sign_in_and_register(&mut self, client: &Client, user: &str) -> (String, String) {
        let signed_in = self.post(client, &format!("/sign-in/{user}"), vec![]).await;
        assert_eq!(signed_in.status(), Status::Ok);
        let (path, challenge) = registration_offer(&signed_in).expect("a sign-in offers registration");
        assert_eq!(path, "/auth/dbsc/register");
        let answer = self.key.registration(&challenge, &format!("http://app.test{path}"));
        let registered = self
            .post(client, &path, vec![Header::new("Secure-Session-Response", answer)])
            .await;
        assert_eq!(registered.status(), Status::Ok);
        assert!(challenge_of(&registered).is_some(), "a first refresh challenge");
        let instructions: Value = registered.into_json().await.unwrap();
        assert_eq!(instructions["refresh_url"], "/auth/dbsc/refresh");
        assert_eq!(instructions["credentials"][0]["name"], ACCESS);
        assert_eq!(instructions["credentials"][0]["type"], "cookie");
        assert_eq!(
            instructions["credentials"][0]["attributes"],
            "Path=/; Secure; HttpOnly; SameSite=Lax"
        );
        (
            instructions["session_identifier"].as_str().unwrap().to_string(),
            "/auth/dbsc/refresh".into(),
        )
    }

    /// A refresh as a browser makes it: without an answer, then answering
    /// the challenge given. The final answer.
    async fn refresh<'c>(&mut self, client: &'c Client, session_id: &str) -> LocalResponse<'c> {
        let path = "/auth/dbsc/refresh";
        let id = Header::new("Sec-Secure-Session-Id", format!("\"{session_id}\""));
        let asked = self.post(client, path, vec![id.clone()]).await;
        if asked.status() != Status::Forbidden {
            return asked;
        }
        let (challenge, named) = challenge_of(&asked).expect("403 comes with a challenge");
        assert_eq!(named, session_id);
        let answer = self.key.refresh(&challenge, &format!("http://app.test{path}"));
        self.post(client, path, vec![id, Header::new("Secure-Session-Response", answer)])
            .await
    }
}

/// A second registration challenge for the session of `jar`'s cookies: the
/// registration route without an answer gives one (403).
async fn challenge_of_registration(client: &Client, jar: &Jar, path: &str) -> String {
    let asked = jar.attach(client.post(path.to_string()), path).dispatch().await;
    assert_eq!(asked.status(), Status::Forbidden);
    challenge_of(&asked).expect("a registration challenge").0
}

macro_rules! dbsc_suite {
    ($backend:ident $(#[$skip:meta])*) => {
        mod $backend {
            use super::*;

            async fn start() -> (Arc<TestHarness>, Client) {
                let harness = Arc::new(TestHarness::new());
                let backend = Backend::$backend().await;
                let client = app(&harness, &backend, |figment| figment).await;
                (harness, client)
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn a_browser_registers_its_key_and_renews_its_cookie_only_by_signing_challenges() {
                for key in [DeviceKey::es256(), DeviceKey::rs256()] {
                    let (harness, client) = start().await;
                    let mut browser = Browser::new(key);
                    let (session_id, refresh_path) = browser.sign_in_and_register(&client, "alice").await;
                    // The long-lived cookie goes to the refresh route only.
                    assert!(browser.jar.get(REFRESH).is_none());
                    assert!(browser.jar.for_path("/whoami").iter().all(|(name, _)| name != BOUND_REFRESH));
                    assert!(browser.jar.for_path(&refresh_path).iter().any(|(name, _)| name == BOUND_REFRESH));
                    assert_eq!(browser.whoami(&client).await, (Status::Ok, json!({ "user_id": "alice", "device_bound": true })));
                    // Past the access cookie's life nothing renews it silently.
                    harness.clock().advance(901);
                    assert_eq!(browser.whoami(&client).await.0, Status::Unauthorized);
                    let renewed = browser.refresh(&client, &session_id).await;
                    assert_eq!(renewed.status(), Status::Ok);
                    assert!(challenge_of(&renewed).is_some(), "the next challenge comes with it");
                    assert_eq!(browser.whoami(&client).await, (Status::Ok, json!({ "user_id": "alice", "device_bound": true })));
                    // And again, later.
                    harness.clock().advance(901);
                    assert_eq!(browser.refresh(&client, &session_id).await.status(), Status::Ok);
                    assert_eq!(browser.whoami(&client).await.0, Status::Ok);
                }
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn copied_cookies_are_useless_off_the_device_and_the_thief_cannot_end_the_session() {
                let (harness, client) = start().await;
                let mut owner = Browser::new(DeviceKey::es256());
                let signed_in = owner.post(&client, "/sign-in/alice", vec![]).await;
                let before_binding = owner.jar.get(REFRESH).unwrap();
                let (path, challenge) = registration_offer(&signed_in).unwrap();
                let answer = owner.key.registration(&challenge, "http://app.test/auth/dbsc/register");
                drop(signed_in);
                let registered = owner.post(&client, &path, vec![Header::new("Secure-Session-Response", answer)]).await;
                let session_id = registered.into_json::<Value>().await.unwrap()["session_identifier"].as_str().unwrap().to_string();
                // An infostealer copies every cookie, then the access cookie expires.
                let mut thief = Browser::new(DeviceKey::es256());
                thief.jar = owner.jar.clone();
                harness.clock().advance(901);
                assert_eq!(thief.whoami(&client).await.0, Status::Unauthorized);
                // The bound refresh token, or the one from before binding, as
                // an ordinary refresh cookie: refused, nothing rotated.
                for stolen in [owner.jar.get(BOUND_REFRESH).unwrap(), before_binding] {
                    let mut hand = Jar::default();
                    hand.put(REFRESH, &stolen, "/");
                    let response = hand.attach(client.get("/whoami"), "/whoami").dispatch().await;
                    assert_eq!(response.status(), Status::Unauthorized);
                }
                // The refresh route, answering with its own key: no cookie.
                let answered = thief.refresh(&client, &session_id).await;
                assert_eq!(answered.status(), Status::Unauthorized);
                assert!(answered.headers().get_one("Set-Cookie").is_none());
                // The owner's device renews as before: the session was kept.
                assert_eq!(owner.refresh(&client, &session_id).await.status(), Status::Ok);
                assert_eq!(owner.whoami(&client).await.0, Status::Ok);
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn replayed_expired_or_foreign_challenges_get_no_cookie() {
                let (harness, client) = start().await;
                let mut browser = Browser::new(DeviceKey::es256());
                let (session_id, path) = browser.sign_in_and_register(&client, "alice").await;
                let id = Header::new("Sec-Secure-Session-Id", format!("\"{session_id}\""));
                let asked = browser.post(&client, &path, vec![id.clone()]).await;
                let (challenge, _) = challenge_of(&asked).unwrap();
                let answer = browser.key.refresh(&challenge, "http://app.test/auth/dbsc/refresh");
                let response = Header::new("Secure-Session-Response", answer.clone());
                assert_eq!(browser.post(&client, &path, vec![id.clone(), response.clone()]).await.status(), Status::Ok);
                // The same answer again (with the new refresh cookie): refused.
                let replayed = browser.post(&client, &path, vec![id.clone(), response]).await;
                assert_eq!(replayed.status(), Status::Unauthorized);
                assert!(replayed.headers().get_one("Set-Cookie").is_none());
                // A challenge older than five minutes: a new one is asked for.
                let asked = browser.post(&client, &path, vec![id.clone()]).await;
                let (old, _) = challenge_of(&asked).unwrap();
                harness.clock().advance(301);
                let late = browser.key.refresh(&old, "http://app.test/auth/dbsc/refresh");
                let refused = browser.post(&client, &path, vec![id.clone(), Header::new("Secure-Session-Response", late)]).await;
                assert_eq!(refused.status(), Status::Forbidden);
                assert!(refused.headers().get_one("Set-Cookie").is_none());
                // A challenge of another session.
                let mut other = Browser::new(DeviceKey::es256());
                let (other_id, _) = other.sign_in_and_register(&client, "bob").await;
                let asked = other.post(&client, &path, vec![Header::new("Sec-Secure-Session-Id", format!("\"{other_id}\""))]).await;
                let (foreign, _) = challenge_of(&asked).unwrap();
                let signed = browser.key.refresh(&foreign, "http://app.test/auth/dbsc/refresh");
                let refused = browser.post(&client, &path, vec![id.clone(), Header::new("Secure-Session-Response", signed)]).await;
                assert_eq!(refused.status(), Status::Forbidden);
                // The browser still renews with a fresh challenge.
                assert_eq!(browser.refresh(&client, &session_id).await.status(), Status::Ok);
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn one_answer_sent_eight_times_at_once_renews_once_and_registrations_bind_once() {
                let (_harness, client) = start().await;
                let mut browser = Browser::new(DeviceKey::es256());
                let (session_id, path) = browser.sign_in_and_register(&client, "alice").await;
                let id = Header::new("Sec-Secure-Session-Id", format!("\"{session_id}\""));
                let asked = browser.post(&client, &path, vec![id.clone()]).await;
                let (challenge, _) = challenge_of(&asked).unwrap();
                drop(asked);
                let answer = browser.key.refresh(&challenge, "http://app.test/auth/dbsc/refresh");
                let sent = (0..8).map(|_| {
                    browser
                        .jar
                        .attach(client.post(path.clone()), &path)
                        .header(id.clone())
                        .header(Header::new("Secure-Session-Response", answer.clone()))
                        .dispatch()
                });
                let answers = rocket::futures::future::join_all(sent).await;
                let renewed = answers.iter().filter(|answer| answer.status() == Status::Ok).count();
                assert_eq!(renewed, 1, "one answer, one renewal");
                // Two registrations of one session at once: one binds.
                let mut other = Browser::new(DeviceKey::es256());
                let signed_in = other.post(&client, "/sign-in/bob", vec![]).await;
                let (register, first) = registration_offer(&signed_in).unwrap();
                drop(signed_in);
                let second = challenge_of_registration(&client, &other.jar, &register).await;
                let keys = [DeviceKey::es256(), DeviceKey::es256()];
                let tries = keys.iter().zip([first, second]).map(|(key, challenge)| {
                    let answer = key.registration(&challenge, "http://app.test/auth/dbsc/register");
                    other
                        .jar
                        .attach(client.post(register.clone()), &register)
                        .header(Header::new("Secure-Session-Response", answer))
                        .dispatch()
                });
                let answers = rocket::futures::future::join_all(tries).await;
                let bound = answers.iter().filter(|answer| answer.status() == Status::Ok).count();
                assert_eq!(bound, 1, "a session binds once");
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn logging_out_everywhere_or_revoking_the_session_ends_the_bound_session() {
                let (_harness, client) = start().await;
                let sessions = client.rocket().state::<Sessions>().unwrap().clone();
                let mut browser = Browser::new(DeviceKey::es256());
                let (session_id, _) = browser.sign_in_and_register(&client, "alice").await;
                sessions.logout_all("alice").await.unwrap();
                assert_eq!(browser.whoami(&client).await.0, Status::Unauthorized);
                let ended = browser.refresh(&client, &session_id).await;
                assert_eq!(ended.status(), Status::Ok);
                let body: Value = ended.into_json().await.unwrap();
                assert_eq!(body, json!({ "session_identifier": session_id, "continue": false }));
                assert!(browser.jar.get(BOUND_REFRESH).is_none(), "the cookies are cleared");
                // A session revoked from the user's device list (or by an admin).
                let mut other = Browser::new(DeviceKey::es256());
                let (other_id, _) = other.sign_in_and_register(&client, "carol").await;
                sessions.revoke_session("carol", &other_id).await.unwrap();
                let ended: Value = other.refresh(&client, &other_id).await.into_json().await.unwrap();
                assert_eq!(ended["continue"], false);
                // A registration for an ended session binds nothing.
                let mut late = Browser::new(DeviceKey::es256());
                let signed_in = late.post(&client, "/sign-in/bob", vec![]).await;
                let (path, challenge) = registration_offer(&signed_in).unwrap();
                drop(signed_in);
                sessions.logout_all("bob").await.unwrap();
                let answer = late.key.registration(&challenge, "http://app.test/auth/dbsc/register");
                let refused = late.post(&client, &path, vec![Header::new("Secure-Session-Response", answer)]).await;
                assert_ne!(refused.status(), Status::Ok);
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn a_bad_registration_binds_nothing_and_a_session_binds_once() {
                let (_harness, client) = start().await;
                let mut browser = Browser::new(DeviceKey::es256());
                let signed_in = browser.post(&client, "/sign-in/alice", vec![]).await;
                let (path, challenge) = registration_offer(&signed_in).unwrap();
                drop(signed_in);
                let key = DeviceKey::es256();
                let mut private = key.jwk();
                private["d"] = json!("AAAA");
                let audience = "http://app.test/auth/dbsc/register";
                for bad in [
                    key.sign(&json!({ "alg": "HS256", "typ": "dbsc+jwt", "jwk": key.jwk() }), &json!({ "jti": challenge })),
                    key.sign(&json!({ "alg": "ES256", "typ": "jwt", "jwk": key.jwk() }), &json!({ "jti": challenge })),
                    key.sign(&json!({ "alg": "ES256", "typ": "dbsc+jwt", "jwk": private }), &json!({ "jti": challenge })),
                    DeviceKey::es256().sign(&json!({ "alg": "ES256", "typ": "dbsc+jwt", "jwk": key.jwk() }), &json!({ "jti": challenge })),
                    "x".repeat(1 << 16),
                ] {
                    let refused = browser.post(&client, &path, vec![Header::new("Secure-Session-Response", bad)]).await;
                    assert_eq!(refused.status(), Status::Unauthorized);
                }
                let made_up = key.registration("made-up-challenge", audience);
                let refused = browser.post(&client, &path, vec![Header::new("Secure-Session-Response", made_up)]).await;
                assert_eq!(refused.status(), Status::Forbidden, "a new challenge is given");
                let (fresh, _) = challenge_of(&refused).unwrap();
                // The key from the payload's `key` claim, as earlier drafts put it.
                let answer = key.sign(&json!({ "alg": "ES256", "typ": "dbsc+jwt" }), &json!({ "jti": fresh, "key": key.jwk() }));
                let registered = browser.post(&client, &path, vec![Header::new("Secure-Session-Response", answer)]).await;
                assert_eq!(registered.status(), Status::Ok);
                assert_eq!(browser.whoami(&client).await.1["device_bound"], true);
            }
        }
    };
}

dbsc_suite!(sqlite);
dbsc_suite!(postgres #[cfg_attr(
    not(postgres_server),
    ignore = "needs PostgreSQL: --features postgres and ROCKET_SESSIONS_TEST_POSTGRES (see testsuite/build.rs)"
)]);
dbsc_suite!(pgbouncer #[cfg_attr(
    not(pgbouncer_server),
    ignore = "needs PgBouncer: --features postgres and ROCKET_SESSIONS_TEST_PGBOUNCER (see testsuite/build.rs)"
)]);

/// Two processes on one SQLite file: the key is in the store and the
/// challenges need none, so a browser registered on one renews on the
/// other; an answer accepted on one, played to the other with the cookie it
/// came with, is reuse there, and the session ends.
#[rocket::async_test]
async fn two_processes_share_the_bound_session() {
    let harness = Arc::new(TestHarness::new());
    let first = app(&harness, &Backend::Sqlite, |figment| figment).await;
    let second = app(&harness, &Backend::Sqlite, |figment| figment).await;
    let mut browser = Browser::new(DeviceKey::es256());
    let (session_id, path) = browser.sign_in_and_register(&first, "alice").await;
    assert_eq!(browser.refresh(&second, &session_id).await.status(), Status::Ok);
    assert_eq!(browser.whoami(&first).await.0, Status::Ok);
    // Capture one refresh on the first process and play it to the second.
    let id = Header::new("Sec-Secure-Session-Id", format!("\"{session_id}\""));
    let asked = browser.post(&first, &path, vec![id.clone()]).await;
    let (challenge, _) = challenge_of(&asked).unwrap();
    let answer = Header::new("Secure-Session-Response", browser.key.refresh(&challenge, "x"));
    let captured = browser.jar.clone();
    assert_eq!(
        browser
            .post(&first, &path, vec![id.clone(), answer.clone()])
            .await
            .status(),
        Status::Ok
    );
    harness.clock().advance(11);
    let mut replayer = Browser::new(DeviceKey::es256());
    replayer.jar = captured;
    let replayed = replayer.post(&second, &path, vec![id, answer]).await;
    assert!(replayed
        .headers()
        .get("Set-Cookie")
        .all(|cookie| cookie.contains("Max-Age=0")));
    let body: Value = replayed.into_json().await.unwrap();
    assert_eq!(body["continue"], false, "reuse ends the session: {body}");
    let ended: Value = browser.refresh(&first, &session_id).await.into_json().await.unwrap();
    assert_eq!(ended["continue"], false);
}

/// A browser without DBSC ignores the offer: its session works as before,
/// renewed silently from its refresh cookie, and is not device-bound.
#[rocket::async_test]
async fn a_browser_without_dbsc_keeps_the_silent_refresh() {
    let harness = Arc::new(TestHarness::new());
    let client = app(&harness, &Backend::Sqlite, |figment| figment).await;
    let mut browser = Browser::new(DeviceKey::es256());
    let signed_in = browser.post(&client, "/sign-in/alice", vec![]).await;
    assert!(registration_offer(&signed_in).is_some());
    drop(signed_in);
    for _ in 0..3 {
        harness.clock().advance(901);
        assert_eq!(
            browser.whoami(&client).await,
            (Status::Ok, json!({ "user_id": "alice", "device_bound": false }))
        );
    }
}

/// What clients without a session send grows nothing: 300 registrations and
/// refreshes with junk (no cookie, forged cookies, random session ids,
/// garbage answers) bind no session, write no row and answer no 5xx.
#[rocket::async_test]
async fn junk_from_clients_without_a_session_binds_and_writes_nothing() {
    let harness = Arc::new(TestHarness::new());
    let client = app(&harness, &Backend::Sqlite, |figment| figment).await;
    let rows = || {
        let connection = rusqlite::Connection::open(harness.database()).unwrap();
        connection
            .query_row("SELECT count(*), count(dbsc_jkt) FROM sessions", [], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
            })
            .unwrap()
    };
    let before = rows();
    let key = DeviceKey::es256();
    for n in 0..300 {
        let mut jar = Jar::default();
        if n % 3 == 0 {
            jar.put(REFRESH, &"A".repeat(96), "/");
            jar.put(BOUND_REFRESH, &format!("junk{n}"), "/auth/dbsc/refresh");
        }
        let answer = key.registration(&format!("challenge-{n}"), "x");
        for path in ["/auth/dbsc/register", "/auth/dbsc/refresh"] {
            let request = jar
                .attach(client.post(path), path)
                .header(Header::new(
                    "Sec-Secure-Session-Id",
                    format!("\"{}\"", "s".repeat(n % 70)),
                ))
                .header(Header::new(
                    "Secure-Session-Response",
                    if n % 2 == 0 { answer.clone() } else { "x".repeat(n * 10) },
                ));
            let status = request.dispatch().await.status();
            assert!(status.code < 500, "{path}: {status}");
        }
    }
    assert_eq!(rows(), before);
}
