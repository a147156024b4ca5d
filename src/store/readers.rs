//! A reader as the mirror knows them: their Stripe customers, subscriptions, grants and licence
//! seats, read in a handful of queries.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use super::columns::{instant, stripe_time};
use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
use crate::domain::{
    Grant, Licence, ReaderId, StripePriceId, Subscription, SubscriptionItem, SubscriptionStatus,
    Version,
};

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
    /// The licences in which they hold a seat, in force or not, by id.
    pub licences: Vec<Licence>,
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

/// Reading a reader back.
#[async_trait]
pub trait ReaderStore: Send + Sync {
    /// Everything the mirror holds about a reader.
    async fn reader(&self, id: &ReaderId) -> Result<ReaderRecord, StoreError>;
}

/// A customer (`kind` `customer`) or a licence seat (`licence`) of a reader.
#[derive(FromRow)]
struct LinkRow {
    kind: String,
    id: String,
    deleted_at: Option<i64>,
}

#[derive(FromRow)]
struct SubscriptionRow {
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
struct ItemRow {
    subscription_id: String,
    item_id: String,
    price_id: String,
    quantity: i64,
}

/// Puts subscription rows and their items (both sorted by subscription id) together.
fn assemble_subscriptions(
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
                status: row
                    .status
                    .parse::<SubscriptionStatus>()
                    .map_err(StoreError::other)?,
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

#[sql_bounds]
impl<DB: Dialect> SqlStore<DB> {
    /// A reader's subscriptions and their items, through the reader's customers.
    async fn reader_subscriptions(
        &self,
        reader: &str,
    ) -> Result<(Vec<SubscriptionRow>, Vec<ItemRow>), StoreError> {
        let subscriptions = sqlx::query_as::<DB, SubscriptionRow>(
            "SELECT s.id, s.customer_id, s.status, s.currency, s.current_period_start, \
                 s.current_period_end, s.cancel_at_period_end, s.cancel_at, s.canceled_at, s.ended_at, \
                 s.trial_end, s.past_due_since, s.version_created, s.version_source \
                 FROM subscriptions s JOIN customers c ON c.id = s.customer_id \
                 WHERE c.reader_id = $1 ORDER BY s.id",
        )
        .bind(reader.to_owned())
        .fetch_all(&self.pool)
        .await?;
        let items = sqlx::query_as::<DB, ItemRow>(
            "SELECT i.subscription_id, i.item_id, i.price_id, i.quantity \
                 FROM subscription_items i JOIN subscriptions s ON s.id = i.subscription_id \
                 JOIN customers c ON c.id = s.customer_id \
                 WHERE c.reader_id = $1 ORDER BY i.subscription_id, i.position",
        )
        .bind(reader.to_owned())
        .fetch_all(&self.pool)
        .await?;
        Ok((subscriptions, items))
    }
}

#[sql_bounds]
#[async_trait]
impl<DB: Dialect> ReaderStore for SqlStore<DB> {
    async fn reader(&self, id: &ReaderId) -> Result<ReaderRecord, StoreError> {
        let reader = id.as_str().to_owned();
        // The reader's customers and licence seats in one round trip: most readers have
        // neither, and this read is on the paywall's path whenever the cache misses.
        let links = sqlx::query_as::<DB, LinkRow>(
            "SELECT 'customer' AS kind, id, deleted_at, updated_at AS ord FROM customers \
             WHERE reader_id = $1 \
             UNION ALL SELECT 'licence' AS kind, licence_id AS id, NULL AS deleted_at, \
             joined_at AS ord FROM licence_members WHERE reader_id = $1 AND removed_at IS NULL \
             ORDER BY kind, ord, id",
        )
        .bind(reader.clone())
        .fetch_all(&self.pool)
        .await?;
        let (customer_rows, seat_rows): (Vec<LinkRow>, Vec<LinkRow>) =
            links.into_iter().partition(|row| row.kind == "customer");
        let customers = customer_rows
            .into_iter()
            .map(|row| {
                Ok(CustomerLink {
                    id: row.id,
                    deleted_at: row.deleted_at.map(instant).transpose()?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Subscriptions reach a reader only through a customer: most readers have none.
        let (subscriptions, items) = if customers.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            self.reader_subscriptions(&reader).await?
        };
        let grants = self.reader_grants(&reader).await?;
        let licences = self
            .licences_with_ids(seat_rows.into_iter().map(|row| row.id).collect())
            .await?;
        Ok(ReaderRecord {
            customers,
            subscriptions: assemble_subscriptions(subscriptions, items)?,
            grants,
            licences,
        })
    }
}
