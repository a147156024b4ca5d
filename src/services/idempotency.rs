//! Idempotent POSTs: claiming an attempt before its request is served, and keeping its answer
//! for a day; the storage purge ([`crate::services::storage`]) deletes it once its day has
//! passed.

use chrono::TimeDelta;

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
