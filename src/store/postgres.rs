//! The PostgreSQL backend: production, and several tollgate instances on one database.

use std::str::FromStr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::postgres::PgConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, Pool, Postgres};

use super::sql::{Dialect, SqlStore};
use super::{Backend, OpenError, StoreError, Unlock, UnlockRequest, connections, meter};
use crate::config::Settings;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a pooled connection may sit unused before it is checked before use.
const CHECK_IF_IDLE_FOR: Duration = Duration::from_secs(1);

impl Dialect for Postgres {
    const BACKEND: Backend = Backend::Postgres;
    const LOCK_SUBJECT: Option<&'static str> = Some("SELECT pg_advisory_xact_lock($1)");
    // Two int4 keys, a key space apart from the meter subjects' single bigint keys: 'tg' and 1.
    const LOCK_MIRROR: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(29799, 1)");
    const BEGIN_WRITE: &'static str = "BEGIN";

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }

    fn migrate(pool: &Pool<Self>) -> BoxFuture<'_, Result<(), sqlx::migrate::MigrateError>> {
        // The migrator takes an advisory lock, so instances starting together migrate once.
        Box::pin(MIGRATOR.run(pool))
    }

    const UNLOCKS_IN_ONE_STATEMENT: bool = true;

    fn unlock_batch<'a>(
        conn: &'a mut PgConnection,
        requests: &'a [UnlockRequest],
    ) -> BoxFuture<'a, Result<Vec<Unlock>, StoreError>> {
        Box::pin(meter::unlock_in_one_statement(conn, requests))
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
        // sqlx checks every connection before use by default, a round trip more for each query.
        // Only those that sat idle are checked, and every one for a while after a connection
        // failed (the database restarted, the network was cut), when others may be broken too.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > CHECK_IF_IDLE_FOR
                    || connections::failed_within(connections::CHECK_AFTER_FAILURE)
                {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .map_err(OpenError::Connect)?;
    Ok(SqlStore::new(pool, Vec::new()))
}
