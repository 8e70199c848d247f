//! App data kept on the server-side session: the job of express-session or a
//! Redis session store, in the session's row. It is gone with the session.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use super::Sessions;
use crate::error::Error;

/// The most app data one session may hold, as JSON.
pub const MAX_SESSION_DATA_BYTES: usize = 64 * 1024;

fn parse(data: &str) -> Map<String, Value> {
    match serde_json::from_str(data) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

impl Sessions {
    /// The value stored under `key` on a live session, deserialised as `T`;
    /// `None` when nothing is stored there.
    ///
    /// ```no_run
    /// # use rocket::{get, State};
    /// # use rocket_sqlite_sessions::{AuthUser, Error, Sessions};
    /// #[get("/cart")]
    /// async fn cart(sessions: &State<Sessions>, user: AuthUser) -> Result<String, Error> {
    ///     let items: Vec<String> = sessions.session_value(&user.session_id, "cart").await?.unwrap_or_default();
    ///     Ok(items.join(", "))
    /// }
    /// ```
    ///
    /// # Errors
    /// [`Error::SessionNotFound`] when the session is revoked, expired or
    /// unknown; [`Error::InvalidArgument`] when the stored value is not a `T`;
    /// [`Error::Store`] when the store fails.
    pub async fn session_value<T: DeserializeOwned>(&self, session_id: &str, key: &str) -> Result<Option<T>, Error> {
        let now = self.inner.clock.now();
        let data = self
            .inner
            .store
            .session_data(session_id.to_string(), now)
            .await?
            .ok_or(Error::SessionNotFound)?;
        match parse(&data).remove(key) {
            None => Ok(None),
            Some(value) => serde_json::from_value(value)
                .map(Some)
                .map_err(|e| Error::InvalidArgument(format!("session value `{key}` has another type: {e}"))),
        }
    }

    /// Stores `value` under `key` on a live session, replacing what was there.
    ///
    /// # Errors
    /// [`Error::SessionNotFound`] when the session is revoked, expired or
    /// unknown; [`Error::InvalidArgument`] when `value` cannot be serialised or the
    /// session's data would pass [`MAX_SESSION_DATA_BYTES`]; [`Error::Store`]
    /// when the store fails.
    pub async fn set_session_value(&self, session_id: &str, key: &str, value: impl Serialize) -> Result<(), Error> {
        let value = serde_json::to_value(value)
            .map_err(|e| Error::InvalidArgument(format!("session value `{key}` cannot be serialised: {e}")))?;
        self.update_data(session_id, key.to_string(), Some(value)).await
    }

    /// Removes the value under `key` from a live session.
    ///
    /// # Errors
    /// As [`set_session_value`](Self::set_session_value).
    pub async fn remove_session_value(&self, session_id: &str, key: &str) -> Result<(), Error> {
        self.update_data(session_id, key.to_string(), None).await
    }

    async fn update_data(&self, session_id: &str, key: String, value: Option<Value>) -> Result<(), Error> {
        let now = self.inner.clock.now();
        let name = key.clone();
        let update = Box::new(move |current: &str| {
            let mut map = parse(current);
            match value {
                Some(value) => map.insert(key.clone(), value),
                None => map.remove(&key),
            };
            let data = Value::Object(map).to_string();
            // Past the limit, what was there is kept.
            (data.len() <= MAX_SESSION_DATA_BYTES).then_some(data)
        });
        let outcome = self
            .inner
            .store
            .update_session_data(session_id.to_string(), now, update)
            .await?;
        match outcome {
            None => Err(Error::SessionNotFound),
            Some(true) => Ok(()),
            Some(false) => Err(Error::InvalidArgument(format!(
                "session data would pass {MAX_SESSION_DATA_BYTES} bytes with `{name}`; keep large data in the app's own tables"
            ))),
        }
    }
}
