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
    let name = body.username.clone();
    check.login(id, Claims { name }, &client).await // 409 if the user changed meanwhile
}

#[get("/hello")]
fn hello(user: AuthUser<Claims>) -> String {
    format!("hello {}", user.claims.name)
}

fn app(rocket: Rocket<Build>, sessions: SessionsFairing) -> Rocket<Build> {
    let rocket = rocket.attach(sessions).mount("/", routes![login, hello]);
    rocket.mount("/auth", rocket_sqlite_sessions::routes()) // /auth/refresh, /auth/logout, /auth/sessions…
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
        let rocket = super::app(rocket::custom(harness.figment()), harness.fairing());
        let client = Client::tracked(rocket).unwrap();
        let post = |path: &'static str, body: Value| client.post(path).body(body.to_string()).dispatch();
        let token = |pair: &Value| format!("Bearer {}", pair["access_token"].as_str().unwrap());
        let auth = |pair: &Value| Header::new("Authorization", token(pair));
        let hello = |pair: &Value| client.get("/hello").header(auth(pair)).dispatch().status();
        let login = post("/login", json!({"username": "ada", "password": "lovelace"}));
        let pair: Value = login.into_json().unwrap();
        assert_eq!(hello(&pair), Status::Ok);
        harness.clock().advance(900); // access_ttl: the access token has expired
        assert_eq!(hello(&pair), Status::Unauthorized);
        let refreshed = post("/auth/refresh", json!({"refresh_token": pair["refresh_token"]}));
        let pair: Value = refreshed.into_json().unwrap();
        assert_eq!(hello(&pair), Status::Ok);
        let logout = client.post("/auth/logout").header(auth(&pair)).dispatch();
        assert_eq!(logout.status(), Status::NoContent);
        assert_eq!(hello(&pair), Status::Unauthorized);
        let wrong = post("/login", json!({"username": "ada", "password": "babbage"}));
        assert_eq!(wrong.status(), Status::Unauthorized);
    }
}
