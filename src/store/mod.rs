//! Persistence. One [`Store`] trait of whole operations, each owning its transaction, with a
//! SQLite and a PostgreSQL backend chosen at runtime from the database URL's scheme.
//!
//! Instants are stored the same way in both backends, as integer Unix milliseconds, so ordering
//! comparisons behave identically; ids and times are made in Rust and bound, never by SQL.

mod connections;
mod meter;
mod mirror;
mod postgres;
mod reports;
mod sql;
mod sqlite;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use crate::config::Settings;
use crate::domain::{
    ApiKey, ApiKeyId, ArticleId, Change, EventStatus, Grant, GrantId, KeyHash, MeterSubject,
    NewApiKey, NewGrant, NewWebhookEvent, Plan, PlanId, PlanSpec, Price, ReaderId, StripePriceId,
    Subscription, Usage, WebhookEvent, Window,
};
use crate::reports::mrr::{History, PaidInvoice};
use crate::reports::revenue::{InvoiceDay, RefundDay};

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
        if connections::is_connection_failure(&err) {
            connections::record_failure();
        }
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
    /// Only the event with this id.
    pub id: Option<String>,
}

/// A stored event with what applying it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Stripe's event id.
    pub id: String,
    /// Its type.
    pub kind: String,
    /// Where it stands.
    pub status: EventStatus,
    /// The exact body Stripe sent.
    pub body: String,
    /// How often applying it was tried.
    pub attempts: i64,
    /// When tollgate received it.
    pub received_at: DateTime<Utc>,
}

/// What operators should know about changes that were applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// How many mirrored objects changed (prices aside: they grant nothing).
    pub changed: u64,
    /// How many price snapshots were stored.
    pub prices_changed: u64,
    /// Customers newly linked to a reader: events waiting for them can be applied now.
    pub linked_customers: Vec<String>,
    /// Subscription item prices that belong to no plan, and so grant nothing.
    pub foreign_prices: Vec<String>,
    /// Refunds stored without an invoice: no payload or payment known yet links them to one.
    pub unattributed_refunds: Vec<String>,
    /// Anything else worth reading (an older snapshot ignored, a conflicting link).
    pub notes: Vec<String>,
}

/// What applying a stored event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Applied now; the event is marked applied in the same transaction.
    Applied(ApplyReport),
    /// The event is not waiting to be applied (applied already, or skipped, or unknown).
    NotPending,
    /// It concerns a customer no reader is linked to yet; nothing changed.
    Waiting {
        /// The customer.
        customer_id: String,
    },
}

/// Why an event could not be applied, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFailure {
    /// What went wrong, for operators.
    pub error: String,
    /// The customer whose link to a reader it waits for, if that is why.
    pub waiting_for: Option<String>,
    /// When to try again; `None` to leave it to an operator.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// A Stripe customer linked to a reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerLink {
    /// `cus_...`.
    pub id: String,
    /// When Stripe deleted the customer, if it did.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Everything the mirror holds about one reader.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReaderRecord {
    /// Their Stripe customers, oldest link first.
    pub customers: Vec<CustomerLink>,
    /// Their subscriptions, by id.
    pub subscriptions: Vec<Subscription>,
    /// Their grants that were not revoked, expired ones included, by id.
    pub grants: Vec<Grant>,
}

impl ReaderRecord {
    /// The customer checkout and the billing portal use: the latest link Stripe has not deleted.
    pub fn current_customer(&self) -> Option<&str> {
        self.customers
            .iter()
            .rev()
            .find(|c| c.deleted_at.is_none())
            .map(|c| c.id.as_str())
    }
}

/// A request to unlock one article on one meter.
#[derive(Debug, Clone)]
pub struct UnlockRequest {
    /// Whose meter.
    pub subject: MeterSubject,
    /// The article.
    pub article: ArticleId,
    /// The window the meter counts in now (its `now` is the unlock's time).
    pub window: Window,
    /// Free articles per period.
    pub limit: u32,
}

/// What an unlock request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlockOutcome {
    /// The article was unlocked now and counted.
    Unlocked,
    /// The article had been unlocked in this window; nothing was counted.
    AlreadyUnlocked,
    /// The meter is full; nothing changed.
    Exhausted,
}

/// An unlock's outcome with the meter's usage after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unlock {
    /// What happened.
    pub outcome: UnlockOutcome,
    /// The meter afterwards.
    pub usage: Usage,
}

/// What merging a device's meter into a reader's did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Articles moved into the reader's meter.
    pub moved: u32,
    /// Articles the reader had unlocked already; they left the device without counting again.
    pub already_unlocked: u32,
    /// Articles that did not fit under the reader's limit; they stay with the device.
    pub left_over: u32,
    /// The reader's meter afterwards.
    pub usage: Usage,
}

/// A token signing key tollgate generated and keeps in the database.
#[derive(Debug, Clone)]
pub struct StoredSigningKey {
    /// The key id in token headers and the JWKS.
    pub kid: String,
    /// `EdDSA` or `ES256`.
    pub algorithm: String,
    /// The private key, PKCS#8 PEM.
    pub private_key_pem: secrecy::SecretString,
    /// The public key as a JWK (JSON).
    pub public_jwk: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When a newer key took over signing; `None` for the current key.
    pub retired_at: Option<DateTime<Utc>>,
}

/// Which of `shards` queues a subject's unlocks go to: always the same one for a subject.
pub fn lock_shard(subject: &MeterSubject, shards: usize) -> usize {
    let shards = shards.max(1) as u64;
    (meter::lock_key(subject) as u64 % shards) as usize
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

    /// Paid invoices with `paid_at` in `from..to` (Unix seconds), summed per local day (days
    /// since 1970-01-01 at UTC offset `offset` seconds), currency and main price.
    async fn invoice_days(
        &self,
        from: i64,
        to: i64,
        offset: i64,
    ) -> Result<Vec<InvoiceDay>, StoreError>;

    /// Refunds created in `from..to` (Unix seconds) that did not fail, summed per local day,
    /// currency and their invoice's main price.
    async fn refund_days(
        &self,
        from: i64,
        to: i64,
        offset: i64,
    ) -> Result<Vec<RefundDay>, StoreError>;

    /// Every subscription's history before `before` (Unix seconds), snapshots oldest first.
    async fn subscription_histories(&self, before: i64) -> Result<Vec<History>, StoreError>;

    /// The invoices paid before `before` of each subscription that ever had a discounted one.
    async fn discounted_invoices(
        &self,
        before: i64,
    ) -> Result<HashMap<String, Vec<PaidInvoice>>, StoreError>;

    /// What the mirror knows of the prices of one plan, or of every plan; prices Stripe has
    /// not told tollgate about yet are missing.
    async fn plan_prices(&self, plan: Option<&PlanId>) -> Result<Vec<Price>, StoreError>;

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

    /// The stored event with this id, body included.
    async fn stored_event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError>;

    /// Applies `changes` of the stored event `id`, all in one transaction that also marks the
    /// event applied, unless the event is no longer pending or failed: concurrent attempts apply
    /// it once.
    async fn apply_event(
        &self,
        id: &str,
        changes: &[Change],
        at: DateTime<Utc>,
    ) -> Result<ApplyOutcome, StoreError>;

    /// Marks a pending or failed event failed, with why and when to try again.
    async fn fail_event(
        &self,
        id: &str,
        failure: &EventFailure,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Claims up to `limit` pending or failed events whose next attempt is due at `now`: their
    /// next attempt moves to `lease_until`, so another instance's retry task passes them by
    /// while this one tries them (and comes back to them after the lease if this one dies).
    /// Their ids, in the order they were received.
    async fn claim_due_events(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;

    /// Ids of failed events that wait for this customer's link to a reader, oldest first.
    async fn events_waiting_for(&self, customer_id: &str) -> Result<Vec<String>, StoreError>;

    /// Applies changes read from Stripe by a reconcile at `at`, one transaction per change; a
    /// change that is older than what the mirror holds changes nothing. The outcome of each
    /// change, in order.
    async fn apply_sync(
        &self,
        changes: &[Change],
        at: DateTime<Utc>,
    ) -> Result<Vec<ApplyOutcome>, StoreError>;

    /// Everything the mirror holds about a reader.
    async fn reader(&self, id: &ReaderId) -> Result<ReaderRecord, StoreError>;

    /// Stores a grant.
    async fn insert_grant(&self, grant: &NewGrant) -> Result<Grant, StoreError>;

    /// Revokes a reader's grant from `at` on; `false` if the reader has no such grant (or it
    /// was revoked before).
    async fn revoke_grant(
        &self,
        reader: &ReaderId,
        id: &GrantId,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// What `subject` unlocked in `window`, and whether `article` is among it.
    async fn meter_usage(
        &self,
        subject: &MeterSubject,
        article: Option<&ArticleId>,
        window: &Window,
    ) -> Result<Usage, StoreError>;

    /// Unlocks each request's article unless its meter is full, all in one durable transaction
    /// that takes each subject's lock first: concurrent requests (in any number of instances)
    /// never unlock more than the limit. The answers come in the order of `requests`.
    async fn unlock(&self, requests: &[UnlockRequest]) -> Result<Vec<Unlock>, StoreError>;

    /// Moves a device's unlocks of its current window into a reader's meter, never beyond
    /// `limit`, under both subjects' locks.
    async fn merge_meter(
        &self,
        device: &MeterSubject,
        device_window: &Window,
        reader: &MeterSubject,
        reader_window: &Window,
        limit: u32,
    ) -> Result<MergeReport, StoreError>;

    /// Every stored signing key, newest first.
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError>;

    /// Stores `key` as the current signing key unless one is current already (another instance
    /// may have made one at the same moment); the current key either way.
    async fn ensure_signing_key(
        &self,
        key: &StoredSigningKey,
    ) -> Result<StoredSigningKey, StoreError>;

    /// Makes `key` the current signing key and retires the one before it at `at`; the retired
    /// key's id, if there was one.
    async fn rotate_signing_key(
        &self,
        key: &StoredSigningKey,
        at: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError>;

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
