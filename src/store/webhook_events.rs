//! The Stripe webhook inbox: every verified event, stored once with its exact body, and where
//! applying it stands. The storage purge (`retention.rs`) drops the bodies of old applied and
//! skipped events and keeps the rest of their rows.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use super::columns::instant;
use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
use crate::domain::{EventStatus, EventType, NewWebhookEvent, StripeEventId, WebhookEvent};

/// Which stored events to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events in this state.
    pub status: Option<EventStatus>,
    /// Only events of this type.
    pub kind: Option<EventType>,
    /// Only events received before the one with this `seq`.
    pub before: Option<i64>,
    /// At most this many.
    pub limit: u32,
    /// Only the event with this id.
    pub id: Option<StripeEventId>,
}

/// A stored event with what applying it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Stripe's event id.
    pub id: StripeEventId,
    /// Its type.
    pub kind: EventType,
    /// Where it stands.
    pub status: EventStatus,
    /// The exact body Stripe sent; `None` once the storage purge dropped it.
    pub body: Option<String>,
    /// How often applying it was tried.
    pub attempts: i64,
    /// When tollgate received it.
    pub received_at: DateTime<Utc>,
}

/// Why an event could not be applied, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFailure {
    /// What went wrong, for operators.
    pub error: String,
    /// The customer whose link to a reader it waits for, if that is why.
    pub waiting_for: Option<String>,
    /// When to try again; `None` to leave it to an operator.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// The webhook inbox. Applying a stored event belongs to the mirror ([`super::MirrorStore`]).
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Stores a verified event unless one with its id is stored already; `true` when it was new.
    /// Concurrent deliveries of one event store it exactly once.
    async fn record_webhook_event(&self, event: &NewWebhookEvent) -> Result<bool, StoreError>;

    /// Stored events, newest first, without their bodies.
    async fn list_webhook_events(
        &self,
        filter: &EventFilter,
    ) -> Result<Vec<WebhookEvent>, StoreError>;

    /// The stored event with this id, body included.
    async fn stored_event(&self, id: &StripeEventId) -> Result<Option<StoredEvent>, StoreError>;

    /// Marks a pending or failed event failed, with why and when to try again.
    async fn fail_event(
        &self,
        id: &StripeEventId,
        failure: &EventFailure,
    ) -> Result<(), StoreError>;

    /// Claims up to `limit` pending or failed events whose next attempt is due at `now`: their
    /// next attempt moves to `lease_until`, so another instance's retry task passes them by
    /// while this one tries them (and comes back to them after the lease if this one dies).
    /// Their ids, in the order they were received.
    async fn claim_due_events(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<StripeEventId>, StoreError>;

    /// Ids of failed events that wait for this customer's link to a reader, oldest first.
    async fn events_waiting_for(&self, customer_id: &str)
    -> Result<Vec<StripeEventId>, StoreError>;
}

#[derive(FromRow)]
struct WebhookEventRow {
    seq: i64,
    id: String,
    #[sqlx(rename = "type")]
    kind: String,
    created: i64,
    api_version: Option<String>,
    livemode: bool,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    note: Option<String>,
    received_at: i64,
    applied_at: Option<i64>,
    next_attempt_at: Option<i64>,
    waiting_for: Option<String>,
    body_dropped_at: Option<i64>,
}

impl TryFrom<WebhookEventRow> for WebhookEvent {
    type Error = StoreError;

    fn try_from(row: WebhookEventRow) -> Result<Self, Self::Error> {
        Ok(WebhookEvent {
            seq: row.seq,
            id: StripeEventId::from_stored(row.id),
            kind: EventType::from_stored(row.kind),
            created: row.created,
            api_version: row.api_version,
            livemode: row.livemode,
            status: row
                .status
                .parse::<EventStatus>()
                .map_err(StoreError::other)?,
            attempts: row.attempts,
            last_error: row.last_error,
            note: row.note,
            received_at: instant(row.received_at)?,
            applied_at: row.applied_at.map(instant).transpose()?,
            next_attempt_at: row.next_attempt_at.map(instant).transpose()?,
            waiting_for: row.waiting_for,
            body_dropped_at: row.body_dropped_at.map(instant).transpose()?,
        })
    }
}

#[derive(FromRow)]
struct StoredEventRow {
    id: String,
    #[sqlx(rename = "type")]
    kind: String,
    status: String,
    body: String,
    body_dropped_at: Option<i64>,
    attempts: i64,
    received_at: i64,
}

impl TryFrom<StoredEventRow> for StoredEvent {
    type Error = StoreError;

    fn try_from(row: StoredEventRow) -> Result<Self, Self::Error> {
        Ok(StoredEvent {
            status: row
                .status
                .parse::<EventStatus>()
                .map_err(StoreError::other)?,
            id: StripeEventId::from_stored(row.id),
            kind: EventType::from_stored(row.kind),
            body: row.body_dropped_at.is_none().then_some(row.body),
            attempts: row.attempts,
            received_at: instant(row.received_at)?,
        })
    }
}

#[sql_bounds]
#[async_trait]
impl<DB: Dialect> EventStore for SqlStore<DB> {
    async fn record_webhook_event(&self, event: &NewWebhookEvent) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO webhook_events \
             (id, type, created, api_version, livemode, body, status, note, received_at, \
             next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(event.id.as_str().to_owned())
        .bind(event.kind.as_str().to_owned())
        .bind(event.created)
        .bind(event.api_version.clone())
        .bind(event.livemode)
        .bind(event.body.clone())
        .bind(event.status.as_str().to_owned())
        .bind(event.note.clone())
        .bind(event.received_at.timestamp_millis())
        .bind(event.next_attempt_at.map(|at| at.timestamp_millis()))
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&inserted) == 1)
    }

    async fn list_webhook_events(
        &self,
        filter: &EventFilter,
    ) -> Result<Vec<WebhookEvent>, StoreError> {
        sqlx::query_as::<DB, WebhookEventRow>(
            "SELECT seq, id, type, created, api_version, livemode, status, attempts, last_error, \
             note, received_at, applied_at, next_attempt_at, waiting_for, body_dropped_at \
             FROM webhook_events \
             WHERE ($1 = '' OR status = $1) AND ($2 = '' OR type = $2) AND seq < $3 \
             AND ($5 = '' OR id = $5) ORDER BY seq DESC LIMIT $4",
        )
        .bind(
            filter
                .status
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
        )
        .bind(
            filter
                .kind
                .as_ref()
                .map(|k| k.as_str().to_owned())
                .unwrap_or_default(),
        )
        .bind(filter.before.unwrap_or(i64::MAX))
        .bind(i64::from(filter.limit))
        .bind(
            filter
                .id
                .as_ref()
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default(),
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(WebhookEvent::try_from)
        .collect()
    }

    async fn stored_event(&self, id: &StripeEventId) -> Result<Option<StoredEvent>, StoreError> {
        sqlx::query_as::<DB, StoredEventRow>(
            "SELECT id, type, status, body, body_dropped_at, attempts, received_at \
             FROM webhook_events WHERE id = $1",
        )
        .bind(id.as_str().to_owned())
        .fetch_optional(&self.pool)
        .await?
        .map(StoredEvent::try_from)
        .transpose()
    }

    async fn fail_event(
        &self,
        id: &StripeEventId,
        failure: &EventFailure,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_events SET status = 'failed', attempts = attempts + 1, last_error = $1, \
             waiting_for = $2, next_attempt_at = $3 WHERE id = $4 AND status IN ('pending', 'failed')",
        )
        .bind(failure.error.clone())
        .bind(failure.waiting_for.clone())
        .bind(failure.next_attempt_at.map(|t| t.timestamp_millis()))
        .bind(id.as_str().to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn claim_due_events(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<StripeEventId>, StoreError> {
        // The outer conditions are checked again on each row as it is updated: when two
        // instances pick the same rows, PostgreSQL makes the second wait for the first and then
        // finds the rows no longer due; SQLite runs one writer at a time.
        let mut claimed = sqlx::query_as::<DB, (String, i64)>(
            "UPDATE webhook_events SET next_attempt_at = $1 \
             WHERE id IN (SELECT id FROM webhook_events WHERE next_attempt_at IS NOT NULL \
             AND next_attempt_at <= $2 AND status IN ('pending', 'failed') \
             ORDER BY next_attempt_at, seq LIMIT $3) \
             AND next_attempt_at <= $2 AND status IN ('pending', 'failed') \
             RETURNING id, seq",
        )
        .bind(lease_until.timestamp_millis())
        .bind(now.timestamp_millis())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        claimed.sort_unstable_by_key(|(_, seq)| *seq);
        Ok(claimed
            .into_iter()
            .map(|(id, _)| StripeEventId::from_stored(id))
            .collect())
    }

    async fn events_waiting_for(
        &self,
        customer_id: &str,
    ) -> Result<Vec<StripeEventId>, StoreError> {
        Ok(sqlx::query_as::<DB, (String,)>(
            "SELECT id FROM webhook_events WHERE waiting_for = $1 AND status = 'failed' \
             ORDER BY created, id",
        )
        .bind(customer_id.to_owned())
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|(id,)| StripeEventId::from_stored(id))
        .collect())
    }
}
