//! Deliveries: one event to one endpoint, claimed under a lease by whichever dispatcher comes
//! first, attempted, and recorded with what came back.

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use crate::domain::{
    AuditEntry, DeliveryId, DeliveryStatus, EndpointId, EndpointSecret, OutboundEventId,
};
use crate::store::columns::instant;
use crate::store::dialect::{Dialect, SqlStore};
use crate::store::error::StoreError;

/// A delivery as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its id.
    pub id: DeliveryId,
    /// The event delivered.
    pub event_id: OutboundEventId,
    /// The event's type.
    pub event_type: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// The status code of the last attempt, if it got an answer.
    pub last_status_code: Option<i64>,
    /// What went wrong with the last attempt.
    pub last_error: Option<String>,
    /// When the last attempt was made.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When the next is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// Which deliveries of an endpoint to list, by id.
#[derive(Debug, Clone)]
pub struct DeliveryFilter {
    /// Only those in this state.
    pub status: Option<DeliveryStatus>,
    /// After this one.
    pub after: Option<DeliveryId>,
    /// At most this many.
    pub limit: u32,
}

/// A delivery claimed for one attempt, with what the attempt needs.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// Its id.
    pub id: DeliveryId,
    /// Its endpoint.
    pub endpoint_id: EndpointId,
    /// The event's id: the `webhook-id`.
    pub event_id: OutboundEventId,
    /// The event's body.
    pub body: String,
    /// Attempts made before this one.
    pub attempts: i64,
    /// When the delivery was made.
    pub created_at: DateTime<Utc>,
    /// Where to send it.
    pub url: String,
    /// The secrets that sign it: the endpoint's, and the one before while a rotation overlaps.
    pub secrets: Vec<EndpointSecret>,
    /// The claim's lease: the attempt is recorded only while the delivery is still so claimed.
    pub lease_until: DateTime<Utc>,
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Answered 2xx.
    Delivered {
        /// The status code.
        status: u16,
    },
    /// Failed; to be attempted again at `next`, or given up (`next` `None`).
    Failed {
        /// The status code, when there was an answer.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// When to try again.
        next: Option<DateTime<Utc>>,
    },
    /// Answered 410 Gone: given up, and the endpoint disabled.
    Gone,
}

/// What asking for a retry came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried {
    /// Due now.
    Scheduled(Delivery),
    /// An attempt is under way; it is recorded as it ends.
    InFlight,
    /// The endpoint has no such delivery.
    NotFound,
}

/// The backlog, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Deliveries pending.
    pub pending: i64,
    /// When the oldest pending delivery was made.
    pub oldest: Option<DateTime<Utc>>,
}

/// Deliveries.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// An endpoint's deliveries, by id; `None` if there is no such endpoint.
    async fn deliveries(
        &self,
        endpoint: &EndpointId,
        filter: &DeliveryFilter,
    ) -> Result<Option<Vec<Delivery>>, StoreError>;

    /// Makes a delivery pending again, due at `at`, with its audit entry, unless an attempt of
    /// it is under way.
    async fn retry_delivery(
        &self,
        endpoint: &EndpointId,
        delivery: &DeliveryId,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Retried, StoreError>;

    /// Makes a delivery to `endpoint` of every event from `from` (included) to `to` (excluded)
    /// of a type it receives, due at `at`, with its audit entry; how many, or `None` if there
    /// is no such endpoint.
    async fn replay_events(
        &self,
        endpoint: &EndpointId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Option<u64>, StoreError>;

    /// Enabled endpoints with a delivery due at `now`, at most `limit`.
    async fn due_endpoints(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<EndpointId>, StoreError>;

    /// Claims the oldest delivery to `endpoint` due at `now`, moving its next attempt to
    /// `lease_until` so that no other dispatcher attempts it meanwhile.
    async fn claim_delivery(
        &self,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<ClaimedDelivery>, StoreError>;

    /// Records an attempt made at `at`. An endpoint whose every attempt failed since
    /// `disable_after` before `at` is disabled, as is one that answered 410 Gone.
    async fn record_attempt(
        &self,
        delivery: &ClaimedDelivery,
        outcome: &AttemptOutcome,
        at: DateTime<Utc>,
        disable_after: TimeDelta,
    ) -> Result<(), StoreError>;

    /// How many deliveries to enabled endpoints are pending, and the oldest.
    async fn queue_stats(&self) -> Result<QueueStats, StoreError>;
}

#[derive(FromRow)]
struct DeliveryRow {
    id: String,
    event_id: String,
    event_type: String,
    status: String,
    attempts: i64,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    last_attempt_at: Option<i64>,
    next_attempt_at: Option<i64>,
    delivered_at: Option<i64>,
    created_at: i64,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;

    fn try_from(row: DeliveryRow) -> Result<Self, StoreError> {
        Ok(Delivery {
            id: DeliveryId::from_stored(row.id),
            event_id: OutboundEventId::from_stored(row.event_id),
            event_type: row.event_type,
            status: row
                .status
                .parse::<DeliveryStatus>()
                .map_err(StoreError::other)?,
            attempts: row.attempts,
            last_status_code: row.last_status_code,
            last_error: row.last_error,
            last_attempt_at: row.last_attempt_at.map(instant).transpose()?,
            next_attempt_at: row.next_attempt_at.map(instant).transpose()?,
            delivered_at: row.delivered_at.map(instant).transpose()?,
            created_at: instant(row.created_at)?,
        })
    }
}

#[derive(FromRow)]
struct ClaimRow {
    id: String,
    event_id: String,
    attempts: i64,
    created_at: i64,
}

#[derive(FromRow)]
struct TargetRow {
    url: String,
    body: String,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<i64>,
}

const DELIVERY_SELECT: &str = "SELECT d.id, d.event_id, e.type AS event_type, d.status, \
     d.attempts, d.last_status_code, d.last_error, d.last_attempt_at, d.next_attempt_at, \
     d.delivered_at, d.created_at FROM webhook_deliveries d \
     JOIN outbound_events e ON e.id = d.event_id";

/// Error texts are kept short.
fn truncated(error: &str) -> String {
    error.chars().take(500).collect()
}

#[sql_bounds]
impl<DB: Dialect> SqlStore<DB> {
    async fn endpoint_exists(conn: &mut DB::Connection, id: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_as::<DB, (String,)>("SELECT id FROM webhook_endpoints WHERE id = $1")
                .bind(id.to_owned())
                .fetch_optional(&mut *conn)
                .await?
                .is_some(),
        )
    }
}

#[sql_bounds]
#[async_trait]
impl<DB: Dialect> DeliveryStore for SqlStore<DB> {
    async fn deliveries(
        &self,
        endpoint: &EndpointId,
        filter: &DeliveryFilter,
    ) -> Result<Option<Vec<Delivery>>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        if !Self::endpoint_exists(&mut conn, endpoint.as_str()).await? {
            return Ok(None);
        }
        let rows = sqlx::query_as::<DB, DeliveryRow>(&format!(
            "{DELIVERY_SELECT} WHERE d.endpoint_id = $1 AND d.id > $2 \
             AND ($3 = '' OR d.status = $3) ORDER BY d.id LIMIT $4"
        ))
        .bind(endpoint.as_str().to_owned())
        .bind(
            filter
                .after
                .as_ref()
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default(),
        )
        .bind(
            filter
                .status
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
        )
        .bind(i64::from(filter.limit))
        .fetch_all(&mut *conn)
        .await?;
        rows.into_iter()
            .map(Delivery::try_from)
            .collect::<Result<_, _>>()
            .map(Some)
    }

    async fn retry_delivery(
        &self,
        endpoint: &EndpointId,
        delivery: &DeliveryId,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Retried, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let updated = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3 \
             WHERE id = $1 AND endpoint_id = $2 \
             AND (claimed_until IS NULL OR claimed_until <= $3)",
        )
        .bind(delivery.as_str().to_owned())
        .bind(endpoint.as_str().to_owned())
        .bind(at.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&updated) == 0 {
            let exists = sqlx::query_as::<DB, (String,)>(
                "SELECT id FROM webhook_deliveries WHERE id = $1 AND endpoint_id = $2",
            )
            .bind(delivery.as_str().to_owned())
            .bind(endpoint.as_str().to_owned())
            .fetch_optional(&mut *tx)
            .await?;
            tx.rollback().await?;
            return Ok(if exists.is_some() {
                Retried::InFlight
            } else {
                Retried::NotFound
            });
        }
        // An operator asking for it now: the endpoint's pause after a failure does not hold it.
        sqlx::query("UPDATE webhook_endpoints SET paused_until = NULL WHERE id = $1")
            .bind(endpoint.as_str().to_owned())
            .execute(&mut *tx)
            .await?;
        Self::append_audit(&mut tx, audit).await?;
        let row = sqlx::query_as::<DB, DeliveryRow>(&format!("{DELIVERY_SELECT} WHERE d.id = $1"))
            .bind(delivery.as_str().to_owned())
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Delivery::try_from(row).map(Retried::Scheduled)
    }

    async fn replay_events(
        &self,
        endpoint: &EndpointId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Option<u64>, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        if !Self::endpoint_exists(&mut tx, endpoint.as_str()).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        let events = sqlx::query_as::<DB, (String,)>(
            "SELECT e.id FROM outbound_events e WHERE e.at >= $2 AND e.at < $3 AND EXISTS \
             (SELECT 1 FROM webhook_endpoint_types t WHERE t.endpoint_id = $1 \
             AND t.event_type IN (e.type, '*')) ORDER BY e.at, e.id",
        )
        .bind(endpoint.as_str().to_owned())
        .bind(from.timestamp_millis())
        .bind(to.timestamp_millis())
        .fetch_all(&mut *tx)
        .await?;
        for (event,) in &events {
            Self::insert_delivery(&mut tx, endpoint.as_str(), event, at.timestamp_millis()).await?;
        }
        Self::append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(Some(events.len() as u64))
    }

    async fn due_endpoints(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<EndpointId>, StoreError> {
        let rows = sqlx::query_as::<DB, (String,)>(
            // One index seek per enabled endpoint, however many deliveries wait for a dead one.
            "SELECT id FROM (SELECT e.id, (SELECT MIN(d.next_attempt_at) FROM webhook_deliveries d \
             WHERE d.endpoint_id = e.id AND d.status = 'pending') AS due \
             FROM webhook_endpoints e WHERE e.enabled \
             AND (e.paused_until IS NULL OR e.paused_until <= $1)) due_endpoints \
             WHERE due <= $1 ORDER BY due, id LIMIT $2",
        )
        .bind(now.timestamp_millis())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id,)| EndpointId::from_stored(id))
            .collect())
    }

    async fn claim_delivery(
        &self,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<ClaimedDelivery>, StoreError> {
        // The outer conditions are checked again on the row as it is updated: when two
        // dispatchers pick the same row, PostgreSQL makes the second wait for the first and
        // then finds it no longer due; SQLite runs one writer at a time.
        let claimed = sqlx::query_as::<DB, ClaimRow>(&format!(
            "UPDATE webhook_deliveries SET next_attempt_at = $3, claimed_until = $3 \
                 WHERE id = (SELECT id FROM webhook_deliveries WHERE endpoint_id = $1 \
                 AND status = 'pending' AND next_attempt_at <= $2 \
                 ORDER BY next_attempt_at, id LIMIT 1{}) \
                 AND status = 'pending' AND next_attempt_at <= $2 \
                 RETURNING id, event_id, attempts, created_at",
            DB::SKIP_LOCKED
        ))
        .bind(endpoint.as_str().to_owned())
        .bind(now.timestamp_millis())
        .bind(lease_until.timestamp_millis())
        .fetch_optional(&self.pool)
        .await?;
        let Some(claimed) = claimed else {
            return Ok(None);
        };
        let target = sqlx::query_as::<DB, TargetRow>(
            "SELECT w.url, e.body, w.secret, w.previous_secret, w.previous_secret_expires_at \
             FROM webhook_endpoints w, outbound_events e WHERE w.id = $1 AND e.id = $2",
        )
        .bind(endpoint.as_str().to_owned())
        .bind(claimed.event_id.clone())
        .fetch_optional(&self.pool)
        .await?;
        // Deleted meanwhile: its deliveries went with it.
        let Some(target) = target else {
            return Ok(None);
        };
        let mut secrets = vec![EndpointSecret::from_stored(target.secret)];
        if let (Some(previous), Some(until)) =
            (target.previous_secret, target.previous_secret_expires_at)
            && now.timestamp_millis() < until
        {
            secrets.push(EndpointSecret::from_stored(previous));
        }
        Ok(Some(ClaimedDelivery {
            id: DeliveryId::from_stored(claimed.id),
            endpoint_id: endpoint.clone(),
            event_id: OutboundEventId::from_stored(claimed.event_id),
            body: target.body,
            attempts: claimed.attempts,
            created_at: instant(claimed.created_at)?,
            url: target.url,
            secrets,
            lease_until,
        }))
    }

    async fn record_attempt(
        &self,
        delivery: &ClaimedDelivery,
        outcome: &AttemptOutcome,
        at: DateTime<Utc>,
        disable_after: TimeDelta,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let (status, code, error, next, delivered) = match outcome {
            AttemptOutcome::Delivered { status } => (
                DeliveryStatus::Delivered,
                Some(i64::from(*status)),
                None,
                None,
                Some(at.timestamp_millis()),
            ),
            AttemptOutcome::Failed {
                status,
                error,
                next,
            } => (
                if next.is_some() {
                    DeliveryStatus::Pending
                } else {
                    DeliveryStatus::Failed
                },
                status.map(i64::from),
                Some(truncated(error)),
                next.map(|n| n.timestamp_millis()),
                None,
            ),
            AttemptOutcome::Gone => (
                DeliveryStatus::Failed,
                Some(410),
                Some("the endpoint answered 410 Gone".to_owned()),
                None,
                None,
            ),
        };
        // Only while the claim holds: a delivery whose endpoint was deleted meanwhile is gone.
        let recorded = sqlx::query(
            "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, \
             last_status_code = $3, last_error = $4, last_attempt_at = $5, next_attempt_at = $6, \
             delivered_at = COALESCE($7, delivered_at), claimed_until = NULL \
             WHERE id = $1 AND status = 'pending' AND claimed_until = $8",
        )
        .bind(delivery.id.as_str().to_owned())
        .bind(status.as_str().to_owned())
        .bind(code)
        .bind(error)
        .bind(at.timestamp_millis())
        .bind(next)
        .bind(delivered)
        .bind(delivery.lease_until.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&recorded) == 0 {
            tx.rollback().await?;
            return Ok(());
        }
        let endpoint = delivery.endpoint_id.as_str().to_owned();
        match outcome {
            AttemptOutcome::Delivered { .. } => {
                sqlx::query(
                    "UPDATE webhook_endpoints SET failing_since = NULL, paused_until = NULL \
                     WHERE id = $1 AND (failing_since IS NOT NULL OR paused_until IS NOT NULL)",
                )
                .bind(endpoint)
                .execute(&mut *tx)
                .await?;
            }
            AttemptOutcome::Gone => {
                sqlx::query(
                    "UPDATE webhook_endpoints SET enabled = $2, updated_at = $3, \
                     disabled_reason = 'it answered 410 Gone' WHERE id = $1 AND enabled",
                )
                .bind(endpoint)
                .bind(false)
                .bind(at.timestamp_millis())
                .execute(&mut *tx)
                .await?;
            }
            AttemptOutcome::Failed { next, .. } => {
                // Left alone until this delivery's retry is due (or a moment, when it was given
                // up), so that an endpoint that is down is tried once per backoff.
                let paused_until = next.unwrap_or(at + TimeDelta::seconds(10));
                sqlx::query(
                    "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2), \
                     paused_until = $3 WHERE id = $1",
                )
                .bind(endpoint.clone())
                .bind(at.timestamp_millis())
                .bind(paused_until.timestamp_millis())
                .execute(&mut *tx)
                .await?;
                let reason = format!(
                    "every delivery failed for {}",
                    crate::domain::time::span(disable_after)
                );
                sqlx::query(
                    "UPDATE webhook_endpoints SET enabled = $2, updated_at = $3, \
                     disabled_reason = $4 WHERE id = $1 AND enabled AND failing_since <= $5",
                )
                .bind(endpoint)
                .bind(false)
                .bind(at.timestamp_millis())
                .bind(reason)
                .bind((at - disable_after).timestamp_millis())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let (pending, oldest) = sqlx::query_as::<DB, (i64, Option<i64>)>(
            "SELECT COUNT(*), MIN(d.created_at) FROM webhook_deliveries d \
             JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE d.status = 'pending' AND e.enabled",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(QueueStats {
            pending,
            oldest: oldest.map(instant).transpose()?,
        })
    }
}
