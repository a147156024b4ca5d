//! Disputes into the mirror. Like a refund, a dispute finds its invoice through the payment it
//! disputes, whichever arrives first; a closed dispute stays closed, and the first time it is
//! seen closed is when a lost one counts against revenue.

use chrono::{DateTime, Utc};
use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use super::ApplyReport;
use crate::domain::subscription::supersedes;
use crate::domain::{Dispute, Version};
use crate::store::columns::fingerprint;
use crate::store::dialect::{Dialect, SqlStore};
use crate::store::error::StoreError;

#[derive(FromRow)]
struct StoredDispute {
    status: String,
    closed_at: Option<i64>,
    version_created: i64,
    version_source: String,
    fingerprint: String,
}

#[sql_bounds]
impl<DB: Dialect> SqlStore<DB> {
    pub(super) async fn put_dispute(
        conn: &mut DB::Connection,
        dispute: &Dispute,
        version: &Version,
        at: DateTime<Utc>,
        report: &mut ApplyReport,
    ) -> Result<(), StoreError> {
        let stored = sqlx::query_as::<DB, StoredDispute>(
            "SELECT status, closed_at, version_created, version_source, fingerprint \
             FROM disputes WHERE id = $1",
        )
        .bind(dispute.id.clone())
        .fetch_optional(&mut *conn)
        .await?;
        let content = fingerprint(dispute);
        let confirms = stored
            .as_ref()
            .is_some_and(|row| row.fingerprint == content);
        let stored_version = stored.as_ref().map(|row| {
            (
                Dispute::is_closed_status(&row.status),
                Version {
                    created: row.version_created,
                    source: row.version_source.clone(),
                },
            )
        });
        if !supersedes(
            stored_version.as_ref().map(|(closed, v)| (*closed, v)),
            dispute.is_closed(),
            version,
        ) {
            return Ok(());
        }
        let closed_at = dispute.is_closed().then(|| {
            stored
                .as_ref()
                .and_then(|row| row.closed_at)
                .unwrap_or(version.created)
        });
        let invoice_id = Self::invoice_of_payment(
            conn,
            dispute.payment_intent_id.as_deref(),
            dispute.charge_id.as_deref(),
        )
        .await?;
        sqlx::query(
            "INSERT INTO disputes (id, charge_id, payment_intent_id, invoice_id, amount, currency, \
             reason, status, created, closed_at, version_created, version_source, fingerprint, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (id) DO UPDATE SET charge_id = excluded.charge_id, \
             payment_intent_id = excluded.payment_intent_id, \
             invoice_id = COALESCE(excluded.invoice_id, disputes.invoice_id), \
             amount = excluded.amount, currency = excluded.currency, reason = excluded.reason, \
             status = excluded.status, created = excluded.created, closed_at = excluded.closed_at, \
             version_created = excluded.version_created, version_source = excluded.version_source, \
             fingerprint = excluded.fingerprint, updated_at = excluded.updated_at",
        )
        .bind(dispute.id.clone())
        .bind(dispute.charge_id.clone())
        .bind(dispute.payment_intent_id.clone())
        .bind(invoice_id)
        .bind(dispute.amount)
        .bind(dispute.currency.clone())
        .bind(dispute.reason.clone())
        .bind(dispute.status.clone())
        .bind(dispute.created.timestamp())
        .bind(closed_at)
        .bind(version.created)
        .bind(version.source.clone())
        .bind(content)
        .bind(at.timestamp_millis())
        .execute(&mut *conn)
        .await?;
        if !confirms {
            report.changed += 1;
        }
        Ok(())
    }
}
