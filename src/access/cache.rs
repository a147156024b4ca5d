//! What an instance keeps in memory for the access path: each reader's entitlements and the
//! plans, for a short time to live.
//!
//! Correctness never depends on it: a change made through this instance (a webhook, a grant, a
//! plan) empties it at once, and a change made through another instance reaches this one within
//! the time to live (`entitlement_cache_ttl`, a few seconds, far below any token lifetime).
//! Entries keep each entitlement's lapse time, so one that lapses is dropped at that instant
//! whatever the cache holds.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use crate::domain::{Held, Plan, ReaderId};

/// Most readers kept at once; the least used go first.
const MAX_READERS: u64 = 100_000;

/// The in-memory copy of entitlements and plans. Cheap to clone; clones share the entries.
#[derive(Clone)]
pub struct EntitlementCache {
    readers: Option<Cache<ReaderId, Arc<Vec<Held>>>>,
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
                Cache::builder()
                    .max_capacity(MAX_READERS)
                    .time_to_live(ttl)
                    .build(),
            ),
            plans: Some(Cache::builder().max_capacity(1).time_to_live(ttl).build()),
        }
    }

    /// A reader's entitlements, if kept.
    pub fn reader(&self, id: &ReaderId) -> Option<Arc<Vec<Held>>> {
        self.readers.as_ref()?.get(id)
    }

    /// Keeps a reader's entitlements.
    pub fn put_reader(&self, id: ReaderId, held: Arc<Vec<Held>>) {
        if let Some(readers) = &self.readers {
            readers.insert(id, held);
        }
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
    pub fn forget_reader(&self, id: &ReaderId) {
        if let Some(readers) = &self.readers {
            readers.invalidate(id);
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
