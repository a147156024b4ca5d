//! When a Stripe call is tried again, and after how long: transient failures (429, 5xx, no
//! answer at all) get exponential backoff with jitter, `Retry-After` is honoured as Stripe sends
//! it, and both the attempts and the total time spent waiting are bounded.

use std::time::Duration;

use backon::ExponentialBuilder;

use super::error::StripeError;

/// How one Stripe call is tried again after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first one included; 1 never tries again.
    pub attempts: u32,
    /// The wait before the first retry; it doubles with each retry, with up to as much again of
    /// random jitter.
    pub backoff: Duration,
    /// The most time waited between the tries of one call, `Retry-After` included. A
    /// `Retry-After` that would go past it ends the retries at once: Stripe is never asked again
    /// sooner than it said.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The backoff without `Retry-After`: exponential from [`Self::backoff`], with jitter, no
    /// single wait longer than [`Self::max_wait`], and `attempts - 1` retries.
    pub(super) fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.backoff)
            .with_max_delay(self.max_wait.max(self.backoff))
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.attempts.saturating_sub(1) as usize)
    }

    /// How long to wait before the next try, given what the failure asked for (`retry_after`)
    /// and what the backoff planned (`None` once the attempts are used up), or `None` to give
    /// up. `waited` is the time already waited for this call, and grows by the wait.
    pub(super) fn next_wait(
        &self,
        retry_after: Option<Duration>,
        planned: Option<Duration>,
        waited: &mut Duration,
    ) -> Option<Duration> {
        let wait = retry_after.unwrap_or(planned?);
        let total = waited.checked_add(wait)?;
        if total > self.max_wait {
            return None;
        }
        *waited = total;
        Some(wait)
    }
}

/// One try's failure, and what the answer said about trying again.
#[derive(Debug)]
pub(super) struct Failure {
    /// What went wrong.
    pub(super) error: StripeError,
    /// Whether another try may succeed: a 429 or a 5xx (unless Stripe said
    /// `Stripe-Should-Retry: false`), any status Stripe marked `Stripe-Should-Retry: true`, or
    /// no answer at all.
    pub(super) transient: bool,
    /// The answer's `Retry-After`, in whole seconds as Stripe sends it.
    pub(super) retry_after: Option<Duration>,
}

impl Failure {
    /// A failure without an answer: the connection failed or timed out.
    pub(super) fn unanswered(error: StripeError) -> Self {
        Self {
            error,
            transient: true,
            retry_after: None,
        }
    }

    /// A failure whose answer was read: it is transient per its status and headers.
    pub(super) fn answered(
        error: StripeError,
        status: u16,
        headers: &reqwest::header::HeaderMap,
    ) -> Self {
        let should_retry = headers
            .get("stripe-should-retry")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<bool>().ok());
        Self {
            error,
            transient: should_retry.unwrap_or(status == 429 || (500..600).contains(&status)),
            retry_after: headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use backon::BackoffBuilder;

    use super::*;

    fn policy(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            backoff: Duration::from_millis(100),
            max_wait: Duration::from_secs(3),
        }
    }

    #[test]
    fn the_backoff_doubles_with_jitter_and_stops_after_the_attempts() {
        let waits: Vec<Duration> = policy(4).backoff().build().collect();

        assert_eq!(waits.len(), 3);
        for (wait, base) in waits.iter().zip([100, 200, 400]) {
            let base = Duration::from_millis(base);
            assert!(*wait >= base && *wait <= base * 2, "{wait:?} for {base:?}");
        }
        assert_eq!(policy(1).backoff().build().next(), None);
    }

    #[test]
    fn retry_after_replaces_the_planned_wait_and_both_count_against_the_most_waited() {
        let policy = policy(10);
        let mut waited = Duration::ZERO;
        let planned = Some(Duration::from_millis(150));

        assert_eq!(
            policy.next_wait(Some(Duration::from_secs(2)), planned, &mut waited),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            policy.next_wait(None, planned, &mut waited),
            Some(Duration::from_millis(150))
        );
        assert_eq!(waited, Duration::from_millis(2_150));
        // One more second would wait 3.15 s in all: more than the 3 s allowed, so no retry.
        assert_eq!(
            policy.next_wait(Some(Duration::from_secs(1)), planned, &mut waited),
            None
        );
        assert_eq!(waited, Duration::from_millis(2_150));
    }

    #[test]
    fn no_retry_after_the_last_attempt_whatever_retry_after_says() {
        let mut waited = Duration::ZERO;
        assert_eq!(
            policy(3).next_wait(Some(Duration::from_secs(1)), None, &mut waited),
            None
        );
    }
}
