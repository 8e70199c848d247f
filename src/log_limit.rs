//! Log lines that a failure repeats (a checkpoint failing every 200 ms, a 503 on
//! every request while the disk is full) are written at most once a minute,
//! with the count of those held back: log volume does not grow with the
//! request rate.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The shortest time between two lines of one kind.
const INTERVAL: Duration = Duration::from_secs(60);

/// One kind of repeated log line.
pub(crate) struct LogLimit {
    state: Mutex<LimitState>,
}

struct LimitState {
    last_written: Option<Instant>,
    held_back: u64,
}

impl LogLimit {
    pub(crate) const fn new() -> Self {
        LogLimit {
            state: Mutex::new(LimitState {
                last_written: None,
                held_back: 0,
            }),
        }
    }

    /// Whether a line may be written at `now`: `Some(n)` with the number of
    /// lines held back since the last one written, or `None` to hold this one
    /// back too.
    pub(crate) fn admit(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.last_written {
            Some(last) if now.saturating_duration_since(last) < INTERVAL => {
                state.held_back += 1;
                None
            }
            _ => {
                state.last_written = Some(now);
                Some(std::mem::take(&mut state.held_back))
            }
        }
    }

    /// Logs `message` at `level` unless a line of this kind was written less
    /// than a minute ago.
    pub(crate) fn log(&self, level: log::Level, message: std::fmt::Arguments<'_>) {
        if let Some(held_back) = self.admit(Instant::now()) {
            if held_back == 0 {
                log::log!(level, "rocket_sqlite_sessions: {message}");
            } else {
                log::log!(
                    level,
                    "rocket_sqlite_sessions: {message} ({held_back} more like it in the last minute)"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_minute_with_the_count_held_back() {
        let limit = LogLimit::new();
        let start = Instant::now();
        assert_eq!(limit.admit(start), Some(0));
        for second in 1..60 {
            assert_eq!(limit.admit(start + Duration::from_secs(second)), None);
        }
        assert_eq!(limit.admit(start + Duration::from_secs(60)), Some(59));
        assert_eq!(limit.admit(start + Duration::from_secs(61)), None);
        assert_eq!(limit.admit(start + Duration::from_secs(200)), Some(1));
    }
}
