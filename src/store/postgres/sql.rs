//! Running statements so that a connection pooler in *transaction* mode
//! (PgBouncer, Supavisor) can sit between the app and PostgreSQL: each one is
//! the unnamed statement, sent as Parse, Bind, Execute and Sync in one batch
//! (one round trip), with its parameters' types given. Nothing of it outlives
//! the statement on the server connection, whichever that is; named prepared
//! statements, cached across transactions, met other clients' on the pooler's
//! server connections (`prepared statement "s6" already exists`).

use rocket::futures::TryStreamExt as _;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{GenericClient, Row};

/// A parameter and the PostgreSQL type it is sent as.
pub(super) trait Param: ToSql + Sync {
    /// The column type this Rust type is sent as.
    const TYPE: Type;
}

impl Param for i64 {
    const TYPE: Type = Type::INT8;
}

impl Param for i32 {
    const TYPE: Type = Type::INT4;
}

impl Param for bool {
    const TYPE: Type = Type::BOOL;
}

impl Param for String {
    const TYPE: Type = Type::TEXT;
}

impl Param for &str {
    const TYPE: Type = Type::TEXT;
}

impl Param for &[u8] {
    const TYPE: Type = Type::BYTEA;
}

impl Param for Vec<&[u8]> {
    const TYPE: Type = Type::BYTEA_ARRAY;
}

impl Param for &[&[u8]] {
    const TYPE: Type = Type::BYTEA_ARRAY;
}

impl<T: Param> Param for Option<T> {
    const TYPE: Type = T::TYPE;
}

impl<T: Param> Param for &T {
    const TYPE: Type = T::TYPE;
}

/// One parameter of a statement.
pub(super) type Typed<'a> = (&'a (dyn ToSql + Sync), Type);

/// `value` with its type, for a statement's parameter list.
pub(super) fn p<T: Param>(value: &T) -> Typed<'_> {
    (value, T::TYPE)
}

/// The rows of `sql`.
pub(super) async fn query(
    client: &impl GenericClient,
    sql: &str,
    params: &[Typed<'_>],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    client.query_typed(sql, params).await
}

/// The one row of `sql`, or none.
pub(super) async fn query_opt(
    client: &impl GenericClient,
    sql: &str,
    params: &[Typed<'_>],
) -> Result<Option<Row>, tokio_postgres::Error> {
    client.query_typed_opt(sql, params).await
}

/// The one row of `sql`.
pub(super) async fn query_one(
    client: &impl GenericClient,
    sql: &str,
    params: &[Typed<'_>],
) -> Result<Row, tokio_postgres::Error> {
    client.query_typed_one(sql, params).await
}

/// Runs `sql`; the rows it changed.
pub(super) async fn execute(
    client: &impl GenericClient,
    sql: &str,
    params: &[Typed<'_>],
) -> Result<u64, tokio_postgres::Error> {
    let rows = client.query_typed_raw(sql, params.iter().cloned()).await?;
    let mut rows = std::pin::pin!(rows);
    while rows.try_next().await?.is_some() {}
    Ok(rows.rows_affected().unwrap_or(0))
}
