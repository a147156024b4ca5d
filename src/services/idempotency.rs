//! Idempotent POSTs: claiming an attempt before its request is served, keeping its answer for a
//! day, and purging kept answers once their day has passed.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::domain::KeptResponse;
use crate::services::ServiceError;
use crate::store::{AttemptKey, Claim, Store};

/// How long an answer is replayed to the same key.
pub const WINDOW: TimeDelta = TimeDelta::hours(24);
/// How long a claim holds while its request is served. Requests end long before (Stripe calls
/// time out in seconds); a claim older than this belongs to a process that died, and a retry
/// takes it over.
const LEASE: TimeDelta = TimeDelta::minutes(2);
/// How often kept answers past their window are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// The idempotency operations.
pub struct Idempotency<'a> {
    /// Where claims and answers are kept.
    pub store: &'a dyn Store,
    /// What time it is.
    pub clock: &'a dyn Clock,
}

impl Idempotency<'_> {
    /// Claims `attempt` for a request whose content hashes to `fingerprint`.
    pub async fn claim(
        &self,
        attempt: AttemptKey<'_>,
        fingerprint: &[u8; 32],
    ) -> Result<Claim, ServiceError> {
        let now = self.clock.now();
        Ok(self
            .store
            .claim_attempt(attempt, fingerprint, now, now + LEASE, now + WINDOW)
            .await?)
    }

    /// Keeps `answer` for replay, or lets the claim go when there is none to keep.
    pub async fn settle(
        &self,
        attempt: AttemptKey<'_>,
        answer: Option<&KeptResponse>,
    ) -> Result<(), ServiceError> {
        Ok(self.store.settle_attempt(attempt, answer).await?)
    }
}

/// Deletes kept answers past their window every ten minutes, until aborted.
pub fn spawn_purge_task(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PURGE_EVERY);
        loop {
            ticks.tick().await;
            match store.purge_attempts(clock.now()).await {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "idempotency keys past their window purged"),
                Err(e) => tracing::warn!(error = %e, "purging idempotency keys failed"),
            }
        }
    })
}
