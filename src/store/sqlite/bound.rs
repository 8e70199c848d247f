//! Sessions bound to a browser's device key (DBSC).

use rusqlite::{params, OptionalExtension};

use super::{Reader, Tx};
use crate::store::StoreError;

impl Tx<'_> {
    /// Binds session `id` to a device key, unless it is bound to a key
    /// already (a device's or a DPoP client's), revoked, or expired at `now`.
    pub(crate) fn bind_device(&self, id: &str, thumbprint: &str, key: &str, now: i64) -> Result<bool, StoreError> {
        let bound = self
            .0
            .prepare_cached(
                "UPDATE sessions SET dbsc_jkt = ?2, dbsc_key = ?3
                 WHERE id = ?1 AND dbsc_jkt IS NULL AND dpop_jkt IS NULL AND revoked_at IS NULL AND expires_at > ?4",
            )?
            .execute(params![id, thumbprint, key, now])?;
        Ok(bound == 1)
    }
}

impl Reader<'_> {
    /// The device key session `id` is bound to, when it is.
    pub(crate) fn device_key(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .prepare_cached("SELECT dbsc_key FROM sessions WHERE id = ?1")?
            .query_row([id], |row| row.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }
}
