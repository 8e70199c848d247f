//! [`AuthUser`]: who the caller of a request is, as an access token says.
//! The request guard that produces it is in the web layer.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The authenticated caller of a request: a request guard.
///
/// ```
/// # use rocket::get;
/// use rocket_sqlite_sessions::AuthUser;
///
/// #[get("/")]
/// fn page(user: AuthUser) -> String {
///     format!("hello {}", user.id)
/// }
/// ```
///
/// It reads `Authorization: Bearer <access token>` (or `DPoP <access token>`
/// with a `DPoP` proof, for a session bound to a key: see [`Binding`]), or,
/// without that header, the
/// access cookie of a browser app (refreshing silently from the refresh cookie,
/// and requiring CSRF proof for unsafe methods: see [`Sessions::set_cookies`](crate::Sessions::set_cookies)).
/// It checks the signature with
/// the one algorithm pinned to the token's key (`kid`: HS256, EdDSA or ES256,
/// whatever `alg` the header names), the header (`typ`, `kid`, no extensions),
/// `exp`, `nbf`, `iat`, `iss` and `aud` when configured, that the token is not a
/// refresh token, that its `jti` is not blocklisted and its session not revoked.
/// The revocation checks are answered from memory: the guard never waits on
/// SQLite.
///
/// Every failure answers 401 with `WWW-Authenticate: Bearer
/// error="invalid_token"` (`DPoP error="…", algs="…"` for a DPoP request or
/// a bound token) and the same JSON body, whatever the cause. Use
/// `Option<AuthUser>` where signing in is optional: a missing or bad token then
/// gives `None`.
///
/// **Typed claims.** `AuthUser<C>` deserialises the app's claims into `C`,
/// once per request; a token whose claims are not a `C` is refused like any
/// bad token. The default, `AuthUser`, keeps them as a JSON object.
///
/// ```
/// # use rocket::get;
/// use rocket_sqlite_sessions::AuthUser;
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Claims {
///     roles: Vec<String>,
/// }
///
/// #[get("/admin")]
/// fn admin(user: AuthUser<Claims>) -> String {
///     format!("{} has roles {:?}", user.id, user.claims.roles)
/// }
/// ```
#[derive(Debug, Clone)]
pub struct AuthUser<C = Map<String, Value>> {
    /// The user id (`sub`), as given to [`Sessions::login`](crate::Sessions::login).
    pub id: String,
    /// The session this token belongs to (`sid`).
    pub session_id: String,
    /// The token's unique id (`jti`).
    pub jti: String,
    /// When the token was issued (`iat`), unix seconds.
    pub issued_at: i64,
    /// When the token expires (`exp`), unix seconds.
    pub expires_at: i64,
    /// When the user logged in to this session (`auth_time`), unix seconds: a
    /// refresh keeps it.
    pub authenticated_at: i64,
    /// The app's claims: given at login, or since then by
    /// [`Sessions::update_claims`](crate::Sessions::update_claims) or the fairing's
    /// [`claims_source`](crate::SessionsFairing::claims_source) at a refresh.
    pub claims: C,
    /// How the request proved it may use the token: [`Binding::Dpop`] when
    /// its session is bound to a key and the request carried that key's DPoP
    /// proof, [`Binding::Unbound`] for a bearer token or cookies. A route
    /// that must not be reached with a copied token alone can insist on
    /// [`is_sender_constrained`](Self::is_sender_constrained).
    pub binding: Binding,
}

/// How a request proved it may use its access token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Binding {
    /// A bearer token or the session cookies: whoever holds them.
    Unbound,
    /// DPoP (RFC 9449): the session is bound to a key, and the request
    /// carried a valid proof by it.
    Dpop {
        /// The key's RFC 7638 SHA-256 thumbprint, base64url (the token's
        /// `cnf.jkt`).
        thumbprint: String,
    },
    /// Device Bound Session Credentials: the session's cookies are bound to
    /// a key the browser keeps in the device, and this request's access
    /// cookie was renewed by a signature of that key.
    Device {
        /// The key's RFC 7638 SHA-256 thumbprint, base64url.
        thumbprint: String,
    },
}

impl<C> AuthUser<C> {
    /// Whether the request proved possession of the key its session is
    /// bound to (DPoP), so that a copied token alone could not have made it.
    pub fn is_sender_constrained(&self) -> bool {
        matches!(self.binding, Binding::Dpop { .. })
    }

    /// Whether the session is bound to the browser's device key (DBSC): its
    /// cookies cannot be renewed off the device that signed in.
    pub fn is_device_bound(&self) -> bool {
        matches!(self.binding, Binding::Device { .. })
    }
}

impl AuthUser {
    /// This user with the claims deserialised into `C` (moved, not
    /// deserialised again, when `C` is the JSON object itself).
    pub(crate) fn typed<C: DeserializeOwned + 'static>(self) -> Result<AuthUser<C>, serde_json::Error> {
        let AuthUser {
            id,
            session_id,
            jti,
            issued_at,
            expires_at,
            authenticated_at,
            claims,
            binding,
        } = self;
        // On the guard's path for every request: the default `C` takes the
        // map as it is, without an allocation or a parse.
        let mut slot = Some(claims);
        let same = (&mut slot as &mut dyn std::any::Any)
            .downcast_mut::<Option<C>>()
            .and_then(Option::take);
        let claims = match (same, slot) {
            (Some(same), _) => same,
            (None, Some(map)) => serde_json::from_value(Value::Object(map))?,
            (None, None) => unreachable!("the slot is emptied only when C is the map"),
        };
        Ok(AuthUser {
            id,
            session_id,
            jti,
            issued_at,
            expires_at,
            authenticated_at,
            claims,
            binding,
        })
    }

    /// One app claim, deserialised; `None` when absent or of another type.
    ///
    /// ```
    /// # fn roles(user: &rocket_sqlite_sessions::AuthUser) {
    /// let roles: Vec<String> = user.claim("roles").unwrap_or_default();
    /// # }
    /// ```
    pub fn claim<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        self.claims.get(name).and_then(|value| T::deserialize(value).ok())
    }
}

impl<C> AuthUser<C> {
    /// The user id as the type the app gave to
    /// [`Sessions::login`](crate::Sessions::login) (an `i64`, a `Uuid`…):
    /// `id` parsed with [`FromStr`](std::str::FromStr). The id was written by
    /// `Display` at login, so parsing it back gives the same value.
    ///
    /// # Errors
    /// The type's parse error when `id` is not one, as when the type differs
    /// from the one used at login.
    ///
    /// ```
    /// # fn page(user: rocket_sqlite_sessions::AuthUser) -> Result<(), std::num::ParseIntError> {
    /// let id: i64 = user.id_as()?;
    /// # Ok(()) }
    /// ```
    pub fn id_as<T: std::str::FromStr>(&self) -> Result<T, T::Err> {
        self.id.parse()
    }
}
