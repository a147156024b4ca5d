//! Readers' entitlements: good standing, past-due grace, cancel at period end, and grants.

use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::helpers::{TestApp, at, event, problem, spawn_app};

const CREATED: &[u8] = include_bytes!("../fixtures/stripe/customer.subscription.created.json");
const UPDATED: &[u8] =
    include_bytes!("../fixtures/stripe/customer.subscription.updated.past_due.json");

/// The first period of the story's subscription: 2025-11-13T02:13:20Z to 2025-12-13T02:13:20Z.
const PERIOD_START: i64 = 1_763_000_000;
const PERIOD_END: i64 = 1_765_592_000;

async fn subscriber() -> TestApp {
    let app = spawn_app().await;
    app.put_plan("all-access", &["price_1TPeerMonthly01"], &["articles"])
        .await;
    app.clock.set(at(PERIOD_START + 100));
    app.deliver_ok(&event(CREATED, "evt_r_created", PERIOD_START + 3, |o| {
        o["cancel_at_period_end"] = false.into();
        o["cancel_at"] = Value::Null;
    }))
    .await;
    assert_eq!(app.entitlements("reader-42").await, ["articles"]);
    app
}

fn update(id: &str, created: i64, status: &'static str, cancel: bool) -> Vec<u8> {
    event(UPDATED, id, created, move |o| {
        o["status"] = status.into();
        o["cancel_at_period_end"] = cancel.into();
        o["cancel_at"] = Value::Null;
        o["items"]["data"][0]["current_period_start"] = PERIOD_START.into();
        o["items"]["data"][0]["current_period_end"] = PERIOD_END.into();
    })
}

#[tokio::test]
async fn an_active_subscriber_holds_the_plans_entitlements_until_further_notice() {
    let app = subscriber().await;
    let reader = app.reader("reader-42").await;
    assert_eq!(
        reader["entitlements"],
        json!([{
            "name": "articles",
            "lapses_at": null,
            "sources": [{ "kind": "subscription", "id": "sub_1TPeerSubscr0001", "lapses_at": null }],
        }])
    );
    let subscription = &reader["subscriptions"][0];
    assert_eq!(subscription["status"], "active");
    assert_eq!(subscription["current_period_end"], "2025-12-13T02:13:20Z");
    assert_eq!(subscription["items"][0]["plan_id"], "all-access");
    assert_eq!(reader["stripe_customer_id"], "cus_TPeer0Reader01");
}

#[tokio::test]
async fn past_due_keeps_access_for_the_grace_period_from_the_first_past_due_event() {
    let app = subscriber().await;
    let first = PERIOD_START + 86_400;
    app.clock.set(at(first + 60));
    app.deliver_ok(&update("evt_pd_1", first, "past_due", false))
        .await;
    // A later past-due event does not move the start of the grace period.
    app.deliver_ok(&update("evt_pd_2", first + 3_600, "past_due", false))
        .await;
    let reader = app.reader("reader-42").await;
    assert_eq!(
        reader["subscriptions"][0]["past_due_since"],
        "2025-11-14T02:13:20Z"
    );
    assert_eq!(
        reader["entitlements"][0]["lapses_at"],
        "2025-11-21T02:13:20Z"
    );

    app.clock
        .set(at(first) + TimeDelta::days(7) - TimeDelta::seconds(1));
    assert_eq!(
        app.entitlements("reader-42").await,
        ["articles"],
        "inside the grace"
    );
    app.clock.set(at(first) + TimeDelta::days(7));
    assert!(
        app.entitlements("reader-42").await.is_empty(),
        "outside the grace"
    );
    let reader = app.reader("reader-42").await;
    assert_eq!(reader["subscriptions"][0]["good_standing"], false);

    // Paid after all: active again, whatever the grace said.
    app.deliver_ok(&update("evt_pd_3", first + 8 * 86_400, "active", false))
        .await;
    assert_eq!(app.entitlements("reader-42").await, ["articles"]);
    assert_eq!(
        app.reader("reader-42").await["subscriptions"][0]["past_due_since"],
        Value::Null
    );
}

#[tokio::test]
async fn cancel_at_period_end_keeps_access_until_the_period_ends_and_not_after() {
    let app = subscriber().await;
    app.deliver_ok(&update("evt_cancel", PERIOD_START + 86_400, "active", true))
        .await;
    app.clock.set(at(PERIOD_END - 1));
    let reader = app.reader("reader-42").await;
    assert_eq!(
        reader["entitlements"][0]["lapses_at"],
        "2025-12-13T02:13:20Z"
    );
    assert_eq!(reader["subscriptions"][0]["cancel_at_period_end"], true);
    // No deletion event has arrived, yet the period end is when access ends.
    app.clock.set(at(PERIOD_END));
    assert!(app.entitlements("reader-42").await.is_empty());
}

async fn grant(app: &TestApp, reader: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/readers/{reader}/grants")))
        .bearer_auth(&app.admin_key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_grant_adds_entitlements_until_it_expires_or_is_revoked() {
    let app = subscriber().await;
    let now = at(PERIOD_START + 100);
    let response = grant(
        &app,
        "reader-42",
        json!({
            "entitlements": ["reports", "articles"],
            "expires_at": "2025-11-20T00:00:00Z",
            "reason": "press pass",
        }),
    )
    .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["entitlements"], json!(["articles", "reports"]));
    assert_eq!(created["active"], true);
    let grant_id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/readers/reader-42/grants/{grant_id}"));

    let reader = app.reader("reader-42").await;
    assert_eq!(app.entitlements("reader-42").await, ["articles", "reports"]);
    assert_eq!(
        reader["entitlements"][0]["sources"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        reader["entitlements"][1]["lapses_at"],
        "2025-11-20T00:00:00Z"
    );

    app.clock.set(at(1_763_596_800)); // 2025-11-20T00:00:00Z: the grant has expired
    assert_eq!(app.entitlements("reader-42").await, ["articles"]);
    assert_eq!(app.reader("reader-42").await["grants"][0]["active"], false);

    app.clock.set(now);
    let delete = || {
        app.client
            .delete(app.url(&format!("/v1/readers/reader-42/grants/{grant_id}")))
            .bearer_auth(&app.admin_key)
            .send()
    };
    assert_eq!(delete().await.unwrap().status(), 204);
    assert_eq!(app.entitlements("reader-42").await, ["articles"]);
    problem(delete().await.unwrap(), 404, "not_found").await;
}

#[tokio::test]
async fn a_grant_that_breaks_a_rule_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let valid = json!({ "entitlements": ["articles"], "expires_at": "2030-01-01T00:00:00Z", "reason": "gift" });
    for (reader, body) in [
        (
            "reader-1",
            json!({ "entitlements": [], "expires_at": "2030-01-01T00:00:00Z", "reason": "gift" }),
        ),
        (
            "reader-1",
            json!({ "entitlements": ["Articles"], "expires_at": "2030-01-01T00:00:00Z", "reason": "gift" }),
        ),
        (
            "reader-1",
            json!({ "entitlements": ["articles"], "expires_at": "2020-01-01T00:00:00Z", "reason": "gift" }),
        ),
        (
            "reader-1",
            json!({ "entitlements": ["articles"], "expires_at": "tomorrow", "reason": "gift" }),
        ),
        (
            "reader-1",
            json!({ "entitlements": ["articles"], "expires_at": "2030-01-01T00:00:00Z", "reason": " " }),
        ),
        (
            "reader-1",
            json!({ "entitlements": ["articles"], "expires_at": "2030-01-01T00:00:00Z" }),
        ),
        (
            "reader-1",
            json!({ "entitlements": ["articles"], "expires_at": "2030-01-01T00:00:00Z", "reason": "x", "extra": 1 }),
        ),
    ] {
        problem(grant(&app, reader, body.clone()).await, 422, "invalid_body").await;
    }
    for reader in ["...", "a%20b", "a%2Fb", &"r".repeat(129)] {
        problem(
            grant(&app, reader, valid.clone()).await,
            422,
            "invalid_reader_id",
        )
        .await;
    }
    assert!(
        app.reader("reader-1").await["grants"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (_, service) = app.new_key("service").await;
    let response = app
        .client
        .post(app.url("/v1/readers/reader-1/grants"))
        .bearer_auth(service)
        .json(&valid)
        .send()
        .await
        .unwrap();
    problem(response, 403, "forbidden").await;
}

#[tokio::test]
async fn a_reader_nobody_has_heard_of_is_entitled_to_nothing_and_a_bad_id_is_a_422() {
    let app = spawn_app().await;
    let (_, service) = app.new_key("service").await;
    let reader = app
        .get_json("/v1/readers/new.reader@example.org", Some(&service))
        .await;
    assert_eq!(
        reader,
        json!({
            "reader_id": "new.reader@example.org",
            "stripe_customer_id": null,
            "entitlements": [],
            "subscriptions": [],
            "grants": [],
            "meter": {
                "used": 0,
                "limit": 3,
                "remaining": 3,
                "period_start": "2026-11-01T00:00:00Z",
                "resets_at": "2026-12-01T00:00:00Z",
            },
        })
    );
    problem(
        app.get("/v1/readers/...", Some(&service)).await,
        422,
        "invalid_reader_id",
    )
    .await;
}
