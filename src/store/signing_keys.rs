//! Token signing keys that tollgate generated itself and keeps, the current one and those it
//! retired (still published, so tokens they signed verify until they expire).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use super::columns::instant;
use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
use crate::domain::AuditEntry;

/// A token signing key tollgate generated and keeps in the database.
#[derive(Debug, Clone)]
pub struct StoredSigningKey {
    /// The key id in token headers and the JWKS.
    pub kid: String,
    /// `EdDSA` or `ES256`.
    pub algorithm: String,
    /// The private key, PKCS#8 PEM.
    pub private_key_pem: secrecy::SecretString,
    /// The public key as a JWK (JSON).
    pub public_jwk: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When a newer key took over signing; `None` for the current key.
    pub retired_at: Option<DateTime<Utc>>,
}

/// Keeping signing keys.
#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Every stored signing key, newest first.
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError>;

    /// Stores `key` as the current signing key unless one is current already (another instance
    /// may have made one at the same moment); the current key either way.
    async fn ensure_signing_key(
        &self,
        key: &StoredSigningKey,
    ) -> Result<StoredSigningKey, StoreError>;

    /// Makes `key` the current signing key and retires the one before it at `at`; the retired
    /// key's id, if there was one.
    async fn rotate_signing_key(
        &self,
        key: &StoredSigningKey,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Option<String>, StoreError>;
}

#[derive(FromRow)]
struct SigningKeyRow {
    kid: String,
    algorithm: String,
    private_key_pem: String,
    public_jwk: String,
    created_at: i64,
    retired_at: Option<i64>,
}

impl TryFrom<SigningKeyRow> for StoredSigningKey {
    type Error = StoreError;

    fn try_from(row: SigningKeyRow) -> Result<Self, Self::Error> {
        Ok(StoredSigningKey {
            kid: row.kid,
            algorithm: row.algorithm,
            private_key_pem: row.private_key_pem.into(),
            public_jwk: row.public_jwk,
            created_at: instant(row.created_at)?,
            retired_at: row.retired_at.map(instant).transpose()?,
        })
    }
}

#[sql_bounds]
#[async_trait]
impl<DB: Dialect> SigningKeyStore for SqlStore<DB> {
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        sqlx::query_as::<DB, SigningKeyRow>(
            "SELECT kid, algorithm, private_key_pem, public_jwk, created_at, retired_at \
             FROM signing_keys ORDER BY created_at DESC, kid",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(StoredSigningKey::try_from)
        .collect()
    }

    async fn ensure_signing_key(
        &self,
        key: &StoredSigningKey,
    ) -> Result<StoredSigningKey, StoreError> {
        // The unique `is_current` column lets exactly one of several instances starting at once
        // store its key; the others read the winner's.
        sqlx::query(
            "INSERT INTO signing_keys \
             (kid, algorithm, private_key_pem, public_jwk, created_at, is_current) \
             SELECT $1, $2, $3, $4, $5, 1 \
             WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE is_current = 1) \
             ON CONFLICT DO NOTHING",
        )
        .bind(key.kid.clone())
        .bind(key.algorithm.clone())
        .bind(key.private_key_pem.expose_secret().to_owned())
        .bind(key.public_jwk.clone())
        .bind(key.created_at.timestamp_millis())
        .execute(&self.pool)
        .await?;
        sqlx::query_as::<DB, SigningKeyRow>(
            "SELECT kid, algorithm, private_key_pem, public_jwk, created_at, retired_at \
             FROM signing_keys WHERE is_current = 1",
        )
        .fetch_one(&self.pool)
        .await?
        .try_into()
    }

    async fn rotate_signing_key(
        &self,
        key: &StoredSigningKey,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Option<String>, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let retired = sqlx::query_as::<DB, (String,)>(
            "UPDATE signing_keys SET is_current = NULL, retired_at = $1 WHERE is_current = 1 \
             RETURNING kid",
        )
        .bind(at.timestamp_millis())
        .fetch_optional(&mut *tx)
        .await?
        .map(|(kid,)| kid);
        sqlx::query(
            "INSERT INTO signing_keys \
             (kid, algorithm, private_key_pem, public_jwk, created_at, is_current) \
             VALUES ($1, $2, $3, $4, $5, 1)",
        )
        .bind(key.kid.clone())
        .bind(key.algorithm.clone())
        .bind(key.private_key_pem.expose_secret().to_owned())
        .bind(key.public_jwk.clone())
        .bind(key.created_at.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        Self::append_audit(&mut *tx, audit).await?;
        tx.commit().await?;
        Ok(retired)
    }
}
