//! CSRF tokens: an HMAC of what the token is bound to (a session, or the
//! pre-session cookie of a login form) under a key derived from each signing
//! key. Never the JWT key itself.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::crypto::derive_key;

/// What a CSRF token is bound to.
#[derive(Clone, Copy)]
pub(crate) enum CsrfBinding<'a> {
    /// A signed-in session.
    Session(&'a str),
    /// The random value of the pre-session cookie (login forms).
    PreSession(&'a str),
}

impl CsrfBinding<'_> {
    fn message(&self) -> Vec<u8> {
        match self {
            CsrfBinding::Session(id) => [b"session\0".as_slice(), id.as_bytes()].concat(),
            CsrfBinding::PreSession(value) => [b"pre-session\0".as_slice(), value.as_bytes()].concat(),
        }
    }
}

/// The keys of CSRF tokens: one per signing key, derived from it, the first
/// current.
pub(crate) struct CsrfKeys(Vec<[u8; 32]>);

impl CsrfKeys {
    pub(crate) fn new<'a>(signing_secrets: impl IntoIterator<Item = &'a [u8]>) -> Self {
        CsrfKeys(
            signing_secrets
                .into_iter()
                .map(|secret| derive_key(secret, b"rocket_sqlite_sessions csrf key"))
                .collect(),
        )
    }

    /// The token of `binding` under the current key, base64url.
    pub(crate) fn token(&self, binding: CsrfBinding<'_>) -> String {
        URL_SAFE_NO_PAD.encode(mac(&self.0[0], binding).finalize().into_bytes())
    }

    /// Whether `presented` is the token of `binding` under any key (compared
    /// in constant time).
    pub(crate) fn matches(&self, binding: CsrfBinding<'_>, presented: &str) -> bool {
        let Ok(presented) = URL_SAFE_NO_PAD.decode(presented) else {
            return false;
        };
        self.0
            .iter()
            .any(|key| mac(key, binding).verify_slice(&presented).is_ok())
    }
}

fn mac(key: &[u8; 32], binding: CsrfBinding<'_>) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&binding.message());
    mac
}

/// Why a cookie-authenticated unsafe request was refused: for the debug log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CsrfRefusal {
    CrossSite,
    ForeignOrigin,
    MissingToken,
    WrongToken,
}

impl std::fmt::Display for CsrfRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CsrfRefusal::CrossSite => "Sec-Fetch-Site is cross-site",
            CsrfRefusal::ForeignOrigin => "the Origin is not the app's own",
            CsrfRefusal::MissingToken => "no CSRF token",
            CsrfRefusal::WrongToken => "the CSRF token is not this session's",
        })
    }
}
