//! API keys: issuing them, finding the active key behind a presented secret (through a short-lived
//! cache, so the hot path does not read the database for it on every request), listing and
//! revoking them.

use crate::clock::Clock;
use crate::domain::{
    Actor, ApiKey, ApiKeyId, ApiKeySecret, AuditEntry, KeyHash, KeyName, NewApiKey, Role,
};
use std::time::Duration;

use crate::services::ServiceError;
use crate::services::access::Breaker;
use crate::store::{RevokeOutcome, Store, StoreError};

/// A freshly issued key: the stored record and the secret, which is shown once.
#[derive(Debug)]
pub struct IssuedKey {
    /// The stored record.
    pub key: ApiKey,
    /// The secret to hand to the key's holder.
    pub secret: ApiKeySecret,
}

/// What a new key is to be.
#[derive(Debug, Clone)]
pub struct KeyRequest {
    /// What it may do.
    pub role: Role,
    /// Its label.
    pub name: KeyName,
    /// Whether it may tell tollgate a reader's address.
    pub may_assert_ip: bool,
}

impl KeyRequest {
    /// A key of `role` named `name`, which may not assert addresses.
    pub fn new(role: Role, name: KeyName) -> Self {
        Self {
            role,
            name,
            may_assert_ip: false,
        }
    }
}

/// Makes and stores a new key. `created_by` is the key that asked for it, if any.
pub async fn issue_key(
    store: &dyn Store,
    clock: &dyn Clock,
    request: KeyRequest,
    created_by: Option<ApiKeyId>,
    actor: &Actor,
) -> Result<IssuedKey, StoreError> {
    let KeyRequest {
        role,
        name,
        may_assert_ip,
    } = request;
    let secret = ApiKeySecret::generate();
    let now = clock.now();
    let new = NewApiKey {
        id: ApiKeyId::generate(now),
        name,
        role,
        hash: secret.hash(),
        hint: secret.hint(),
        created_at: now,
        created_by,
        may_assert_ip,
    };
    let audit = AuditEntry::new(
        actor,
        "key.create",
        format!("key:{}", new.id),
        serde_json::json!({
            "role": new.role.as_str(), "name": new.name.as_str(), "hint": new.hint,
            "may_assert_ip": new.may_assert_ip,
        }),
        now,
    );
    let key = store.insert_api_key(&new, &audit).await?;
    Ok(IssuedKey { key, secret })
}

/// Recently checked active keys. Only keys found active are kept, for `api_key_cache_ttl`: a
/// revocation through this instance empties the cache at once, one through another instance (or
/// the CLI) takes effect here within that time. A zero time to live keeps nothing.
///
/// Each key found active is also remembered for `stale_if_error`, for while the database is
/// unreachable (no key can be revoked then either): a site whose key was checked in that time
/// keeps being answered, from stale entitlements where those exist.
#[derive(Clone)]
pub struct KeyCache {
    fresh: Option<moka::sync::Cache<KeyHash, ApiKey>>,
    last_checked: Option<moka::sync::Cache<KeyHash, ApiKey>>,
    breaker: Breaker,
}

impl KeyCache {
    /// Most keys kept.
    const CAPACITY: u64 = 10_000;

    /// A cache whose entries live for `ttl`, remembered for `stale_if_error` for when
    /// `breaker` finds the database unreachable.
    pub fn new(ttl: Duration, stale_if_error: Duration, breaker: Breaker) -> Self {
        let cache = |ttl: Duration| {
            (!ttl.is_zero()).then(|| {
                moka::sync::Cache::builder()
                    .max_capacity(Self::CAPACITY)
                    .time_to_live(ttl)
                    .build()
            })
        };
        Self {
            fresh: cache(ttl),
            last_checked: cache(stale_if_error),
            breaker,
        }
    }

    /// Forgets every key (one was revoked).
    pub fn forget_all(&self) {
        for cache in [&self.fresh, &self.last_checked].into_iter().flatten() {
            cache.invalidate_all();
        }
    }
}

/// The key operations, over the store, the clock and this instance's key cache.
pub struct Keys<'a> {
    /// Where keys are kept.
    pub store: &'a dyn Store,
    /// What time it is.
    pub clock: &'a dyn Clock,
    /// Recently checked keys.
    pub cache: &'a KeyCache,
}

impl Keys<'_> {
    /// The active key whose secret was presented, if there is one.
    pub async fn authenticate(&self, secret: &ApiKeySecret) -> Result<Option<ApiKey>, StoreError> {
        let hash = secret.hash();
        if let Some(key) = self.cache.fresh.as_ref().and_then(|cache| cache.get(&hash)) {
            return Ok(Some(key));
        }
        let found = match self
            .cache
            .breaker
            .unless_open(self.store.find_api_key_by_hash(&hash))
            .await
        {
            Some(Ok(found)) => found,
            Some(Err(StoreError::Unavailable(err))) => return self.last_checked(&hash, err),
            Some(Err(err)) => return Err(err),
            // Known to be away: a key checked lately is trusted; any other is asked for all
            // the same (the database may be back before the heartbeat has seen it), briefly.
            None => match self.last_checked(&hash, anyhow::anyhow!("unreachable")) {
                Ok(known) => return Ok(known),
                Err(_) => {
                    self.cache
                        .breaker
                        .read_while_open(self.store.find_api_key_by_hash(&hash))
                        .await?
                }
            },
        };
        match found {
            Some(key) if key.is_active() => {
                for cache in [&self.cache.fresh, &self.cache.last_checked]
                    .into_iter()
                    .flatten()
                {
                    cache.insert(hash.clone(), key.clone());
                }
                Ok(Some(key))
            }
            _ => Ok(None),
        }
    }

    /// The key last found active with `hash`, while the database is unreachable.
    fn last_checked(
        &self,
        hash: &KeyHash,
        err: anyhow::Error,
    ) -> Result<Option<ApiKey>, StoreError> {
        self.cache
            .last_checked
            .as_ref()
            .and_then(|cache| cache.get(hash))
            .map(Some)
            .ok_or(StoreError::Unavailable(err))
    }

    /// Issues a key on behalf of the key `by`, acting as `actor`.
    pub async fn issue(
        &self,
        request: KeyRequest,
        by: ApiKeyId,
        actor: &Actor,
    ) -> Result<IssuedKey, StoreError> {
        let issued = issue_key(self.store, self.clock, request, Some(by), actor).await?;
        tracing::info!(key_id = %issued.key.id, may_assert_ip = issued.key.may_assert_ip, "API key created");
        Ok(issued)
    }

    /// Up to `limit` keys in creation order, starting after `after`.
    pub async fn list(
        &self,
        after: Option<&ApiKeyId>,
        limit: u32,
    ) -> Result<Vec<ApiKey>, StoreError> {
        self.store.list_api_keys(after, limit).await
    }

    /// Revokes the key `id` on behalf of the key `by`, which may not revoke itself. Revoking a
    /// revoked key changes nothing and succeeds.
    pub async fn revoke(
        &self,
        id: &ApiKeyId,
        by: &ApiKeyId,
        actor: &Actor,
    ) -> Result<(), ServiceError> {
        if id == by {
            return Err(ServiceError::conflict(
                "cannot_revoke_self",
                "a key cannot revoke itself; revoke it with another admin key",
            ));
        }
        let now = self.clock.now();
        let audit = AuditEntry::new(
            actor,
            "key.revoke",
            format!("key:{id}"),
            serde_json::json!({}),
            now,
        );
        let outcome = self.store.revoke_api_key(id, now, &audit).await?;
        self.cache.forget_all();
        match outcome {
            RevokeOutcome::Revoked => {
                tracing::info!("API key revoked");
                Ok(())
            }
            RevokeOutcome::AlreadyRevoked => Ok(()),
            RevokeOutcome::NotFound => Err(ServiceError::NotFound(format!(
                "no API key has the id `{id}`"
            ))),
        }
    }
}
