//! Applying stored Stripe events to the mirror, and trying again those that could not be applied
//! yet. An event is applied in one transaction with its changes, so concurrent attempts (a
//! redelivery, the retry task, an operator, another instance) apply it exactly once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use prometheus::{IntCounterVec, Opts, Registry};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::domain::{Change, EventStatus, EventType, StripeEventId};
use crate::services::access::EntitlementCache;
use crate::services::erasure::Tombstones;
use crate::services::gift_subscriptions::CodeIssuer;
use crate::store::{ApplyOutcome, EventFailure, Store, StoreError, StoredEvent};
use crate::stripe::objects;

/// Longest wait between two automatic attempts at one event.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Most due events one round of the retry task takes on.
const RETRY_BATCH: u32 = 100;
/// How long a round's claim on its events holds. A round takes well under a second; if the
/// instance dies during one, other instances try its events once the claim has lapsed.
const RETRY_LEASE: TimeDelta = TimeDelta::minutes(5);

/// When and how failed events are tried again.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// How often the retry task looks for due events.
    pub interval: Duration,
    /// Delay before the first retry; it doubles with each failure, up to an hour.
    pub backoff: Duration,
    /// How long after receipt events are retried automatically.
    pub retry_for: Duration,
}

impl RetryPolicy {
    /// The policy the settings describe.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            interval: settings.webhook_retry_interval,
            backoff: settings.webhook_retry_backoff,
            retry_for: settings.webhook_retry_for,
        }
    }

    /// When to try an event that has failed `attempts` times (this failure included) again, or
    /// `None` once it is past the automatic retry window.
    pub fn next_attempt(
        &self,
        attempts: i64,
        received_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
        let delay = self
            .backoff
            .saturating_mul(2_u32.saturating_pow(doublings))
            .min(MAX_BACKOFF);
        let next = now + TimeDelta::from_std(delay).unwrap_or(TimeDelta::hours(1));
        let window = TimeDelta::from_std(self.retry_for).unwrap_or(TimeDelta::days(3));
        (next <= received_at + window).then_some(next)
    }
}

/// What applying one event came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Applied now.
    Applied,
    /// Nothing to do: applied before, skipped, or unknown.
    NotPending,
    /// Kept as failed, to be tried again; the error says why.
    Failed(String),
}

/// The metrics of applying events.
#[derive(Clone)]
struct Metrics {
    events: IntCounterVec,
    foreign_items: IntCounterVec,
}

impl Metrics {
    fn new(registry: &Registry) -> prometheus::Result<Self> {
        let events = IntCounterVec::new(
            Opts::new(
                "tollgate_webhook_events_applied_total",
                "Attempts at applying stored Stripe events, by type and outcome",
            ),
            &["type", "outcome"],
        )?;
        let foreign_items = IntCounterVec::new(
            Opts::new(
                "tollgate_foreign_subscription_items_total",
                "Subscription items seen whose price is in no plan, and so grants nothing",
            ),
            &["price"],
        )?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(foreign_items.clone()))?;
        Ok(Self {
            events,
            foreign_items,
        })
    }
}

/// Applies stored events to the mirror.
#[derive(Clone)]
pub struct Mirror {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
    metrics: Metrics,
    cache: Option<EntitlementCache>,
    codes: Option<Arc<CodeIssuer>>,
    tombstones: Tombstones,
}

impl Mirror {
    /// A mirror over `store` whose metrics join `registry`.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        retry: RetryPolicy,
        registry: &Registry,
    ) -> prometheus::Result<Self> {
        Ok(Self {
            store,
            clock,
            retry,
            metrics: Metrics::new(registry)?,
            cache: None,
            codes: None,
            tombstones: Tombstones::default(),
        })
    }

    /// Empties `cache` whenever an applied event changes the mirror.
    pub fn with_cache(self, cache: EntitlementCache) -> Self {
        Self {
            cache: Some(cache),
            ..self
        }
    }

    /// Issues gift subscription codes with `codes` for the gift purchases events record;
    /// without it, such events fail and are retried.
    pub fn with_gift_codes(self, codes: Arc<CodeIssuer>) -> Self {
        Self {
            codes: Some(codes),
            ..self
        }
    }

    /// Applies what Stripe says about erased readers to their pseudonyms (`tombstones`); without
    /// it, nobody is looked for among the erased.
    pub fn with_tombstones(self, tombstones: Tombstones) -> Self {
        Self { tombstones, ..self }
    }

    /// The erased readers' tombstones.
    pub fn tombstones(&self) -> &Tombstones {
        &self.tombstones
    }

    /// Empties the entitlement cache: the mirror changed outside an event (a reconcile).
    pub fn forget_cached(&self) {
        if let Some(cache) = &self.cache {
            cache.forget_all();
        }
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Applies the stored event `id` and then every event that was waiting for a customer it
    /// linked to a reader. Errors are those of the database: the event stays as it was, and the
    /// retry task comes back to it.
    pub async fn apply(&self, id: &StripeEventId) -> Result<Applied, StoreError> {
        let first = self.apply_one(id).await?;
        let mut linked = first.1;
        while let Some(customer) = linked.pop() {
            for waiting in self.store.events_waiting_for(&customer).await? {
                let (_, more) = self.apply_one(&waiting).await?;
                linked.extend(more);
            }
        }
        Ok(first.0)
    }

    /// Applies one event; also returns the customers it linked to readers.
    async fn apply_one(&self, id: &StripeEventId) -> Result<(Applied, Vec<String>), StoreError> {
        let Some(event) = self.store.stored_event(id).await? else {
            return Ok((Applied::NotPending, Vec::new()));
        };
        if !matches!(event.status, EventStatus::Pending | EventStatus::Failed) {
            return Ok((Applied::NotPending, Vec::new()));
        }
        let now = self.clock.now();
        // The purge drops only the bodies of applied and skipped events, so a pending or
        // failed one has its own; should it not, the event fails saying why, and a reconcile
        // repairs what it carried.
        let parsed = event
            .body
            .as_deref()
            .ok_or_else(|| "its body is no longer stored".to_owned())
            .and_then(|body| {
                serde_json::from_str::<serde_json::Value>(body).map_err(|e| e.to_string())
            })
            .and_then(|body| {
                objects::changes(event.kind.as_str(), &body).map_err(|e| e.to_string())
            });
        let issued = match parsed {
            Ok(mut changes) => {
                // An erased reader whom an event received before their erasure names.
                self.tombstones
                    .resolve(self.store.as_ref(), &mut changes)
                    .await?;
                self.issue_codes(&mut changes).await.map(|()| changes)
            }
            Err(error) => Err(format!("the event's object cannot be read: {error}")),
        };
        let changes = match issued {
            Ok(changes) => changes,
            Err(error) => {
                let failure = EventFailure {
                    error,
                    waiting_for: None,
                    next_attempt_at: self.next_attempt(&event, now),
                };
                return self.failed(&event.id, &event.kind, failure).await;
            }
        };
        match self.store.apply_event(&event.id, &changes, now).await? {
            ApplyOutcome::Applied(report) => {
                self.count(&event.kind, "applied");
                if let Some(cache) = self.cache.as_ref().filter(|_| report.changed > 0) {
                    cache.forget_all();
                }
                for price in &report.foreign_prices {
                    self.metrics.foreign_items.with_label_values(&[price]).inc();
                }
                if !report.foreign_prices.is_empty() {
                    tracing::warn!(
                        event_id = %event.id,
                        prices = %report.foreign_prices.join(","),
                        "subscription items with prices in no plan grant nothing"
                    );
                }
                tracing::info!(event_id = %event.id, event_type = %event.kind, changed = report.changed, "Stripe event applied");
                Ok((Applied::Applied, report.linked_customers))
            }
            ApplyOutcome::NotPending => Ok((Applied::NotPending, Vec::new())),
            ApplyOutcome::Waiting { customer_id } => {
                let failure = EventFailure {
                    error: format!(
                        "customer {customer_id} is not linked to a reader yet; the event is applied \
                         as soon as a checkout or a reconcile links it"
                    ),
                    next_attempt_at: self.next_attempt(&event, now),
                    waiting_for: Some(customer_id),
                };
                self.failed(&event.id, &event.kind, failure).await
            }
        }
    }

    /// Issues codes for the gift purchases among `changes`.
    async fn issue_codes(&self, changes: &mut [Change]) -> Result<(), String> {
        if !changes
            .iter()
            .any(|c| matches!(c, Change::GiftPurchased(_)))
        {
            return Ok(());
        }
        match &self.codes {
            Some(codes) => codes.issue(self.store.as_ref(), changes).await,
            None => Err("gift subscription codes are not issued by this process".into()),
        }
    }

    fn next_attempt(&self, event: &StoredEvent, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.retry
            .next_attempt(event.attempts + 1, event.received_at, now)
    }

    async fn failed(
        &self,
        id: &StripeEventId,
        kind: &EventType,
        failure: EventFailure,
    ) -> Result<(Applied, Vec<String>), StoreError> {
        self.count(
            kind,
            if failure.waiting_for.is_some() {
                "waiting"
            } else {
                "failed"
            },
        );
        tracing::warn!(event_id = %id, event_type = %kind, error = %failure.error, next_attempt_at = ?failure.next_attempt_at, "Stripe event not applied");
        self.store.fail_event(id, &failure).await?;
        Ok((Applied::Failed(failure.error), Vec::new()))
    }

    fn count(&self, kind: &EventType, outcome: &str) {
        // Only types tollgate applies become label values, so their number stays bounded.
        let kind = if objects::is_applied(kind.as_str()) {
            kind.as_str()
        } else {
            "other"
        };
        self.metrics
            .events
            .with_label_values(&[kind, outcome])
            .inc();
    }

    /// Applies every event whose next attempt is due; how many were applied. Each due event is
    /// claimed first, so with several instances one of them tries it.
    pub async fn retry_due(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let mut applied = 0;
        for id in self
            .store
            .claim_due_events(now, now + RETRY_LEASE, RETRY_BATCH)
            .await?
        {
            if self.apply(&id).await? == Applied::Applied {
                applied += 1;
            }
        }
        Ok(applied)
    }

    /// Starts the task that retries due events every `interval`, for as long as the process
    /// runs. Several instances may run it against one database: each round claims its events,
    /// and applying is exactly-once in any case.
    pub fn spawn_retry_task(self) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(self.retry.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match self.retry_due().await {
                    Ok(0) => {}
                    Ok(applied) => tracing::info!(applied, "retried Stripe events"),
                    Err(err) => {
                        tracing::warn!(error = %err, "retrying Stripe events failed; trying again later")
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_doubling_up_to_an_hour_and_stop_after_the_window() {
        let policy = RetryPolicy {
            interval: Duration::from_secs(10),
            backoff: Duration::from_secs(30),
            retry_for: Duration::from_secs(3 * 24 * 3600),
        };
        let received = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let now = received + TimeDelta::minutes(5);
        let delay = |attempts| {
            policy
                .next_attempt(attempts, received, now)
                .map(|t| t - now)
        };
        assert_eq!(delay(1), Some(TimeDelta::seconds(30)));
        assert_eq!(delay(2), Some(TimeDelta::seconds(60)));
        assert_eq!(delay(3), Some(TimeDelta::seconds(120)));
        assert_eq!(delay(8), Some(TimeDelta::hours(1)));
        assert_eq!(delay(1_000), Some(TimeDelta::hours(1)));
        let late = received + TimeDelta::days(3);
        assert_eq!(policy.next_attempt(1, received, late), None);
    }
}
