//! Throttling of failed logins, counted in the store.
//!
//! Three counters, each over a window of `login_failure_window` seconds from
//! its first failure; past its limit, attempts get 429 with `Retry-After`
//! until the window ends, right password or not:
//!
//! - a username from one client network (an IPv4 address, an IPv6 /64; an
//!   IPv4-mapped IPv6 address counts as IPv4): `login_max_failures`;
//! - a username from all networks together: `login_max_failures_global`,
//!   except from a network where that user signed in within
//!   `absolute_timeout`. Strangers guessing from elsewhere never lock a user
//!   out of a network they use, yet a spread-out attack on one account gets at
//!   most this many guesses a window;
//! - a client network over all usernames: `ip_max_failures`.
//!
//! Throttled attempts are not counted, so a lockout ends on time. The limits
//! of the policy: someone sharing the user's network (one NAT address, one
//! /64) can lock the user out of it for a window; a user on a new network
//! during a spread-out attack waits for the window to end.
//!
//! An attempt is counted when its check starts, in the same write that checks
//! the limit: concurrent guesses are counted one after the other, so no more
//! than the limit reach the password check. A check that passes takes its
//! count back, and a counter back at zero is deleted: a successful login
//! leaves no counter behind. A check in progress is also a row (deleted when
//! it ends): a launch takes back the counts of the rows it finds, so a process
//! killed during right-password logins locks no network out. With several
//! processes on one database, a launch also takes back another's checks in
//! flight at that moment (those attempts no longer count: at most one per
//! request in flight, once per launch).
//!
//! Refresh tokens are not throttled: a forged one fails its tag without a
//! store lookup, and guessing a genuine one is hopeless (256 random bits).
//!
//! Scopes are an HMAC of the username or network under a key derived from the
//! signing key: the store never holds a name or an address, and a stolen
//! database does not reveal them by hashing guesses. At most
//! `max_failure_scopes` counters are kept.

use std::net::IpAddr;

use ipnet::Ipv6Net;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use serde::Serialize;

use super::login::{bound_key, LoginMark, LoginOptions, TokenPair};
use super::Sessions;
use crate::client::{canonical, ClientInfo};
use crate::error::Error;
use crate::hooks::{event_username, SessionEvent};
use crate::store::{Attempt, FailureScope, PassedCredentials, ThrottledUntil};

/// The network an address is counted in: an IPv4 address alone, an IPv6 one by
/// its /64 (one host usually holds a whole /64).
fn network_of(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => Ipv6Net::new(v6, 64).expect("64 is a prefix length").trunc().to_string(),
    }
}

/// A credential check under way, returned by [`Sessions::credential_check`]
/// once the username and client are not throttled. The attempt is already
/// counted as a failure; report a success with [`passed`](Self::passed), which
/// takes it back. [`failed`](Self::failed), or dropping the check, leaves it
/// counted. A check whose process dies before either (killed while hashing
/// the password) is taken back at the next launch: only failures that were
/// reported, or checks that were dropped, survive a restart.
///
/// ```no_run
/// # use rocket_sqlite_sessions::{ClientInfo, Error, Sessions, TokenPair};
/// # fn password_matches(_: &str, _: &str) -> Option<String> { None }
/// async fn login(sessions: &Sessions, username: &str, password: &str, client: &ClientInfo)
///     -> Result<Option<TokenPair>, Error>
/// {
///     let check = sessions.credential_check(username, client).await?; // 429 when throttled
///     match password_matches(username, password) {
///         // Refused (409) if the user's password or roles changed meanwhile.
///         Some(user_id) => Ok(Some(check.login(&user_id, (), client).await?)),
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
    /// The username from this network.
    user_here: [u8; 32],
    /// The username from anywhere.
    user_anywhere: [u8; 32],
    /// That the user signed in from this network.
    known_network: [u8; 32],
    /// The network over all usernames.
    network: Option<[u8; 32]>,
    /// When the check began, as user-wide cut-offs count.
    mark: LoginMark,
    /// Its row marking the check in progress.
    pending: i64,
    /// Set once `passed` or `failed` took the check.
    reported: bool,
}

impl Drop for CredentialCheck {
    /// A check dropped unreported stays counted as a failure: its row in
    /// progress goes (in a task of its own), so no launch takes it back.
    fn drop(&mut self) {
        if self.reported {
            return;
        }
        if let Ok(runtime) = rocket::tokio::runtime::Handle::try_current() {
            let (store, pending) = (self.sessions.inner.store.clone(), self.pending);
            runtime.spawn(async move {
                let _ = store.attempt_failed(pending).await;
            });
        }
    }
}

impl Sessions {
    /// The throttling scope of `kind` and `parts` (each length-prefixed, so no
    /// two lists of parts give the same input).
    fn failure_scope(&self, kind: &str, parts: &[&str]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.inner.throttle_key).expect("HMAC takes any key length");
        mac.update(kind.as_bytes());
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    /// Starts a credential check for `username` from `client`: call it before
    /// checking a password, so a throttled attempt costs no password hashing.
    /// The attempt counts as a failure from here until
    /// [`CredentialCheck::passed`].
    ///
    /// Pass the username as the app looks it up (normalised the same way).
    ///
    /// # Errors
    /// [`Error::Throttled`] (429, `Retry-After`) when the username or the client's
    /// network has too many recent failures; [`Error::InvalidDpopProof`] or
    /// [`Error::UseDpopNonce`] when the request carries a DPoP proof that
    /// the login would refuse (so no password is hashed for it, and nothing
    /// counted); [`Error::Store`] when the store fails.
    pub async fn credential_check(&self, username: &str, client: &ClientInfo) -> Result<CredentialCheck, Error> {
        bound_key(client)?;
        let settings = &self.inner.settings.throttling;
        let network = client.ip.map(network_of);
        let here = network.as_deref().unwrap_or("unknown");
        let user_here = self.failure_scope("user from network", &[username, here]);
        let user_anywhere = self.failure_scope("user", &[username]);
        let known_network = self.failure_scope("known network", &[username, here]);
        let network = network.map(|network| self.failure_scope("network", &[&network]));
        let mut scopes = vec![
            FailureScope {
                key: user_here,
                limit: settings.login_max_failures,
                waived_by: None,
            },
            FailureScope {
                key: user_anywhere,
                limit: settings.login_max_failures_global,
                waived_by: Some(known_network),
            },
        ];
        scopes.extend(network.map(|key| FailureScope {
            key,
            limit: settings.ip_max_failures,
            waived_by: None,
        }));
        let now = self.inner.clock.now();
        let (window, capacity) = (settings.login_failure_window, settings.max_failure_scopes);
        let known_since = now.saturating_sub(self.inner.settings.lifetimes.absolute_timeout);
        let counted = self
            .inner
            .store
            .count_attempt(Attempt {
                scopes,
                now,
                window,
                known_since,
                capacity,
            })
            .await?;
        match counted {
            Ok(counted) => Ok(CredentialCheck {
                sessions: self.clone(),
                user_here,
                user_anywhere,
                known_network,
                network,
                mark: LoginMark {
                    seq: counted.seq,
                    at: now,
                },
                pending: counted.pending,
                reported: false,
            }),
            Err(ThrottledUntil(until)) => {
                let retry_after = until.saturating_sub(now).max(1) as u64;
                self.emit(|| SessionEvent::Throttled {
                    username: event_username(username),
                    ip: client.ip,
                    retry_after,
                    at: now,
                });
                Err(Error::Throttled { retry_after })
            }
        }
    }
}

impl CredentialCheck {
    /// When this check began, as user-wide cut-offs count: give it to the
    /// login ([`LoginOptions::after`]), or log in with
    /// [`login`](Self::login), which does.
    pub fn mark(&self) -> LoginMark {
        self.mark
    }

    /// The credentials were right: [`passed`](Self::passed), then the login
    /// of `user_id` ([`Sessions::login`]), refused with
    /// [`Error::LoginSuperseded`] (409) when a cut-off of the user came after
    /// this check began: its roles or password may have changed meanwhile.
    ///
    /// # Errors
    /// As [`passed`](Self::passed) and [`Sessions::login_with`].
    pub async fn login(
        self,
        user_id: impl std::fmt::Display,
        claims: impl Serialize,
        client: &ClientInfo,
    ) -> Result<TokenPair, Error> {
        self.login_with(user_id, claims, client, LoginOptions::new()).await
    }

    /// [`login`](Self::login) with the login's own options
    /// ([`Sessions::login_with`]).
    ///
    /// # Errors
    /// As [`login`](Self::login).
    pub async fn login_with(
        self,
        user_id: impl std::fmt::Display,
        claims: impl Serialize,
        client: &ClientInfo,
        options: LoginOptions,
    ) -> Result<TokenPair, Error> {
        let (sessions, mark) = (self.sessions.clone(), self.mark);
        let new_network = self.passed_network().await?;
        let options = options.after(mark).network_was_new(new_network);
        sessions.login_with(user_id, claims, client, options).await
    }

    /// The credentials were right: the username's failures from this network
    /// are forgotten, this attempt no longer counts elsewhere, and the network
    /// is remembered as one the user signs in from.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails.
    pub async fn passed(self) -> Result<(), Error> {
        self.passed_network().await.map(|_| ())
    }

    /// [`passed`](Self::passed); whether the network was new for the user.
    async fn passed_network(mut self) -> Result<bool, Error> {
        self.reported = true;
        let settings = &self.sessions.inner.settings.throttling;
        let (window, capacity) = (settings.login_failure_window, settings.max_failure_scopes);
        let now = self.sessions.inner.clock.now();
        let (user_here, known_network) = (self.user_here, self.known_network);
        let mut uncount = vec![self.user_anywhere];
        uncount.extend(self.network);
        let new_network = self
            .sessions
            .inner
            .store
            .credentials_passed(PassedCredentials {
                pending: self.pending,
                forget: user_here,
                uncount,
                known_network,
                now,
                window,
                capacity,
            })
            .await?;
        Ok(new_network)
    }

    /// The credentials were wrong: the attempt stays counted for the username
    /// and the client's network (it was counted when the check started), now
    /// also across a restart.
    ///
    /// # Errors
    /// [`Error::Store`] when the store fails (the attempt stays counted
    /// until the next launch).
    pub async fn failed(mut self) -> Result<(), Error> {
        self.reported = true;
        self.sessions.inner.store.attempt_failed(self.pending).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let net = |ip: &str| network_of(ip.parse().unwrap());
        assert_eq!(net("2001:db8:1:2::1"), net("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        assert_eq!(net("::ffff:192.0.2.7"), net("192.0.2.7"));
        assert_ne!(net("192.0.2.7"), net("192.0.2.8"));
    }
}
