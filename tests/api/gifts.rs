//! Gift articles: who may share, what a link opens (one article, for a bounded number of people,
//! for a while, until revoked), the allowance per period under concurrency, and a code that never
//! appears in a token or a log line.

use base64::Engine;
use futures_util::future::join_all;
use reqwest::Response;
use serde_json::{Value, json};
use tollgate::clock::Clock;
use tollgate::domain::SourceKind;

use crate::helpers::{Options, TestApp, problem, spawn_app, spawn_app_with};
use crate::stripe_events::{self, Subscription};

impl TestApp {
    async fn gift(&self, giver: &str, article: &str) -> Response {
        self.client
            .post(self.url("/v1/gifts/articles"))
            .bearer_auth(&self.admin_key)
            .json(&json!({ "reader_id": giver, "article_id": article }))
            .send()
            .await
            .unwrap()
    }

    async fn made_gift(&self, giver: &str, article: &str) -> Value {
        let response = self.gift(giver, article).await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    async fn revoke_gift(&self, id: &str, query: &str) -> Response {
        self.client
            .delete(self.url(&format!("/v1/gifts/articles/{id}{query}")))
            .bearer_auth(&self.admin_key)
            .send()
            .await
            .unwrap()
    }
}

fn with_gift(who: (&str, &str), article: &str, code: &str) -> Value {
    json!({ who.0: who.1, "article_id": article, "gift": code })
}

fn claims(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn a_gift_opens_its_article_for_readers_and_devices_without_their_meter() {
    let app = spawn_app().await;
    app.grant("ana", &["articles"]).await;
    let made = app.made_gift("ana", "2026/11/budget").await;
    let code = made["code"].as_str().unwrap().to_owned();
    assert!(code.starts_with("gc_") && code.len() == 35, "{made}");
    assert!(made["id"].as_str().unwrap().starts_with("gft_"));
    assert_eq!(made["article_id"], "2026/11/budget");
    assert_eq!(made["max_recipients"], 10);
    assert_eq!(made["remaining_this_period"], 9);
    assert_eq!(made["expires_at"], "2026-12-23T19:12:00Z");

    let ben = app
        .access(with_gift(("reader_id", "ben"), "2026/11/budget", &code))
        .await;
    assert_eq!(ben["granted"], true);
    assert_eq!(ben["reason"], "gift");
    assert_eq!(ben["meter"], Value::Null);
    assert!(ben.get("gift_status").is_none(), "{ben}");
    let device = app
        .access(with_gift(("device_id", "d-7"), "2026/11/budget", &code))
        .await;
    assert_eq!(device["reason"], "gift");
    // Opening it again costs nothing either; the meter was never used.
    let again = app
        .access(with_gift(("reader_id", "ben"), "2026/11/budget", &code))
        .await;
    assert_eq!(again["reason"], "gift");
    assert_eq!(app.reader("ben").await["meter"]["used"], 0);
    // The code is in no token and no log line.
    for decision in [&ben, &device, &again] {
        assert!(!claims(decision["token"].as_str().unwrap()).contains(&code));
    }
    assert!(!app.captured_logs().contains(&code));
    assert!(!app.captured_logs().contains(&code[3..]));
}

#[tokio::test]
async fn a_gift_for_another_article_or_an_unknown_code_leaves_the_decision_as_it_was() {
    let app = spawn_app().await;
    app.grant("ana", &["articles"]).await;
    let code = app.made_gift("ana", "a1").await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = app
        .access(with_gift(("reader_id", "ben"), "a2", &code))
        .await;
    assert_eq!(other["reason"], "metered");
    assert_eq!(other["gift_status"], "other_article");
    for unknown in ["gc_00000000000000000000000000000000", "not-a-code", ""] {
        let decision = app
            .access(with_gift(("reader_id", "ben"), "a1", unknown))
            .await;
        assert_eq!(decision["gift_status"], "unknown", "{unknown:?}");
        assert_ne!(decision["reason"], "gift");
    }
    // A code longer than any code is refused outright, and nothing is counted.
    let too_long = app
        .client
        .post(app.url("/v1/access"))
        .bearer_auth(&app.admin_key)
        .json(&with_gift(("reader_id", "dee"), "a1", &"g".repeat(65)))
        .send()
        .await
        .unwrap();
    problem(too_long, 422, "invalid_body").await;
    assert_eq!(app.reader("dee").await["meter"]["used"], 0);
}

#[tokio::test]
async fn a_gift_stops_opening_its_article_when_it_expires_or_is_revoked() {
    let app = spawn_app().await;
    app.grant("ana", &["articles"]).await;
    let first = app.made_gift("ana", "a1").await;
    let second = app.made_gift("ana", "a1").await;
    let (first_id, first_code) = (
        first["id"].as_str().unwrap(),
        first["code"].as_str().unwrap(),
    );

    // Only the giver revokes, and only once.
    problem(
        app.revoke_gift(first_id, "?reader_id=ben").await,
        404,
        "not_found",
    )
    .await;
    problem(
        app.revoke_gift(first_id, "").await,
        422,
        "invalid_reader_id",
    )
    .await;
    assert_eq!(
        app.revoke_gift(first_id, "?reader_id=ana").await.status(),
        204
    );
    problem(
        app.revoke_gift(first_id, "?reader_id=ana").await,
        404,
        "not_found",
    )
    .await;
    let revoked = app
        .access(with_gift(("reader_id", "ben"), "a1", first_code))
        .await;
    assert_eq!(revoked["gift_status"], "revoked");
    assert_eq!(revoked["reason"], "metered");

    let second_code = second["code"].as_str().unwrap();
    assert_eq!(
        app.access(with_gift(("reader_id", "cy"), "a1", second_code))
            .await["reason"],
        "gift"
    );
    app.clock.advance(chrono::Duration::days(30));
    let expired = app
        .access(with_gift(("reader_id", "cy"), "a1", second_code))
        .await;
    assert_eq!(expired["gift_status"], "expired");
}

#[tokio::test]
async fn a_gift_opens_its_article_for_at_most_its_recipients_however_many_come_at_once() {
    let app = spawn_app().await;
    app.grant("ana", &["articles"]).await;
    let code = app.made_gift("ana", "a1").await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let visits = (0..14).map(|n| {
        let (app, code) = (&app, &code);
        async move {
            let decision = app
                .access(with_gift(("reader_id", &format!("friend-{n}")), "a1", code))
                .await;
            (
                decision["reason"].as_str().unwrap().to_owned(),
                decision["gift_status"].as_str().map(str::to_owned),
            )
        }
    });
    let outcomes = join_all(visits).await;
    let gifts = outcomes
        .iter()
        .filter(|(reason, _)| reason == "gift")
        .count();
    assert_eq!(gifts, 10, "{outcomes:?}");
    for (reason, status) in outcomes.iter().filter(|(reason, _)| reason != "gift") {
        assert_eq!(reason, "metered");
        assert_eq!(status.as_deref(), Some("recipients_exhausted"));
    }
    // One of the ten still opens it.
    let friend = outcomes
        .iter()
        .position(|(reason, _)| reason == "gift")
        .unwrap();
    assert_eq!(
        app.access(with_gift(
            ("reader_id", &format!("friend-{friend}")),
            "a1",
            &code
        ))
        .await["reason"],
        "gift"
    );
}

#[tokio::test]
async fn a_reader_makes_exactly_their_allowance_of_links_however_many_requests_run_at_once() {
    let app = spawn_app().await;
    app.grant("ana", &["articles"]).await;
    let requests = (0..15).map(|n| {
        let app = &app;
        async move { app.gift("ana", &format!("a{n}")).await.status().as_u16() }
    });
    let mut statuses = join_all(requests).await;
    statuses.sort_unstable();
    assert_eq!(statuses, [[201; 10].as_slice(), &[409; 5]].concat());
    let refused = problem(
        app.gift("ana", "one-more").await,
        409,
        "gift_allowance_exhausted",
    )
    .await;
    assert!(refused["detail"].as_str().unwrap().contains("10"));
    // A new calendar month brings a new allowance.
    app.clock.advance(chrono::Duration::days(8));
    assert_eq!(
        app.made_gift("ana", "december").await["remaining_this_period"],
        9
    );
}

#[tokio::test]
async fn only_readers_entitled_through_a_giving_source_may_give() {
    let app = spawn_app().await;
    problem(app.gift("nobody", "a1").await, 409, "giver_not_entitled").await;
    // A licence seat is not a giving source by default.
    let licence = app
        .client
        .post(app.url("/v1/licences"))
        .bearer_auth(&app.admin_key)
        .json(&json!({
            "name": "University of Example",
            "entitlements": ["articles"],
            "email_domains": ["example.edu"],
            "expires_at": "2099-01-01T00:00:00Z",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(licence.status(), 201);
    let claim = app
        .client
        .post(app.url("/v1/readers/student/licence-claims"))
        .bearer_auth(&app.admin_key)
        .json(&json!({ "email": "student@example.edu" }))
        .send()
        .await
        .unwrap();
    assert_eq!(claim.status(), 201);
    problem(app.gift("student", "a1").await, 409, "giver_not_entitled").await;
    // Bad input is refused and makes nothing.
    let response = app
        .client
        .post(app.url("/v1/gifts/articles"))
        .bearer_auth(&app.admin_key)
        .json(&json!({ "reader_id": "ana", "article_id": "" }))
        .send()
        .await
        .unwrap();
    problem(response, 422, "invalid_body").await;
}

#[tokio::test]
async fn the_giving_sources_are_configurable() {
    let app = spawn_app_with(Options {
        configure: Some(|s| s.gift_giver_sources = vec![SourceKind::Subscription]),
        ..Options::default()
    })
    .await;
    // A grant no longer gives the right to give.
    app.grant("ana", &["articles"]).await;
    problem(app.gift("ana", "a1").await, 409, "giver_not_entitled").await;
}

#[tokio::test]
async fn the_gift_report_counts_links_recipients_and_those_who_subscribed_within_30_days() {
    let app = spawn_app().await;
    app.grant("ana", &["articles"]).await;
    let code = |gift: Value| gift["code"].as_str().unwrap().to_owned();
    let first = code(app.made_gift("ana", "a1").await);
    let second = code(app.made_gift("ana", "a2").await);
    for (who, article, gift) in [
        (("reader_id", "ben"), "a1", &first),
        (("device_id", "d-1"), "a1", &first),
        (("reader_id", "ben"), "a2", &second),
        (("reader_id", "cy"), "a1", &first),
    ] {
        assert_eq!(
            app.access(with_gift(who, article, gift)).await["reason"],
            "gift"
        );
    }
    // Ben subscribes five days after his first gift, Cy forty days after hers.
    let now = app.clock.now().timestamp();
    for (reader, days) in [("ben", 5), ("cy", 40)] {
        let created = now + days * 86_400;
        let subscription = Subscription {
            id: &format!("sub_{reader}"),
            customer: &format!("cus_{reader}"),
            reader_id: reader,
            status: "active",
            price: stripe_events::price("price_monthly", 999, "eur", "month"),
            cancel_at_period_end: false,
        };
        let event = stripe_events::subscription(
            "customer.subscription.created",
            &format!("evt_{reader}"),
            created,
            &subscription,
        );
        app.deliver_ok(&serde_json::to_vec(&event).unwrap()).await;
    }
    // December: one more link.
    app.clock.advance(chrono::Duration::days(8));
    app.made_gift("ana", "a3").await;

    let report = app
        .get_json(
            "/v1/reports/gifts?from=2026-11&to=2026-12",
            Some(&app.admin_key),
        )
        .await;
    let rows: Vec<(&str, u64, u64, u64, u64)> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["month"].as_str().unwrap(),
                r["links_created"].as_u64().unwrap(),
                r["redemptions"].as_u64().unwrap(),
                r["recipients"].as_u64().unwrap(),
                r["subscribed_within_30_days"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, [("2026-11", 2, 4, 3, 1), ("2026-12", 1, 0, 0, 0)]);
    let (_, finance) = app.new_key("finance").await;
    let csv = app
        .get(
            "/v1/reports/gifts?from=2026-11&to=2026-12&format=csv",
            Some(&finance),
        )
        .await;
    assert_eq!(csv.status(), 200);
    assert_eq!(
        csv.text().await.unwrap(),
        "month,links_created,redemptions,recipients,subscribed_within_30_days\r\n\
         2026-11,2,4,3,1\r\n2026-12,1,0,0,0\r\n"
    );
}
