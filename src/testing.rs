//! Support for an app's own tests: its Rocket with the fairing on a fresh
//! temporary database and a clock the test moves.
//!
//! ```
//! use rocket::local::asynchronous::Client;
//! use rocket_sqlite_sessions::testing::TestHarness;
//!
//! # rocket::async_test(async {
//! let harness = TestHarness::new();
//! let rocket = harness.rocket().mount("/auth", rocket_sqlite_sessions::routes());
//! let client = Client::tracked(rocket).await.expect("valid rocket");
//!
//! // … log a user in, call the app …
//! harness.clock().advance(16 * 60); // past the default 15-minute access TTL
//! // … the access token is now refused …
//! # drop(client);
//! # });
//! ```
//!
//! Each harness owns a directory under the system's temporary directory, removed
//! when the harness is dropped. Build several Rockets from one harness to test a
//! restart on the same file.
//!
//! For a cookie-based app, a [`Browser`] is one browser on the local client:
//! its own cookie jar, user agent and client address, and the CSRF token of
//! the last page it read; several of them test several devices of one user.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use rocket::figment::Figment;
use rocket::{Build, Rocket};

pub use crate::clock::ManualClock;
use crate::crypto::{random_bytes, random_id};
use crate::sessions::Sessions;
pub use crate::web::test_browser::{Browser, Page};
use crate::web::SessionsFairing;

/// A temporary database, a fixed secret and a [`ManualClock`] for one test.
pub struct TestHarness {
    directory: PathBuf,
    clock: ManualClock,
    secret: String,
}

impl TestHarness {
    /// A fresh, empty temporary directory, a random secret and a manual clock set
    /// to the current time.
    ///
    /// # Panics
    /// When the temporary directory cannot be created.
    pub fn new() -> Self {
        let directory = std::env::temp_dir().join(format!("rocket_sqlite_sessions-{}", random_id()));
        std::fs::create_dir_all(&directory)
            .unwrap_or_else(|e| panic!("cannot create test directory {}: {e}", directory.display()));
        TestHarness {
            directory,
            clock: ManualClock::starting_now(),
            secret: base64::engine::general_purpose::STANDARD.encode(random_bytes::<32>()),
        }
    }

    /// The SQLite file the harness's Rockets use.
    pub fn database(&self) -> PathBuf {
        self.directory.join("sessions.db")
    }

    /// The temporary directory, for any other file a test needs.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The clock every Rocket of this harness uses.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// The base64 `sessions.secret` of this harness: tests can sign their own
    /// tokens with it.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Rocket's usual configuration (Rocket.toml, `ROCKET_*` variables) with
    /// `sessions.database` and `sessions.secret` pointing at this harness, and a
    /// random Rocket `secret_key`, for an app that turns on Rocket's `secrets`
    /// feature itself and runs its tests in the release profile (the crate
    /// needs none). `sessions.leeway` is 0 unless the app's configuration sets
    /// it: on the harness's one clock there is no skew to allow for, and a
    /// token then expires at the very second the clock passes its `exp`
    /// (`harness.clock().advance(access_ttl)` makes it refused).
    pub fn figment(&self) -> Figment {
        rocket::Config::figment()
            .join(("sessions.leeway", 0))
            .merge((
                "secret_key",
                base64::engine::general_purpose::STANDARD.encode(random_bytes::<32>()),
            ))
            .merge(("sessions.database", self.database()))
            .merge(("sessions.secret", self.secret.clone()))
    }

    /// The sessions fairing on this harness's clock.
    pub fn fairing(&self) -> SessionsFairing {
        Sessions::fairing().with_clock(self.clock.clone())
    }

    /// A Rocket on [`figment`](Self::figment) with [`fairing`](Self::fairing)
    /// attached; mount the app's routes on it.
    pub fn rocket(&self) -> Rocket<Build> {
        rocket::custom(self.figment()).attach(self.fairing())
    }
}

impl Default for TestHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestHarness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}
