//! Webhook endpoints: where events go, which types they receive and the secrets that sign them.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use crate::domain::{AuditEntry, EndpointId, EndpointSecret};
use crate::store::columns::instant;
use crate::store::dialect::{Dialect, SqlStore};
use crate::store::error::StoreError;

/// An endpoint to make.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    /// Its id.
    pub id: EndpointId,
    /// Where to send events.
    pub url: String,
    /// What it is for, for people.
    pub description: String,
    /// The event types it receives (checked, sorted), or `*`.
    pub event_types: Vec<String>,
    /// Its signing secret.
    pub secret: EndpointSecret,
    /// When it is made.
    pub at: DateTime<Utc>,
}

/// An endpoint as listed (its secrets are never read back through the API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Its id.
    pub id: EndpointId,
    /// Where events go.
    pub url: String,
    /// What it is for.
    pub description: String,
    /// The event types it receives, or `*`.
    pub event_types: Vec<String>,
    /// Whether deliveries are made to it.
    pub enabled: bool,
    /// Why tollgate disabled it, if it did.
    pub disabled_reason: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a change to an endpoint changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    /// A new URL (checked).
    pub url: Option<String>,
    /// A new description.
    pub description: Option<String>,
    /// New event types (checked, sorted).
    pub event_types: Option<Vec<String>>,
    /// Enabled or not; enabling clears why it was disabled and its run of failures.
    pub enabled: Option<bool>,
}

/// Webhook endpoints.
#[async_trait]
pub trait EndpointStore: Send + Sync {
    /// Stores a new endpoint, with its audit entry.
    async fn create_endpoint(
        &self,
        endpoint: &NewEndpoint,
        audit: &AuditEntry,
    ) -> Result<Endpoint, StoreError>;

    /// Endpoints by id, after `after`, at most `limit`.
    async fn endpoints(
        &self,
        after: Option<&EndpointId>,
        limit: u32,
    ) -> Result<Vec<Endpoint>, StoreError>;

    /// The endpoint with this id.
    async fn endpoint(&self, id: &EndpointId) -> Result<Option<Endpoint>, StoreError>;

    /// Changes an endpoint at `at`, with its audit entry; `None` if there is no such endpoint.
    async fn update_endpoint(
        &self,
        id: &EndpointId,
        patch: &EndpointPatch,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Option<Endpoint>, StoreError>;

    /// Deletes an endpoint and its deliveries (the events stay), with its audit entry; `false`
    /// if there is no such endpoint.
    async fn delete_endpoint(
        &self,
        id: &EndpointId,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;

    /// Gives an endpoint a new secret at `at`; the one before keeps signing until
    /// `previous_until`. `false` if there is no such endpoint.
    async fn rotate_endpoint_secret(
        &self,
        id: &EndpointId,
        secret: &EndpointSecret,
        previous_until: DateTime<Utc>,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;
}

#[derive(FromRow)]
struct EndpointRow {
    id: String,
    url: String,
    description: String,
    enabled: bool,
    disabled_reason: Option<String>,
    created_at: i64,
    updated_at: i64,
}

const ENDPOINT_COLUMNS: &str =
    "id, url, description, enabled, disabled_reason, created_at, updated_at";

#[sql_bounds]
impl<DB: Dialect> SqlStore<DB> {
    /// Endpoint rows with their types.
    async fn assemble_endpoints(
        conn: &mut DB::Connection,
        rows: Vec<EndpointRow>,
    ) -> Result<Vec<Endpoint>, StoreError> {
        let mut endpoints = Vec::with_capacity(rows.len());
        for row in rows {
            let types = sqlx::query_as::<DB, (String,)>(
                "SELECT event_type FROM webhook_endpoint_types WHERE endpoint_id = $1 \
                 ORDER BY event_type",
            )
            .bind(row.id.clone())
            .fetch_all(&mut *conn)
            .await?;
            endpoints.push(Endpoint {
                id: EndpointId::from_stored(row.id),
                url: row.url,
                description: row.description,
                event_types: types.into_iter().map(|(t,)| t).collect(),
                enabled: row.enabled,
                disabled_reason: row.disabled_reason,
                created_at: instant(row.created_at)?,
                updated_at: instant(row.updated_at)?,
            });
        }
        Ok(endpoints)
    }

    /// The endpoint `id` on `conn`.
    async fn endpoint_on(
        conn: &mut DB::Connection,
        id: &str,
    ) -> Result<Option<Endpoint>, StoreError> {
        let row = sqlx::query_as::<DB, EndpointRow>(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
        ))
        .bind(id.to_owned())
        .fetch_optional(&mut *conn)
        .await?;
        Ok(Self::assemble_endpoints(conn, row.into_iter().collect())
            .await?
            .pop())
    }

    /// Replaces an endpoint's event types.
    async fn put_endpoint_types(
        conn: &mut DB::Connection,
        id: &str,
        types: &[String],
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM webhook_endpoint_types WHERE endpoint_id = $1")
            .bind(id.to_owned())
            .execute(&mut *conn)
            .await?;
        for event_type in types {
            sqlx::query(
                "INSERT INTO webhook_endpoint_types (endpoint_id, event_type) VALUES ($1, $2)",
            )
            .bind(id.to_owned())
            .bind(event_type.clone())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

#[sql_bounds]
#[async_trait]
impl<DB: Dialect> EndpointStore for SqlStore<DB> {
    async fn create_endpoint(
        &self,
        endpoint: &NewEndpoint,
        audit: &AuditEntry,
    ) -> Result<Endpoint, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let at = endpoint.at.timestamp_millis();
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, url, description, enabled, secret, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(endpoint.id.as_str().to_owned())
        .bind(endpoint.url.clone())
        .bind(endpoint.description.clone())
        .bind(true)
        .bind(endpoint.secret.expose().to_owned())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        Self::put_endpoint_types(&mut tx, endpoint.id.as_str(), &endpoint.event_types).await?;
        Self::append_audit(&mut tx, audit).await?;
        let stored = Self::endpoint_on(&mut tx, endpoint.id.as_str())
            .await?
            .ok_or_else(|| StoreError::other(anyhow::anyhow!("endpoint vanished")))?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn endpoints(
        &self,
        after: Option<&EndpointId>,
        limit: u32,
    ) -> Result<Vec<Endpoint>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query_as::<DB, EndpointRow>(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after.map(|id| id.as_str().to_owned()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        Self::assemble_endpoints(&mut conn, rows).await
    }

    async fn endpoint(&self, id: &EndpointId) -> Result<Option<Endpoint>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Self::endpoint_on(&mut conn, id.as_str()).await
    }

    async fn update_endpoint(
        &self,
        id: &EndpointId,
        patch: &EndpointPatch,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Option<Endpoint>, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let enabling = patch.enabled == Some(true);
        let updated = sqlx::query(
            "UPDATE webhook_endpoints SET url = COALESCE($2, url), \
             description = COALESCE($3, description), \
             enabled = CASE WHEN $4 THEN $5 ELSE enabled END, \
             disabled_reason = CASE WHEN $6 THEN NULL ELSE disabled_reason END, \
             failing_since = CASE WHEN $6 THEN NULL ELSE failing_since END, \
             paused_until = CASE WHEN $6 THEN NULL ELSE paused_until END, \
             updated_at = $7 WHERE id = $1",
        )
        .bind(id.as_str().to_owned())
        .bind(patch.url.clone())
        .bind(patch.description.clone())
        .bind(patch.enabled.is_some())
        .bind(patch.enabled.unwrap_or(false))
        .bind(enabling)
        .bind(at.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&updated) == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        if let Some(types) = &patch.event_types {
            Self::put_endpoint_types(&mut tx, id.as_str(), types).await?;
        }
        Self::append_audit(&mut tx, audit).await?;
        let stored = Self::endpoint_on(&mut tx, id.as_str()).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn delete_endpoint(
        &self,
        id: &EndpointId,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        for sql in [
            "DELETE FROM webhook_deliveries WHERE endpoint_id = $1",
            "DELETE FROM webhook_endpoint_types WHERE endpoint_id = $1",
        ] {
            sqlx::query(sql)
                .bind(id.as_str().to_owned())
                .execute(&mut *tx)
                .await?;
        }
        let deleted = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
            .bind(id.as_str().to_owned())
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&deleted) == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        Self::append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn rotate_endpoint_secret(
        &self,
        id: &EndpointId,
        secret: &EndpointSecret,
        previous_until: DateTime<Utc>,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let rotated = sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret = secret, secret = $2, \
             previous_secret_expires_at = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(id.as_str().to_owned())
        .bind(secret.expose().to_owned())
        .bind(previous_until.timestamp_millis())
        .bind(at.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&rotated) == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        Self::append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }
}
