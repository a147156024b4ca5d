//! API keys: stored by the SHA-256 hash of their secret, never the secret itself.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use super::columns::instant;
use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
use crate::domain::{ApiKey, ApiKeyId, AuditEntry, KeyHash, KeyName, NewApiKey, Role};

/// What revoking a key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The key was active and is now revoked.
    Revoked,
    /// The key had been revoked before; nothing changed.
    AlreadyRevoked,
    /// No key has this id.
    NotFound,
}

/// API keys.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Stores a new API key.
    async fn insert_api_key(
        &self,
        key: &NewApiKey,
        audit: &AuditEntry,
    ) -> Result<ApiKey, StoreError>;

    /// Finds the key whose secret has this hash, revoked or not.
    async fn find_api_key_by_hash(&self, hash: &KeyHash) -> Result<Option<ApiKey>, StoreError>;

    /// Up to `limit` keys in creation order, starting after `after`.
    async fn list_api_keys(
        &self,
        after: Option<&ApiKeyId>,
        limit: u32,
    ) -> Result<Vec<ApiKey>, StoreError>;

    /// Revokes a key from `at` on; a revoked key never opens the API again.
    async fn revoke_api_key(
        &self,
        id: &ApiKeyId,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<RevokeOutcome, StoreError>;
}

#[derive(FromRow)]
pub(super) struct ApiKeyRow {
    id: String,
    name: String,
    role: String,
    hint: String,
    created_at: i64,
    created_by: Option<String>,
    revoked_at: Option<i64>,
    may_assert_ip: bool,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;

    fn try_from(row: ApiKeyRow) -> Result<Self, Self::Error> {
        Ok(ApiKey {
            id: ApiKeyId::from_stored(row.id),
            name: KeyName::from_stored(row.name),
            role: row.role.parse::<Role>().map_err(StoreError::other)?,
            hint: row.hint,
            created_at: instant(row.created_at)?,
            created_by: row.created_by.map(ApiKeyId::from_stored),
            revoked_at: row.revoked_at.map(instant).transpose()?,
            may_assert_ip: row.may_assert_ip,
        })
    }
}

/// `SELECT`s every column of an API key but its hash, followed by `$tail`.
macro_rules! select_api_keys {
    ($tail:literal) => {
        concat!(
            "SELECT id, name, role, hint, created_at, created_by, revoked_at, may_assert_ip \
             FROM api_keys ",
            $tail
        )
    };
}

#[sql_bounds]
#[async_trait]
impl<DB: Dialect> ApiKeyStore for SqlStore<DB> {
    async fn insert_api_key(
        &self,
        key: &NewApiKey,
        audit: &AuditEntry,
    ) -> Result<ApiKey, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        sqlx::query(
            "INSERT INTO api_keys (id, name, role, key_hash, hint, created_at, created_by, \
             may_assert_ip) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(key.id.as_str().to_owned())
        .bind(key.name.as_str().to_owned())
        .bind(key.role.as_str().to_owned())
        .bind(key.hash.0.to_vec())
        .bind(key.hint.clone())
        .bind(key.created_at.timestamp_millis())
        .bind(key.created_by.as_ref().map(|id| id.as_str().to_owned()))
        .bind(key.may_assert_ip)
        .execute(&mut *tx)
        .await?;
        Self::append_audit(&mut *tx, audit).await?;
        tx.commit().await?;
        Ok(ApiKey {
            id: key.id.clone(),
            name: key.name.clone(),
            role: key.role,
            hint: key.hint.clone(),
            created_at: key.created_at,
            created_by: key.created_by.clone(),
            revoked_at: None,
            may_assert_ip: key.may_assert_ip,
        })
    }

    async fn find_api_key_by_hash(&self, hash: &KeyHash) -> Result<Option<ApiKey>, StoreError> {
        sqlx::query_as::<DB, ApiKeyRow>(select_api_keys!("WHERE key_hash = $1"))
            .bind(hash.0.to_vec())
            .fetch_optional(&self.pool)
            .await?
            .map(ApiKey::try_from)
            .transpose()
    }

    async fn list_api_keys(
        &self,
        after: Option<&ApiKeyId>,
        limit: u32,
    ) -> Result<Vec<ApiKey>, StoreError> {
        // Every id sorts after the empty string, so "no cursor" needs no second query.
        sqlx::query_as::<DB, ApiKeyRow>(select_api_keys!("WHERE id > $1 ORDER BY id LIMIT $2"))
            .bind(after.map(|id| id.as_str().to_owned()).unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(ApiKey::try_from)
            .collect()
    }

    async fn revoke_api_key(
        &self,
        id: &ApiKeyId,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<RevokeOutcome, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let revoked =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(at.timestamp_millis())
                .bind(id.as_str().to_owned())
                .execute(&mut *tx)
                .await?;
        let outcome = if DB::rows_affected(&revoked) == 1 {
            Self::append_audit(&mut *tx, audit).await?;
            RevokeOutcome::Revoked
        } else {
            match sqlx::query_as::<DB, ApiKeyRow>(select_api_keys!("WHERE id = $1"))
                .bind(id.as_str().to_owned())
                .fetch_optional(&mut *tx)
                .await?
            {
                Some(_) => RevokeOutcome::AlreadyRevoked,
                None => RevokeOutcome::NotFound,
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }
}
