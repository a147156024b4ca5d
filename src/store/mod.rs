//! Persistence, split by aggregate: one focused trait per aggregate (API keys, the audit log, plans, the webhook
//! inbox, the Stripe mirror, readers, grants, licences, gift links, gift subscriptions, teams,
//! idempotency keys, the meter,
//! signing keys, report inputs, webhook endpoints and their deliveries, the entitlement watcher, the storage purge, erasure), each operation whole and owning its transaction, and [`Store`] composing
//! them. One SQL implementation serves SQLite and PostgreSQL, chosen at runtime from the database
//! URL's scheme; what differs between the two lives in `sqlite.rs` and `postgres.rs` behind
//! `Dialect`.
//!
//! Instants are stored the same way in both backends, as integer Unix milliseconds, so ordering
//! comparisons behave identically; ids and times are made in Rust and bound, never by SQL.

mod api_keys;
mod audit;
mod columns;
mod connections;
mod dialect;
mod erasure;
mod error;
mod gift_subscriptions;
mod gifts;
mod grants;
mod idempotency;
mod invoice_reads;
mod licences;
mod meter;
mod mirror;
mod outbound;
mod plans;
mod postgres;
mod readers;
mod report_inputs;
mod retention;
mod sessions;
mod signing_keys;
mod sqlite;
mod teams;
mod webhook_events;

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::ExposeSecret;
use tollgate_macros::sql_bounds;

pub use api_keys::{ApiKeyStore, RevokeOutcome};
pub use audit::{AuditFilter, AuditStore};
pub use dialect::Backend;
use dialect::SqlStore;
pub use erasure::ErasureStore;
pub use error::{OpenError, StoreError};
pub use gift_subscriptions::{GiftSubscriptionStore, Redeemed};
pub use gifts::{GiftStore, GiftWrite, Redemption};
pub use grants::GrantStore;
pub use idempotency::{AttemptKey, Claim, IdempotencyStore};
pub use licences::{LicenceMember, LicenceStore, LicenceWrite, SeatClaim};
use meter::MeterDialect;
pub use meter::{MergeReport, MeterStore, Unlock, UnlockOutcome, UnlockRequest};
pub use mirror::{ApplyOutcome, ApplyReport, MirrorStore};
pub use outbound::{
    Announcement, AttemptOutcome, ClaimedDelivery, Delivery, DeliveryFilter, DeliveryStore,
    Endpoint, EndpointPatch, EndpointStore, EntitlementCheck, EntitlementWatchStore, NewEndpoint,
    QueueStats, Retried,
};
pub use plans::{PlanStore, PlanWrite};
pub use readers::{CustomerLink, ReaderRecord, ReaderStore};
pub use report_inputs::ReportStore;
pub use retention::RetentionStore;
pub use sessions::SessionStore;
pub use signing_keys::{SigningKeyStore, StoredSigningKey};
pub use teams::{Seating, TeamMember, TeamStore};
pub use webhook_events::{EventFailure, EventFilter, EventStore, StoredEvent};

use crate::config::Settings;

/// Everything tollgate keeps: every aggregate's operations, and the database's life.
#[async_trait]
pub trait Store:
    ApiKeyStore
    + AuditStore
    + PlanStore
    + EventStore
    + MirrorStore
    + ReaderStore
    + GrantStore
    + GiftStore
    + GiftSubscriptionStore
    + LicenceStore
    + TeamStore
    + IdempotencyStore
    + MeterStore
    + SigningKeyStore
    + ReportStore
    + SessionStore
    + EndpointStore
    + DeliveryStore
    + EntitlementWatchStore
    + RetentionStore
    + ErasureStore
    + Send
    + Sync
    + 'static
{
    /// Which engine this is.
    fn backend(&self) -> Backend;

    /// Applies every pending migration.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Succeeds when the database can serve requests now, writes included.
    async fn check_ready(&self) -> Result<(), StoreError>;

    /// Succeeds when the database answers a trivial read now, asked over a connection of the
    /// probe's own, outside the pool: whatever the pool is doing (all its connections busy, or
    /// waiting out its acquire timeout), this says whether the database itself is reachable. A
    /// probe still running when the next starts makes the next fail.
    async fn probe(&self) -> Result<(), StoreError>;

    /// Stops background work and closes every connection.
    async fn close(&self);
}

#[sql_bounds]
#[async_trait]
impl<DB: MeterDialect> Store for SqlStore<DB> {
    fn backend(&self) -> Backend {
        DB::BACKEND
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        DB::migrate(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner) => StoreError::from(inner),
            other => StoreError::other(other),
        })
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        let tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        tx.rollback().await?;
        Ok(())
    }

    async fn probe(&self) -> Result<(), StoreError> {
        use sqlx::{ConnectOptions, Executor};
        let mut kept = self.probe_connection.try_lock().map_err(|_| {
            StoreError::Unavailable(anyhow::anyhow!("the previous probe has not been answered"))
        })?;
        let mut connection = match kept.take() {
            Some(connection) => connection,
            None => self.pool.connect_options().connect().await?,
        };
        connection.execute(DB::PROBE).await?;
        *kept = Some(connection);
        Ok(())
    }

    async fn close(&self) {
        self.shut().await;
    }
}

/// Opens the database the settings name. Migrations are not applied: call [`Store::migrate`].
pub async fn open(settings: &Settings) -> Result<Arc<dyn Store>, OpenError> {
    let database = settings.database();
    let url = database.url.expose_secret();
    match Backend::from_url(url) {
        Some(Backend::Sqlite) => Ok(Arc::new(sqlite::open(url, &database).await?)),
        Some(Backend::Postgres) => Ok(Arc::new(postgres::open(url, &database).await?)),
        None => Err(OpenError::UnsupportedScheme),
    }
}
