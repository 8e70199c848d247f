//! The demo's logger: Rocket's levels, without Rocket's lines about each
//! request.
//!
//! Rocket logs every request at `log_level = "normal"` and still two lines per
//! refused request at `"critical"` (`>> Request guard … failed`, `>> Responding
//! with … catcher`): a client sending bad tokens would grow the log without
//! bound. Those lines have targets ending in `::_` (Rocket's mark for an
//! indented line) or `rocket::server`. Installed before Rocket builds, this
//! logger takes Rocket's place (Rocket installs its own only when none is set)
//! and drops them, except at `"debug"`; the demo's, the crate's and Rocket's
//! launch lines are kept.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use log::{Level, LevelFilter, Log, Metadata, Record};
use rocket::config::LogLevel;

struct DemoLogger {
    debug: bool,
}

/// Whether `target` is one of Rocket's per-request lines (the launch's lines,
/// and the shield's list of headers under its heading, are not).
fn per_request(target: &str) -> bool {
    !target.contains("rocket::launch")
        && !target.starts_with("rocket::shield")
        && (target.ends_with("::_") || target == "rocket::server")
}

/// Rocket's launch line, which it logs as a warning so that it shows at
/// `log_level = "critical"`: not a warning.
fn launch_line(record: &Record<'_>) -> bool {
    record.target().contains("rocket::launch")
}

impl Log for DemoLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level() && (self.debug || !per_request(metadata.target()))
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = match record.level() {
            Level::Error => writeln!(out, "Error: {}", record.args()),
            Level::Warn if !launch_line(record) => writeln!(out, "Warning: {}", record.args()),
            _ => writeln!(out, "{}", record.args()),
        };
    }

    fn flush(&self) {
        let _ = std::io::stdout().flush();
    }
}

/// Installs the demo's logger at the `log_level` of Rocket's configuration
/// (`Rocket.toml`, `ROCKET_LOG_LEVEL`).
pub(crate) fn install() {
    let level = rocket::Config::figment()
        .extract_inner::<LogLevel>("log_level")
        .unwrap_or(LogLevel::Normal);
    let filter = match level {
        LogLevel::Off => LevelFilter::Off,
        LogLevel::Critical => LevelFilter::Warn,
        LogLevel::Normal => LevelFilter::Info,
        LogLevel::Debug => LevelFilter::Trace,
    };
    let logger = DemoLogger {
        debug: level == LogLevel::Debug,
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(filter);
    }
}

/// A line that repeats with what clients do (a failing table, throttled
/// attempts), logged at most once a minute with how many were not.
pub(crate) struct EveryMinute {
    last: Mutex<Option<Instant>>,
    unlogged: AtomicU64,
}

impl EveryMinute {
    pub(crate) const fn new() -> Self {
        EveryMinute {
            last: Mutex::new(None),
            unlogged: AtomicU64::new(0),
        }
    }

    /// Logs `line` at `level`, unless a line was logged less than a minute ago.
    pub(crate) fn log(&self, level: Level, line: std::fmt::Arguments<'_>) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|at| at.elapsed() < Duration::from_secs(60)) {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(Instant::now());
        match self.unlogged.swap(0, Ordering::Relaxed) {
            0 => log::log!(level, "{line}"),
            n => log::log!(level, "{line} ({n} more in the last minute not logged)"),
        }
    }
}
