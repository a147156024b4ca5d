//! The Stripe mirror: every verified event applied exactly once, in any order, nothing lost.

use std::time::Duration;

use serde_json::{Value, json};
use tollgate::clock::Clock;
use tollgate::domain::{Change, ReaderId};

use crate::helpers::{Options, TestApp, at, event, spawn_app, spawn_app_with};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../fixtures/stripe/", $name, ".json")).as_slice()
    };
}

const CHECKOUT: &[u8] = fixture!("checkout.session.completed.subscription");
const CREATED: &[u8] = fixture!("customer.subscription.created");
const UPDATED_CANCEL: &[u8] = fixture!("customer.subscription.updated.cancel_at_period_end");
const UPDATED_RENEWAL: &[u8] = fixture!("customer.subscription.updated.renewal");
const UPDATED_PAST_DUE: &[u8] = fixture!("customer.subscription.updated.past_due");
const DELETED: &[u8] = fixture!("customer.subscription.deleted");
const TRIAL_WILL_END: &[u8] = fixture!("customer.subscription.trial_will_end");
const PAUSED: &[u8] = fixture!("customer.subscription.paused");
const RESUMED: &[u8] = fixture!("customer.subscription.resumed");
const FOREIGN: &[u8] = fixture!("customer.subscription.created.foreign_price");
const INVOICE_PAID: &[u8] = fixture!("invoice.paid");
const INVOICE_FAILED: &[u8] = fixture!("invoice.payment_failed");
const INVOICE_PAYMENT: &[u8] = fixture!("invoice_payment.paid");
const REFUNDED: &[u8] = fixture!("charge.refunded");
const REFUNDED_UNLINKED: &[u8] = fixture!("charge.refunded.unlinked");
const CUSTOMER_DELETED: &[u8] = fixture!("customer.deleted");
const BASIL_LIVE: &[u8] = fixture!("invoice.payment_succeeded.basil-2025-08-27.livemode.redacted");
const LEGACY_CHECKOUT: &[u8] = fixture!("legacy.checkout.session.completed");
const LEGACY_CREATED: &[u8] = fixture!("legacy.customer.subscription.created");
const LEGACY_PAST_DUE: &[u8] = fixture!("legacy.customer.subscription.updated.past_due");
const LEGACY_INVOICE: &[u8] = fixture!("legacy.invoice.paid");
const LEGACY_REFUNDED: &[u8] = fixture!("legacy.charge.refunded");
const LEGACY_CUSTOMER_DELETED: &[u8] = fixture!("legacy.customer.deleted");

/// Inside the shared story's first period (2025-11-13 to 2025-12-13).
const IN_FIRST_PERIOD: i64 = 1_763_100_000;

fn id_of(body: &[u8]) -> String {
    let event: Value = serde_json::from_slice(body).unwrap();
    event["id"].as_str().unwrap().to_owned()
}

async fn app_with_plans() -> TestApp {
    let app = spawn_app().await;
    app.put_plan("all-access", &["price_1TPeerMonthly01"], &["articles"])
        .await;
    app.put_plan(
        "legacy-yearly",
        &["plan_LegacyYearly07"],
        &["articles", "reports"],
    )
    .await;
    app
}

#[tokio::test]
async fn every_shared_fixture_event_is_applied_and_terminal_states_win() {
    let app = app_with_plans().await;
    app.clock.set(at(IN_FIRST_PERIOD));
    let applied = [
        CHECKOUT,
        CREATED,
        UPDATED_CANCEL,
        UPDATED_RENEWAL,
        UPDATED_PAST_DUE,
        DELETED,
        TRIAL_WILL_END,
        PAUSED,
        RESUMED,
        INVOICE_PAID,
        INVOICE_FAILED,
        INVOICE_PAYMENT,
        REFUNDED,
        REFUNDED_UNLINKED,
    ];
    for body in applied {
        app.deliver_ok(body).await;
    }
    app.deliver_ok(BASIL_LIVE).await;
    for body in applied {
        let stored = app.stored_event(&id_of(body)).await;
        assert_eq!(stored["status"], "applied", "{stored}");
        assert_eq!(stored["attempts"], 1, "{stored}");
    }
    assert_eq!(
        app.stored_event(&id_of(BASIL_LIVE)).await["status"],
        "skipped"
    );

    // The deletion's timestamp is older than two updates, yet canceled is final.
    let reader = app.reader("reader-42").await;
    assert_eq!(reader["stripe_customer_id"], "cus_TPeer0Reader01");
    let subscription = &reader["subscriptions"][0];
    assert_eq!(subscription["id"], "sub_1TPeerSubscr0001");
    assert_eq!(subscription["status"], "canceled");
    assert_eq!(subscription["good_standing"], false);
    assert_eq!(reader["entitlements"], json!([]));
    // A paid invoice stays paid when a failed payment reuses its id with a later time.
    let failed = app.stored_event(&id_of(INVOICE_FAILED)).await;
    assert!(
        failed["note"]
            .as_str()
            .unwrap()
            .contains("in_1TPeerInvoice001"),
        "{failed}"
    );
    // The clover refund carries no invoice until the invoice payment links its payment intent.
    let refund = app.stored_event(&id_of(REFUNDED_UNLINKED)).await;
    assert!(
        refund["note"]
            .as_str()
            .unwrap()
            .contains("re_3TPeerUnlinked01"),
        "{refund}"
    );

    app.deliver_ok(CUSTOMER_DELETED).await;
    assert_eq!(
        app.reader("reader-42").await["stripe_customer_id"],
        Value::Null
    );
}

#[tokio::test]
async fn pre_basil_shapes_are_read_and_a_subscription_waits_for_its_checkout() {
    let app = app_with_plans().await;
    app.clock.set(at(1_722_470_400)); // 2024-08-01, inside the legacy yearly period

    // No reader id in its metadata and no link yet: kept, waiting for the customer's reader.
    app.deliver_ok(LEGACY_CREATED).await;
    let waiting = app.stored_event(&id_of(LEGACY_CREATED)).await;
    assert_eq!(waiting["status"], "failed");
    assert_eq!(waiting["waiting_for_customer"], "cus_Legacy0Reader07");
    assert!(
        waiting["last_error"]
            .as_str()
            .unwrap()
            .contains("cus_Legacy0Reader07")
    );
    assert!(app.entitlements("reader-7").await.is_empty());

    // The checkout links the customer, and the waiting subscription is applied at once.
    app.deliver_ok(LEGACY_CHECKOUT).await;
    assert_eq!(
        app.stored_event(&id_of(LEGACY_CREATED)).await["status"],
        "applied"
    );
    let reader = app.reader("reader-7").await;
    assert_eq!(app.entitlements("reader-7").await, ["articles", "reports"]);
    let subscription = &reader["subscriptions"][0];
    assert_eq!(subscription["status"], "active");
    // Before basil the period sits on the subscription, not on its items.
    assert_eq!(subscription["current_period_end"], "2025-07-15T12:00:00Z");
    assert_eq!(subscription["items"][0]["price"], "plan_LegacyYearly07");
    assert_eq!(subscription["items"][0]["plan_id"], "legacy-yearly");

    for body in [
        LEGACY_INVOICE,
        LEGACY_REFUNDED,
        LEGACY_PAST_DUE,
        LEGACY_CUSTOMER_DELETED,
    ] {
        app.deliver_ok(body).await;
        let stored = app.stored_event(&id_of(body)).await;
        assert_eq!(stored["status"], "applied", "{stored}");
    }
    // The older charge names its invoice, so its refund is attributed.
    assert_eq!(
        app.stored_event(&id_of(LEGACY_REFUNDED)).await["note"],
        Value::Null
    );
    let reader = app.reader("reader-7").await;
    assert_eq!(reader["subscriptions"][0]["status"], "past_due");
    assert_eq!(
        reader["subscriptions"][0]["past_due_since"],
        "2025-07-15T12:00:20Z"
    );
    assert_eq!(reader["stripe_customer_id"], Value::Null);
}

#[tokio::test]
async fn a_redelivered_event_is_applied_once_also_when_twenty_copies_arrive_together() {
    let app = app_with_plans().await;
    app.clock.set(at(IN_FIRST_PERIOD));
    app.deliver_ok(CREATED).await;
    let response = app.deliver(CREATED).await;
    assert_eq!(response.json::<Value>().await.unwrap()["duplicate"], true);
    assert_eq!(app.stored_event(&id_of(CREATED)).await["attempts"], 1);

    let copies = (0..20).map(|_| app.deliver(CHECKOUT));
    let mut new = 0;
    for response in futures_util::future::join_all(copies).await {
        assert_eq!(response.status(), 200);
        if response.json::<Value>().await.unwrap()["duplicate"] == false {
            new += 1;
        }
    }
    assert_eq!(new, 1);
    let stored = app.stored_event(&id_of(CHECKOUT)).await;
    assert_eq!(stored["status"], "applied");
    assert_eq!(
        stored["attempts"], 1,
        "applied by exactly one of the copies"
    );
    assert_eq!(app.entitlements("reader-42").await, ["articles"]);
}

/// All orders of three events.
fn permutations() -> Vec<[usize; 3]> {
    vec![
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ]
}

#[tokio::test]
async fn every_order_of_created_updated_and_deleted_ends_in_the_newest_state() {
    let app = app_with_plans().await;
    app.clock.set(at(IN_FIRST_PERIOD));
    for (n, order) in permutations().into_iter().enumerate() {
        let sub = format!("sub_Perm{n}");
        let customer = format!("cus_Perm{n}");
        let reader = format!("reader-perm-{n}");
        let edit = |status: &'static str, cancel: bool, period_end: i64| {
            let (sub, customer, reader) = (sub.clone(), customer.clone(), reader.clone());
            move |o: &mut Value| {
                o["id"] = sub.into();
                o["customer"] = customer.into();
                o["metadata"] = json!({ "reader_id": reader });
                o["status"] = status.into();
                o["cancel_at_period_end"] = cancel.into();
                o["cancel_at"] = Value::Null;
                o["items"]["data"][0]["current_period_end"] = period_end.into();
            }
        };
        // Consistent times: created, then renewed with a later period, then set to cancel.
        let events = [
            event(
                CREATED,
                &format!("evt_p{n}_a"),
                1_763_000_003,
                edit("active", false, 1_765_592_000),
            ),
            event(
                UPDATED_RENEWAL,
                &format!("evt_p{n}_b"),
                1_763_050_000,
                edit("active", false, 1_768_184_000),
            ),
            event(
                UPDATED_CANCEL,
                &format!("evt_p{n}_c"),
                1_763_086_400,
                edit("active", true, 1_768_184_000),
            ),
        ];
        for i in order {
            app.deliver_ok(&events[i]).await;
        }
        let subscription = app.reader(&reader).await["subscriptions"][0].clone();
        assert_eq!(
            subscription["cancel_at_period_end"], true,
            "order {order:?}"
        );
        assert_eq!(
            subscription["current_period_end"], "2026-01-12T02:13:20Z",
            "order {order:?}"
        );
        assert_eq!(
            subscription["lapses_at"], "2026-01-12T02:13:20Z",
            "order {order:?}"
        );
    }
    // The shared fixtures: a deletion whose time is older than the updates still ends it.
    for order in permutations() {
        let events = [CREATED, UPDATED_CANCEL, DELETED];
        let app = app_with_plans().await;
        app.clock.set(at(IN_FIRST_PERIOD));
        for i in order {
            app.deliver_ok(events[i]).await;
        }
        let reader = app.reader("reader-42").await;
        assert_eq!(
            reader["subscriptions"][0]["status"], "canceled",
            "order {order:?}"
        );
        assert_eq!(reader["entitlements"], json!([]), "order {order:?}");
    }
}

#[tokio::test]
async fn a_price_in_no_plan_grants_nothing_and_operators_can_see_it() {
    let app = app_with_plans().await;
    app.clock.set(at(IN_FIRST_PERIOD));
    app.deliver_ok(FOREIGN).await;
    let stored = app.stored_event(&id_of(FOREIGN)).await;
    assert_eq!(stored["status"], "applied");
    assert!(
        stored["note"]
            .as_str()
            .unwrap()
            .contains("price_1ForeignProduct1"),
        "{stored}"
    );
    let reader = app.reader("reader-42").await;
    assert_eq!(reader["entitlements"], json!([]));
    assert_eq!(
        reader["subscriptions"][0]["items"][0]["plan_id"],
        Value::Null
    );
    assert_eq!(reader["subscriptions"][0]["good_standing"], true);
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains(
            r#"tollgate_foreign_subscription_items_total{price="price_1ForeignProduct1"} 1"#
        ),
        "{metrics}"
    );
}

/// Links the story's customer to reader-42 in the store directly, as a reconcile would, so
/// that no event waiting for the link is woken: only a retry can apply it.
async fn link_behind_the_mirrors_back(app: &TestApp) {
    app.store
        .apply_sync(
            &[Change::LinkCustomer {
                customer_id: "cus_TPeer0Reader01".into(),
                reader_id: ReaderId::parse("reader-42").unwrap(),
            }],
            app.clock.now(),
        )
        .await
        .unwrap();
}

fn without_reader(o: &mut Value) {
    o["metadata"] = json!({});
}

#[tokio::test]
async fn the_retry_task_applies_a_failed_event_once_it_can_be_applied() {
    let app = spawn_app_with(Options {
        retry_interval: Some(Duration::from_millis(50)),
        ..Options::default()
    })
    .await;
    app.put_plan("all-access", &["price_1TPeerMonthly01"], &["articles"])
        .await;
    app.clock.set(at(IN_FIRST_PERIOD));
    // The clock went back: a retry round that read the time before it did (when the event
    // would be long due) ends before the event is stored.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let body = event(CREATED, "evt_retry_1", 1_763_000_003, without_reader);
    app.deliver_ok(&body).await;
    let failed = app.stored_event("evt_retry_1").await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["next_attempt_at"], "2025-11-14T06:00:30Z");

    link_behind_the_mirrors_back(&app).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.stored_event("evt_retry_1").await["status"],
        "failed",
        "not due yet"
    );

    app.clock.advance(chrono::TimeDelta::seconds(31));
    let mut status = Value::Null;
    for _ in 0..100 {
        status = app.stored_event("evt_retry_1").await["status"].clone();
        if status == "applied" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "applied");
    assert_eq!(app.stored_event("evt_retry_1").await["attempts"], 2);
    assert_eq!(app.entitlements("reader-42").await, ["articles"]);
}

#[tokio::test]
async fn an_operator_retries_a_failed_event_and_applied_or_skipped_ones_are_conflicts() {
    let app = app_with_plans().await;
    app.clock.set(at(IN_FIRST_PERIOD));
    let retry = |id: &'static str| {
        app.client
            .post(app.url(&format!("/v1/admin/webhook-events/{id}/retry")))
            .bearer_auth(&app.admin_key)
            .send()
    };
    app.deliver_ok(&event(
        CREATED,
        "evt_manual_1",
        1_763_000_003,
        without_reader,
    ))
    .await;
    let response = retry("evt_manual_1").await.unwrap();
    assert_eq!(response.status(), 200);
    let still = response.json::<Value>().await.unwrap();
    assert_eq!(still["status"], "failed");
    assert_eq!(still["attempts"], 2);

    link_behind_the_mirrors_back(&app).await;
    let response = retry("evt_manual_1").await.unwrap();
    assert_eq!(response.status(), 200);
    let applied = response.json::<Value>().await.unwrap();
    assert_eq!(applied["status"], "applied");
    assert_eq!(applied["waiting_for_customer"], Value::Null);
    assert_eq!(app.entitlements("reader-42").await, ["articles"]);

    crate::helpers::problem(
        retry("evt_manual_1").await.unwrap(),
        409,
        "event_already_applied",
    )
    .await;
    crate::helpers::problem(retry("evt_none").await.unwrap(), 404, "not_found").await;
    let mut unknown: Value = serde_json::from_slice(CREATED).unwrap();
    unknown["id"] = "evt_unknown_type".into();
    unknown["type"] = "customer.tax_id.created".into();
    app.deliver_ok(&serde_json::to_vec(&unknown).unwrap()).await;
    assert_eq!(
        app.stored_event("evt_unknown_type").await["status"],
        "skipped"
    );
    crate::helpers::problem(
        retry("evt_unknown_type").await.unwrap(),
        409,
        "event_not_applicable",
    )
    .await;
}

#[tokio::test]
async fn while_the_database_is_away_an_event_gets_503_and_its_redelivery_is_applied() {
    let app = spawn_app_with(Options {
        via_proxy: true,
        ..Options::default()
    })
    .await;
    app.put_plan("all-access", &["price_1TPeerMonthly01"], &["articles"])
        .await;
    app.clock.set(at(IN_FIRST_PERIOD));
    let outage = app.database_outage().await;
    assert_eq!(app.deliver(CREATED).await.status(), 503);
    outage.end().await;
    app.deliver_ok(CREATED).await;
    assert_eq!(app.stored_event(&id_of(CREATED)).await["status"], "applied");
    assert_eq!(app.entitlements("reader-42").await, ["articles"]);
}
