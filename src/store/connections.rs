//! Whether connections to the database have failed lately, process-wide.
//!
//! Pools skip sqlx's check of every connection before each use (a round trip per query) while
//! things go well, and go back to checking each one for a while after a connection failed, so
//! that connections broken by a database restart or a network cut are replaced instead of each
//! failing a request.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long after a connection failure every connection is checked before use.
pub(super) const CHECK_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// Milliseconds from [`epoch`] to the last failure, plus one; zero when none happened.
static LAST_FAILURE: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn millis_since_epoch() -> u64 {
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Notes that a connection to the database failed now.
pub(super) fn record_failure() {
    LAST_FAILURE.store(millis_since_epoch().saturating_add(1), Ordering::Relaxed);
}

/// Whether a connection failed within the last `window`.
pub(super) fn failed_within(window: Duration) -> bool {
    match LAST_FAILURE.load(Ordering::Relaxed) {
        0 => false,
        at => {
            let window = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
            millis_since_epoch().saturating_sub(at - 1) <= window
        }
    }
}

/// Whether `err` says a connection broke (rather than a query being wrong or the pool busy).
pub(super) fn is_connection_failure(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => true,
        // PostgreSQL's connection exceptions and an operator shutting the server down.
        sqlx::Error::Database(db) => {
            db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_none()
                && db
                    .code()
                    .is_some_and(|code| code.starts_with("08") || code.starts_with("57P0"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_remembered_for_the_window_only() {
        record_failure();
        assert!(failed_within(Duration::from_secs(1)));
        std::thread::sleep(Duration::from_millis(30));
        assert!(!failed_within(Duration::from_millis(10)));
        assert!(failed_within(Duration::from_secs(1)));
    }

    #[test]
    fn broken_connections_count_as_failures_and_busy_pools_do_not() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(is_connection_failure(&io));
        assert!(!is_connection_failure(&sqlx::Error::PoolTimedOut));
        assert!(!is_connection_failure(&sqlx::Error::RowNotFound));
    }
}
