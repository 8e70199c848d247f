//! The smallest bearer-token app: its own password check, a login route, a route guarded with typed
//! claims, the crate's refresh and logout, and a test. `cargo run --example bearer`, then
//! `curl -s -X POST localhost:8000/login -d '{"username":"ada","password":"lovelace"}'`.
use rocket::serde::json::Json;
use rocket::{get, launch, post, routes, Build, Rocket, State};
use rocket_sqlite_sessions::{AuthUser, ClientInfo, Error, Sessions, SessionsFairing, TokenPair};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

#[derive(Serialize, Deserialize)] // what the access token carries besides the user id
struct Claims {
    name: String,
}

/// The app's own user check: one user here; Argon2 and a table in a real app.
fn user_id_of(username: &str, password: &str) -> Option<i64> {
    (username == "ada" && password == "lovelace").then_some(1)
}

#[post("/login", data = "<body>")]
async fn login(sessions: &State<Sessions>, client: ClientInfo, body: Json<Credentials>) -> Result<TokenPair, Error> {
    let check = sessions.credential_check(&body.username, &client).await?; // 429 when throttled
    let Some(id) = user_id_of(&body.username, &body.password) else {
        check.failed().await?;
        return Err(Error::InvalidCredentials); // 401 {"error":"invalid_credentials",…}
    };
    check
        .login(
            id,
            Claims {
                name: body.username.clone(),
            },
            &client,
        )
        .await
}

#[get("/hello")]
fn hello(user: AuthUser<Claims>) -> String {
    format!("hello {}", user.claims.name)
}

fn app(rocket: Rocket<Build>, sessions: SessionsFairing) -> Rocket<Build> {
    let auth = rocket_sqlite_sessions::routes(); // /auth/refresh, /auth/logout, /auth/sessions…
    rocket
        .attach(sessions)
        .mount("/", routes![login, hello])
        .mount("/auth", auth)
}

#[launch]
fn rocket() -> _ {
    app(rocket::build(), Sessions::fairing())
}

#[cfg(test)]
mod tests {
    use rocket::http::{Header, Status};
    use rocket::local::blocking::Client;
    use serde_json::{json, Value};

    #[test]
    fn login_expiry_refresh_and_logout() {
        let harness = rocket_sqlite_sessions::testing::TestHarness::new(); // its own database and clock
        let client = Client::tracked(super::app(rocket::custom(harness.figment()), harness.fairing())).unwrap();
        let post = |path: &'static str, body: Value| client.post(path).body(body.to_string()).dispatch();
        let bearer = |pair: &Value| {
            Header::new(
                "Authorization",
                format!("Bearer {}", pair["access_token"]).replace('"', ""),
            )
        };
        let hello = |pair: &Value| client.get("/hello").header(bearer(pair)).dispatch().status();
        let pair: Value = post("/login", json!({"username": "ada", "password": "lovelace"}))
            .into_json()
            .unwrap();
        assert_eq!(hello(&pair), Status::Ok);
        harness.clock().advance(900); // access_ttl: the access token has expired
        assert_eq!(hello(&pair), Status::Unauthorized);
        let pair: Value = post("/auth/refresh", json!({"refresh_token": pair["refresh_token"]}))
            .into_json()
            .unwrap();
        assert_eq!(hello(&pair), Status::Ok);
        assert_eq!(
            client.post("/auth/logout").header(bearer(&pair)).dispatch().status(),
            Status::NoContent
        );
        assert_eq!(hello(&pair), Status::Unauthorized);
        assert_eq!(
            post("/login", json!({"username": "ada", "password": "x"})).status(),
            Status::Unauthorized
        );
    }
}
