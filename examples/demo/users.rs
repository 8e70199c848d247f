//! The demo's users: their table (in the sessions file, or `demo_users`), their
//! roles, password hashing with Argon2id, and the claims their tokens carry.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use r2d2_sqlite::SqliteConnectionManager;
use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::{Orbit, Rocket};
use rocket_sqlite_sessions::{AuthUser, ClaimsDecision, Policy, Sessions, SessionsConfig};
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::{api_error, internal_error, unavailable, ApiError};

/// The rules for usernames and passwords.
pub(crate) const MIN_PASSWORD_CHARS: usize = 8;
pub(crate) const MAX_PASSWORD_BYTES: usize = 1024;
pub(crate) const MAX_USERNAME_CHARS: usize = 64;
/// What a client may send as a username, in bytes; anything longer is
/// refused before any other work.
pub(crate) const MAX_USERNAME_INPUT_BYTES: usize = 256;

fn invalid_username() -> ApiError {
    api_error(
        Status::UnprocessableEntity,
        "invalid_username",
        "The username must be 1 to 64 characters of one script: letters, digits and symbols, \
         no spaces, invisible or direction characters.",
    )
}

/// `raw` in the one form the demo stores and compares usernames in: the
/// PRECIS UsernameCaseMapped profile of RFC 8265 (full-width forms to their
/// usual width, lower case, NFC), after dropping outer ASCII spaces. Refused
/// (422): more than [`MAX_USERNAME_INPUT_BYTES`] sent, anything the profile
/// disallows (spaces, control, format such as U+200B and U+202E, and
/// separator characters such as U+2028), more than [`MAX_USERNAME_CHARS`]
/// characters, and letters of two of the Latin, Greek and Cyrillic scripts
/// (`аlice` with a Cyrillic `а` is not `alice`'s look-alike account).
pub(crate) fn canonical_username(raw: &str) -> Result<String, ApiError> {
    use precis_core::profile::PrecisFastInvocation;
    if raw.len() > MAX_USERNAME_INPUT_BYTES {
        return Err(invalid_username());
    }
    let enforced =
        precis_profiles::UsernameCaseMapped::enforce(raw.trim_matches(' ')).map_err(|_| invalid_username())?;
    if enforced.chars().count() > MAX_USERNAME_CHARS || mixes_scripts(&enforced) {
        return Err(invalid_username());
    }
    Ok(enforced.into_owned())
}

/// The form two usernames that look alike share, from the UTS #39
/// confusable skeletons of `unicode-security`: the skeleton of the name in
/// capitals (so that `ƅ` is `b`, as `Ƅ` is), lowered, and its skeleton again,
/// a combining dot above after `i`, `j` or `l` dropped (`i̇` is drawn as `i`).
/// `аӏісе` in Cyrillic, `ɑlice`, `alıce`, `aǀice`, `al1ce` and `alice` all
/// share one; so do `boƅ`, `bօb`, `b0b` and `bob`, and `rn` and `m`. Accented
/// letters stay apart (`rené` is not `rene`). A name is taken when its
/// skeleton is.
pub(crate) fn skeleton(canonical: &str) -> String {
    let capitals: String = unicode_security::skeleton(&canonical.to_uppercase()).collect();
    let mut out = String::with_capacity(canonical.len());
    for c in unicode_security::skeleton(&capitals.to_lowercase()) {
        if c == '\u{0307}' && (out.ends_with('i') || out.ends_with('j') || out.ends_with('l')) {
            continue;
        }
        out.push(c);
    }
    out
}

/// Whether `name` has letters of more than one of the scripts whose letters
/// look alike: Latin, Greek, Cyrillic.
fn mixes_scripts(name: &str) -> bool {
    let script = |c: char| match c {
        'a'..='z' | 'A'..='Z' | '\u{00C0}'..='\u{024F}' | '\u{1E00}'..='\u{1EFF}' => Some(0),
        '\u{0370}'..='\u{03FF}' | '\u{1F00}'..='\u{1FFF}' => Some(1),
        '\u{0400}'..='\u{052F}' => Some(2),
        _ => None,
    };
    let mut scripts = name.chars().filter_map(script);
    let first = scripts.next();
    scripts.any(|other| Some(other) != first)
}

/// The users table's connections; closed at shutdown ([`Pool::close`]).
#[derive(Clone)]
pub(crate) struct Pool {
    inner: Arc<RwLock<Option<r2d2::Pool<SqliteConnectionManager>>>>,
    /// The database's `-shm` file.
    shm: std::path::PathBuf,
}

impl Pool {
    /// A connection, once the database's `-shm` file can be written: SQLite
    /// writes it through a memory mapping, and a write the kernel refuses
    /// (`chattr +i`, a read-only mount) kills the process with SIGBUS. The
    /// demo answers 503 instead, as the crate does.
    pub(crate) fn get(&self) -> Result<r2d2::PooledConnection<SqliteConnectionManager>, String> {
        #[cfg(unix)]
        match rustix::fs::access(&self.shm, rustix::fs::Access::WRITE_OK) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => {}
            Err(errno) => return Err(format!("`{}` cannot be written: {errno}", self.shm.display())),
        }
        let pool = self.inner.read().unwrap_or_else(PoisonError::into_inner).clone();
        pool.ok_or_else(|| "the users table was closed: the demo is stopping".to_string())?
            .get()
            .map_err(|e| e.to_string())
    }

    /// Closes the connections (those in use when they come back), so that
    /// a stopped demo leaves its database as one file.
    pub(crate) fn close(&self) {
        drop(self.inner.write().unwrap_or_else(PoisonError::into_inner).take());
    }
}

/// The demo's users table, in the sessions database file.
pub(crate) struct Users {
    pub(crate) pool: Pool,
}

/// The most registration hashes `rocket` (the demo) has computed at once.
// Read by tests/demo.rs, not by the app itself.
#[allow(dead_code)]
pub fn peak_concurrent_registration_hashes(rocket: &Rocket<Orbit>) -> usize {
    rocket
        .state::<PasswordHashing>()
        .map_or(0, |hashing| hashing.registrations_peak.load(Ordering::SeqCst))
}

/// The registration hashes `rocket` (the demo) has computed in all.
// Read by tests/demo.rs, not by the app itself.
#[allow(dead_code)]
pub fn registration_hashes(rocket: &Rocket<Orbit>) -> usize {
    rocket
        .state::<PasswordHashing>()
        .map_or(0, |hashing| hashing.registrations_hashed.load(Ordering::SeqCst))
}

/// The most password hashes `rocket` (the demo) has computed at once.
// Read by tests/demo.rs, not by the app itself.
#[allow(dead_code)]
pub fn peak_concurrent_hashes(rocket: &Rocket<Orbit>) -> usize {
    rocket
        .state::<PasswordHashing>()
        .map_or(0, |hashing| hashing.peak.load(Ordering::SeqCst))
}

/// Argon2 on at most one core each: a permit per core, and per permit a work
/// area allocated once and reused. (On Tokio's blocking pool without a cap,
/// 32 concurrent logins each allocated 19 MiB on their own thread, and glibc
/// kept the memory: 7 GB.)
pub(crate) struct PasswordHashing {
    permits: rocket::tokio::sync::Semaphore,
    /// Registrations hash one at a time: however many arrive, they hold at
    /// most one core, and sign-ins keep the others.
    registering: rocket::tokio::sync::Semaphore,
    /// Registration hashes being computed now, and the most ever at once.
    registrations_running: AtomicUsize,
    registrations_peak: AtomicUsize,
    /// Registration hashes computed in all.
    registrations_hashed: AtomicUsize,
    work_areas: Mutex<Vec<Vec<Block>>>,
    /// Hashes being computed now, and the most ever at once.
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl PasswordHashing {
    pub(crate) fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        PasswordHashing {
            permits: rocket::tokio::sync::Semaphore::new(cores),
            registering: rocket::tokio::sync::Semaphore::new(1),
            registrations_running: AtomicUsize::new(0),
            registrations_peak: AtomicUsize::new(0),
            registrations_hashed: AtomicUsize::new(0),
            work_areas: Mutex::new(Vec::new()),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// [`run`](Self::run) for a registration: once no other registration
    /// is hashing.
    pub(crate) async fn run_registration<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _turn = self.registering.acquire().await.map_err(|_| internal_error())?;
        let running = self.registrations_running.fetch_add(1, Ordering::SeqCst) + 1;
        self.registrations_peak.fetch_max(running, Ordering::SeqCst);
        let result = self.run(work).await;
        self.registrations_running.fetch_sub(1, Ordering::SeqCst);
        self.registrations_hashed.fetch_add(1, Ordering::SeqCst);
        result
    }

    /// Runs `work` with a work area, once a core is free.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self.permits.acquire().await.map_err(|_| internal_error())?;
        let mut area = self
            .work_areas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(running, Ordering::SeqCst);
        let done = rocket::tokio::task::spawn_blocking(move || {
            let result = work(&mut area);
            (area, result)
        })
        .await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        let (area, result) = done.map_err(|_| internal_error())?;
        self.work_areas.lock().unwrap_or_else(|e| e.into_inner()).push(area);
        Ok(result)
    }
}

/// Argon2 of `password` and `salt` into an output of `len` bytes, in `area`
/// (grown to the parameters' size the first time).
pub(crate) fn argon2_into(
    argon: &Argon2<'_>,
    password: &str,
    salt: &[u8],
    len: usize,
    area: &mut Vec<Block>,
) -> Result<Output, String> {
    let blocks = argon.params().block_count();
    if area.len() < blocks {
        area.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; len];
    argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut area[..])
        .map_err(|e| e.to_string())?;
    Output::new(&out).map_err(|e| e.to_string())
}

/// A new Argon2id hash of `password`, as a PHC string.
pub(crate) fn new_password_hash(password: &str, area: &mut Vec<Block>) -> Result<String, String> {
    let params = Params::default();
    let salt = Salt::generate();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let output = argon2_into(&argon, password, &salt, Params::DEFAULT_OUTPUT_LEN, area)?;
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(salt),
        hash: Some(output),
    }
    .to_string())
}

pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    rocket::tokio::task::spawn_blocking(work).await.unwrap_or_else(|_| {
        Err(api_error(
            Status::InternalServerError,
            "internal_error",
            "An internal error occurred.",
        ))
    })
}

/// Registers a user under `username`, which must be canonical
/// ([`canonical_username`]); the first one is the admin. Gives the id and
/// the role; 409 when the name is taken, in any of its look-alike forms.
pub(crate) async fn create_user(
    users: &Users,
    hashing: &PasswordHashing,
    username: String,
    password: String,
) -> Result<(i64, String), ApiError> {
    if canonical_username(&username).ok().as_deref() != Some(username.as_str()) {
        return Err(invalid_username());
    }
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(api_error(
            Status::UnprocessableEntity,
            "invalid_password",
            "The password must be at least 8 characters (and at most 1024 bytes).",
        ));
    }
    // A name taken (in any of its look-alike forms) costs no hashing.
    let skeleton = skeleton(&username);
    let pool = users.pool.clone();
    let taken = {
        let skeleton = skeleton.clone();
        blocking(move || {
            let connection = pool.get().map_err(unavailable)?;
            skeleton_taken(&connection, &skeleton).map_err(unavailable)
        })
        .await?
    };
    if taken {
        return Err(username_taken());
    }
    let hash = hashing
        .run_registration(move |area| new_password_hash(&password, area))
        .await?
        .map_err(unavailable)?;
    let pool = users.pool.clone();
    blocking(move || {
        let mut connection = pool.get().map_err(unavailable)?;
        // Checked again in the write: a look-alike registered meanwhile.
        let transaction = connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        if skeleton_taken(&transaction, &skeleton).map_err(unavailable)? {
            return Err(username_taken());
        }
        let inserted = transaction.query_row(
            "INSERT INTO demo_users (username, skeleton, password_hash, created_at, role)
             VALUES (?1, ?2, ?3, unixepoch(),
                     CASE WHEN EXISTS (SELECT 1 FROM demo_users) THEN 'member' ELSE 'admin' END)
             ON CONFLICT (username) DO NOTHING
             RETURNING id, role",
            rusqlite::params![username, skeleton, hash],
            |row| Ok((row.get(0)?, row.get(1)?)),
        );
        let user = match inserted {
            Err(rusqlite::Error::QueryReturnedNoRows) => return Err(username_taken()),
            Ok(user) => user,
            Err(e) => return Err(unavailable(e)),
        };
        transaction.commit().map_err(unavailable)?;
        Ok(user)
    })
    .await
}

fn username_taken() -> ApiError {
    api_error(Status::Conflict, "username_taken", "That username is taken.")
}

/// Whether a user's name has `skeleton` (see [`skeleton`]).
fn skeleton_taken(connection: &rusqlite::Connection, skeleton: &str) -> rusqlite::Result<bool> {
    connection.query_row(
        "SELECT EXISTS (SELECT 1 FROM demo_users WHERE skeleton = ?1)",
        [skeleton],
        |row| row.get(0),
    )
}

/// A hash to verify against when the username is unknown, so both failures take
/// the same time.
pub(crate) fn decoy_hash(area: &mut Vec<Block>) -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| new_password_hash("decoy password", area).expect("hashing a constant succeeds"))
}

/// The id and password hash of `username`, if there is such a user.
/// The id, password hash and role of `username`.
pub(crate) fn find_user(
    connection: &rusqlite::Connection,
    username: &str,
) -> Result<Option<(i64, String, Verified)>, ApiError> {
    connection
        .query_row(
            "SELECT id, password_hash, role, banned FROM demo_users WHERE username = ?1",
            [username],
            |row| {
                let verified = Verified {
                    id: row.get(0)?,
                    role: row.get(2)?,
                    banned: row.get(3)?,
                };
                Ok((verified.id, row.get(1)?, verified))
            },
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(unavailable(e)),
        })
}

/// Whether `password` matches `stored`, an Argon2 PHC string, computed in
/// `area` (compared in constant time).
pub(crate) fn password_matches(password: &str, stored: &str, area: &mut Vec<Block>) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(hash.algorithm.as_str()), Params::try_from(&hash)) else {
        return false;
    };
    let Ok(version) = hash.version.map_or(Ok(Version::V0x13), Version::try_from) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params);
    argon2_into(&argon, password, &salt, expected.len(), area).is_ok_and(|computed| computed == expected)
}

/// The user id when `password` is `username`'s; `None` otherwise. Unknown users
/// cost the same password hash as known ones.
/// A user whose password was right: their id and role, and whether an admin
/// banned them (then they may not sign in).
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    pub(crate) id: i64,
    pub(crate) role: String,
    pub(crate) banned: bool,
}

pub(crate) async fn verify_credentials(
    users: &Users,
    hashing: &PasswordHashing,
    username: String,
    password: String,
) -> Result<Option<Verified>, ApiError> {
    let pool = users.pool.clone();
    let found = blocking(move || {
        let connection = pool.get().map_err(unavailable)?;
        find_user(&connection, &username)
    })
    .await?;
    hashing
        .run(move |area| {
            let matches = match &found {
                Some((_, stored, _)) => password_matches(&password, stored, area),
                // Unknown user: the same work, a certain no.
                None => {
                    std::hint::black_box(password_matches(&password, decoy_hash(area), area));
                    false
                }
            };
            found.filter(|_| matches).map(|(_, _, verified)| verified)
        })
        .await
}

/// The roles a user can have; the first user to register is the admin.
pub(crate) const ROLES: [&str; 2] = ["admin", "member"];

/// The claims every access token of a user's sessions carries, so pages, `/me`
/// and the admin guard answer without a database read. An admin's role change
/// rewrites them ([`Sessions::update_claims`](rocket_sqlite_sessions::Sessions::update_claims)).
pub(crate) fn user_claims(username: &str, role: &str) -> Value {
    json!({ "username": username, "roles": [role] })
}

/// The claims, typed, for guards (`AuthUser<Claims>`).
#[derive(Debug, Deserialize)]
pub(crate) struct Claims {
    pub(crate) username: String,
    #[serde(default)]
    pub(crate) roles: Vec<String>,
}

/// Who may manage users: the `Authorized<Admin>` guard.
pub(crate) struct Admin;

impl Policy for Admin {
    type Claims = Claims;

    fn allows(user: &AuthUser<Claims>) -> bool {
        user.claims.roles.iter().any(|role| role == "admin")
    }
}

/// Every user and their role, by username.
pub(crate) async fn list_users(users: &Users) -> Result<Vec<(String, String)>, ApiError> {
    let pool = users.pool.clone();
    blocking(move || {
        let connection = pool.get().map_err(unavailable)?;
        let mut statement = connection
            .prepare("SELECT username, role FROM demo_users ORDER BY username")
            .map_err(unavailable)?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(unavailable)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
    })
    .await
}

/// Sets `username`'s role; gives their id, or `None` for an unknown user.
/// The last admin who is not banned cannot be demoted: `Err` 409.
pub(crate) async fn set_role(users: &Users, username: String, role: &'static str) -> Result<Option<i64>, ApiError> {
    change_user(users, username, move |connection, username| {
        connection.query_row(
            "UPDATE demo_users SET role = ?2 WHERE username = ?1 RETURNING id",
            rusqlite::params![username, role],
            |row| row.get(0),
        )
    })
    .await
}

/// Bans `username` (they can no longer sign in or refresh); gives their id,
/// or `None` for an unknown user. The last admin who is not banned cannot be
/// banned: `Err` 409.
pub(crate) async fn ban(users: &Users, username: String) -> Result<Option<i64>, ApiError> {
    change_user(users, username, |connection, username| {
        connection.query_row(
            "UPDATE demo_users SET banned = 1 WHERE username = ?1 RETURNING id",
            [username],
            |row| row.get(0),
        )
    })
    .await
}

/// Runs `change` on `username` in one transaction that keeps an admin who is
/// not banned: the last one can be neither demoted nor banned (409).
async fn change_user(
    users: &Users,
    username: String,
    change: impl FnOnce(&rusqlite::Connection, &str) -> rusqlite::Result<i64> + Send + 'static,
) -> Result<Option<i64>, ApiError> {
    let pool = users.pool.clone();
    blocking(move || {
        let mut connection = pool.get().map_err(unavailable)?;
        let transaction = connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let id = match change(&transaction, &username) {
            Ok(id) => id,
            Err(rusqlite::Error::QueryReturnedNoRows) => return Ok(None),
            Err(e) => return Err(unavailable(e)),
        };
        let admins: i64 = transaction
            .query_row(
                "SELECT count(*) FROM demo_users WHERE role = 'admin' AND banned = 0",
                [],
                |row| row.get(0),
            )
            .map_err(unavailable)?;
        if admins == 0 {
            // Rolled back with the transaction.
            return Err(api_error(
                Status::Conflict,
                "last_admin",
                "This is the last admin: make another user admin first.",
            ));
        }
        transaction.commit().map_err(unavailable)?;
        Ok(Some(id))
    })
    .await
}

/// What the claims source says of user `user_id` at each refresh: their
/// claims from the table, or the end of the session when they are banned or
/// gone. A failed lookup is an error (the refresh answers 503).
pub(crate) fn claims_source(pool: Pool) -> impl rocket_sqlite_sessions::ClaimsSource {
    move |user_id: String| {
        let pool = pool.clone();
        async move {
            let looked_up = rocket::tokio::task::spawn_blocking(move || {
                let connection = pool.get().map_err(|e| e.to_string())?;
                connection
                    .query_row(
                        "SELECT username, role, banned FROM demo_users WHERE id = ?1",
                        [&user_id],
                        |row| {
                            Ok((
                                row.get::<_, String>(0)?,
                                row.get::<_, String>(1)?,
                                row.get::<_, bool>(2)?,
                            ))
                        },
                    )
                    .map(Some)
                    .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        e => Err(e.to_string()),
                    })
            })
            .await
            .map_err(|e| e.to_string())?;
            Ok::<_, String>(match looked_up? {
                None => ClaimsDecision::End("user deleted"),
                Some((_, _, true)) => ClaimsDecision::End("banned"),
                Some((username, role, false)) => ClaimsDecision::Replace(user_claims(&username, &role)),
            })
        }
    }
}

/// The username carried by `user`'s token (see [`user_claims`]).
pub(crate) fn username_of(user: &AuthUser) -> Option<String> {
    user.claim("username")
}

/// Gives the users registered before skeletons were kept theirs.
fn fill_skeletons(connection: &rusqlite::Connection) -> rusqlite::Result<()> {
    let names: Vec<(i64, String)> = connection
        .prepare("SELECT id, username FROM demo_users WHERE skeleton IS NULL")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (id, username) in names {
        connection.execute(
            "UPDATE demo_users SET skeleton = ?2 WHERE id = ?1",
            rusqlite::params![id, skeleton(&username)],
        )?;
    }
    Ok(())
}

/// The throttling scope of registrations, in the crate's failed-login
/// throttle (no username can be it: the demo's names have no control
/// characters). Every registration counts as a failure there: from one
/// network at most `login_max_failures` a window, from everywhere
/// `login_max_failures_global`, and each one counts toward the network's
/// `ip_max_failures` too.
pub(crate) const REGISTRATION_SCOPE: &str = "\u{0}registration";

/// Closes the users table's connections at shutdown.
pub(crate) fn users_closer() -> AdHoc {
    AdHoc::on_shutdown("demo users closed", |rocket| {
        Box::pin(async move {
            if let Some(users) = rocket.state::<Users>() {
                users.pool.close();
            }
        })
    })
}

/// Opens the demo's users table: in the sessions file, or in the SQLite file
/// `demo_users` names (needed when the sessions are in PostgreSQL).
pub(crate) fn users_fairing() -> AdHoc {
    AdHoc::try_on_ignite("demo users", |rocket| async {
        if rocket.state::<Sessions>().is_none() {
            // The sessions fairing failed and said why: open nothing.
            return Err(rocket);
        }
        let database = match rocket.figment().extract_inner::<std::path::PathBuf>("demo_users") {
            Ok(path) => path,
            Err(_) => match SessionsConfig::from_figment(rocket.figment()) {
                Ok(config) if config.database.to_string_lossy().starts_with("postgres") => {
                    log::error!(
                        "demo: the sessions are in PostgreSQL; name a SQLite file for the demo's users: \
                         `demo_users = \"users.db\"` in Rocket.toml or ROCKET_DEMO_USERS=users.db"
                    );
                    return Err(rocket);
                }
                Ok(config) => config.database,
                Err(e) => {
                    log::error!("demo: {e}");
                    return Err(rocket);
                }
            },
        };
        let manager = SqliteConnectionManager::file(&database).with_init(|c| {
            c.busy_timeout(std::time::Duration::from_secs(5))?;
            c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
        });
        let mut shm = database.clone().into_os_string();
        shm.push("-shm");
        let opened = r2d2::Pool::builder()
            .max_size(4)
            .build(manager)
            .map(|inner| Pool {
                inner: Arc::new(RwLock::new(Some(inner))),
                shm: shm.into(),
            })
            .map_err(|e| e.to_string())
            .and_then(|pool| {
                pool.get()
                    .map_err(|e| e.to_string())?
                    .execute_batch(
                        "CREATE TABLE IF NOT EXISTS demo_users (
                         id            INTEGER PRIMARY KEY,
                         username      TEXT NOT NULL UNIQUE,
                         password_hash TEXT NOT NULL,
                         created_at    INTEGER NOT NULL
                     )",
                    )
                    .map_err(|e| e.to_string())?;
                // Roles came later: add the column to a table made before.
                let connection = pool.get().map_err(|e| e.to_string())?;
                let has_role = connection.prepare("SELECT role FROM demo_users LIMIT 0").is_ok();
                if !has_role {
                    connection
                        .execute_batch("ALTER TABLE demo_users ADD COLUMN role TEXT NOT NULL DEFAULT 'member'")
                        .map_err(|e| e.to_string())?;
                }
                // And bans later still.
                let has_banned = connection.prepare("SELECT banned FROM demo_users LIMIT 0").is_ok();
                if !has_banned {
                    connection
                        .execute_batch("ALTER TABLE demo_users ADD COLUMN banned INTEGER NOT NULL DEFAULT 0")
                        .map_err(|e| e.to_string())?;
                }
                // Then the look-alike skeletons, filled in for the names
                // registered before.
                let has_skeleton = connection.prepare("SELECT skeleton FROM demo_users LIMIT 0").is_ok();
                if !has_skeleton {
                    connection
                        .execute_batch(
                            "ALTER TABLE demo_users ADD COLUMN skeleton TEXT;
                             CREATE INDEX IF NOT EXISTS demo_users_by_skeleton ON demo_users (skeleton);",
                        )
                        .map_err(|e| e.to_string())?;
                }
                fill_skeletons(&connection).map_err(|e| e.to_string())?;
                Ok(pool)
            });
        match opened {
            Ok(pool) => {
                // Roles and bans come from the table at each refresh: the
                // pool exists only now, after the sessions.
                if let Some(sessions) = rocket.state::<Sessions>() {
                    sessions.set_claims_source(claims_source(pool.clone()));
                }
                Ok(rocket.manage(Users { pool }))
            }
            Err(e) => {
                log::error!("demo: cannot open the users table in `{}`: {e}", database.display());
                Err(rocket)
            }
        }
    })
}
