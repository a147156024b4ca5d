//! Read-only views of the settings, one per concern, with typed values: what each part of
//! tollgate reads, instead of a dozen flat fields.

use std::path::PathBuf;
use std::time::Duration;

use chrono::TimeDelta;
use chrono_tz::Tz;
use secrecy::SecretString;

use super::{MAX_DURATION, Settings, SigningAlgorithm};
use crate::domain::{Audience, Entitlement, MeterPolicy, PastDueGrace, Retention, SourceKind};

/// Gift articles: how many links a reader may make, for how many people, for how long, and who
/// may give.
#[derive(Debug, Clone, Copy)]
pub struct GiftSettings<'a> {
    /// Links per period, counted like a meter.
    pub allowance: MeterPolicy,
    /// Different people one link opens its article for.
    pub max_recipients: u32,
    /// How long a link opens its article.
    pub link_ttl: TimeDelta,
    /// Which sources of `articles` let a reader give.
    pub giver_sources: &'a [SourceKind],
    /// How long a gift subscription's code can be redeemed.
    pub code_validity: TimeDelta,
}

/// The database: where it is and how its connections are pooled.
#[derive(Debug, Clone, Copy)]
pub struct DatabaseSettings<'a> {
    /// `sqlite://path` or `postgres://user:password@host/db`.
    pub url: &'a SecretString,
    /// Most connections the pool opens; at least 1.
    pub max_connections: u32,
    /// How long a request waits for a free connection.
    pub acquire_timeout: Duration,
    /// How long a SQLite writer waits for the write lock.
    pub sqlite_busy_timeout: Duration,
    /// How often the SQLite write-ahead log is checkpointed and truncated.
    pub sqlite_checkpoint_interval: Duration,
}

/// Stripe: its webhooks and its API.
#[derive(Debug, Clone, Copy)]
pub struct StripeSettings<'a> {
    /// Webhook signing secrets; several during a rotation.
    pub webhook_secrets: &'a [SecretString],
    /// How far a webhook signature's timestamp may be from now.
    pub webhook_tolerance: Duration,
    /// Whether live-mode events are the ones applied.
    pub livemode: bool,
    /// The API secret key, when one is configured.
    pub secret_key: Option<&'a SecretString>,
    /// The API base URL.
    pub api_base: &'a str,
    /// How long one API call may take.
    pub timeout: Duration,
    /// How far back a reconcile reads invoices and refunds.
    pub sync_window: TimeDelta,
}

/// The meter: each audience's rule, and what free views may unlock.
#[derive(Debug, Clone, Copy)]
pub struct MeterSettings<'a> {
    /// The rule for registered readers.
    pub registered: MeterPolicy,
    /// The rule for anonymous devices.
    pub anonymous: MeterPolicy,
    /// The entitlements free views may unlock.
    pub meterable: &'a [Entitlement],
}

impl MeterSettings<'_> {
    /// The rule of `audience`.
    pub fn policy(&self, audience: Audience) -> MeterPolicy {
        match audience {
            Audience::Registered => self.registered,
            Audience::Anonymous => self.anonymous,
        }
    }

    /// Whether free views may unlock content that requires `entitlement`.
    pub fn is_meterable(&self, entitlement: &Entitlement) -> bool {
        self.meterable.contains(entitlement)
    }
}

/// The tokens tollgate signs.
#[derive(Debug, Clone, Copy)]
pub struct TokenSettings<'a> {
    /// The `iss` claim.
    pub issuer: &'a str,
    /// The `aud` claim.
    pub audience: &'a str,
    /// How long an entitlements token is valid.
    pub entitlement_ttl: TimeDelta,
    /// How long a one-article unlock token is valid.
    pub article_ttl: TimeDelta,
    /// The algorithm of keys tollgate generates.
    pub algorithm: SigningAlgorithm,
    /// Operator-managed private keys; empty when tollgate keeps its own in the database.
    pub key_files: &'a [PathBuf],
}

/// Bounded storage: how long records are kept once they no longer matter, and how often the
/// purge runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageSettings {
    /// What is kept how long.
    pub retention: Retention,
    /// How often the purge runs.
    pub purge_interval: Duration,
}

/// How billing state is read: subscriptions' standing and the finance reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BillingSettings {
    /// How long a `past_due` subscription still counts.
    pub past_due_grace: PastDueGrace,
    /// The zone finance reports cut days, weeks and months in.
    pub reporting_time_zone: Tz,
}

impl Settings {
    /// The database settings.
    pub fn database(&self) -> DatabaseSettings<'_> {
        DatabaseSettings {
            url: &self.database_url,
            max_connections: self.database_max_connections.max(1),
            acquire_timeout: self.database_acquire_timeout,
            sqlite_busy_timeout: self.sqlite_busy_timeout,
            sqlite_checkpoint_interval: self.sqlite_checkpoint_interval,
        }
    }

    /// The Stripe settings.
    pub fn stripe(&self) -> StripeSettings<'_> {
        StripeSettings {
            webhook_secrets: &self.stripe_webhook_secrets,
            webhook_tolerance: self.stripe_webhook_tolerance,
            livemode: self.stripe_livemode,
            secret_key: self.stripe_secret_key.as_ref(),
            api_base: &self.stripe_api_base,
            timeout: self.stripe_timeout,
            sync_window: time_delta(self.stripe_sync_window),
        }
    }

    /// The meter settings.
    pub fn meter(&self) -> MeterSettings<'_> {
        let policy = |limit, period| MeterPolicy {
            limit,
            period,
            time_zone: self.meter_time_zone,
        };
        MeterSettings {
            registered: policy(self.meter_registered_limit, self.meter_registered_period),
            anonymous: policy(self.meter_anonymous_limit, self.meter_anonymous_period),
            meterable: &self.meterable_entitlements,
        }
    }

    /// The gift settings.
    pub fn gifts(&self) -> GiftSettings<'_> {
        GiftSettings {
            allowance: MeterPolicy {
                limit: self.gift_allowance,
                period: self.gift_allowance_period,
                time_zone: self.meter_time_zone,
            },
            max_recipients: self.gift_max_recipients,
            link_ttl: time_delta(self.gift_link_ttl),
            giver_sources: &self.gift_giver_sources,
            code_validity: time_delta(self.gift_code_validity),
        }
    }

    /// The meter rule of an audience.
    pub fn meter_policy(&self, audience: Audience) -> MeterPolicy {
        self.meter().policy(audience)
    }

    /// The token settings.
    pub fn tokens(&self) -> TokenSettings<'_> {
        TokenSettings {
            issuer: &self.token_issuer,
            audience: &self.token_audience,
            entitlement_ttl: time_delta(self.entitlement_token_ttl),
            article_ttl: time_delta(self.article_token_ttl),
            algorithm: self.signing_algorithm,
            key_files: &self.signing_key_files,
        }
    }

    /// The storage purge settings.
    pub fn storage(&self) -> StorageSettings {
        let meter = self.meter();
        let retention = Retention {
            meters: [meter.registered, meter.anonymous],
            unlock_margin: time_delta(self.meter_retention_margin),
            webhook_body: time_delta(self.webhook_body_retention),
            delivered: time_delta(self.webhook_delivery_retention),
            failed_delivery: time_delta(self.webhook_failed_delivery_retention),
        };
        StorageSettings {
            retention,
            purge_interval: self.purge_interval,
        }
    }

    /// The billing settings.
    pub fn billing(&self) -> BillingSettings {
        BillingSettings {
            past_due_grace: PastDueGrace::new(time_delta(self.past_due_grace)),
            reporting_time_zone: self.reporting_time_zone,
        }
    }
}

/// A configured duration as a [`TimeDelta`], at most [`MAX_DURATION`]. [`Settings::validate`]
/// refuses anything longer, so for settings that passed it the value is exact.
fn time_delta(duration: Duration) -> TimeDelta {
    let longest = TimeDelta::seconds(MAX_DURATION.as_secs() as i64);
    TimeDelta::from_std(duration).map_or(longest, |delta| delta.min(longest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_convert_exactly_up_to_the_longest_allowed_and_are_capped_beyond() {
        assert_eq!(
            time_delta(Duration::from_millis(1_500)),
            TimeDelta::milliseconds(1_500)
        );
        assert_eq!(time_delta(Duration::ZERO), TimeDelta::zero());
        let longest = TimeDelta::from_std(MAX_DURATION).unwrap();
        assert_eq!(time_delta(MAX_DURATION), longest);
        assert_eq!(time_delta(MAX_DURATION * 2), longest);
        assert_eq!(time_delta(Duration::MAX), longest);
    }

    #[test]
    fn the_views_carry_the_flat_fields_typed() {
        let settings = Settings {
            database_max_connections: 0,
            past_due_grace: Duration::from_secs(3 * 86_400),
            stripe_sync_window: Duration::from_secs(86_400),
            article_token_ttl: Duration::from_secs(120),
            meter_registered_limit: 5,
            ..Settings::default()
        };
        assert_eq!(settings.database().max_connections, 1);
        assert_eq!(
            settings.billing().past_due_grace,
            PastDueGrace::new(TimeDelta::days(3))
        );
        assert_eq!(settings.stripe().sync_window, TimeDelta::days(1));
        assert_eq!(settings.tokens().article_ttl, TimeDelta::minutes(2));
        assert_eq!(settings.tokens().entitlement_ttl, TimeDelta::minutes(15));
        let meter = settings.meter();
        assert_eq!(meter.policy(Audience::Registered).limit, 5);
        assert_eq!(meter.policy(Audience::Anonymous).limit, 0);
        assert!(meter.is_meterable(&Entitlement::from_stored("articles".into())));
        assert!(!meter.is_meterable(&Entitlement::from_stored("reports".into())));
        let storage = settings.storage();
        assert_eq!(storage.purge_interval, Duration::from_secs(3600));
        assert_eq!(storage.retention.meters[0].limit, 5);
        assert_eq!(storage.retention.webhook_body, TimeDelta::days(30));
        assert_eq!(storage.retention.failed_delivery, TimeDelta::days(90));
    }
}
