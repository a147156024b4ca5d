//! The Stripe mirror's SQL: applying [`Change`]s (from events or a reconcile) and reading a
//! reader's subscriptions and grants back. Each change is applied inside the caller's write
//! transaction, so an event and everything it changes commit together or not at all.

use chrono::{DateTime, Utc};
use sqlx::{Encode, Executor, FromRow, IntoArguments, Type};

use super::sql::{Dialect, SqlStore, instant};
use super::{ApplyReport, StoreError};
use crate::domain::subscription::{past_due_since, supersedes};
use crate::domain::{
    Change, Grant, GrantId, Interval, Invoice, InvoicePayment, Price, ReaderId, Recurring, Refund,
    Subscription, SubscriptionItem, SubscriptionStatus, Version,
};
use crate::domain::{Entitlement, StripePriceId};

/// What applying one change came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// Done (possibly by deciding the mirror already holds something newer).
    Done,
    /// A subscription of a customer no reader is linked to yet; nothing was written.
    Waiting(String),
}

#[derive(FromRow)]
pub(super) struct SubscriptionRow {
    id: String,
    customer_id: String,
    status: String,
    currency: Option<String>,
    current_period_start: Option<i64>,
    current_period_end: Option<i64>,
    cancel_at_period_end: bool,
    cancel_at: Option<i64>,
    canceled_at: Option<i64>,
    ended_at: Option<i64>,
    trial_end: Option<i64>,
    past_due_since: Option<i64>,
    version_created: i64,
    version_source: String,
}

#[derive(FromRow)]
pub(super) struct ItemRow {
    subscription_id: String,
    item_id: String,
    price_id: String,
    quantity: i64,
}

#[derive(FromRow)]
pub(super) struct VersionRow {
    status: String,
    version_created: i64,
    version_source: String,
    fingerprint: String,
}

#[derive(FromRow)]
pub(super) struct SubscriptionVersionRow {
    status: String,
    version_created: i64,
    version_source: String,
    past_due_since: Option<i64>,
    fingerprint: String,
}

#[derive(FromRow)]
pub(super) struct GrantRow {
    id: String,
    reader_id: String,
    expires_at: i64,
    reason: String,
    created_at: i64,
    created_by: Option<String>,
}

#[derive(FromRow)]
pub(super) struct PairRow {
    owner: String,
    value: String,
}

#[derive(FromRow)]
pub(super) struct PriceRow {
    id: String,
    product: Option<String>,
    active: bool,
    currency: String,
    unit_amount: Option<i64>,
    recurring_interval: Option<String>,
    recurring_count: Option<i64>,
    nickname: Option<String>,
    version_created: i64,
    version_source: String,
}

impl TryFrom<PriceRow> for Price {
    type Error = StoreError;

    fn try_from(row: PriceRow) -> Result<Self, StoreError> {
        let recurring = row
            .recurring_interval
            .map(|interval| -> Result<_, StoreError> {
                Ok(Recurring {
                    interval: interval.parse::<Interval>().map_err(other)?,
                    interval_count: row.recurring_count.unwrap_or(1),
                })
            })
            .transpose()?;
        Ok(Price {
            id: StripePriceId::from_stored(row.id),
            product: row.product,
            active: row.active,
            currency: row.currency,
            unit_amount: row.unit_amount,
            recurring,
            nickname: row.nickname,
            version: Version {
                created: row.version_created,
                source: row.version_source,
            },
        })
    }
}

#[derive(FromRow)]
pub(super) struct CustomerRow {
    pub(super) id: String,
    pub(super) reader_id: Option<String>,
    pub(super) deleted_at: Option<i64>,
}

/// Unix seconds of a Stripe time.
fn secs(at: Option<DateTime<Utc>>) -> Option<i64> {
    at.map(|at| at.timestamp())
}

/// A Stripe time read back from Unix seconds.
fn stripe_time(secs: Option<i64>) -> Option<DateTime<Utc>> {
    secs.and_then(|s| DateTime::from_timestamp(s, 0))
}

/// A digest of a snapshot's content: a snapshot with the fingerprint the mirror holds only
/// confirms it, and is not counted as a change.
fn fingerprint(content: &impl std::fmt::Debug) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(format!("{content:?}").as_bytes()))
}

fn other(err: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Other(err.into())
}

/// Puts subscription rows and their items (both sorted by subscription id) together.
pub(super) fn assemble_subscriptions(
    rows: Vec<SubscriptionRow>,
    items: Vec<ItemRow>,
) -> Result<Vec<Subscription>, StoreError> {
    let mut items = items.into_iter().peekable();
    rows.into_iter()
        .map(|row| {
            let mut own = Vec::new();
            while let Some(item) = items.next_if(|i| i.subscription_id == row.id) {
                own.push(SubscriptionItem {
                    id: item.item_id,
                    price: StripePriceId::from_stored(item.price_id),
                    quantity: item.quantity,
                });
            }
            Ok(Subscription {
                status: row.status.parse::<SubscriptionStatus>().map_err(other)?,
                id: row.id,
                customer_id: row.customer_id,
                items: own,
                currency: row.currency,
                current_period_start: stripe_time(row.current_period_start),
                current_period_end: stripe_time(row.current_period_end),
                cancel_at_period_end: row.cancel_at_period_end,
                cancel_at: stripe_time(row.cancel_at),
                canceled_at: stripe_time(row.canceled_at),
                ended_at: stripe_time(row.ended_at),
                trial_end: stripe_time(row.trial_end),
                past_due_since: stripe_time(row.past_due_since),
                version: Version {
                    created: row.version_created,
                    source: row.version_source,
                },
            })
        })
        .collect()
}

/// Puts grant rows and their entitlements (both sorted by grant id) together.
pub(super) fn assemble_grants(
    rows: Vec<GrantRow>,
    entitlements: Vec<PairRow>,
) -> Result<Vec<Grant>, StoreError> {
    let mut entitlements = entitlements.into_iter().peekable();
    rows.into_iter()
        .map(|row| {
            let mut own = Vec::new();
            while let Some(e) = entitlements.next_if(|e| e.owner == row.id) {
                own.push(Entitlement::from_stored(e.value));
            }
            Ok(Grant {
                id: GrantId::from_stored(row.id),
                reader_id: ReaderId::from_stored(row.reader_id),
                entitlements: own,
                expires_at: instant(row.expires_at)?,
                reason: row.reason,
                created_at: instant(row.created_at)?,
                created_by: row.created_by,
            })
        })
        .collect()
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'r> VersionRow: FromRow<'r, DB::Row>,
    for<'r> CustomerRow: FromRow<'r, DB::Row>,
    for<'r> (String,): FromRow<'r, DB::Row>,
    for<'r> SubscriptionVersionRow: FromRow<'r, DB::Row>,
{
    /// Applies one change at version `version`, noting what operators should know in `report`.
    pub(super) async fn apply_change(
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
            Change::Price(price) => {
                Self::put_price(conn, price, at, report).await?;
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

    pub(super) async fn customer(
        conn: &mut DB::Connection,
        id: &str,
    ) -> Result<Option<CustomerRow>, StoreError> {
        Ok(sqlx::query_as::<DB, CustomerRow>(
            "SELECT id, reader_id, deleted_at FROM customers WHERE id = $1",
        )
        .bind(id.to_owned())
        .fetch_optional(&mut *conn)
        .await?)
    }

    /// Links a customer to a reader. The first link stands: a customer belongs to one reader.
    async fn link_customer(
        conn: &mut DB::Connection,
        customer_id: &str,
        reader_id: &ReaderId,
        at: DateTime<Utc>,
        report: &mut ApplyReport,
    ) -> Result<(), StoreError> {
        match Self::customer(conn, customer_id).await? {
            Some(CustomerRow {
                reader_id: Some(existing),
                ..
            }) => {
                if existing != reader_id.as_str() {
                    report.notes.push(format!(
                        "customer {customer_id} stays linked to reader {existing}, not {reader_id}"
                    ));
                }
            }
            _ => {
                sqlx::query(
                    "INSERT INTO customers (id, reader_id, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET reader_id = excluded.reader_id, \
                     updated_at = excluded.updated_at",
                )
                .bind(customer_id.to_owned())
                .bind(reader_id.as_str().to_owned())
                .bind(at.timestamp_millis())
                .execute(&mut *conn)
                .await?;
                report.linked_customers.push(customer_id.to_owned());
                report.changed += 1;
            }
        }
        Ok(())
    }

    async fn put_subscription(
        conn: &mut DB::Connection,
        sub: &Subscription,
        at: DateTime<Utc>,
        report: &mut ApplyReport,
    ) -> Result<(), StoreError> {
        let stored = sqlx::query_as::<DB, SubscriptionVersionRow>(
            "SELECT status, version_created, version_source, past_due_since, fingerprint \
             FROM subscriptions WHERE id = $1",
        )
        .bind(sub.id.clone())
        .fetch_optional(&mut *conn)
        .await?;
        let stored_status = stored
            .as_ref()
            .map(|s| s.status.parse::<SubscriptionStatus>())
            .transpose()
            .map_err(other)?;
        let stored_version = stored.as_ref().map(|s| Version {
            created: s.version_created,
            source: s.version_source.clone(),
        });
        let content = fingerprint(&Subscription {
            version: Version {
                created: 0,
                source: String::new(),
            },
            ..sub.clone()
        });
        let confirms = stored.as_ref().is_some_and(|s| s.fingerprint == content);
        let replaces = supersedes(
            stored_status
                .zip(stored_version.as_ref())
                .map(|(s, v)| (s.is_terminal(), v)),
            sub.status.is_terminal(),
            &sub.version,
        );
        let since = past_due_since(
            stored_status,
            stored.as_ref().and_then(|s| s.past_due_since),
            sub.status,
            sub.version.created,
            replaces,
        );
        for item in &sub.items {
            let owned = sqlx::query_as::<DB, (String,)>(
                "SELECT plan_id FROM plan_prices WHERE price_id = $1",
            )
            .bind(item.price.as_str().to_owned())
            .fetch_optional(&mut *conn)
            .await?;
            if owned.is_none() {
                report.foreign_prices.push(item.price.as_str().to_owned());
            }
        }
        // The history keeps every snapshot, also one older than the state it did not replace, so
        // it is the same whatever order the events arrived in.
        let items = serde_json::to_string(&sub.items).map_err(other)?;
        sqlx::query(
            "INSERT INTO subscription_history (subscription_id, version_created, version_source, \
             status, items, recorded_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (subscription_id, version_created, version_source) DO NOTHING",
        )
        .bind(sub.id.clone())
        .bind(sub.version.created)
        .bind(sub.version.source.clone())
        .bind(sub.status.as_str().to_owned())
        .bind(items)
        .bind(at.timestamp_millis())
        .execute(&mut *conn)
        .await?;
        if !replaces {
            if since != stored.as_ref().and_then(|s| s.past_due_since) {
                sqlx::query("UPDATE subscriptions SET past_due_since = $1 WHERE id = $2")
                    .bind(since)
                    .bind(sub.id.clone())
                    .execute(&mut *conn)
                    .await?;
            }
            report.notes.push(format!(
                "subscription {} already holds a newer or final state ({}); this snapshot ({}) was not applied",
                sub.id,
                stored_status.map_or("unknown", SubscriptionStatus::as_str),
                sub.status
            ));
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO subscriptions (id, customer_id, status, currency, current_period_start, \
             current_period_end, cancel_at_period_end, cancel_at, canceled_at, ended_at, trial_end, \
             past_due_since, version_created, version_source, updated_at, fingerprint) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, \
             status = excluded.status, currency = excluded.currency, \
             current_period_start = excluded.current_period_start, \
             current_period_end = excluded.current_period_end, \
             cancel_at_period_end = excluded.cancel_at_period_end, cancel_at = excluded.cancel_at, \
             canceled_at = excluded.canceled_at, ended_at = excluded.ended_at, \
             trial_end = excluded.trial_end, past_due_since = excluded.past_due_since, \
             version_created = excluded.version_created, version_source = excluded.version_source, \
             updated_at = excluded.updated_at, fingerprint = excluded.fingerprint",
        )
        .bind(sub.id.clone())
        .bind(sub.customer_id.clone())
        .bind(sub.status.as_str().to_owned())
        .bind(sub.currency.clone())
        .bind(secs(sub.current_period_start))
        .bind(secs(sub.current_period_end))
        .bind(sub.cancel_at_period_end)
        .bind(secs(sub.cancel_at))
        .bind(secs(sub.canceled_at))
        .bind(secs(sub.ended_at))
        .bind(secs(sub.trial_end))
        .bind(since)
        .bind(sub.version.created)
        .bind(sub.version.source.clone())
        .bind(at.timestamp_millis())
        .bind(content)
        .execute(&mut *conn)
        .await?;
        if confirms {
            // Same content, newer version: nothing else moved.
            return Ok(());
        }
        sqlx::query("DELETE FROM subscription_items WHERE subscription_id = $1")
            .bind(sub.id.clone())
            .execute(&mut *conn)
            .await?;
        for (position, item) in (0_i64..).zip(&sub.items) {
            sqlx::query(
                "INSERT INTO subscription_items (subscription_id, item_id, price_id, quantity, position) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (subscription_id, item_id) DO NOTHING",
            )
            .bind(sub.id.clone())
            .bind(item.id.clone())
            .bind(item.price.as_str().to_owned())
            .bind(item.quantity)
            .bind(position)
            .execute(&mut *conn)
            .await?;
        }
        report.changed += 1;
        Ok(())
    }

    async fn put_invoice(
        conn: &mut DB::Connection,
        invoice: &Invoice,
        version: &Version,
        at: DateTime<Utc>,
        report: &mut ApplyReport,
    ) -> Result<(), StoreError> {
        let stored = sqlx::query_as::<DB, VersionRow>(
            "SELECT status, version_created, version_source, fingerprint FROM invoices WHERE id = $1",
        )
        .bind(invoice.id.clone())
        .fetch_optional(&mut *conn)
        .await?;
        let content = fingerprint(invoice);
        let confirms = stored
            .as_ref()
            .is_some_and(|row| row.fingerprint == content);
        let stored = stored
            .map(|row| -> Result<_, StoreError> {
                let status = row
                    .status
                    .parse::<crate::domain::InvoiceStatus>()
                    .map_err(other)?;
                Ok((
                    status,
                    Version {
                        created: row.version_created,
                        source: row.version_source,
                    },
                ))
            })
            .transpose()?;
        if !supersedes(
            stored.as_ref().map(|(s, v)| (s.is_terminal(), v)),
            invoice.status.is_terminal(),
            version,
        ) {
            report.notes.push(format!(
                "invoice {} already holds a newer or final state; this snapshot ({}) was not applied",
                invoice.id, invoice.status
            ));
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO invoices (id, customer_id, subscription_id, status, currency, amount_due, \
             amount_paid, subtotal, total, period_start, period_end, created, paid_at, billing_reason, \
             charge_id, payment_intent_id, version_created, version_source, updated_at, fingerprint, \
             tax, discount, price_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
             $20, $21, $22, $23) \
             ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, \
             subscription_id = excluded.subscription_id, status = excluded.status, \
             currency = excluded.currency, amount_due = excluded.amount_due, \
             amount_paid = excluded.amount_paid, subtotal = excluded.subtotal, total = excluded.total, \
             period_start = excluded.period_start, period_end = excluded.period_end, \
             created = excluded.created, paid_at = excluded.paid_at, \
             billing_reason = excluded.billing_reason, charge_id = excluded.charge_id, \
             payment_intent_id = excluded.payment_intent_id, \
             version_created = excluded.version_created, version_source = excluded.version_source, \
             updated_at = excluded.updated_at, fingerprint = excluded.fingerprint, \
             tax = excluded.tax, discount = excluded.discount, price_id = excluded.price_id",
        )
        .bind(invoice.id.clone())
        .bind(invoice.customer_id.clone())
        .bind(invoice.subscription_id.clone())
        .bind(invoice.status.as_str().to_owned())
        .bind(invoice.currency.clone())
        .bind(invoice.amount_due)
        .bind(invoice.amount_paid)
        .bind(invoice.subtotal)
        .bind(invoice.total)
        .bind(secs(invoice.period_start))
        .bind(secs(invoice.period_end))
        .bind(secs(invoice.created))
        .bind(secs(invoice.paid_at))
        .bind(invoice.billing_reason.clone())
        .bind(invoice.charge_id.clone())
        .bind(invoice.payment_intent_id.clone())
        .bind(version.created)
        .bind(version.source.clone())
        .bind(at.timestamp_millis())
        .bind(content)
        .bind(invoice.tax)
        .bind(invoice.discount)
        .bind(invoice.main_price().map(|p| p.as_str().to_owned()))
        .execute(&mut *conn)
        .await?;
        if confirms {
            return Ok(());
        }
        sqlx::query("DELETE FROM invoice_lines WHERE invoice_id = $1")
            .bind(invoice.id.clone())
            .execute(&mut *conn)
            .await?;
        for (position, line) in (0_i64..).zip(&invoice.lines) {
            sqlx::query(
                "INSERT INTO invoice_lines (invoice_id, line_id, position, price_id, \
                 subscription_item_id, amount, discount_amount, currency, quantity, period_start, \
                 period_end, proration, description) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (invoice_id, line_id) DO NOTHING",
            )
            .bind(invoice.id.clone())
            .bind(line.id.clone())
            .bind(position)
            .bind(line.price.as_ref().map(|p| p.as_str().to_owned()))
            .bind(line.subscription_item.clone())
            .bind(line.amount)
            .bind(line.discount_amount)
            .bind(line.currency.clone())
            .bind(line.quantity)
            .bind(secs(line.period_start))
            .bind(secs(line.period_end))
            .bind(line.proration)
            .bind(line.description.clone())
            .execute(&mut *conn)
            .await?;
        }
        Self::attribute_refunds(
            conn,
            &invoice.id,
            invoice.payment_intent_id.as_deref(),
            invoice.charge_id.as_deref(),
        )
        .await?;
        report.changed += 1;
        Ok(())
    }

    async fn put_invoice_payment(
        conn: &mut DB::Connection,
        payment: &InvoicePayment,
        report: &mut ApplyReport,
    ) -> Result<(), StoreError> {
        let content = fingerprint(payment);
        let stored = sqlx::query_as::<DB, (String,)>(
            "SELECT fingerprint FROM invoice_payments WHERE id = $1",
        )
        .bind(payment.id.clone())
        .fetch_optional(&mut *conn)
        .await?;
        if stored.is_some_and(|(stored,)| stored == content) {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO invoice_payments (id, invoice_id, payment_intent_id, charge_id, amount_paid, \
             currency, status, fingerprint) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET invoice_id = excluded.invoice_id, \
             payment_intent_id = excluded.payment_intent_id, charge_id = excluded.charge_id, \
             amount_paid = excluded.amount_paid, currency = excluded.currency, \
             status = excluded.status, fingerprint = excluded.fingerprint",
        )
        .bind(payment.id.clone())
        .bind(payment.invoice_id.clone())
        .bind(payment.payment_intent_id.clone())
        .bind(payment.charge_id.clone())
        .bind(payment.amount_paid)
        .bind(payment.currency.clone())
        .bind(payment.status.clone())
        .bind(content)
        .execute(&mut *conn)
        .await?;
        Self::attribute_refunds(
            conn,
            &payment.invoice_id,
            payment.payment_intent_id.as_deref(),
            payment.charge_id.as_deref(),
        )
        .await?;
        report.changed += 1;
        Ok(())
    }

    /// Links refunds stored without an invoice to `invoice_id`, now that a payment names it.
    async fn attribute_refunds(
        conn: &mut DB::Connection,
        invoice_id: &str,
        payment_intent_id: Option<&str>,
        charge_id: Option<&str>,
    ) -> Result<(), StoreError> {
        if payment_intent_id.is_none() && charge_id.is_none() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE refunds SET invoice_id = $1 WHERE invoice_id IS NULL \
             AND (payment_intent_id = $2 OR charge_id = $3)",
        )
        .bind(invoice_id.to_owned())
        .bind(payment_intent_id.map(str::to_owned))
        .bind(charge_id.map(str::to_owned))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The invoice a refund takes money back from, from what the mirror knows of its payment.
    async fn invoice_of_payment(
        conn: &mut DB::Connection,
        payment_intent_id: Option<&str>,
        charge_id: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        if payment_intent_id.is_none() && charge_id.is_none() {
            return Ok(None);
        }
        for sql in [
            "SELECT invoice_id FROM invoice_payments WHERE payment_intent_id = $1 OR charge_id = $2 \
             ORDER BY id LIMIT 1",
            "SELECT id FROM invoices WHERE payment_intent_id = $1 OR charge_id = $2 ORDER BY id LIMIT 1",
        ] {
            let found = sqlx::query_as::<DB, (String,)>(sql)
                .bind(payment_intent_id.map(str::to_owned))
                .bind(charge_id.map(str::to_owned))
                .fetch_optional(&mut *conn)
                .await?;
            if let Some((invoice,)) = found {
                return Ok(Some(invoice));
            }
        }
        Ok(None)
    }

    async fn put_refund(
        conn: &mut DB::Connection,
        refund: &Refund,
        version: &Version,
        at: DateTime<Utc>,
        report: &mut ApplyReport,
    ) -> Result<(), StoreError> {
        let charge = refund.charge_id.clone();
        let aggregate = charge
            .as_deref()
            .is_some_and(|c| refund.id == Refund::aggregate_id(c));
        if aggregate {
            // A charge's total stands in only while its refunds are not known one by one.
            let listed = sqlx::query_as::<DB, (String,)>(
                "SELECT id FROM refunds WHERE charge_id = $1 AND id <> $2 LIMIT 1",
            )
            .bind(charge.clone())
            .bind(refund.id.clone())
            .fetch_optional(&mut *conn)
            .await?;
            if listed.is_some() {
                return Ok(());
            }
        } else if let Some(charge) = &charge {
            sqlx::query("DELETE FROM refunds WHERE id = $1")
                .bind(Refund::aggregate_id(charge))
                .execute(&mut *conn)
                .await?;
        }
        let stored = sqlx::query_as::<DB, VersionRow>(
            "SELECT COALESCE(status, '') AS status, version_created, version_source, fingerprint \
             FROM refunds WHERE id = $1",
        )
        .bind(refund.id.clone())
        .fetch_optional(&mut *conn)
        .await?;
        let content = fingerprint(refund);
        let confirms = stored
            .as_ref()
            .is_some_and(|row| row.fingerprint == content);
        let stored_version = stored.map(|row| Version {
            created: row.version_created,
            source: row.version_source,
        });
        if !supersedes(stored_version.as_ref().map(|v| (false, v)), false, version) {
            return Ok(());
        }
        let invoice_id = match &refund.invoice_id {
            Some(invoice) => Some(invoice.clone()),
            None => {
                Self::invoice_of_payment(
                    conn,
                    refund.payment_intent_id.as_deref(),
                    refund.charge_id.as_deref(),
                )
                .await?
            }
        };
        if invoice_id.is_none() {
            report.unattributed_refunds.push(refund.id.clone());
        }
        sqlx::query(
            "INSERT INTO refunds (id, charge_id, payment_intent_id, invoice_id, amount, currency, \
             status, reason, created, version_created, version_source, updated_at, fingerprint) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (id) DO UPDATE SET charge_id = excluded.charge_id, \
             payment_intent_id = excluded.payment_intent_id, \
             invoice_id = COALESCE(excluded.invoice_id, refunds.invoice_id), \
             amount = excluded.amount, currency = excluded.currency, status = excluded.status, \
             reason = excluded.reason, created = excluded.created, \
             version_created = excluded.version_created, version_source = excluded.version_source, \
             updated_at = excluded.updated_at, fingerprint = excluded.fingerprint",
        )
        .bind(refund.id.clone())
        .bind(refund.charge_id.clone())
        .bind(refund.payment_intent_id.clone())
        .bind(invoice_id)
        .bind(refund.amount)
        .bind(refund.currency.clone())
        .bind(refund.status.clone())
        .bind(refund.reason.clone())
        .bind(refund.created.timestamp())
        .bind(version.created)
        .bind(version.source.clone())
        .bind(at.timestamp_millis())
        .bind(content)
        .execute(&mut *conn)
        .await?;
        if !confirms {
            report.changed += 1;
        }
        Ok(())
    }
}
