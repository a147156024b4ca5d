//! Dashboard sessions, stored by the SHA-256 of their token, and each reconcile run.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use super::api_keys::ApiKeyRow;
use super::columns::instant;
use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
use crate::domain::{ApiKey, ApiKeyId, AuditEntry, Session, SessionId, SyncReport, SyncRun};

/// Dashboard sessions and reconcile runs.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session of `key_id` whose token hashes to `token_hash`, with its audit entry.
    async fn insert_session(
        &self,
        id: &SessionId,
        token_hash: [u8; 32],
        key_id: &ApiKeyId,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;

    /// The session whose token hashes to `token_hash`, if it is live at `now` and its key is not
    /// revoked.
    async fn find_session(
        &self,
        token_hash: [u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError>;

    /// Ends a session at `at`; whether it was live.
    async fn revoke_session(&self, id: &SessionId, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Records a reconcile run.
    async fn insert_sync_run(&self, run: &SyncRun) -> Result<(), StoreError>;

    /// The reconcile run that started last.
    async fn last_sync_run(&self) -> Result<Option<SyncRun>, StoreError>;
}

#[derive(FromRow)]
struct SessionRow {
    session_id: String,
    expires_at: i64,
    #[sqlx(flatten)]
    key: ApiKeyRow,
}

#[derive(FromRow)]
struct SyncRunRow {
    id: String,
    source: String,
    started_at: i64,
    finished_at: i64,
    outcome: String,
    report: Option<String>,
    error: Option<String>,
}

#[sql_bounds]
#[async_trait]
impl<DB: Dialect> SessionStore for SqlStore<DB> {
    async fn insert_session(
        &self,
        id: &SessionId,
        token_hash: [u8; 32],
        key_id: &ApiKeyId,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        sqlx::query(
            "INSERT INTO dashboard_sessions (id, token_hash, key_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.as_str().to_owned())
        .bind(token_hash.to_vec())
        .bind(key_id.as_str().to_owned())
        .bind(created_at.timestamp_millis())
        .bind(expires_at.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        Self::append_audit(&mut *tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn find_session(
        &self,
        token_hash: [u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query_as::<DB, SessionRow>(
            "SELECT s.id AS session_id, s.expires_at, k.id, k.name, k.role, k.hint, \
             k.created_at, k.created_by, k.revoked_at, k.may_assert_ip \
             FROM dashboard_sessions s JOIN api_keys k ON k.id = s.key_id \
             WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2 \
             AND k.revoked_at IS NULL",
        )
        .bind(token_hash.to_vec())
        .bind(now.timestamp_millis())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Session {
                id: SessionId::from_stored(row.session_id),
                expires_at: instant(row.expires_at)?,
                key: ApiKey::try_from(row.key)?,
            })
        })
        .transpose()
    }

    async fn revoke_session(&self, id: &SessionId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE dashboard_sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(at.timestamp_millis())
        .bind(id.as_str().to_owned())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn insert_sync_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO stripe_sync_runs (id, source, started_at, finished_at, outcome, report, \
             error) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(run.id.clone())
        .bind(run.source.clone())
        .bind(run.started_at.timestamp_millis())
        .bind(run.finished_at.timestamp_millis())
        .bind(run.outcome.as_str().to_owned())
        .bind(
            run.report
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| StoreError::other(anyhow::anyhow!("sync report: {e}")))?,
        )
        .bind(run.error.clone())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn last_sync_run(&self) -> Result<Option<SyncRun>, StoreError> {
        let row = sqlx::query_as::<DB, SyncRunRow>(
            "SELECT id, source, started_at, finished_at, outcome, report, error \
             FROM stripe_sync_runs ORDER BY started_at DESC, id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(SyncRun {
                id: row.id,
                source: row.source,
                started_at: instant(row.started_at)?,
                finished_at: instant(row.finished_at)?,
                outcome: row
                    .outcome
                    .parse()
                    .map_err(|e| StoreError::other(anyhow::anyhow!("stored sync outcome: {e}")))?,
                report: row
                    .report
                    .map(|r| SyncReport::from_stored(&r))
                    .transpose()
                    .map_err(|e| StoreError::other(anyhow::anyhow!("stored sync report: {e}")))?,
                error: row.error,
            })
        })
        .transpose()
    }
}
