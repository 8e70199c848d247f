//! Session management for [Rocket] 0.5 apps on one local SQLite file.
//!
//! Attach one fairing, mount the routes, and write `user: AuthUser<Claims>` in
//! a handler, with your own claims type:
//!
//! ```no_run
//! use rocket::{get, launch, routes};
//! use rocket_sqlite_sessions::{AuthUser, Sessions};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Claims {
//!     roles: Vec<String>,
//! }
//!
//! #[get("/")]
//! fn page(user: AuthUser<Claims>) -> String {
//!     format!("hello {}, you are {:?}", user.id, user.claims.roles)
//! }
//!
//! #[launch]
//! fn rocket() -> _ {
//!     rocket::build()
//!         .attach(Sessions::fairing()) // reads [sessions] from Rocket.toml
//!         .mount("/auth", rocket_sqlite_sessions::routes())
//!         .mount("/", routes![page])
//! }
//! ```
//!
//! After checking a user's password, a handler starts a session with
//! [`Sessions::login`], which returns a short-lived JWT access token and an opaque
//! refresh token. This runs as a test:
//!
//! ```
//! use rocket::http::{Header, Status};
//! use rocket::local::asynchronous::Client;
//! use rocket::{get, post, routes, State};
//! use rocket_sqlite_sessions::testing::TestHarness;
//! use rocket_sqlite_sessions::{AuthUser, ClientInfo, Error, Sessions, TokenPair};
//! # #[derive(serde::Deserialize)]
//! # struct Claims { roles: Vec<String> }
//!
//! #[post("/login")]
//! async fn login(sessions: &State<Sessions>, client: ClientInfo) -> Result<TokenPair, Error> {
//!     // An app checks the credentials first.
//!     sessions.login("alice", serde_json::json!({"roles": ["admin"]}), &client).await
//! }
//!
//! #[get("/")]
//! fn page(user: AuthUser<Claims>) -> String {
//!     format!("hello {} ({})", user.id, user.claims.roles.join(", "))
//! }
//!
//! # rocket::async_test(async {
//! let harness = TestHarness::new();
//! let rocket = harness.rocket().mount("/", routes![login, page]);
//! let client = Client::tracked(rocket).await.unwrap();
//!
//! let tokens: serde_json::Value = client.post("/login").dispatch().await.into_json().await.unwrap();
//! let bearer = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
//! let response = client.get("/").header(Header::new("Authorization", bearer.clone())).dispatch().await;
//! assert_eq!(response.into_string().await.unwrap(), "hello alice (admin)");
//!
//! harness.clock().advance(15 * 60); // the default access TTL
//! let response = client.get("/").header(Header::new("Authorization", bearer)).dispatch().await;
//! assert_eq!(response.status(), Status::Unauthorized);
//! # });
//! ```
//!
//! | item | what it is |
//! |---|---|
//! | [`Sessions::fairing()`] | reads and validates `[sessions]`, opens and migrates the database (the SQLite file, or PostgreSQL), loads revocations and follows the revocation feed, schedules pruning |
//! | [`Sessions`] | managed state: [`login`](Sessions::login) ([`login_with`](Sessions::login_with) and [`LoginOptions`] for a login's own lifetimes and session-only cookies), [`refresh`](Sessions::refresh), [`logout`](Sessions::logout), [`logout_all`](Sessions::logout_all), [`logout_everyone`](Sessions::logout_everyone), [`sessions`](Sessions::sessions) (each a [`SessionInfo`] with a readable `device` and the user's `label`), [`set_session_label`](Sessions::set_session_label), [`revoke_session`](Sessions::revoke_session), [`update_claims`](Sessions::update_claims), [`database_path`](Sessions::database_path), [`now`](Sessions::now), [`set_claims_source`](Sessions::set_claims_source) and [`set_events`](Sessions::set_events) (hooks registered after ignite), [`prune_now`](Sessions::prune_now) |
//! | [`ClaimsSource`], [`ClaimsDecision`], [`SessionsFairing::claims_source`] | claims looked up again at each refresh, before anything rotates: a role change reaches the next access token, a banned user's session ends |
//! | [`SessionEvents`], [`SessionEvent`] | login (with whether the network is new), refresh, logout, revoked session (why, and who asked), reuse detected, throttled (at most [`MAX_EVENT_USERNAME_BYTES`] of the username): told after commit, with the time |
//! | [`PruneReport`] | what a prune pass deleted; passes also run on `prune_schedule` |
//! | [`AuthUser`] | request guard: a valid, unrevoked access token, its claims typed (`AuthUser<C>`); `Option<AuthUser>` for optional sign-in; the user id as the app's type with [`id_as`](AuthUser::id_as) |
//! | [`Authorized`], [`Policy`] | request guard: an `AuthUser` whose claims a policy allows, 403 otherwise |
//! | [`FreshAuthUser`] | request guard: as `AuthUser`, with a login younger than `fresh_age` |
//! | [`Binding`], [`DpopMode`], [`ProofAlgorithm`] | DPoP (RFC 9449) and device-bound browser sessions (DBSC, `dbsc = true`): how a request proved it may use its token; the `dpop` and `dpop_algorithms` keys |
//! | [`CredentialCheck`], [`LoginMark`] | throttling of failed logins, from [`Sessions::credential_check`]; [`CredentialCheck::login`] refuses a login that a password or role change overtook |
//! | [`Sessions::set_cookies`], [`Sessions::end_browser_session`] | browser apps: tokens in `__Host-` cookies, silent refresh, CSRF protection; a login ends the browser session it replaces |
//! | [`CsrfToken`], [`CsrfProtected`] | request guards: the CSRF token for a page's forms; CSRF proof for routes without `AuthUser` |
//! | [`Sessions::set_session_value`] | typed app data on the session |
//! | [`ClientInfo`], [`ForwardedHeader`] | request guard: the client's address (the peer, or behind `trusted_proxies` the one header `forwarded_header` names) and user agent |
//! | [`routes()`] | refresh (JSON, or an RFC 6749 form), logout, logout-all, logout-others, list, label and revoke sessions, RFC 7009 token revocation ([`Sessions::revoke_token`]) |
//! | [`jwks_routes()`] | `GET /.well-known/jwks.json`: the public keys of Ed25519 and P-256 signing keys, for other services |
//! | [`SessionsConfig`], [`AtMaxSessions`] | the `[sessions]` keys and their defaults, `max_sessions` (a per-user limit) among them |
//! | [`Error`], [`ErrorResponse`] | every failure, answering 401, 403, 404, 409, 429, 503 or 500 with a JSON body; the app's own errors in the same shape |
//! | [`testing::TestHarness`] | a temp database and a movable clock for an app's tests |
//! | [`testing::Browser`] | one browser on the local client: its own cookie jar, user agent, address and CSRF token; several are several devices |
//! | [`Clock`], [`testing::ManualClock`] | where "now" comes from; a clock tests move and step |
//!
//! # Security model
//!
//! Access tokens are JWTs (`typ: at+jwt`, with `kid`, every claim required
//! and typed), HS256 with a secret or EdDSA / ES256 with an Ed25519 / P-256
//! key (each `kid` pinned to its key's algorithm; the public keys are served by
//! [`jwks_routes()`]), that live `access_ttl` seconds and never outlive their
//! session.
//! Refresh tokens are 96 characters: the session id, a generation number, a
//! secret and a tag (keyed BLAKE3 under a key derived from the signing key), so
//! a forged one is refused before any store lookup; only a keyed hash of them
//! is stored.
//! Every refresh rotates the token, and a session has one live branch: the
//! token just replaced, presented again within `reuse_grace` seconds, gets the
//! same successor (two tabs refreshing at once); any earlier token presented
//! after that revokes the whole session (RFC 9700 §4.14.2). Logout blocklists
//! the access token's `jti` and revokes the session; both are held in memory, so
//! the guard answers from memory and never waits on SQLite. A token it has
//! admitted before (the very same bytes) skips the signature and the JSON:
//! only its times and revocation are checked again. Every token failure is the
//! same 401.
//!
//! Bearer clients can bind their sessions to a key of their own with DPoP
//! (RFC 9449, `dpop = "allowed"` by default): a login or refresh carrying a
//! `DPoP` proof binds the session to the proof's key; its access tokens carry
//! `cnf.jkt`, work only as `Authorization: DPoP` with a fresh proof by that
//! key (refused as bearer tokens), and its refreshes need one too, so a
//! copied token alone is useless. [`AuthUser::binding`] says how a request
//! was bound ([`Binding`]).
//!
//! With `dbsc = true`, a browser that speaks Device Bound Session
//! Credentials binds its cookie session to a key in the device: its refresh
//! cookie then goes only to the DBSC refresh route, and its access cookie is
//! renewed only with that key's signature over a fresh challenge.
//!
//! Browser apps keep the tokens in `__Host-` cookies ([`Sessions::set_cookies`]);
//! the guard refreshes them silently (the new cookies reach the browser
//! whatever answers, catchers included) and requires a same-origin request with
//! the session's CSRF token for unsafe methods.
//!
//! Failed logins are throttled per username and network, per username overall
//! (never from a network the user signed in from) and per network, counted in
//! SQLite under keyed hashes. The client's address is the socket's peer unless
//! a configured trusted proxy forwarded the request. The repository's
//! `SECURITY.md` lists every threat, its defence and its test.
//!
//! # Storage
//!
//! A session is one row, whatever the number of refreshes; failure counters are
//! one row per username or network with recent failures, at most
//! `max_failure_scopes`; junk refresh tokens write nothing. Every write goes
//! through one writer that commits the writes waiting together, and answers
//! each only once it is durable: on stable storage, synced, so that neither a
//! killed process nor a power cut undoes it (`durability = "process_crash"`
//! gives up the power cut for faster writes); a revocation reaches memory only after its
//! commit, so memory and disk never disagree, and a write that fails (a full or
//! read-only disk) changed nothing and answers 503. The WAL stays under about 4 MiB
//! (1,000 frames) plus one batch of writes. A file that cannot be written fails launch; a file,
//! `-wal` or `-shm` deleted or replaced while running is noticed before the
//! next write is answered (a deleted `-wal`'s frames are copied into the file
//! first); a `-wal` left beside a file restored from a copy is moved aside at
//! launch, never replayed into it; a clean stop leaves one file. Files are
//! created with mode 0600. Time comes from a [`Clock`] that never steps back,
//! and pruning trusts no forward step of the wall clock.
//!
//! The crate owns the file's `PRAGMA user_version` and `PRAGMA
//! application_id` (a tag of the file itself) and the tables `sessions`,
//! `revoked_tokens`, `revocation_log`, `auth_failures`, `auth_failure_scopes`,
//! `auth_known_networks`, `auth_known_network_count` and
//! `auth_pending_attempts`; an app may keep its
//! own tables in the same file, which [`Sessions::database_path`] names.
//!
//! # More than one process, and PostgreSQL
//!
//! Every revocation is also appended, in its transaction, to a feed with
//! sequence numbers in commit order, and every process follows the feed into
//! its memory: processes sharing one SQLite file (or instances sharing one
//! PostgreSQL database) refuse what any of them revoked within a second
//! (SQLite: about 0.1 s, polling `PRAGMA data_version`; PostgreSQL:
//! `LISTEN`/`NOTIFY`). With the `postgres` cargo feature, `database =
//! "postgres://…"` keeps the sessions in PostgreSQL instead, with the same API;
//! over TLS (`sslmode`, `sslrootcert`) and through PgBouncer (`pooled`); the
//! guide's `docs/postgresql.md` gives its limits.
//!
//! # How the code is laid out
//!
//! For contributors: `src/` is six layers, bottom to top, and a file imports
//! only from its own layer or below, with no import cycle (the repository's
//! `tests/architecture.rs` checks it). **Ground** (randomness, origins,
//! `AuthUser`, `ClientInfo`, the clock, the pure refresh decision, the hook
//! traits) imports nothing of the crate; **domain** is the tokens, the CSRF
//! keys and the store with its two backends; then **configuration and
//! errors** (with the revocations held in memory); the **service**
//! (`sessions/`: [`Sessions`], which never sees a request); the **web** layer
//! (`web/`: every guard, the routes, the fairing, cookies, the answers); and at
//! the **top** these docs, the re-exports and [`testing`]. The guide's
//! `docs/layout.md` names every file.
//!
//! [Rocket]: https://rocket.rs

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

// The layers, bottom to top; a module imports only from its own layer or
// below (tests/architecture.rs checks it). See `docs/layout.md`.
//
// 1. Ground: imports nothing of the crate.
mod client;
mod clock;
mod crypto;
mod hooks;
mod jwk;
mod log_limit;
mod origin;
mod rotation;
mod user;
// 2. Domain: tokens, CSRF keys, the store and its backends.
mod csrf;
mod dbsc;
mod dpop;
mod store;
mod token;
// 3. Configuration, errors, the revocations held in memory.
mod config;
mod error;
mod revocation;
// 4. The service: no request anywhere.
mod sessions;
// 5. The web layer: guards, routes, the fairing.
mod web;
// 6. Top: the docs above, these re-exports, and test support.
pub mod testing;

pub use client::ClientInfo;
pub use clock::Clock;
pub use config::{
    AtMaxSessions, ConfigError, DpopMode, Durability, ForwardedHeader, KeyConfig, ProofAlgorithm, SameSitePolicy,
    SessionsConfig, MIN_SECRET_BYTES,
};
pub use error::{Error, INVALID_TOKEN_MESSAGE};
pub use hooks::{
    ClaimsDecision, ClaimsSource, ClaimsSourceError, IntoClaimsDecision, SessionEvent, SessionEvents,
    MAX_EVENT_USERNAME_BYTES,
};
pub use sessions::{
    CredentialCheck, LoginMark, LoginOptions, PruneReport, SessionInfo, Sessions, TokenPair, MAX_SESSION_DATA_BYTES,
    MAX_SESSION_LABEL_CHARS,
};
pub use store::StoreError;
pub use user::{AuthUser, Binding};
pub use web::{
    jwks_routes, routes, Authorized, CsrfProtected, CsrfToken, ErrorResponse, FreshAuthUser, Policy, SessionsFairing,
    CSRF_FIELD, CSRF_HEADER,
};
