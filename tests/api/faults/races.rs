//! Events about one object arriving at the same moment. Applying an event reads what is stored
//! to decide what to write, so two events applied side by side must still come to what they
//! come to one after the other (on PostgreSQL this needs the mirror's lock; SQLite has one
//! writer at a time anyway).

use futures_util::future::join_all;
use serde_json::{Value, json};

use super::rows;
use std::time::Duration;

use crate::helpers::{Options, TestApp, at, event, spawn_app_with};

const CREATED: &[u8] = include_bytes!("../../fixtures/stripe/customer.subscription.created.json");
const RENEWAL: &[u8] =
    include_bytes!("../../fixtures/stripe/customer.subscription.updated.renewal.json");
const DELETED: &[u8] = include_bytes!("../../fixtures/stripe/customer.subscription.deleted.json");
const INVOICE_PAYMENT: &[u8] = include_bytes!("../../fixtures/stripe/invoice_payment.paid.json");
const REFUNDED: &[u8] = include_bytes!("../../fixtures/stripe/charge.refunded.unlinked.json");

/// Subscriptions or refunds raced at once.
const RACES: usize = 40;

/// An app whose SQLite writers wait long enough for eighty events at once, and whose retry
/// task looks for due events often.
async fn patient_app() -> TestApp {
    spawn_app_with(Options {
        retry_interval: Some(Duration::from_millis(50)),
        configure: Some(|settings| settings.sqlite_busy_timeout = Duration::from_secs(10)),
        ..Options::default()
    })
    .await
}

/// Delivers every body at once, each again until it is acknowledged (as Stripe does), then
/// waits until every stored event is applied: one whose application failed under the load (a
/// pool timeout, say) is the retry task's, and the clock moves past its backoff.
async fn deliver_together(app: &TestApp, bodies: &[Vec<u8>]) {
    join_all(bodies.iter().map(|body| async move {
        loop {
            let status = app.deliver(body).await.status();
            if status == 200 {
                return;
            }
            assert_eq!(
                status, 503,
                "only an unavailable database may refuse an event"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }))
    .await;
    app.clock.advance(chrono::TimeDelta::hours(1));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let unapplied: Vec<(i64,)> = rows(
            app.db.url(),
            "SELECT count(*) FROM webhook_events WHERE status <> 'applied'",
        )
        .await;
        if unapplied[0].0 == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{unapplied:?} not applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_cancellation_applied_beside_newer_active_snapshots_still_ends_the_subscription() {
    let app = patient_app().await;
    app.put_plan("all-access", &["price_1TPeerMonthly01"], &["articles"])
        .await;
    app.clock.set(at(1_763_100_000));
    let mut bodies = Vec::new();
    for n in 0..RACES {
        let edit = |o: &mut Value| {
            o["id"] = format!("sub_race_{n}").into();
            o["customer"] = format!("cus_race_{n}").into();
            o["metadata"] = json!({ "reader_id": format!("reader-race-{n}") });
        };
        // The deletion is older than the renewal, as in the shared fixtures: canceled is final.
        bodies.push(event(
            CREATED,
            &format!("evt_race_{n}_a"),
            1_763_000_003,
            edit,
        ));
        bodies.push(event(
            DELETED,
            &format!("evt_race_{n}_c"),
            1_765_592_000,
            edit,
        ));
        bodies.push(event(
            RENEWAL,
            &format!("evt_race_{n}_b"),
            1_765_592_010,
            edit,
        ));
    }
    deliver_together(&app, &bodies).await;
    for n in 0..RACES {
        let reader = app.reader(&format!("reader-race-{n}")).await;
        assert_eq!(reader["subscriptions"][0]["status"], "canceled", "race {n}");
        assert_eq!(reader["entitlements"], json!([]), "race {n}");
    }
}

#[tokio::test]
async fn a_refund_applied_beside_the_payment_that_names_its_invoice_is_attributed() {
    let app = patient_app().await;
    let mut bodies = Vec::new();
    for n in 0..RACES {
        bodies.push(event(
            INVOICE_PAYMENT,
            &format!("evt_pay_{n}"),
            1_763_000_004,
            |o| {
                o["id"] = format!("inpay_race_{n}").into();
                o["invoice"] = format!("in_race_{n}").into();
                o["payment"]["payment_intent"] = format!("pi_race_{n}").into();
            },
        ));
        bodies.push(event(
            REFUNDED,
            &format!("evt_refund_{n}"),
            1_763_600_001,
            |o| {
                o["id"] = format!("ch_race_{n}").into();
                o["payment_intent"] = format!("pi_race_{n}").into();
                let refund = &mut o["refunds"]["data"][0];
                refund["id"] = format!("re_race_{n}").into();
                refund["charge"] = format!("ch_race_{n}").into();
                refund["payment_intent"] = format!("pi_race_{n}").into();
            },
        ));
    }
    deliver_together(&app, &bodies).await;
    let refunds: Vec<(String, Option<String>)> = rows(
        app.db.url(),
        "SELECT id, invoice_id FROM refunds WHERE id LIKE 're_race_%' ORDER BY id",
    )
    .await;
    assert_eq!(refunds.len(), RACES);
    for (refund, invoice) in refunds {
        let n = refund.trim_start_matches("re_race_");
        assert_eq!(invoice, Some(format!("in_race_{n}")), "{refund}");
    }
}
