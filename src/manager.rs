//! [`Sessions`]: the managed state that logs in, refreshes, lists and revokes.

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rocket::request::{FromRequest, Outcome, Request};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::clock::Clock;
use crate::config::Settings;
use crate::error::Error;
use crate::guard::AuthUser;
use crate::revocation::Revocations;
use crate::store::{ClientRecord, NewSession, RefreshDecision, Store, StoreError};
use crate::token::{random_id, AccessClaims, RefreshToken, Rejection, TokenCodec, RESERVED_CLAIMS};

/// User agents longer than this are cut before they are stored.
const MAX_USER_AGENT_LEN: usize = 256;

/// Session management for one Rocket app: managed state put in place by
/// [`Sessions::fairing()`], reachable from handlers as `&State<Sessions>`.
///
/// Every method that touches SQLite runs it on Tokio's blocking pool; checking an
/// access token ([`AuthUser`]) never touches SQLite at all.
#[derive(Clone)]
pub struct Sessions {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) codec: TokenCodec,
    pub(crate) revocations: Revocations,
    pub(crate) clock: Clock,
    pub(crate) settings: Settings,
    /// CSRF keys derived from the signing keys, the first one current.
    pub(crate) csrf_keys: Vec<[u8; 32]>,
    /// Held for the length of a prune pass, so passes never overlap.
    pub(crate) prune_lock: rocket::tokio::sync::Mutex<()>,
    /// Set at shutdown: a prune pass stops before its next batch.
    pub(crate) stopping: AtomicBool,
}

/// A freshly issued access token and refresh token: the token response of
/// RFC 6749 §5.1 when serialised.
///
/// As a [`Responder`](rocket::response::Responder) it answers 200 with
/// `Cache-Control: no-store`.
#[derive(Clone, Serialize)]
pub struct TokenPair {
    /// The JWT to send as `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `"Bearer"`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The opaque token to present to `/refresh` for the next pair. It can be used
    /// once.
    pub refresh_token: String,
    /// Seconds until the refresh token expires (not part of the JSON body).
    #[serde(skip)]
    pub refresh_expires_in: i64,
    /// The session the pair belongs to (not part of the JSON body).
    #[serde(skip)]
    pub session_id: String,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &"<redacted>")
            .field("session_id", &self.session_id)
            .finish()
    }
}

/// Where a request came from: recorded on the session at login and refresh, shown
/// in the user's list of devices. A request guard that never fails.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The client's IP address, as Rocket sees it (see Rocket's `ip_header`).
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header, cut to 256 bytes.
    pub user_agent: Option<String>,
}

impl ClientInfo {
    /// The client of `request`.
    pub fn of(request: &Request<'_>) -> Self {
        let user_agent = request.headers().get_one("User-Agent").map(|agent| {
            let mut end = agent.len().min(MAX_USER_AGENT_LEN);
            while !agent.is_char_boundary(end) {
                end -= 1;
            }
            agent[..end].to_string()
        });
        ClientInfo {
            ip: request.client_ip(),
            user_agent,
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ClientInfo {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(ClientInfo::of(request))
    }
}

/// One active session of a user, as listed to that user.
#[derive(Debug, Clone, Serialize)]
pub struct SessionInfo {
    /// The session id (the `sid` claim of its access tokens).
    pub id: String,
    /// When the user logged in.
    pub created_at: DateTime<Utc>,
    /// The last login or refresh.
    pub last_seen_at: DateTime<Utc>,
    /// When the session ends unless refreshed (capped by the absolute timeout).
    pub expires_at: DateTime<Utc>,
    /// The IP address of the last login or refresh.
    pub ip: Option<String>,
    /// The user agent of the last login or refresh.
    pub user_agent: Option<String>,
}

impl Sessions {
    /// Opens the store, loads what is revoked into memory.
    pub(crate) async fn open(settings: Settings, clock: Clock) -> Result<Sessions, Error> {
        let path = settings.database.clone();
        let store = rocket::tokio::task::spawn_blocking(move || Store::open(&path))
            .await
            .map_err(|e| Error::Internal(format!("opening the store failed: {e}")))??;
        let sessions = Sessions {
            inner: Arc::new(Inner {
                codec: TokenCodec::new(&settings),
                csrf_keys: settings
                    .keys
                    .iter()
                    .map(|key| crate::browser::csrf_key(&key.secret))
                    .collect(),
                store,
                revocations: Revocations::default(),
                clock,
                settings,
                prune_lock: rocket::tokio::sync::Mutex::new(()),
                stopping: AtomicBool::new(false),
            }),
        };
        sessions.reload_revocations().await?;
        Ok(sessions)
    }

    /// Rebuilds the in-memory revocation state from the store.
    async fn reload_revocations(&self) -> Result<(), Error> {
        let now = self.now();
        let (leeway, access_ttl) = (self.inner.settings.leeway, self.inner.settings.access_ttl);
        let stored = self
            .blocking(move |store| store.revocations(now - leeway, now - access_ttl - leeway))
            .await?;
        self.inner.revocations.load(
            stored.jtis.into_iter().map(|(jti, exp)| (jti, exp + leeway)).collect(),
            stored
                .sessions
                .into_iter()
                .map(|(id, revoked_at)| (id, self.session_revocation_until(revoked_at)))
                .collect(),
        );
        let (jtis, sessions) = self.inner.revocations.len();
        log::info!("rocket_sqlite_sessions: {jtis} blocklisted tokens and {sessions} revoked sessions loaded");
        Ok(())
    }

    fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// The last moment an access token issued before `revoked_at` can be accepted.
    fn session_revocation_until(&self, revoked_at: i64) -> i64 {
        revoked_at + self.inner.settings.access_ttl + self.inner.settings.leeway
    }

    /// Starts a new session for `user_id` (after the app has checked the
    /// credentials) and issues its first token pair.
    ///
    /// `claims` are app claims copied into every access token of the session,
    /// e.g. `serde_json::json!({"roles": ["admin"]})`; pass `()` for none. The
    /// session id is always fresh and random, never chosen by the client.
    ///
    /// # Errors
    /// [`Error::Internal`] when `claims` is not a JSON object or uses a name the
    /// crate sets itself (`sub`, `sid`, `jti`, `iat`, `exp`, `nbf`, `iss`, `aud`,
    /// `typ`); [`Error::Store`] when the session cannot be stored. No token is
    /// returned unless its session is committed.
    pub async fn login(&self, user_id: &str, claims: impl Serialize, client: &ClientInfo) -> Result<TokenPair, Error> {
        let app_claims = app_claims(claims)?;
        if user_id.is_empty() {
            return Err(Error::Internal("login needs a non-empty user id".into()));
        }
        let settings = &self.inner.settings;
        let now = self.now();
        let session_id = random_id();
        let absolute_expires_at = now + settings.absolute_timeout;
        let refresh = RefreshToken::generate();
        let refresh_expires_at = (now + settings.refresh_ttl).min(absolute_expires_at);
        let expires_at = (now + settings.idle_timeout).min(refresh_expires_at);
        let claims_json = Value::Object(app_claims.clone()).to_string();

        let (id, user, ip, agent, hash) = (
            session_id.clone(),
            user_id.to_string(),
            client.ip.map(|ip| ip.to_string()),
            client.user_agent.clone(),
            refresh.hash(),
        );
        self.blocking(move |store| {
            store.create_session(
                &NewSession {
                    id: &id,
                    user_id: &user,
                    now,
                    expires_at,
                    absolute_expires_at,
                    ip: ip.as_deref(),
                    user_agent: agent.as_deref(),
                    claims_json: &claims_json,
                },
                &hash,
                refresh_expires_at,
            )
        })
        .await?;
        self.issue(
            user_id.to_string(),
            session_id,
            app_claims,
            now,
            now,
            expires_at,
            (refresh, refresh_expires_at),
        )
    }

    /// Exchanges a refresh token for a new pair, rotating it: the presented token
    /// is spent and its successor returned.
    ///
    /// Presenting a token that was already rotated is reuse (RFC 9700 §4.14.2):
    /// the whole session is revoked, its newest refresh token and its access tokens
    /// included. Within `reuse_grace` seconds of the rotation the old token is
    /// accepted again instead (two tabs refreshing at once), issuing a second pair.
    ///
    /// # Errors
    /// [`Error::InvalidToken`] for a token that is unknown, expired, rotated
    /// (reuse), or whose session is revoked or past its idle or absolute timeout;
    /// [`Error::Store`] when the store fails.
    pub async fn refresh(&self, presented: &str, client: &ClientInfo) -> Result<TokenPair, Error> {
        let ip_scope = crate::throttle::ip_scope(client);
        let result = self.rotate(presented, client, ip_scope).await;
        if let (Err(Error::InvalidToken), Some(scope)) = (&result, ip_scope) {
            self.record_failure(vec![scope]).await?;
        }
        result
    }

    /// [`refresh`](Self::refresh) without counting failures; `ip_scope` is the
    /// client's throttling scope.
    async fn rotate(
        &self,
        presented: &str,
        client: &ClientInfo,
        ip_scope: Option<[u8; 32]>,
    ) -> Result<TokenPair, Error> {
        let Some(hash) = RefreshToken::hash_presented(presented) else {
            log::debug!("rocket_sqlite_sessions: refresh refused: {}", Rejection::Malformed);
            return Err(Error::InvalidToken);
        };
        let now = self.now();
        let successor = RefreshToken::generate();
        let new_hash = successor.hash();
        let (ip, agent) = (client.ip.map(|ip| ip.to_string()), client.user_agent.clone());
        let this = self.clone();
        let outcome = self
            .inner
            .store
            .batched(move |connection| {
                if let Some(scope) = ip_scope {
                    if let Some(retry_after) = this.ip_retry_after(connection, &scope, now)? {
                        return Ok(Err(retry_after));
                    }
                }
                let settings = &this.inner.settings;
                let client = ClientRecord {
                    ip: ip.as_deref(),
                    user_agent: agent.as_deref(),
                };
                crate::store::refresh_in(connection, &hash, now, &client, |found| {
                    if found.session_revoked || now >= found.session_expires_at {
                        return RefreshDecision::Reject;
                    }
                    let within_grace =
                        |rotated_at: i64| settings.reuse_grace > 0 && now <= rotated_at + settings.reuse_grace;
                    match found.rotated_at {
                        Some(rotated_at) if !within_grace(rotated_at) => {
                            // Revoke in memory first: the session's access tokens
                            // fail from this instant, not from the commit.
                            this.inner
                                .revocations
                                .revoke_session(found.session_id.clone(), this.session_revocation_until(now));
                            RefreshDecision::RevokeSession
                        }
                        _ if now >= found.token_expires_at => RefreshDecision::Reject,
                        _ => {
                            let token_expires_at = (now + settings.refresh_ttl).min(found.absolute_expires_at);
                            RefreshDecision::Rotate {
                                new_hash,
                                token_expires_at,
                                // Nothing can extend the session past its newest token.
                                session_expires_at: (now + settings.idle_timeout).min(token_expires_at),
                            }
                        }
                    }
                })
                .map(Ok)
            })
            .await?;

        let outcome = outcome.map_err(|retry_after| Error::Throttled { retry_after })?;
        match outcome {
            None => {
                log::debug!("rocket_sqlite_sessions: refresh refused: unknown refresh token");
                Err(Error::InvalidToken)
            }
            Some((found, RefreshDecision::Reject)) => {
                log::debug!(
                    "rocket_sqlite_sessions: refresh refused for session {}: expired or revoked",
                    found.session_id
                );
                Err(Error::InvalidToken)
            }
            Some((found, RefreshDecision::RevokeSession)) => {
                log::warn!(
                    "rocket_sqlite_sessions: a rotated refresh token of session {} (user {}) was presented again; \
                     the session is revoked",
                    found.session_id,
                    found.user_id
                );
                Err(Error::InvalidToken)
            }
            Some((
                found,
                RefreshDecision::Rotate {
                    session_expires_at,
                    token_expires_at,
                    ..
                },
            )) => {
                let app = match serde_json::from_str::<Value>(&found.claims_json) {
                    Ok(Value::Object(map)) => map,
                    _ => {
                        return Err(Error::Internal(format!(
                            "session {} has corrupt claims",
                            found.session_id
                        )))
                    }
                };
                self.issue(
                    found.user_id,
                    found.session_id,
                    app,
                    found.session_created_at,
                    now,
                    session_expires_at,
                    (successor, token_expires_at),
                )
            }
        }
    }

    /// Signs an access token for a session and pairs it with `refresh` (and the
    /// time it expires).
    #[allow(clippy::too_many_arguments)]
    fn issue(
        &self,
        user_id: String,
        session_id: String,
        app: Map<String, Value>,
        logged_in_at: i64,
        now: i64,
        session_expires_at: i64,
        (refresh, refresh_expires_at): (RefreshToken, i64),
    ) -> Result<TokenPair, Error> {
        let codec = &self.inner.codec;
        // An access token never outlives its session.
        let exp = (now + self.inner.settings.access_ttl).min(session_expires_at);
        let claims = AccessClaims {
            sub: user_id,
            sid: session_id.clone(),
            jti: random_id(),
            iat: now,
            exp,
            auth_time: logged_in_at,
            nbf: None,
            iss: codec.issuer().map(str::to_string),
            aud: codec.audience().map(str::to_string),
            app,
        };
        let access_token = codec
            .sign(&claims)
            .map_err(|e| Error::Internal(format!("signing an access token failed: {e}")))?;
        Ok(TokenPair {
            access_token,
            token_type: "Bearer",
            expires_in: exp - now,
            refresh_token: refresh.into_string(),
            refresh_expires_in: refresh_expires_at - now,
            session_id,
        })
    }

    /// Ends the session `user` authenticated with: its access token's `jti` is
    /// blocklisted until its `exp`, the session and all its refresh tokens revoked.
    ///
    /// # Errors
    /// [`Error::Store`] when the revocation cannot be stored. The token is refused
    /// in this process from the start of the call either way.
    pub async fn logout(&self, user: &AuthUser) -> Result<(), Error> {
        let now = self.now();
        let revocations = &self.inner.revocations;
        revocations.revoke_jti(user.jti.clone(), user.expires_at + self.inner.settings.leeway);
        revocations.revoke_session(user.session_id.clone(), self.session_revocation_until(now));
        let (session_id, jti, exp) = (user.session_id.clone(), user.jti.clone(), user.expires_at);
        self.blocking(move |store| store.revoke_session(&session_id, now, "logout", Some((&jti, exp))))
            .await?;
        Ok(())
    }

    /// Ends every session of `user_id` (logout everywhere). Returns how many were
    /// live.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails; then nothing was revoked.
    pub async fn logout_all(&self, user_id: &str) -> Result<usize, Error> {
        self.revoke_sessions_of(user_id, None, "logout everywhere").await
    }

    /// Ends every session of `user` except the one it authenticated with: after a
    /// password change (ASVS 3.3.3), the other devices must sign in again.
    /// Returns how many were live.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails; then nothing was revoked.
    pub async fn logout_others(&self, user: &AuthUser) -> Result<usize, Error> {
        self.revoke_sessions_of(&user.id, Some(&user.session_id), "other sessions ended")
            .await
    }

    /// Revokes every live session of `user_id` but `keep`, in the store and then
    /// in memory; returns how many there were.
    async fn revoke_sessions_of(
        &self,
        user_id: &str,
        keep: Option<&str>,
        reason: &'static str,
    ) -> Result<usize, Error> {
        let now = self.now();
        let (user, keep) = (user_id.to_string(), keep.map(str::to_string));
        let revoked = self
            .blocking(move |store| store.revoke_user_sessions(&user, keep.as_deref(), now, reason))
            .await?;
        let until = self.session_revocation_until(now);
        for session_id in &revoked {
            self.inner.revocations.revoke_session(session_id.clone(), until);
        }
        Ok(revoked.len())
    }

    /// `Ok` when `user` logged in no more than `fresh_age` seconds ago, else
    /// `Err(fresh_age)`.
    pub(crate) fn check_fresh(&self, user: &AuthUser) -> Result<(), i64> {
        let fresh_age = self.inner.settings.fresh_age;
        if self.now() - user.authenticated_at <= fresh_age {
            Ok(())
        } else {
            Err(fresh_age)
        }
    }

    /// The active sessions of `user_id`, most recently used first.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails.
    pub async fn sessions(&self, user_id: &str) -> Result<Vec<SessionInfo>, Error> {
        let now = self.now();
        let user = user_id.to_string();
        let records = self.blocking(move |store| store.active_sessions(&user, now)).await?;
        Ok(records
            .into_iter()
            .map(|record| SessionInfo {
                id: record.id,
                created_at: timestamp(record.created_at),
                last_seen_at: timestamp(record.last_seen_at),
                expires_at: timestamp(record.expires_at),
                ip: record.ip,
                user_agent: record.user_agent,
            })
            .collect())
    }

    /// Revokes one session of `user_id`: a device the user signs out remotely.
    ///
    /// # Errors
    /// [`Error::SessionNotFound`] when `session_id` is not an active session of
    /// this user — another user's session is indistinguishable from none;
    /// [`Error::Store`] when the store fails.
    pub async fn revoke_session(&self, user_id: &str, session_id: &str) -> Result<(), Error> {
        if session_id.is_empty() || session_id.len() > 64 {
            return Err(Error::SessionNotFound);
        }
        let now = self.now();
        let (user, id) = (user_id.to_string(), session_id.to_string());
        let revoked = self
            .blocking(move |store| store.revoke_own_session(&user, &id, now))
            .await?;
        if !revoked {
            return Err(Error::SessionNotFound);
        }
        self.inner
            .revocations
            .revoke_session(session_id.to_string(), self.session_revocation_until(now));
        Ok(())
    }

    /// Checks an `Authorization` header value (`Bearer <access token>`) exactly as
    /// [`AuthUser`] does, from memory only, for a token that reaches the app
    /// outside a request guard: the first message of a WebSocket, a job queued
    /// with the caller's token.
    ///
    /// ```
    /// # fn check(sessions: &rocket_sqlite_sessions::Sessions, header: &str) {
    /// match sessions.verify_authorization(header) {
    ///     Ok(user) => println!("hello {}", user.id),
    ///     Err(refused) => println!("{refused}"),
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidToken`] for every failure, whatever the cause (the cause
    /// is logged at debug level).
    pub fn verify_authorization(&self, authorization: &str) -> Result<AuthUser, Error> {
        self.authenticate_header(authorization).map_err(|rejection| {
            log::debug!("rocket_sqlite_sessions: access token refused: {rejection}");
            Error::InvalidToken
        })
    }

    /// Whether access tokens of session `session_id`, or the one token `jti`,
    /// are revoked: answered from memory, as the guard does. A long-lived
    /// connection that authenticated once (a WebSocket, a server-sent event
    /// stream) can ask this from time to time and close when its session ends.
    pub fn is_revoked(&self, session_id: &str, jti: &str) -> bool {
        self.inner.revocations.is_revoked(jti, session_id)
    }

    /// [`verify_authorization`](Self::verify_authorization), with the reason for
    /// a refusal.
    pub(crate) fn authenticate_header(&self, authorization: &str) -> Result<AuthUser, Rejection> {
        self.authenticate(crate::guard::bearer_token(authorization)?)
    }

    /// Checks an access token completely, from memory only: form, header,
    /// signature, times, issuer and audience, then the blocklist and revoked
    /// sessions.
    pub(crate) fn authenticate(&self, token: &str) -> Result<AuthUser, Rejection> {
        let claims = self.inner.codec.verify(token, self.now())?;
        if self.inner.revocations.is_revoked(&claims.jti, &claims.sid) {
            return Err(Rejection::Revoked);
        }
        Ok(AuthUser {
            id: claims.sub,
            session_id: claims.sid,
            jti: claims.jti,
            issued_at: claims.iat,
            expires_at: claims.exp,
            authenticated_at: claims.auth_time,
            claims: claims.app,
        })
    }

    /// Runs blocking store work on Tokio's blocking pool.
    pub(crate) async fn blocking<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.inner.store.clone();
        rocket::tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(|e| Error::Internal(format!("a blocking store task failed: {e}")))?
            .map_err(Error::from)
    }
}

fn app_claims(claims: impl Serialize) -> Result<Map<String, Value>, Error> {
    let map = match serde_json::to_value(claims) {
        Ok(Value::Object(map)) => map,
        Ok(Value::Null) => Map::new(),
        Ok(_) => return Err(Error::Internal("app claims must serialise to a JSON object".into())),
        Err(e) => return Err(Error::Internal(format!("app claims cannot be serialised: {e}"))),
    };
    if let Some(name) = RESERVED_CLAIMS.iter().find(|name| map.contains_key(**name)) {
        return Err(Error::Internal(format!(
            "the app claim `{name}` is set by rocket_sqlite_sessions itself; rename it"
        )));
    }
    Ok(map)
}

fn timestamp(unix_seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix_seconds, 0).unwrap_or_default()
}
