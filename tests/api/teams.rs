//! Team seats: an owner seats members up to the subscription's quantity (never more, however
//! many additions run at once), members hold the seat plan's entitlements while the owner's
//! subscription stands, the last added lose their seats first when Stripe lowers the quantity,
//! and ownership moves.

use futures_util::future::join_all;
use reqwest::Response;
use serde_json::{Value, json};
use tollgate::clock::Clock;

use crate::helpers::{PlanBody, TestApp, problem, spawn_app};
use crate::stripe_events::{self, Subscription};

impl TestApp {
    async fn add_seat(&self, owner: &str, member: &str) -> Response {
        self.client
            .post(self.url(&format!("/v1/readers/{owner}/seats")))
            .bearer_auth(&self.admin_key)
            .json(&json!({ "reader_id": member }))
            .send()
            .await
            .unwrap()
    }

    async fn remove_seat(&self, owner: &str, member: &str) -> Response {
        self.client
            .delete(self.url(&format!("/v1/readers/{owner}/seats/{member}")))
            .bearer_auth(&self.admin_key)
            .send()
            .await
            .unwrap()
    }

    async fn transfer_team(&self, owner: &str, new_owner: &str) -> Response {
        self.client
            .post(self.url(&format!("/v1/readers/{owner}/seats/transfer")))
            .bearer_auth(&self.admin_key)
            .json(&json!({ "new_owner": new_owner }))
            .send()
            .await
            .unwrap()
    }

    async fn team(&self, owner: &str) -> Value {
        self.get_json(&format!("/v1/readers/{owner}/seats"), Some(&self.admin_key))
            .await
    }

    /// A team plan (`articles`, by the seat) and a reader `extras` plan, and `owner`'s
    /// subscription to both with `seats` seats, as a `kind` event at `created`.
    async fn team_subscription(&self, owner: &str, seats: i64, status: &str, kind: &str) {
        self.put_plan_with(
            "team",
            &PlanBody::new("Team", &["price_team"], &["articles"]).seats(),
        )
        .await;
        let subscription = Subscription {
            id: "sub_team",
            customer: "cus_owner",
            reader_id: owner,
            status,
            price: stripe_events::price("price_team", 1200, "eur", "month"),
            cancel_at_period_end: false,
        };
        let created = self.clock.now().timestamp();
        let mut event = stripe_events::subscription(
            kind,
            &format!("evt_{kind}_{seats}_{status}"),
            created,
            &subscription,
        );
        event["data"]["object"]["items"]["data"][0]["quantity"] = seats.into();
        self.deliver_ok(&serde_json::to_vec(&event).unwrap()).await;
    }
}

/// Who holds a seat, in order, with whether they are over.
fn seated(team: &Value) -> Vec<(String, String, bool)> {
    team["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["reader_id"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
                m["over"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn entry(reader: &str, role: &str, over: bool) -> (String, String, bool) {
    (reader.to_owned(), role.to_owned(), over)
}

/// The kinds of the sources that give `reader` `articles`.
async fn article_sources(app: &TestApp, reader: &str) -> Vec<String> {
    let view = app.reader(reader).await;
    view["entitlements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "articles")
        .flat_map(|e| e["sources"].as_array().unwrap().clone())
        .map(|s| s["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_owner_seats_members_up_to_the_quantity_and_members_hold_the_plan() {
    let app = spawn_app().await;
    app.team_subscription("ana", 3, "active", "customer.subscription.created")
        .await;

    let added = app.add_seat("ana", "ben").await;
    assert_eq!(added.status(), 201);
    let team: Value = added.json().await.unwrap();
    assert_eq!(team["subscription_id"], "sub_team");
    assert_eq!(team["seats"], 3);
    assert_eq!(team["used"], 2);
    assert_eq!(team["in_good_standing"], true);
    assert_eq!(
        seated(&team),
        [entry("ana", "owner", false), entry("ben", "member", false)]
    );
    assert_eq!(article_sources(&app, "ben").await, ["seat"]);
    assert_eq!(article_sources(&app, "ana").await, ["subscription"]);
    let decision = app.read("ben", "2026/12/teams").await;
    assert_eq!(decision["granted"], true, "{decision}");
    assert_eq!(decision["meter"], Value::Null);

    // Seating the same reader again changes nothing.
    assert_eq!(app.add_seat("ana", "ben").await.status(), 200);
    assert_eq!(app.add_seat("ana", "cy").await.status(), 201);
    problem(app.add_seat("ana", "dan").await, 409, "no_seats_left").await;
    assert!(app.entitlements("dan").await.is_empty());
    problem(app.add_seat("ana", "ana").await, 422, "owner_holds_a_seat").await;

    // A freed seat can be given again; a reader without a seat cannot be removed.
    assert_eq!(app.remove_seat("ana", "cy").await.status(), 204);
    assert!(app.entitlements("cy").await.is_empty());
    problem(app.remove_seat("ana", "cy").await, 404, "not_found").await;
    assert_eq!(app.add_seat("ana", "dan").await.status(), 201);
    assert_eq!(
        seated(&app.team("ana").await),
        [
            entry("ana", "owner", false),
            entry("ben", "member", false),
            entry("dan", "member", false)
        ]
    );

    // Readers without a team subscription have no team to give seats of.
    problem(app.add_seat("ben", "eve").await, 404, "not_found").await;
    problem(
        app.get("/v1/readers/ben/seats", Some(&app.admin_key)).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn concurrent_additions_never_seat_more_readers_than_the_quantity() {
    let app = spawn_app().await;
    app.team_subscription("ana", 4, "active", "customer.subscription.created")
        .await;
    let mut statuses: Vec<u16> = join_all((0..16).map(|i| {
        let app = &app;
        async move {
            app.add_seat("ana", &format!("m{i}"))
                .await
                .status()
                .as_u16()
        }
    }))
    .await;
    statuses.sort_unstable();
    assert_eq!(statuses, [[201; 3].as_slice(), &[409; 13]].concat());
    let team = app.team("ana").await;
    assert_eq!(team["used"], 4);
    let readers: Vec<String> = (0..16).map(|i| format!("m{i}")).collect();
    assert_eq!(app.entitled_among(&readers).await, 3);
}

#[tokio::test]
async fn members_lose_access_when_the_owners_subscription_is_canceled_by_webhook() {
    let app = spawn_app().await;
    app.team_subscription("ana", 3, "active", "customer.subscription.created")
        .await;
    assert_eq!(app.add_seat("ana", "ben").await.status(), 201);
    assert_eq!(app.entitlements("ben").await, ["articles"]);

    app.clock.advance(chrono::Duration::minutes(5));
    app.team_subscription("ana", 3, "canceled", "customer.subscription.deleted")
        .await;
    assert!(app.entitlements("ben").await.is_empty());
    assert!(app.entitlements("ana").await.is_empty());
    let decision = app.read("ben", "2026/12/teams").await;
    assert_ne!(decision["reason"], "entitled", "{decision}");
    // The team is still shown, lapsed, and no seat can be given.
    let team = app.team("ana").await;
    assert_eq!(team["in_good_standing"], false);
    problem(app.add_seat("ana", "cy").await, 409, "team_lapsed").await;
}

#[tokio::test]
async fn a_lower_quantity_puts_the_members_added_last_over_and_they_hold_nothing() {
    let app = spawn_app().await;
    app.team_subscription("ana", 3, "active", "customer.subscription.created")
        .await;
    assert_eq!(app.add_seat("ana", "ben").await.status(), 201);
    app.clock.advance(chrono::Duration::seconds(1));
    assert_eq!(app.add_seat("ana", "cy").await.status(), 201);

    app.clock.advance(chrono::Duration::minutes(5));
    app.team_subscription("ana", 2, "active", "customer.subscription.updated")
        .await;
    let team = app.team("ana").await;
    assert_eq!(team["seats"], 2);
    assert_eq!(
        seated(&team),
        [
            entry("ana", "owner", false),
            entry("ben", "member", false),
            entry("cy", "member", true)
        ]
    );
    assert_eq!(app.entitlements("ben").await, ["articles"]);
    assert!(app.entitlements("cy").await.is_empty());
    problem(app.add_seat("ana", "dan").await, 409, "no_seats_left").await;

    // Cy is refused while over (and that answer is cached) ...
    assert_ne!(app.read("cy", "2026/12/teams").await["reason"], "entitled");
    // ... Ben leaves: Cy has a seat again, at once.
    assert_eq!(app.remove_seat("ana", "ben").await.status(), 204);
    let decision = app.read("cy", "2026/12/teams-2").await;
    assert_eq!(decision["granted"], true, "{decision}");
    assert_eq!(decision["meter"], Value::Null, "{decision}");
    assert_eq!(
        seated(&app.team("ana").await),
        [entry("ana", "owner", false), entry("cy", "member", false)]
    );
    assert_eq!(app.entitlements("cy").await, ["articles"]);
}

#[tokio::test]
async fn ownership_moves_and_the_former_owner_keeps_a_seat_the_new_owner_may_take_back() {
    let app = spawn_app().await;
    app.team_subscription("ana", 3, "active", "customer.subscription.created")
        .await;
    assert_eq!(app.add_seat("ana", "ben").await.status(), 201);
    assert_eq!(app.add_seat("ana", "cy").await.status(), 201);

    let moved = app.transfer_team("ana", "ben").await;
    assert_eq!(moved.status(), 200);
    let team: Value = moved.json().await.unwrap();
    assert_eq!(
        seated(&team),
        [
            entry("ben", "owner", false),
            entry("ana", "member", false),
            entry("cy", "member", false)
        ]
    );
    assert_eq!(article_sources(&app, "ben").await, ["subscription"]);
    assert_eq!(article_sources(&app, "ana").await, ["seat"]);
    // Ana owns no team now; Ben gives its seats and may take hers back.
    problem(app.add_seat("ana", "dan").await, 404, "not_found").await;
    problem(app.add_seat("ben", "dan").await, 409, "no_seats_left").await;
    assert_eq!(app.remove_seat("ben", "ana").await.status(), 204);
    assert!(app.entitlements("ana").await.is_empty());
    assert_eq!(app.entitlements("cy").await, ["articles"]);

    // Handing on to a reader without a seat needs a free one, which there is now; the former
    // owner's seat is the newest.
    app.clock.advance(chrono::Duration::seconds(1));
    let to_dan = app.transfer_team("ben", "dan").await;
    assert_eq!(to_dan.status(), 200);
    assert_eq!(
        seated(&to_dan.json().await.unwrap()),
        [
            entry("dan", "owner", false),
            entry("cy", "member", false),
            entry("ben", "member", false)
        ]
    );
    problem(app.transfer_team("dan", "eve").await, 409, "no_seats_left").await;
    problem(app.transfer_team("dan", "dan").await, 422, "already_owner").await;
}

#[tokio::test]
async fn seats_are_refused_on_plans_not_sold_by_the_seat_and_bodies_are_checked() {
    let app = spawn_app().await;
    app.put_plan("digital", &["price_monthly"], &["articles"])
        .await;
    let subscription = Subscription {
        id: "sub_solo",
        customer: "cus_solo",
        reader_id: "ana",
        status: "active",
        price: stripe_events::price("price_monthly", 999, "eur", "month"),
        cancel_at_period_end: false,
    };
    let mut event = stripe_events::subscription(
        "customer.subscription.created",
        "evt_solo",
        app.clock.now().timestamp(),
        &subscription,
    );
    event["data"]["object"]["items"]["data"][0]["quantity"] = 5.into();
    app.deliver_ok(&serde_json::to_vec(&event).unwrap()).await;
    // A quantity on a plan not sold by the seat seats nobody.
    problem(app.add_seat("ana", "ben").await, 404, "not_found").await;

    app.team_subscription("ana", 3, "active", "customer.subscription.created")
        .await;
    for body in [
        json!({}),
        json!({ "reader_id": "a b" }),
        json!({ "reader_id": "ben", "x": 1 }),
    ] {
        let response = app
            .client
            .post(app.url("/v1/readers/ana/seats"))
            .bearer_auth(&app.admin_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{body}");
    }
    assert_eq!(app.team("ana").await["used"], 1);
}

#[tokio::test]
async fn concurrent_removals_of_one_member_free_one_seat() {
    let app = spawn_app().await;
    app.team_subscription("ana", 3, "active", "customer.subscription.created")
        .await;
    assert_eq!(app.add_seat("ana", "ben").await.status(), 201);
    assert_eq!(app.add_seat("ana", "cy").await.status(), 201);
    let mut statuses: Vec<u16> = join_all((0..8).map(|_| {
        let app = &app;
        async move { app.remove_seat("ana", "ben").await.status().as_u16() }
    }))
    .await;
    statuses.sort_unstable();
    assert_eq!(statuses, [[204; 1].as_slice(), &[404; 7]].concat());
    // One seat was freed, not eight: one more member fits, and no other.
    assert_eq!(app.team("ana").await["used"], 2);
    assert_eq!(app.add_seat("ana", "dan").await.status(), 201);
    problem(app.add_seat("ana", "eve").await, 409, "no_seats_left").await;
    assert_eq!(app.team("ana").await["used"], 3);
}
