//! What the entitlement watcher keeps: the readers marked for a look (by a change, or for the
//! next instant one of their sources lapses), and what each reader was last announced to hold.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tollgate_macros::sql_bounds;

use crate::domain::{ChangeCause, OutboundEvent, ReaderId};
use crate::store::dialect::{Dialect, SqlStore};
use crate::store::error::StoreError;

/// A reader claimed for a look, under a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitlementCheck {
    /// The reader.
    pub reader: ReaderId,
    /// Why they were marked (the latest cause).
    pub cause: ChangeCause,
    /// The claim's lease: the mark's due instant while it is held.
    pub lease_until: DateTime<Utc>,
}

/// What a look found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement<'a> {
    /// The claimed check.
    pub check: &'a EntitlementCheck,
    /// What the reader holds now: entitlement names, sorted.
    pub holds: Vec<String>,
    /// When their next source lapses, for the next look.
    pub next_check: Option<DateTime<Utc>>,
    /// Now.
    pub at: DateTime<Utc>,
}

/// The entitlement watcher's store.
#[async_trait]
pub trait EntitlementWatchStore: Send + Sync {
    /// Claims up to `limit` readers marked due at `now`, moving their marks to `lease_until`.
    async fn claim_entitlement_checks(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<EntitlementCheck>, StoreError>;

    /// When what the reader holds differs from what was last announced, announces it
    /// (`reader.entitlements.changed`, with the next sequence) in one transaction; then
    /// schedules the next look, or ends the mark, unless the reader was marked again meanwhile.
    /// The event announced, if any.
    async fn announce_entitlements(
        &self,
        found: &Announcement<'_>,
    ) -> Result<Option<OutboundEvent>, StoreError>;

    /// What the reader was last announced to hold, and the sequence of that announcement.
    async fn announced_entitlements(
        &self,
        reader: &ReaderId,
    ) -> Result<Option<(Vec<String>, i64)>, StoreError>;
}

#[sql_bounds]
#[async_trait]
impl<DB: Dialect> EntitlementWatchStore for SqlStore<DB> {
    async fn claim_entitlement_checks(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<EntitlementCheck>, StoreError> {
        // A read first: most looks find nothing due, and need not take SQLite's write lock.
        let due = sqlx::query_as::<DB, (String,)>(
            "SELECT reader_id FROM entitlement_checks WHERE due_at <= $1 LIMIT 1",
        )
        .bind(now.timestamp_millis())
        .fetch_optional(&self.pool)
        .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query_as::<DB, (String, String)>(&format!(
            "UPDATE entitlement_checks SET due_at = $1 WHERE reader_id IN \
                 (SELECT reader_id FROM entitlement_checks WHERE due_at <= $2 \
                 ORDER BY due_at LIMIT $3{}) AND due_at <= $2 RETURNING reader_id, cause",
            DB::SKIP_LOCKED
        ))
        .bind(lease_until.timestamp_millis())
        .bind(now.timestamp_millis())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(reader, cause)| {
                Ok(EntitlementCheck {
                    reader: ReaderId::from_stored(reader),
                    cause: cause.parse().map_err(StoreError::other)?,
                    lease_until,
                })
            })
            .collect()
    }

    async fn announce_entitlements(
        &self,
        found: &Announcement<'_>,
    ) -> Result<Option<OutboundEvent>, StoreError> {
        let reader = found.check.reader.as_str().to_owned();
        let lease = found.check.lease_until.timestamp_millis();
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        // Still this look's? A mark made since (or another watcher's claim after this one's
        // lease ran out) moved `due_at`: what was read may be stale, and the mark brings another
        // look. The update also locks the mark on PostgreSQL until this transaction ends.
        let held = sqlx::query(
            "UPDATE entitlement_checks SET due_at = due_at WHERE reader_id = $1 AND due_at = $2",
        )
        .bind(reader.clone())
        .bind(lease)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&held) == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let last = sqlx::query_as::<DB, (String, i64)>(
            "SELECT entitlements, sequence FROM entitlement_announcements WHERE reader_id = $1",
        )
        .bind(reader.clone())
        .fetch_optional(&mut *tx)
        .await?;
        let (before, sequence) = match &last {
            Some((names, sequence)) => (
                serde_json::from_str::<Vec<String>>(names).map_err(StoreError::other)?,
                *sequence,
            ),
            None => (Vec::new(), 0),
        };
        let mut announced = None;
        if found.check.cause == ChangeCause::Baseline && last.is_none() {
            // What the reader held before announcements began: the truth to announce from.
            let holds = serde_json::to_string(&found.holds).map_err(StoreError::other)?;
            sqlx::query(
                "INSERT INTO entitlement_announcements (reader_id, entitlements, sequence, \
                 announced_at) VALUES ($1, $2, 0, $3) ON CONFLICT (reader_id) DO NOTHING",
            )
            .bind(reader.clone())
            .bind(holds)
            .bind(found.at.timestamp_millis())
            .execute(&mut *tx)
            .await?;
        } else if before != found.holds {
            let holds = serde_json::to_string(&found.holds).map_err(StoreError::other)?;
            // Conditional on the sequence read, so that two looks at one reader (a lease that
            // ran out) announce a change once.
            let written = sqlx::query(
                "INSERT INTO entitlement_announcements (reader_id, entitlements, sequence, \
                 announced_at) VALUES ($1, $2, $3, $4) ON CONFLICT (reader_id) DO UPDATE SET \
                 entitlements = excluded.entitlements, sequence = excluded.sequence, \
                 announced_at = excluded.announced_at \
                 WHERE entitlement_announcements.sequence = $5",
            )
            .bind(reader.clone())
            .bind(holds)
            .bind(sequence + 1)
            .bind(found.at.timestamp_millis())
            .bind(sequence)
            .execute(&mut *tx)
            .await?;
            if DB::rows_affected(&written) == 0 {
                tx.rollback().await?;
                return Ok(None);
            }
            // A baseline mark finding an announcement made meanwhile: what changed, changed by time.
            let cause = match found.check.cause {
                ChangeCause::Baseline => ChangeCause::Expiry,
                cause => cause,
            };
            let event = OutboundEvent::entitlements_changed(
                &found.check.reader,
                &before,
                &found.holds,
                cause,
                sequence + 1,
                found.at,
            );
            Self::emit(&mut tx, &event).await?;
            announced = Some(event);
        }
        // A mark made meanwhile moved `due_at` off the lease: it stays, for another look.
        match found.next_check {
            Some(next) => {
                sqlx::query(
                    "UPDATE entitlement_checks SET due_at = $2, cause = $3 \
                     WHERE reader_id = $1 AND due_at = $4",
                )
                .bind(reader)
                .bind(next.timestamp_millis())
                .bind(ChangeCause::Expiry.as_str().to_owned())
                .bind(lease)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM entitlement_checks WHERE reader_id = $1 AND due_at = $2")
                    .bind(reader)
                    .bind(lease)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(announced)
    }

    async fn announced_entitlements(
        &self,
        reader: &ReaderId,
    ) -> Result<Option<(Vec<String>, i64)>, StoreError> {
        let row = sqlx::query_as::<DB, (String, i64)>(
            "SELECT entitlements, sequence FROM entitlement_announcements WHERE reader_id = $1",
        )
        .bind(reader.as_str().to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(names, sequence)| {
            Ok((
                serde_json::from_str(&names).map_err(StoreError::other)?,
                sequence,
            ))
        })
        .transpose()
    }
}
