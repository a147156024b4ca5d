//! Bounded storage: the purge that removes what no longer matters (meter unlocks no window can
//! count, the bodies of old applied and skipped Stripe events, old delivered and failed outbound
//! deliveries, idempotency keys and dashboard sessions past their end, delivered `reader.erased`
//! events), in small batches with a
//! pause between them, every `purge_interval` and from `tollgate storage purge`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use prometheus::{Gauge, IntCounterVec, Opts, Registry};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::views::StorageSettings;
use crate::domain::Purge;
use crate::store::{Store, StoreError};

/// Rows one batch removes at most: a statement of a few milliseconds on either backend.
pub const BATCH_ROWS: u32 = 1000;
/// The shortest pause between two batches. After a batch the purge waits at least as long as
/// the batch took, so it never holds the database more than half the time.
const MIN_PAUSE: Duration = Duration::from_millis(10);

/// What the purge exports.
#[derive(Clone)]
pub struct PurgeMetrics {
    removed: IntCounterVec,
    last_run: Gauge,
}

impl PurgeMetrics {
    /// Registers the purge's metrics.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let removed = IntCounterVec::new(
            Opts::new(
                "tollgate_storage_purged_total",
                "Records the storage purge removed, by kind (meter_unlocks, webhook_bodies, \
                 delivered_deliveries, failed_deliveries, idempotency_keys, dashboard_sessions, \
                 erasure_notices)",
            ),
            &["kind"],
        )?;
        let last_run = Gauge::new(
            "tollgate_storage_purge_last_success_timestamp_seconds",
            "When the storage purge last finished without an error, in Unix seconds",
        )?;
        for what in Purge::ALL {
            removed.with_label_values(&[what.as_str()]);
        }
        registry.register(Box::new(removed.clone()))?;
        registry.register(Box::new(last_run.clone()))?;
        Ok(Self { removed, last_run })
    }
}

/// What one purge removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// The instant the purge was run as of.
    pub at: DateTime<Utc>,
    /// Records removed (bodies dropped, for `webhook_bodies`), by kind.
    pub removed: BTreeMap<Purge, u64>,
    /// Statements run, every kind together.
    pub batches: u64,
}

impl PurgeReport {
    /// Records of kind `what` removed.
    pub fn removed(&self, what: Purge) -> u64 {
        self.removed.get(&what).copied().unwrap_or(0)
    }

    /// Writes one log line of what a purge that took `elapsed` removed: at info level when it
    /// removed something.
    fn log(&self, elapsed: Duration) {
        let elapsed_ms = elapsed.as_millis() as u64;
        if self.removed.values().all(|&n| n == 0) {
            tracing::debug!(elapsed_ms, "the storage purge found nothing to remove");
            return;
        }
        tracing::info!(
            meter_unlocks = self.removed(Purge::MeterUnlocks),
            webhook_bodies = self.removed(Purge::WebhookBodies),
            delivered_deliveries = self.removed(Purge::DeliveredDeliveries),
            failed_deliveries = self.removed(Purge::FailedDeliveries),
            idempotency_keys = self.removed(Purge::IdempotencyKeys),
            dashboard_sessions = self.removed(Purge::DashboardSessions),
            erasure_notices = self.removed(Purge::ErasureNotices),
            batches = self.batches,
            elapsed_ms,
            "storage purged"
        );
    }
}

/// The storage purge.
#[derive(Clone)]
pub struct Purger {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: StorageSettings,
    batch_rows: u32,
    metrics: Option<PurgeMetrics>,
}

impl Purger {
    /// A purge over `store` keeping what `settings` say, in batches of [`BATCH_ROWS`].
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, settings: StorageSettings) -> Self {
        Self {
            store,
            clock,
            settings,
            batch_rows: BATCH_ROWS,
            metrics: None,
        }
    }

    /// The same purge, counting what it removes in `metrics`.
    pub fn with_metrics(self, metrics: PurgeMetrics) -> Self {
        Self {
            metrics: Some(metrics),
            ..self
        }
    }

    /// The same purge, in batches of `rows` (at least 1).
    pub fn with_batch_rows(self, rows: u32) -> Self {
        Self {
            batch_rows: rows.max(1),
            ..self
        }
    }

    /// Removes everything past its retention now, kind by kind, batch by batch. A database
    /// error stops it; what the batches before removed stays removed, and the next run goes on.
    pub async fn run(&self) -> Result<PurgeReport, StoreError> {
        let now = self.clock.now();
        let mut report = PurgeReport {
            at: now,
            removed: BTreeMap::new(),
            batches: 0,
        };
        for what in Purge::ALL {
            let cutoff = self.settings.retention.cutoff(what, now);
            let mut removed = 0;
            loop {
                let started = Instant::now();
                let batch = self
                    .store
                    .purge_batch(what, cutoff, now, self.batch_rows)
                    .await?;
                removed += batch;
                report.batches += 1;
                if let Some(metrics) = &self.metrics {
                    metrics
                        .removed
                        .with_label_values(&[what.as_str()])
                        .inc_by(batch);
                }
                if batch < u64::from(self.batch_rows) {
                    break;
                }
                tokio::time::sleep(started.elapsed().max(MIN_PAUSE)).await;
            }
            report.removed.insert(what, removed);
        }
        if let Some(metrics) = &self.metrics {
            metrics.last_run.set(now.timestamp() as f64);
        }
        Ok(report)
    }

    /// Runs the purge every `purge_interval`, the first time at once, until aborted.
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(self.settings.purge_interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let started = Instant::now();
                match self.run().await {
                    Ok(report) => report.log(started.elapsed()),
                    Err(e) => {
                        tracing::warn!(error = %e, "the storage purge failed; it runs again later");
                    }
                }
            }
        })
    }
}
