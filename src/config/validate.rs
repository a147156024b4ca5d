//! What settings must satisfy beyond their types before tollgate runs with them: durations in
//! range, no zero where zero cannot work, and values that agree with each other.

use std::time::Duration;

use secrecy::ExposeSecret;

use super::urls::{Backend, check_stripe_api_base};
use super::{ConfigError, MAX_DURATION, Settings};
use crate::domain::Period;

/// SQLite takes its busy timeout in milliseconds, as a C `int`.
const MAX_SQLITE_BUSY_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

/// Most tries of one Stripe API call: more would only keep a failing reconcile waiting.
const MAX_STRIPE_ATTEMPTS: u32 = 10;

/// Why zero is refused for a duration, or `None` where zero is meaningful.
type WhyNotZero = Option<&'static str>;

impl Settings {
    /// Checks the settings: every duration is at most [`MAX_DURATION`] (so it converts to a
    /// [`chrono::TimeDelta`] and date arithmetic on it cannot overflow), none is zero where zero
    /// cannot work, and the values agree with each other. Every problem found is reported, each
    /// naming its key. [`Settings::load`] and [`crate::startup::Application::build`] call it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        for (key, value, why_not_zero) in self.durations() {
            if value > MAX_DURATION {
                problems.push(format!("{key} must be at most 100 years"));
            } else if let (true, Some(why)) = (value.is_zero(), why_not_zero) {
                problems.push(format!("{key} must be longer than 0s: {why}"));
            }
        }
        if self.sqlite_busy_timeout > MAX_SQLITE_BUSY_TIMEOUT {
            problems.push(format!(
                "sqlite_busy_timeout must be at most {}ms, the most SQLite takes",
                i32::MAX
            ));
        }
        if !(1..=MAX_STRIPE_ATTEMPTS).contains(&self.stripe_retry_attempts) {
            problems.push(format!(
                "stripe_retry_attempts must be 1 to {MAX_STRIPE_ATTEMPTS}: 1 tries each Stripe \
                 call once"
            ));
        }
        if self.body_limit == 0 {
            problems.push("body_limit must be more than 0: no request body would fit".into());
        }
        if Backend::from_url(self.database_url.expose_secret()).is_none() {
            problems.push("database_url must be a sqlite:// or postgres:// URL".into());
        }
        match url::Url::parse(&self.stripe_api_base) {
            Ok(base) => {
                if let Err(problem) = check_stripe_api_base(&base) {
                    problems.push(format!("stripe_api_base: {problem}"));
                }
            }
            Err(e) => problems.push(format!("stripe_api_base is not a URL: {e}")),
        }
        if let Some(mode) = self.stripe_secret_key.as_ref().and_then(key_mode)
            && mode != self.stripe_livemode
        {
            problems.push(format!(
                "stripe_secret_key is a {} key but stripe_livemode is {}: webhooks and the \
                 API would be in different modes",
                if mode { "live-mode" } else { "test-mode" },
                self.stripe_livemode
            ));
        }
        if self
            .stripe_webhook_secrets
            .iter()
            .any(|secret| secret.expose_secret().trim().is_empty())
        {
            problems.push("stripe_webhook_secrets holds an empty secret".into());
        }
        for (key, period) in [
            ("meter_registered_period", self.meter_registered_period),
            ("meter_anonymous_period", self.meter_anonymous_period),
            ("gift_allowance_period", self.gift_allowance_period),
        ] {
            if period.to_string().parse::<Period>().ok() != Some(period) {
                problems.push(format!(
                    "{key} `{period}` is not a period: rolling_days counts 1 to 366 days"
                ));
            }
        }
        if let Some(key) = &self.gift_code_key
            && crate::domain::CodeSealer::from_base64(key.expose_secret()).is_none()
        {
            problems.push(
                "gift_code_key must be base64 of 32 random bytes (openssl rand -base64 32)".into(),
            );
        }
        if let Some(key) = &self.erasure_key
            && crate::domain::Pseudonymizer::from_base64(key.expose_secret()).is_none()
        {
            problems.push(
                "erasure_key must be base64 of 32 random bytes (openssl rand -base64 32)".into(),
            );
        }
        if self.gift_max_recipients == 0 {
            problems.push(
                "gift_max_recipients must be at least 1: a gift must open for someone".into(),
            );
        }
        for (key, value) in [
            ("token_issuer", &self.token_issuer),
            ("token_audience", &self.token_audience),
        ] {
            if value.trim().is_empty() {
                problems.push(format!("{key} must not be empty: tokens carry it"));
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            problems.push(format!(
                "log_level `{}` is not a tracing filter: {e}",
                self.log_level
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Rejected(problems))
        }
    }

    /// Every duration setting by key, with why zero is refused where it is.
    pub(super) fn durations(&self) -> [(&'static str, Duration, WhyNotZero); 32] {
        const PERIOD: WhyNotZero = Some("it is the period of a recurring task");
        const TOKEN: WhyNotZero = Some("every token would have expired when it is issued");
        [
            (
                "database_acquire_timeout",
                self.database_acquire_timeout,
                Some("no connection could be opened in time"),
            ),
            (
                "sqlite_busy_timeout",
                self.sqlite_busy_timeout,
                Some("tollgate's own connections share the write lock, and would fail at once"),
            ),
            (
                "sqlite_checkpoint_interval",
                self.sqlite_checkpoint_interval,
                PERIOD,
            ),
            (
                "readiness_timeout",
                self.readiness_timeout,
                Some("`/readyz` would never find the database ready"),
            ),
            ("shutdown_timeout", self.shutdown_timeout, None),
            (
                "stripe_webhook_tolerance",
                self.stripe_webhook_tolerance,
                Some("hardly any delivered signature would be accepted"),
            ),
            (
                "stripe_timeout",
                self.stripe_timeout,
                Some("every Stripe API call would time out"),
            ),
            (
                "stripe_retry_backoff",
                self.stripe_retry_backoff,
                Some("a failing Stripe call would be tried again without pause"),
            ),
            ("stripe_retry_max_wait", self.stripe_retry_max_wait, None),
            ("stripe_sync_window", self.stripe_sync_window, None),
            ("past_due_grace", self.past_due_grace, None),
            (
                "webhook_retry_interval",
                self.webhook_retry_interval,
                PERIOD,
            ),
            ("webhook_retry_backoff", self.webhook_retry_backoff, None),
            ("webhook_retry_for", self.webhook_retry_for, None),
            ("entitlement_token_ttl", self.entitlement_token_ttl, TOKEN),
            ("article_token_ttl", self.article_token_ttl, TOKEN),
            ("entitlement_cache_ttl", self.entitlement_cache_ttl, None),
            ("stale_if_error", self.stale_if_error, None),
            ("api_key_cache_ttl", self.api_key_cache_ttl, None),
            (
                "gift_link_ttl",
                self.gift_link_ttl,
                Some("every gift link would have expired when it is made"),
            ),
            (
                "gift_code_validity",
                self.gift_code_validity,
                Some("every gift subscription code would have expired when it is bought"),
            ),
            ("webhook_secret_overlap", self.webhook_secret_overlap, None),
            (
                "webhook_delivery_timeout",
                self.webhook_delivery_timeout,
                Some("every delivery would time out"),
            ),
            (
                "webhook_delivery_backoff",
                self.webhook_delivery_backoff,
                Some("a failing endpoint would be retried without pause"),
            ),
            (
                "webhook_delivery_retry_for",
                self.webhook_delivery_retry_for,
                None,
            ),
            (
                "webhook_disable_after",
                self.webhook_disable_after,
                Some("an endpoint would be disabled at its first failure"),
            ),
            (
                "webhook_dispatch_interval",
                self.webhook_dispatch_interval,
                PERIOD,
            ),
            ("purge_interval", self.purge_interval, PERIOD),
            ("webhook_body_retention", self.webhook_body_retention, None),
            (
                "webhook_delivery_retention",
                self.webhook_delivery_retention,
                None,
            ),
            (
                "webhook_failed_delivery_retention",
                self.webhook_failed_delivery_retention,
                None,
            ),
            ("meter_retention_margin", self.meter_retention_margin, None),
        ]
    }
}

/// Whether a Stripe key is a live-mode one (`true`) or a test-mode one (`false`), when its prefix
/// says.
fn key_mode(key: &secrecy::SecretString) -> Option<bool> {
    let key = key.expose_secret();
    if key.starts_with("sk_live_") || key.starts_with("rk_live_") {
        Some(true)
    } else if key.starts_with("sk_test_") || key.starts_with("rk_test_") {
        Some(false)
    } else {
        None
    }
}
