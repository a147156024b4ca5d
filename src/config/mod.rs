//! Settings: defaults, then an optional TOML file, then `TOLLGATE_*` environment variables (and
//! `DATABASE_URL`), then command-line flags. Secrets never leave this module in clear text except
//! through [`ExposeSecret`], and every rendering of the settings redacts them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

use crate::domain::{Entitlement, Origin, Period, SourceKind};

mod urls;
mod validate;
pub mod views;

pub use urls::{Backend, check_stripe_api_base};

/// The longest any duration setting may be: 100 years of 365.25 days, as `100y` reads.
pub const MAX_DURATION: Duration = Duration::from_secs(36_525 * 86_400);

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Everything tollgate can be configured with. Each field is a TOML key of the same name and a
/// `TOLLGATE_<NAME>` environment variable.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port.
    pub bind: String,
    /// `sqlite://path` or `postgres://user:password@host/db`.
    #[serde(serialize_with = "serialize_redacted_url")]
    pub database_url: SecretString,
    /// Most connections the pool opens.
    pub database_max_connections: u32,
    /// How long a request waits for a free connection before it is answered 503.
    #[serde(with = "humantime_serde")]
    pub database_acquire_timeout: Duration,
    /// How long a SQLite writer waits for the write lock before giving up.
    #[serde(with = "humantime_serde")]
    pub sqlite_busy_timeout: Duration,
    /// How often the SQLite write-ahead log is checkpointed and truncated, so it stays bounded.
    #[serde(with = "humantime_serde")]
    pub sqlite_checkpoint_interval: Duration,
    /// Largest request body accepted, in bytes; larger bodies are answered 413.
    pub body_limit: usize,
    /// How long `/readyz` waits for the database before it answers 503.
    #[serde(with = "humantime_serde")]
    pub readiness_timeout: Duration,
    /// How long in-flight requests may run after SIGTERM or SIGINT before the process exits.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// HTTP worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// `pretty` or `json`.
    pub log_format: LogFormat,
    /// A `tracing` filter, such as `info` or `info,tollgate=debug`.
    pub log_level: String,
    /// Stripe webhook signing secrets (`whsec_...`); several during a rotation. In the
    /// environment, comma-separated.
    #[serde(
        deserialize_with = "deserialize_secret_list",
        serialize_with = "serialize_redacted_list"
    )]
    pub stripe_webhook_secrets: Vec<SecretString>,
    /// How far a webhook signature's timestamp may be from now.
    #[serde(with = "humantime_serde")]
    pub stripe_webhook_tolerance: Duration,
    /// Whether Stripe's live mode is the one applied; events of the other mode are stored only.
    pub stripe_livemode: bool,
    /// Stripe API secret key (`sk_...` or a restricted `rk_...`), for reconcile, checkout and
    /// the billing portal.
    #[serde(serialize_with = "serialize_redacted_option")]
    pub stripe_secret_key: Option<SecretString>,
    /// Stripe API base URL; tests point it at a local fake.
    pub stripe_api_base: String,
    /// How long one Stripe API call may take.
    #[serde(with = "humantime_serde")]
    pub stripe_timeout: Duration,
    /// Tries in all of one Stripe API call that fails transiently (429, 5xx, no answer); 1
    /// never tries again.
    pub stripe_retry_attempts: u32,
    /// The wait before the first retry of a Stripe API call; it doubles with each retry, with
    /// jitter.
    #[serde(with = "humantime_serde")]
    pub stripe_retry_backoff: Duration,
    /// The most time waited between the tries of one Stripe API call, `Retry-After` included.
    #[serde(with = "humantime_serde")]
    pub stripe_retry_max_wait: Duration,
    /// How far back a reconcile reads invoices and refunds.
    #[serde(with = "humantime_serde")]
    pub stripe_sync_window: Duration,
    /// How long a `past_due` subscription keeps its entitlements, from the first event that
    /// showed it past due.
    #[serde(with = "humantime_serde")]
    pub past_due_grace: Duration,
    /// How often the retry task looks for events due to be applied again.
    #[serde(with = "humantime_serde")]
    pub webhook_retry_interval: Duration,
    /// Delay before the first retry of an event that failed; it doubles with each failure, up
    /// to an hour.
    #[serde(with = "humantime_serde")]
    pub webhook_retry_backoff: Duration,
    /// How long after receipt failed events are retried automatically; after that they wait
    /// for an operator's retry or a reconcile.
    #[serde(with = "humantime_serde")]
    pub webhook_retry_for: Duration,
    /// Free articles per period for registered readers.
    pub meter_registered_limit: u32,
    /// `calendar_month` or `rolling_days:N`, for registered readers.
    pub meter_registered_period: Period,
    /// Free articles per period for anonymous devices; 0 asks them to register.
    pub meter_anonymous_limit: u32,
    /// `calendar_month` or `rolling_days:N`, for anonymous devices.
    pub meter_anonymous_period: Period,
    /// The IANA time zone calendar months are counted in, such as `Europe/Berlin`.
    pub meter_time_zone: Tz,
    /// The IANA time zone finance reports cut days, weeks and months in.
    pub reporting_time_zone: Tz,
    /// `POST /v1/access` requests a minute per API key; 0 is no limit.
    pub rate_limit_access_per_key: u32,
    /// `POST /v1/access` requests a minute per reader or device; 0 is no limit.
    pub rate_limit_access_per_reader: u32,
    /// `POST /v1/checkout/sessions` requests a minute per API key; 0 is no limit.
    pub rate_limit_checkout_per_key: u32,
    /// `POST /v1/checkout/sessions` requests a minute per reader; 0 is no limit.
    pub rate_limit_checkout_per_reader: u32,
    /// Entitlements content may require that free views can unlock; anything else only
    /// entitled readers see. In the environment, comma-separated.
    #[serde(deserialize_with = "deserialize_list")]
    pub meterable_entitlements: Vec<Entitlement>,
    /// The `iss` claim of every token.
    pub token_issuer: String,
    /// The `aud` claim of every token: what sites check.
    pub token_audience: String,
    /// How long an entitlements token (`POST /v1/tokens`) is valid.
    #[serde(with = "humantime_serde")]
    pub entitlement_token_ttl: Duration,
    /// How long a one-article unlock token (`POST /v1/access`) is valid.
    #[serde(with = "humantime_serde")]
    pub article_token_ttl: Duration,
    /// `EdDSA` (Ed25519) or `ES256` (P-256), for keys tollgate generates.
    pub signing_algorithm: SigningAlgorithm,
    /// PKCS#8 PEM private keys managed by the operator: the first signs, the others stay
    /// published in the JWKS (remove them once their tokens have expired). Empty: tollgate
    /// generates keys and keeps them in the database. In the environment, comma-separated.
    #[serde(deserialize_with = "deserialize_list")]
    pub signing_key_files: Vec<PathBuf>,
    /// Origins (`https://www.example.com`) that checkout and the billing portal may send readers
    /// back to; any other redirect URL is refused. In the environment, comma-separated.
    #[serde(deserialize_with = "deserialize_list")]
    pub allowed_redirect_origins: Vec<Origin>,
    /// How long an instance keeps a reader's entitlements in memory; a change another instance
    /// made (a webhook, a revoked grant) reaches this one within this time. `0s` turns it off.
    #[serde(with = "humantime_serde")]
    pub entitlement_cache_ttl: Duration,
    /// While the database is unreachable, how long after a reader's entitlements were last
    /// loaded an instance still answers access and token requests from them (marked stale);
    /// `0s` answers 503 at once instead.
    #[serde(with = "humantime_serde")]
    pub stale_if_error: Duration,
    /// Gift links a reader may make per period.
    pub gift_allowance: u32,
    /// `calendar_month` or `rolling_days:N`: the period gift links are counted in.
    pub gift_allowance_period: Period,
    /// How many different people one gift link opens its article for.
    pub gift_max_recipients: u32,
    /// How long a gift link opens its article.
    #[serde(with = "humantime_serde")]
    pub gift_link_ttl: Duration,
    /// The key that seals gift subscription codes until they are redeemed: base64 of 32 random
    /// bytes (AES-256-GCM). Without it, gift purchases wait (and are retried) and reveals
    /// answer 503.
    #[serde(serialize_with = "serialize_redacted_option")]
    pub gift_code_key: Option<SecretString>,
    /// The key of erased readers' pseudonyms (HMAC-SHA256): base64 of 32 random bytes. Never
    /// to be changed once a reader was erased: later Stripe events about them are recognised
    /// by it. Without it, erasures answer 503.
    #[serde(serialize_with = "serialize_redacted_option")]
    pub erasure_key: Option<SecretString>,
    /// How long a gift subscription's code can be redeemed after its purchase.
    #[serde(with = "humantime_serde")]
    pub gift_code_validity: Duration,
    /// Which sources of `articles` let a reader give articles: `subscription`, `grant`,
    /// `licence`, `seat`, `gift`. In the environment, comma-separated.
    #[serde(deserialize_with = "deserialize_list")]
    pub gift_giver_sources: Vec<SourceKind>,
    /// How long an instance trusts an API key it found active without reading it again; a
    /// revocation through this instance applies at once, one made elsewhere within this time.
    /// `0s` reads the key on every request.
    #[serde(with = "humantime_serde")]
    pub api_key_cache_ttl: Duration,
    /// When not empty, the only hosts webhook endpoints may name (exact host names or IP
    /// addresses). In the environment, comma-separated.
    #[serde(deserialize_with = "deserialize_list")]
    pub webhook_allowed_hosts: Vec<String>,
    /// Whether webhook endpoints may use `http`, for development.
    pub allow_insecure_webhook_urls: bool,
    /// Whether webhook endpoints may point at addresses that are not public (loopback, private,
    /// link-local ...), for development and tests.
    pub allow_private_webhook_targets: bool,
    /// How long an endpoint's previous secret keeps signing after a rotation.
    #[serde(with = "humantime_serde")]
    pub webhook_secret_overlap: Duration,
    /// How long one delivery attempt may take, answer included.
    #[serde(with = "humantime_serde")]
    pub webhook_delivery_timeout: Duration,
    /// The wait after a delivery's first failed attempt; it doubles with each attempt, up to an
    /// hour.
    #[serde(with = "humantime_serde")]
    pub webhook_delivery_backoff: Duration,
    /// How long a delivery is retried before it is given up as failed.
    #[serde(with = "humantime_serde")]
    pub webhook_delivery_retry_for: Duration,
    /// An endpoint whose every delivery failed for this long is disabled.
    #[serde(with = "humantime_serde")]
    pub webhook_disable_after: Duration,
    /// How often the dispatcher and the entitlement watcher look for due work.
    #[serde(with = "humantime_serde")]
    pub webhook_dispatch_interval: Duration,
    /// How often the storage purge deletes what no longer matters.
    #[serde(with = "humantime_serde")]
    pub purge_interval: Duration,
    /// How long after receipt the raw body of an applied or skipped Stripe event is kept; the
    /// event itself stays.
    #[serde(with = "humantime_serde")]
    pub webhook_body_retention: Duration,
    /// How long after its last attempt a delivered outbound delivery is kept.
    #[serde(with = "humantime_serde")]
    pub webhook_delivery_retention: Duration,
    /// How long after its last attempt a failed outbound delivery is kept.
    #[serde(with = "humantime_serde")]
    pub webhook_failed_delivery_retention: Duration,
    /// How long meter unlocks are kept beyond the start of the longest meter window.
    #[serde(with = "humantime_serde")]
    pub meter_retention_margin: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            database_url: SecretString::from("sqlite://tollgate.db"),
            database_max_connections: 10,
            database_acquire_timeout: Duration::from_secs(5),
            sqlite_busy_timeout: Duration::from_secs(5),
            sqlite_checkpoint_interval: Duration::from_secs(60),
            body_limit: 64 * 1024,
            readiness_timeout: Duration::from_secs(2),
            shutdown_timeout: Duration::from_secs(30),
            workers: 0,
            log_format: LogFormat::Pretty,
            log_level: "info".into(),
            stripe_webhook_secrets: Vec::new(),
            stripe_webhook_tolerance: Duration::from_secs(300),
            stripe_livemode: false,
            stripe_secret_key: None,
            stripe_api_base: "https://api.stripe.com/".into(),
            stripe_timeout: Duration::from_secs(10),
            stripe_retry_attempts: 4,
            stripe_retry_backoff: Duration::from_millis(500),
            stripe_retry_max_wait: Duration::from_secs(30),
            stripe_sync_window: Duration::from_secs(35 * 24 * 3600),
            past_due_grace: Duration::from_secs(7 * 24 * 3600),
            webhook_retry_interval: Duration::from_secs(10),
            webhook_retry_backoff: Duration::from_secs(30),
            webhook_retry_for: Duration::from_secs(3 * 24 * 3600),
            meter_registered_limit: 3,
            meter_registered_period: Period::CalendarMonth,
            meter_anonymous_limit: 0,
            meter_anonymous_period: Period::CalendarMonth,
            meter_time_zone: Tz::UTC,
            reporting_time_zone: Tz::UTC,
            rate_limit_access_per_key: 0,
            rate_limit_access_per_reader: 600,
            rate_limit_checkout_per_key: 600,
            rate_limit_checkout_per_reader: 10,
            meterable_entitlements: vec![Entitlement::from_stored("articles".into())],
            allowed_redirect_origins: Vec::new(),
            token_issuer: "tollgate".into(),
            token_audience: "paywall".into(),
            entitlement_token_ttl: Duration::from_secs(15 * 60),
            article_token_ttl: Duration::from_secs(15 * 60),
            signing_algorithm: SigningAlgorithm::EdDsa,
            signing_key_files: Vec::new(),
            entitlement_cache_ttl: Duration::from_secs(2),
            stale_if_error: Duration::from_secs(5 * 60),
            api_key_cache_ttl: Duration::from_secs(2),
            gift_allowance: 10,
            gift_allowance_period: Period::CalendarMonth,
            gift_max_recipients: 10,
            gift_link_ttl: Duration::from_secs(30 * 24 * 3600),
            gift_code_key: None,
            erasure_key: None,
            gift_code_validity: Duration::from_secs(365 * 24 * 3600),
            gift_giver_sources: vec![SourceKind::Subscription, SourceKind::Grant],
            webhook_allowed_hosts: Vec::new(),
            allow_insecure_webhook_urls: false,
            allow_private_webhook_targets: false,
            webhook_secret_overlap: Duration::from_secs(24 * 3600),
            webhook_delivery_timeout: Duration::from_secs(10),
            webhook_delivery_backoff: Duration::from_secs(10),
            webhook_delivery_retry_for: Duration::from_secs(3 * 24 * 3600),
            webhook_disable_after: Duration::from_secs(5 * 24 * 3600),
            webhook_dispatch_interval: Duration::from_secs(1),
            purge_interval: Duration::from_secs(3600),
            webhook_body_retention: Duration::from_secs(30 * 24 * 3600),
            webhook_delivery_retention: Duration::from_secs(30 * 24 * 3600),
            webhook_failed_delivery_retention: Duration::from_secs(90 * 24 * 3600),
            meter_retention_margin: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// The signature algorithms tokens can be signed with: both asymmetric, both fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum SigningAlgorithm {
    /// Ed25519 signatures (RFC 8037): the default.
    #[serde(rename = "EdDSA")]
    EdDsa,
    /// ECDSA on P-256 with SHA-256, for verifiers without Ed25519.
    #[serde(rename = "ES256")]
    Es256,
}

/// Values given on the command line; they win over every other source.
#[derive(Debug, Default)]
pub struct Overrides {
    /// `--bind`.
    pub bind: Option<String>,
    /// `--database-url`.
    pub database_url: Option<String>,
}

/// Why the settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The named configuration file does not exist.
    #[error("configuration file {0} does not exist")]
    MissingFile(String),
    /// A source holds a value of the wrong shape, or an unknown key.
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    /// Values of the right shape that tollgate cannot run with, each naming its key.
    #[error("invalid configuration: {}", .0.join("; "))]
    Rejected(Vec<String>),
}

impl Settings {
    /// Loads the settings from every source, most specific last, and validates them.
    pub fn load(config_file: Option<&Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = config_file {
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path.display().to_string()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment
            .merge(Env::raw().only(&["DATABASE_URL"]))
            .merge(Env::prefixed("TOLLGATE_").ignore(&["CONFIG"]));
        if let Some(bind) = overrides.bind {
            figment = figment.merge(("bind", bind));
        }
        if let Some(url) = overrides.database_url {
            figment = figment.merge(("database_url", url));
        }
        let settings: Self = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))?;
        settings.validate()?;
        Ok(settings)
    }

    /// The settings as TOML, secrets redacted: what `tollgate config` prints and start-up logs.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# settings could not be rendered: {e}\n"))
    }
}

/// Shows a database URL with any password replaced, so it can be printed and logged.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("REDACTED"));
            }
            let pairs: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(k, v)| {
                    let secret =
                        k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("sslpassword");
                    (
                        k.into_owned(),
                        if secret {
                            "REDACTED".to_owned()
                        } else {
                            v.into_owned()
                        },
                    )
                })
                .collect();
            if !pairs.is_empty() {
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string()
        }
        Err(_) => "[REDACTED: not a URL]".to_owned(),
    }
}

/// Reads a list from a TOML array or from one comma-separated string (environment).
fn deserialize_list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::IntoDeserializer;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        Joined(String),
        List(Vec<T>),
    }
    match OneOrMany::<T>::deserialize(deserializer)? {
        OneOrMany::List(list) => Ok(list),
        OneOrMany::Joined(joined) => joined
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                T::deserialize(item.to_owned().into_deserializer())
                    .map_err(|e: serde::de::value::Error| serde::de::Error::custom(e))
            })
            .collect(),
    }
}

/// Reads a list of secrets from a TOML array or from one comma-separated string (environment).
fn deserialize_secret_list<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<SecretString>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Joined(String),
        List(Vec<String>),
    }
    let items = match OneOrMany::deserialize(deserializer)? {
        OneOrMany::Joined(joined) => joined.split(',').map(str::to_owned).collect(),
        OneOrMany::List(list) => list,
    };
    Ok(items
        .into_iter()
        .map(|item| item.trim().to_owned())
        .filter(|item| !item.is_empty())
        .map(SecretString::from)
        .collect())
}

fn serialize_redacted_option<S: Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_str("REDACTED"),
        None => serializer.serialize_none(),
    }
}

fn serialize_redacted_list<S: Serializer>(
    secrets: &[SecretString],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(secrets.iter().map(|_| "REDACTED"))
}

fn serialize_redacted_url<S: Serializer>(
    url: &SecretString,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redact_url(url.expose_secret()))
}

#[cfg(test)]
mod tests;
