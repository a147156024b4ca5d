//! Who is told how a reconcile gets on, listing by listing: the log (every run), or a display
//! of the command line's own.

use crate::domain::{Listing, ListingReport};

/// Told of each listing as a reconcile reads it.
pub trait SyncProgress: Send + Sync {
    /// `listing` is about to be read.
    fn started(&self, listing: Listing);
    /// `pages` pages of `listing` are read and applied, `seen` objects on them.
    fn page_read(&self, listing: Listing, pages: u64, seen: u64);
    /// `listing` is done, read to its end or failed.
    fn finished(&self, report: &ListingReport);
}

/// Progress as log lines: a line per page read and one per listing done.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogLines;

impl SyncProgress for LogLines {
    fn started(&self, listing: Listing) {
        tracing::debug!(%listing, "reading a Stripe listing");
    }

    fn page_read(&self, listing: Listing, pages: u64, seen: u64) {
        tracing::info!(%listing, pages, seen, "read a page of a Stripe listing");
    }

    fn finished(&self, report: &ListingReport) {
        tracing::info!(
            listing = %report.listing,
            ok = report.ok,
            seen = report.seen,
            changed = report.changed,
            unresolved = report.unresolved,
            error = report.error.as_deref(),
            "done with a Stripe listing"
        );
    }
}
