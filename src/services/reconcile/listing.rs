//! One listing, page after page: each page asked for after the last object of the one before,
//! until Stripe says no more follow; its objects parsed and applied before the next is asked for.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Found, Reconcile};
use crate::domain::{Change, Listing, ListingReport, Refund, Version};
use crate::store::{ApplyOutcome, StoreError};
use crate::stripe::client::{Page, StripeError};
use crate::stripe::objects::{self, ObjectError};

impl Reconcile<'_> {
    /// Reads `listing` to its end (invoices, refunds and disputes created at or after `since`,
    /// Unix seconds) and applies it as of `now`. Stripe failing a page ends the listing, reported
    /// with why; what its earlier pages repaired stays.
    pub(super) async fn listing(
        &self,
        listing: Listing,
        now: DateTime<Utc>,
        since: i64,
        found: &mut Found,
    ) -> Result<ListingReport, StoreError> {
        let mut report = ListingReport::new(listing);
        // Every cursor followed: a list that comes back to one would never end.
        let mut cursors = HashSet::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = match self.page(listing, since, after.as_deref()).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(
                        %listing,
                        %error,
                        "a Stripe listing failed; the reconcile goes on with the next"
                    );
                    report.fail(error.to_string());
                    break;
                }
            };
            pages += 1;
            self.apply_page(listing, &page.data, now, &mut report, found)
                .await?;
            self.progress.page_read(listing, pages, report.seen);
            if !page.has_more {
                break;
            }
            match page.last_id() {
                Some(last) if cursors.insert(last.to_owned()) => after = Some(last.to_owned()),
                Some(last) => {
                    report.fail(format!(
                        "Stripe's list of {listing} came back to {last} after more pages; it was \
                         not followed further"
                    ));
                    break;
                }
                None => {
                    report.fail(format!(
                        "Stripe's list of {listing} said more followed a page without objects"
                    ));
                    break;
                }
            }
        }
        Ok(report)
    }

    /// One page of `listing`, after the object `after`.
    async fn page(
        &self,
        listing: Listing,
        since: i64,
        after: Option<&str>,
    ) -> Result<Page, StripeError> {
        let client = self.client;
        match listing {
            Listing::Prices => client.list_prices(after).await,
            Listing::Subscriptions => client.list_subscriptions(after).await,
            Listing::Invoices => client.list_invoices(since, after).await,
            Listing::Refunds => client.list_refunds(since, after).await,
            Listing::Disputes => client.list_disputes(since, after).await,
        }
    }

    /// Applies the objects of one page, each in its own transaction, counting them in `report`.
    async fn apply_page(
        &self,
        listing: Listing,
        objects: &[Value],
        now: DateTime<Utc>,
        report: &mut ListingReport,
        found: &mut Found,
    ) -> Result<(), StoreError> {
        report.seen += objects.len() as u64;
        let mut changes = Vec::with_capacity(objects.len());
        for object in objects {
            match change_of(listing, object, now) {
                Ok(change) => changes.push(change),
                Err(error) => {
                    report.unresolved += 1;
                    let id = object.get("id").and_then(|id| id.as_str()).unwrap_or("?");
                    tracing::warn!(
                        id,
                        %error,
                        "a Stripe object read by the reconcile cannot be used"
                    );
                }
            }
        }
        // An erased reader named by Stripe's metadata stays their pseudonym here.
        self.mirror
            .tombstones()
            .resolve(self.store, &mut changes)
            .await?;
        let outcomes = self.store.apply_sync(&changes, now).await?;
        for (change, outcome) in changes.iter().zip(&outcomes) {
            match outcome {
                ApplyOutcome::Applied(applied) => {
                    let changed = match listing {
                        Listing::Prices => applied.prices_changed > 0,
                        _ => applied.changed > 0,
                    };
                    report.changed += u64::from(changed);
                    found
                        .linked
                        .extend(applied.linked_customers.iter().cloned());
                    if let Change::Refunds(refunds) = change
                        && !applied.unattributed_refunds.is_empty()
                        && !self.attribute(refunds, now, found).await?
                    {
                        report.unresolved += 1;
                    }
                }
                ApplyOutcome::Waiting { .. } => report.unresolved += 1,
                ApplyOutcome::NotPending => {}
            }
        }
        Ok(())
    }

    /// Asks Stripe which invoice the payment behind a refund paid (basil and later keep that
    /// in invoice payments, not on the charge); whether one was found. Should Stripe fail to
    /// answer, the refund stays unattributed, and so do the rest of this run's.
    async fn attribute(
        &self,
        refunds: &[Refund],
        now: DateTime<Utc>,
        found: &mut Found,
    ) -> Result<bool, StoreError> {
        let mut attributed = false;
        for intent in refunds
            .iter()
            .filter_map(|r| r.payment_intent_id.as_deref())
        {
            if found.attribution_failed {
                break;
            }
            let page = match self.client.invoice_payments_for(intent).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(
                        %error,
                        "Stripe's invoice payments could not be read: this reconcile stores \
                         refunds unattributed"
                    );
                    found.attribution_failed = true;
                    break;
                }
            };
            let changes: Vec<Change> = page
                .data
                .iter()
                .filter_map(|object| objects::invoice_payment(object).ok())
                .map(Change::InvoicePayment)
                .collect();
            attributed |= !changes.is_empty();
            self.store.apply_sync(&changes, now).await?;
        }
        Ok(attributed)
    }
}

/// What one object of `listing` changes, read as of `now`.
fn change_of(listing: Listing, object: &Value, now: DateTime<Utc>) -> Result<Change, ObjectError> {
    Ok(match listing {
        Listing::Prices => Change::Price(objects::price(object, Version::sync(now))?),
        Listing::Subscriptions => {
            let (subscription, reader_id) = objects::subscription(object, Version::sync(now))?;
            Change::Subscription {
                subscription,
                reader_id,
            }
        }
        Listing::Invoices => Change::Invoice(objects::invoice(object)?),
        Listing::Refunds => Change::Refunds(vec![objects::refund(object, None)?]),
        Listing::Disputes => Change::Dispute(objects::dispute(object)?),
    })
}
