//! Persistence. One [`Store`] trait of whole operations, each owning its transaction, with a
//! SQLite and a PostgreSQL backend chosen at runtime from the database URL's scheme.
//!
//! Instants are stored the same way in both backends, as integer Unix milliseconds, so ordering
//! comparisons behave identically; ids and times are made in Rust and bound, never by SQL.

mod postgres;
mod sql;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::domain::{
    ApiKey, ApiKeyId, EventStatus, KeyHash, NewApiKey, NewWebhookEvent, Plan, PlanId, PlanSpec,
    StripePriceId, WebhookEvent,
};

/// The database engines tollgate runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file: the zero-setup default.
    Sqlite,
    /// A PostgreSQL server: production, several instances.
    Postgres,
}

impl Backend {
    /// Picks the backend a database URL names.
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split_once(':')?.0;
        match scheme {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            _ => None,
        }
    }

    /// The backend's name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// What a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached, or is too busy to answer in time; retrying later may work.
    #[error("the database is unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else: a bug, a broken invariant, corrupt data.
    #[error("database operation failed")]
    Other(#[source] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if is_unavailable(&err) {
            Self::Unavailable(err.into())
        } else {
            Self::Other(err.into())
        }
    }
}

/// Whether an error means "the database is not there or too busy now" rather than "this is wrong".
fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => match db.code() {
            // Both engines report codes made of digits, so the engine is told by the error type.
            Some(code) if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() => {
                sqlite_code_is_unavailable(&code)
            }
            Some(code) => sqlstate_is_unavailable(&code),
            None => false,
        },
        _ => false,
    }
}

/// SQLite reports extended result codes; SQLITE_BUSY (5) and SQLITE_LOCKED (6) are their low
/// byte.
fn sqlite_code_is_unavailable(code: &str) -> bool {
    code.parse::<u32>()
        .is_ok_and(|code| matches!(code & 0xff, 5 | 6))
}

/// PostgreSQL SQLSTATEs for "not now": connection exceptions (08), insufficient resources (53:
/// too many connections, disk full, out of memory), and an operator shutting the server down
/// (57P01 to 57P03).
fn sqlstate_is_unavailable(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("53") || code.starts_with("57P0")
}

/// What revoking a key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The key was active and is now revoked.
    Revoked,
    /// The key had been revoked before; nothing changed.
    AlreadyRevoked,
    /// No key has this id.
    NotFound,
}

/// What storing a plan did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanWrite {
    /// No plan had this id; now one does.
    Created(Plan),
    /// The plan with this id was replaced; it keeps its creation time and archived state.
    Replaced(Plan),
    /// A price already belongs to another plan; nothing changed.
    PriceTaken {
        /// The price.
        price: StripePriceId,
        /// The plan it belongs to.
        plan: PlanId,
    },
}

/// Which stored events to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events in this state.
    pub status: Option<EventStatus>,
    /// Only events of this type.
    pub kind: Option<String>,
    /// Only events received before the one with this `seq`.
    pub before: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// Everything tollgate keeps, as whole operations.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which engine this is.
    fn backend(&self) -> Backend;

    /// Applies every pending migration.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Succeeds when the database can serve requests now, writes included.
    async fn check_ready(&self) -> Result<(), StoreError>;

    /// Stores a new API key.
    async fn insert_api_key(&self, key: &NewApiKey) -> Result<ApiKey, StoreError>;

    /// Finds the key whose secret has this hash, revoked or not.
    async fn find_api_key_by_hash(&self, hash: &KeyHash) -> Result<Option<ApiKey>, StoreError>;

    /// Up to `limit` keys in creation order, starting after `after`.
    async fn list_api_keys(
        &self,
        after: Option<&ApiKeyId>,
        limit: u32,
    ) -> Result<Vec<ApiKey>, StoreError>;

    /// Revokes a key from `at` on; a revoked key never opens the API again.
    async fn revoke_api_key(
        &self,
        id: &ApiKeyId,
        at: DateTime<Utc>,
    ) -> Result<RevokeOutcome, StoreError>;

    /// Creates the plan `id`, or replaces it, from `at` on.
    async fn put_plan(
        &self,
        id: &PlanId,
        spec: &PlanSpec,
        at: DateTime<Utc>,
    ) -> Result<PlanWrite, StoreError>;

    /// The plan with this id, archived or not.
    async fn get_plan(&self, id: &PlanId) -> Result<Option<Plan>, StoreError>;

    /// Every plan, archived or not, by id.
    async fn list_plans(&self) -> Result<Vec<Plan>, StoreError>;

    /// Archives a plan from `at` on (archiving twice keeps the first time); `None` if no plan
    /// has this id.
    async fn archive_plan(
        &self,
        id: &PlanId,
        at: DateTime<Utc>,
    ) -> Result<Option<Plan>, StoreError>;

    /// Stores a verified event unless one with its id is stored already; `true` when it was new.
    /// Concurrent deliveries of one event store it exactly once.
    async fn record_webhook_event(&self, event: &NewWebhookEvent) -> Result<bool, StoreError>;

    /// Stored events, newest first, without their bodies.
    async fn list_webhook_events(
        &self,
        filter: &EventFilter,
    ) -> Result<Vec<WebhookEvent>, StoreError>;

    /// Stops background work and closes every connection.
    async fn close(&self);
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL names no supported database.
    #[error("unsupported database URL scheme: expected sqlite:// or postgres://")]
    UnsupportedScheme,
    /// The URL could not be parsed, or the database could not be reached.
    #[error("could not open the database")]
    Connect(#[source] sqlx::Error),
}

/// Opens the database the settings name. Migrations are not applied: call [`Store::migrate`].
pub async fn open(settings: &Settings) -> Result<Arc<dyn Store>, OpenError> {
    let url = settings.database_url.expose_secret();
    match Backend::from_url(url) {
        Some(Backend::Sqlite) => Ok(Arc::new(sqlite::open(url, settings).await?)),
        Some(Backend::Postgres) => Ok(Arc::new(postgres::open(url, settings).await?)),
        None => Err(OpenError::UnsupportedScheme),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_follows_the_url_scheme() {
        assert_eq!(
            Backend::from_url("sqlite://tollgate.db"),
            Some(Backend::Sqlite)
        );
        assert_eq!(Backend::from_url("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(
            Backend::from_url("postgres://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::from_url("mysql://u@h/db"), None);
        assert_eq!(Backend::from_url("tollgate.db"), None);
    }

    #[test]
    fn busy_and_locked_sqlite_codes_mean_unavailable_and_others_do_not() {
        for code in ["5", "6", "261", "517", "262"] {
            assert!(sqlite_code_is_unavailable(code), "{code}");
        }
        for code in ["1", "19", "2067", "11"] {
            assert!(!sqlite_code_is_unavailable(code), "{code}");
        }
    }

    #[test]
    fn postgres_resource_and_connection_states_mean_unavailable_and_others_do_not() {
        for code in ["08006", "08001", "53300", "53100", "57P01", "57P03"] {
            assert!(sqlstate_is_unavailable(code), "{code}");
        }
        // All digits, like SQLite codes, and ending in a byte of 5: still not "busy".
        for code in ["42501", "22021", "23505", "40001", "42P01"] {
            assert!(!sqlstate_is_unavailable(code), "{code}");
        }
    }

    #[test]
    fn a_timed_out_pool_is_unavailable_and_a_missing_row_is_not() {
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(sqlx::Error::RowNotFound),
            StoreError::Other(_)
        ));
    }
}
