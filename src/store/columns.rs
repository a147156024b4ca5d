//! How values are kept in columns, the same way in both backends: tollgate's own instants as
//! integer Unix milliseconds, so ordering comparisons behave identically; Stripe's times as the
//! Unix seconds Stripe gives; and fingerprints of mirrored snapshots.

use chrono::{DateTime, Utc};

use super::error::StoreError;

/// Converts stored Unix milliseconds back into an instant.
pub(super) fn instant(millis: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(millis).ok_or_else(|| {
        StoreError::Other(anyhow::anyhow!("stored instant {millis} is out of range"))
    })
}

/// Unix seconds of a Stripe time.
pub(super) fn secs(at: Option<DateTime<Utc>>) -> Option<i64> {
    at.map(|at| at.timestamp())
}

/// A Stripe time read back from Unix seconds.
pub(super) fn stripe_time(secs: Option<i64>) -> Option<DateTime<Utc>> {
    secs.and_then(|s| DateTime::from_timestamp(s, 0))
}

/// A digest of a snapshot's content: a snapshot with the fingerprint the mirror holds only
/// confirms it, and is not counted as a change.
pub(super) fn fingerprint(content: &impl std::fmt::Debug) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(format!("{content:?}").as_bytes()))
}
