//! The web layer: everything that touches a Rocket request or response, and
//! the only place with `FromRequest`, `local_cache` and cookies.
//!
//! A request's path through it: the guard ([`guard`], [`authz`], [`csrf`])
//! asks for the [`verdict`], decided once from the bearer token or the
//! cookies and kept in the request's [`request`] record; the service checks
//! the token from memory. The fairing's response hook ([`fairing`]) reads the
//! record: the cookie changes ([`cookies`]) and the crate's answers
//! ([`responses`]). [`test_browser`] is `testing::Browser`, a browser on the
//! local client for an app's tests.

mod authz;
mod client;
mod cookies;
mod csrf;
mod csrf_proof;
mod dbsc;
mod dpop;
mod fairing;
mod guard;
mod jwks;
mod oauth;
mod request;
mod responses;
mod routes;
pub(crate) mod test_browser;
mod verdict;

pub use authz::{Authorized, Policy};
pub use csrf::{CsrfProtected, CsrfToken};
pub use csrf_proof::{CSRF_FIELD, CSRF_HEADER};
pub use fairing::SessionsFairing;
pub use guard::FreshAuthUser;
pub use jwks::jwks_routes;
pub use responses::ErrorResponse;
pub use routes::routes;
