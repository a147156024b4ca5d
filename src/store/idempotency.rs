//! Idempotency keys: the claim a request with an `Idempotency-Key` takes before it is served, the
//! answer kept afterwards for replay. The storage purge (`retention.rs`) deletes them once their
//! window has passed.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
use crate::domain::KeptResponse;

/// Which attempt a claim is for: the caller, the request path and the client's key.
#[derive(Debug, Clone, Copy)]
pub struct AttemptKey<'a> {
    /// The API key that sent it.
    pub scope: &'a str,
    /// Its method and path.
    pub route: &'a str,
    /// The client's `Idempotency-Key`.
    pub key: &'a str,
}

/// What a claim came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The request is this one's to serve.
    Serve,
    /// It was served before: its kept answer.
    Replay(KeptResponse),
    /// The key was used for a request with other content.
    Mismatch,
    /// A request with this key is being served now.
    InProgress,
}

/// Keeping idempotency keys.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `attempt` for a request whose content hashes to `fingerprint`: a new key (or one
    /// whose window has passed, or whose claim lapsed at `now`) is this request's to serve until
    /// `locked_until`; the answer, if kept, until `expires_at`.
    async fn claim_attempt(
        &self,
        attempt: AttemptKey<'_>,
        fingerprint: &[u8; 32],
        now: DateTime<Utc>,
        locked_until: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Claim, StoreError>;

    /// Keeps the answer to a claimed attempt, or (with `None`) lets the claim go, so that the
    /// key can be used again (after a 5xx or a 429).
    async fn settle_attempt(
        &self,
        attempt: AttemptKey<'_>,
        answer: Option<&KeptResponse>,
    ) -> Result<(), StoreError>;
}

#[derive(FromRow)]
struct AttemptRow {
    fingerprint: Vec<u8>,
    state: String,
    locked_until: i64,
    status: Option<i64>,
    content_type: Option<String>,
    location: Option<String>,
    body: Option<Vec<u8>>,
    expires_at: i64,
}

#[sql_bounds]
#[async_trait]
impl<DB: Dialect> IdempotencyStore for SqlStore<DB> {
    async fn claim_attempt(
        &self,
        attempt: AttemptKey<'_>,
        fingerprint: &[u8; 32],
        now: DateTime<Utc>,
        locked_until: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Claim, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        // A concurrent claim of the same key waits here on the primary key until the first
        // one's transaction ends, then inserts nothing.
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (scope, route, key, fingerprint, state, locked_until, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, 'running', $5, $6, $7) \
             ON CONFLICT (scope, route, key) DO NOTHING",
        )
        .bind(attempt.scope.to_owned())
        .bind(attempt.route.to_owned())
        .bind(attempt.key.to_owned())
        .bind(fingerprint.to_vec())
        .bind(locked_until.timestamp_millis())
        .bind(now.timestamp_millis())
        .bind(expires_at.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&inserted) == 1 {
            tx.commit().await?;
            return Ok(Claim::Serve);
        }
        let row = sqlx::query_as::<DB, AttemptRow>(
            "SELECT fingerprint, state, locked_until, status, content_type, location, body, \
             expires_at FROM idempotency_keys WHERE scope = $1 AND route = $2 AND key = $3",
        )
        .bind(attempt.scope.to_owned())
        .bind(attempt.route.to_owned())
        .bind(attempt.key.to_owned())
        .fetch_one(&mut *tx)
        .await?;
        let now_ms = now.timestamp_millis();
        let expired = row.expires_at <= now_ms;
        let abandoned = row.state == "running" && row.locked_until <= now_ms;
        if expired || abandoned {
            // A used key whose window passed starts afresh; a claim whose process died
            // (its lease lapsed) is taken over, if the content is the same.
            if !expired && row.fingerprint != fingerprint.as_slice() {
                tx.rollback().await?;
                return Ok(Claim::Mismatch);
            }
            sqlx::query(
                "UPDATE idempotency_keys SET fingerprint = $4, state = 'running', \
                 locked_until = $5, status = NULL, content_type = NULL, location = NULL, \
                 body = NULL, created_at = $6, expires_at = $7 \
                 WHERE scope = $1 AND route = $2 AND key = $3",
            )
            .bind(attempt.scope.to_owned())
            .bind(attempt.route.to_owned())
            .bind(attempt.key.to_owned())
            .bind(fingerprint.to_vec())
            .bind(locked_until.timestamp_millis())
            .bind(now_ms)
            .bind(expires_at.timestamp_millis())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Claim::Serve);
        }
        tx.rollback().await?;
        if row.fingerprint != fingerprint.as_slice() {
            return Ok(Claim::Mismatch);
        }
        if row.state == "running" {
            return Ok(Claim::InProgress);
        }
        Ok(Claim::Replay(KeptResponse {
            status: u16::try_from(row.status.unwrap_or(500)).map_err(StoreError::other)?,
            content_type: row.content_type,
            location: row.location,
            body: row.body.unwrap_or_default(),
        }))
    }

    async fn settle_attempt(
        &self,
        attempt: AttemptKey<'_>,
        answer: Option<&KeptResponse>,
    ) -> Result<(), StoreError> {
        let query = match answer {
            Some(answer) => sqlx::query(
                "UPDATE idempotency_keys SET state = 'done', status = $4, content_type = $5, \
                 location = $6, body = $7 WHERE scope = $1 AND route = $2 AND key = $3",
            )
            .bind(attempt.scope.to_owned())
            .bind(attempt.route.to_owned())
            .bind(attempt.key.to_owned())
            .bind(i64::from(answer.status))
            .bind(answer.content_type.clone())
            .bind(answer.location.clone())
            .bind(answer.body.clone()),
            None => sqlx::query(
                "DELETE FROM idempotency_keys WHERE scope = $1 AND route = $2 AND key = $3 \
                 AND state = 'running'",
            )
            .bind(attempt.scope.to_owned())
            .bind(attempt.route.to_owned())
            .bind(attempt.key.to_owned()),
        };
        query.execute(&self.pool).await?;
        Ok(())
    }
}
