//! The server `scripts/limits.sh` measures; not an example to copy.
//!
//! The crate's fairing and routes (`/auth/refresh` among them) on the
//! `[sessions]` of Rocket's configuration (`ROCKET_SESSIONS`), and beside
//! them the baselines each figure is a ratio of:
//!
//! | route | what it is |
//! |---|---|
//! | `GET /guarded` | `AuthUser`, then a fixed JSON body |
//! | `GET /open` | the same body, no guard |
//! | `POST /floor` | reads `{"refresh_token": "…"}` like `/auth/refresh` and answers a token pair made at launch: the same body and answer sizes, no crypto, no store |
//! | `GET /health` | `ok`, for the time to the first answer |
//!
//! `GET /token` logs user 1 in and gives the access token; `POST /login-pair`
//! the whole token pair (the crate's part of a login: no password check).

use rocket::serde::json::Json;
use rocket::{get, post, routes, State};
use rocket_sqlite_sessions::{AuthUser, ClientInfo, Sessions, TokenPair};
use serde::Deserialize;

const BODY: &str = r#"{"user":"1","page":"the same answer, with or without a guard"}"#;

#[get("/guarded")]
fn guarded(_user: AuthUser) -> (rocket::http::ContentType, &'static str) {
    (rocket::http::ContentType::JSON, BODY)
}

#[get("/open")]
fn open() -> (rocket::http::ContentType, &'static str) {
    (rocket::http::ContentType::JSON, BODY)
}

#[derive(Deserialize)]
struct RefreshBody {
    #[allow(dead_code)]
    refresh_token: String,
}

/// The pair `/floor` answers, made by its first request.
#[derive(Default)]
struct FloorPair(rocket::tokio::sync::OnceCell<TokenPair>);

#[post("/floor", data = "<body>")]
async fn floor(sessions: &State<Sessions>, pair: &State<FloorPair>, body: Json<RefreshBody>) -> TokenPair {
    drop(body);
    pair.0.get_or_init(|| login(sessions)).await.clone()
}

/// A fresh access token of user 1, for the guarded route.
#[get("/token")]
async fn token(sessions: &State<Sessions>) -> String {
    login(sessions).await.access_token
}

async fn login(sessions: &Sessions) -> TokenPair {
    let client = ClientInfo::new(Some([127, 0, 0, 1].into()), Some("limits_server/1.0"));
    let claims = serde_json::json!({ "username": "load" });
    sessions.login("1", &claims, &client).await.expect("login")
}

/// A login of user 1: the token pair.
#[post("/login-pair")]
async fn login_pair(sessions: &State<Sessions>) -> TokenPair {
    login(sessions).await
}

#[get("/health")]
fn health() -> &'static str {
    "ok"
}

#[rocket::launch]
fn rocket() -> _ {
    rocket::build()
        .attach(Sessions::fairing())
        .manage(FloorPair::default())
        .mount("/auth", rocket_sqlite_sessions::routes())
        .mount("/", routes![guarded, open, floor, token, login_pair, health])
}
