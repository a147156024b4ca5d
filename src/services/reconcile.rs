//! Reconcile: read prices and subscriptions (all of them) and recent invoices and refunds from Stripe's API
//! and repair the mirror with them, for webhooks that were missed or that arrived before their
//! reader was known. Snapshots are versioned by the time they were read, so they replace what
//! the mirror holds unless a newer event (or a final state) is there already.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::domain::time::rfc3339;
use crate::domain::{Actor, ActorRole, AuditEntry, Change, SyncRun, SyncRunId, Version};
use crate::services::ServiceError;
use crate::services::mirror::Mirror;
use crate::store::{ApplyOutcome, Store, StoreError};
use crate::stripe::client::{Page, StripeClient, StripeError};
use crate::stripe::objects;

/// Most pages read from one list, so a reconcile always ends: 100 000 objects.
const MAX_PAGES: usize = 1_000;

/// What one kind of object came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Objects read from Stripe.
    pub seen: u64,
    /// Objects that changed the mirror.
    pub changed: u64,
    /// Objects that could not be used: unreadable, or (subscriptions) of a customer no reader
    /// is linked to, or (refunds) not attributable to an invoice.
    pub unresolved: u64,
}

/// What a reconcile saw and changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Prices, active or not.
    pub prices: Counts,
    /// Subscriptions, all statuses.
    pub subscriptions: Counts,
    /// Invoices created in the window.
    pub invoices: Counts,
    /// Refunds created in the window.
    pub refunds: Counts,
    /// Stored events that were waiting for a customer the reconcile linked, and are applied now.
    pub events_applied: u64,
    /// Start of the window invoices and refunds were read from (RFC 3339).
    pub window_start: String,
}

/// Why a reconcile stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Stripe failed or refused a call.
    #[error(transparent)]
    Stripe(#[from] StripeError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SyncError> for ServiceError {
    fn from(err: SyncError) -> Self {
        match err {
            SyncError::Stripe(err) => Self::Stripe(err),
            SyncError::Store(err) => Self::Store(err),
        }
    }
}

/// Reads from Stripe and repairs the mirror.
pub struct Reconcile<'a> {
    /// The Stripe API.
    pub client: &'a StripeClient,
    /// The mirror's store.
    pub store: &'a dyn Store,
    /// Applies events that were waiting for a customer's reader.
    pub mirror: &'a Mirror,
    /// How far back invoices and refunds are read.
    pub window: TimeDelta,
}

/// The reconcile run that started last, if one ever ran.
pub async fn last_run(store: &dyn Store) -> Result<Option<SyncRun>, ServiceError> {
    Ok(store.last_sync_run().await?)
}

impl Reconcile<'_> {
    /// Runs one reconcile as of `now` on behalf of `actor`, and records it in the audit log
    /// with its report (or why it stopped). Its repairs are many transactions, each applying
    /// what Stripe says; the entry follows them.
    pub async fn run(&self, now: DateTime<Utc>, actor: &Actor) -> Result<SyncReport, SyncError> {
        let started = std::time::Instant::now();
        let outcome = self.sync(now).await;
        let changes = match &outcome {
            Ok(report) => serde_json::to_value(report).unwrap_or_default(),
            Err(error) => serde_json::json!({ "error": error.to_string() }),
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
            outcome: if outcome.is_ok() {
                "succeeded"
            } else {
                "failed"
            }
            .to_owned(),
            report: outcome.is_ok().then(|| changes.clone()),
            error: outcome.as_ref().err().map(ToString::to_string),
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

    /// Reads from Stripe and repairs the mirror as of `now`.
    async fn sync(&self, now: DateTime<Utc>) -> Result<SyncReport, SyncError> {
        let window_start = now - self.window;
        let since = window_start.timestamp();
        let mut report = SyncReport {
            window_start: rfc3339(window_start),
            ..SyncReport::default()
        };
        let mut linked = Vec::new();
        let client = self.client;

        let prices = self
            .read_all(
                |after: Option<String>| async move { client.list_prices(after.as_deref()).await },
            )
            .await?;
        let changes = self.parse(&prices, &mut report.prices, |object| {
            Ok(vec![Change::Price(objects::price(
                object,
                Version::sync(now),
            )?)])
        });
        for outcome in self.store.apply_sync(&changes, now).await? {
            if let ApplyOutcome::Applied(applied) = outcome {
                report.prices.changed += applied.prices_changed;
            }
        }

        let subscriptions = self
            .read_all(|after: Option<String>| async move {
                client.list_subscriptions(after.as_deref()).await
            })
            .await?;
        let changes = self.parse(&subscriptions, &mut report.subscriptions, |object| {
            let (subscription, reader_id) = objects::subscription(object, Version::sync(now))?;
            Ok(vec![Change::Subscription {
                subscription,
                reader_id,
            }])
        });
        for outcome in self.store.apply_sync(&changes, now).await? {
            tally(&outcome, &mut report.subscriptions, &mut linked);
        }

        let invoices = self
            .read_all(|after: Option<String>| async move {
                client.list_invoices(since, after.as_deref()).await
            })
            .await?;
        let changes = self.parse(&invoices, &mut report.invoices, |object| {
            Ok(vec![Change::Invoice(objects::invoice(object)?)])
        });
        for outcome in self.store.apply_sync(&changes, now).await? {
            tally(&outcome, &mut report.invoices, &mut linked);
        }

        let refunds = self
            .read_all(|after: Option<String>| async move {
                client.list_refunds(since, after.as_deref()).await
            })
            .await?;
        let changes = self.parse(&refunds, &mut report.refunds, |object| {
            Ok(vec![Change::Refunds(vec![objects::refund(object, None)?])])
        });
        let outcomes = self.store.apply_sync(&changes, now).await?;
        for (change, outcome) in changes.iter().zip(&outcomes) {
            tally(outcome, &mut report.refunds, &mut linked);
            if let (Change::Refunds(refunds), ApplyOutcome::Applied(applied)) = (change, outcome)
                && !applied.unattributed_refunds.is_empty()
                && !self.attribute(refunds, now).await?
            {
                report.refunds.unresolved += 1;
            }
        }

        for customer in linked {
            for id in self.store.events_waiting_for(&customer).await? {
                if self.mirror.apply(&id).await? == crate::services::mirror::Applied::Applied {
                    report.events_applied += 1;
                }
            }
        }
        // What the mirror holds changed under every reader's cached entitlements.
        self.mirror.forget_cached();
        Ok(report)
    }

    /// Asks Stripe which invoice the payment behind a refund paid (basil and later keep that
    /// in invoice payments, not on the charge); whether one was found.
    async fn attribute(
        &self,
        refunds: &[crate::domain::Refund],
        now: DateTime<Utc>,
    ) -> Result<bool, SyncError> {
        let mut found = false;
        for intent in refunds
            .iter()
            .filter_map(|r| r.payment_intent_id.as_deref())
        {
            let page = self.client.invoice_payments_for(intent).await?;
            let changes: Vec<Change> = page
                .data
                .iter()
                .filter_map(|object| objects::invoice_payment(object).ok())
                .map(Change::InvoicePayment)
                .collect();
            found |= !changes.is_empty();
            self.store.apply_sync(&changes, now).await?;
        }
        Ok(found)
    }

    /// Every object of a list, page after page.
    async fn read_all<F, Fut>(&self, mut page: F) -> Result<Vec<Value>, StripeError>
    where
        F: FnMut(Option<String>) -> Fut,
        Fut: Future<Output = Result<Page, StripeError>>,
    {
        let mut objects = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let next = page(after.take()).await?;
            let more = next.has_more;
            after = next.last_id().map(str::to_owned);
            objects.extend(next.data);
            if !more || after.is_none() {
                return Ok(objects);
            }
        }
        tracing::warn!(
            pages = MAX_PAGES,
            "a Stripe list was cut off after the most pages one reconcile reads"
        );
        Ok(objects)
    }

    /// The changes of every object that can be read; the others are counted as unresolved.
    fn parse(
        &self,
        objects: &[Value],
        counts: &mut Counts,
        read: impl Fn(&Value) -> Result<Vec<Change>, objects::ObjectError>,
    ) -> Vec<Change> {
        counts.seen += objects.len() as u64;
        let mut changes = Vec::new();
        for object in objects {
            match read(object) {
                Ok(more) => changes.extend(more),
                Err(err) => {
                    counts.unresolved += 1;
                    let id = object.get("id").and_then(|id| id.as_str()).unwrap_or("?");
                    tracing::warn!(
                        id,
                        error = %err,
                        "a Stripe object read by the reconcile cannot be used"
                    );
                }
            }
        }
        changes
    }
}

fn tally(outcome: &ApplyOutcome, counts: &mut Counts, linked: &mut Vec<String>) {
    match outcome {
        ApplyOutcome::Applied(report) => {
            if report.changed > 0 {
                counts.changed += 1;
            }
            linked.extend(report.linked_customers.iter().cloned());
        }
        ApplyOutcome::Waiting { .. } => counts.unresolved += 1,
        ApplyOutcome::NotPending => {}
    }
}
