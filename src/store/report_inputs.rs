//! The SQL behind finance reports: sums of paid invoices and refunds per local day, and the
//! subscription history with the discounts paid invoices show.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
use crate::domain::{
    History, InvoiceDay, PaidInvoice, RefundDay, Snapshot, StripePriceId, SubscriptionStatus,
};

/// What finance reports read.
#[async_trait]
pub trait ReportStore: Send + Sync {
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

    /// The invoices paid before `before` of each subscription that ever had a discounted one,
    /// oldest first.
    async fn discounted_invoices(
        &self,
        before: i64,
    ) -> Result<HashMap<String, Vec<PaidInvoice>>, StoreError>;
}

#[derive(FromRow)]
struct InvoiceSlotRow {
    day: i64,
    currency: String,
    price_id: Option<String>,
    gross: i64,
    tax: i64,
    invoices: i64,
}

#[derive(FromRow)]
struct RefundSlotRow {
    day: i64,
    currency: String,
    price_id: Option<String>,
    linked: bool,
    amount: i64,
}

#[derive(FromRow)]
struct HistoryRow {
    subscription_id: String,
    customer_id: String,
    version_created: i64,
    status: String,
    items: String,
}

#[derive(FromRow)]
struct PaidInvoiceRow {
    subscription_id: String,
    paid_at: i64,
    subtotal: i64,
    discount: i64,
}

/// An item as the history stores it.
#[derive(serde::Deserialize)]
struct StoredItem {
    price: String,
    quantity: i64,
}

#[sql_bounds]
#[async_trait]
impl<DB: Dialect> ReportStore for SqlStore<DB> {
    async fn invoice_days(
        &self,
        from: i64,
        to: i64,
        offset: i64,
    ) -> Result<Vec<InvoiceDay>, StoreError> {
        let rows = sqlx::query_as::<DB, InvoiceSlotRow>(
            "SELECT (paid_at + $3) / 86400 AS day, currency, price_id, \
             CAST(SUM(amount_paid) AS BIGINT) AS gross, CAST(SUM(tax) AS BIGINT) AS tax, \
             CAST(COUNT(*) AS BIGINT) AS invoices \
             FROM invoices WHERE status = 'paid' AND paid_at >= $1 AND paid_at < $2 \
             GROUP BY 1, 2, 3",
        )
        .bind(from)
        .bind(to)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| InvoiceDay {
                day: row.day,
                currency: row.currency,
                price_id: row.price_id,
                gross: row.gross,
                tax: row.tax,
                invoices: row.invoices,
            })
            .collect())
    }

    async fn refund_days(
        &self,
        from: i64,
        to: i64,
        offset: i64,
    ) -> Result<Vec<RefundDay>, StoreError> {
        let rows = sqlx::query_as::<DB, RefundSlotRow>(
            "SELECT (r.created + $3) / 86400 AS day, r.currency, i.price_id, \
             (r.invoice_id IS NOT NULL) AS linked, CAST(SUM(r.amount) AS BIGINT) AS amount \
             FROM refunds r LEFT JOIN invoices i ON i.id = r.invoice_id \
             WHERE r.created >= $1 AND r.created < $2 \
             AND (r.status IS NULL OR r.status NOT IN ('failed', 'canceled')) \
             GROUP BY 1, 2, 3, 4",
        )
        .bind(from)
        .bind(to)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| RefundDay {
                day: row.day,
                currency: row.currency,
                linked: row.linked,
                price_id: row.price_id,
                amount: row.amount,
            })
            .collect())
    }

    async fn subscription_histories(&self, before: i64) -> Result<Vec<History>, StoreError> {
        let rows = sqlx::query_as::<DB, HistoryRow>(
            "SELECT h.subscription_id, s.customer_id, h.version_created, h.status, h.items \
             FROM subscription_history h JOIN subscriptions s ON s.id = h.subscription_id \
             WHERE h.version_created < $1 \
             ORDER BY h.subscription_id, h.version_created, h.version_source",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<History> = Vec::new();
        for row in rows {
            let status = row
                .status
                .parse::<SubscriptionStatus>()
                .map_err(|e| StoreError::other(anyhow::anyhow!("{e}")))?;
            let items: Vec<StoredItem> = serde_json::from_str(&row.items)
                .map_err(|e| StoreError::other(anyhow::anyhow!("stored items: {e}")))?;
            let snapshot = Snapshot {
                at: row.version_created,
                status,
                items: items
                    .into_iter()
                    .filter_map(|item| {
                        StripePriceId::parse(&item.price).map(|price| (price, item.quantity))
                    })
                    .collect(),
            };
            match out.last_mut() {
                Some(last) if last.subscription_id == row.subscription_id => {
                    last.snapshots.push(snapshot);
                }
                _ => out.push(History {
                    subscription_id: row.subscription_id,
                    customer_id: row.customer_id,
                    snapshots: vec![snapshot],
                }),
            }
        }
        Ok(out)
    }

    async fn discounted_invoices(
        &self,
        before: i64,
    ) -> Result<HashMap<String, Vec<PaidInvoice>>, StoreError> {
        let rows = sqlx::query_as::<DB, PaidInvoiceRow>(
            "SELECT i.subscription_id, i.paid_at, i.subtotal, i.discount \
             FROM (SELECT DISTINCT subscription_id FROM invoices WHERE discount > 0) d \
             JOIN invoices i ON i.subscription_id = d.subscription_id \
             WHERE i.status = 'paid' AND i.paid_at < $1 \
             ORDER BY i.subscription_id, i.paid_at",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<String, Vec<PaidInvoice>> = HashMap::new();
        for row in rows {
            out.entry(row.subscription_id)
                .or_default()
                .push(PaidInvoice {
                    paid_at: row.paid_at,
                    subtotal: row.subtotal,
                    discount: row.discount,
                });
        }
        Ok(out)
    }
}
