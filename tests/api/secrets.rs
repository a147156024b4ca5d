//! No secret in a log line, an error body or a metric. Every test is checked when its app is
//! dropped (see `log_capture`); these tests show that the check finds what it looks for, and walk
//! the paths that handle secrets.

use std::time::Duration;

use chrono::Utc;
use secrecy::ExposeSecret;
use serde_json::json;
use sha2::{Digest, Sha256};
use tollgate::clock::Clock;
use tollgate::config::{Settings, SigningAlgorithm};
use tollgate::domain::{ApiKeyId, ApiKeySecret};
use tollgate::tokens::SigningKey;

use crate::helpers::{Options, WEBHOOK_SECRET, problem, spawn_app_with};
use crate::log_capture::{self, redact, secrets_in, signing_key_material};

/// A generated key's private key as PKCS#8 PEM.
fn private_pem(algorithm: SigningAlgorithm) -> String {
    let key = SigningKey::generate(algorithm).unwrap();
    let stored = key.to_stored(Utc::now()).unwrap();
    stored.private_key_pem.expose_secret().to_owned()
}

/// The PEM as a JSON log line would carry it: on one line, newlines escaped.
fn as_json_string(pem: &str) -> String {
    serde_json::to_string(pem).unwrap()
}

#[test]
fn every_kind_of_secret_is_flagged_and_redacted_from_the_message() {
    let key = ApiKeySecret::generate();
    let ed25519 = private_pem(SigningAlgorithm::EdDsa);
    let p256 = private_pem(SigningAlgorithm::Es256);
    let body = |pem: &str| pem.lines().nth(1).unwrap().to_owned();
    let secrets = [
        key.expose().to_owned(),
        key.expose().to_uppercase(),
        // Most of a key is a leak too.
        key.expose()[..40].to_owned(),
        WEBHOOK_SECRET.to_owned(),
        "whsec_someone_else".to_owned(),
        "whsec_new".to_owned(),
        "sk_test_fake_checkout_0123456789".to_owned(),
        "sk_live_51QxYzA2eZvKYlo2C".to_owned(),
        "rk_test_51QxYzA2eZvKYlo2C".to_owned(),
        "-----BEGIN PRIVATE KEY-----".to_owned(),
        "-----END EC PRIVATE KEY-----".to_owned(),
        as_json_string(&ed25519),
        as_json_string(&p256),
        body(&ed25519),
        body(&p256),
    ];
    for secret in secrets {
        let line = format!(
            r#"{{"level":"INFO","message":"x","value":"Bearer {secret}","request_id":"0193"}}"#
        );
        let found = secrets_in(&line, &[]);
        assert!(!found.is_empty(), "not flagged: {line}");
        let redacted = redact(&line, &found);
        assert!(!redacted.contains(&secret), "{redacted}");
        for part in secret.split(['\n', '"']).flat_map(|part| part.split("\\n")) {
            if part.len() >= 8 && !part.starts_with("-----") {
                assert!(!redacted.contains(part), "{part} shows in {redacted}");
            }
        }
        assert!(
            redacted.contains("[SECRET]") && redacted.contains("request_id"),
            "{redacted}"
        );
    }
}

#[test]
fn a_key_hint_a_key_id_a_key_hash_and_masked_values_are_not_flagged() {
    let key = ApiKeySecret::generate();
    let hash = hex::encode(Sha256::digest(key.expose()));
    let id = ApiKeyId::generate(Utc::now());
    for line in [
        format!(
            r#"{{"id":"{id}","hint":"{}","name":"frontend"}}"#,
            key.hint()
        ),
        format!("key ...{} (tgk_...{})", key.hint(), key.hint()),
        format!("key_id={id} key_hash={hash}"),
        "Invalid API Key provided: sk_test_****".to_owned(),
        "Invalid API Key provided: [redacted]".to_owned(),
        "reader_id=risk_test_reader stripe_webhook_secrets=[REDACTED] (whsec_...)".to_owned(),
        "not an unencrypted PKCS#8 Ed25519 or P-256 private key in PEM".to_owned(),
        r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#
            .to_owned(),
    ] {
        assert_eq!(secrets_in(&line, &[]), [], "flagged: {line}");
    }
}

#[test]
fn a_signing_keys_private_scalar_is_found_in_any_form_it_could_be_printed_in() {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    // Where the 32 secret bytes sit in the PKCS#8 documents tollgate writes.
    for (algorithm, at) in [(SigningAlgorithm::EdDsa, 16), (SigningAlgorithm::Es256, 36)] {
        let pem = private_pem(algorithm);
        let der = pem::parse(&pem).unwrap().into_contents();
        let scalar = &der[at..at + 32];
        let material = signing_key_material(&pem);
        for form in [
            hex::encode(scalar),
            STANDARD.encode(scalar),
            URL_SAFE_NO_PAD.encode(scalar),
            format!("{scalar:?}"),
            format!("d={}", URL_SAFE_NO_PAD.encode(scalar)),
        ] {
            assert!(
                !secrets_in(&form, &material).is_empty(),
                "{algorithm:?}: {form} not flagged"
            );
        }
    }
}

#[tokio::test]
async fn the_check_fails_on_a_logged_signing_key_or_a_secret_in_a_metric() {
    let pem = private_pem(SigningAlgorithm::EdDsa);
    let scalar = &pem::parse(&pem).unwrap().into_contents()[16..48];
    let window = log_capture::open_window([]);
    // No shape gives this away: only the key itself can tell, as the check reads it from the
    // database of the app under test.
    tracing::info!(leaked = %hex::encode(scalar), "a careless line");
    let failure = window.check(std::slice::from_ref(&pem), &[]).unwrap_err();
    assert!(failure.contains("private signing key"), "{failure}");
    assert!(failure.contains("a careless line"), "{failure}");
    assert!(!failure.contains(&hex::encode(scalar)), "{failure}");

    let key = ApiKeySecret::generate();
    let metrics = format!("tollgate_requests_total{{key=\"{}\"}} 1\n", key.expose());
    let window = log_capture::open_window([]);
    let failure = window.check(&[], &[metrics]).unwrap_err();
    assert!(failure.contains("a secret in a metric"), "{failure}");
    assert!(!failure.contains(&key.expose()[4..]), "{failure}");
}

/// Reached with a Stripe key, at an address where nothing listens.
const STRIPE_KEY: &str = "sk_test_secrets_unreachable_0123456789";

fn news_example(settings: &mut Settings) {
    settings.allowed_redirect_origins = vec!["https://news.example".parse().unwrap()];
    settings.stripe_timeout = Duration::from_secs(2);
}

#[tokio::test]
async fn paths_that_handle_secrets_leave_none_in_a_log_line_an_error_body_or_a_metric() {
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stripe_base = format!("http://{}/", nowhere.local_addr().unwrap());
    drop(nowhere);
    let app = spawn_app_with(Options {
        stripe_api: Some((stripe_base, STRIPE_KEY)),
        webhook_secrets: Some(vec![WEBHOOK_SECRET, "whsec_rotated_out"]),
        configure: Some(news_example),
        ..Options::default()
    })
    .await;
    app.put_plan("all-access", &["price_1Secrets0001"], &["articles"])
        .await;

    // API keys: made, used, used where their role may not go, revoked, mangled, unknown.
    let (service_id, service) = app.new_key("service").await;
    let (_, finance) = app.new_key("finance").await;
    let response = app
        .client
        .post(app.url("/v1/access"))
        .bearer_auth(&service)
        .json(&json!({ "reader_id": "reader-1", "article_id": "a-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    problem(app.get("/v1/keys", Some(&finance)).await, 403, "forbidden").await;
    assert_eq!(app.revoke(&app.admin_key, &service_id).await.status(), 204);
    let unknown = ApiKeySecret::generate();
    for key in [
        service.as_str(),
        &service[..service.len() - 1],
        &format!("{service}0"),
        &service.to_uppercase(),
        unknown.expose(),
    ] {
        problem(
            app.get("/v1/plans", Some(key)).await,
            401,
            "invalid_api_key",
        )
        .await;
    }

    // Webhooks: signed with a secret tollgate does not know, signed too long ago, with the
    // secret itself for a signature, not signed.
    let event = br#"{"id":"evt_1Secrets","object":"event","type":"ping","created":1}"#;
    let now = app.clock.now().timestamp();
    let unsigned = |signature: Option<String>| {
        let mut request = app.client.post(app.url("/v1/webhooks/stripe"));
        if let Some(signature) = signature {
            request = request.header("stripe-signature", signature);
        }
        request.body(event.to_vec()).send()
    };
    for response in [
        app.deliver_signed(event, "whsec_someone_else", now).await,
        app.deliver_signed(event, WEBHOOK_SECRET, now - 3600).await,
        unsigned(Some(format!("t={now},v1={WEBHOOK_SECRET}")))
            .await
            .unwrap(),
        unsigned(None).await.unwrap(),
    ] {
        assert_eq!(response.status(), 400);
    }

    // Checkout, with a Stripe key, against a Stripe that cannot be reached.
    let response = app
        .client
        .post(app.url("/v1/checkout/sessions"))
        .bearer_auth(&app.admin_key)
        .json(&json!({
            "reader_id": "reader-1",
            "plan_id": "all-access",
            "success_url": "https://news.example/welcome",
            "cancel_url": "https://news.example/article/42",
        }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_server_error(), "{}", response.status());

    // Signing keys: rotated twice, then used.
    for _ in 0..2 {
        app.rotate_signing_key().await;
    }
    let response = app
        .client
        .post(app.url("/v1/tokens"))
        .bearer_auth(&app.admin_key)
        .json(&json!({ "reader_id": "reader-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert_eq!(log_capture::leaks_in(&metrics), Vec::<String>::new());

    // The capture saw all of it, error bodies included; dropping the app checks it.
    let logs = app.captured_logs();
    for seen in [
        r#""code":"invalid_api_key""#,
        r#""code":"forbidden""#,
        "answered with a problem",
        "API key created",
        r#""request_id":"#,
    ] {
        assert!(logs.contains(seen), "no {seen} in the captured log");
    }
    let lines = logs.lines().count();
    assert!(lines > 20, "only {lines} lines captured");
}
