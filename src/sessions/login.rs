//! Logging in: a new session and its first token pair, and the signing of
//! every pair.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use super::Sessions;
use crate::client::{ClientInfo, ProofOutcome};
use crate::crypto::random_id;
use crate::error::Error;
use crate::hooks::SessionEvent;
use crate::store::{ClientRecord, Created, NewSession};
use crate::token::{stored_claims_are_plain, AccessClaims, Confirmation, RefreshToken, RESERVED_CLAIMS};
use crate::user::AuthUser;

/// A freshly issued access token and refresh token: the token response of
/// RFC 6749 §5.1 when serialised.
///
/// As a [`Responder`](rocket::response::Responder) it answers 200 with
/// `Cache-Control: no-store`.
#[derive(Clone, Serialize)]
#[non_exhaustive]
pub struct TokenPair {
    /// The JWT to send as `Authorization: Bearer …`, or, for a session
    /// bound to a DPoP key, as `Authorization: DPoP …` with a proof.
    pub access_token: String,
    /// `"Bearer"`, or `"DPoP"` for a session bound to a DPoP key (RFC 9449
    /// §5).
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
    /// Whether the session is bound to the browser's device key (DBSC): its
    /// refresh cookie then goes only to the DBSC refresh route.
    #[serde(skip)]
    pub(crate) device_bound: bool,
}

/// Per-login options for [`Sessions::login_with`]: the session's own
/// lifetimes, and whether its cookies outlive the browser session. Unset
/// lifetimes are the configured ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginOptions {
    refresh_ttl: Option<i64>,
    absolute_timeout: Option<i64>,
    persistent: bool,
    mark: Option<LoginMark>,
    /// Whether the credential check found the network new for the user
    /// (set by `CredentialCheck::login`).
    new_network: Option<bool>,
}

/// When a login's credentials were read, as user-wide cut-offs count:
/// [`CredentialCheck::mark`](crate::CredentialCheck::mark) (taken when the
/// check began), or [`Sessions::login_mark`] for an app that checks
/// credentials without one. Given to the login
/// ([`LoginOptions::after`]), it refuses the login when a cut-off of its user
/// came later: `logout_all`, `logout_others` (a password change) or
/// `update_claims` (a role change) made while the app was checking the
/// password or reading the roles. Then the login answers
/// [`Error::LoginSuperseded`] (409), and the user signs in again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginMark {
    /// The cut-off counter when the credentials were about to be read.
    pub(crate) seq: i64,
    /// When, on the sessions' clock: a mark is good for
    /// `login_failure_window` seconds.
    pub(crate) at: i64,
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
            mark: None,
            new_network: None,
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

    /// The login's credentials were read after `mark`: the login is refused
    /// ([`Error::LoginSuperseded`]) when a cut-off of its user came later
    /// (see [`LoginMark`]), or when the mark is older than
    /// `login_failure_window`. [`CredentialCheck::login`](crate::CredentialCheck::login)
    /// sets it for its own check.
    pub fn after(mut self, mark: LoginMark) -> Self {
        self.mark = Some(mark);
        self
    }

    /// What the credential check found of the client's network.
    pub(crate) fn network_was_new(mut self, new: bool) -> Self {
        self.new_network = Some(new);
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

/// What a session's next access token says: its user, session, app claims,
/// login time and lifetime.
pub(crate) struct Grant {
    pub user_id: String,
    pub session_id: String,
    pub app: AppClaims,
    pub logged_in_at: i64,
    pub session_expires_at: i64,
    pub persistent: bool,
    /// The thumbprint of the DPoP key the session is bound to.
    pub dpop_jkt: Option<String>,
    /// The thumbprint of the browser key the session is bound to (DBSC).
    pub dbsc_jkt: Option<String>,
}

/// The app claims an access token carries.
pub(crate) enum AppClaims {
    /// Claims in hand: given at login or by a claims source, or read from
    /// the store for a caller that wants the user the token names.
    Given(Map<String, Value>),
    /// The session's claims as the store holds them (a JSON object the
    /// crate wrote): when they are what the crate writes (one object,
    /// distinct names, none of the crate's own claims), copied into the
    /// token as they are, not parsed into a map and written again; else
    /// parsed as before.
    Stored(String),
}

/// A pair just issued, and the user its access token names.
pub(crate) struct Issued {
    pub pair: TokenPair,
    pub user: AuthUser,
}

impl Sessions {
    /// Starts a new session for `user_id` (after the app has checked the
    /// credentials) and issues its first token pair.
    ///
    /// `claims` are app claims copied into every access token of the session,
    /// e.g. `serde_json::json!({"roles": ["admin"]})`; pass `()` for none. The
    /// session id is always fresh and random, never chosen by the client.
    ///
    /// A login this way is not checked against user-wide cut-offs: a
    /// `logout_all`, `logout_others` or `update_claims` made while the app was
    /// reading the credentials does not reach it. Log in through the
    /// [`CredentialCheck`](crate::CredentialCheck)
    /// ([`CredentialCheck::login`](crate::CredentialCheck::login)), or give
    /// [`login_with`](Self::login_with) a [`LoginMark`] taken before reading
    /// the credentials.
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
    /// As [`login`](Self::login), and [`Error::LoginSuperseded`] when the
    /// options carry a [`LoginMark`] and a cut-off of the user came after it
    /// (or the mark is older than `login_failure_window`).
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
        let dpop_jkt = bound_key(client)?;
        if user_id.is_empty() {
            return Err(Error::InvalidArgument("login needs a non-empty user id".into()));
        }
        let lifetimes = &self.inner.settings.lifetimes;
        let refresh_ttl = options.refresh_ttl.unwrap_or(lifetimes.refresh_ttl);
        let absolute_timeout = options.absolute_timeout.unwrap_or(lifetimes.absolute_timeout);
        let now = self.now();
        let session_id = random_id();
        let refresh = self
            .inner
            .refresh_keys
            .first(&session_id)
            .expect("a random id is 16 bytes of base64url");
        let absolute_expires_at = now.saturating_add(absolute_timeout);
        let expires_at = now
            .saturating_add(lifetimes.idle_timeout)
            .min(now.saturating_add(refresh_ttl))
            .min(absolute_expires_at);
        let claims_json = Value::Object(app_claims.clone()).to_string();
        if let Some(mark) = options.mark {
            if now.saturating_sub(mark.at) > self.inner.settings.throttling.login_failure_window {
                log::debug!("rocket_sqlite_sessions: login of {user_id} refused: its credential check is too old");
                return Err(Error::LoginSuperseded);
            }
        }

        let created = self
            .inner
            .store
            .create_session(NewSession {
                id: session_id.clone(),
                user_id: user_id.to_string(),
                now,
                expires_at,
                absolute_expires_at,
                client: client_record(client),
                claims_json,
                refresh_hash: refresh.hash,
                refresh_ttl: options.refresh_ttl,
                persistent: options.persistent,
                checked_at_mark: options.mark.map(|mark| mark.seq),
                limit: self.inner.settings.session_limit,
                dpop_jkt: dpop_jkt.clone(),
            })
            .await?;
        let ended = match created {
            Created::Session { ended } => ended,
            Created::Superseded => {
                log::debug!(
                    "rocket_sqlite_sessions: login of {user_id} refused: a cut-off of the user came after its \
                     credentials were read"
                );
                return Err(Error::LoginSuperseded);
            }
            Created::TooMany => {
                log::debug!("rocket_sqlite_sessions: login of {user_id} refused: max_sessions reached");
                return Err(Error::TooManySessions);
            }
        };
        self.revoked_in_store(None, ended.iter().cloned(), now);
        for session_id in &ended {
            self.emit(|| SessionEvent::SessionRevoked {
                user_id: user_id.to_string(),
                session_id: session_id.clone(),
                reason: "session limit",
                actor: Some(user_id.to_string()),
                ip: client.ip,
                at: now,
            });
        }
        self.emit(|| SessionEvent::LoggedIn {
            user_id: user_id.to_string(),
            session_id: session_id.clone(),
            ip: client.ip,
            new_network: options.new_network,
            at: now,
        });
        let issued = self.issue(
            Grant {
                user_id: user_id.to_string(),
                session_id,
                app: AppClaims::Given(app_claims),
                logged_in_at: now,
                session_expires_at: expires_at,
                persistent: options.persistent,
                dpop_jkt,
                dbsc_jkt: None,
            },
            now,
            refresh.token,
        )?;
        Ok(issued.0)
    }

    /// A mark to take before reading a user's credentials (password hash,
    /// roles) when the app checks them without a
    /// [`CredentialCheck`](crate::CredentialCheck), and to give the login
    /// ([`LoginOptions::after`]): a cut-off of the user made while the app
    /// reads them refuses the login.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails.
    pub async fn login_mark(&self) -> Result<LoginMark, Error> {
        let at = self.now();
        let seq = self.inner.store.cutoff_mark().await?;
        Ok(LoginMark { seq, at })
    }

    /// Signs an access token for `grant` and pairs it with `refresh`; the
    /// user the token names comes with it when its claims were given as a
    /// map ([`AppClaims::Given`]), so that a caller holding the pair need not
    /// verify its own token again.
    ///
    /// # Errors
    /// [`Error::Internal`] for stored claims that are not a JSON object.
    pub(crate) fn issue(
        &self,
        grant: Grant,
        now: i64,
        refresh: RefreshToken,
    ) -> Result<(TokenPair, Option<AuthUser>), Error> {
        let codec = &self.inner.codec;
        let rules = codec.rules();
        let fresh_age = self.inner.settings.lifetimes.fresh_age;
        // An access token never outlives its session.
        let exp = now.saturating_add(rules.access_ttl).min(grant.session_expires_at);
        // A login later than now (this process started with a clock behind the
        // one that logged the user in) has an unknown age: say it is old enough
        // for FreshAuthUser to ask for a new one, and keep auth_time <= iat.
        let auth_time = if grant.logged_in_at <= now {
            grant.logged_in_at
        } else {
            now.saturating_sub(fresh_age.saturating_add(1))
        };
        let mut claims = AccessClaims {
            sub: grant.user_id,
            sid: grant.session_id,
            jti: random_id(),
            iat: now,
            exp,
            auth_time,
            nbf: None,
            iss: rules.issuer.clone(),
            aud: rules.audience.clone(),
            cnf: match (grant.dpop_jkt, grant.dbsc_jkt) {
                (None, None) => None,
                (jkt, dbsc) => Some(Confirmation { jkt, dbsc }),
            },
            app: Map::new(),
        };
        let stored = match grant.app {
            AppClaims::Stored(json) if stored_claims_are_plain(&json) => Some(json),
            // Any other shape (duplicated names: a hand-edited row) is parsed
            // into a map, as stored claims always were.
            AppClaims::Stored(json) => {
                claims.app = stored_claims(&json, &claims.sid)?;
                None
            }
            AppClaims::Given(map) => {
                claims.app = map;
                None
            }
        };
        let access_token = codec
            .sign(&claims, stored.as_deref())
            .map_err(|e| Error::Internal(format!("signing an access token failed: {e}")))?;
        let pair = TokenPair {
            access_token,
            token_type: if claims.cnf.as_ref().is_some_and(|cnf| cnf.jkt.is_some()) {
                "DPoP"
            } else {
                "Bearer"
            },
            expires_in: exp - now,
            refresh_token: refresh.encode(),
            refresh_expires_in: grant.session_expires_at - now,
            session_id: claims.sid.clone(),
            persistent: grant.persistent,
            device_bound: claims.cnf.as_ref().is_some_and(|cnf| cnf.dbsc.is_some()),
        };
        Ok((pair, stored.is_none().then(|| claims.into_user())))
    }
}

/// Session `session_id`'s stored claims read into a map.
///
/// # Errors
/// [`Error::Internal`] when they are not a JSON object.
pub(crate) fn stored_claims(json: &str, session_id: &str) -> Result<Map<String, Value>, Error> {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Error::Internal(format!("session {session_id} has corrupt claims"))),
    }
}

pub(crate) fn app_claims(claims: impl Serialize) -> Result<Map<String, Value>, Error> {
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
pub(crate) fn client_record(client: &ClientInfo) -> ClientRecord {
    ClientRecord {
        ip: client.ip.map(crate::client::ip_text),
        user_agent: client.user_agent.clone(),
    }
}

/// The key a login or refresh binds, or must match: the thumbprint of the
/// request's valid DPoP proof, `None` without one.
///
/// # Errors
/// [`Error::InvalidDpopProof`] or [`Error::UseDpopNonce`] for a proof that
/// failed a check.
pub(crate) fn bound_key(client: &ClientInfo) -> Result<Option<String>, Error> {
    match &client.proof {
        ProofOutcome::Absent => Ok(None),
        ProofOutcome::Key(thumbprint) => Ok(Some(thumbprint.clone())),
        ProofOutcome::Refused { nonce, reason } => {
            log::debug!("rocket_sqlite_sessions: {reason}");
            Err(if *nonce {
                Error::UseDpopNonce
            } else {
                Error::InvalidDpopProof
            })
        }
    }
}
