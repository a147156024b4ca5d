//! Grants: entitlements given to a reader by hand, for a while, with a reason.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use super::columns::instant;
use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
use crate::domain::{
    AuditEntry, ChangeCause, Entitlement, Grant, GrantId, NewGrant, OutboundEvent, ReaderId,
};

/// Writing grants; a reader's grants are read with the reader ([`super::ReaderStore`]).
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Stores a grant an admin made, with its audit entry.
    async fn insert_grant(&self, grant: &NewGrant, audit: &AuditEntry)
    -> Result<Grant, StoreError>;

    /// Revokes a reader's grant from `at` on; `false` if the reader has no such grant (or it
    /// was revoked before).
    async fn revoke_grant(
        &self,
        reader: &ReaderId,
        id: &GrantId,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;
}

#[derive(FromRow)]
struct GrantRow {
    id: String,
    reader_id: String,
    expires_at: i64,
    reason: String,
    created_at: i64,
    created_by: Option<String>,
    gift_subscription_id: Option<String>,
}

#[derive(FromRow)]
struct PairRow {
    owner: String,
    value: String,
}

/// Puts grant rows and their entitlements (both sorted by grant id) together.
fn assemble_grants(
    rows: Vec<GrantRow>,
    entitlements: Vec<PairRow>,
) -> Result<Vec<Grant>, StoreError> {
    let mut entitlements = entitlements.into_iter().peekable();
    rows.into_iter()
        .map(|row| {
            let mut own = Vec::new();
            while let Some(e) = entitlements.next_if(|e| e.owner == row.id) {
                own.push(Entitlement::from_stored(e.value));
            }
            Ok(Grant {
                id: GrantId::from_stored(row.id),
                reader_id: ReaderId::from_stored(row.reader_id),
                entitlements: own,
                expires_at: instant(row.expires_at)?,
                reason: row.reason,
                created_at: instant(row.created_at)?,
                created_by: row.created_by,
                gift_subscription: row.gift_subscription_id,
            })
        })
        .collect()
}

#[sql_bounds]
impl<DB: Dialect> SqlStore<DB> {
    /// Stores a grant on `conn`, inside the caller's transaction.
    pub(super) async fn insert_grant_on(
        conn: &mut DB::Connection,
        grant: &NewGrant,
    ) -> Result<Grant, StoreError> {
        sqlx::query(
            "INSERT INTO grants (id, reader_id, expires_at, reason, created_at, created_by, \
             gift_subscription_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(grant.id.as_str().to_owned())
        .bind(grant.reader_id.as_str().to_owned())
        .bind(grant.expires_at.timestamp_millis())
        .bind(grant.reason.clone())
        .bind(grant.created_at.timestamp_millis())
        .bind(grant.created_by.clone())
        .bind(grant.gift_subscription.clone())
        .execute(&mut *conn)
        .await?;
        for entitlement in &grant.entitlements {
            sqlx::query("INSERT INTO grant_entitlements (grant_id, entitlement) VALUES ($1, $2)")
                .bind(grant.id.as_str().to_owned())
                .bind(entitlement.as_str().to_owned())
                .execute(&mut *conn)
                .await?;
        }
        let stored = Grant {
            id: grant.id.clone(),
            reader_id: grant.reader_id.clone(),
            entitlements: grant.entitlements.clone(),
            expires_at: instant(grant.expires_at.timestamp_millis())?,
            reason: grant.reason.clone(),
            created_at: instant(grant.created_at.timestamp_millis())?,
            created_by: grant.created_by.clone(),
            gift_subscription: grant.gift_subscription.clone(),
        };
        Self::emit(conn, &OutboundEvent::grant_created(&stored)).await?;
        let cause = if stored.gift_subscription.is_some() {
            ChangeCause::Gift
        } else {
            ChangeCause::Grant
        };
        Self::mark_reader(conn, stored.reader_id.as_str(), cause, stored.created_at).await?;
        Ok(stored)
    }

    /// A reader's grants that were not revoked, by id.
    pub(super) async fn reader_grants(&self, reader: &str) -> Result<Vec<Grant>, StoreError> {
        let grants = sqlx::query_as::<DB, GrantRow>(
            "SELECT id, reader_id, expires_at, reason, created_at, created_by, gift_subscription_id \
             FROM grants \
             WHERE reader_id = $1 AND revoked_at IS NULL ORDER BY id",
        )
        .bind(reader.to_owned())
        .fetch_all(&self.pool)
        .await?;
        let entitlements = if grants.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as::<DB, PairRow>(
                "SELECT e.grant_id AS owner, e.entitlement AS value FROM grant_entitlements e \
                 JOIN grants g ON g.id = e.grant_id WHERE g.reader_id = $1 \
                 AND g.revoked_at IS NULL ORDER BY e.grant_id, e.entitlement",
            )
            .bind(reader.to_owned())
            .fetch_all(&self.pool)
            .await?
        };
        assemble_grants(grants, entitlements)
    }
}

#[sql_bounds]
#[async_trait]
impl<DB: Dialect> GrantStore for SqlStore<DB> {
    async fn insert_grant(
        &self,
        grant: &NewGrant,
        audit: &AuditEntry,
    ) -> Result<Grant, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let stored = Self::insert_grant_on(&mut *tx, grant).await?;
        Self::append_audit(&mut *tx, audit).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn revoke_grant(
        &self,
        reader: &ReaderId,
        id: &GrantId,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let revoked = sqlx::query(
            "UPDATE grants SET revoked_at = $1 WHERE id = $2 AND reader_id = $3 \
             AND revoked_at IS NULL",
        )
        .bind(at.timestamp_millis())
        .bind(id.as_str().to_owned())
        .bind(reader.as_str().to_owned())
        .execute(&mut *tx)
        .await?;
        let revoked = DB::rows_affected(&revoked) == 1;
        if revoked {
            Self::append_audit(&mut *tx, audit).await?;
            Self::emit(&mut tx, &OutboundEvent::grant_revoked(reader, id, at)).await?;
            Self::mark_reader(&mut tx, reader.as_str(), ChangeCause::Grant, at).await?;
        }
        tx.commit().await?;
        Ok(revoked)
    }
}
