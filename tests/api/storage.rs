//! Bounded storage: the purge deletes meter unlocks no window counts (the meter decides as
//! before), drops the bodies of old applied and skipped Stripe events (a redelivery is still a
//! duplicate), deletes old delivered and failed deliveries, expired idempotency keys and
//! sessions (live ones stay), in batches however many rows there are.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use tollgate::clock::Clock;
use tollgate::config::Settings;
use tollgate::domain::{Period, Purge};
use tollgate::services::storage::{PurgeReport, Purger};

use crate::helpers::{Options, TestApp, event, problem, spawn_app, spawn_app_with, test_epoch};
use crate::receiver::Receiver;

const CHECKOUT: &[u8] =
    include_bytes!("../fixtures/stripe/checkout.session.completed.subscription.json");
const CREATED: &[u8] = include_bytes!("../fixtures/stripe/customer.subscription.created.json");

fn instant(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// Runs the storage purge once over the app's database, as of its clock, with the storage
/// settings `configure` gives (the app's own must agree), in batches of `batch_rows`.
async fn purge_with(
    app: &TestApp,
    configure: fn(&mut Settings),
    batch_rows: Option<u32>,
) -> PurgeReport {
    let mut settings = Settings::default();
    configure(&mut settings);
    let mut purger = Purger::new(
        Arc::clone(&app.store),
        Arc::new(app.clock.clone()),
        settings.storage(),
    );
    if let Some(rows) = batch_rows {
        purger = purger.with_batch_rows(rows);
    }
    purger.run().await.unwrap()
}

async fn purge(app: &TestApp) -> PurgeReport {
    purge_with(app, |_| {}, None).await
}

impl TestApp {
    async fn unlocks(&self) -> i64 {
        self.db.count("SELECT COUNT(*) FROM meter_unlocks").await
    }

    /// `POST path` with the admin key and an `Idempotency-Key`.
    async fn post_under_key(&self, path: &str, key: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.admin_key)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

/// The gauge of the last purge that finished, in Unix seconds (0 before the first).
const LAST_PURGE: &str = "tollgate_storage_purge_last_success_timestamp_seconds";

impl TestApp {
    /// Waits (up to 10 s) until the purge the server runs at start has finished, and answers
    /// `/metrics` as it was then. A test that keeps rows a purge may remove (an erasure's
    /// announcement, a delivered delivery) calls it first, so that only the purges it runs
    /// itself remove anything, however late a busy machine runs the server's.
    pub async fn after_start_up_purge(&self) -> String {
        let mut metrics = String::new();
        for _ in 0..200 {
            metrics = self.get("/metrics", None).await.text().await.unwrap();
            let finished = metrics.lines().any(|line| {
                line.strip_prefix(LAST_PURGE)
                    .is_some_and(|value| value.trim() != "0")
            });
            if finished {
                return metrics;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the purge at start did not finish within 10 s:\n{metrics}");
    }
}

#[tokio::test]
async fn unlocks_no_calendar_month_counts_are_deleted_and_the_meter_decides_as_before() {
    let app = spawn_app().await;
    // The meter counts November; the purge keeps a week before it.
    app.clock.set(instant("2026-09-10T10:00:00Z"));
    for article in ["sep-1", "sep-2", "sep-3"] {
        assert_eq!(app.read("r-1", article).await["reason"], "metered");
    }
    app.clock.set(instant("2026-10-20T10:00:00Z"));
    app.read("r-1", "oct-early").await;
    app.clock.set(instant("2026-10-28T10:00:00Z"));
    app.read("r-1", "oct-late-1").await;
    app.read("r-1", "oct-late-2").await;
    app.clock.set(test_epoch());
    app.read("r-1", "nov-1").await;
    app.read("r-1", "nov-2").await;
    let before = app.reader("r-1").await["meter"].clone();
    assert_eq!(app.unlocks().await, 8);

    let report = purge(&app).await;

    assert_eq!(report.removed(Purge::MeterUnlocks), 4);
    assert_eq!(app.unlocks().await, 4, "late October and November stay");
    assert_eq!(app.reader("r-1").await["meter"], before);
    let again = app.read("r-1", "nov-1").await;
    assert_eq!(again["reason"], "already_unlocked");
    assert_eq!(again["meter"]["used"], 2);
    assert_eq!(app.read("r-1", "nov-3").await["reason"], "metered");
    let refused = app.read("r-1", "nov-4").await;
    assert_eq!(refused["reason"], "meter_exhausted");
    assert_eq!(refused["meter"]["resets_at"], "2026-12-01T00:00:00Z");
    assert_eq!(purge(&app).await.removed(Purge::MeterUnlocks), 0);
}

fn rolling_month(settings: &mut Settings) {
    settings.meter_registered_period = Period::RollingDays(30);
}

#[tokio::test]
async fn a_rolling_meter_keeps_every_unlock_of_its_window_so_its_reset_stays_the_same() {
    let app = spawn_app_with(Options {
        configure: Some(rolling_month),
        ..Options::default()
    })
    .await;
    let now = test_epoch();
    app.clock.set(now - TimeDelta::days(40));
    app.read("r-1", "too-old").await;
    app.clock.set(now - TimeDelta::days(36));
    app.read("r-1", "in-the-margin").await;
    app.clock.set(now - TimeDelta::days(29));
    app.read("r-1", "oldest-counted").await;
    app.clock.set(now);
    app.read("r-1", "today").await;
    let before = app.read("r-1", "today").await["meter"].clone();
    assert_eq!(before["used"], 2);

    let report = purge_with(&app, rolling_month, None).await;

    // 30 days and a 7-day margin: only the unlock of 40 days ago goes.
    assert_eq!(report.removed(Purge::MeterUnlocks), 1);
    assert_eq!(app.unlocks().await, 3);
    assert_eq!(app.read("r-1", "today").await["meter"], before);
    assert_eq!(
        instant(before["resets_at"].as_str().unwrap()),
        now + TimeDelta::days(1)
    );
}

#[tokio::test]
async fn bodies_of_old_applied_and_skipped_events_go_and_a_redelivery_is_still_a_duplicate() {
    let app = spawn_app().await;
    app.put_plan("all-access", &["price_1TPeerMonthly01"], &["articles"])
        .await;
    let created = test_epoch().timestamp();
    let applied = event(CHECKOUT, "evt_old_applied", created, |_| {});
    app.deliver_ok(&applied).await;
    let mut unknown: Value = serde_json::from_slice(CREATED).unwrap();
    unknown["id"] = "evt_old_skipped".into();
    unknown["type"] = "customer.tax_id.created".into();
    app.deliver_ok(&serde_json::to_vec(&unknown).unwrap()).await;
    let waiting = event(CREATED, "evt_old_failed", created, |o| {
        o["metadata"] = json!({});
        o["customer"] = "cus_NobodyKnown01".into();
    });
    app.deliver_ok(&waiting).await;
    assert_eq!(
        app.stored_event("evt_old_applied").await["status"],
        "applied"
    );
    assert_eq!(
        app.stored_event("evt_old_skipped").await["status"],
        "skipped"
    );
    assert_eq!(app.stored_event("evt_old_failed").await["status"], "failed");
    app.clock
        .advance(TimeDelta::days(30) + TimeDelta::minutes(1));
    let recent = event(CHECKOUT, "evt_recent_applied", created + 100, |_| {});
    app.deliver_ok(&recent).await;

    let report = purge(&app).await;

    assert_eq!(report.removed(Purge::WebhookBodies), 2);
    let dropped_at = app.clock.now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    for id in ["evt_old_applied", "evt_old_skipped"] {
        assert_eq!(app.stored_event(id).await["body_dropped_at"], dropped_at);
    }
    for id in ["evt_old_failed", "evt_recent_applied"] {
        assert_eq!(app.stored_event(id).await["body_dropped_at"], Value::Null);
    }
    let kept: Vec<(String,)> = app
        .db
        .text_rows("SELECT id FROM webhook_events WHERE body <> '' ORDER BY id")
        .await;
    assert_eq!(
        kept,
        [("evt_old_failed".into(),), ("evt_recent_applied".into(),)]
    );

    // Stripe delivers the old event again: acknowledged as a duplicate, not applied again.
    let again = app.deliver(&applied).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["duplicate"], true);
    let stored = app.stored_event("evt_old_applied").await;
    assert_eq!(stored["status"], "applied");
    assert_eq!(stored["attempts"], 1);
    // The failed event kept its body: a retry reads it and still waits for its customer.
    let retried = app
        .client
        .post(app.url("/v1/admin/webhook-events/evt_old_failed/retry"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 200);
    let retried: Value = retried.json().await.unwrap();
    assert_eq!(retried["status"], "failed");
    assert_eq!(retried["waiting_for_customer"], "cus_NobodyKnown01");
    problem(
        app.client
            .post(app.url("/v1/admin/webhook-events/evt_old_applied/retry"))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap(),
        409,
        "event_already_applied",
    )
    .await;
}

#[tokio::test]
async fn delivered_deliveries_go_after_30_days_and_failed_ones_after_90() {
    let app = spawn_app().await;
    let (ok, gone) = (Receiver::start().await, Receiver::start().await);
    gone.answer(&[410]);
    let (delivered_to, _) = app.add_endpoint(&ok.url, &["grant.created"]).await;
    let (failed_to, _) = app.add_endpoint(&gone.url, &["grant.created"]).await;
    app.grant("ana", &["articles"]).await;
    app.wait_deliveries(&delivered_to, |d| {
        d.len() == 1 && d[0]["status"] == "delivered"
    })
    .await;
    app.wait_deliveries(&failed_to, |d| d.len() == 1 && d[0]["status"] == "failed")
        .await;
    app.clock
        .advance(TimeDelta::days(30) + TimeDelta::minutes(1));
    app.grant("ben", &["articles"]).await;
    app.wait_deliveries(&delivered_to, |d| {
        d.len() == 2 && d[1]["status"] == "delivered"
    })
    .await;

    let outbox = "SELECT COUNT(*) FROM outbound_events";
    let events = app.db.count(outbox).await;

    let report = purge(&app).await;

    assert_eq!(report.removed(Purge::DeliveredDeliveries), 1);
    assert_eq!(report.removed(Purge::FailedDeliveries), 0);
    let left = app.deliveries(&delivered_to).await;
    assert_eq!(left.len(), 1);
    assert_eq!(
        instant(left[0]["created_at"].as_str().unwrap()),
        app.clock.now()
    );
    assert_eq!(app.deliveries(&failed_to).await.len(), 1);

    app.clock.advance(TimeDelta::days(60));
    let report = purge(&app).await;
    assert_eq!(report.removed(Purge::FailedDeliveries), 1);
    assert_eq!(report.removed(Purge::DeliveredDeliveries), 1);
    assert!(app.deliveries(&failed_to).await.is_empty());
    // The events stay in the outbox, for replays.
    assert_eq!(app.db.count(outbox).await, events);
}

#[tokio::test]
async fn expired_idempotency_keys_and_sessions_go_and_live_ones_stay() {
    let app = spawn_app().await;
    let (_, finance) = app.new_key("finance").await;
    let open_session = || {
        app.client
            .post(app.url("/v1/sessions"))
            .bearer_auth(&finance)
            .send()
    };
    let grant = json!({
        "entitlements": ["articles"],
        "expires_at": "2099-01-01T00:00:00Z",
        "reason": "test",
    });
    let first = app
        .post_under_key("/v1/readers/ana/grants", "key-day-one", grant.clone())
        .await;
    assert_eq!(first.status(), 201);
    let old: Value = open_session().await.unwrap().json().await.unwrap();
    app.clock.advance(TimeDelta::hours(25));
    let second = app
        .post_under_key("/v1/readers/ben/grants", "key-day-two", grant.clone())
        .await;
    assert_eq!(second.status(), 201);
    let second: Value = second.json().await.unwrap();
    let live: Value = open_session().await.unwrap().json().await.unwrap();

    let report = purge(&app).await;

    assert_eq!(report.removed(Purge::IdempotencyKeys), 1);
    assert_eq!(report.removed(Purge::DashboardSessions), 1);
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM idempotency_keys").await,
        1
    );
    let sessions: Vec<(String,)> = app.db.text_rows("SELECT id FROM dashboard_sessions").await;
    assert_eq!(sessions, [(live["id"].as_str().unwrap().to_owned(),)]);
    assert_ne!(old["id"], live["id"]);
    // The live key is still replayed; the live session still opens.
    let replayed = app
        .post_under_key("/v1/readers/ben/grants", "key-day-two", grant)
        .await;
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    assert_eq!(replayed.json::<Value>().await.unwrap(), second);
    let whoami = app.get("/v1/whoami", live["token"].as_str()).await;
    assert_eq!(whoami.status(), 200);
}

#[tokio::test]
async fn a_purge_of_more_rows_than_a_batch_removes_them_all_over_several_batches() {
    let app = spawn_app().await;
    app.clock.set(instant("2026-08-05T10:00:00Z"));
    for reader in 0..9 {
        for article in ["a1", "a2", "a3"] {
            app.read(&format!("r-{reader}"), article).await;
        }
    }
    app.clock.set(test_epoch());
    app.read("r-0", "today").await;
    assert_eq!(app.unlocks().await, 28);

    let report = purge_with(&app, |_| {}, Some(10)).await;

    assert_eq!(report.removed(Purge::MeterUnlocks), 27);
    // 10, 10 and 7 unlocks; one batch that finds nothing for each of the six other kinds.
    assert_eq!(report.batches, 3 + 6);
    assert_eq!(app.unlocks().await, 1);
}

#[tokio::test]
async fn the_server_purges_at_start_and_exports_what_it_removed() {
    let app = spawn_app().await;

    let metrics = app.after_start_up_purge().await;

    let last = format!("{LAST_PURGE} {}", test_epoch().timestamp());
    assert!(metrics.contains(&last), "{metrics}");
    for kind in Purge::ALL {
        assert!(
            metrics.contains(&format!(
                "tollgate_storage_purged_total{{kind=\"{kind}\"}} 0"
            )),
            "{kind}: {metrics}"
        );
    }
}
