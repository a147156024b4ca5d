//! What an instance keeps in memory for the access path: each reader's record and entitlements
//! and the plans, for a short time to live, and each reader's last load for a while longer, to
//! answer from while the database is unreachable.
//!
//! Correctness never depends on it: a change made through this instance (a webhook, a grant, a
//! plan) empties it at once, and a change made through another instance reaches this one within
//! the time to live (`entitlement_cache_ttl`, a few seconds, far below any token lifetime).
//! Entries keep each entitlement's lapse time, so one that lapses is dropped at that instant
//! whatever the cache holds.
//!
//! Readers who are not kept are loaded once however many requests ask for them at the same
//! time: a new reader opening a page often fires several access requests at once.
//!
//! The last load of each reader is also kept for `stale_if_error` after it was made: only the
//! access path reads it, and only while the database cannot be reached (see `breaker`). A change
//! that names the reader (a grant, a seat) forgets it at once; a change that does not (a webhook
//! emptying everything) leaves it, since it was right when it was loaded and is never used past
//! `stale_if_error` after that.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use moka::sync::Cache;

use crate::domain::{Held, MeterSubject, Plan, ReaderId, Usage, Window};
use crate::store::{ReaderRecord, StoreError};

/// Most readers kept at once; the least used go first.
const MAX_READERS: u64 = 100_000;

/// One load of a reader: what the mirror held about them, what it gave, and when.
#[derive(Debug)]
pub struct Loaded {
    /// Everything the mirror held about the reader.
    pub record: ReaderRecord,
    /// What it gave at `loaded_at`, each entitlement with when it lapses.
    pub held: Vec<Held>,
    /// When it was read.
    pub loaded_at: DateTime<Utc>,
}

/// The in-memory copy of entitlements and plans. Cheap to clone; clones share the entries.
#[derive(Clone)]
pub struct EntitlementCache {
    readers: Option<moka::future::Cache<ReaderId, Arc<Loaded>>>,
    last_loads: Option<Cache<ReaderId, Arc<Loaded>>>,
    plans: Option<Cache<(), Arc<Vec<Plan>>>>,
    /// Meters as staff views last read them, with the window they were counted in.
    meters: Option<Cache<MeterSubject, (Window, Usage)>>,
    /// How long entries live.
    ttl: TimeDelta,
}

impl EntitlementCache {
    /// A cache whose entries live for `ttl`, and whose last loads are kept for
    /// `stale_if_error`; a zero duration keeps nothing of that kind.
    pub fn new(ttl: Duration, stale_if_error: Duration) -> Self {
        let last_loads = (!stale_if_error.is_zero()).then(|| {
            Cache::builder()
                .max_capacity(MAX_READERS)
                .time_to_live(stale_if_error)
                .build()
        });
        if ttl.is_zero() {
            return Self {
                readers: None,
                last_loads,
                plans: None,
                meters: None,
                ttl: TimeDelta::zero(),
            };
        }
        Self {
            readers: Some(
                moka::future::Cache::builder()
                    .max_capacity(MAX_READERS)
                    .time_to_live(ttl)
                    .build(),
            ),
            last_loads,
            plans: Some(Cache::builder().max_capacity(1).time_to_live(ttl).build()),
            meters: Some(
                Cache::builder()
                    .max_capacity(MAX_READERS)
                    .time_to_live(ttl)
                    .build(),
            ),
            ttl: TimeDelta::from_std(ttl).unwrap_or(TimeDelta::MAX),
        }
    }

    /// A reader's record and entitlements: the kept ones, or what `load` finds, then kept.
    /// Concurrent requests for a reader who is not kept share one `load`.
    pub async fn reader(
        &self,
        id: &ReaderId,
        load: impl Future<Output = Result<Arc<Loaded>, StoreError>>,
    ) -> Result<Arc<Loaded>, StoreError> {
        let load = async {
            let loaded = load.await?;
            if let Some(last_loads) = &self.last_loads {
                last_loads.insert(id.clone(), Arc::clone(&loaded));
            }
            Ok(loaded)
        };
        let Some(readers) = &self.readers else {
            return load.await;
        };
        readers
            .try_get_with_by_ref(id, load)
            .await
            .map_err(|shared| match *shared {
                StoreError::Unavailable(_) => StoreError::Unavailable(anyhow::Error::new(shared)),
                StoreError::Other(_) => StoreError::Other(anyhow::Error::new(shared)),
            })
    }

    /// The reader's kept load, if there is one.
    pub async fn kept(&self, id: &ReaderId) -> Option<Arc<Loaded>> {
        self.readers.as_ref()?.get(id).await
    }

    /// The reader's last load, if it was made less than `stale_if_error` ago and nothing that
    /// names the reader changed since.
    pub fn last_load(&self, id: &ReaderId) -> Option<Arc<Loaded>> {
        self.last_loads.as_ref()?.get(id)
    }

    /// The plans, if kept.
    pub fn plans(&self) -> Option<Arc<Vec<Plan>>> {
        self.plans.as_ref()?.get(&())
    }

    /// Keeps the plans.
    pub fn put_plans(&self, plans: Arc<Vec<Plan>>) {
        if let Some(cache) = &self.plans {
            cache.insert((), plans);
        }
    }

    /// The subject's meter as last read for a staff view, if it was read in the same period as
    /// `window` and at most the time to live before it, by the service's clock as well as in
    /// real time (a rolling window moves on with every instant: its count may be that much
    /// behind).
    pub fn meter(&self, subject: &MeterSubject, window: &Window) -> Option<Usage> {
        let (kept, usage) = self.meters.as_ref()?.get(subject)?;
        let age = window.now.signed_duration_since(kept.now);
        (kept.period_end == window.period_end && age >= TimeDelta::zero() && age <= self.ttl)
            .then_some(usage)
    }

    /// Keeps the subject's meter as read in `window`.
    pub fn put_meter(&self, subject: &MeterSubject, window: Window, usage: Usage) {
        if let Some(meters) = &self.meters {
            meters.insert(subject.clone(), (window, usage));
        }
    }

    /// Forgets the subject's meter (this instance counted or moved an article of theirs).
    pub fn forget_meter(&self, subject: &MeterSubject) {
        if let Some(meters) = &self.meters {
            meters.invalidate(subject);
        }
    }

    /// Forgets one reader (a grant of theirs changed), last load included.
    pub async fn forget_reader(&self, id: &ReaderId) {
        if let Some(readers) = &self.readers {
            readers.invalidate(id).await;
        }
        if let Some(last_loads) = &self.last_loads {
            last_loads.invalidate(id);
        }
    }

    /// Forgets what is kept for answers while the database is up (a webhook or a plan changed
    /// what readers hold); last loads stay, for outages only.
    pub fn forget_all(&self) {
        if let Some(readers) = &self.readers {
            readers.invalidate_all();
        }
        if let Some(plans) = &self.plans {
            plans.invalidate_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn reader() -> ReaderId {
        ReaderId::parse("r-1").unwrap()
    }

    fn loaded() -> Arc<Loaded> {
        Arc::new(Loaded {
            record: ReaderRecord::default(),
            held: Vec::new(),
            loaded_at: Utc::now(),
        })
    }

    #[tokio::test]
    async fn concurrent_requests_for_a_reader_not_kept_share_one_load() {
        let cache = EntitlementCache::new(Duration::from_secs(60), Duration::ZERO);
        let loads = AtomicUsize::new(0);
        let load = || async {
            loads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(loaded())
        };
        let id = reader();
        let answers =
            futures_util::future::join_all((0..8).map(|_| cache.reader(&id, load()))).await;
        assert!(answers.iter().all(Result::is_ok));
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        // Kept now: no further load until it is forgotten.
        cache.reader(&id, load()).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        cache.forget_reader(&id).await;
        cache.reader(&id, load()).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_load_keeps_nothing_and_stays_an_unavailable_database() {
        let cache = EntitlementCache::new(Duration::from_secs(60), Duration::ZERO);
        let failed = cache
            .reader(&reader(), async {
                Err(StoreError::Unavailable(anyhow::anyhow!(
                    "connection refused"
                )))
            })
            .await;
        assert!(matches!(failed, Err(StoreError::Unavailable(_))));
        let loaded = cache.reader(&reader(), async { Ok(loaded()) }).await;
        assert!(loaded.is_ok());
    }

    #[tokio::test]
    async fn a_last_load_outlives_a_change_to_everyone_but_not_one_naming_the_reader() {
        let cache = EntitlementCache::new(Duration::from_secs(60), Duration::from_secs(300));
        let id = reader();
        assert!(cache.last_load(&id).is_none());
        cache.reader(&id, async { Ok(loaded()) }).await.unwrap();
        assert!(cache.kept(&id).await.is_some());
        // A webhook empties what is kept for answers, not the last load kept for outages.
        cache.forget_all();
        assert!(cache.kept(&id).await.is_none());
        assert!(cache.last_load(&id).is_some());
        // A change naming the reader forgets both.
        cache.forget_reader(&id).await;
        assert!(cache.last_load(&id).is_none());
        // With no `stale_if_error`, nothing is kept for outages.
        let none = EntitlementCache::new(Duration::from_secs(60), Duration::ZERO);
        none.reader(&id, async { Ok(loaded()) }).await.unwrap();
        assert!(none.last_load(&id).is_none());
    }

    #[tokio::test]
    async fn a_zero_time_to_live_loads_every_time() {
        let cache = EntitlementCache::new(Duration::ZERO, Duration::ZERO);
        let loads = AtomicUsize::new(0);
        for _ in 0..3 {
            cache
                .reader(&reader(), async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok(loaded())
                })
                .await
                .unwrap();
        }
        assert_eq!(loads.load(Ordering::SeqCst), 3);
    }
}
