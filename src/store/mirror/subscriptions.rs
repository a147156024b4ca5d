//! Customers and subscriptions into the mirror: a customer's link to a reader, and a
//! subscription snapshot kept only when it is newer than the one held.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use super::ApplyReport;
use crate::domain::subscription::{past_due_since, supersedes};
use crate::domain::{
    ChangeCause, EventKind, OutboundEvent, ReaderId, Subscription, SubscriptionStatus, Version,
};
use crate::store::columns::{fingerprint, secs};
use crate::store::dialect::{Dialect, SqlStore};
use crate::store::error::StoreError;

/// What applying a change needs of a stored customer: the reader it is linked to, if any.
#[derive(FromRow)]
pub(super) struct CustomerRow {
    pub(super) reader_id: Option<String>,
}

#[derive(FromRow)]
pub(super) struct SubscriptionVersionRow {
    status: String,
    version_created: i64,
    version_source: String,
    past_due_since: Option<i64>,
    fingerprint: String,
}

#[sql_bounds]
impl<DB: Dialect> SqlStore<DB> {
    /// The stored customer with this id, if any.
    pub(super) async fn customer(
        conn: &mut DB::Connection,
        id: &str,
    ) -> Result<Option<CustomerRow>, StoreError> {
        Ok(
            sqlx::query_as::<DB, CustomerRow>("SELECT reader_id FROM customers WHERE id = $1")
                .bind(id.to_owned())
                .fetch_optional(&mut *conn)
                .await?,
        )
    }

    /// Links a customer to a reader. The first link stands: a customer belongs to one reader.
    pub(super) async fn link_customer(
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
                Self::mark_reader(conn, reader_id.as_str(), ChangeCause::Subscription, at).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn put_subscription(
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
            .map_err(StoreError::other)?;
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
        let items = serde_json::to_string(&sub.items).map_err(StoreError::other)?;
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
                // The past-due grace ends at another instant now.
                Self::mark_subscription_readers(conn, &sub.id, ChangeCause::Subscription, at)
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
        if stored.is_some() && !confirms {
            // Whoever it gave something before this snapshot (another customer's reader, say).
            Self::mark_subscription_readers(conn, &sub.id, ChangeCause::Subscription, at).await?;
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
        Self::announce_subscription(conn, sub, stored_status, at).await?;
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

    /// Writes the event a subscription's new state makes, and marks everyone it gives
    /// something for the entitlement watcher.
    async fn announce_subscription(
        conn: &mut DB::Connection,
        sub: &Subscription,
        stored: Option<SubscriptionStatus>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let kind = match stored {
            None => EventKind::SubscriptionCreated,
            Some(before)
                if sub.status == SubscriptionStatus::Canceled
                    && before != SubscriptionStatus::Canceled =>
            {
                EventKind::SubscriptionCanceled
            }
            Some(_) => EventKind::SubscriptionUpdated,
        };
        let reader = Self::customer(conn, &sub.customer_id)
            .await?
            .and_then(|c| c.reader_id);
        Self::emit(
            conn,
            &OutboundEvent::subscription(kind, sub, reader.as_deref(), at),
        )
        .await?;
        Self::mark_subscription_readers(conn, &sub.id, ChangeCause::Subscription, at).await
    }
}
