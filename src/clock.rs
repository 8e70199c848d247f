//! Where "now" comes from.
//!
//! Every expiry decision in the crate (token `exp`, refresh-token lifetime, idle and
//! absolute timeouts, blocklist retention) asks a [`Clock`], never the system time
//! directly, so tests can move time forward instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A source of the current time in unix seconds.
///
/// [`Clock::system`] is what production uses; [`ManualClock`] converts into a clock
/// that only moves when a test says so.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Self {
        Clock { manual: None }
    }

    /// The current time in seconds since the unix epoch.
    pub fn now(&self) -> i64 {
        match &self.manual {
            Some(seconds) => seconds.load(Ordering::SeqCst),
            None => chrono::Utc::now().timestamp(),
        }
    }
}

/// A clock that stands still until it is moved: for tests of expiry.
///
/// Clones share the same time, so a test keeps one handle and gives another to
/// [`SessionsFairing::with_clock`](crate::SessionsFairing::with_clock).
///
/// ```
/// use rocket_sqlite_sessions::{Clock, ManualClock};
///
/// let manual = ManualClock::new(1_700_000_000);
/// let clock = Clock::from(manual.clone());
/// manual.advance(60);
/// assert_eq!(clock.now(), 1_700_000_060);
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    seconds: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock reading `unix_seconds`.
    pub fn new(unix_seconds: i64) -> Self {
        ManualClock {
            seconds: Arc::new(AtomicI64::new(unix_seconds)),
        }
    }

    /// A clock reading the system time at the moment of the call.
    pub fn starting_now() -> Self {
        Self::new(Clock::system().now())
    }

    /// Moves the clock forward by `seconds` (backwards when negative).
    pub fn advance(&self, seconds: i64) {
        self.seconds.fetch_add(seconds, Ordering::SeqCst);
    }

    /// Sets the clock to `unix_seconds`.
    pub fn set(&self, unix_seconds: i64) {
        self.seconds.store(unix_seconds, Ordering::SeqCst);
    }

    /// The time this clock reads, in unix seconds.
    pub fn now(&self) -> i64 {
        self.seconds.load(Ordering::SeqCst)
    }
}

impl From<ManualClock> for Clock {
    fn from(manual: ManualClock) -> Self {
        Clock {
            manual: Some(manual.seconds),
        }
    }
}
