//! What is announced: grants, the mirror's subscriptions, invoices and refunds, and readers'
//! entitlement changes (by writes and by time), each once, signed, to the endpoints whose types
//! select them.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::TimeDelta;
use serde_json::{Value, json};
use tollgate::clock::Clock;
use tollgate::domain::EndpointSecret;

use super::app_with_plans;
use crate::helpers::{TestApp, at, spawn_app};
use crate::receiver::Receiver;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../fixtures/stripe/", $name, ".json")).as_slice()
    };
}

const CHECKOUT: &[u8] = fixture!("checkout.session.completed.subscription");
const CREATED: &[u8] = fixture!("customer.subscription.created");
const DELETED: &[u8] = fixture!("customer.subscription.deleted");
const INVOICE_PAID: &[u8] = fixture!("invoice.paid");
const INVOICE_FAILED: &[u8] = fixture!("invoice.payment_failed");
const REFUNDED: &[u8] = fixture!("charge.refunded");
/// Inside the fixtures' first period (2025-11-13 to 2025-12-13).
const IN_FIRST_PERIOD: i64 = 1_763_100_000;

#[tokio::test]
async fn a_grant_is_announced_signed_and_its_entitlement_change_follows_in_sequence() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let (_, secret) = app.add_endpoint(&receiver.url, &["*"]).await;
    let grant = app.grant("ana", &["articles", "reports"]).await;

    let received = receiver
        .wait_for("grant.created and the entitlement change", |r| r.len() >= 2)
        .await;
    for delivery in &received {
        assert!(delivery.verifies_with(&secret), "{delivery:?}");
        assert!(!delivery.verifies_with(EndpointSecret::generate().expose()));
        assert!(delivery.id.starts_with("msg_"));
        assert_eq!(delivery.content_type, "application/json");
        assert!(delivery.user_agent.starts_with("tollgate-webhooks/"));
        let timestamp: i64 = delivery.timestamp.parse().unwrap();
        assert_eq!(timestamp, app.clock.now().timestamp());
        let body = delivery.json();
        assert_eq!(body["id"], delivery.id.as_str());
        assert_eq!(
            body.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["data", "id", "timestamp", "type"]
        );
    }
    let created = &receiver.of_type("grant.created")[0].json();
    assert_eq!(created["data"]["grant_id"], grant["id"]);
    assert_eq!(created["data"]["reader_id"], "ana");
    assert_eq!(
        created["data"]["entitlements"],
        json!(["articles", "reports"])
    );
    let changed = &receiver.of_type("reader.entitlements.changed")[0].json();
    assert_eq!(
        changed["data"],
        json!({ "reader_id": "ana", "before": [], "after": ["articles", "reports"],
                "cause": "grant", "sequence": 1 })
    );

    // Revoking it: one more of each, the next in the reader's sequence.
    let revoked = app
        .client
        .delete(app.url(&format!(
            "/v1/readers/ana/grants/{}",
            grant["id"].as_str().unwrap()
        )))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    receiver.wait_for("the revocation", |r| r.len() >= 4).await;
    assert_eq!(
        receiver.of_type("grant.revoked")[0].json()["data"],
        json!({ "grant_id": grant["id"], "reader_id": "ana" })
    );
    let changes: Vec<Value> = receiver
        .of_type("reader.entitlements.changed")
        .iter()
        .map(|r| r.json()["data"].clone())
        .collect();
    assert_eq!(changes.len(), 2);
    assert_eq!(
        changes[1],
        json!({ "reader_id": "ana", "before": ["articles", "reports"], "after": [],
                "cause": "grant", "sequence": 2 })
    );
    // Nothing more comes: each change is announced once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 4);
}

#[tokio::test]
async fn an_endpoint_receives_only_the_types_it_subscribed_to() {
    let app = spawn_app().await;
    let (grants, changes) = (Receiver::start().await, Receiver::start().await);
    let (grants_id, _) = app
        .add_endpoint(&grants.url, &["grant.revoked", "grant.created"])
        .await;
    app.add_endpoint(&changes.url, &["reader.entitlements.changed"])
        .await;
    app.grant("ana", &["articles"]).await;
    changes.wait_for("the change", |r| !r.is_empty()).await;
    grants.wait_for("the grant", |r| !r.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        grants
            .received()
            .iter()
            .map(|r| r.kind())
            .collect::<Vec<_>>(),
        ["grant.created"]
    );
    assert_eq!(
        changes
            .received()
            .iter()
            .map(|r| r.kind())
            .collect::<Vec<_>>(),
        ["reader.entitlements.changed"]
    );
    assert_eq!(
        app.endpoint(&grants_id).await["event_types"],
        json!(["grant.created", "grant.revoked"])
    );
}

#[tokio::test]
async fn the_mirror_announces_subscriptions_invoices_and_refunds_in_its_own_transactions() {
    let app = app_with_plans().await;
    app.clock.set(at(IN_FIRST_PERIOD));
    let receiver = Receiver::start().await;
    app.add_endpoint(&receiver.url, &["*"]).await;
    for event in [CHECKOUT, CREATED, INVOICE_PAID, INVOICE_FAILED, REFUNDED] {
        app.deliver_ok(event).await;
    }
    let kinds = |r: &[crate::receiver::Received]| -> BTreeMap<String, usize> {
        let mut kinds = BTreeMap::new();
        for delivery in r {
            *kinds.entry(delivery.kind()).or_default() += 1;
        }
        kinds
    };
    let received = receiver
        .wait_for("the mirror's events", |r| kinds(r).len() == 5)
        .await;
    assert_eq!(
        kinds(&received),
        BTreeMap::from([
            ("invoice.paid".to_owned(), 1),
            ("invoice.payment_failed".to_owned(), 1),
            ("reader.entitlements.changed".to_owned(), 1),
            ("refund.created".to_owned(), 1),
            ("subscription.created".to_owned(), 1),
        ])
    );
    let created = receiver.of_type("subscription.created")[0].json();
    assert_eq!(created["data"]["subscription_id"], "sub_1TPeerSubscr0001");
    assert_eq!(created["data"]["reader_id"], "reader-42");
    assert_eq!(created["data"]["status"], "active");
    assert_eq!(
        created["data"]["items"],
        json!([{ "price": "price_1TPeerMonthly01", "quantity": 1 }])
    );
    let paid = receiver.of_type("invoice.paid")[0].json();
    assert_eq!(paid["data"]["invoice_id"], "in_1TPeerInvoice001");
    assert_eq!(paid["data"]["reader_id"], "reader-42");
    let refund = receiver.of_type("refund.created")[0].json();
    assert_eq!(refund["data"]["charge_id"], "ch_3TPeerCharge0001");
    let changed = receiver.of_type("reader.entitlements.changed")[0].json();
    assert_eq!(
        changed["data"],
        json!({ "reader_id": "reader-42", "before": [], "after": ["articles"],
                "cause": "subscription", "sequence": 1 })
    );

    // The same events delivered again by Stripe change nothing and announce nothing.
    for event in [CHECKOUT, CREATED, INVOICE_PAID, REFUNDED] {
        app.deliver_ok(event).await;
    }
    app.deliver_ok(DELETED).await;
    receiver
        .wait_for("the cancellation and its change", |r| r.len() == 7)
        .await;
    assert_eq!(receiver.of_type("subscription.canceled").len(), 1);
    let lost = receiver.of_type("reader.entitlements.changed")[1].json();
    assert_eq!(lost["data"]["after"], json!([]));
    assert_eq!(lost["data"]["sequence"], 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 7);
}

#[tokio::test]
async fn entitlements_that_end_by_time_are_announced_once_with_cause_expiry() {
    let app = spawn_app().await;
    let receiver = changes_after_a_two_hour_grant(&app, "ana").await;
    // Nothing before the end.
    app.clock.advance(TimeDelta::minutes(119));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 1);
    app.clock.advance(TimeDelta::minutes(2));
    let received = receiver.wait_for("the expiry", |r| r.len() == 2).await;
    assert_eq!(
        received[1].json()["data"],
        json!({ "reader_id": "ana", "before": ["articles"], "after": [],
                "cause": "expiry", "sequence": 2 })
    );
    app.clock.advance(TimeDelta::days(30));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 2);
}

#[tokio::test]
async fn what_readers_held_before_announcements_began_is_recorded_silently_and_announced_from() {
    let app = spawn_app().await;
    let receiver = changes_after_a_two_hour_grant(&app, "old").await;
    // As if the grant had been made before announcements began.
    assert_eq!(app.db.restart_announcements().await, ["old"]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        receiver.received().len(),
        1,
        "the baseline is never announced"
    );
    // Its end is announced, from what the baseline recorded.
    app.clock
        .advance(TimeDelta::hours(2) + TimeDelta::seconds(2));
    let received = receiver.wait_for("the expiry", |r| r.len() == 2).await;
    assert_eq!(
        received[1].json()["data"],
        json!({ "reader_id": "old", "before": ["articles"], "after": [],
                "cause": "expiry", "sequence": 1 })
    );
}

/// A receiver of `reader.entitlements.changed` that has received the change of a grant of
/// `articles` to `reader` for two hours.
async fn changes_after_a_two_hour_grant(app: &TestApp, reader: &str) -> Receiver {
    let receiver = Receiver::start().await;
    app.add_endpoint(&receiver.url, &["reader.entitlements.changed"])
        .await;
    let expires = app.clock.now() + TimeDelta::hours(2);
    let response = app
        .admin_post(
            &format!("/v1/readers/{reader}/grants"),
            Some(json!({
                "entitlements": ["articles"],
                "expires_at": tollgate::domain::time::rfc3339(expires),
                "reason": "two hours",
            })),
        )
        .await;
    assert_eq!(response.status(), 201);
    receiver
        .wait_for("the grant's change", |r| r.len() == 1)
        .await;
    receiver
}
