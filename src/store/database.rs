//! Where the sessions are kept: the backend the `database` key names, shown
//! without its password.

use std::path::PathBuf;

use serde::Deserialize;

/// What a SQLite write answered as done survives (the `durability` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Durability {
    /// Nothing answered is lost to a power cut or an OS crash: the WAL is
    /// synced at every commit (`PRAGMA synchronous = FULL`).
    #[default]
    PowerLoss,
    /// Nothing answered is lost when the process dies; a power cut or an OS
    /// crash may undo the last writes before the next checkpoint (about
    /// 200 ms): `PRAGMA synchronous = NORMAL`.
    ProcessCrash,
}

/// Where the sessions are kept: the backend `database` names.
#[derive(Clone)]
pub(crate) enum Database {
    /// A SQLite file, and what its writes survive (`durability`).
    Sqlite(PathBuf, Durability),
    /// A PostgreSQL URL, and the direct one the feed listens on when
    /// `database` goes through a pooler.
    #[cfg(feature = "postgres")]
    Postgres {
        url: String,
        listen: Option<String>,
        /// Through a pooler in transaction mode (`pooled`).
        pooled: bool,
    },
}

impl Database {
    /// The backend `database` names; the error says what is wrong with it.
    pub(crate) fn parse(database: &std::path::Path) -> Result<Database, String> {
        let text = database.to_string_lossy();
        if text.trim().is_empty() {
            return Err("must be a file path or a postgres:// URL".into());
        }
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            return Ok(Database::Sqlite(database.to_path_buf(), Durability::default()));
        }
        #[cfg(feature = "postgres")]
        {
            Ok(Database::Postgres {
                url: text.into_owned(),
                listen: None,
                pooled: false,
            })
        }
        #[cfg(not(feature = "postgres"))]
        {
            Err(
                "is a PostgreSQL URL, but rocket_sqlite_sessions was built without its `postgres` feature; \
                 enable it in Cargo.toml: rocket_sqlite_sessions = { version = \"…\", features = [\"postgres\"] }"
                    .into(),
            )
        }
    }
}

impl Database {
    /// This database, its feed listening on `listen` (`listen_database`);
    /// the error says what is wrong with it.
    pub(crate) fn listening_on(self, listen: Option<&str>) -> Result<Database, String> {
        let Some(listen) = listen else {
            return Ok(self);
        };
        match self {
            Database::Sqlite(..) => {
                let _ = listen;
                Err("is for a PostgreSQL `database` only; remove it".into())
            }
            #[cfg(feature = "postgres")]
            Database::Postgres { url, pooled, .. } => {
                if !(listen.starts_with("postgres://") || listen.starts_with("postgresql://")) {
                    return Err(
                        "must be a postgres:// URL of the same database, direct (not through the pooler)".into(),
                    );
                }
                Ok(Database::Postgres {
                    url,
                    listen: Some(listen.to_string()),
                    pooled,
                })
            }
        }
    }

    /// This database, reached through a pooler when `pooled` (the key of that
    /// name); the error says what is wrong with it.
    pub(crate) fn pooled(self, pooled: bool) -> Result<Database, String> {
        match self {
            Database::Sqlite(..) if pooled => Err("is for a PostgreSQL `database` only; remove it".into()),
            #[cfg(feature = "postgres")]
            Database::Postgres { url, listen, .. } => Ok(Database::Postgres { url, listen, pooled }),
            other => Ok(other),
        }
    }
}

impl Database {
    /// This database with `durability`; the error says what is wrong.
    pub(crate) fn durable(self, durability: Durability) -> Result<Database, String> {
        match self {
            Database::Sqlite(path, _) => Ok(Database::Sqlite(path, durability)),
            #[cfg(feature = "postgres")]
            Database::Postgres { .. } if durability != Durability::PowerLoss => Err(
                "is for a SQLite `database` only: on PostgreSQL the server's `synchronous_commit` decides what \
                 a commit survives, and the crate never weakens it; remove the key"
                    .into(),
            ),
            #[cfg(feature = "postgres")]
            other => Ok(other),
        }
    }
}

impl std::fmt::Display for Database {
    /// The file's path, or the URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path, _) => write!(f, "{}", path.display()),
            #[cfg(feature = "postgres")]
            Database::Postgres { url, .. } => f.write_str(&redact_password(url)),
        }
    }
}

/// `url` with the password of its user part, if any, replaced by `***`.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let redacted = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.find("password=") {
        Some(at) => {
            let end = tail[at..].find('&').map_or(tail.len(), |n| at + n);
            format!("{}password=***{}", &tail[..at], &tail[end..])
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{redacted}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_is_shown_without_its_password() {
        assert_eq!(
            redact_password("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_password("postgresql://u@h/db"), "postgresql://u@h/db");
        assert_eq!(
            redact_password("postgres:///db?host=/run/pg&password=pw&user=u"),
            "postgres:///db?host=/run/pg&password=***&user=u"
        );
        assert_eq!(redact_password("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
    }
}
