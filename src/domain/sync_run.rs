//! A reconcile with Stripe as it is remembered: when it ran, who started it, what each of Stripe's
//! listings it read came to, and so whether it succeeded, partly or not at all.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};

/// An instant as the API shows them: RFC 3339, whole seconds, `Z`.
fn whole_seconds<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&super::time::rfc3339(*at))
}

prefixed_id!(
    /// The identifier of a reconcile run: `syn_` and a time-ordered UUID.
    SyncRunId,
    "syn_"
);

named_enum! {
    /// One of Stripe's lists a reconcile reads, in the order it reads them.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Listing ("listing") {
        /// Every price, active or not.
        Prices = "prices",
        /// Every subscription, all statuses.
        Subscriptions = "subscriptions",
        /// Invoices created in the window.
        Invoices = "invoices",
        /// Refunds created in the window.
        Refunds = "refunds",
        /// Disputes created in the window.
        Disputes = "disputes",
    }
}

named_enum! {
    /// What a reconcile came to as a whole.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum SyncOutcome ("reconcile outcome") {
        /// Every listing was read to its end.
        Succeeded = "succeeded",
        /// Some listings were read to their end, some failed.
        Partial = "partial",
        /// No listing was read to its end, or the run stopped (the database failed).
        Failed = "failed",
    }
}

/// What one listing came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingReport {
    /// Which listing.
    pub listing: Listing,
    /// Whether it was read to its end.
    pub ok: bool,
    /// Objects read.
    pub seen: u64,
    /// Objects that changed the mirror.
    pub changed: u64,
    /// Objects that could not be used: unreadable ones, subscriptions of a customer no reader
    /// is linked to, refunds not attributable to an invoice.
    pub unresolved: u64,
    /// Why it was not read to its end; `None` when it was.
    pub error: Option<String>,
}

impl ListingReport {
    /// A listing not read yet.
    pub fn new(listing: Listing) -> Self {
        Self {
            listing,
            ok: true,
            seen: 0,
            changed: 0,
            unresolved: 0,
            error: None,
        }
    }

    /// Marks it as not read to its end, for `why`; what it saw and changed before stays counted.
    pub fn fail(&mut self, why: String) {
        self.ok = false;
        self.error = Some(why);
    }
}

/// What a reconcile saw and changed, listing by listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// `succeeded` when every listing was read to its end, `failed` when none was, else
    /// `partial`.
    pub outcome: SyncOutcome,
    /// Each listing, in the order read.
    pub listings: Vec<ListingReport>,
    /// Stored events that were waiting for a customer the reconcile linked, and are applied now.
    pub events_applied: u64,
    /// Start of the window invoices, refunds and disputes were read from (RFC 3339).
    pub window_start: String,
}

impl SyncReport {
    /// The report of these listings: its outcome follows from which were read to their end.
    pub fn new(listings: Vec<ListingReport>, events_applied: u64, window_start: String) -> Self {
        let read = listings.iter().filter(|l| l.ok).count();
        let outcome = if read == listings.len() {
            SyncOutcome::Succeeded
        } else if read == 0 {
            SyncOutcome::Failed
        } else {
            SyncOutcome::Partial
        };
        Self {
            outcome,
            listings,
            events_applied,
            window_start,
        }
    }

    /// Which listings failed and why the first did, on one line; `None` when none failed.
    pub fn failures(&self) -> Option<String> {
        let failed: Vec<&ListingReport> = self.listings.iter().filter(|l| !l.ok).collect();
        let first = failed.first()?;
        let names: Vec<&str> = failed.iter().map(|l| l.listing.as_str()).collect();
        Some(format!(
            "{} of {} listings failed ({}); {}: {}",
            failed.len(),
            self.listings.len(),
            names.join(", "),
            first.listing,
            first.error.as_deref().unwrap_or("no reason given")
        ))
    }
}

/// A report as stored: the per-listing one, or the per-kind one of runs recorded before
/// reconciles reported per listing, read as the same.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredReport {
    Listings(SyncReport),
    Kinds(KindsReport),
}

/// The report of a run recorded before reconciles reported per listing: every kind it has was
/// read to its end, since a failure then stopped the run without a report.
#[derive(Deserialize)]
struct KindsReport {
    prices: KindCounts,
    subscriptions: KindCounts,
    invoices: KindCounts,
    refunds: KindCounts,
    events_applied: u64,
    window_start: String,
}

#[derive(Deserialize)]
struct KindCounts {
    seen: u64,
    changed: u64,
    unresolved: u64,
}

impl SyncReport {
    /// A report as stored, in either shape it was ever stored in.
    pub fn from_stored(json: &str) -> Result<Self, serde_json::Error> {
        Ok(match serde_json::from_str(json)? {
            StoredReport::Listings(report) => report,
            StoredReport::Kinds(old) => {
                let listing = |listing, counts: KindCounts| ListingReport {
                    seen: counts.seen,
                    changed: counts.changed,
                    unresolved: counts.unresolved,
                    ..ListingReport::new(listing)
                };
                Self::new(
                    vec![
                        listing(Listing::Prices, old.prices),
                        listing(Listing::Subscriptions, old.subscriptions),
                        listing(Listing::Invoices, old.invoices),
                        listing(Listing::Refunds, old.refunds),
                    ],
                    old.events_applied,
                    old.window_start,
                )
            }
        })
    }
}

/// One reconcile run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncRun {
    /// `syn_...`.
    pub id: String,
    /// `api` (an admin's request) or `cli` (`tollgate stripe sync`).
    #[serde(rename = "trigger")]
    pub source: String,
    /// When it started.
    #[serde(serialize_with = "whole_seconds")]
    pub started_at: DateTime<Utc>,
    /// When it ended.
    #[serde(serialize_with = "whole_seconds")]
    pub finished_at: DateTime<Utc>,
    /// What it came to.
    pub outcome: SyncOutcome,
    /// What it saw and changed, listing by listing; `None` for a run the database stopped.
    pub report: Option<SyncReport>,
    /// Why it did not succeed: which listings failed and why, or why it stopped; `None` when
    /// it succeeded.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(listing: Listing, ok: bool) -> ListingReport {
        let mut report = ListingReport::new(listing);
        if !ok {
            report.fail(format!("{listing} could not be read"));
        }
        report
    }

    #[test]
    fn the_outcome_is_succeeded_partial_or_failed_by_the_listings_read_to_their_end() {
        let report = |oks: [bool; 2]| {
            SyncReport::new(
                vec![
                    listing(Listing::Prices, oks[0]),
                    listing(Listing::Refunds, oks[1]),
                ],
                0,
                "2026-10-19T19:12:00Z".into(),
            )
        };

        assert_eq!(report([true, true]).outcome, SyncOutcome::Succeeded);
        assert_eq!(report([true, true]).failures(), None);
        assert_eq!(report([true, false]).outcome, SyncOutcome::Partial);
        assert_eq!(
            report([true, false]).failures().as_deref(),
            Some("1 of 2 listings failed (refunds); refunds: refunds could not be read")
        );
        assert_eq!(report([false, false]).outcome, SyncOutcome::Failed);
        assert_eq!(
            report([false, false]).failures().as_deref(),
            Some("2 of 2 listings failed (prices, refunds); prices: prices could not be read")
        );
    }

    #[test]
    fn a_report_stored_per_kind_reads_as_listings_all_read_to_their_end() {
        let stored = r#"{"prices":{"seen":6,"changed":0,"unresolved":0},"subscriptions":{"seen":412,"changed":3,"unresolved":1},"invoices":{"seen":389,"changed":5,"unresolved":0},"refunds":{"seen":4,"changed":1,"unresolved":0},"events_applied":2,"window_start":"2026-10-19T19:12:00Z"}"#;

        let report = SyncReport::from_stored(stored).unwrap();

        assert_eq!(report.outcome, SyncOutcome::Succeeded);
        assert_eq!(report.events_applied, 2);
        assert_eq!(report.window_start, "2026-10-19T19:12:00Z");
        let subscriptions = &report.listings[1];
        assert_eq!(subscriptions.listing, Listing::Subscriptions);
        assert_eq!(
            (
                subscriptions.seen,
                subscriptions.changed,
                subscriptions.unresolved
            ),
            (412, 3, 1)
        );
        assert_eq!(report.listings.len(), 4);
        assert!(report.listings.iter().all(|l| l.ok && l.error.is_none()));
    }

    #[test]
    fn a_report_stored_per_listing_reads_back_as_written() {
        let report = SyncReport::new(
            vec![
                listing(Listing::Prices, false),
                listing(Listing::Disputes, true),
            ],
            1,
            "2026-10-19T19:12:00Z".into(),
        );

        let json = serde_json::to_string(&report).unwrap();

        assert_eq!(SyncReport::from_stored(&json).unwrap(), report);
        assert!(
            json.starts_with(r#"{"outcome":"partial","listings":[{"listing":"prices","ok":false,"#)
        );
    }
}
