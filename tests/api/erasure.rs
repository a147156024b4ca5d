//! Erasing a reader: what is theirs alone goes, the books keep a keyed pseudonym and stay
//! exact, no table (nor, on SQLite, the file's free pages) keeps their id, Stripe's later word
//! about them (a webhook, a reconcile) applies to the pseudonym, and the erasure is announced
//! once, then forgotten.

use std::sync::Arc;

use serde_json::{Value, json};
use tollgate::config::Settings;
use tollgate::domain::Purge;
use tollgate::services::storage::Purger;

use crate::helpers::{Options, TestApp, at, event, problem, spawn_app, spawn_app_with};
use crate::receiver::Receiver;
use crate::reconcile::{PRICE, ReconcileApp, active_subscription, subscriptions_only};

const CREATED: &[u8] = include_bytes!("../fixtures/stripe/customer.subscription.created.json");
const DELETED: &[u8] = include_bytes!("../fixtures/stripe/customer.subscription.deleted.json");
const PAID: &[u8] = include_bytes!("../fixtures/stripe/invoice.paid.json");

/// An id that is also an e-mail address, as many publishers' are.
const READER: &str = "ana.erasable@example.org";
const CUSTOMER: &str = "cus_TPeer0Reader01";
const PERIOD_START: i64 = 1_763_000_000;

/// A subscription event naming `READER` in its metadata.
fn subscription(fixture: &[u8], id: &str, created: i64) -> Vec<u8> {
    event(fixture, id, created, |o| {
        o["metadata"]["reader_id"] = READER.into();
    })
}

/// A reader who subscribed, paid, canceled, was given a grant (with an idempotency key) and
/// opened two metered articles.
async fn former_subscriber(app: &TestApp) {
    app.put_plan("all-access", &["price_1TPeerMonthly01"], &["articles"])
        .await;
    app.clock.set(at(PERIOD_START + 100));
    app.deliver_ok(&subscription(
        CREATED,
        "evt_erase_created",
        PERIOD_START + 3,
    ))
    .await;
    app.deliver_ok(&event(PAID, "evt_erase_paid", PERIOD_START + 4, |_| {}))
        .await;
    app.deliver_ok(&subscription(
        DELETED,
        "evt_erase_deleted",
        PERIOD_START + 50,
    ))
    .await;
    let granted = app
        .client
        .post(app.url(&format!("/v1/readers/{READER}/grants")))
        .bearer_auth(&app.admin_key)
        .header("Idempotency-Key", "grant-for-ana")
        .json(&json!({
            "entitlements": ["podcasts"], "expires_at": "2099-01-01T00:00:00Z",
            "reason": "a thank-you to a former subscriber",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status(), 201);
    for article in ["2026/budget", "2026/election"] {
        assert_eq!(app.read(READER, article).await["granted"], true);
    }
    assert_eq!(app.reader(READER).await["meter"]["used"], 2);
}

async fn erase(app: &TestApp, reader: &str) -> reqwest::Response {
    app.client
        .delete(app.url(&format!("/v1/readers/{reader}")))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap()
}

async fn erased(app: &TestApp) -> Value {
    let response = erase(app, READER).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn revenue(app: &TestApp) -> Value {
    app.get_json(
        "/v1/reports/revenue?from=2025-11-01&to=2025-12-31&interval=month",
        Some(&app.admin_key),
    )
    .await
}

/// Runs the storage purge once, as the app's clock says.
async fn purge(app: &TestApp) -> u64 {
    let report = Purger::new(
        Arc::clone(&app.store),
        Arc::new(app.clock.clone()),
        Settings::default().storage(),
    )
    .run()
    .await
    .unwrap();
    report.removed(Purge::ErasureNotices)
}

#[tokio::test]
async fn an_erased_reader_leaves_no_trace_of_their_id_and_the_books_stay_exact() {
    let app = spawn_app().await;
    app.after_start_up_purge().await;
    former_subscriber(&app).await;
    let books = revenue(&app).await;
    assert_ne!(books, json!({}));

    let erasure = erased(&app).await;

    let pseudonym = erasure["pseudonym"].as_str().unwrap().to_owned();
    assert!(
        pseudonym.starts_with("erased:") && pseudonym.len() == 50,
        "{pseudonym}"
    );
    assert!(!pseudonym.contains("ana"));
    assert_eq!(erasure["repeated"], false);
    assert_eq!(erasure["erased_at"], "2025-11-13T02:15:00Z");
    assert_eq!(erasure["stripe"]["customers"], json!([CUSTOMER]));
    assert_eq!(erasure["stripe"]["untouched"], true);
    let counts = &erasure["erased"];
    assert_eq!(counts["meter_unlocks"], 2);
    assert_eq!(counts["grants"], 1);
    assert_eq!(counts["idempotency_records"], 1);
    // The three Stripe events were applied: their bodies, which named the reader and their
    // customer (and the customer's e-mail), are gone.
    assert_eq!(counts["stripe_bodies_dropped"], 3);
    assert!(counts["texts_rewritten"].as_u64().unwrap() >= 1, "{counts}");

    // Nothing of the reader is left to see, and their meter starts afresh.
    let reader = app.reader(READER).await;
    assert_eq!(reader["subscriptions"], json!([]));
    assert_eq!(reader["grants"], json!([]));
    assert_eq!(reader["stripe_customer_id"], Value::Null);
    assert_eq!(reader["meter"]["used"], 0);
    // The books keep the subscription, under the pseudonym, and count the same.
    let kept = app.reader(&pseudonym).await;
    assert_eq!(kept["subscriptions"][0]["id"], "sub_1TPeerSubscr0001");
    assert_eq!(kept["stripe_customer_id"], CUSTOMER);
    assert_eq!(revenue(&app).await, books);
    // The grant's audit entry names the pseudonym now.
    let audit = app
        .get_json(
            "/v1/admin/audit-log?action=grant.create",
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(
        audit["items"][0]["changes"]["reader_id"],
        pseudonym.as_str()
    );

    // Only the announcement of the erasure names the reader, until the purge deletes it.
    assert_eq!(
        app.db.columns_holding(READER).await,
        ["outbound_events.body"]
    );
    assert_eq!(purge(&app).await, 1);
    assert_eq!(app.db.columns_holding(READER).await, Vec::<String>::new());
    assert_eq!(
        app.db.columns_holding("example.org").await,
        Vec::<String>::new()
    );
    // Nor do SQLite's files keep the erased bytes in their free space.
    assert_ne!(app.db.files_hold(READER).await, Some(true));
}

#[tokio::test]
async fn a_reader_with_a_subscription_in_good_standing_is_refused_and_nothing_changes() {
    let app = spawn_app().await;
    app.put_plan("all-access", &["price_1TPeerMonthly01"], &["articles"])
        .await;
    app.clock.set(at(PERIOD_START + 100));
    app.deliver_ok(&subscription(CREATED, "evt_erase_active", PERIOD_START + 3))
        .await;
    app.read(READER, "2026/budget").await;

    let refused = problem(erase(&app, READER).await, 409, "subscription_active").await;

    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("sub_1TPeerSubscr0001"),
        "{refused}"
    );
    assert_eq!(app.entitlements(READER).await, ["articles"]);
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM reader_erasures").await,
        0
    );
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM outbound_events WHERE type = 'reader.erased'")
            .await,
        0
    );
    assert!(!app.db.columns_holding(READER).await.is_empty());
}

#[tokio::test]
async fn stripe_events_after_an_erasure_apply_to_the_pseudonym_and_never_link_the_reader_again() {
    let app = spawn_app().await;
    app.after_start_up_purge().await;
    former_subscriber(&app).await;
    let pseudonym = erased(&app).await["pseudonym"].as_str().unwrap().to_owned();
    purge(&app).await;

    // Stripe's metadata still names the reader: a new subscription of their customer, and a
    // customer of their own made since.
    app.deliver_ok(&event(CREATED, "evt_erase_again", PERIOD_START + 60, |o| {
        o["id"] = "sub_1TPeerSubscr0002".into();
        o["metadata"]["reader_id"] = READER.into();
    }))
    .await;
    app.deliver_ok(&event(CREATED, "evt_erase_other", PERIOD_START + 61, |o| {
        o["id"] = "sub_1TPeerSubscr0003".into();
        o["customer"] = "cus_TPeer0Reader99".into();
        o["metadata"]["reader_id"] = READER.into();
    }))
    .await;

    let reader = app.reader(READER).await;
    assert_eq!(reader["subscriptions"], json!([]));
    assert_eq!(app.entitlements(READER).await, Vec::<String>::new());
    let kept = app.reader(&pseudonym).await;
    let mut ids: Vec<&str> = kept["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "sub_1TPeerSubscr0001",
            "sub_1TPeerSubscr0002",
            "sub_1TPeerSubscr0003"
        ]
    );
    // The events were stored with the pseudonym in the reader's place.
    assert_eq!(
        app.stored_event("evt_erase_again").await["status"],
        "applied"
    );
    assert_eq!(app.db.columns_holding(READER).await, Vec::<String>::new());
}

#[tokio::test]
async fn erasing_again_is_safe_keeps_the_first_time_and_announces_once() {
    let app = spawn_app().await;
    app.after_start_up_purge().await;
    let receiver = Receiver::start().await;
    let (endpoint, _) = app.add_endpoint(&receiver.url, &["reader.erased"]).await;
    former_subscriber(&app).await;
    let first = erased(&app).await;
    app.clock.set(at(PERIOD_START + 5000));
    app.read(READER, "2026/after").await;

    let second = erased(&app).await;

    assert_eq!(second["repeated"], true);
    assert_eq!(second["erased_at"], first["erased_at"]);
    assert_eq!(second["pseudonym"], first["pseudonym"]);
    assert_eq!(second["erased"]["meter_unlocks"], 1);
    let delivered = app
        .wait_deliveries(&endpoint, |d| {
            d.len() == 1 && d.iter().all(|d| d["status"] == "delivered")
        })
        .await;
    assert_eq!(delivered.len(), 1);
    let announced = receiver.received();
    assert_eq!(announced.len(), 1);
    assert_eq!(announced[0].kind(), "reader.erased");
    assert_eq!(
        announced[0].json()["data"],
        json!({ "reader_id": READER, "pseudonym": first["pseudonym"], "stripe_customers": [CUSTOMER] })
    );
    // Delivered, the announcement is deleted with its delivery.
    assert_eq!(purge(&app).await, 1);
    assert_eq!(app.deliveries(&endpoint).await, Vec::<Value>::new());
    assert_eq!(app.db.columns_holding(READER).await, Vec::<String>::new());
}

#[tokio::test]
async fn erasure_needs_an_admin_key_a_configured_key_and_a_reader_id() {
    let unconfigured = spawn_app_with(Options {
        configure: Some(|settings: &mut Settings| settings.erasure_key = None),
        ..Options::default()
    })
    .await;
    unconfigured.grant(READER, &["podcasts"]).await;
    problem(
        erase(&unconfigured, READER).await,
        503,
        "erasure_key_not_configured",
    )
    .await;
    assert_eq!(
        unconfigured.reader(READER).await["grants"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let app = spawn_app().await;
    app.grant(READER, &["podcasts"]).await;
    let (_, service) = app.new_key("service").await;
    let refused = app
        .client
        .delete(app.url(&format!("/v1/readers/{READER}")))
        .bearer_auth(&service)
        .send()
        .await
        .unwrap();
    problem(refused, 403, "forbidden").await;
    problem(
        erase(&app, "not%20a%20reader").await,
        422,
        "invalid_reader_id",
    )
    .await;
    let pseudonym = format!("erased:{}", "A".repeat(43));
    problem(erase(&app, &pseudonym).await, 422, "already_pseudonymous").await;
    assert_eq!(
        app.reader(READER).await["grants"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn a_reconcile_that_finds_stripe_naming_an_erased_reader_keeps_them_erased() {
    let stripe = subscriptions_only(vec![active_subscription(
        "sub_1TPeerSubscr0077",
        "cus_TPeer0Reader77",
        Some(READER),
    )])
    .start()
    .await;
    let app = stripe.app().await;
    app.put_plan("all-access", &[PRICE], &["articles"]).await;
    app.clock.set(at(PERIOD_START + 100));
    app.grant(READER, &["podcasts"]).await;
    let pseudonym = erased(&app).await["pseudonym"].as_str().unwrap().to_owned();

    app.reconcile_ok().await;

    assert_eq!(app.entitlements(READER).await, Vec::<String>::new());
    assert_eq!(app.reader(READER).await["subscriptions"], json!([]));
    let kept = app.reader(&pseudonym).await;
    assert_eq!(kept["subscriptions"][0]["id"], "sub_1TPeerSubscr0077");
    assert_eq!(kept["stripe_customer_id"], "cus_TPeer0Reader77");
    stripe.stop().await;
}
