//! The PostgreSQL backend: production, and several tollgate instances on one database.

use std::str::FromStr;

use futures_util::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Pool, Postgres};

use super::sql::{Dialect, SqlStore};
use super::{Backend, OpenError};
use crate::config::Settings;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Dialect for Postgres {
    const BACKEND: Backend = Backend::Postgres;
    const LOCK_SUBJECT: Option<&'static str> = Some("SELECT pg_advisory_xact_lock($1)");
    const BEGIN_WRITE: &'static str = "BEGIN";

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }

    fn migrate(pool: &Pool<Self>) -> BoxFuture<'_, Result<(), sqlx::migrate::MigrateError>> {
        // The migrator takes an advisory lock, so instances starting together migrate once.
        Box::pin(MIGRATOR.run(pool))
    }
}

/// Connects to the PostgreSQL database at `url`.
pub(super) async fn open(url: &str, settings: &Settings) -> Result<SqlStore<Postgres>, OpenError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(OpenError::Connect)?
        .application_name("tollgate");
    let pool = PgPoolOptions::new()
        .max_connections(settings.database_max_connections.max(1))
        .acquire_timeout(settings.database_acquire_timeout)
        .connect_with(options)
        .await
        .map_err(OpenError::Connect)?;
    Ok(SqlStore::new(pool, Vec::new()))
}
