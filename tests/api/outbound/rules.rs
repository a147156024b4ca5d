//! What endpoints may be: URL rules at creation and addresses checked at delivery (no private
//! networks, no redirects), idempotent creation, and problems for bad input.

use std::time::Duration;

use serde_json::{Value, json};
use tollgate::domain::{EndpointSecret, OutboundEventId, TargetRules};
use tollgate::services::outbound::{Answer, Sender};

use crate::helpers::{Options, problem, spawn_app, spawn_app_with};
use crate::receiver::Receiver;

#[tokio::test]
async fn endpoint_urls_off_the_rules_are_refused_and_change_nothing() {
    let app = spawn_app_with(Options {
        configure: Some(|s| {
            s.webhook_allowed_hosts = Vec::new();
            s.allow_insecure_webhook_urls = false;
            s.allow_private_webhook_targets = false;
        }),
        ..Options::default()
    })
    .await;
    for url in [
        "http://hooks.example.com/tollgate",
        "https://127.0.0.1/hooks",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hooks",
        "https://[::ffff:127.0.0.1]/hooks",
        "https://[64:ff9b::a9fe:a9fe]/hooks",
        "https://100.64.1.1/hooks",
        "https://10.0.0.8/hooks",
        "https://[fd00::1]/hooks",
        "https://0.0.0.0/hooks",
        "https://2130706433/hooks",
        "https://localhost/hooks",
        "https://user:pass@hooks.example.com/",
        "ftp://hooks.example.com/",
        "not a url",
    ] {
        let response = app
            .endpoint_request(json!({ "url": url, "event_types": ["*"] }))
            .await;
        problem(response, 422, "invalid_webhook_url").await;
    }
    let unknown = app
        .endpoint_request(json!({ "url": "https://8.8.8.8/", "event_types": ["charge.succeeded"] }))
        .await;
    problem(unknown, 422, "unknown_event_type").await;
    let listed = app
        .get_json("/v1/webhook-endpoints", Some(&app.admin_key))
        .await;
    assert_eq!(listed["items"], json!([]));

    // Only the allowed hosts, when some are set.
    let allowed = spawn_app().await;
    let refused = allowed
        .endpoint_request(json!({ "url": "https://8.8.8.8/hooks", "event_types": ["*"] }))
        .await;
    problem(refused, 422, "invalid_webhook_url").await;
}

/// Sends `{}` signed with `secret` to `url` as the dispatcher would, `http` allowed, private
/// addresses only when `private`.
async fn send(url: &str, private: bool, secret: &EndpointSecret) -> Answer {
    let rules = TargetRules {
        allowed_hosts: Vec::new(),
        allow_insecure: true,
        allow_private: private,
    };
    Sender::new(rules, Duration::from_secs(2))
        .unwrap()
        .send(
            url,
            &OutboundEventId::generate(),
            1_800_000_000,
            "{}",
            std::slice::from_ref(secret),
        )
        .await
}

#[tokio::test]
async fn at_delivery_names_are_resolved_to_checked_addresses_only() {
    // A name that resolves to loopback is refused by the resolver the connection uses, so the
    // receiver never hears of it; with private targets allowed, the same request goes through.
    let receiver = Receiver::start().await;
    let url = format!("http://localhost:{}/hooks", receiver.port);
    let secret = EndpointSecret::generate();
    for refused in [
        send(&url, false, &secret).await,
        send(&receiver.url, false, &secret).await,
    ] {
        let Answer::Error(error) = refused else {
            panic!("{refused:?}")
        };
        assert!(error.contains("not a public address"), "{error}");
    }
    assert!(receiver.received().is_empty());

    assert_eq!(send(&url, true, &secret).await, Answer::Status(200));
    assert_eq!(receiver.received().len(), 1);
    assert!(receiver.received()[0].verifies_with(secret.expose()));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let receiver = Receiver::start().await;
    receiver.answer(&[307]);
    // Followed, the redirect would be a second request to the same receiver.
    receiver.redirect_to(&format!("http://127.0.0.1:{}/moved", receiver.port));
    let answer = send(&receiver.url, true, &EndpointSecret::generate()).await;
    assert_eq!(answer, Answer::Status(307));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.started(), 1);
    assert_eq!(receiver.received()[0].answered, 307);
}

#[tokio::test]
async fn a_replayed_creation_shows_no_secret_and_makes_no_second_endpoint() {
    let app = spawn_app().await;
    let send = || {
        app.client
            .post(app.url("/v1/webhook-endpoints"))
            .bearer_auth(&app.admin_key)
            .header("Idempotency-Key", "endpoint-1")
            .json(&json!({ "url": "http://127.0.0.1:9/hooks", "event_types": ["*"] }))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert!(first["secret"].as_str().unwrap().starts_with("whsec_"));
    let again = send().await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["secret"], Value::Null);
    assert_eq!(again["id"], first["id"]);
    let listed = app
        .get_json("/v1/webhook-endpoints", Some(&app.admin_key))
        .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert!(
        app.stored_idempotent_bodies()
            .await
            .iter()
            .all(|body| !body.contains(first["secret"].as_str().unwrap()))
    );
}

#[tokio::test]
async fn webhook_endpoint_routes_answer_problems_for_bad_input() {
    let app = spawn_app().await;
    let missing = app
        .endpoint_request(json!({ "url": "http://127.0.0.1:9/" }))
        .await;
    problem(missing, 422, "invalid_body").await;
    let repeated = app
        .endpoint_request(json!({ "url": "http://127.0.0.1:9/", "event_types": ["grant.created", "grant.created"] }))
        .await;
    problem(repeated, 422, "invalid_body").await;
    let long = app
        .endpoint_request(json!({ "url": "http://127.0.0.1:9/", "event_types": ["*"], "description": "x".repeat(501) }))
        .await;
    problem(long, 422, "invalid_body").await;
    let unknown = app
        .get(
            "/v1/webhook-endpoints/we_0123456789abcdef0123456789abcdef",
            Some(&app.admin_key),
        )
        .await;
    problem(unknown, 404, "not_found").await;
    let malformed = app
        .get("/v1/webhook-endpoints/nope", Some(&app.admin_key))
        .await;
    problem(malformed, 404, "not_found").await;
    let (_, service) = app.new_key("service").await;
    let forbidden = app.get("/v1/webhook-endpoints", Some(&service)).await;
    problem(forbidden, 403, "forbidden").await;
    let bad_cursor = app
        .get("/v1/webhook-endpoints?after=xyz", Some(&app.admin_key))
        .await;
    problem(bad_cursor, 422, "invalid_cursor").await;
    let listed = app
        .get_json("/v1/webhook-endpoints", Some(&app.admin_key))
        .await;
    assert_eq!(listed["items"], json!([]));
}
