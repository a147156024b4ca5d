//! The Stripe mirror: applying [`Change`]s, from a stored event or a reconcile, each inside one
//! write transaction, so an event and everything it changes commit together or not at all.
//! Customers and subscriptions are written by `subscriptions.rs`, invoices, payments and refunds
//! by `billing.rs`; a reader's mirrored state is read back by `readers.rs`.

mod billing;
mod disputes;
mod subscriptions;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tollgate_macros::sql_bounds;

use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
use crate::domain::{Change, EventKind, Price, StripeEventId, Version};

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

impl ApplyReport {
    /// What the event's `note` column keeps of this report: `None` when there is nothing to say.
    fn note(&self) -> Option<String> {
        let mut notes = self.notes.clone();
        if !self.unattributed_refunds.is_empty() {
            notes.push(format!(
                "refunds not attributed to an invoice yet: {}",
                self.unattributed_refunds.join(", ")
            ));
        }
        if !self.foreign_prices.is_empty() {
            notes.push(format!(
                "prices in no plan, granting nothing: {}",
                self.foreign_prices.join(", ")
            ));
        }
        (!notes.is_empty()).then(|| notes.join("; "))
    }
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

/// What applying one change came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Done (possibly by deciding the mirror already holds something newer).
    Done,
    /// A subscription of a customer no reader is linked to yet; nothing was written.
    Waiting(String),
}

/// Writes to the mirror of Stripe's objects.
#[async_trait]
pub trait MirrorStore: Send + Sync {
    /// Applies `changes` of the stored event `id`, all in one transaction that also marks the
    /// event applied, unless the event is no longer pending or failed: concurrent attempts apply
    /// it once.
    async fn apply_event(
        &self,
        id: &StripeEventId,
        changes: &[Change],
        at: DateTime<Utc>,
    ) -> Result<ApplyOutcome, StoreError>;

    /// Applies changes read from Stripe by a reconcile at `at`, one transaction per change; a
    /// change that is older than what the mirror holds changes nothing. The outcome of each
    /// change, in order.
    async fn apply_sync(
        &self,
        changes: &[Change],
        at: DateTime<Utc>,
    ) -> Result<Vec<ApplyOutcome>, StoreError>;
}

#[sql_bounds]
#[async_trait]
impl<DB: Dialect> MirrorStore for SqlStore<DB> {
    async fn apply_event(
        &self,
        id: &StripeEventId,
        changes: &[Change],
        at: DateTime<Utc>,
    ) -> Result<ApplyOutcome, StoreError> {
        let mut tx = self.begin_mirror_write().await?;
        // Claiming the event first makes concurrent attempts queue on its row (or on SQLite's
        // write lock); whoever comes second finds it applied and changes nothing.
        let claimed = sqlx::query(
            "UPDATE webhook_events SET status = 'applied', applied_at = $1, attempts = attempts + 1, \
             last_error = NULL, waiting_for = NULL, next_attempt_at = NULL \
             WHERE id = $2 AND status IN ('pending', 'failed')",
        )
        .bind(at.timestamp_millis())
        .bind(id.as_str().to_owned())
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&claimed) == 0 {
            tx.rollback().await?;
            return Ok(ApplyOutcome::NotPending);
        }
        let (created, kind) = sqlx::query_as::<DB, (i64, String)>(
            "SELECT created, type FROM webhook_events WHERE id = $1",
        )
        .bind(id.as_str().to_owned())
        .fetch_one(&mut *tx)
        .await?;
        let version = Version {
            created,
            source: id.as_str().to_owned(),
        };
        let mut report = ApplyReport::default();
        for change in changes {
            if let Step::Waiting(customer_id) =
                Self::apply_change(&mut tx, change, &version, at, &mut report).await?
            {
                tx.rollback().await?;
                return Ok(ApplyOutcome::Waiting { customer_id });
            }
        }
        // A failed collection changes no state the mirror keeps, only the event says it.
        if kind == "invoice.payment_failed" {
            for change in changes {
                if let Change::Invoice(invoice) = change {
                    Self::announce_invoice(&mut tx, EventKind::InvoicePaymentFailed, invoice, at)
                        .await?;
                }
            }
        }
        sqlx::query("UPDATE webhook_events SET note = $1 WHERE id = $2")
            .bind(report.note())
            .bind(id.as_str().to_owned())
            .execute(&mut *tx)
            .await?;
        if report.changed > 0 || report.prices_changed > 0 {
            Self::touch_reports(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(ApplyOutcome::Applied(report))
    }

    async fn apply_sync(
        &self,
        changes: &[Change],
        at: DateTime<Utc>,
    ) -> Result<Vec<ApplyOutcome>, StoreError> {
        let version = Version::sync(at);
        let mut outcomes = Vec::with_capacity(changes.len());
        for change in changes {
            let mut tx = self.begin_mirror_write().await?;
            let mut report = ApplyReport::default();
            let outcome =
                match Self::apply_change(&mut tx, change, &version, at, &mut report).await? {
                    Step::Done => ApplyOutcome::Applied(report),
                    Step::Waiting(customer_id) => ApplyOutcome::Waiting { customer_id },
                };
            if matches!(&outcome, ApplyOutcome::Applied(report)
                if report.changed > 0 || report.prices_changed > 0)
            {
                Self::touch_reports(&mut tx).await?;
            }
            tx.commit().await?;
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }
}

#[sql_bounds]
impl<DB: Dialect> SqlStore<DB> {
    /// Begins a transaction that writes to the mirror, holding the mirror's lock
    /// ([`Dialect::LOCK_MIRROR`]) until it ends.
    pub(in crate::store) async fn begin_mirror_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, DB>, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        if let Some(sql) = DB::LOCK_MIRROR {
            sqlx::query::<DB>(sql).execute(&mut *tx).await?;
        }
        Ok(tx)
    }

    /// Applies one change at version `version`, noting what operators should know in `report`.
    async fn apply_change(
        conn: &mut DB::Connection,
        change: &Change,
        version: &Version,
        at: DateTime<Utc>,
        report: &mut ApplyReport,
    ) -> Result<Step, StoreError> {
        match change {
            Change::LinkCustomer {
                customer_id,
                reader_id,
            } => {
                Self::link_customer(conn, customer_id, reader_id, at, report).await?;
                Ok(Step::Done)
            }
            Change::Subscription {
                subscription,
                reader_id,
            } => {
                if let Some(reader_id) = reader_id {
                    Self::link_customer(conn, &subscription.customer_id, reader_id, at, report)
                        .await?;
                }
                let linked = Self::customer(conn, &subscription.customer_id)
                    .await?
                    .is_some_and(|c| c.reader_id.is_some());
                if !linked {
                    return Ok(Step::Waiting(subscription.customer_id.clone()));
                }
                Self::put_subscription(conn, subscription, at, report).await?;
                Ok(Step::Done)
            }
            Change::Invoice(invoice) => {
                Self::put_invoice(conn, invoice, version, at, report).await?;
                Ok(Step::Done)
            }
            Change::InvoicePayment(payment) => {
                Self::put_invoice_payment(conn, payment, report).await?;
                Ok(Step::Done)
            }
            Change::Refunds(refunds) => {
                for refund in refunds {
                    Self::put_refund(conn, refund, version, at, report).await?;
                }
                Ok(Step::Done)
            }
            Change::Dispute(dispute) => {
                Self::put_dispute(conn, dispute, version, at, report).await?;
                Ok(Step::Done)
            }
            Change::Price(price) => {
                Self::put_price(conn, price, at, report).await?;
                Ok(Step::Done)
            }
            Change::GiftPurchased(purchase) => {
                Self::put_gift_purchase(conn, purchase, report).await?;
                Ok(Step::Done)
            }
            Change::CustomerDeleted { customer_id } => {
                sqlx::query(
                    "INSERT INTO customers (id, deleted_at, updated_at) VALUES ($1, $2, $2) \
                     ON CONFLICT (id) DO UPDATE SET \
                     deleted_at = COALESCE(customers.deleted_at, excluded.deleted_at), \
                     updated_at = excluded.updated_at",
                )
                .bind(customer_id.clone())
                .bind(at.timestamp_millis())
                .execute(&mut *conn)
                .await?;
                report.changed += 1;
                Ok(Step::Done)
            }
        }
    }

    /// Stores a price snapshot unless the mirror holds a newer one.
    async fn put_price(
        conn: &mut DB::Connection,
        price: &Price,
        at: DateTime<Utc>,
        report: &mut ApplyReport,
    ) -> Result<(), StoreError> {
        let written = sqlx::query(
            "INSERT INTO prices (id, product, active, currency, unit_amount, recurring_interval, \
             recurring_count, nickname, version_created, version_source, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (id) DO UPDATE SET product = excluded.product, active = excluded.active, \
             currency = excluded.currency, unit_amount = excluded.unit_amount, \
             recurring_interval = excluded.recurring_interval, \
             recurring_count = excluded.recurring_count, nickname = excluded.nickname, \
             version_created = excluded.version_created, \
             version_source = excluded.version_source, updated_at = excluded.updated_at \
             WHERE excluded.version_created > prices.version_created \
             OR (excluded.version_created = prices.version_created \
             AND excluded.version_source > prices.version_source)",
        )
        .bind(price.id.as_str().to_owned())
        .bind(price.product.clone())
        .bind(price.active)
        .bind(price.currency.clone())
        .bind(price.unit_amount)
        .bind(price.recurring.map(|r| r.interval.as_str().to_owned()))
        .bind(price.recurring.map(|r| r.interval_count))
        .bind(price.nickname.clone())
        .bind(price.version.created)
        .bind(price.version.source.clone())
        .bind(at.timestamp_millis())
        .execute(&mut *conn)
        .await?;
        if DB::rows_affected(&written) > 0 {
            report.prices_changed += 1;
        }
        Ok(())
    }
}
