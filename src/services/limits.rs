//! Rate limits on the routes a misbehaving site could flood: access decisions and checkout
//! sessions, per API key (so one site cannot starve the others) and per reader or device (so one
//! reader's client cannot). Each limit is a token bucket (governor's GCRA) holding a minute's
//! allowance, refilled evenly over the minute; 0 turns a limit off.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::ServiceError;
use crate::config::Settings;

/// How often (in checks) a limiter forgets keys whose buckets are full again.
const FORGET_EVERY: u64 = 4_096;

/// One keyed limit: `per_minute` requests a minute per key, in a burst or spread out.
pub struct Limit {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    checks: AtomicU64,
}

/// A request over its limit, and how long until one more is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Wait at least this long.
    pub retry_after: Duration,
}

impl Limited {
    /// Whole seconds to wait, at least one, as `Retry-After` says it.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs();
        if self.retry_after.subsec_nanos() > 0 || secs == 0 {
            secs + 1
        } else {
            secs
        }
    }
}

impl Limit {
    /// A limit of `per_minute` requests a minute per key; 0 is no limit.
    pub fn per_minute(per_minute: u32) -> Self {
        Self {
            limiter: NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one request of `key`'s allowance, or says how long until there is one.
    pub fn check(&self, key: &str) -> Result<(), Limited> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            limiter.retain_recent();
        }
        limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| Limited {
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            })
    }
}

impl Limit {
    /// [`Limit::check`] as a service refuses it, naming `what` was limited.
    pub fn admit(&self, key: &str, what: &str) -> Result<(), ServiceError> {
        self.check(key).map_err(|limited| {
            let retry_after = limited.retry_after_secs();
            tracing::warn!(limit = what, retry_after, "request over a rate limit");
            ServiceError::RateLimited {
                detail: format!("too many requests for this {what}; retry in {retry_after} s"),
                retry_after: Duration::from_secs(retry_after),
            }
        })
    }
}

/// Every rate limit the service applies.
pub struct RateLimits {
    /// `POST /v1/access`, per API key.
    pub access_per_key: Limit,
    /// `POST /v1/access`, per reader or device.
    pub access_per_reader: Limit,
    /// `POST /v1/checkout/sessions`, per API key.
    pub checkout_per_key: Limit,
    /// `POST /v1/checkout/sessions`, per reader.
    pub checkout_per_reader: Limit,
}

impl RateLimits {
    /// The limits the settings describe.
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            access_per_key: Limit::per_minute(settings.rate_limit_access_per_key),
            access_per_reader: Limit::per_minute(settings.rate_limit_access_per_reader),
            checkout_per_key: Limit::per_minute(settings.rate_limit_checkout_per_key),
            checkout_per_reader: Limit::per_minute(settings.rate_limit_checkout_per_reader),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_minutes_allowance_at_once_then_waits_and_other_keys_are_untouched() {
        let limit = Limit::per_minute(3);
        for _ in 0..3 {
            assert_eq!(limit.check("key-a"), Ok(()));
        }
        let limited = limit.check("key-a").unwrap_err();
        // One request comes back every 20 s.
        assert!(
            limited.retry_after <= Duration::from_secs(20),
            "{limited:?}"
        );
        assert!(limited.retry_after > Duration::from_secs(19), "{limited:?}");
        assert_eq!(limited.retry_after_secs(), 20);
        assert_eq!(limit.check("key-b"), Ok(()));
    }

    #[test]
    fn zero_is_no_limit() {
        let limit = Limit::per_minute(0);
        for _ in 0..10_000 {
            assert_eq!(limit.check("key-a"), Ok(()));
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_never_zero() {
        let after = |ms| Limited {
            retry_after: Duration::from_millis(ms),
        };
        assert_eq!(after(0).retry_after_secs(), 1);
        assert_eq!(after(1).retry_after_secs(), 1);
        assert_eq!(after(1_000).retry_after_secs(), 1);
        assert_eq!(after(1_001).retry_after_secs(), 2);
    }
}
