//! Invoices, their payments and refunds into the mirror. A refund finds its invoice through
//! the payment it refunds, whichever of the two arrives first.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use super::ApplyReport;
use crate::domain::subscription::supersedes;
use crate::domain::{
    EventKind, Invoice, InvoicePayment, InvoiceStatus, OutboundEvent, Refund, Version,
};
use crate::store::columns::{fingerprint, secs};
use crate::store::dialect::{Dialect, SqlStore};
use crate::store::error::StoreError;

#[derive(FromRow)]
pub(super) struct VersionRow {
    status: String,
    version_created: i64,
    version_source: String,
    fingerprint: String,
}

#[sql_bounds]
impl<DB: Dialect> SqlStore<DB> {
    pub(super) async fn put_invoice(
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
                    .map_err(StoreError::other)?;
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
        let paid_now = invoice.status == InvoiceStatus::Paid
            && stored
                .as_ref()
                .is_none_or(|(status, _)| *status != InvoiceStatus::Paid);
        if paid_now {
            Self::announce_invoice(conn, EventKind::InvoicePaid, invoice, at).await?;
        }
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

    pub(super) async fn put_invoice_payment(
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

    /// Links refunds and disputes stored without an invoice to `invoice_id`, now that a payment
    /// names it.
    async fn attribute_refunds(
        conn: &mut DB::Connection,
        invoice_id: &str,
        payment_intent_id: Option<&str>,
        charge_id: Option<&str>,
    ) -> Result<(), StoreError> {
        if payment_intent_id.is_none() && charge_id.is_none() {
            return Ok(());
        }
        for sql in [
            "UPDATE refunds SET invoice_id = $1 WHERE invoice_id IS NULL \
             AND (payment_intent_id = $2 OR charge_id = $3)",
            "UPDATE disputes SET invoice_id = $1 WHERE invoice_id IS NULL \
             AND (payment_intent_id = $2 OR charge_id = $3)",
        ] {
            sqlx::query(sql)
                .bind(invoice_id.to_owned())
                .bind(payment_intent_id.map(str::to_owned))
                .bind(charge_id.map(str::to_owned))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// The invoice a refund takes money back from, from what the mirror knows of its payment.
    pub(super) async fn invoice_of_payment(
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

    pub(super) async fn put_refund(
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
        let mut replaces_total = false;
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
            let replaced = sqlx::query("DELETE FROM refunds WHERE id = $1")
                .bind(Refund::aggregate_id(charge))
                .execute(&mut *conn)
                .await?;
            // The refunds a charge's total stood for were announced with it.
            replaces_total = DB::rows_affected(&replaced) > 0;
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
        let new = stored.is_none();
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
        .bind(invoice_id.clone())
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
        if new && !replaces_total {
            Self::emit(
                conn,
                &OutboundEvent::refund(refund, invoice_id.as_deref(), at),
            )
            .await?;
        }
        Ok(())
    }

    /// Writes an invoice's event, naming the reader its customer is linked to.
    pub(super) async fn announce_invoice(
        conn: &mut DB::Connection,
        kind: EventKind,
        invoice: &Invoice,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let reader = match &invoice.customer_id {
            Some(customer) => Self::customer(conn, customer)
                .await?
                .and_then(|c| c.reader_id),
            None => None,
        };
        Self::emit(
            conn,
            &OutboundEvent::invoice(kind, invoice, reader.as_deref(), at),
        )
        .await
    }
}
