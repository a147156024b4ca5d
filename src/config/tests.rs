//! The settings' tests: loading, precedence, redaction, validation and the documented keys.

// figment's `Jail` closures must return its own (large) error type.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;

use figment::Jail;

use super::*;
use crate::domain::Audience;

#[test]
fn with_no_configuration_the_defaults_hold() {
    Jail::expect_with(|_jail| {
        let settings = Settings::load(None, Overrides::default()).unwrap();
        assert_eq!(settings.bind, "127.0.0.1:8080");
        assert_eq!(
            settings.database_url.expose_secret(),
            "sqlite://tollgate.db"
        );
        assert_eq!(settings.body_limit, 65536);
        Ok(())
    });
}

#[test]
fn the_file_overrides_defaults_env_overrides_the_file_and_flags_override_env() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "tollgate.toml",
            r#"
            bind = "127.0.0.1:9000"
            body_limit = 1024
            shutdown_timeout = "15m"
            log_format = "json"
            "#,
        )?;
        jail.set_env("TOLLGATE_BODY_LIMIT", "2048");
        jail.set_env("DATABASE_URL", "postgres://generic/db");
        let settings =
            Settings::load(Some(Path::new("tollgate.toml")), Overrides::default()).unwrap();
        assert_eq!(settings.bind, "127.0.0.1:9000");
        assert_eq!(settings.body_limit, 2048);
        assert_eq!(settings.shutdown_timeout, Duration::from_secs(15 * 60));
        assert_eq!(settings.log_format, LogFormat::Json);
        assert_eq!(
            settings.database_url.expose_secret(),
            "postgres://generic/db"
        );

        jail.set_env("TOLLGATE_DATABASE_URL", "postgres://specific/db");
        let overrides = Overrides {
            bind: Some("127.0.0.1:0".into()),
            database_url: None,
        };
        let settings = Settings::load(Some(Path::new("tollgate.toml")), overrides).unwrap();
        assert_eq!(settings.bind, "127.0.0.1:0");
        assert_eq!(
            settings.database_url.expose_secret(),
            "postgres://specific/db"
        );
        Ok(())
    });
}

#[test]
fn durations_read_the_same_syntax_everywhere() {
    Jail::expect_with(|jail| {
        jail.set_env("TOLLGATE_READINESS_TIMEOUT", "1500ms");
        jail.set_env("TOLLGATE_SQLITE_CHECKPOINT_INTERVAL", "7d");
        let settings = Settings::load(None, Overrides::default()).unwrap();
        assert_eq!(settings.readiness_timeout, Duration::from_millis(1500));
        assert_eq!(
            settings.sqlite_checkpoint_interval,
            Duration::from_secs(7 * 86400)
        );
        Ok(())
    });
}

#[test]
fn a_typo_in_a_key_or_a_missing_file_is_an_error_not_a_silent_default() {
    Jail::expect_with(|jail| {
        jail.create_file("typo.toml", "bnid = \"0.0.0.0:1\"")?;
        assert!(Settings::load(Some(Path::new("typo.toml")), Overrides::default()).is_err());
        assert!(matches!(
            Settings::load(Some(Path::new("absent.toml")), Overrides::default()),
            Err(ConfigError::MissingFile(_))
        ));
        jail.set_env("TOLLGATE_BODY_LIMIT", "lots");
        assert!(Settings::load(None, Overrides::default()).is_err());
        Ok(())
    });
}

#[test]
fn webhook_secrets_come_as_a_comma_separated_variable_or_a_toml_array_and_are_never_shown() {
    Jail::expect_with(|jail| {
        jail.set_env(
            "TOLLGATE_STRIPE_WEBHOOK_SECRETS",
            "whsec_new-one, whsec_old-one",
        );
        let settings = Settings::load(None, Overrides::default()).unwrap();
        let secrets: Vec<&str> = settings
            .stripe_webhook_secrets
            .iter()
            .map(|s| s.expose_secret())
            .collect();
        assert_eq!(secrets, ["whsec_new-one", "whsec_old-one"]);
        let shown = format!("{}\n{:?}", settings.to_redacted_toml(), settings);
        assert!(!shown.contains("whsec_"), "{shown}");
        assert!(
            shown.contains(r#"stripe_webhook_secrets = ["REDACTED", "REDACTED"]"#),
            "{shown}"
        );

        jail.clear_env();
        jail.create_file("t.toml", r#"stripe_webhook_secrets = ["whsec_a"]"#)?;
        let settings = Settings::load(Some(Path::new("t.toml")), Overrides::default()).unwrap();
        assert_eq!(settings.stripe_webhook_secrets.len(), 1);
        assert_eq!(settings.stripe_webhook_tolerance, Duration::from_secs(300));
        assert!(!settings.stripe_livemode);
        Ok(())
    });
}

#[test]
fn the_meter_policy_and_token_settings_read_from_the_environment() {
    Jail::expect_with(|jail| {
        let settings = Settings::load(None, Overrides::default()).unwrap();
        let registered = settings.meter_policy(Audience::Registered);
        assert_eq!(
            (registered.limit, registered.period),
            (3, Period::CalendarMonth)
        );
        assert_eq!(settings.meter_policy(Audience::Anonymous).limit, 0);
        assert_eq!(settings.meter_time_zone, Tz::UTC);
        assert_eq!(settings.signing_algorithm, SigningAlgorithm::EdDsa);

        jail.set_env("TOLLGATE_METER_REGISTERED_LIMIT", "5");
        jail.set_env("TOLLGATE_METER_REGISTERED_PERIOD", "rolling_days:30");
        jail.set_env("TOLLGATE_METER_TIME_ZONE", "Europe/Berlin");
        jail.set_env("TOLLGATE_METERABLE_ENTITLEMENTS", "articles, reports");
        jail.set_env("TOLLGATE_SIGNING_ALGORITHM", "ES256");
        jail.set_env("TOLLGATE_ARTICLE_TOKEN_TTL", "2m");
        let settings = Settings::load(None, Overrides::default()).unwrap();
        let registered = settings.meter_policy(Audience::Registered);
        assert_eq!(
            (registered.limit, registered.period),
            (5, Period::RollingDays(30))
        );
        assert_eq!(registered.time_zone, chrono_tz::Europe::Berlin);
        let meterable: Vec<&str> = settings
            .meterable_entitlements
            .iter()
            .map(Entitlement::as_str)
            .collect();
        assert_eq!(meterable, ["articles", "reports"]);
        assert_eq!(settings.signing_algorithm, SigningAlgorithm::Es256);
        assert_eq!(settings.article_token_ttl, Duration::from_secs(120));

        for (key, bad) in [
            ("TOLLGATE_METER_TIME_ZONE", "Mars/Olympus"),
            ("TOLLGATE_METER_REGISTERED_PERIOD", "monthly"),
            ("TOLLGATE_METERABLE_ENTITLEMENTS", "Not Valid"),
            ("TOLLGATE_SIGNING_ALGORITHM", "HS256"),
        ] {
            jail.set_env(key, bad);
            assert!(
                Settings::load(None, Overrides::default()).is_err(),
                "{key}={bad}"
            );
            jail.clear_env();
        }
        Ok(())
    });
}

#[test]
fn printed_and_debugged_settings_never_show_the_database_password() {
    Jail::expect_with(|jail| {
        jail.set_env(
            "DATABASE_URL",
            "postgres://tollgate:s3cr3t-pw@db.example:5432/tollgate?sslpassword=k3y-pw&sslmode=require",
        );
        let settings = Settings::load(None, Overrides::default()).unwrap();
        let shown = format!("{}\n{:?}", settings.to_redacted_toml(), settings);
        assert!(!shown.contains("s3cr3t-pw"), "{shown}");
        assert!(!shown.contains("k3y-pw"), "{shown}");
        assert!(shown.contains("db.example:5432"), "{shown}");
        assert!(shown.contains("sslmode=require"), "{shown}");
        Ok(())
    });
}

#[test]
fn an_unknown_key_in_the_environment_or_the_file_is_an_error_that_names_it() {
    Jail::expect_with(|jail| {
        jail.set_env("TOLLGATE_BODY_LIMT", "10");
        let err = Settings::load(None, Overrides::default()).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid(_)), "{err}");
        assert!(err.to_string().contains("body_limt"), "{err}");
        jail.clear_env();

        jail.create_file("typo.toml", r#"past_due_grase = "3d""#)?;
        let err = Settings::load(Some(Path::new("typo.toml")), Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("past_due_grase"), "{err}");

        // The variable that names the file is no setting, and is not refused as one.
        jail.set_env("TOLLGATE_CONFIG", "elsewhere.toml");
        assert!(Settings::load(None, Overrides::default()).is_ok());
        Ok(())
    });
}

/// A value for every setting, none of them the default: as TOML, and as an environment variable.
const EVERY_KEY: &[(&str, &str, &str)] = &[
    ("bind", r#""0.0.0.0:9090""#, "0.0.0.0:9090"),
    (
        "database_url",
        r#""postgres://tollgate@db.example:5432/tollgate""#,
        "postgres://tollgate@db.example:5432/tollgate",
    ),
    ("database_max_connections", "20", "20"),
    ("database_acquire_timeout", r#""3s""#, "3s"),
    ("sqlite_busy_timeout", r#""1s""#, "1s"),
    ("sqlite_checkpoint_interval", r#""5m""#, "5m"),
    ("body_limit", "1024", "1024"),
    ("readiness_timeout", r#""1500ms""#, "1500ms"),
    ("shutdown_timeout", r#""15s""#, "15s"),
    ("workers", "4", "4"),
    ("log_format", r#""json""#, "json"),
    ("log_level", r#""info,sqlx=warn""#, "info,sqlx=warn"),
    (
        "stripe_webhook_secrets",
        r#"["whsec_a", "whsec_b"]"#,
        "whsec_a,whsec_b",
    ),
    ("stripe_webhook_tolerance", r#""2m""#, "2m"),
    ("stripe_livemode", "true", "true"),
    ("stripe_secret_key", r#""sk_live_abc""#, "sk_live_abc"),
    (
        "stripe_api_base",
        r#""https://stripe.example/""#,
        "https://stripe.example/",
    ),
    ("stripe_timeout", r#""20s""#, "20s"),
    ("stripe_retry_attempts", "2", "2"),
    ("stripe_retry_backoff", r#""250ms""#, "250ms"),
    ("stripe_retry_max_wait", r#""1m""#, "1m"),
    (
        "allowed_redirect_origins",
        r#"["https://www.example.com"]"#,
        "https://www.example.com",
    ),
    ("stripe_sync_window", r#""60d""#, "60d"),
    ("past_due_grace", r#""3d""#, "3d"),
    ("webhook_retry_interval", r#""20s""#, "20s"),
    ("webhook_retry_backoff", r#""1m""#, "1m"),
    ("webhook_retry_for", r#""1d""#, "1d"),
    ("meter_registered_limit", "5", "5"),
    (
        "meter_registered_period",
        r#""rolling_days:30""#,
        "rolling_days:30",
    ),
    ("meter_anonymous_limit", "1", "1"),
    (
        "meter_anonymous_period",
        r#""rolling_days:7""#,
        "rolling_days:7",
    ),
    ("meter_time_zone", r#""Europe/Berlin""#, "Europe/Berlin"),
    (
        "reporting_time_zone",
        r#""America/New_York""#,
        "America/New_York",
    ),
    ("rate_limit_access_per_key", "100", "100"),
    ("rate_limit_access_per_reader", "50", "50"),
    ("rate_limit_checkout_per_key", "60", "60"),
    ("rate_limit_checkout_per_reader", "5", "5"),
    (
        "meterable_entitlements",
        r#"["articles", "reports"]"#,
        "articles,reports",
    ),
    ("token_issuer", r#""news""#, "news"),
    ("token_audience", r#""sites""#, "sites"),
    ("entitlement_token_ttl", r#""10m""#, "10m"),
    ("article_token_ttl", r#""5m""#, "5m"),
    ("signing_algorithm", r#""ES256""#, "ES256"),
    (
        "signing_key_files",
        r#"["keys/current.pem"]"#,
        "keys/current.pem",
    ),
    ("api_key_cache_ttl", r#""0s""#, "0s"),
    ("entitlement_cache_ttl", r#""5s""#, "5s"),
    ("stale_if_error", r#""1m""#, "1m"),
    ("gift_allowance", "4", "4"),
    (
        "gift_allowance_period",
        r#""rolling_days:30""#,
        "rolling_days:30",
    ),
    ("gift_max_recipients", "3", "3"),
    ("gift_link_ttl", r#""7d""#, "7d"),
    (
        "gift_code_key",
        r#""AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=""#,
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ),
    (
        "erasure_key",
        r#""ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=""#,
        "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=",
    ),
    ("gift_code_validity", r#""90d""#, "90d"),
    (
        "gift_giver_sources",
        r#"["subscription", "licence"]"#,
        "subscription,licence",
    ),
    (
        "webhook_allowed_hosts",
        r#"["hooks.example.com", "127.0.0.1"]"#,
        "hooks.example.com,127.0.0.1",
    ),
    ("allow_insecure_webhook_urls", "true", "true"),
    ("allow_private_webhook_targets", "true", "true"),
    ("webhook_secret_overlap", r#""1h""#, "1h"),
    ("webhook_delivery_timeout", r#""5s""#, "5s"),
    ("webhook_delivery_backoff", r#""1s""#, "1s"),
    ("webhook_delivery_retry_for", r#""1d""#, "1d"),
    ("webhook_disable_after", r#""2d""#, "2d"),
    ("webhook_dispatch_interval", r#""200ms""#, "200ms"),
    ("purge_interval", r#""10m""#, "10m"),
    ("webhook_body_retention", r#""7d""#, "7d"),
    ("webhook_delivery_retention", r#""14d""#, "14d"),
    ("webhook_failed_delivery_retention", r#""60d""#, "60d"),
    ("meter_retention_margin", r#""2d""#, "2d"),
];

/// The TOML keys of the settings table in docs/configuration.md.
fn documented_keys() -> BTreeSet<String> {
    let docs = include_str!("../../docs/configuration.md");
    let table = docs
        .split_once("## Settings")
        .map(|(_, rest)| rest)
        .unwrap();
    table
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(key, _)| key.to_owned())
        .collect()
}

/// Each setting as it is shown (secrets redacted), by key.
fn shown(settings: &Settings) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(settings).unwrap() {
        serde_json::Value::Object(map) => map,
        other => panic!("settings shown as {other}"),
    }
}

#[test]
fn every_documented_key_is_a_setting_and_every_setting_is_documented() {
    let documented = documented_keys();
    let fields: BTreeSet<String> = shown(&Settings::default()).keys().cloned().collect();
    let listed: BTreeSet<String> = EVERY_KEY.iter().map(|(k, ..)| (*k).to_owned()).collect();
    assert_eq!(documented, fields);
    assert_eq!(listed, fields);
}

#[test]
fn every_documented_key_loads_from_the_file_and_from_the_environment() {
    Jail::expect_with(|jail| {
        let file: String = EVERY_KEY
            .iter()
            .map(|(key, toml, _)| format!("{key} = {toml}\n"))
            .collect();
        jail.create_file("every.toml", &file)?;
        let from_file = Settings::load(Some(Path::new("every.toml")), Overrides::default())
            .map_err(|e| e.to_string())?;

        for (key, _, env) in EVERY_KEY {
            jail.set_env(format!("TOLLGATE_{}", key.to_uppercase()), env);
        }
        let from_env = Settings::load(None, Overrides::default()).map_err(|e| e.to_string())?;

        let defaults = shown(&Settings::default());
        let (from_file, from_env) = (shown(&from_file), shown(&from_env));
        for key in documented_keys() {
            assert_ne!(from_file[&key], defaults[&key], "{key} kept its default");
            assert_eq!(from_env[&key], from_file[&key], "{key}");
        }
        Ok(())
    });
}

#[test]
fn the_defaults_are_valid() {
    Settings::default().validate().unwrap();
}

#[test]
fn the_validated_durations_are_every_duration_setting() {
    use humantime_serde::re::humantime::parse_duration;
    let durations: BTreeSet<String> = shown(&Settings::default())
        .into_iter()
        .filter(|(_, value)| value.as_str().is_some_and(|s| parse_duration(s).is_ok()))
        .map(|(key, _)| key)
        .collect();
    let checked: BTreeSet<String> = Settings::default()
        .durations()
        .iter()
        .map(|(key, ..)| (*key).to_owned())
        .collect();
    assert_eq!(durations, checked);
}

#[test]
fn durations_too_long_or_zero_where_zero_cannot_work_stop_the_load_naming_the_key() {
    Jail::expect_with(|jail| {
        for (key, _, why_not_zero) in Settings::default().durations() {
            let variable = format!("TOLLGATE_{}", key.to_uppercase());
            for (value, refused) in [
                ("101y", true),
                // Longer than a chrono TimeDelta can be.
                ("300000000y", true),
                ("100y", false),
                ("1ms", false),
                ("0s", why_not_zero.is_some()),
            ] {
                // SQLite's own limit is lower: see below.
                if key == "sqlite_busy_timeout" && value == "100y" {
                    continue;
                }
                jail.set_env(&variable, value);
                match Settings::load(None, Overrides::default()) {
                    Err(err) if refused => {
                        assert!(
                            matches!(err, ConfigError::Rejected(_)),
                            "{key}={value}: {err}"
                        );
                        assert!(err.to_string().contains(key), "{key}={value}: {err}");
                    }
                    Ok(_) if !refused => {}
                    other => panic!("{key}={value}: {other:?}"),
                }
            }
            jail.clear_env();
        }
        jail.set_env("TOLLGATE_SQLITE_BUSY_TIMEOUT", "24d");
        assert!(Settings::load(None, Overrides::default()).is_ok());
        jail.set_env("TOLLGATE_SQLITE_BUSY_TIMEOUT", "25d");
        let err = Settings::load(None, Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("sqlite_busy_timeout"), "{err}");
        Ok(())
    });
}

#[test]
fn settings_built_by_hand_are_checked_too_and_every_problem_is_reported() {
    let settings = Settings {
        webhook_retry_interval: Duration::ZERO,
        sqlite_checkpoint_interval: Duration::ZERO,
        past_due_grace: Duration::MAX,
        body_limit: 0,
        ..Settings::default()
    };
    let Err(ConfigError::Rejected(problems)) = settings.validate() else {
        panic!("accepted");
    };
    let keys = [
        "sqlite_checkpoint_interval",
        "past_due_grace",
        "webhook_retry_interval",
        "body_limit",
    ];
    assert_eq!(problems.len(), keys.len(), "{problems:?}");
    for (problem, key) in problems.iter().zip(keys) {
        assert!(problem.starts_with(key), "{problem}");
    }
}

#[test]
fn values_that_cannot_work_or_disagree_are_refused() {
    let refused = |settings: Settings, key: &str| {
        let err = settings.validate().unwrap_err().to_string();
        assert!(err.contains(key), "{key}: {err}");
        err
    };
    let secret = |s: &str| Some(SecretString::from(s));

    refused(
        Settings {
            database_url: "mysql://db.example/tollgate".into(),
            ..Settings::default()
        },
        "database_url",
    );
    for base in [
        "not a url",
        "ftp://stripe.example/",
        "https://stripe.example/?v=1",
    ] {
        refused(
            Settings {
                stripe_api_base: base.into(),
                ..Settings::default()
            },
            "stripe_api_base",
        );
    }
    for attempts in [0, 11] {
        refused(
            Settings {
                stripe_retry_attempts: attempts,
                ..Settings::default()
            },
            "stripe_retry_attempts",
        );
    }
    for attempts in [1, 10] {
        Settings {
            stripe_retry_attempts: attempts,
            ..Settings::default()
        }
        .validate()
        .unwrap();
    }
    for period in [Period::RollingDays(0), Period::RollingDays(367)] {
        refused(
            Settings {
                meter_anonymous_period: period,
                ..Settings::default()
            },
            "meter_anonymous_period",
        );
    }
    refused(
        Settings {
            token_audience: " ".into(),
            ..Settings::default()
        },
        "token_audience",
    );
    refused(
        Settings {
            log_level: "tollgate=loud".into(),
            ..Settings::default()
        },
        "log_level",
    );
    refused(
        Settings {
            stripe_webhook_secrets: vec!["whsec_a".into(), "".into()],
            ..Settings::default()
        },
        "stripe_webhook_secrets",
    );

    // A key of one Stripe mode while the other is applied; the message never shows the key.
    for (key, livemode) in [("sk_live_abc", false), ("rk_test_abc", true)] {
        let err = refused(
            Settings {
                stripe_secret_key: secret(key),
                stripe_livemode: livemode,
                ..Settings::default()
            },
            "stripe_livemode",
        );
        assert!(!err.contains("_abc"), "{err}");
    }
    for (key, livemode) in [
        ("sk_live_abc", true),
        ("rk_test_abc", false),
        ("sk_unknown_abc", true),
    ] {
        let settings = Settings {
            stripe_secret_key: secret(key),
            stripe_livemode: livemode,
            ..Settings::default()
        };
        assert!(settings.validate().is_ok(), "{key} {livemode}");
    }
}
