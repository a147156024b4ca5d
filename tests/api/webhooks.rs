use serde_json::{Value, json};
use tollgate::clock::Clock;

use crate::helpers::{Options, TestApp, WEBHOOK_SECRET, problem, spawn_app, spawn_app_with};

const CHECKOUT: &[u8] =
    include_bytes!("../fixtures/stripe/checkout.session.completed.subscription.json");
const SUBSCRIPTION: &[u8] = include_bytes!("../fixtures/stripe/customer.subscription.created.json");
const INVOICE_PAID: &[u8] = include_bytes!("../fixtures/stripe/invoice.paid.json");
const BASIL_LIVE: &[u8] = include_bytes!(
    "../fixtures/stripe/invoice.payment_succeeded.basil-2025-08-27.livemode.redacted.json"
);

impl TestApp {
    async fn events(&self, query: &str) -> Value {
        self.get_json(
            &format!("/v1/admin/webhook-events{query}"),
            Some(&self.admin_key),
        )
        .await
    }

    async fn event_ids(&self) -> Vec<String> {
        self.events("?limit=500").await["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

#[tokio::test]
async fn a_verified_event_is_stored_before_it_is_acknowledged() {
    let app = spawn_app().await;
    let response = app.deliver(SUBSCRIPTION).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "received": true, "duplicate": false })
    );

    let listed = app.events("").await;
    let event = &listed["items"][0];
    assert_eq!(event["id"], "evt_1TPeerEvent0002");
    assert_eq!(event["type"], "customer.subscription.created");
    assert_eq!(event["created"], "2025-11-13T02:13:23Z");
    assert_eq!(event["api_version"], "2025-09-30.clover");
    assert_eq!(event["livemode"], false);
    // Its metadata names the reader, so it is applied within the same delivery.
    assert_eq!(event["status"], "applied");
    assert_eq!(event["attempts"], 1);
    assert_eq!(listed["next_cursor"], Value::Null);
}

#[tokio::test]
async fn a_redelivered_event_is_acknowledged_and_stored_once() {
    let app = spawn_app().await;
    assert_eq!(app.deliver(INVOICE_PAID).await.status(), 200);
    app.clock.advance(chrono::Duration::hours(1));
    let again = app.deliver(INVOICE_PAID).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["duplicate"], true);
    assert_eq!(app.event_ids().await, ["evt_1TPeerEvent0008"]);
}

#[tokio::test]
async fn twenty_concurrent_copies_of_one_event_are_stored_once() {
    let app = spawn_app().await;
    let deliveries =
        (0..20).map(|_| async { app.deliver(CHECKOUT).await.json::<Value>().await.unwrap() });
    let answers = futures_util::future::join_all(deliveries).await;
    let first: Vec<_> = answers.iter().filter(|a| a["duplicate"] == false).collect();
    assert_eq!(first.len(), 1, "{answers:?}");
    assert!(answers.iter().all(|a| a["received"] == true));
    assert_eq!(app.event_ids().await, ["evt_1TPeerEvent0001"]);
}

#[tokio::test]
async fn a_missing_or_bad_signature_is_a_400_problem_and_stores_nothing() {
    let app = spawn_app().await;
    let now = app.clock.now().timestamp();
    let unsigned = app
        .client
        .post(app.url("/v1/webhooks/stripe"))
        .header("content-type", "application/json")
        .body(SUBSCRIPTION.to_vec())
        .send()
        .await
        .unwrap();
    problem(unsigned, 400, "invalid_signature").await;
    problem(
        app.deliver_signed(SUBSCRIPTION, "whsec_someone_else", now)
            .await,
        400,
        "invalid_signature",
    )
    .await;
    // A signature over another body does not carry over.
    let signature = tollgate::stripe::signature::sign(INVOICE_PAID, WEBHOOK_SECRET, now);
    let swapped = app
        .client
        .post(app.url("/v1/webhooks/stripe"))
        .header("stripe-signature", signature)
        .body(SUBSCRIPTION.to_vec())
        .send()
        .await
        .unwrap();
    problem(swapped, 400, "invalid_signature").await;
    assert!(app.event_ids().await.is_empty());
}

#[tokio::test]
async fn a_signature_outside_the_tolerance_is_refused() {
    let app = spawn_app().await;
    let now = app.clock.now().timestamp();
    problem(
        app.deliver_signed(SUBSCRIPTION, WEBHOOK_SECRET, now - 301)
            .await,
        400,
        "invalid_signature",
    )
    .await;
    problem(
        app.deliver_signed(SUBSCRIPTION, WEBHOOK_SECRET, now + 301)
            .await,
        400,
        "invalid_signature",
    )
    .await;
    assert!(app.event_ids().await.is_empty());
    assert_eq!(
        app.deliver_signed(SUBSCRIPTION, WEBHOOK_SECRET, now - 299)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn during_a_secret_rotation_either_secret_verifies() {
    let app = spawn_app_with(Options {
        webhook_secrets: Some(vec!["whsec_new", "whsec_old"]),
        ..Options::default()
    })
    .await;
    let now = app.clock.now().timestamp();
    assert_eq!(
        app.deliver_signed(SUBSCRIPTION, "whsec_old", now)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.deliver_signed(INVOICE_PAID, "whsec_new", now)
            .await
            .status(),
        200
    );
    problem(
        app.deliver_signed(CHECKOUT, WEBHOOK_SECRET, now).await,
        400,
        "invalid_signature",
    )
    .await;
    assert_eq!(app.event_ids().await.len(), 2);
}

#[tokio::test]
async fn unknown_event_types_are_stored_and_acknowledged() {
    let app = spawn_app().await;
    let body = json!({ "id": "evt_unknown_1", "object": "event", "type": "radar.early_fraud_warning.created",
                       "created": 1763000000, "data": { "object": null } });
    let response = app.deliver(body.to_string().as_bytes()).await;
    assert_eq!(response.status(), 200);
    let listed = app.events("?type=radar.early_fraud_warning.created").await;
    assert_eq!(listed["items"][0]["id"], "evt_unknown_1");
    assert_eq!(listed["items"][0]["api_version"], Value::Null);
    assert_eq!(listed["items"][0]["status"], "skipped");
    assert!(
        listed["items"][0]["note"]
            .as_str()
            .unwrap()
            .contains("does not apply radar.early_fraud_warning.created"),
        "{listed}"
    );
}

#[tokio::test]
async fn an_event_of_the_other_stripe_mode_is_stored_as_skipped() {
    let app = spawn_app().await;
    assert_eq!(app.deliver(BASIL_LIVE).await.status(), 200);
    let event = &app.events("").await["items"][0];
    assert_eq!(event["id"], "evt_1SVC8JHOQNg4XnOM2WgGoBj8");
    assert_eq!(event["livemode"], true);
    assert_eq!(event["api_version"], "2025-08-27.basil");
    assert_eq!(event["status"], "skipped");
    assert!(
        event["note"].as_str().unwrap().contains("live-mode"),
        "{event}"
    );
}

#[tokio::test]
async fn a_signed_body_that_is_not_an_event_is_a_400_problem() {
    let app = spawn_app().await;
    for body in [&b"not json"[..], br#"{"object":"event"}"#, br#"[1,2]"#] {
        problem(app.deliver(body).await, 400, "invalid_event").await;
    }
    assert!(app.event_ids().await.is_empty());
}

#[tokio::test]
async fn the_webhook_takes_bodies_up_to_one_mebibyte() {
    let app = spawn_app().await;
    // Larger than the API's 64 KiB limit, as an invoice with many lines can be.
    let mut big: Value = serde_json::from_slice(INVOICE_PAID).unwrap();
    big["data"]["object"]["description"] = json!("x".repeat(200 * 1024));
    assert_eq!(
        app.deliver(&serde_json::to_vec(&big).unwrap())
            .await
            .status(),
        200
    );

    big["id"] = json!("evt_too_big");
    big["data"]["object"]["description"] = json!("x".repeat(1024 * 1024));
    problem(
        app.deliver(&serde_json::to_vec(&big).unwrap()).await,
        413,
        "payload_too_large",
    )
    .await;
    assert_eq!(app.event_ids().await, ["evt_1TPeerEvent0008"]);
}

#[tokio::test]
async fn without_a_configured_secret_deliveries_are_refused_with_503_so_stripe_retries() {
    let app = spawn_app_with(Options {
        webhook_secrets: Some(vec![]),
        ..Options::default()
    })
    .await;
    let response = app.deliver(SUBSCRIPTION).await;
    assert!(response.headers().contains_key("retry-after"));
    problem(response, 503, "webhooks_not_configured").await;
    assert!(app.event_ids().await.is_empty());
}

#[tokio::test]
async fn while_the_database_is_away_deliveries_get_503_and_a_redelivery_afterwards_is_stored() {
    let app = spawn_app_with(Options {
        via_proxy: true,
        ..Options::default()
    })
    .await;
    let outage = app.database_outage().await;
    problem(app.deliver(SUBSCRIPTION).await, 503, "database_unavailable").await;
    outage.end().await;
    let mut stored = false;
    for _ in 0..50 {
        if app.deliver(SUBSCRIPTION).await.status() == 200 {
            stored = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(stored, "the redelivery was never stored");
    assert_eq!(app.event_ids().await, ["evt_1TPeerEvent0002"]);
}

#[tokio::test]
async fn events_are_listed_newest_first_filtered_and_a_page_at_a_time() {
    let app = spawn_app().await;
    for body in [CHECKOUT, SUBSCRIPTION, INVOICE_PAID, BASIL_LIVE] {
        assert_eq!(app.deliver(body).await.status(), 200);
    }
    let first = app.events("?limit=3").await;
    let ids: Vec<_> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(
        ids,
        [
            json!("evt_1SVC8JHOQNg4XnOM2WgGoBj8"),
            json!("evt_1TPeerEvent0008"),
            json!("evt_1TPeerEvent0002")
        ]
    );
    let cursor = first["next_cursor"].as_i64().unwrap();
    let second = app.events(&format!("?limit=3&before={cursor}")).await;
    assert_eq!(second["items"][0]["id"], "evt_1TPeerEvent0001");
    assert_eq!(second["next_cursor"], Value::Null);

    assert_eq!(
        app.events("?status=skipped").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.events("?status=applied").await["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        app.events("?type=invoice.paid").await["items"][0]["id"],
        "evt_1TPeerEvent0008"
    );
    // The type filter's limit counts characters, as the contract does, not UTF-8 bytes.
    let long_type = "é".repeat(255);
    let response = app
        .get(
            &format!("/v1/admin/webhook-events?type={long_type}"),
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(response.status(), 200);
    let too_long = format!("?type={}", "é".repeat(256));
    for query in [
        "?status=done",
        "?limit=0",
        "?before=0",
        "?type=",
        too_long.as_str(),
    ] {
        let response = app
            .get(
                &format!("/v1/admin/webhook-events{query}"),
                Some(&app.admin_key),
            )
            .await;
        assert_eq!(response.status(), 422, "{query}");
    }
}
