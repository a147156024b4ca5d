//! The entitlement watcher: announces `reader.entitlements.changed` once for each change of
//! what a reader holds. Every write that can move a reader's entitlements marks the reader in
//! its own transaction; the watcher claims marked readers under a lease, works out what they
//! hold now, and, when it differs from what was last announced, writes the event in the same
//! transaction as the new announcement. Changes that come by time (a grant or a licence ending,
//! a cancelled subscription reaching its period's end, a past-due grace running out) are found
//! the same way: after each look the reader is marked again for the next instant one of their
//! sources lapses.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::domain::entitlements::held;
use crate::domain::erasure::is_pseudonym;
use crate::domain::{Held, PastDueGrace};
use crate::store::{Announcement, ReaderRecord, Store, StoreError};

/// Readers claimed at once.
const BATCH: u32 = 100;
/// How long a claim keeps other watchers off a reader.
const LEASE: TimeDelta = TimeDelta::seconds(60);
/// A source lapsing at an instant is looked at just after it, when it no longer counts.
const AFTER_LAPSE: TimeDelta = TimeDelta::seconds(1);

/// Watches readers' entitlements.
pub struct EntitlementWatcher {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    grace: PastDueGrace,
    interval: Duration,
}

impl EntitlementWatcher {
    /// A watcher looking every `interval`, with subscriptions past due in good standing for
    /// `grace`.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        grace: PastDueGrace,
        interval: Duration,
    ) -> Self {
        Self {
            store,
            clock,
            grace,
            interval,
        }
    }

    /// Looks at marked readers every interval.
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(self.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match self.look().await {
                    Ok(0) => {}
                    Ok(announced) => tracing::debug!(announced, "entitlement changes announced"),
                    Err(err) => {
                        tracing::warn!(error = %err, "watching entitlements failed; trying again later")
                    }
                }
            }
        })
    }

    /// Looks at every reader marked due now; how many changes were announced.
    pub async fn look(&self) -> Result<usize, StoreError> {
        let mut announced = 0;
        loop {
            let now = self.clock.now();
            let claimed = self
                .store
                .claim_entitlement_checks(now, now + LEASE, BATCH)
                .await?;
            if claimed.is_empty() {
                return Ok(announced);
            }
            let plans = self.store.list_plans().await?;
            for check in &claimed {
                if is_pseudonym(check.reader.as_str()) {
                    // An erased reader: a change to the records kept under their pseudonym (a
                    // later Stripe event) is announced to nobody; the mark just ends.
                    let holds = self
                        .store
                        .announced_entitlements(&check.reader)
                        .await?
                        .map(|(names, _)| names)
                        .unwrap_or_default();
                    let found = Announcement {
                        check,
                        holds,
                        next_check: None,
                        at: self.clock.now(),
                    };
                    self.store.announce_entitlements(&found).await?;
                    continue;
                }
                let record = self.store.reader(&check.reader).await?;
                let now = self.clock.now();
                let holds = held(
                    &record.subscriptions,
                    &plans,
                    &record.grants,
                    &record.licences,
                    &record.teams,
                    now,
                    self.grace,
                );
                let found = Announcement {
                    check,
                    holds: holds.iter().map(|h| h.name.to_string()).collect(),
                    next_check: next_lapse(&record, &holds, now).map(|at| at + AFTER_LAPSE),
                    at: now,
                };
                if let Some(event) = self.store.announce_entitlements(&found).await? {
                    announced += 1;
                    tracing::info!(event_id = %event.id, "reader entitlements changed");
                }
            }
        }
    }
}

/// The next instant what the reader holds can change by time alone: the first source to
/// lapse, or a licence of theirs to start.
fn next_lapse(record: &ReaderRecord, holds: &[Held], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let lapses = holds
        .iter()
        .flat_map(|held| &held.sources)
        .filter_map(|source| source.lapses_at);
    let starts = record.licences.iter().map(|licence| licence.spec.starts_at);
    let grants = record.grants.iter().map(|grant| grant.expires_at);
    lapses
        .chain(starts)
        .chain(grants)
        .filter(|at| *at > now)
        .min()
}
