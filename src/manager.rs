//! [`Sessions`]: the managed state that logs in, refreshes, lists and revokes.

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

pub use crate::client::ClientInfo;
use crate::clock::Clock;
use crate::config::Settings;
use crate::error::Error;
use crate::guard::AuthUser;
use crate::hooks::{ClaimsSource, SessionEvent, SessionEvents};
use crate::revocation::Revocations;
use crate::rotation::{Decision, Presented, RotationPolicy};
use crate::store::{self, ClientRecord, NewSession, RefreshRequest, Revocation, Revoked, SessionStore};
use crate::token::{
    derive_key, random_id, AccessClaims, RefreshKeys, RefreshToken, Rejection, TokenCodec, RESERVED_CLAIMS,
};

/// Session management for one Rocket app: managed state put in place by
/// [`Sessions::fairing()`], reachable from handlers as `&State<Sessions>`.
///
/// Every method that touches SQLite runs it on Tokio's blocking pool (PostgreSQL
/// is asynchronous); checking an access token ([`AuthUser`]) never touches the
/// store at all.
#[derive(Clone)]
pub struct Sessions {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) codec: TokenCodec,
    /// Derive and tag refresh tokens.
    pub(crate) refresh_keys: RefreshKeys,
    /// Keys the throttling scopes (an HMAC, so no stored scope reveals a name
    /// or an address).
    pub(crate) throttle_key: [u8; 32],
    pub(crate) revocations: Revocations,
    pub(crate) clock: Clock,
    pub(crate) settings: Settings,
    /// CSRF keys derived from the signing keys, the first one current.
    pub(crate) csrf_keys: Vec<[u8; 32]>,
    /// Held for the length of a prune pass, so passes never overlap.
    pub(crate) prune_lock: rocket::tokio::sync::Mutex<()>,
    /// Set at shutdown: a prune pass stops before its next batch, the feed
    /// follower at its next wake-up.
    pub(crate) stopping: AtomicBool,
    /// Wakes the feed follower at shutdown.
    pub(crate) feed_stop: rocket::tokio::sync::Notify,
    /// The app's hooks.
    pub(crate) hooks: Hooks,
}

/// The app's hooks, registered on the fairing.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) claims_source: Option<Arc<dyn ClaimsSource>>,
    pub(crate) events: Option<Arc<dyn SessionEvents>>,
}

/// A freshly issued access token and refresh token: the token response of
/// RFC 6749 §5.1 when serialised.
///
/// As a [`Responder`](rocket::response::Responder) it answers 200 with
/// `Cache-Control: no-store`.
#[derive(Clone, Serialize)]
#[non_exhaustive]
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
    /// Seconds the refresh token can still be used: until its session expires
    /// unless refreshed (not part of the JSON body).
    #[serde(skip)]
    pub refresh_expires_in: i64,
    /// The session the pair belongs to (not part of the JSON body).
    #[serde(skip)]
    pub session_id: String,
    /// Whether its cookies outlive the browser session
    /// ([`LoginOptions::session_only`] makes it `false`; not part of the JSON
    /// body).
    #[serde(skip)]
    pub persistent: bool,
}

/// Per-login options for [`Sessions::login_with`]: the session's own
/// lifetimes, and whether its cookies outlive the browser session. Unset
/// lifetimes are the configured ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginOptions {
    refresh_ttl: Option<i64>,
    absolute_timeout: Option<i64>,
    persistent: bool,
}

impl Default for LoginOptions {
    fn default() -> Self {
        LoginOptions::new()
    }
}

impl LoginOptions {
    /// The configured lifetimes, persistent cookies.
    pub fn new() -> Self {
        LoginOptions {
            refresh_ttl: None,
            absolute_timeout: None,
            persistent: true,
        }
    }

    /// This session's refresh-token lifetime instead of `refresh_ttl`, kept at
    /// every refresh (whole seconds; at least one).
    pub fn refresh_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.refresh_ttl = Some(seconds(ttl));
        self
    }

    /// This session's absolute timeout instead of `absolute_timeout` (whole
    /// seconds; at least one).
    pub fn absolute_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.absolute_timeout = Some(seconds(timeout));
        self
    }

    /// "Remember me" off: the session cookies get no `Max-Age` or `Expires`,
    /// so the browser forgets them when it closes; silent refreshes keep them
    /// so. Bearer clients are not affected.
    pub fn session_only(mut self) -> Self {
        self.persistent = false;
        self
    }
}

/// A duration in whole seconds, at least one, at most a hundred years.
fn seconds(duration: std::time::Duration) -> i64 {
    const LONGEST: i64 = 100 * 365 * 86_400;
    i64::try_from(duration.as_secs()).unwrap_or(LONGEST).clamp(1, LONGEST)
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

/// One active session of a user, as listed to that user.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
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
    /// Opens the store, loads what is revoked into memory and starts following
    /// the revocation feed.
    pub(crate) async fn open(settings: Settings, clock: Clock, hooks: Hooks) -> Result<Sessions, Error> {
        let store = store::open(&settings.database).await?;
        let secrets = || settings.keys.iter().map(|key| key.secret.as_slice());
        let sessions = Sessions {
            inner: Arc::new(Inner {
                codec: TokenCodec::new(&settings),
                csrf_keys: secrets().map(crate::browser::csrf_key).collect(),
                refresh_keys: RefreshKeys::new(secrets()),
                throttle_key: derive_key(&settings.keys[0].secret, b"rocket_sqlite_sessions throttle key"),
                store,
                revocations: Revocations::default(),
                clock,
                settings,
                prune_lock: rocket::tokio::sync::Mutex::new(()),
                stopping: AtomicBool::new(false),
                feed_stop: rocket::tokio::sync::Notify::new(),
                hooks,
            }),
        };
        let cursor = sessions.load_revocations().await?;
        crate::feed::follow(&sessions, cursor);
        Ok(sessions)
    }

    /// Rebuilds the in-memory revocation state from the store: every revocation
    /// stored, whatever the clock says (pruning decides what is over). Gives
    /// the feed's position in the same snapshot.
    async fn load_revocations(&self) -> Result<i64, Error> {
        let snapshot = self.inner.store.load_revocations().await?;
        let (mut jtis, mut sessions) = (Vec::new(), Vec::new());
        for revoked in snapshot.revoked {
            match revoked {
                Revoked::Token { jti, expires_at } => jtis.push((jti, self.token_revocation_until(expires_at))),
                Revoked::Session { id, revoked_at } => sessions.push((id, self.session_revocation_until(revoked_at))),
            }
        }
        self.inner.revocations.load(jtis, sessions);
        let (jtis, sessions) = self.inner.revocations.len();
        log::info!("rocket_sqlite_sessions: {jtis} blocklisted tokens and {sessions} revoked sessions loaded");
        Ok(snapshot.cursor)
    }

    fn now(&self) -> i64 {
        self.inner.clock.now()
    }

    /// The last moment a blocklisted access token expiring at `exp` can be
    /// accepted.
    fn token_revocation_until(&self, exp: i64) -> i64 {
        exp.saturating_add(self.inner.settings.leeway)
    }

    /// The last moment an access token issued before `revoked_at` can be accepted.
    fn session_revocation_until(&self, revoked_at: i64) -> i64 {
        let settings = &self.inner.settings;
        revoked_at
            .saturating_add(settings.access_ttl)
            .saturating_add(settings.leeway)
    }

    /// Tells the app's [`SessionEvents`], if any, of `event` (committed).
    pub(crate) fn emit(&self, event: impl FnOnce() -> SessionEvent) {
        if let Some(events) = &self.inner.hooks.events {
            events.on_event(&event());
        }
    }

    /// Puts a revocation (read from the feed, or just committed) into memory.
    pub(crate) fn apply_revoked(&self, revoked: Revoked) {
        let revocations = &self.inner.revocations;
        match revoked {
            Revoked::Token { jti, expires_at } => revocations.revoke_jti(jti, self.token_revocation_until(expires_at)),
            Revoked::Session { id, revoked_at } => {
                revocations.revoke_session(id, self.session_revocation_until(revoked_at))
            }
        }
    }

    /// Puts revocations the store has committed into memory: the blocklisted
    /// token (its `jti` and `exp`) and the sessions, revoked at `now`.
    fn revoked_in_store(&self, token: Option<(&str, i64)>, sessions: impl IntoIterator<Item = String>, now: i64) {
        if let Some((jti, expires_at)) = token {
            self.apply_revoked(Revoked::Token {
                jti: jti.to_string(),
                expires_at,
            });
        }
        for id in sessions {
            self.apply_revoked(Revoked::Session { id, revoked_at: now });
        }
    }

    /// Starts a new session for `user_id` (after the app has checked the
    /// credentials) and issues its first token pair.
    ///
    /// `claims` are app claims copied into every access token of the session,
    /// e.g. `serde_json::json!({"roles": ["admin"]})`; pass `()` for none. The
    /// session id is always fresh and random, never chosen by the client.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `claims` is not a JSON object or uses a
    /// name the crate sets itself (`sub`, `sid`, `jti`, `iat`, `exp`, `nbf`,
    /// `iss`, `aud`, `typ`), or the user id is empty; [`Error::Store`] when the
    /// session cannot be stored. No token is returned unless its session is
    /// committed.
    pub async fn login(
        &self,
        user_id: impl fmt::Display,
        claims: impl Serialize,
        client: &ClientInfo,
    ) -> Result<TokenPair, Error> {
        self.login_with(user_id, claims, client, LoginOptions::new()).await
    }

    /// [`login`](Self::login) with per-login options: a session's own refresh
    /// and absolute lifetimes, and session-only cookies ("remember me" off).
    ///
    /// ```
    /// # async fn sign_in(sessions: &rocket_sqlite_sessions::Sessions, client: &rocket_sqlite_sessions::ClientInfo, remember: bool) -> Result<(), rocket_sqlite_sessions::Error> {
    /// use std::time::Duration;
    /// use rocket_sqlite_sessions::LoginOptions;
    ///
    /// let options = if remember {
    ///     LoginOptions::new().refresh_ttl(Duration::from_secs(30 * 86_400))
    /// } else {
    ///     LoginOptions::new().absolute_timeout(Duration::from_secs(8 * 3600)).session_only()
    /// };
    /// let pair = sessions.login_with(42, (), client, options).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`login`](Self::login).
    pub async fn login_with(
        &self,
        user_id: impl fmt::Display,
        claims: impl Serialize,
        client: &ClientInfo,
        options: LoginOptions,
    ) -> Result<TokenPair, Error> {
        let user_id = user_id.to_string();
        let user_id = user_id.as_str();
        let app_claims = app_claims(claims)?;
        if user_id.is_empty() {
            return Err(Error::InvalidArgument("login needs a non-empty user id".into()));
        }
        let refresh_ttl = options.refresh_ttl.unwrap_or(self.inner.settings.refresh_ttl);
        let absolute_timeout = options.absolute_timeout.unwrap_or(self.inner.settings.absolute_timeout);
        let settings = &self.inner.settings;
        let now = self.now();
        let session_id = random_id();
        let refresh = self
            .inner
            .refresh_keys
            .first(&session_id)
            .expect("a random id is 16 bytes of base64url");
        let absolute_expires_at = now.saturating_add(absolute_timeout);
        let expires_at = now
            .saturating_add(settings.idle_timeout)
            .min(now.saturating_add(refresh_ttl))
            .min(absolute_expires_at);
        let claims_json = Value::Object(app_claims.clone()).to_string();

        self.inner
            .store
            .create_session(NewSession {
                id: session_id.clone(),
                user_id: user_id.to_string(),
                now,
                expires_at,
                absolute_expires_at,
                client: client_record(client),
                claims_json,
                refresh_hash: refresh.hash(),
                refresh_ttl: options.refresh_ttl,
                persistent: options.persistent,
            })
            .await?;
        self.emit(|| SessionEvent::LoggedIn {
            user_id: user_id.to_string(),
            session_id: session_id.clone(),
            ip: client.ip,
        });
        self.issue(
            user_id.to_string(),
            session_id,
            app_claims,
            now,
            now,
            expires_at,
            refresh,
            options.persistent,
        )
    }

    /// Exchanges a refresh token for a new pair, rotating it: the presented token
    /// is spent and its successor returned.
    ///
    /// A session has one live branch of refresh tokens. Presenting an earlier
    /// token of the session is reuse (RFC 9700 §4.14.2): the whole session is
    /// revoked, its newest refresh token and its access tokens included. Within
    /// `reuse_grace` seconds of a rotation, the token it replaced gets the same
    /// successor again instead (two tabs refreshing at once), never a second
    /// branch. A token this server did not issue is refused without a store
    /// lookup.
    ///
    /// # Errors
    /// [`Error::InvalidToken`] for a token that is malformed, not issued by this
    /// server, expired, spent (reuse), or whose session is revoked or past its
    /// idle or absolute timeout; [`Error::Store`] when the store fails.
    pub async fn refresh(&self, presented: &str, client: &ClientInfo) -> Result<TokenPair, Error> {
        let refused = |reason: &dyn fmt::Display| {
            log::debug!("rocket_sqlite_sessions: refresh refused: {reason}");
            Err(Error::InvalidToken)
        };
        let Some(token) = RefreshToken::parse(presented) else {
            return refused(&Rejection::Malformed);
        };
        let keys = &self.inner.refresh_keys;
        if !keys.issued(&token) {
            return refused(&"not a refresh token of this server");
        }
        let Some(successors) = keys.successors(&token) else {
            return refused(&"the last generation");
        };
        let session_id = token.session_id();
        let presented = Presented {
            // Below i64::MAX: its successor's generation is (successors()).
            generation: token.generation() as i64,
            hash: token.hash(),
            successor_hashes: successors.iter().map(RefreshToken::hash).collect(),
        };
        let settings = &self.inner.settings;
        let policy = RotationPolicy {
            reuse_grace: settings.reuse_grace,
            idle_timeout: settings.idle_timeout,
            refresh_ttl: settings.refresh_ttl,
        };
        let now = self.now();
        let outcome = self
            .inner
            .store
            .refresh(RefreshRequest {
                session_id: session_id.clone(),
                presented,
                now,
                policy,
                client: client_record(client),
            })
            .await?;
        let Some((state, decision)) = outcome else {
            return refused(&"no such session");
        };
        let (key, session_expires_at) = match decision {
            Decision::Refuse(reason) => {
                return refused(&format_args!("session {session_id}: {reason}"));
            }
            Decision::Revoke => {
                self.revoked_in_store(None, [session_id.clone()], now);
                self.emit(|| SessionEvent::ReuseDetected {
                    user_id: state.user_id.clone(),
                    session_id: session_id.clone(),
                    ip: client.ip,
                });
                log::warn!(
                    "rocket_sqlite_sessions: a rotated refresh token of session {session_id} (user {}) was \
                     presented again; the session is revoked",
                    state.user_id
                );
                return Err(Error::InvalidToken);
            }
            Decision::Rotate { expires_at } => (0, expires_at),
            Decision::Replay { key } => (key, state.expires_at),
        };
        let app = match &self.inner.hooks.claims_source {
            Some(source) => match source.claims(&state.user_id).await {
                Some(claims) => Some(app_claims(claims)?),
                None => None,
            },
            None => None,
        };
        let app = match app {
            Some(app) => app,
            None => match serde_json::from_str::<Value>(&state.claims_json) {
                Ok(Value::Object(map)) => map,
                _ => return Err(Error::Internal(format!("session {session_id} has corrupt claims"))),
            },
        };
        self.emit(|| SessionEvent::Refreshed {
            user_id: state.user_id.clone(),
            session_id: session_id.clone(),
            ip: client.ip,
        });
        let successor = successors.into_iter().nth(key).expect("one successor per key");
        self.issue(
            state.user_id,
            session_id,
            app,
            state.created_at,
            now,
            session_expires_at,
            successor,
            state.persistent,
        )
    }

    /// The session a refresh token of this server belongs to, read from the
    /// token alone (its tag checked); `None` for anything else.
    pub(crate) fn refresh_token_session(&self, presented: &str) -> Option<String> {
        RefreshToken::parse(presented)
            .filter(|token| self.inner.refresh_keys.issued(token))
            .map(|token| token.session_id())
    }

    /// Signs an access token for a session and pairs it with `refresh`.
    #[allow(clippy::too_many_arguments)]
    fn issue(
        &self,
        user_id: String,
        session_id: String,
        app: Map<String, Value>,
        logged_in_at: i64,
        now: i64,
        session_expires_at: i64,
        refresh: RefreshToken,
        persistent: bool,
    ) -> Result<TokenPair, Error> {
        let codec = &self.inner.codec;
        let settings = &self.inner.settings;
        // An access token never outlives its session.
        let exp = now.saturating_add(settings.access_ttl).min(session_expires_at);
        // A login later than now (this process started with a clock behind the
        // one that logged the user in) has an unknown age: say it is old enough
        // for FreshAuthUser to ask for a new one, and keep auth_time <= iat.
        let auth_time = if logged_in_at <= now {
            logged_in_at
        } else {
            now.saturating_sub(settings.fresh_age.saturating_add(1))
        };
        let claims = AccessClaims {
            sub: user_id,
            sid: session_id.clone(),
            jti: random_id(),
            iat: now,
            exp,
            auth_time,
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
            refresh_token: refresh.encode(),
            refresh_expires_in: session_expires_at - now,
            session_id,
            persistent,
        })
    }

    /// Ends the session `user` authenticated with: its access token's `jti` is
    /// blocklisted until its `exp`, the session and its refresh tokens revoked.
    ///
    /// The revocation is stored first and then applied in memory, so the two
    /// never disagree: when this fails nothing was revoked anywhere and the
    /// call can be repeated.
    ///
    /// # Errors
    /// [`Error::Store`] when the revocation cannot be stored; then nothing was
    /// revoked.
    pub async fn logout<C>(&self, user: &AuthUser<C>) -> Result<(), Error> {
        let now = self.now();
        let revocation = Revocation::Session {
            session_id: user.session_id.clone(),
            reason: "logout",
            blocklist: Some((user.jti.clone(), user.expires_at)),
        };
        let ended = self.inner.store.revoke(revocation, now).await?;
        self.revoked_in_store(Some((&user.jti, user.expires_at)), [user.session_id.clone()], now);
        if !ended.is_empty() {
            self.emit(|| SessionEvent::LoggedOut {
                user_id: user.id.clone(),
                session_id: user.session_id.clone(),
            });
        }
        Ok(())
    }

    /// Ends every session of `user_id` (logout everywhere). Returns how many were
    /// live.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails; then nothing was revoked.
    pub async fn logout_all(&self, user_id: impl fmt::Display) -> Result<usize, Error> {
        self.revoke_sessions_of(&user_id.to_string(), None, None, "logout everywhere")
            .await
    }

    /// [`logout_all`](Self::logout_all) for `user`, blocklisting its access
    /// token too, in one write: when it fails nothing was revoked.
    pub(crate) async fn logout_everywhere<C>(&self, user: &AuthUser<C>) -> Result<usize, Error> {
        let token = (user.jti.clone(), user.expires_at);
        self.revoke_sessions_of(&user.id, None, Some(token), "logout everywhere")
            .await
    }

    /// Ends every session of `user` except the one it authenticated with: after a
    /// password change (ASVS 3.3.3), the other devices must sign in again.
    /// Returns how many were live.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails; then nothing was revoked.
    pub async fn logout_others<C>(&self, user: &AuthUser<C>) -> Result<usize, Error> {
        self.revoke_sessions_of(&user.id, Some(&user.session_id), None, "other sessions ended")
            .await
    }

    /// Revokes every live session of `user_id` but `keep` (and blocklists
    /// `token`'s `jti`), in the store and then in memory; returns how many
    /// sessions there were.
    async fn revoke_sessions_of(
        &self,
        user_id: &str,
        keep: Option<&str>,
        token: Option<(String, i64)>,
        reason: &'static str,
    ) -> Result<usize, Error> {
        let now = self.now();
        let revocation = Revocation::UserSessions {
            user_id: user_id.to_string(),
            keep: keep.map(str::to_string),
            reason,
            blocklist: token.clone(),
        };
        let revoked = self.inner.store.revoke(revocation, now).await?;
        let count = revoked.len();
        for session_id in &revoked {
            self.emit(|| SessionEvent::SessionRevoked {
                user_id: user_id.to_string(),
                session_id: session_id.clone(),
                reason,
            });
        }
        self.revoked_in_store(token.as_ref().map(|(jti, exp)| (jti.as_str(), *exp)), revoked, now);
        Ok(count)
    }

    /// `Ok` when `user` logged in no more than `fresh_age` seconds ago, else
    /// `Err(fresh_age)`.
    pub(crate) fn check_fresh<C>(&self, user: &AuthUser<C>) -> Result<(), i64> {
        let settings = &self.inner.settings;
        // A login in the future (beyond the clock skew allowed) has an unknown
        // age: not fresh.
        let age = self.now().checked_sub(user.authenticated_at);
        if age.is_some_and(|age| (-settings.leeway..=settings.fresh_age).contains(&age)) {
            Ok(())
        } else {
            Err(settings.fresh_age)
        }
    }

    /// Replaces the app claims of every live session of `user_id`: from their
    /// next refresh on, their access tokens carry `claims` (a demoted admin
    /// loses the role at most `access_ttl` later). Returns how many sessions
    /// there were. Access tokens already issued keep their claims until they
    /// expire; end the sessions instead ([`logout_all`](Self::logout_all)) when
    /// that is too late.
    ///
    /// ```
    /// # async fn demote(sessions: &rocket_sqlite_sessions::Sessions) -> Result<(), rocket_sqlite_sessions::Error> {
    /// sessions.update_claims(42, serde_json::json!({ "roles": ["member"] })).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for claims that are not a JSON object or use a name
    /// the crate sets itself (as for [`login`](Self::login)); [`Error::Store`]
    /// when the store fails.
    pub async fn update_claims(&self, user_id: impl fmt::Display, claims: impl Serialize) -> Result<usize, Error> {
        let claims_json = Value::Object(app_claims(claims)?).to_string();
        Ok(self.inner.store.update_claims(user_id.to_string(), claims_json).await?)
    }

    /// The SQLite file the sessions are kept in (`None` on PostgreSQL): an
    /// app may keep its own tables in it, with its own connections. The crate
    /// owns its tables (listed in the crate docs) and `PRAGMA user_version`.
    pub fn database_path(&self) -> Option<&std::path::Path> {
        match &self.inner.settings.database {
            crate::config::Database::Sqlite(path) => Some(path),
            #[cfg(feature = "postgres")]
            crate::config::Database::Postgres(_) => None,
        }
    }

    /// The active sessions of `user_id`, most recently used first.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails.
    pub async fn sessions(&self, user_id: impl fmt::Display) -> Result<Vec<SessionInfo>, Error> {
        let now = self.now();
        let records = self.inner.store.active_sessions(user_id.to_string(), now).await?;
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
    pub async fn revoke_session(&self, user_id: impl fmt::Display, session_id: &str) -> Result<(), Error> {
        let user_id = user_id.to_string();
        if session_id.is_empty() || session_id.len() > 64 {
            return Err(Error::SessionNotFound);
        }
        let now = self.now();
        let revocation = Revocation::OwnSession {
            user_id: user_id.to_string(),
            session_id: session_id.to_string(),
        };
        let revoked = self.inner.store.revoke(revocation, now).await?;
        if revoked.is_empty() {
            return Err(Error::SessionNotFound);
        }
        self.emit(|| SessionEvent::SessionRevoked {
            user_id: user_id.clone(),
            session_id: session_id.to_string(),
            reason: "revoked by user",
        });
        self.revoked_in_store(None, [session_id.to_string()], now);
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
}

fn app_claims(claims: impl Serialize) -> Result<Map<String, Value>, Error> {
    let map = match serde_json::to_value(claims) {
        Ok(Value::Object(map)) => map,
        Ok(Value::Null) => Map::new(),
        Ok(_) => {
            return Err(Error::InvalidArgument(
                "app claims must serialise to a JSON object".into(),
            ))
        }
        Err(e) => return Err(Error::InvalidArgument(format!("app claims cannot be serialised: {e}"))),
    };
    if let Some(name) = RESERVED_CLAIMS.iter().find(|name| map.contains_key(**name)) {
        return Err(Error::InvalidArgument(format!(
            "the app claim `{name}` is set by rocket_sqlite_sessions itself; rename it"
        )));
    }
    Ok(map)
}

/// What the store records of a client.
fn client_record(client: &ClientInfo) -> ClientRecord {
    ClientRecord {
        ip: client.ip.map(|ip| ip.to_string()),
        user_agent: client.user_agent.clone(),
    }
}

fn timestamp(unix_seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix_seconds, 0).unwrap_or_default()
}
