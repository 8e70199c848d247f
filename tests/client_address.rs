//! The client's address: the socket's peer, unless a configured trusted proxy
//! forwarded the request; then the right-most address it did not vouch for.

mod common;

use std::net::SocketAddr;

use common::{tokens_of, App};
use rocket::figment::Figment;
use rocket::http::{Header, Status};
use rocket::{post, routes, State};
use rocket_sqlite_sessions::{ClientInfo, Error, Sessions};
use serde_json::Value;

fn peer(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 40_000)
}

/// Logs alice in from `from` with `headers`; returns the IP her device list
/// shows for that session.
async fn recorded_ip(app: &App, from: &str, headers: &[(&'static str, &'static str)]) -> Value {
    let mut request = app.client.post("/login/alice").remote(peer(from));
    for (name, value) in headers {
        request = request.header(Header::new(*name, *value));
    }
    let response = request.dispatch().await;
    assert_eq!(response.status(), Status::Ok);
    let tokens = tokens_of(response).await;
    let listed = app.sessions(&tokens.access).await;
    let current = listed.iter().find(|s| s["current"] == true).unwrap();
    current["ip"].clone()
}

#[rocket::async_test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let app = App::start().await;
    for header in ["X-Real-IP", "X-Forwarded-For", "Forwarded"] {
        let value = if header == "Forwarded" {
            "for=203.0.113.66"
        } else {
            "203.0.113.66"
        };
        let shown = recorded_ip(&app, "192.0.2.10", &[(header, value)]).await;
        assert_eq!(shown, "192.0.2.10", "{header} is not believed from an unknown peer");
    }
}

fn behind_proxies(figment: Figment) -> Figment {
    figment.merge(("sessions.trusted_proxies", ["10.0.0.0/8", "2001:db8:ffff::/48"]))
}

#[rocket::async_test]
async fn a_trusted_proxy_is_believed_up_to_the_right_most_untrusted_hop() {
    let app = App::configured(behind_proxies).await;
    // The client wrote the first entry itself; the proxies appended the rest.
    let forwarded_for = [("X-Forwarded-For", "198.51.100.1, 203.0.113.9, 10.1.2.3")];
    assert_eq!(recorded_ip(&app, "10.0.0.5", &forwarded_for).await, "203.0.113.9");
    assert_eq!(
        recorded_ip(&app, "2001:db8:ffff:1::2", &[("X-Forwarded-For", "203.0.113.21")]).await,
        "203.0.113.21",
        "an IPv6 proxy range"
    );
    assert_eq!(
        recorded_ip(&app, "192.0.2.77", &forwarded_for).await,
        "192.0.2.77",
        "the same header from outside the trusted ranges is ignored"
    );
    assert_eq!(
        recorded_ip(&app, "10.0.0.5", &[("X-Forwarded-For", "garbage, 10.1.2.3")]).await,
        "10.1.2.3",
        "a hop that is not an address ends the walk at the last trusted one"
    );

    let rfc7239 = App::configured(|f| behind_proxies(f).merge(("sessions.forwarded_header", "forwarded"))).await;
    let forwarded = [(
        "Forwarded",
        r#"for=198.51.100.1, for="[2001:db8::7]:4711";proto=https, for=10.9.9.9"#,
    )];
    assert_eq!(recorded_ip(&rfc7239, "10.0.0.5", &forwarded).await, "2001:db8::7");

    let real_ip = App::configured(|f| behind_proxies(f).merge(("sessions.forwarded_header", "x-real-ip"))).await;
    assert_eq!(
        recorded_ip(&real_ip, "10.0.0.5", &[("X-Real-IP", "203.0.113.20")]).await,
        "203.0.113.20"
    );
}

/// A proxy overwrites or appends to its own header and passes the others on
/// untouched (nginx with the README's config passes `Forwarded`): only the
/// configured header may be read, whatever else the client sent.
#[rocket::async_test]
async fn only_the_configured_forwarding_header_is_believed() {
    let lies = |real: &'static str| {
        [
            ("Forwarded", "for=203.0.113.66;proto=https"),
            ("X-Real-IP", "203.0.113.67"),
            ("X-Forwarded-For", real),
        ]
    };
    let app = App::configured(behind_proxies).await;
    assert_eq!(
        recorded_ip(&app, "10.0.0.5", &lies("198.51.100.8")).await,
        "198.51.100.8",
        "X-Forwarded-For, the default, and nothing else"
    );
    let rfc7239 = App::configured(|f| behind_proxies(f).merge(("sessions.forwarded_header", "forwarded"))).await;
    assert_eq!(
        recorded_ip(
            &rfc7239,
            "10.0.0.5",
            &[("X-Forwarded-For", "203.0.113.70"), ("Forwarded", "for=198.51.100.9")]
        )
        .await,
        "198.51.100.9"
    );
    let real_ip = App::configured(|f| behind_proxies(f).merge(("sessions.forwarded_header", "x-real-ip"))).await;
    assert_eq!(
        recorded_ip(
            &real_ip,
            "10.0.0.5",
            &[("Forwarded", "for=203.0.113.71"), ("X-Real-IP", "198.51.100.10")]
        )
        .await,
        "198.51.100.10"
    );
}

#[rocket::async_test]
async fn an_unknown_forwarded_header_fails_launch_naming_the_key() {
    common::logs::capture_logs();
    let harness = rocket_sqlite_sessions::testing::TestHarness::new();
    let figment = harness.figment().merge(("sessions.forwarded_header", "x-client-ip"));
    let launched =
        rocket::local::asynchronous::Client::tracked(rocket::custom(figment).attach(harness.fairing())).await;
    assert!(launched.map_err(|error| error.kind().to_string()).is_err());
    assert!(common::logs::logged("forwarded_header"));
}

#[rocket::async_test]
async fn a_bad_trusted_proxy_range_fails_launch_naming_the_key() {
    common::logs::capture_logs();
    let harness = rocket_sqlite_sessions::testing::TestHarness::new();
    let figment = harness.figment().merge(("sessions.trusted_proxies", ["10.0.0.0/33"]));
    let launched =
        rocket::local::asynchronous::Client::tracked(rocket::custom(figment).attach(harness.fairing())).await;
    assert!(launched.map_err(|error| error.kind().to_string()).is_err());
    assert!(common::logs::logged("sessions.trusted_proxies"));
}

#[rocket::async_test]
async fn a_forged_header_neither_escapes_nor_aims_the_network_throttle() {
    let app = App::configured(|f| f.merge(("sessions.ip_max_failures", 3))).await;
    let honest = app.login("carol").await;
    // Junk refreshes claiming to come from the victim's address.
    for _ in 0..100 {
        let response = app
            .client
            .post("/auth/refresh")
            .remote(peer("198.51.100.50"))
            .header(Header::new("X-Real-IP", "192.0.2.99"))
            .header(rocket::http::ContentType::JSON)
            .body(r#"{"refresh_token":"AAAA"}"#)
            .dispatch()
            .await;
        assert_eq!(response.status(), Status::Unauthorized);
    }
    let from_victim = app
        .client
        .post("/auth/refresh")
        .remote(peer("192.0.2.99"))
        .header(rocket::http::ContentType::JSON)
        .body(serde_json::json!({ "refresh_token": honest.refresh }).to_string())
        .dispatch()
        .await;
    assert_eq!(from_victim.status(), Status::Ok, "the victim's valid token still works");
    let tokens = tokens_of(from_victim).await;
    assert_eq!(app.whoami_status(&tokens.access).await, Status::Ok);
}

/// A wrong password for `username`, every time.
#[post("/guess/<username>")]
async fn guess(sessions: &State<Sessions>, client: ClientInfo, username: &str) -> Result<Status, Error> {
    sessions.credential_check(username, &client).await?.failed().await?;
    Ok(Status::Unauthorized)
}

#[rocket::async_test]
async fn a_random_forwarding_header_per_guess_does_not_escape_the_throttle() {
    let harness = rocket_sqlite_sessions::testing::TestHarness::new();
    let rocket = common::rocket_on(&harness, |f| f.merge(("sessions.ip_max_failures", 3))).mount("/", routes![guess]);
    let client = rocket::local::asynchronous::Client::tracked(rocket).await.unwrap();
    let mut statuses = Vec::new();
    for n in 0..6 {
        let response = client
            .post(format!("/guess/user-{n}"))
            .remote(peer("198.51.100.50"))
            .header(Header::new("X-Real-IP", format!("203.0.113.{n}")))
            .dispatch()
            .await;
        statuses.push(response.status().code);
    }
    assert_eq!(
        statuses,
        [401, 401, 401, 429, 429, 429],
        "one network, whatever the headers say"
    );
}
