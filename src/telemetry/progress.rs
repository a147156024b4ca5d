//! A command's progress on a terminal: a line per Stripe listing a reconcile reads, with the pages
//! and objects read so far, and how it ended. Log lines written meanwhile are printed above the
//! lines, which are hidden while one is written and drawn again after it.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;

use crate::domain::{Listing, ListingReport};
use crate::services::reconcile::SyncProgress;

/// The lines on show, once a command shows any: log lines are written around them.
static SHOWN: OnceLock<MultiProgress> = OnceLock::new();

/// A reconcile's progress on standard error, for a terminal.
pub struct TerminalProgress {
    lines: MultiProgress,
    listings: Mutex<HashMap<Listing, ProgressBar>>,
}

impl TerminalProgress {
    /// Progress drawn on standard error (which should be a terminal).
    pub fn new() -> Self {
        Self {
            lines: SHOWN.get_or_init(MultiProgress::new).clone(),
            listings: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, listing: Listing) -> Option<ProgressBar> {
        let listings = self.listings.lock().ok()?;
        listings.get(&listing).cloned()
    }
}

impl Default for TerminalProgress {
    fn default() -> Self {
        Self::new()
    }
}

/// The style `template` describes (they are constant, and parse), or indicatif's spinner.
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

impl SyncProgress for TerminalProgress {
    fn started(&self, listing: Listing) {
        let line = self.lines.add(ProgressBar::new_spinner());
        line.set_style(style("{prefix:14} {spinner} {msg}"));
        line.set_prefix(listing.as_str());
        line.set_message("reading");
        line.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut listings) = self.listings.lock() {
            listings.insert(listing, line);
        }
    }

    fn page_read(&self, listing: Listing, pages: u64, seen: u64) {
        if let Some(line) = self.line(listing) {
            let page_or_pages = if pages == 1 { "page" } else { "pages" };
            line.set_message(format!("{pages} {page_or_pages}, {seen} objects"));
        }
    }

    fn finished(&self, report: &ListingReport) {
        let Some(line) = self.line(report.listing) else {
            return;
        };
        line.set_style(style("{prefix:14} {msg}"));
        line.finish_with_message(match &report.error {
            None => format!(
                "done: {} seen, {} changed, {} unresolved",
                report.seen, report.changed, report.unresolved
            ),
            Some(error) => format!("FAILED after {} objects: {error}", report.seen),
        });
    }
}

/// Standard error for log lines, written above any progress lines on show.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match SHOWN.get() {
            Some(lines) => lines.suspend(|| io::stderr().write(buf)),
            None => io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
