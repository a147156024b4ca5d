//! The free-article meter: what a subject (a reader or a device) unlocked in a window, unlocking
//! without ever going over the limit, and merging a device's meter into a reader's. The SQL is
//! in `sql.rs`, its values in `model.rs`; PostgreSQL's one-statement batch is in `../postgres.rs`.

mod model;
mod sql;

use async_trait::async_trait;
use tollgate_macros::sql_bounds;

pub use model::{MergeReport, Unlock, UnlockOutcome, UnlockRequest};
pub(super) use model::{MeterDialect, lock_key};

use super::dialect::SqlStore;
use super::error::StoreError;
use crate::domain::{ArticleId, MeterSubject, Usage, Window};

/// The meter's operations.
#[async_trait]
pub trait MeterStore: Send + Sync {
    /// What `subject` unlocked in `window`, and whether `article` is among it.
    async fn meter_usage(
        &self,
        subject: &MeterSubject,
        article: Option<&ArticleId>,
        window: &Window,
    ) -> Result<Usage, StoreError>;

    /// Unlocks each request's article unless its meter is full, all in one durable transaction
    /// that takes each subject's lock first: concurrent requests (in any number of instances)
    /// never unlock more than the limit. The answers come in the order of `requests`.
    async fn unlock(&self, requests: &[UnlockRequest]) -> Result<Vec<Unlock>, StoreError>;

    /// Moves a device's unlocks of its current window into a reader's meter, never beyond
    /// `limit`, under both subjects' locks.
    async fn merge_meter(
        &self,
        device: &MeterSubject,
        device_window: &Window,
        reader: &MeterSubject,
        reader_window: &Window,
        limit: u32,
    ) -> Result<MergeReport, StoreError>;
}

#[sql_bounds]
#[async_trait]
impl<DB: MeterDialect> MeterStore for SqlStore<DB> {
    async fn meter_usage(
        &self,
        subject: &MeterSubject,
        article: Option<&ArticleId>,
        window: &Window,
    ) -> Result<Usage, StoreError> {
        let mut conn = self.pool.acquire().await?;
        sql::usage::<DB>(&mut conn, subject, article, window).await
    }

    async fn unlock(&self, requests: &[UnlockRequest]) -> Result<Vec<Unlock>, StoreError> {
        if DB::UNLOCKS_IN_ONE_STATEMENT {
            let kept = self.kept_unlock_connections().pop();
            let (mut conn, was_kept) = match kept {
                Some(conn) => (conn, true),
                None => (self.pool.acquire().await?, false),
            };
            let mut answers = DB::unlock_batch(&mut conn, requests).await;
            if was_kept && matches!(answers, Err(StoreError::Unavailable(_))) {
                // A kept connection can die while it waits (the database restarted): once more
                // on a fresh one, which the pool checks. Safe to repeat: an unlock that did
                // commit is found again and answered as already unlocked, never counted twice.
                conn.close_on_drop();
                drop(conn);
                conn = self.pool.acquire().await?;
                answers = DB::unlock_batch(&mut conn, requests).await;
            }
            if answers.is_ok() {
                self.kept_unlock_connections().push(conn);
            } else {
                conn.close_on_drop();
            }
            return answers;
        }
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let answers = sql::unlock::<DB>(&mut tx, requests).await?;
        tx.commit().await?;
        Ok(answers)
    }

    async fn merge_meter(
        &self,
        device: &MeterSubject,
        device_window: &Window,
        reader: &MeterSubject,
        reader_window: &Window,
        limit: u32,
    ) -> Result<MergeReport, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let report =
            sql::merge::<DB>(&mut tx, device, device_window, reader, reader_window, limit).await?;
        tx.commit().await?;
        Ok(report)
    }
}
