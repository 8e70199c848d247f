//! Sessions bound to a browser's device key (DBSC).

use deadpool_postgres::Object;

use super::sql::{self, p};
use crate::store::StoreError;

/// Binds session `id` to a device key, unless it is bound to a key already
/// (a device's or a DPoP client's), revoked, or expired at `now`.
pub(super) async fn bind_device(
    client: &Object,
    id: &str,
    thumbprint: &str,
    key: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let bound = sql::execute(
        &**client,
        "UPDATE sessions SET dbsc_jkt = $2, dbsc_key = $3
         WHERE id = $1 AND dbsc_jkt IS NULL AND dpop_jkt IS NULL AND revoked_at IS NULL AND expires_at > $4",
        &[p(&id), p(&thumbprint), p(&key), p(&now)],
    )
    .await?;
    Ok(bound == 1)
}

/// The device key session `id` is bound to, when it is.
pub(super) async fn device_key(client: &Object, id: &str) -> Result<Option<String>, StoreError> {
    Ok(
        sql::query_opt(&**client, "SELECT dbsc_key FROM sessions WHERE id = $1", &[p(&id)])
            .await?
            .and_then(|row| row.get::<_, Option<String>>(0)),
    )
}
