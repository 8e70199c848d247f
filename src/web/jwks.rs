//! The JWKS endpoint: the public halves of the Ed25519 and P-256 keys, for
//! other services to verify access tokens with.

use rocket::http::{ContentType, Header};
use rocket::{get, Route, State};

use crate::sessions::Sessions;

/// `GET /.well-known/jwks.json` (RFC 7517 §5, at the path RFC 8414 and
/// OpenID Connect discovery use): the JSON Web Key Set of every configured
/// asymmetric key, the signing one and those still verifying, each with
/// `kid`, `alg` and `use`, never a private part. HS256 secrets have no
/// public half and are not listed: with only those it is `{"keys": []}`.
/// Mount it at `/`:
///
/// ```no_run
/// # use rocket::launch;
/// use rocket_sqlite_sessions::Sessions;
///
/// #[launch]
/// fn rocket() -> _ {
///     rocket::build()
///         .attach(Sessions::fairing())
///         .mount("/", rocket_sqlite_sessions::jwks_routes())
/// }
/// ```
///
/// The answer may be cached for five minutes (`Cache-Control: public,
/// max-age=300`): put a new key in the list (not first) at least that long
/// before it signs, so verifiers have it when the first token arrives.
pub fn jwks_routes() -> Vec<Route> {
    rocket::routes![jwks]
}

/// The key set and its cache headers.
#[derive(rocket::Responder)]
struct KeySet {
    body: (ContentType, String),
    cache: Header<'static>,
}

#[get("/.well-known/jwks.json")]
fn jwks(sessions: &State<Sessions>) -> KeySet {
    KeySet {
        body: (ContentType::JSON, sessions.jwks().to_string()),
        cache: Header::new("Cache-Control", "public, max-age=300"),
    }
}
