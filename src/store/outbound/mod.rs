//! Events out to the publisher's other services: the outbox every change writes its events to in
//! its own transaction ([`SqlStore::emit`]), the marks that make the entitlement watcher look at
//! a reader again ([`SqlStore::mark_reader`]), the endpoints (`endpoints.rs`), their deliveries
//! (`deliveries.rs`) and the watcher's announcements (`announcements.rs`).

mod announcements;
mod deliveries;
mod endpoints;

use chrono::{DateTime, Utc};
use tollgate_macros::sql_bounds;

use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
use crate::domain::{ChangeCause, DeliveryId, OutboundEvent};

pub use announcements::{Announcement, EntitlementCheck, EntitlementWatchStore};
pub use deliveries::{
    AttemptOutcome, ClaimedDelivery, Delivery, DeliveryFilter, DeliveryStore, QueueStats, Retried,
};
pub use endpoints::{Endpoint, EndpointPatch, EndpointStore, NewEndpoint};

/// Upserts a reader's mark: the latest cause stands, and the earliest due instant (a mark made
/// now overtakes one scheduled for later, or one being worked on under a lease).
const MARK_CONFLICT: &str = "ON CONFLICT (reader_id) DO UPDATE SET cause = excluded.cause, \
     due_at = CASE WHEN excluded.due_at < entitlement_checks.due_at \
     THEN excluded.due_at ELSE entitlement_checks.due_at END";

#[sql_bounds]
impl<DB: Dialect> SqlStore<DB> {
    /// Writes `event` to the outbox on `conn`, inside the caller's transaction, with a pending
    /// delivery to every enabled endpoint that receives its type.
    pub(super) async fn emit(
        conn: &mut DB::Connection,
        event: &OutboundEvent,
    ) -> Result<(), StoreError> {
        let body = event.body();
        let at = event.at.timestamp_millis();
        sqlx::query("INSERT INTO outbound_events (id, type, at, body) VALUES ($1, $2, $3, $4)")
            .bind(event.id.as_str().to_owned())
            .bind(event.kind.as_str().to_owned())
            .bind(at)
            .bind(body)
            .execute(&mut *conn)
            .await?;
        let endpoints = sqlx::query_as::<DB, (String,)>(
            "SELECT e.id FROM webhook_endpoints e WHERE e.enabled AND EXISTS \
             (SELECT 1 FROM webhook_endpoint_types t WHERE t.endpoint_id = e.id \
             AND t.event_type IN ($1, '*')) ORDER BY e.id",
        )
        .bind(event.kind.as_str().to_owned())
        .fetch_all(&mut *conn)
        .await?;
        for (endpoint,) in endpoints {
            Self::insert_delivery(conn, &endpoint, event.id.as_str(), at).await?;
        }
        Ok(())
    }

    /// A pending delivery of `event` to `endpoint`, due at `at`.
    pub(super) async fn insert_delivery(
        conn: &mut DB::Connection,
        endpoint: &str,
        event: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, status, attempts, \
             next_attempt_at, created_at) VALUES ($1, $2, $3, 'pending', 0, $4, $4)",
        )
        .bind(DeliveryId::generate().as_str().to_owned())
        .bind(endpoint.to_owned())
        .bind(event.to_owned())
        .bind(at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Marks `reader` for the entitlement watcher, inside the caller's transaction: what they
    /// hold may have changed at `at`, because of `cause`.
    pub(super) async fn mark_reader(
        conn: &mut DB::Connection,
        reader: &str,
        cause: ChangeCause,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO entitlement_checks (reader_id, cause, due_at) VALUES ($1, $2, $3) \
             {MARK_CONFLICT}"
        ))
        .bind(reader.to_owned())
        .bind(cause.as_str().to_owned())
        .bind(at.timestamp_millis())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Marks everyone a subscription gives something: its customer's reader, its team's owner
    /// and its team's members.
    pub(super) async fn mark_subscription_readers(
        conn: &mut DB::Connection,
        subscription: &str,
        cause: ChangeCause,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO entitlement_checks (reader_id, cause, due_at) \
             SELECT c.reader_id, CAST($2 AS TEXT), CAST($3 AS BIGINT) FROM subscriptions s \
             JOIN customers c ON c.id = s.customer_id \
             WHERE s.id = $1 AND c.reader_id IS NOT NULL \
             UNION SELECT t.owner_id, CAST($2 AS TEXT), CAST($3 AS BIGINT) FROM teams t \
             WHERE t.subscription_id = $1 \
             UNION SELECT m.reader_id, CAST($2 AS TEXT), CAST($3 AS BIGINT) FROM team_members m \
             WHERE m.subscription_id = $1 {MARK_CONFLICT}"
        ))
        .bind(subscription.to_owned())
        .bind(cause.as_str().to_owned())
        .bind(at.timestamp_millis())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Marks every reader whose subscription has an item priced by one of `plan`'s prices, and
    /// the owners and members of their teams, in one statement: the plan's entitlements changed.
    pub(super) async fn mark_plan_readers(
        conn: &mut DB::Connection,
        plan: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO entitlement_checks (reader_id, cause, due_at) \
             SELECT c.reader_id, CAST($2 AS TEXT), CAST($3 AS BIGINT) \
             FROM subscription_items i JOIN plan_prices p ON p.price_id = i.price_id \
             JOIN subscriptions s ON s.id = i.subscription_id \
             JOIN customers c ON c.id = s.customer_id \
             WHERE p.plan_id = $1 AND c.reader_id IS NOT NULL \
             UNION SELECT t.owner_id, CAST($2 AS TEXT), CAST($3 AS BIGINT) \
             FROM subscription_items i JOIN plan_prices p ON p.price_id = i.price_id \
             JOIN teams t ON t.subscription_id = i.subscription_id WHERE p.plan_id = $1 \
             UNION SELECT m.reader_id, CAST($2 AS TEXT), CAST($3 AS BIGINT) \
             FROM subscription_items i JOIN plan_prices p ON p.price_id = i.price_id \
             JOIN team_members m ON m.subscription_id = i.subscription_id \
             WHERE p.plan_id = $1 {MARK_CONFLICT}"
        ))
        .bind(plan.to_owned())
        .bind(ChangeCause::Subscription.as_str().to_owned())
        .bind(at.timestamp_millis())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Marks every reader holding a seat of `licence`, ended or not.
    pub(super) async fn mark_licence_readers(
        conn: &mut DB::Connection,
        licence: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO entitlement_checks (reader_id, cause, due_at) \
             SELECT DISTINCT reader_id, CAST($2 AS TEXT), CAST($3 AS BIGINT) \
             FROM licence_members WHERE licence_id = $1 {MARK_CONFLICT}"
        ))
        .bind(licence.to_owned())
        .bind(ChangeCause::Licence.as_str().to_owned())
        .bind(at.timestamp_millis())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
