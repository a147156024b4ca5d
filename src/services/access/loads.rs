//! Where the access path finds what a reader holds: the cache, a load from the database shared
//! by concurrent requests, or, while the database is unreachable, the reader's last load.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use super::{AccessService, Entitled, Holdings, Loaded};
use crate::domain::ReaderId;
use crate::store::StoreError;

impl AccessService {
    /// What the reader holds now, with the record and plans it follows from, as the access path
    /// sees it: kept for up to `entitlement_cache_ttl`, emptied by every change made through
    /// this instance. For views that may be as current as an access decision.
    pub async fn holdings(&self, reader: &ReaderId) -> Result<Holdings, StoreError> {
        let now = self.clock.now();
        let loaded = self.kept_or_loaded(reader, now).await?;
        let plans = self.plans().await?;
        Ok(Holdings {
            held: self.holdings_of(&loaded.record, &plans, now),
            record: loaded.record.clone(),
            plans,
            now,
        })
    }

    /// The reader's kept load, or a new one (shared with concurrent requests for them).
    async fn kept_or_loaded(
        &self,
        reader: &ReaderId,
        now: DateTime<Utc>,
    ) -> Result<Arc<Loaded>, StoreError> {
        let load = async {
            let record = self.store.reader(reader).await?;
            let plans = self.plans().await?;
            let held = self.holdings_of(&record, &plans, now);
            Ok(Arc::new(Loaded {
                record,
                held,
                loaded_at: now,
            }))
        };
        self.cache.reader(reader, load).await
    }

    /// What the reader holds at `now`, each entitlement with when it lapses: kept, loaded, or,
    /// while the database is unreachable, from their last load if it is recent enough (see
    /// [`Entitled::stale_until`]). Whoever answers from a last load counts it
    /// ([`Self::count_stale`]); whoever would write from it must refuse instead.
    pub async fn entitlements(
        &self,
        reader: &ReaderId,
        now: DateTime<Utc>,
    ) -> Result<Entitled, StoreError> {
        let (loaded, stale_until) = match self.cache.kept(reader).await {
            Some(kept) => (kept, None),
            None => self.load_or_last(reader, now).await?,
        };
        Ok(Entitled {
            held: loaded
                .held
                .iter()
                .filter(|h| h.lapses_at.is_none_or(|at| at > now))
                .cloned()
                .collect(),
            stale_until,
        })
    }

    /// A new load of the reader, unless the database is unreachable: then their last load and
    /// when it stops being usable, or `Unavailable` when there is none recent enough.
    async fn load_or_last(
        &self,
        reader: &ReaderId,
        now: DateTime<Utc>,
    ) -> Result<(Arc<Loaded>, Option<DateTime<Utc>>), StoreError> {
        let failure = match self
            .breaker
            .unless_open(self.kept_or_loaded(reader, now))
            .await
        {
            Some(Ok(loaded)) => return Ok((loaded, None)),
            Some(Err(StoreError::Unavailable(err))) => Some(err),
            Some(Err(err)) => return Err(err),
            None => None,
        };
        let stale_for = TimeDelta::from_std(self.settings.stale_if_error).unwrap_or(TimeDelta::MAX);
        let last = self.cache.last_load(reader).and_then(|last| {
            let until = last.loaded_at.checked_add_signed(stale_for)?;
            (now < until).then_some((last, until))
        });
        match (last, failure) {
            (Some((last, until)), _) => Ok((last, Some(until))),
            (None, Some(failure)) => Err(StoreError::Unavailable(failure)),
            // Known to be away, and nothing to answer from: asked briefly all the same, in
            // case the database is back before the heartbeat has seen it.
            (None, None) => {
                let loaded = self
                    .breaker
                    .read_while_open(self.kept_or_loaded(reader, now))
                    .await?;
                Ok((loaded, None))
            }
        }
    }
}
