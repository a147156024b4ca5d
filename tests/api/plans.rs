use serde_json::{Value, json};

use crate::helpers::{PlanBody, TestApp, event, problem, spawn_app, test_epoch};

fn all_access() -> PlanBody {
    PlanBody::new(
        "All-Access",
        &["price_1TPeerMonthly01", "price_1TPeerYearly01"],
        &["articles", "newsletters:regional", "articles"],
    )
    .trial_days(14)
    .allow_promotion_codes(true)
}

impl TestApp {
    async fn archive_plan(&self, id: &str) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/v1/plans/{id}/archive")))
            .bearer_auth(&self.admin_key)
            .send()
            .await
            .unwrap()
    }
}

/// A plan price Stripe has not told tollgate about yet.
fn unknown_price(id: &str) -> Value {
    json!({
        "id": id, "known": false, "active": null, "currency": null, "unit_amount": null,
        "recurring": null, "nickname": null, "product": null
    })
}

fn instant(minutes_after_epoch: i64) -> String {
    (test_epoch() + chrono::Duration::minutes(minutes_after_epoch))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test]
async fn an_admin_creates_a_plan_and_a_service_key_reads_it_back() {
    let app = spawn_app().await;
    let response = app.put_plan_body("all-access", &all_access()).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(
        created,
        json!({
            "id": "all-access",
            "name": "All-Access",
            "stripe_prices": ["price_1TPeerMonthly01", "price_1TPeerYearly01"],
            "prices": [unknown_price("price_1TPeerMonthly01"), unknown_price("price_1TPeerYearly01")],
            "entitlements": ["articles", "newsletters:regional"],
            "trial_days": 14,
            "allow_promotion_codes": true,
            "seats": false,
            "gift_price": null,
            "gift_months": null,
            "archived": false,
            "archived_at": null,
            "created_at": instant(0),
            "updated_at": instant(0),
        })
    );

    let (_, service) = app.new_key("service").await;
    let read = app.get_json("/v1/plans/all-access", Some(&service)).await;
    assert_eq!(read, created);
    let list = app.get_json("/v1/plans", Some(&service)).await;
    assert_eq!(list, json!({ "items": [created] }));
}

#[tokio::test]
async fn putting_a_plan_again_replaces_it_and_keeps_its_creation_time() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_plan_body("all-access", &all_access())
            .await
            .status(),
        201
    );
    app.clock.advance(chrono::Duration::minutes(3));
    let replacement = PlanBody::new(
        "All-Access (2027)",
        &["price_1TPeerYearly01", "price_new"],
        &["reports"],
    );
    let response = app.put_plan_body("all-access", &replacement).await;
    assert_eq!(response.status(), 200);
    let plan: Value = response.json().await.unwrap();
    assert_eq!(plan["name"], "All-Access (2027)");
    assert_eq!(
        plan["stripe_prices"],
        json!(["price_1TPeerYearly01", "price_new"])
    );
    assert_eq!(plan["entitlements"], json!(["reports"]));
    assert_eq!(plan["trial_days"], 0);
    assert_eq!(plan["allow_promotion_codes"], false);
    assert_eq!(plan["created_at"], instant(0));
    assert_eq!(plan["updated_at"], instant(3));

    // The price the replacement dropped is free for another plan.
    let other = PlanBody::new("Monthly", &["price_1TPeerMonthly01"], &["articles"]);
    assert_eq!(app.put_plan_body("monthly", &other).await.status(), 201);
}

#[tokio::test]
async fn a_price_belongs_to_one_plan_at_most_and_a_conflict_changes_nothing() {
    let app = spawn_app().await;
    assert_eq!(
        app.put_plan_body("all-access", &all_access())
            .await
            .status(),
        201
    );
    let before = app.get_json("/v1/plans", Some(&app.admin_key)).await;

    let thief = PlanBody::new(
        "Thief",
        &["price_other", "price_1TPeerYearly01"],
        &["articles"],
    );
    let body = problem(
        app.put_plan_body("thief", &thief).await,
        409,
        "price_in_use",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("all-access"),
        "{body}"
    );
    // Also when the conflicting plan exists already.
    let existing = PlanBody::new("Other", &["price_other"], &["articles"]);
    assert_eq!(app.put_plan_body("other", &existing).await.status(), 201);
    problem(
        app.put_plan_body("other", &thief).await,
        409,
        "price_in_use",
    )
    .await;

    let after = app
        .get_json("/v1/plans/all-access", Some(&app.admin_key))
        .await;
    assert_eq!(after, before["items"][0]);
    let other = app.get_json("/v1/plans/other", Some(&app.admin_key)).await;
    assert_eq!(other["stripe_prices"], json!(["price_other"]));
    problem(
        app.get("/v1/plans/thief", Some(&app.admin_key)).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn two_plans_racing_for_one_price_end_with_exactly_one_owner() {
    let app = spawn_app().await;
    let app = &app;
    let mut racers = Vec::new();
    for n in 0..8 {
        let body = PlanBody::new(format!("Racer {n}"), &["price_contested"], &["articles"]);
        racers.push(async move {
            (
                n,
                app.put_plan_body(&format!("racer-{n}"), &body)
                    .await
                    .status(),
            )
        });
    }
    let statuses = futures_util::future::join_all(racers).await;
    let winners: Vec<_> = statuses.iter().filter(|(_, s)| *s == 201).collect();
    assert_eq!(winners.len(), 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|(_, s)| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    let list = app.get_json("/v1/plans", Some(&app.admin_key)).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], format!("racer-{}", winners[0].0));
}

#[tokio::test]
async fn an_archived_plan_still_reads_back_marked_archived_and_archiving_again_keeps_the_first_time()
 {
    let app = spawn_app().await;
    assert_eq!(
        app.put_plan_body("all-access", &all_access())
            .await
            .status(),
        201
    );
    app.clock.advance(chrono::Duration::minutes(10));
    let response = app.archive_plan("all-access").await;
    assert_eq!(response.status(), 200);
    let archived: Value = response.json().await.unwrap();
    assert_eq!(archived["archived"], true);
    assert_eq!(archived["archived_at"], instant(10));

    app.clock.advance(chrono::Duration::minutes(10));
    let again: Value = app.archive_plan("all-access").await.json().await.unwrap();
    assert_eq!(again, archived);
    // Replacing an archived plan does not bring it back on sale.
    let replaced: Value = app
        .put_plan_body("all-access", &all_access())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(replaced["archived_at"], instant(10));
    let read = app
        .get_json("/v1/plans/all-access", Some(&app.admin_key))
        .await;
    assert_eq!(read["archived"], true);
}

#[tokio::test]
async fn unknown_plans_are_404_problems() {
    let app = spawn_app().await;
    problem(
        app.get("/v1/plans/nope", Some(&app.admin_key)).await,
        404,
        "not_found",
    )
    .await;
    problem(
        app.get("/v1/plans/NOT%20A%20PLAN", Some(&app.admin_key))
            .await,
        404,
        "not_found",
    )
    .await;
    problem(app.archive_plan("nope").await, 404, "not_found").await;
}

#[tokio::test]
async fn plans_that_break_a_rule_are_422_problems_and_store_nothing() {
    let app = spawn_app().await;
    problem(
        app.put_plan_body("Not-Valid", &all_access()).await,
        422,
        "invalid_plan_id",
    )
    .await;
    problem(
        app.put_plan_body(&"a".repeat(65), &all_access()).await,
        422,
        "invalid_plan_id",
    )
    .await;
    let with = |field: &str, value: Value| {
        let mut body = all_access().json();
        body[field] = value;
        body
    };
    for body in [
        with("name", json!("")),
        with("name", json!(" ")),
        with("name", json!("x".repeat(201))),
        with("stripe_prices", json!([])),
        with("stripe_prices", json!(["prod_123"])),
        with("stripe_prices", json!(["price_1", "price_1"])),
        with(
            "stripe_prices",
            json!((0..21).map(|n| format!("price_{n}")).collect::<Vec<_>>()),
        ),
        with("entitlements", json!([])),
        with("entitlements", json!(["Articles"])),
        with("entitlements", json!(["a b"])),
        with("trial_days", json!(731)),
        with("trial_days", json!(-1)),
        with("allow_promotion_codes", json!("yes")),
        with("colour", json!("red")),
        json!({ "name": "No prices", "entitlements": ["articles"] }),
    ] {
        let response = app.put_plan_body("all-access", &body).await;
        assert_eq!(response.status(), 422, "{body}");
        problem(response, 422, "invalid_body").await;
    }
    let list = app.get_json("/v1/plans", Some(&app.admin_key)).await;
    assert_eq!(list, json!({ "items": [] }));
}

#[tokio::test]
async fn legacy_stripe_plan_ids_are_accepted_as_prices() {
    let app = spawn_app().await;
    let body = PlanBody::new("Gold (2019)", &["plan_Gold2019"], &["articles"]);
    let response = app.put_plan_body("gold", &body).await;
    assert_eq!(response.status(), 201);
    let plan: Value = response.json().await.unwrap();
    assert_eq!(plan["stripe_prices"], json!(["plan_Gold2019"]));
}

const PRICE_CREATED: &[u8] = include_bytes!("../fixtures/stripe/price.created.json");
const PRICE_UPDATED: &[u8] = include_bytes!("../fixtures/stripe/price.updated.json");
const SUBSCRIPTION_CREATED: &[u8] =
    include_bytes!("../fixtures/stripe/customer.subscription.created.json");

impl TestApp {
    /// The prices `GET /v1/plans/{id}` shows to a service key.
    async fn offered_prices(&self, plan: &str) -> Value {
        let (_, service) = self.new_key("service").await;
        self.get_json(&format!("/v1/plans/{plan}"), Some(&service))
            .await["prices"]
            .clone()
    }
}

#[tokio::test]
async fn a_plan_shows_its_prices_as_stripe_describes_them_once_their_events_arrive() {
    let app = spawn_app().await;
    app.put_plan(
        "digital",
        &["price_1TPeerMonthly01", "price_1TPeerYearly002"],
        &["articles"],
    )
    .await;
    assert_eq!(
        app.offered_prices("digital").await,
        json!([
            unknown_price("price_1TPeerMonthly01"),
            unknown_price("price_1TPeerYearly002")
        ])
    );

    // The yearly price arrives with `price.created`; the monthly one with the subscription
    // whose item carries it.
    app.deliver_ok(PRICE_CREATED).await;
    let yearly = json!({
        "id": "price_1TPeerYearly002", "known": true, "active": true, "currency": "eur",
        "unit_amount": 9900, "recurring": { "interval": "year", "interval_count": 1 },
        "nickname": "Digital, yearly", "product": "prod_TPeerDigital01"
    });
    assert_eq!(
        app.offered_prices("digital").await,
        json!([unknown_price("price_1TPeerMonthly01"), yearly])
    );
    app.deliver_ok(SUBSCRIPTION_CREATED).await;
    let monthly = json!({
        "id": "price_1TPeerMonthly01", "known": true, "active": true, "currency": "eur",
        "unit_amount": 999, "recurring": { "interval": "month", "interval_count": 1 },
        "nickname": null, "product": "prod_TPeerDigital01"
    });
    assert_eq!(
        app.offered_prices("digital").await,
        json!([monthly, yearly])
    );

    let list = app.get_json("/v1/plans", Some(&app.admin_key)).await;
    assert_eq!(list["items"][0]["prices"], json!([monthly, yearly]));
}

#[tokio::test]
async fn an_archived_price_shows_inactive_and_an_older_event_arriving_late_does_not_revive_it() {
    let app = spawn_app().await;
    app.put_plan("digital", &["price_1TPeerYearly002"], &["articles"])
        .await;
    app.deliver_ok(PRICE_UPDATED).await;
    assert_eq!(app.offered_prices("digital").await[0]["active"], false);
    // `price.created` is older than the update that archived the price.
    app.deliver_ok(PRICE_CREATED).await;
    assert_eq!(app.offered_prices("digital").await[0]["active"], false);
    // A newer one wins.
    app.deliver_ok(&event(
        PRICE_CREATED,
        "evt_1TPeerPriceNew02",
        1_765_000_200,
        |_| {},
    ))
    .await;
    assert_eq!(app.offered_prices("digital").await[0]["active"], true);
    let deleted = {
        let mut deleted: Value = serde_json::from_slice(&event(
            PRICE_CREATED,
            "evt_1TPeerPriceDel01",
            1_765_000_300,
            |_| {},
        ))
        .unwrap();
        deleted["type"] = "price.deleted".into();
        serde_json::to_vec(&deleted).unwrap()
    };
    app.deliver_ok(&deleted).await;
    let price = app.offered_prices("digital").await[0].clone();
    assert_eq!(
        (price["active"].clone(), price["unit_amount"].clone()),
        (json!(false), json!(9900))
    );
}
