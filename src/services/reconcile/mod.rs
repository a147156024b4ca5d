//! Reconcile: read Stripe's listings (every price and subscription, and the invoices, refunds and
//! disputes of a recent window) and repair the mirror with them, for webhooks that were missed
//! or that arrived before their reader was known. Snapshots are versioned by the time they were
//! read, so they replace what the mirror holds unless a newer event (or a final state) is there
//! already.
//!
//! Each listing is read, page by page, and reported on its own: a listing Stripe fails or refuses
//! (after the client's retries) is reported with why, and the next one is read all the same, so
//! one failing listing leaves the others' repairs in place. Every page's repairs are applied
//! before the next page is asked for. Only the database failing stops the whole run.

mod listing;
mod progress;

use chrono::{DateTime, TimeDelta, Utc};

pub use progress::{LogLines, SyncProgress};

use crate::domain::time::rfc3339;
use crate::domain::{
    Actor, ActorRole, AuditEntry, Listing, SyncOutcome, SyncReport, SyncRun, SyncRunId,
};
use crate::services::ServiceError;
use crate::services::mirror::{Applied, Mirror};
use crate::store::{Store, StoreError};
use crate::stripe::client::StripeClient;

/// Reads from Stripe and repairs the mirror.
pub struct Reconcile<'a> {
    /// The Stripe API.
    pub client: &'a StripeClient,
    /// The mirror's store.
    pub store: &'a dyn Store,
    /// Applies events that were waiting for a customer's reader.
    pub mirror: &'a Mirror,
    /// How far back invoices, refunds and disputes are read.
    pub window: TimeDelta,
    /// Told of each listing as it is read.
    pub progress: &'a dyn SyncProgress,
}

/// The reconcile run that started last, if one ever ran.
pub async fn last_run(store: &dyn Store) -> Result<Option<SyncRun>, ServiceError> {
    Ok(store.last_sync_run().await?)
}

/// What the listings of one run found along the way, for after them.
#[derive(Default)]
struct Found {
    /// Customers that a subscription linked to a reader: their waiting events can be applied.
    linked: Vec<String>,
    /// Whether Stripe's invoice payments failed to be read: the refunds after that are stored
    /// unattributed without asking again.
    attribution_failed: bool,
}

impl Reconcile<'_> {
    /// Runs one reconcile as of `now` on behalf of `actor`, and records it (as the last run, and
    /// in the audit log) with its report. Its repairs are many transactions, each applying what
    /// Stripe says; the records follow them. The report says which listings were read to their
    /// end and which failed; only a database failure ends the run early, as an error.
    pub async fn run(&self, now: DateTime<Utc>, actor: &Actor) -> Result<SyncReport, StoreError> {
        let started = std::time::Instant::now();
        let outcome = self.sync(now).await;
        let (changes, run_outcome, report, error) = match &outcome {
            Ok(report) => (
                serde_json::to_value(report).unwrap_or_default(),
                report.outcome,
                Some(report.clone()),
                report.failures(),
            ),
            Err(error) => (
                serde_json::json!({ "error": error.to_string() }),
                SyncOutcome::Failed,
                None,
                Some(error.to_string()),
            ),
        };
        let run = SyncRun {
            id: SyncRunId::generate().to_string(),
            source: if actor.role == ActorRole::Cli {
                "cli"
            } else {
                "api"
            }
            .to_owned(),
            started_at: now,
            finished_at: now + TimeDelta::from_std(started.elapsed()).unwrap_or_default(),
            outcome: run_outcome,
            report,
            error,
        };
        self.store.insert_sync_run(&run).await?;
        self.store
            .append_audit_entry(&AuditEntry::new(
                actor,
                "stripe.sync",
                "stripe",
                changes,
                now,
            ))
            .await?;
        outcome
    }

    /// Reads every listing from Stripe and repairs the mirror as of `now`.
    async fn sync(&self, now: DateTime<Utc>) -> Result<SyncReport, StoreError> {
        let window_start = now - self.window;
        let mut found = Found::default();
        let mut listings = Vec::with_capacity(Listing::ALL.len());
        for listing in Listing::ALL {
            self.progress.started(listing);
            let report = self
                .listing(listing, now, window_start.timestamp(), &mut found)
                .await?;
            self.progress.finished(&report);
            listings.push(report);
        }
        let mut events_applied = 0;
        for customer in found.linked {
            for id in self.store.events_waiting_for(&customer).await? {
                if self.mirror.apply(&id).await? == Applied::Applied {
                    events_applied += 1;
                }
            }
        }
        // What the mirror holds changed under every reader's cached entitlements.
        self.mirror.forget_cached();
        Ok(SyncReport::new(
            listings,
            events_applied,
            rfc3339(window_start),
        ))
    }
}
