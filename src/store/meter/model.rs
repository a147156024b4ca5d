//! The meter's values: unlock requests and their outcomes, merge reports, the subject locks'
//! keys, and what differs between the backends in the meter.

use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};

use crate::domain::{ArticleId, MeterSubject, Usage, Window};
use crate::store::dialect::Dialect;
use crate::store::error::StoreError;

/// A request to unlock one article on one meter.
#[derive(Debug, Clone)]
pub struct UnlockRequest {
    /// Whose meter.
    pub subject: MeterSubject,
    /// The article.
    pub article: ArticleId,
    /// The window the meter counts in now (its `now` is the unlock's time).
    pub window: Window,
    /// Free articles per period.
    pub limit: u32,
}

/// What an unlock request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlockOutcome {
    /// The article was unlocked now and counted.
    Unlocked,
    /// The article had been unlocked in this window; nothing was counted.
    AlreadyUnlocked,
    /// The meter is full; nothing changed.
    Exhausted,
}

/// An unlock's outcome with the meter's usage after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unlock {
    /// What happened.
    pub outcome: UnlockOutcome,
    /// The meter afterwards.
    pub usage: Usage,
}

/// What merging a device's meter into a reader's did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Articles moved into the reader's meter.
    pub moved: u32,
    /// Articles the reader had unlocked already; they left the device without counting again.
    pub already_unlocked: u32,
    /// Articles that did not fit under the reader's limit; they stay with the device.
    pub left_over: u32,
    /// The reader's meter afterwards.
    pub usage: Usage,
}

/// The advisory lock key of a subject: the first 8 bytes of a hash, the same in every instance.
/// Two subjects sharing a key only wait for each other; they never share a count.
pub(in crate::store) fn lock_key(subject: &MeterSubject) -> i64 {
    let digest = Sha256::new()
        .chain_update(subject.audience.as_str())
        .chain_update([0u8])
        .chain_update(subject.id.as_str())
        .finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// What differs between the backends in the meter.
pub(in crate::store) trait MeterDialect: Dialect {
    /// Takes a transaction-scoped lock on a meter subject's key (`$1`, a BIGINT), or `None`
    /// where the write transaction already excludes every other writer.
    const LOCK_SUBJECT: Option<&'static str>;

    /// Whether a batch of unlocks is one statement on this backend ([`MeterDialect::unlock_batch`],
    /// PostgreSQL's `tollgate_unlock`), run on a connection the meter's writers keep. Otherwise
    /// the batch runs statement by statement in a write transaction, which costs SQLite nothing
    /// since it runs in-process.
    const UNLOCKS_IN_ONE_STATEMENT: bool = false;

    /// Unlocks a batch in one statement; only called where
    /// [`MeterDialect::UNLOCKS_IN_ONE_STATEMENT`].
    fn unlock_batch<'a>(
        _conn: &'a mut Self::Connection,
        _requests: &'a [UnlockRequest],
    ) -> BoxFuture<'a, Result<Vec<Unlock>, StoreError>> {
        Box::pin(async {
            Err(StoreError::other(anyhow::anyhow!(
                "this backend unlocks statement by statement"
            )))
        })
    }
}
