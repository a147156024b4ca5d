//! The dispatcher: delivers what the outbox holds, at least once. Each endpoint with deliveries
//! due gets a worker of its own, which claims them one at a time under a lease (so that no two
//! dispatchers, in this instance or another, attempt one delivery at once), sends, and records
//! the answer; a slow or dead endpoint holds up only its own worker, never another endpoint or
//! the API.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::TimeDelta;
use prometheus::{Gauge, IntCounterVec, IntGauge, Opts, Registry};
use tokio::task::{JoinHandle, JoinSet};

use super::sender::{Answer, Sender};
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::{DeliveryBackoff, EndpointId};
use crate::store::{AttemptOutcome, ClaimedDelivery, Store, StoreError};

/// Endpoints served at once by one instance.
const MAX_WORKERS: usize = 32;
/// Deliveries one worker attempts before it makes way for a fresh look at what is due.
const PER_WORKER: usize = 50;
/// How often the backlog metrics are read.
const BACKLOG_EVERY: Duration = Duration::from_secs(5);

/// What the dispatcher exports.
#[derive(Clone)]
pub struct DispatchMetrics {
    outcomes: IntCounterVec,
    depth: IntGauge,
    oldest: Gauge,
}

impl DispatchMetrics {
    /// Registers the dispatcher's metrics.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let outcomes = IntCounterVec::new(
            Opts::new(
                "tollgate_webhook_deliveries_total",
                "Delivery attempts to webhook endpoints, by outcome \
                 (delivered, retried, failed, gone)",
            ),
            &["outcome"],
        )?;
        let depth = IntGauge::new(
            "tollgate_webhook_queue_depth",
            "Deliveries to webhook endpoints not delivered yet",
        )?;
        let oldest = Gauge::new(
            "tollgate_webhook_oldest_pending_seconds",
            "Age of the oldest delivery not delivered yet, in seconds (0 when none is pending)",
        )?;
        registry.register(Box::new(outcomes.clone()))?;
        registry.register(Box::new(depth.clone()))?;
        registry.register(Box::new(oldest.clone()))?;
        Ok(Self {
            outcomes,
            depth,
            oldest,
        })
    }
}

/// Delivers due deliveries.
#[derive(Clone)]
pub struct Dispatcher {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    sender: Sender,
    backoff: DeliveryBackoff,
    disable_after: TimeDelta,
    lease: TimeDelta,
    interval: Duration,
    metrics: DispatchMetrics,
    /// Endpoints a worker of this instance is serving now.
    busy: Arc<Mutex<HashSet<EndpointId>>>,
}

impl Dispatcher {
    /// A dispatcher configured by `settings`.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        settings: &Settings,
        metrics: DispatchMetrics,
    ) -> anyhow::Result<Self> {
        let delta = |d: Duration| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
        Ok(Self {
            sender: Sender::new(
                super::sender::target_rules(settings),
                settings.webhook_delivery_timeout,
            )?,
            store,
            clock,
            backoff: DeliveryBackoff {
                backoff: delta(settings.webhook_delivery_backoff),
                retry_for: delta(settings.webhook_delivery_retry_for),
            },
            disable_after: delta(settings.webhook_disable_after),
            // An attempt ends within the timeout; the lease outlasts it with room to record.
            lease: delta(settings.webhook_delivery_timeout) * 2 + TimeDelta::seconds(5),
            interval: settings.webhook_dispatch_interval,
            metrics,
            busy: Arc::default(),
        })
    }

    /// Looks for due work every interval, and starts a worker for each endpoint that has some
    /// and is not being served, without waiting for them.
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(self.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut workers = JoinSet::new();
            let mut backlog_read = tokio::time::Instant::now() - BACKLOG_EVERY;
            loop {
                ticks.tick().await;
                while workers.try_join_next().is_some() {}
                if let Err(err) = self.start_workers(&mut workers).await {
                    tracing::warn!(error = %err, "looking for due webhook deliveries failed");
                }
                // Counting the backlog reads every pending delivery: now and then is enough.
                if backlog_read.elapsed() >= BACKLOG_EVERY {
                    backlog_read = tokio::time::Instant::now();
                    self.update_backlog().await;
                }
            }
        })
    }

    /// Attempts every delivery due now and waits for the attempts: for tests and for a final
    /// flush. How many attempts were made.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        let mut workers = JoinSet::new();
        self.start_workers(&mut workers).await?;
        let mut attempts = 0;
        while let Some(done) = workers.join_next().await {
            attempts += done.unwrap_or(0);
        }
        self.update_backlog().await;
        Ok(attempts)
    }

    async fn start_workers(&self, workers: &mut JoinSet<usize>) -> Result<(), StoreError> {
        if workers.len() >= MAX_WORKERS {
            return Ok(());
        }
        // Oldest due first; twice as many as can be served, since some are being served now.
        let due = self
            .store
            .due_endpoints(self.clock.now(), 2 * MAX_WORKERS as u32)
            .await?;
        for endpoint in due {
            if workers.len() >= MAX_WORKERS {
                break;
            }
            if !self.take(&endpoint) {
                continue;
            }
            let this = self.clone();
            workers.spawn(async move {
                let attempts = this.serve(&endpoint).await;
                this.release(&endpoint);
                attempts
            });
        }
        Ok(())
    }

    fn take(&self, endpoint: &EndpointId) -> bool {
        self.busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(endpoint.clone())
    }

    fn release(&self, endpoint: &EndpointId) {
        self.busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(endpoint);
    }

    /// One endpoint's worker: its due deliveries one after another, oldest first, until one
    /// fails; the store then leaves the endpoint alone until that delivery's retry is due, so an
    /// endpoint that is down costs one attempt per backoff, not one per delivery waiting for it.
    async fn serve(&self, endpoint: &EndpointId) -> usize {
        let mut attempts = 0;
        while attempts < PER_WORKER {
            let now = self.clock.now();
            let claimed = match self
                .store
                .claim_delivery(endpoint, now, now + self.lease)
                .await
            {
                Ok(Some(claimed)) => claimed,
                Ok(None) => break,
                Err(err) => {
                    tracing::warn!(endpoint_id = %endpoint, error = %err, "claiming a webhook delivery failed");
                    break;
                }
            };
            attempts += 1;
            if !self.attempt(&claimed).await {
                break;
            }
        }
        attempts
    }

    /// Sends one delivery and records the answer; whether it was delivered.
    async fn attempt(&self, delivery: &ClaimedDelivery) -> bool {
        let timestamp = self.clock.now().timestamp();
        let answer = self
            .sender
            .send(
                &delivery.url,
                &delivery.event_id,
                timestamp,
                &delivery.body,
                &delivery.secrets,
            )
            .await;
        let at = self.clock.now();
        let retry = |status: Option<u16>, error: String| AttemptOutcome::Failed {
            status,
            error,
            next: self.backoff.next_attempt(
                delivery.attempts + 1,
                delivery.created_at,
                at,
                rand::random::<f64>(),
            ),
        };
        let outcome = match answer {
            Answer::Status(status) if (200..300).contains(&status) => {
                AttemptOutcome::Delivered { status }
            }
            Answer::Status(410) => AttemptOutcome::Gone,
            Answer::Status(status) => retry(Some(status), format!("answered {status}")),
            Answer::Error(error) => retry(None, error),
        };
        let label = match &outcome {
            AttemptOutcome::Delivered { .. } => "delivered",
            AttemptOutcome::Gone => "gone",
            AttemptOutcome::Failed { next: Some(_), .. } => "retried",
            AttemptOutcome::Failed { next: None, .. } => "failed",
        };
        self.metrics.outcomes.with_label_values(&[label]).inc();
        match &outcome {
            AttemptOutcome::Delivered { .. } => {}
            AttemptOutcome::Gone => tracing::warn!(
                endpoint_id = %delivery.endpoint_id,
                "webhook endpoint answered 410 Gone: disabled"
            ),
            AttemptOutcome::Failed { error, next, .. } => tracing::info!(
                endpoint_id = %delivery.endpoint_id,
                delivery_id = %delivery.id,
                error = %error,
                given_up = next.is_none(),
                "webhook delivery failed"
            ),
        }
        if let Err(err) = self
            .store
            .record_attempt(delivery, &outcome, at, self.disable_after)
            .await
        {
            // The lease runs out and the delivery is attempted again: at least once.
            tracing::warn!(delivery_id = %delivery.id, error = %err, "recording a webhook delivery failed");
        }
        matches!(outcome, AttemptOutcome::Delivered { .. })
    }

    async fn update_backlog(&self) {
        match self.store.queue_stats().await {
            Ok(stats) => {
                self.metrics.depth.set(stats.pending);
                let age = stats.oldest.map_or(0.0, |oldest| {
                    (self.clock.now() - oldest).num_milliseconds().max(0) as f64 / 1000.0
                });
                self.metrics.oldest.set(age);
            }
            Err(err) => tracing::debug!(error = %err, "reading the webhook backlog failed"),
        }
    }
}
