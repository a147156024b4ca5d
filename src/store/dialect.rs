//! What differs between the backends ([`Dialect`]) and the store that runs the same SQL on either
//! ([`SqlStore`]). The SQL itself lives with its aggregate (`api_keys.rs`, `plans.rs` ...); the
//! trait bounds generic SQL needs are written once, by `#[sql_bounds]` (crate
//! `tollgate-macros`).

use futures_util::future::BoxFuture;

pub use crate::config::Backend;
use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};

use super::error::StoreError;
use tokio::task::JoinHandle;

/// What differs between the backends.
pub(super) trait Dialect: Database + sqlx::database::HasStatementCache {
    /// Which backend this is.
    const BACKEND: Backend;
    /// Starts a transaction that will write. SQLite must take the write lock up front, or two
    /// readers that both try to upgrade deadlock; PostgreSQL's row locks need no such thing.
    const BEGIN_WRITE: &'static str;
    /// Ends the subquery of a claim (`UPDATE ... WHERE id IN (SELECT ... LIMIT n<here>)`): on
    /// PostgreSQL `FOR UPDATE SKIP LOCKED`, so that a claim never waits on, nor deadlocks with,
    /// a write holding some of the rows; nothing on SQLite, whose writers take turns.
    const SKIP_LOCKED: &'static str;
    /// The aggregate that joins texts with a separator, in a given order.
    const STRING_AGG: &'static str;
    /// A query of the planner's histogram of a column (`$1` the table, `$2` the column): the
    /// bounds that cut its values into parts of about as many rows each, as texts in order; or
    /// `None` where the backend keeps none.
    const COLUMN_HISTOGRAM: Option<&'static str>;
    /// Takes the transaction-scoped lock that mirror writes share, or `None` where the write
    /// transaction already excludes every other writer. Applying a change reads what is stored
    /// to decide what to write (the newest snapshot wins, a terminal state stays terminal, a
    /// refund finds its invoice through a payment), so two changes applied side by side under
    /// PostgreSQL's READ COMMITTED could each decide on a state the other is replacing.
    const LOCK_MIRROR: Option<&'static str>;
    /// Takes the transaction-scoped lock that licence writes share, or `None` where the write
    /// transaction already excludes every other writer: a licence is checked against every
    /// other before it is written, and two written side by side must not each miss the other.
    const LOCK_LICENCES: Option<&'static str>;
    /// Takes the transaction-scoped lock of one gift giver (bound as `$1`), or `None` where the
    /// write transaction already excludes every other writer: a giver's links are counted
    /// before one is made, and two made side by side must not both fit the last place.
    const LOCK_GIVER: Option<&'static str>;
    /// A trivial question that only a reachable database answers: on SQLite it reads the file's
    /// header (a bare `SELECT 1` touches no file), on PostgreSQL it crosses the network.
    const PROBE: &'static str;
    /// A condition that holds when the bytes column `body` holds the bytes bound as `$2`.
    const BODY_CONTAINS: &'static str;
    /// What runs once an erasure has committed, so that the erased bytes leave the files too
    /// (SQLite: a checkpoint that folds the write-ahead log's page copies into the database,
    /// whose freed space `secure_delete` zeroes); `None` where that is the operator's
    /// (PostgreSQL's dead row versions go at the next vacuum).
    const AFTER_ERASURE: Option<&'static str>;

    /// How many rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// A condition that holds for at most `$2` rows of `table` that meet `condition`, found
    /// through `index` and named by the engine's own row address (SQLite's `rowid`,
    /// PostgreSQL's `ctid`, read back with a TID scan), so that any table can be cut into
    /// batches whatever its key. SQLite is told to use `index`: it keeps no statistics, and
    /// would rather read a whole range of another index. On PostgreSQL the rows are locked as
    /// they are picked, rows another transaction holds are passed by (a batch never waits on,
    /// nor deadlocks with, a write or another instance's batch), and `condition` is checked
    /// again on each row as it is written; SQLite's single writer needs neither.
    fn some_rows(table: &str, index: &str, condition: &str) -> String;

    /// Applies the backend's migrations.
    fn migrate(pool: &Pool<Self>) -> BoxFuture<'_, Result<(), sqlx::migrate::MigrateError>>;

    /// Runs `COPY (select) TO STDOUT` (text format: tabs between fields, a newline after each
    /// record, NULL empty) and hands its output to `sink` chunk by chunk, where the backend has
    /// `COPY` (PostgreSQL: a million rows come over several times faster than as rows, which
    /// sqlx decodes at a few microseconds each); `None` where it has not.
    fn copy_out<'a>(
        pool: &'a Pool<Self>,
        select: &'a str,
        sink: &'a mut (dyn FnMut(&[u8]) -> Result<(), StoreError> + Send),
    ) -> Option<BoxFuture<'a, Result<(), StoreError>>>;
}

/// A store over one sqlx pool, for either backend.
pub(super) struct SqlStore<DB: Database> {
    pub(super) pool: Pool<DB>,
    background: Vec<JoinHandle<()>>,
    /// Connections the meter's writers keep between batches where a batch is one statement
    /// (PostgreSQL's `tollgate_unlock`): taken from the pool once, they skip the pool's check
    /// of a connection before and after each use, two round trips of the three a batch would
    /// cost. One that fails is dropped, not kept.
    unlock_connections: std::sync::Mutex<Vec<PoolConnection<DB>>>,
    /// The heartbeat's connection of its own (see [`super::Store::probe`]), opened on first use
    /// and dropped whenever it fails.
    pub(super) probe_connection: tokio::sync::Mutex<Option<DB::Connection>>,
}

impl<DB: Database> SqlStore<DB> {
    /// A store over `pool`; `background` tasks are stopped when the store is closed.
    pub(super) fn new(pool: Pool<DB>, background: Vec<JoinHandle<()>>) -> Self {
        Self {
            pool,
            background,
            unlock_connections: std::sync::Mutex::default(),
            probe_connection: tokio::sync::Mutex::default(),
        }
    }

    /// The connections the meter's writers keep.
    pub(super) fn kept_unlock_connections(
        &self,
    ) -> std::sync::MutexGuard<'_, Vec<PoolConnection<DB>>> {
        // The list stays whole whatever panicked while holding it.
        self.unlock_connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stops background work and closes every connection.
    pub(super) async fn shut(&self) {
        for task in &self.background {
            task.abort();
        }
        // The pool waits for every connection to come back before it closes.
        self.kept_unlock_connections().clear();
        if let Ok(mut probe) = self.probe_connection.try_lock() {
            probe.take();
        }
        self.pool.close().await;
    }
}
