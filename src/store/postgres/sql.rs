//! Running statements, in one of two ways:
//!
//! - **Prepared** (the default, a direct connection): each statement is
//!   prepared once per connection and kept (`deadpool-postgres`'s statement
//!   cache); a use is Bind, Execute and Sync. The server parses and plans it
//!   once.
//! - **Unnamed** (`pooled = true`: a pooler in *transaction* mode, PgBouncer
//!   or Supavisor, between the app and PostgreSQL): each statement is the
//!   unnamed one, sent as Parse, Bind, Execute and Sync in one batch (one
//!   round trip too), its parameters' types given. Nothing of it outlives the
//!   statement on the server connection, whichever that is; named statements,
//!   cached across transactions, met other clients' on the pooler's server
//!   connections (`prepared statement "s6" already exists`). The server parses
//!   and plans it each time.
//!
//! The store runs each operation in the scope of its [`Mode`] ([`MODE`]).

use deadpool_postgres::{ClientWrapper, Transaction};
use rocket::futures::TryStreamExt as _;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{GenericClient, Row};

/// How statements are sent (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Prepared,
    Unnamed,
}

rocket::tokio::task_local! {
    /// The mode of the store operation running on this task.
    pub(super) static MODE: Mode;
}

/// The mode of the operation in progress; unnamed outside any (it works
/// everywhere).
fn mode() -> Mode {
    MODE.try_with(|mode| *mode).unwrap_or(Mode::Unnamed)
}

/// A connection or a transaction of the pool: both run statements either way.
pub(super) trait Statements: Sync {
    /// The client or transaction underneath.
    fn pg(&self) -> &(impl GenericClient + Sync);
    /// `sql` prepared with `types`, from this connection's cache.
    fn prepared(
        &self,
        sql: &str,
        types: &[Type],
    ) -> impl std::future::Future<Output = Result<tokio_postgres::Statement, tokio_postgres::Error>> + Send;
}

impl Statements for Transaction<'_> {
    fn pg(&self) -> &(impl GenericClient + Sync) {
        &**self
    }

    async fn prepared(&self, sql: &str, types: &[Type]) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
        self.prepare_typed_cached(sql, types).await
    }
}

impl Statements for ClientWrapper {
    fn pg(&self) -> &(impl GenericClient + Sync) {
        &**self
    }

    async fn prepared(&self, sql: &str, types: &[Type]) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
        self.prepare_typed_cached(sql, types).await
    }
}

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

/// `sql` prepared for `params`, from the cache.
async fn prepare(
    client: &impl Statements,
    sql: &str,
    params: &[Typed<'_>],
) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
    let types: Vec<Type> = params.iter().map(|(_, ty)| ty.clone()).collect();
    client.prepared(sql, &types).await
}

/// The values of `params`, for a prepared statement.
fn values<'a>(params: &'a [Typed<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|(value, _)| *value).collect()
}

/// The rows of `sql`.
pub(super) async fn query(
    client: &impl Statements,
    sql: &str,
    params: &[Typed<'_>],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    match mode() {
        Mode::Unnamed => client.pg().query_typed(sql, params).await,
        Mode::Prepared => {
            let statement = prepare(client, sql, params).await?;
            client.pg().query(&statement, &values(params)).await
        }
    }
}

/// The one row of `sql`, or none.
pub(super) async fn query_opt(
    client: &impl Statements,
    sql: &str,
    params: &[Typed<'_>],
) -> Result<Option<Row>, tokio_postgres::Error> {
    match mode() {
        Mode::Unnamed => client.pg().query_typed_opt(sql, params).await,
        Mode::Prepared => {
            let statement = prepare(client, sql, params).await?;
            client.pg().query_opt(&statement, &values(params)).await
        }
    }
}

/// The one row of `sql`.
pub(super) async fn query_one(
    client: &impl Statements,
    sql: &str,
    params: &[Typed<'_>],
) -> Result<Row, tokio_postgres::Error> {
    match mode() {
        Mode::Unnamed => client.pg().query_typed_one(sql, params).await,
        Mode::Prepared => {
            let statement = prepare(client, sql, params).await?;
            client.pg().query_one(&statement, &values(params)).await
        }
    }
}

/// Runs `sql`; the rows it changed.
pub(super) async fn execute(
    client: &impl Statements,
    sql: &str,
    params: &[Typed<'_>],
) -> Result<u64, tokio_postgres::Error> {
    match mode() {
        Mode::Unnamed => {
            let rows = client.pg().query_typed_raw(sql, params.iter().cloned()).await?;
            let mut rows = std::pin::pin!(rows);
            while rows.try_next().await?.is_some() {}
            Ok(rows.rows_affected().unwrap_or(0))
        }
        Mode::Prepared => {
            let statement = prepare(client, sql, params).await?;
            client.pg().execute(&statement, &values(params)).await
        }
    }
}
