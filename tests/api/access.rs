//! `POST /v1/access`, the meter and merging devices: quota edges, re-reads, entitled readers,
//! non-meterable content, anonymous devices, calendar and rolling periods, and concurrency.

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, problem, spawn_app, spawn_app_with};

fn instant(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The claims of a token, unverified (verification has tests of its own in `tokens.rs`).
pub fn claims(token: &Value) -> Value {
    let token = token.as_str().expect("a token");
    jsonwebtoken::dangerous::insecure_decode::<Value>(token)
        .unwrap()
        .claims
}

#[tokio::test]
async fn a_reader_gets_three_free_articles_then_a_refusal_with_the_reset_and_offers() {
    let app = spawn_app().await;
    app.put_plan("all-access", &["price_aa"], &["articles"])
        .await;
    app.put_plan("reports-only", &["price_r"], &["reports"])
        .await;
    for (i, article) in ["a1", "a2", "a3"].into_iter().enumerate() {
        let decision = app.read("r-1", article).await;
        assert_eq!(decision["granted"], true, "{decision}");
        assert_eq!(decision["reason"], "metered");
        assert_eq!(decision["meter"]["used"], i + 1);
        assert_eq!(decision["meter"]["limit"], 3);
        assert_eq!(decision["meter"]["remaining"], 2 - i);
        assert_eq!(decision["meter"]["period_start"], "2026-11-01T00:00:00Z");
        assert_eq!(decision["meter"]["resets_at"], "2026-12-01T00:00:00Z");
        assert_eq!(decision["offers"], json!([]));
        let claims = claims(&decision["token"]);
        assert_eq!(claims["scope"], "article");
        assert_eq!(claims["art"], article);
        assert_eq!(claims["sub"], "r-1");
        assert_eq!(claims["meter"]["used"], i + 1);
    }
    let refused = app.read("r-1", "a4").await;
    assert_eq!(refused["granted"], false);
    assert_eq!(refused["reason"], "meter_exhausted");
    assert_eq!(refused["token"], Value::Null);
    assert_eq!(refused["meter"]["remaining"], 0);
    assert_eq!(refused["meter"]["resets_at"], "2026-12-01T00:00:00Z");
    assert_eq!(
        refused["offers"],
        json!([{ "plan_id": "all-access", "name": "all-access" }])
    );
    // Another reader's meter is their own.
    assert_eq!(app.read("r-2", "a4").await["reason"], "metered");
    assert_eq!(app.reader("r-1").await["meter"]["used"], 3);
}

#[tokio::test]
async fn re_reading_an_article_of_this_period_is_free_and_does_not_count() {
    let app = spawn_app().await;
    assert_eq!(app.read("r-1", "a1").await["reason"], "metered");
    let again = app.read("r-1", "a1").await;
    assert_eq!(again["granted"], true);
    assert_eq!(again["reason"], "already_unlocked");
    assert_eq!(again["meter"]["used"], 1);
    app.read("r-1", "a2").await;
    app.read("r-1", "a3").await;
    assert_eq!(app.read("r-1", "a4").await["reason"], "meter_exhausted");
    // A full meter still lets the reader back into what they unlocked.
    let back = app.read("r-1", "a2").await;
    assert_eq!(back["reason"], "already_unlocked");
    assert_eq!(claims(&back["token"])["art"], "a2");
    assert_eq!(app.reader("r-1").await["meter"]["used"], 3);
}

#[tokio::test]
async fn a_limit_of_one_grants_exactly_one_article() {
    let app = spawn_app_with(Options {
        configure: Some(|s| s.meter_registered_limit = 1),
        ..Options::default()
    })
    .await;
    assert_eq!(app.read("r-1", "a1").await["reason"], "metered");
    let refused = app.read("r-1", "a2").await;
    assert_eq!(refused["reason"], "meter_exhausted");
    assert_eq!(refused["meter"]["limit"], 1);
    assert_eq!(app.read("r-1", "a1").await["reason"], "already_unlocked");
}

#[tokio::test]
async fn a_limit_of_zero_refuses_every_article_as_not_allowed_with_offers() {
    let app = spawn_app_with(Options {
        configure: Some(|s| s.meter_registered_limit = 0),
        ..Options::default()
    })
    .await;
    app.put_plan("all-access", &["price_aa"], &["articles"])
        .await;
    let refused = app.read("r-1", "a1").await;
    assert_eq!(refused["granted"], false);
    assert_eq!(refused["reason"], "not_allowed");
    assert_eq!(refused["meter"], Value::Null);
    assert_eq!(refused["offers"][0]["plan_id"], "all-access");
    // Anonymous visitors get no free articles by default: the site asks them to register.
    let anonymous = app
        .access(json!({ "device_id": "dev-1", "article_id": "a1" }))
        .await;
    assert_eq!(anonymous["reason"], "not_allowed");
    assert_eq!(app.reader("r-1").await["meter"]["used"], 0);
}

#[tokio::test]
async fn an_entitled_reader_is_never_metered() {
    let app = spawn_app().await;
    app.grant("sub-1", &["articles"]).await;
    for article in ["a1", "a2", "a3", "a4", "a5"] {
        let decision = app.read("sub-1", article).await;
        assert_eq!(decision["granted"], true);
        assert_eq!(decision["reason"], "entitled");
        assert_eq!(decision["meter"], Value::Null);
        let claims = claims(&decision["token"]);
        assert_eq!(claims["ent"], json!(["articles"]));
        assert_eq!(claims["art"], article);
        assert!(claims.get("meter").is_none(), "{claims}");
    }
    assert_eq!(app.reader("sub-1").await["meter"]["used"], 0);
}

#[tokio::test]
async fn a_revoked_grant_stops_entitling_at_once() {
    let app = spawn_app().await;
    let grant = app.grant("sub-1", &["articles"]).await;
    assert_eq!(app.read("sub-1", "a1").await["reason"], "entitled");
    let revoked = app
        .client
        .delete(app.url(&format!(
            "/v1/readers/sub-1/grants/{}",
            grant["id"].as_str().unwrap()
        )))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert_eq!(app.read("sub-1", "a1").await["reason"], "metered");
}

#[tokio::test]
async fn content_requiring_a_non_meterable_entitlement_is_for_entitled_readers_only() {
    let app = spawn_app().await;
    app.put_plan("all-access", &["price_aa"], &["articles"])
        .await;
    app.put_plan("analyst", &["price_an"], &["articles", "reports"])
        .await;
    app.put_plan("old-reports", &["price_or"], &["reports"])
        .await;
    let archived = app
        .client
        .post(app.url("/v1/plans/old-reports/archive"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(archived.status(), 200);
    let body = json!({ "reader_id": "r-1", "article_id": "weekly-42", "requires": "reports" });
    let refused = app.access(body.clone()).await;
    assert_eq!(refused["granted"], false);
    assert_eq!(refused["reason"], "not_entitled");
    assert_eq!(refused["meter"], Value::Null);
    assert_eq!(
        refused["offers"],
        json!([{ "plan_id": "analyst", "name": "analyst" }])
    );
    assert_eq!(app.reader("r-1").await["meter"]["used"], 0);
    // A reader entitled to `articles` only is still refused `reports`.
    app.grant("r-1", &["articles"]).await;
    assert_eq!(app.access(body.clone()).await["reason"], "not_entitled");
    app.grant("r-1", &["reports"]).await;
    let granted = app.access(body).await;
    assert_eq!(granted["reason"], "entitled");
    assert_eq!(
        claims(&granted["token"])["ent"],
        json!(["articles", "reports"])
    );
}

#[tokio::test]
async fn a_configured_meterable_entitlement_can_be_unlocked_with_free_views() {
    let app = spawn_app_with(Options {
        configure: Some(|s| {
            s.meterable_entitlements = ["articles", "reports"]
                .map(|e| tollgate::domain::Entitlement::parse(e).unwrap())
                .to_vec();
        }),
        ..Options::default()
    })
    .await;
    let decision = app
        .access(json!({ "reader_id": "r-1", "article_id": "weekly-42", "requires": "reports" }))
        .await;
    assert_eq!(decision["reason"], "metered");
    assert_eq!(decision["meter"]["used"], 1);
}

#[tokio::test]
async fn anonymous_devices_have_a_meter_of_their_own_when_the_policy_allows_it() {
    let app = spawn_app_with(Options {
        configure: Some(|s| s.meter_anonymous_limit = 2),
        ..Options::default()
    })
    .await;
    let device = |article: &str| json!({ "device_id": "dev-1", "article_id": article });
    let first = app.access(device("a1")).await;
    assert_eq!(first["reason"], "metered");
    assert_eq!(first["meter"]["limit"], 2);
    let claims = claims(&first["token"]);
    assert_eq!(claims["sub"], "dev-1");
    assert_eq!(claims["sub_type"], "device");
    assert_eq!(app.access(device("a2")).await["reason"], "metered");
    assert_eq!(app.access(device("a3")).await["reason"], "meter_exhausted");
    assert_eq!(app.access(device("a1")).await["reason"], "already_unlocked");
    // A reader with the same id is someone else.
    assert_eq!(app.reader("dev-1").await["meter"]["used"], 0);
}

#[tokio::test]
async fn merging_a_device_moves_its_unlocks_into_the_readers_meter_never_beyond_the_limit() {
    let app = spawn_app_with(Options {
        configure: Some(|s| s.meter_anonymous_limit = 3),
        ..Options::default()
    })
    .await;
    for article in ["d1", "d2", "d3"] {
        let body = json!({ "device_id": "dev-1", "article_id": article });
        assert_eq!(app.access(body).await["reason"], "metered");
    }
    app.read("r-1", "r1").await;
    app.read("r-1", "d1").await;
    let merge = |device: &str| {
        app.client
            .post(app.url("/v1/readers/r-1/merge"))
            .bearer_auth(&app.admin_key)
            .json(&json!({ "device_id": device }))
            .send()
    };
    let response = merge("dev-1").await.unwrap();
    assert_eq!(response.status(), 200);
    let merged: Value = response.json().await.unwrap();
    assert_eq!(merged["moved"], 1, "{merged}");
    assert_eq!(merged["already_unlocked"], 1);
    assert_eq!(merged["left_over"], 1);
    assert_eq!(merged["meter"]["used"], 3);
    assert_eq!(merged["meter"]["remaining"], 0);
    // The moved article is the reader's now; the one that did not fit is not.
    assert_eq!(app.read("r-1", "d2").await["reason"], "already_unlocked");
    assert_eq!(app.read("r-1", "d3").await["reason"], "meter_exhausted");
    // Merging again moves nothing twice.
    let again: Value = merge("dev-1").await.unwrap().json().await.unwrap();
    assert_eq!(
        (
            &again["moved"],
            &again["already_unlocked"],
            &again["left_over"]
        ),
        (&json!(0), &json!(0), &json!(1))
    );
    assert_eq!(app.reader("r-1").await["meter"]["used"], 3);
    let bad = merge("dev/../1").await.unwrap();
    problem(bad, 422, "invalid_body").await;
}

#[tokio::test]
async fn a_calendar_month_in_a_non_utc_zone_turns_at_local_midnight_across_a_dst_change() {
    let app = spawn_app_with(Options {
        configure: Some(|s| s.meter_time_zone = chrono_tz::Europe::Berlin),
        ..Options::default()
    })
    .await;
    // 23:30 on 31 October in Berlin, an hour after summer time ended.
    app.clock.set(instant("2026-10-31T22:30:00Z"));
    let october = app.read("r-1", "a1").await;
    assert_eq!(october["meter"]["period_start"], "2026-09-30T22:00:00Z");
    assert_eq!(october["meter"]["resets_at"], "2026-10-31T23:00:00Z");
    app.read("r-1", "a2").await;
    app.read("r-1", "a3").await;
    app.clock.set(instant("2026-10-31T22:59:59Z"));
    assert_eq!(app.read("r-1", "a4").await["reason"], "meter_exhausted");
    // Midnight in Berlin: a new period, where a1 counts again.
    app.clock.set(instant("2026-10-31T23:00:00Z"));
    let november = app.read("r-1", "a1").await;
    assert_eq!(november["reason"], "metered");
    assert_eq!(november["meter"]["used"], 1);
    assert_eq!(november["meter"]["period_start"], "2026-10-31T23:00:00Z");
    assert_eq!(november["meter"]["resets_at"], "2026-11-30T23:00:00Z");
    // March: summer time begins on the 29th; April begins at 22:00 UTC.
    app.clock.set(instant("2027-03-31T21:59:59Z"));
    let march = app.read("r-1", "m1").await;
    assert_eq!(march["meter"]["period_start"], "2027-02-28T23:00:00Z");
    assert_eq!(march["meter"]["resets_at"], "2027-03-31T22:00:00Z");
}

#[tokio::test]
async fn a_rolling_window_frees_a_slot_when_the_oldest_unlock_ages_out() {
    let app = spawn_app_with(Options {
        configure: Some(|s| {
            s.meter_registered_limit = 2;
            s.meter_registered_period = "rolling_days:7".parse().unwrap();
        }),
        ..Options::default()
    })
    .await;
    let start = instant("2026-11-23T19:12:00Z");
    app.clock.set(start);
    let first = app.read("r-1", "a1").await;
    assert_eq!(first["meter"]["period_start"], "2026-11-16T19:12:00Z");
    assert_eq!(first["meter"]["resets_at"], "2026-11-30T19:12:00Z");
    app.clock.set(start + chrono::Duration::days(1));
    app.read("r-1", "a2").await;
    let refused = app.read("r-1", "a3").await;
    assert_eq!(refused["reason"], "meter_exhausted");
    assert_eq!(refused["meter"]["resets_at"], "2026-11-30T19:12:00Z");
    // A millisecond before a1 is seven days old it still counts.
    app.clock
        .set(start + chrono::Duration::days(7) - chrono::Duration::milliseconds(1));
    assert_eq!(app.read("r-1", "a3").await["reason"], "meter_exhausted");
    app.clock.set(start + chrono::Duration::days(7));
    let freed = app.read("r-1", "a3").await;
    assert_eq!(freed["reason"], "metered");
    assert_eq!(freed["meter"]["used"], 2);
    assert_eq!(freed["meter"]["resets_at"], "2026-12-01T19:12:00Z");
    // a1 aged out: reading it again is a new unlock, and the meter is full.
    assert_eq!(app.read("r-1", "a1").await["reason"], "meter_exhausted");
}

/// Sends `n` concurrent requests for distinct articles by `reader`, spread over `bases`; how
/// many were granted as new unlocks.
async fn concurrent_unlocks(app: &TestApp, bases: &[String], reader: &str, n: usize) -> usize {
    let requests = (0..n).map(|i| {
        let base = &bases[i % bases.len()];
        app.access_at(
            base,
            json!({ "reader_id": reader, "article_id": format!("{reader}-article-{i}") }),
        )
    });
    join_all(requests)
        .await
        .iter()
        .filter(|d| d["reason"] == "metered")
        .count()
}

#[tokio::test]
async fn concurrent_requests_never_unlock_more_than_the_meter_has_left() {
    let app = spawn_app().await;
    let bases = vec![app.address.clone()];
    for (reader, already) in [("fresh", 0), ("one-used", 1), ("two-used", 2), ("full", 3)] {
        for i in 0..already {
            app.read(reader, &format!("earlier-{i}")).await;
        }
        let granted = concurrent_unlocks(&app, &bases, reader, 24).await;
        assert_eq!(granted, 3 - already, "{reader}");
        assert_eq!(app.reader(reader).await["meter"]["used"], 3, "{reader}");
    }
}

#[tokio::test]
async fn two_instances_on_one_database_never_over_grant_together() {
    let app = spawn_app().await;
    let bases = vec![app.address.clone(), app.second_instance().await];
    for round in 0..4 {
        let reader = format!("shared-{round}");
        app.read(&reader, "earlier").await;
        let granted = concurrent_unlocks(&app, &bases, &reader, 30).await;
        assert_eq!(granted, 2, "{reader}");
        assert_eq!(app.reader(&reader).await["meter"]["used"], 3);
    }
}

#[tokio::test]
async fn malformed_missing_and_oversized_ids_are_refused_and_count_nothing() {
    let app = spawn_app().await;
    let long_article = "x".repeat(257);
    let long_reader = "r".repeat(129);
    let cases = [
        json!({ "article_id": "a1" }),
        json!({ "reader_id": "r-1", "device_id": "d-1", "article_id": "a1" }),
        json!({ "reader_id": "r-1" }),
        json!({ "reader_id": "r-1", "article_id": "" }),
        json!({ "reader_id": "r-1", "article_id": long_article }),
        json!({ "reader_id": "r-1", "article_id": "a\u{0}1" }),
        json!({ "reader_id": "r-1", "article_id": "a\n1" }),
        json!({ "reader_id": long_reader, "article_id": "a1" }),
        json!({ "reader_id": "..", "article_id": "a1" }),
        json!({ "reader_id": "r 1", "article_id": "a1" }),
        json!({ "reader_id": "r-1", "article_id": "a1", "requires": "Not An Entitlement" }),
        json!({ "reader_id": "r-1", "article_id": "a1", "extra": true }),
        json!({ "reader_id": 42, "article_id": "a1" }),
        json!({ "reader_id": "r-1", "article_id": "a1", "requires": null }),
        json!({ "reader_id": null, "device_id": "d-1", "article_id": "a1" }),
        json!({ "reader_id": "r-1", "device_id": null, "article_id": "a1" }),
    ];
    for body in cases {
        let response = app
            .client
            .post(app.url("/v1/access"))
            .bearer_auth(&app.admin_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        problem(response, 422, "invalid_body").await;
    }
    // 256 characters, multi-byte ones included, are fine.
    let longest = "é".repeat(256);
    assert_eq!(app.read("r-1", &longest).await["reason"], "metered");
    assert_eq!(app.reader("r-1").await["meter"]["used"], 1);
    let oversized = app
        .client
        .post(app.url("/v1/access"))
        .bearer_auth(&app.admin_key)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"reader_id":"r-1","article_id":"{}"}}"#,
            "y".repeat(70_000)
        ))
        .send()
        .await
        .unwrap();
    problem(oversized, 413, "payload_too_large").await;
}

/// The store's batch unlock, as the meter's writer calls it: PostgreSQL answers a batch in one
/// statement (`tollgate_unlock`), SQLite statement by statement; both must give each request the
/// answer it would get alone, in order, seeing the batch's earlier unlocks.
#[tokio::test]
async fn a_batch_of_unlocks_answers_each_request_in_order_seeing_the_earlier_ones() {
    use tollgate::domain::{
        ArticleId, Audience, MeterPolicy, MeterSubject, Period, ReaderId, Window,
    };
    use tollgate::store::{UnlockOutcome, UnlockRequest};

    let app = spawn_app().await;
    let now = instant("2026-11-20T10:00:00Z");
    let window: Window = MeterPolicy {
        limit: 3,
        period: Period::CalendarMonth,
        time_zone: chrono_tz::UTC,
    }
    .window(now);
    let request = |audience: Audience, subject: &str, article: &str| UnlockRequest {
        subject: MeterSubject {
            audience,
            id: ReaderId::parse(subject).unwrap(),
        },
        article: ArticleId::parse(article).unwrap(),
        window,
        limit: 3,
    };
    let batch = [
        request(Audience::Registered, "r-1", "a1"),
        request(Audience::Registered, "r-2", "a1"),
        request(Audience::Registered, "r-1", "a2"),
        request(Audience::Registered, "r-1", "a1"),
        request(Audience::Anonymous, "r-1", "a1"),
        request(Audience::Registered, "r-1", "a3"),
        request(Audience::Registered, "r-1", "a4"),
    ];
    let answers = app.store.unlock(&batch).await.unwrap();
    let got: Vec<(UnlockOutcome, u32, bool)> = answers
        .iter()
        .map(|a| (a.outcome, a.usage.used, a.usage.has_article))
        .collect();
    use UnlockOutcome::{AlreadyUnlocked, Exhausted, Unlocked};
    assert_eq!(
        got,
        [
            (Unlocked, 1, true),
            (Unlocked, 1, true),
            (Unlocked, 2, true),
            (AlreadyUnlocked, 2, true),
            // The same id as a device is another meter.
            (Unlocked, 1, true),
            (Unlocked, 3, true),
            (Exhausted, 3, false),
        ]
    );
    assert!(answers.iter().all(|a| a.usage.oldest == Some(now)));
    // Only the unlocks were written: a second batch sees them.
    let again = app
        .store
        .unlock(&[request(Audience::Registered, "r-1", "a2")])
        .await
        .unwrap();
    assert_eq!(again[0].outcome, AlreadyUnlocked);
    assert_eq!(again[0].usage.used, 3);
    assert!(app.store.unlock(&[]).await.unwrap().is_empty());

    // A request made earlier can reach the writer after a later one (it waited for the reader's
    // entitlements, or came from an instance whose clock is behind): it still sees that unlock.
    let earlier = MeterPolicy {
        limit: 3,
        period: Period::CalendarMonth,
        time_zone: chrono_tz::UTC,
    }
    .window(now - chrono::TimeDelta::seconds(1));
    let late = |article: &str| UnlockRequest {
        window: earlier,
        ..request(Audience::Registered, "r-3", article)
    };
    let answers = app
        .store
        .unlock(&[
            request(Audience::Registered, "r-3", "a1"),
            request(Audience::Registered, "r-3", "a2"),
            late("a3"),
            late("a4"),
        ])
        .await
        .unwrap();
    let outcomes: Vec<UnlockOutcome> = answers.iter().map(|a| a.outcome).collect();
    assert_eq!(outcomes, [Unlocked, Unlocked, Unlocked, Exhausted]);
    let after = app.store.unlock(&[late("a5")]).await.unwrap();
    assert_eq!((after[0].outcome, after[0].usage.used), (Exhausted, 3));

    // One batch across a period's end: the new period's requests count none of the old one's
    // unlocks, the batch's own included, and may open its articles again.
    let november = MeterPolicy {
        limit: 2,
        period: Period::CalendarMonth,
        time_zone: chrono_tz::UTC,
    };
    let at = |when: &str, article: &str| UnlockRequest {
        window: november.window(instant(when)),
        limit: 2,
        ..request(Audience::Registered, "r-4", article)
    };
    let answers = app
        .store
        .unlock(&[
            at("2026-11-30T23:59:59Z", "a1"),
            at("2026-11-30T23:59:59Z", "a2"),
            at("2026-12-01T00:00:01Z", "a1"),
            at("2026-12-01T00:00:01Z", "a1"),
            at("2026-12-01T00:00:02Z", "a3"),
            at("2026-12-01T00:00:03Z", "a4"),
        ])
        .await
        .unwrap();
    let got: Vec<(UnlockOutcome, u32, Option<DateTime<Utc>>)> = answers
        .iter()
        .map(|a| (a.outcome, a.usage.used, a.usage.oldest))
        .collect();
    let (old, new) = (
        instant("2026-11-30T23:59:59Z"),
        instant("2026-12-01T00:00:01Z"),
    );
    assert_eq!(
        got,
        [
            (Unlocked, 1, Some(old)),
            (Unlocked, 2, Some(old)),
            (Unlocked, 1, Some(new)),
            (AlreadyUnlocked, 1, Some(new)),
            (Unlocked, 2, Some(new)),
            (Exhausted, 2, Some(new)),
        ]
    );
}
