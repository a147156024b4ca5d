//! Bounded storage: one batch of the storage purge at a time. Each batch is one statement (its
//! own short transaction) over at most `limit` rows found through an index, so no lock is held
//! for long, whatever the backlog.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tollgate_macros::sql_bounds;

use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
use crate::domain::Purge;

/// The storage purge's operation.
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Removes at most `limit` records of kind `what` that `cutoff` lets go (see
    /// [`crate::domain::Retention::cutoff`]), at `now`; how many. A kind is purged completely
    /// once a batch removes fewer than `limit`.
    async fn purge_batch(
        &self,
        what: Purge,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError>;
}

/// The table a kind of record lives in, the index that finds the records past their retention
/// (migration 0016, and `idempotency_keys_by_expiry`), and the condition (on `$1`, the cutoff in
/// Unix milliseconds) they meet; `None` for erasure notices, which span two tables.
fn target(what: Purge) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match what {
        Purge::MeterUnlocks => ("meter_unlocks", "meter_unlocks_by_time", "unlocked_at < $1"),
        // Pending and failed events still need their body to be applied.
        Purge::WebhookBodies => (
            "webhook_events",
            "webhook_events_body_kept",
            "body_dropped_at IS NULL AND received_at < $1 AND status IN ('applied', 'skipped')",
        ),
        Purge::DeliveredDeliveries => (
            "webhook_deliveries",
            "webhook_deliveries_by_outcome",
            "status = 'delivered' AND last_attempt_at < $1",
        ),
        Purge::FailedDeliveries => (
            "webhook_deliveries",
            "webhook_deliveries_by_outcome",
            "status = 'failed' AND last_attempt_at < $1",
        ),
        Purge::IdempotencyKeys => (
            "idempotency_keys",
            "idempotency_keys_by_expiry",
            "expires_at <= $1",
        ),
        Purge::DashboardSessions => (
            "dashboard_sessions",
            "dashboard_sessions_by_expiry",
            "expires_at <= $1",
        ),
        Purge::ErasureNotices => return None,
    })
}

#[sql_bounds]
#[async_trait]
impl<DB: Dialect> RetentionStore for SqlStore<DB> {
    async fn purge_batch(
        &self,
        what: Purge,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let Some((table, index, condition)) = target(what) else {
            return self.purge_erasure_notices(limit).await;
        };
        let rows = DB::some_rows(table, index, condition);
        let done = if what == Purge::WebhookBodies {
            // The row stays, so that a redelivery of the event is still recognised.
            sqlx::query::<DB>(&format!(
                "UPDATE {table} SET body = '', body_dropped_at = $3 WHERE {rows}"
            ))
            .bind(cutoff.timestamp_millis())
            .bind(i64::from(limit))
            .bind(now.timestamp_millis())
            .execute(&self.pool)
            .await?
        } else {
            sqlx::query::<DB>(&format!("DELETE FROM {table} WHERE {rows}"))
                .bind(cutoff.timestamp_millis())
                .bind(i64::from(limit))
                .execute(&self.pool)
                .await?
        };
        Ok(DB::rows_affected(&done))
    }
}

#[sql_bounds]
impl<DB: Dialect> SqlStore<DB> {
    /// Deletes at most `limit` `reader.erased` events none of whose deliveries is pending, with
    /// their deliveries; how many events.
    async fn purge_erasure_notices(&self, limit: u32) -> Result<u64, StoreError> {
        const SETTLED: &str = "SELECT e.id FROM outbound_events e \
             WHERE e.type = 'reader.erased' AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
             WHERE d.event_id = e.id AND d.status = 'pending') ORDER BY e.id LIMIT $1";
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let settled = sqlx::query_as::<DB, (String,)>(SETTLED)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        for (id,) in &settled {
            for sql in [
                "DELETE FROM webhook_deliveries WHERE event_id = $1",
                "DELETE FROM outbound_events WHERE id = $1",
            ] {
                sqlx::query::<DB>(sql)
                    .bind(id.clone())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(settled.len() as u64)
    }
}
