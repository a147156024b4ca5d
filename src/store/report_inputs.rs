//! The SQL behind finance reports: sums of paid invoices and refunds per local day, and the
//! subscription history with the discounts paid invoices show.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
pub use super::invoice_reads::Visit;
use crate::domain::{
    DisputeDay, GiftSale, History, InvoiceDay, LostDispute, PaidInvoice, RefundDay, Snapshot,
    StripePriceId, SubscriptionStatus,
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

    /// Lost disputes closed in `from..to` (Unix seconds), each on its local day, with what their
    /// payment paid and had had refunded by the close.
    async fn lost_disputes(
        &self,
        from: i64,
        to: i64,
        offset: i64,
    ) -> Result<Vec<LostDispute>, StoreError>;

    /// Disputes opened in `from..to` (Unix seconds), counted and summed per local day, currency
    /// and status.
    async fn dispute_days(
        &self,
        from: i64,
        to: i64,
        offset: i64,
    ) -> Result<Vec<DisputeDay>, StoreError>;

    /// Hands each invoice paid before `before` (Unix seconds), with its lines and the refunds
    /// made of it before then, to `visit`, one at a time and in no particular order.
    async fn each_invoice_service(
        &self,
        before: i64,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError>;

    /// Gift subscriptions bought before `before` (Unix seconds).
    async fn gift_sales(&self, before: i64) -> Result<Vec<GiftSale>, StoreError>;

    /// The report generation: it grows with every change reports are computed from.
    async fn report_generation(&self) -> Result<i64, StoreError>;

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
struct LostDisputeRow {
    day: i64,
    currency: String,
    linked: bool,
    price_id: Option<String>,
    amount: i64,
    paid: Option<i64>,
    refunded: i64,
}

#[derive(FromRow)]
struct DisputeDayRow {
    day: i64,
    currency: String,
    status: String,
    disputes: i64,
    amount: i64,
}

#[derive(FromRow)]
struct GiftSaleRow {
    plan_id: String,
    currency: Option<String>,
    amount_total: Option<i64>,
    amount_tax: Option<i64>,
    purchased_at: i64,
    months: i64,
    redeemed_at: Option<i64>,
    expires_at: i64,
}

/// Refunds that count: not failed or canceled.
const COUNTED_REFUND: &str = "(r.status IS NULL OR r.status NOT IN ('failed', 'canceled'))";

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
        let rows: Vec<InvoiceSlotRow> = self
            .over_days(
                "SELECT (paid_at + $3) / 86400 AS day, currency, price_id, \
             CAST(SUM(amount_paid) AS BIGINT) AS gross, CAST(SUM(tax) AS BIGINT) AS tax, \
             CAST(COUNT(*) AS BIGINT) AS invoices \
             FROM invoices WHERE status = 'paid' AND paid_at >= $1 AND paid_at < $2 \
             GROUP BY 1, 2, 3",
                from,
                to,
                offset,
            )
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
        let rows: Vec<RefundSlotRow> = self
            .over_days(
                "SELECT (r.created + $3) / 86400 AS day, r.currency, i.price_id, \
             (r.invoice_id IS NOT NULL) AS linked, CAST(SUM(r.amount) AS BIGINT) AS amount \
             FROM refunds r LEFT JOIN invoices i ON i.id = r.invoice_id \
             WHERE r.created >= $1 AND r.created < $2 \
             AND (r.status IS NULL OR r.status NOT IN ('failed', 'canceled')) \
             GROUP BY 1, 2, 3, 4",
                from,
                to,
                offset,
            )
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

    async fn lost_disputes(
        &self,
        from: i64,
        to: i64,
        offset: i64,
    ) -> Result<Vec<LostDispute>, StoreError> {
        let sql = format!(
            "SELECT (d.closed_at + $3) / 86400 AS day, d.currency, \
             (d.invoice_id IS NOT NULL) AS linked, i.price_id, d.amount, i.amount_paid AS paid, \
             CAST(COALESCE((SELECT SUM(r.amount) FROM refunds r \
               WHERE (r.invoice_id = d.invoice_id OR r.charge_id = d.charge_id) \
               AND r.created <= d.closed_at AND {COUNTED_REFUND}), 0) AS BIGINT) AS refunded \
             FROM disputes d LEFT JOIN invoices i ON i.id = d.invoice_id \
             WHERE d.status = 'lost' AND d.closed_at >= $1 AND d.closed_at < $2"
        );
        let rows: Vec<LostDisputeRow> = self.over_days(&sql, from, to, offset).await?;
        Ok(rows
            .into_iter()
            .map(|row| LostDispute {
                day: row.day,
                currency: row.currency,
                linked: row.linked,
                price_id: row.price_id,
                amount: row.amount,
                paid: row.paid,
                refunded: row.refunded,
            })
            .collect())
    }

    async fn dispute_days(
        &self,
        from: i64,
        to: i64,
        offset: i64,
    ) -> Result<Vec<DisputeDay>, StoreError> {
        let rows: Vec<DisputeDayRow> = self
            .over_days(
                "SELECT (created + $3) / 86400 AS day, currency, status, \
             CAST(COUNT(*) AS BIGINT) AS disputes, CAST(SUM(amount) AS BIGINT) AS amount \
             FROM disputes WHERE created >= $1 AND created < $2 GROUP BY 1, 2, 3",
                from,
                to,
                offset,
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| DisputeDay {
                day: row.day,
                currency: row.currency,
                status: row.status,
                disputes: row.disputes,
                amount: row.amount,
            })
            .collect())
    }

    async fn each_invoice_service(
        &self,
        before: i64,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        let refund_sql = format!(
            "SELECT r.invoice_id, r.created, r.amount FROM refunds r \
             WHERE r.invoice_id IS NOT NULL AND r.created < $1 AND {COUNTED_REFUND} \
             ORDER BY r.created, r.id"
        );
        let mut refunds: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
        for (invoice, created, amount) in sqlx::query_as::<DB, (String, i64, i64)>(&refund_sql)
            .bind(before)
            .fetch_all(&self.pool)
            .await?
        {
            refunds.entry(invoice).or_default().push((created, amount));
        }
        self.read_invoice_services(before, &refunds, visit).await
    }

    async fn gift_sales(&self, before: i64) -> Result<Vec<GiftSale>, StoreError> {
        let rows = sqlx::query_as::<DB, GiftSaleRow>(
            "SELECT plan_id, currency, amount_total, amount_tax, purchased_at, months, \
             redeemed_at, expires_at FROM gift_subscriptions WHERE purchased_at < $1",
        )
        .bind(before * 1000)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                Some(GiftSale {
                    plan_id: row.plan_id,
                    currency: row.currency?,
                    amount: row.amount_total? - row.amount_tax.unwrap_or(0),
                    purchased_at: row.purchased_at.div_euclid(1000),
                    months: u32::try_from(row.months).ok()?,
                    redeemed_at: row.redeemed_at.map(|at| at.div_euclid(1000)),
                    expires_at: row.expires_at.div_euclid(1000),
                })
            })
            .collect())
    }

    async fn report_generation(&self) -> Result<i64, StoreError> {
        let (generation,) =
            sqlx::query_as::<DB, (i64,)>("SELECT generation FROM report_generation WHERE id = 1")
                .fetch_one(&self.pool)
                .await?;
        Ok(generation)
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

#[sql_bounds]
impl<DB: Dialect> SqlStore<DB> {
    /// The rows of `sql` over the instants `from..to` (`$1`, `$2`), with local days at UTC
    /// offset `offset` (`$3`).
    async fn over_days<R>(
        &self,
        sql: &str,
        from: i64,
        to: i64,
        offset: i64,
    ) -> Result<Vec<R>, StoreError>
    where
        R: for<'r> FromRow<'r, DB::Row> + Send + Unpin,
    {
        Ok(sqlx::query_as::<DB, R>(sql)
            .bind(from)
            .bind(to)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Moves the report generation on, inside the caller's transaction: what reports are
    /// computed from changes with it.
    pub(super) async fn touch_reports(conn: &mut DB::Connection) -> Result<(), StoreError> {
        sqlx::query("UPDATE report_generation SET generation = generation + 1 WHERE id = 1")
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}
