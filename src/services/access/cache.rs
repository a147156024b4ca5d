//! What an instance keeps in memory for the access path: each reader's entitlements and the
//! plans, for a short time to live.
//!
//! Correctness never depends on it: a change made through this instance (a webhook, a grant, a
//! plan) empties it at once, and a change made through another instance reaches this one within
//! the time to live (`entitlement_cache_ttl`, a few seconds, far below any token lifetime).
//! Entries keep each entitlement's lapse time, so one that lapses is dropped at that instant
//! whatever the cache holds.
//!
//! Readers who are not kept are loaded once however many requests ask for them at the same
//! time: a new reader opening a page often fires several access requests at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use crate::domain::{Held, Plan, ReaderId};
use crate::store::StoreError;

/// Most readers kept at once; the least used go first.
const MAX_READERS: u64 = 100_000;

/// The in-memory copy of entitlements and plans. Cheap to clone; clones share the entries.
#[derive(Clone)]
pub struct EntitlementCache {
    readers: Option<moka::future::Cache<ReaderId, Arc<Vec<Held>>>>,
    plans: Option<Cache<(), Arc<Vec<Plan>>>>,
}

impl EntitlementCache {
    /// A cache whose entries live for `ttl`; a zero `ttl` keeps nothing.
    pub fn new(ttl: Duration) -> Self {
        if ttl.is_zero() {
            return Self {
                readers: None,
                plans: None,
            };
        }
        Self {
            readers: Some(
                moka::future::Cache::builder()
                    .max_capacity(MAX_READERS)
                    .time_to_live(ttl)
                    .build(),
            ),
            plans: Some(Cache::builder().max_capacity(1).time_to_live(ttl).build()),
        }
    }

    /// A reader's entitlements: the kept ones, or what `load` finds, then kept. Concurrent
    /// requests for a reader who is not kept share one `load`.
    pub async fn reader(
        &self,
        id: &ReaderId,
        load: impl Future<Output = Result<Arc<Vec<Held>>, StoreError>>,
    ) -> Result<Arc<Vec<Held>>, StoreError> {
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

    /// Forgets one reader (a grant of theirs changed).
    pub async fn forget_reader(&self, id: &ReaderId) {
        if let Some(readers) = &self.readers {
            readers.invalidate(id).await;
        }
    }

    /// Forgets everything (a webhook or a plan changed what readers hold).
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

    #[tokio::test]
    async fn concurrent_requests_for_a_reader_not_kept_share_one_load() {
        let cache = EntitlementCache::new(Duration::from_secs(60));
        let loads = AtomicUsize::new(0);
        let load = || async {
            loads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(Arc::new(Vec::new()))
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
        let cache = EntitlementCache::new(Duration::from_secs(60));
        let failed = cache
            .reader(&reader(), async {
                Err(StoreError::Unavailable(anyhow::anyhow!(
                    "connection refused"
                )))
            })
            .await;
        assert!(matches!(failed, Err(StoreError::Unavailable(_))));
        let loaded = cache
            .reader(&reader(), async { Ok(Arc::new(Vec::new())) })
            .await;
        assert!(loaded.is_ok());
    }

    #[tokio::test]
    async fn a_zero_time_to_live_loads_every_time() {
        let cache = EntitlementCache::new(Duration::ZERO);
        let loads = AtomicUsize::new(0);
        for _ in 0..3 {
            cache
                .reader(&reader(), async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok(Arc::new(Vec::new()))
                })
                .await
                .unwrap();
        }
        assert_eq!(loads.load(Ordering::SeqCst), 3);
    }
}
