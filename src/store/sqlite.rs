//! The SQLite backend: a file in WAL mode, durable commits, a bounded write-ahead log.

use std::str::FromStr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite};
use tokio::task::JoinHandle;

use super::dialect::{Backend, Dialect, SqlStore};
use super::error::{OpenError, StoreError};
use super::meter::MeterDialect;
use crate::config::views::DatabaseSettings;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Once the log has been checkpointed, SQLite truncates it back to at most this size.
const JOURNAL_SIZE_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

impl Dialect for Sqlite {
    const BACKEND: Backend = Backend::Sqlite;
    const PROBE: &'static str = "PRAGMA schema_version";
    const SKIP_LOCKED: &'static str = "";
    const STRING_AGG: &'static str = "group_concat";
    const COLUMN_HISTOGRAM: Option<&'static str> = None;
    const LOCK_MIRROR: Option<&'static str> = None;
    const LOCK_LICENCES: Option<&'static str> = None;
    const LOCK_GIVER: Option<&'static str> = None;
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const BODY_CONTAINS: &'static str = "instr(body, $2) > 0";
    const AFTER_ERASURE: Option<&'static str> = Some("PRAGMA wal_checkpoint(TRUNCATE)");

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }

    fn some_rows(table: &str, index: &str, condition: &str) -> String {
        format!(
            "rowid IN (SELECT rowid FROM {table} INDEXED BY {index} WHERE {condition} LIMIT $2)"
        )
    }

    fn migrate(pool: &Pool<Self>) -> BoxFuture<'_, Result<(), sqlx::migrate::MigrateError>> {
        Box::pin(MIGRATOR.run(pool))
    }

    fn copy_out<'a>(
        _pool: &'a Pool<Self>,
        _select: &'a str,
        _sink: &'a mut (dyn FnMut(&[u8]) -> Result<(), StoreError> + Send),
    ) -> Option<BoxFuture<'a, Result<(), StoreError>>> {
        None
    }
}

impl MeterDialect for Sqlite {
    const LOCK_SUBJECT: Option<&'static str> = None;
}

/// Opens (creating if need be) the SQLite database at `url`.
pub(super) async fn open(
    url: &str,
    settings: &DatabaseSettings<'_>,
) -> Result<SqlStore<Sqlite>, OpenError> {
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let options = SqliteConnectOptions::from_str(url)
        .map_err(OpenError::Connect)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a commit that was acknowledged survives a power cut, not only a process crash.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        // Deleted and rewritten content is overwritten with zeros, not left in free pages: an
        // erased reader's id must not be recoverable from the file.
        .pragma("secure_delete", "on")
        .busy_timeout(settings.sqlite_busy_timeout)
        .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT_BYTES.to_string());
    // Each connection to an in-memory database is a database of its own: keep exactly one.
    let max_connections = if in_memory {
        1
    } else {
        settings.max_connections
    };
    let pool = SqlitePoolOptions::new()
        .max_connections(max_connections)
        .min_connections(u32::from(in_memory))
        .idle_timeout((!in_memory).then_some(Duration::from_secs(600)))
        .max_lifetime(None)
        .acquire_timeout(settings.acquire_timeout)
        // A connection to a file cannot drop the way one over a network can, and checking it
        // costs a trip to its worker thread for every query.
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(OpenError::Connect)?;
    let checkpoints = spawn_checkpoints(pool.clone(), settings.sqlite_checkpoint_interval);
    Ok(SqlStore::new(pool, vec![checkpoints]))
}

/// Checkpoints and truncates the write-ahead log at a fixed interval. SQLite's automatic
/// checkpoints cannot finish while readers keep using old snapshots, and under steady concurrent
/// writes the log can then grow without bound; a TRUNCATE checkpoint waits for readers instead.
fn spawn_checkpoints(pool: Pool<Sqlite>, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&pool)
                .await
            {
                Ok((0, log_pages, _)) => tracing::debug!(log_pages, "write-ahead log checkpointed"),
                Ok((_, log_pages, checkpointed)) => {
                    tracing::info!(
                        log_pages,
                        checkpointed,
                        "write-ahead log checkpoint was blocked; retrying later"
                    );
                }
                Err(error) => tracing::warn!(%error, "write-ahead log checkpoint failed"),
            }
        }
    })
}
