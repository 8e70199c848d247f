//! Throttling of failed logins (and invalid refresh tokens), counted in SQLite.
//!
//! Per username: past `login_max_failures` failures within `login_failure_window`
//! seconds, every attempt on that username gets 429 with `Retry-After` until the
//! window has passed, right password or not. Per client IP the bar is higher
//! (`ip_max_failures`) and counts failed logins and invalid refresh tokens
//! together. Throttled attempts are not counted, so a lockout ends on time.

use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::manager::{ClientInfo, Sessions};

/// A throttling scope: the SHA-256 of its kind and key, so the store never holds
/// a username or an address.
fn scope(kind: &str, key: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(kind.as_bytes())
        .chain_update([0])
        .chain_update(key.as_bytes())
        .finalize()
        .into()
}

pub(crate) fn ip_scope(client: &ClientInfo) -> Option<[u8; 32]> {
    client.ip.map(|ip| scope("ip", &ip.to_string()))
}

/// A credential check under way, returned by [`Sessions::credential_check`]
/// once the username and client are not throttled. Report its result with
/// [`passed`](Self::passed) or [`failed`](Self::failed).
///
/// ```no_run
/// # use rocket_sqlite_sessions::{ClientInfo, Error, Sessions, TokenPair};
/// # fn password_matches(_: &str, _: &str) -> Option<String> { None }
/// async fn login(sessions: &Sessions, username: &str, password: &str, client: &ClientInfo)
///     -> Result<Option<TokenPair>, Error>
/// {
///     let check = sessions.credential_check(username, client).await?; // 429 when throttled
///     match password_matches(username, password) {
///         Some(user_id) => {
///             check.passed().await?;
///             Ok(Some(sessions.login(&user_id, (), client).await?))
///         }
///         None => {
///             check.failed().await?;
///             Ok(None) // the app answers 401
///         }
///     }
/// }
/// ```
#[must_use = "report the result with passed() or failed()"]
pub struct CredentialCheck {
    sessions: Sessions,
    user: [u8; 32],
    ip: Option<[u8; 32]>,
}

impl Sessions {
    /// Starts a credential check for `username` from `client`: call it before
    /// checking a password, so a throttled attempt costs no password hashing.
    ///
    /// Pass the username as the app looks it up (normalised the same way).
    ///
    /// # Errors
    /// [`Error::Throttled`] (429, `Retry-After`) when the username or the client's
    /// IP address has too many recent failures; [`Error::Store`] when the store
    /// fails.
    pub async fn credential_check(&self, username: &str, client: &ClientInfo) -> Result<CredentialCheck, Error> {
        let check = CredentialCheck {
            sessions: self.clone(),
            user: scope("user", username),
            ip: ip_scope(client),
        };
        let settings = &self.inner.settings;
        let (now, window) = (self.inner.clock.now(), settings.login_failure_window);
        let (user, ip) = (check.user, check.ip);
        let (user_limit, ip_limit) = (settings.login_max_failures, settings.ip_max_failures);
        let until = self
            .blocking(move |store| {
                let by_user = store.throttled_until(&user, now - window, user_limit, window)?;
                let by_ip = match ip {
                    Some(ip) => store.throttled_until(&ip, now - window, ip_limit, window)?,
                    None => None,
                };
                Ok(by_user.max(by_ip))
            })
            .await?;
        match until {
            Some(until) if until > now => Err(Error::Throttled {
                retry_after: (until - now) as u64,
            }),
            _ => Ok(check),
        }
    }

    /// Whether `client`'s IP address is throttled for refreshes: the seconds
    /// to wait, if so. Runs inside the refresh's write transaction.
    pub(crate) fn ip_retry_after(
        &self,
        connection: &rusqlite::Connection,
        ip: &[u8; 32],
        now: i64,
    ) -> Result<Option<u64>, crate::store::StoreError> {
        let settings = &self.inner.settings;
        let window = settings.login_failure_window;
        let until = crate::store::throttled_until_in(connection, ip, now - window, settings.ip_max_failures, window)?;
        Ok(until.filter(|until| *until > now).map(|until| (until - now) as u64))
    }

    /// Counts a failed attempt in each of `scopes`.
    pub(crate) async fn record_failure(&self, scopes: Vec<[u8; 32]>) -> Result<(), Error> {
        let now = self.inner.clock.now();
        self.blocking(move |store| store.record_failure(&scopes, now)).await
    }
}

impl CredentialCheck {
    /// The credentials were right: the username's failures are forgotten.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails.
    pub async fn passed(self) -> Result<(), Error> {
        let user = self.user;
        self.sessions.blocking(move |store| store.clear_failures(&user)).await
    }

    /// The credentials were wrong: one failure is counted for the username and
    /// for the client's IP address.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails.
    pub async fn failed(self) -> Result<(), Error> {
        let scopes = std::iter::once(self.user).chain(self.ip).collect();
        self.sessions.record_failure(scopes).await
    }
}
