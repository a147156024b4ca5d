//! The audit log: entries appended by admin writes inside their own transactions (the writes
//! call [`SqlStore::append_audit`] on their connection), and read back a page at a time.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use super::columns::instant;
use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
use crate::domain::{Actor, ActorRole, AuditEntry, AuditId};

/// Which entries to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this action.
    pub action: Option<String>,
    /// Only this target.
    pub target: Option<String>,
    /// From this instant on.
    pub from: Option<DateTime<Utc>>,
    /// Before this instant.
    pub to: Option<DateTime<Utc>>,
    /// After this entry (the previous page's last).
    pub after: Option<AuditId>,
    /// How many at most.
    pub limit: u32,
}

/// Reading the audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// The entries `filter` selects, oldest first.
    async fn audit_entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError>;

    /// Appends `entry` on its own, for a change made of several transactions (a reconcile),
    /// which records what it did once it is done.
    async fn append_audit_entry(&self, entry: &AuditEntry) -> Result<(), StoreError>;
}

#[derive(FromRow)]
struct AuditRow {
    id: String,
    at: i64,
    key_id: Option<String>,
    role: String,
    action: String,
    target: String,
    request_id: Option<String>,
    changes: String,
}

#[sql_bounds]
impl<DB: Dialect> SqlStore<DB> {
    /// Appends `entry` on `conn`, inside the caller's transaction.
    pub(super) async fn append_audit(
        conn: &mut DB::Connection,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (id, at, key_id, role, action, target, request_id, changes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(entry.id.as_str().to_owned())
        .bind(entry.at.timestamp_millis())
        .bind(entry.actor.key_id.clone())
        .bind(entry.actor.role.as_str().to_owned())
        .bind(entry.action.clone())
        .bind(entry.target.clone())
        .bind(entry.actor.request_id.clone())
        .bind(entry.changes.to_string())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

#[sql_bounds]
#[async_trait]
impl<DB: Dialect> AuditStore for SqlStore<DB> {
    async fn audit_entries(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        // Every id sorts after the empty string, and every filter left out matches all rows.
        let rows = sqlx::query_as::<DB, AuditRow>(
            "SELECT id, at, key_id, role, action, target, request_id, changes FROM audit_log \
             WHERE id > $1 AND ($2 = '' OR action = $2) AND ($3 = '' OR target = $3) \
             AND at >= $4 AND at < $5 ORDER BY id LIMIT $6",
        )
        .bind(
            filter
                .after
                .as_ref()
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default(),
        )
        .bind(filter.action.clone().unwrap_or_default())
        .bind(filter.target.clone().unwrap_or_default())
        .bind(filter.from.map_or(i64::MIN, |at| at.timestamp_millis()))
        .bind(filter.to.map_or(i64::MAX, |at| at.timestamp_millis()))
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: AuditId::from_stored(row.id),
                    at: instant(row.at)?,
                    actor: Actor {
                        key_id: row.key_id,
                        role: row.role.parse::<ActorRole>().map_err(StoreError::other)?,
                        request_id: row.request_id,
                    },
                    action: row.action,
                    target: row.target,
                    changes: serde_json::from_str(&row.changes).map_err(StoreError::other)?,
                })
            })
            .collect()
    }

    async fn append_audit_entry(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        Self::append_audit(&mut conn, entry).await
    }
}
