//! Where "now" comes from, and what happens when the wall clock steps.
//!
//! Every expiry decision in the crate (token `exp`, refresh-token lifetime, idle and
//! absolute timeouts, blocklist retention) asks a [`Clock`], never the system time
//! directly, so tests can move time forward instead of sleeping.
//!
//! A wall clock can step: NTP corrects it, an operator sets it, a VM resumes.
//! The crate reads it through two lenses, both built from the wall clock and a
//! monotonic one:
//!
//! - [`Clock::now`] follows the wall clock forward but never goes back: after a
//!   backward step it keeps counting monotonic time from the highest reading,
//!   until the wall clock catches up. Tokens are issued and checked with it, so
//!   a token issued after a backward step is accepted by the server that issued
//!   it (its `iat` is never before its session's login).
//! - [`Clock::surely_passed`](Clock) trusts no forward step: it is the wall
//!   clock, but never later than the wall time at start plus the monotonic time
//!   elapsed since. Pruning uses it, so a forward step followed by a step back
//!   never deletes a revocation that can still reject a token.
//!   `surely_passed() <= now()` always holds: whatever pruning forgets is
//!   expired for the guard too.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A source of the current time in unix seconds.
///
/// [`Clock::system`] is what production uses; [`ManualClock`] converts into a clock
/// that only moves when a test says so.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    state: Arc<ClockState>,
}

#[derive(Debug)]
struct ClockState {
    source: Source,
    /// Wall minus monotonic time (ms) when the clock was made.
    first_offset: i64,
    /// The largest wall minus monotonic time (ms) seen: forward steps raise it,
    /// backward steps leave it.
    largest_offset: AtomicI64,
}

#[derive(Debug)]
enum Source {
    System { origin: Instant },
    Manual(ManualClock),
}

impl Default for ClockState {
    fn default() -> Self {
        ClockState::new(Source::System { origin: Instant::now() })
    }
}

impl ClockState {
    fn new(source: Source) -> Self {
        let (wall, monotonic) = source.read();
        ClockState {
            source,
            first_offset: wall - monotonic,
            largest_offset: AtomicI64::new(wall - monotonic),
        }
    }
}

impl Source {
    /// Wall time (ms since the unix epoch) and monotonic time (ms).
    fn read(&self) -> (i64, i64) {
        match self {
            Source::System { origin } => (
                system_wall_ms(),
                i64::try_from(origin.elapsed().as_millis()).unwrap_or(i64::MAX),
            ),
            Source::Manual(manual) => (
                manual.wall_ms.load(Ordering::SeqCst),
                manual.monotonic_ms.load(Ordering::SeqCst),
            ),
        }
    }
}

impl Clock {
    /// The system's wall clock (with its monotonic clock to tell steps).
    pub fn system() -> Self {
        Clock::default()
    }

    /// The current time in seconds since the unix epoch: the wall clock, except
    /// that it never goes backwards (see the module docs).
    pub fn now(&self) -> i64 {
        let state = &*self.state;
        let (wall, monotonic) = state.source.read();
        let offset = wall - monotonic;
        let mut largest = state.largest_offset.load(Ordering::Relaxed);
        if offset > largest {
            largest = state.largest_offset.fetch_max(offset, Ordering::Relaxed).max(offset);
        }
        monotonic.saturating_add(largest).div_euclid(1000)
    }

    /// A time that has certainly been reached: the wall clock, but no later than
    /// its reading at start plus the monotonic time elapsed since. Never later
    /// than [`now`](Self::now).
    pub(crate) fn surely_passed(&self) -> i64 {
        let (wall, monotonic) = self.state.source.read();
        wall.min(monotonic.saturating_add(self.state.first_offset))
            .div_euclid(1000)
    }
}

/// A clock that stands still until it is moved: for tests of expiry and of
/// clock steps.
///
/// Clones share the same time, so a test keeps one handle and gives another to
/// [`SessionsFairing::with_clock`](crate::SessionsFairing::with_clock).
/// [`advance`](Self::advance) lets time pass; [`step`](Self::step) and
/// [`set`](Self::set) move the wall clock alone, as NTP or an operator does.
///
/// ```
/// use rocket_sqlite_sessions::testing::ManualClock;
/// use rocket_sqlite_sessions::Clock;
///
/// let manual = ManualClock::new(1_700_000_000);
/// let clock = Clock::from(manual.clone());
/// manual.advance(60);
/// assert_eq!(clock.now(), 1_700_000_060);
/// manual.step(-3600); // the wall clock steps back an hour
/// assert_eq!(clock.now(), 1_700_000_060, "now never goes backwards");
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    wall_ms: Arc<AtomicI64>,
    monotonic_ms: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock reading `unix_seconds`.
    pub fn new(unix_seconds: i64) -> Self {
        ManualClock {
            wall_ms: Arc::new(AtomicI64::new(unix_seconds.saturating_mul(1000))),
            monotonic_ms: Arc::new(AtomicI64::new(0)),
        }
    }

    /// A clock reading the system time at the moment of the call.
    pub fn starting_now() -> Self {
        Self::new(chrono::Utc::now().timestamp())
    }

    /// Lets `seconds` pass: the wall clock and the monotonic clock move
    /// together. A negative value steps the wall clock back instead, as
    /// [`step`](Self::step) does (monotonic time never goes back).
    pub fn advance(&self, seconds: i64) {
        self.step(seconds);
        if seconds > 0 {
            self.monotonic_ms
                .fetch_add(seconds.saturating_mul(1000), Ordering::SeqCst);
        }
    }

    /// Steps the wall clock by `seconds` (back when negative) while no time
    /// passes: an NTP correction or an operator setting the clock.
    pub fn step(&self, seconds: i64) {
        self.wall_ms.fetch_add(seconds.saturating_mul(1000), Ordering::SeqCst);
    }

    /// Sets the wall clock to `unix_seconds`, as a step (no time passes).
    pub fn set(&self, unix_seconds: i64) {
        self.wall_ms.store(unix_seconds.saturating_mul(1000), Ordering::SeqCst);
    }

    /// The wall time this clock reads, in unix seconds.
    pub fn now(&self) -> i64 {
        self.wall_ms.load(Ordering::SeqCst).div_euclid(1000)
    }
}

impl From<ManualClock> for Clock {
    fn from(manual: ManualClock) -> Self {
        Clock {
            state: Arc::new(ClockState::new(Source::Manual(manual))),
        }
    }
}

/// The system's wall clock in milliseconds since the epoch, floored (as
/// `chrono`'s `timestamp_millis`, without its calendar arithmetic: read on
/// every request).
fn system_wall_ms() -> i64 {
    let millis = |duration: std::time::Duration| i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(since) => millis(since),
        Err(before) => {
            let before = before.duration();
            -millis(before) - i64::from(before.subsec_nanos() % 1_000_000 != 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_wall_clock_reads_as_chrono_does() {
        let before = chrono::Utc::now().timestamp_millis();
        let ours = system_wall_ms();
        let after = chrono::Utc::now().timestamp_millis();
        assert!((before..=after).contains(&ours), "{before} <= {ours} <= {after}");
    }

    #[test]
    fn now_follows_forward_steps_and_ignores_backward_ones() {
        let manual = ManualClock::new(1000);
        let clock = Clock::from(manual.clone());
        manual.step(600);
        assert_eq!(clock.now(), 1600, "a forward step is followed");
        manual.step(-3600);
        assert_eq!(clock.now(), 1600, "a backward step is not");
        manual.advance(10);
        assert_eq!(clock.now(), 1610, "time keeps passing from the highest reading");
        manual.step(4000);
        assert_eq!(clock.now(), 2010, "until the wall clock is ahead again");
    }

    #[test]
    fn surely_passed_trusts_no_forward_step() {
        let manual = ManualClock::new(1000);
        let clock = Clock::from(manual.clone());
        manual.step(1200);
        assert_eq!(clock.surely_passed(), 1000);
        manual.advance(30);
        assert_eq!(clock.surely_passed(), 1030);
        manual.step(-2000);
        assert_eq!(
            clock.surely_passed(),
            230,
            "a backward step is believed: it only delays pruning"
        );
        assert!(clock.surely_passed() <= clock.now());
    }
}
