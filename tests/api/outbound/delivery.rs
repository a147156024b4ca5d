//! How events are delivered: retries with backoff on the injected clock, timeouts, giving up,
//! disabling dead and gone endpoints, secret rotation, paging and replays, two instances, and a
//! crash between a change and its delivery.

use std::time::Duration;

use chrono::TimeDelta;
use serde_json::{Value, json};
use tollgate::clock::Clock;

use super::instant;
use crate::faults::process::Server;
use crate::helpers::{Options, TestDatabase, problem, spawn_app, spawn_app_with};
use crate::receiver::Receiver;

#[tokio::test]
async fn failed_deliveries_are_retried_with_backoff_on_the_clock_then_delivered() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    receiver.answer(&[500, 503]);
    let (endpoint, _) = app.add_endpoint(&receiver.url, &["grant.created"]).await;
    app.grant("ana", &["articles"]).await;

    let first = app
        .wait_deliveries(&endpoint, |d| d.len() == 1 && d[0]["attempts"] == 1)
        .await;
    let delivery = &first[0];
    assert_eq!(delivery["status"], "pending");
    assert_eq!(delivery["last_status_code"], 500);
    assert_eq!(delivery["last_error"], "answered 500");
    // 10 s, shortened by up to a fifth at random.
    let wait = instant(&delivery["next_attempt_at"]) - instant(&delivery["last_attempt_at"]);
    assert!(
        (TimeDelta::seconds(7)..=TimeDelta::seconds(10)).contains(&wait),
        "{wait}"
    );
    // Not before it is due.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 1);
    app.clock.advance(TimeDelta::seconds(10));
    let second = app
        .wait_deliveries(&endpoint, |d| d[0]["attempts"] == 2)
        .await;
    assert_eq!(second[0]["last_status_code"], 503);
    // The second wait is twice the first.
    let wait = instant(&second[0]["next_attempt_at"]) - instant(&second[0]["last_attempt_at"]);
    assert!(
        (TimeDelta::seconds(15)..=TimeDelta::seconds(20)).contains(&wait),
        "{wait}"
    );
    app.clock.advance(TimeDelta::seconds(20));
    let third = app
        .wait_deliveries(&endpoint, |d| d[0]["status"] == "delivered")
        .await;
    assert_eq!(third[0]["attempts"], 3);
    assert_eq!(third[0]["last_status_code"], 200);
    assert_eq!(third[0]["next_attempt_at"], Value::Null);
    // Every attempt carried the same event id.
    let ids: Vec<String> = receiver.received().iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|id| *id == ids[0]));
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains(r#"tollgate_webhook_deliveries_total{outcome="retried"} 2"#));
    assert!(metrics.contains(r#"tollgate_webhook_deliveries_total{outcome="delivered"} 1"#));
}

#[tokio::test]
async fn a_slow_endpoint_times_out_and_is_retried_without_holding_up_another() {
    let app = spawn_app_with(Options {
        configure: Some(|s| s.webhook_delivery_timeout = Duration::from_secs(4)),
        ..Options::default()
    })
    .await;
    let (slow, fast) = (Receiver::start().await, Receiver::start().await);
    slow.delay(Duration::from_secs(10));
    let (slow_id, _) = app.add_endpoint(&slow.url, &["grant.created"]).await;
    app.add_endpoint(&fast.url, &["grant.created"]).await;
    for reader in ["ana", "ben", "cleo"] {
        app.grant(reader, &["articles"]).await;
    }
    // The fast endpoint gets all three while the slow one's first attempt is still waiting for
    // its answer: nothing of the slow one has been recorded yet.
    fast.wait_within("three grants", Duration::from_secs(3), |r| r.len() == 3)
        .await;
    assert_eq!(slow.started(), 1);
    assert!(
        app.deliveries(&slow_id)
            .await
            .iter()
            .all(|d| d["attempts"] == 0),
    );
    // Then it times out and waits its backoff, and the endpoint's other deliveries with it.
    let deliveries = app
        .wait_deliveries(&slow_id, |d| d.iter().any(|d| d["attempts"] == 1))
        .await;
    let attempted = deliveries.iter().find(|d| d["attempts"] == 1).unwrap();
    assert_eq!(attempted["status"], "pending");
    assert_eq!(attempted["last_status_code"], Value::Null);
    assert!(
        attempted["last_error"]
            .as_str()
            .unwrap()
            .starts_with("timed out"),
        "{attempted}"
    );
    assert_eq!(deliveries.iter().filter(|d| d["attempts"] == 0).count(), 2);
}

#[tokio::test]
async fn a_delivery_being_attempted_cannot_be_retried_at_the_same_time() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    receiver.delay(Duration::from_secs(2));
    let (endpoint, _) = app.add_endpoint(&receiver.url, &["grant.created"]).await;
    app.grant("ana", &["articles"]).await;
    for _ in 0..100 {
        if receiver.started() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(receiver.started(), 1);
    let delivery = app.deliveries(&endpoint).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let retried = app
        .admin_post(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries/{delivery}/retry"),
            None,
        )
        .await;
    problem(retried, 409, "delivery_in_flight").await;
    let delivered = app
        .wait_deliveries(&endpoint, |d| d[0]["status"] == "delivered")
        .await;
    assert_eq!(delivered[0]["attempts"], 1);
    // Once it ended, a retry sends it again.
    let retried = app
        .admin_post(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries/{delivery}/retry"),
            None,
        )
        .await;
    assert_eq!(retried.status(), 202);
    receiver
        .wait_for("the retried delivery", |r| r.len() == 2)
        .await;
}

#[tokio::test]
async fn deliveries_are_given_up_after_the_retry_window_and_a_dead_endpoint_is_disabled() {
    let app = spawn_app_with(Options {
        configure: Some(|s| {
            s.webhook_delivery_retry_for = Duration::from_secs(3600);
            s.webhook_disable_after = Duration::from_secs(2 * 3600);
        }),
        ..Options::default()
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.then_answer(500);
    let (endpoint, _) = app.add_endpoint(&receiver.url, &["grant.created"]).await;
    app.grant("ana", &["articles"]).await;
    // Attempts until the hour is over: then failed, for good.
    let mut given_up = false;
    for _ in 0..40 {
        let deliveries = app.deliveries(&endpoint).await;
        if deliveries[0]["status"] == "failed" {
            given_up = true;
            break;
        }
        app.clock.advance(TimeDelta::minutes(5));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(given_up, "{:#}", json!(app.deliveries(&endpoint).await));
    assert_eq!(app.endpoint(&endpoint).await["enabled"], true);
    // Failing on, with new events coming, for two hours since the first failure disables the
    // endpoint; its events are kept.
    let mut disabled = Value::Null;
    for i in 0..60 {
        disabled = app.endpoint(&endpoint).await;
        if disabled["enabled"] == false {
            break;
        }
        app.grant(&format!("reader-{i}"), &["articles"]).await;
        app.clock.advance(TimeDelta::minutes(10));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(disabled["enabled"], false, "{disabled}");
    assert_eq!(
        disabled["disabled_reason"],
        "every delivery failed for 2 hours"
    );
    // Enabled again by an admin, a retried delivery goes through.
    receiver.then_answer(200);
    let enabled = app
        .client
        .patch(app.url(&format!("/v1/webhook-endpoints/{endpoint}")))
        .bearer_auth(&app.admin_key)
        .json(&json!({ "enabled": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(enabled.status(), 200);
    let enabled: Value = enabled.json().await.unwrap();
    assert_eq!(enabled["disabled_reason"], Value::Null);
    let failed = app.deliveries(&endpoint).await[0].clone();
    let retried = app
        .admin_post(
            &format!(
                "/v1/webhook-endpoints/{endpoint}/deliveries/{}/retry",
                failed["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(retried.status(), 202);
    let delivered = app
        .wait_deliveries(&endpoint, |d| d[0]["status"] == "delivered")
        .await;
    assert_eq!(delivered[0]["last_status_code"], 200);
}

#[tokio::test]
async fn an_endpoint_answering_410_gone_is_disabled_at_once() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    receiver.answer(&[410]);
    let (endpoint, _) = app.add_endpoint(&receiver.url, &["grant.created"]).await;
    app.grant("ana", &["articles"]).await;
    let deliveries = app
        .wait_deliveries(&endpoint, |d| d[0]["status"] == "failed")
        .await;
    assert_eq!(deliveries[0]["last_status_code"], 410);
    let disabled = app.endpoint(&endpoint).await;
    assert_eq!(disabled["enabled"], false);
    assert_eq!(disabled["disabled_reason"], "it answered 410 Gone");
    // Nothing more is sent to it.
    app.grant("ben", &["articles"]).await;
    app.clock.advance(TimeDelta::days(1));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn after_a_rotation_deliveries_carry_both_signatures_until_the_overlap_ends() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let (endpoint, old) = app.add_endpoint(&receiver.url, &["grant.created"]).await;
    let rotated = app
        .admin_post(
            &format!("/v1/webhook-endpoints/{endpoint}/rotate-secret"),
            None,
        )
        .await;
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(
        instant(&rotated["previous_secret_expires_at"]),
        app.clock.now() + TimeDelta::hours(24)
    );
    app.grant("ana", &["articles"]).await;
    let during = receiver.wait_for("a delivery", |r| r.len() == 1).await;
    assert_eq!(during[0].signatures.len(), 2);
    assert!(during[0].verifies_with(&old));
    assert!(during[0].verifies_with(&new));

    app.clock.advance(TimeDelta::hours(24));
    app.grant("ben", &["articles"]).await;
    let after = receiver
        .wait_for("a second delivery", |r| r.len() == 2)
        .await;
    assert_eq!(after[1].signatures.len(), 1);
    assert!(after[1].verifies_with(&new));
    assert!(!after[1].verifies_with(&old));
}

#[tokio::test]
async fn deliveries_list_page_by_page_and_a_replay_sends_a_time_range_again() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let (endpoint, _) = app.add_endpoint(&receiver.url, &["grant.created"]).await;
    let start = app.clock.now();
    for reader in ["ana", "ben", "cleo"] {
        app.grant(reader, &["articles"]).await;
        app.clock.advance(TimeDelta::minutes(1));
    }
    app.wait_deliveries(&endpoint, |d| {
        d.len() == 3 && d.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    let page: Value = app
        .get_json(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries?limit=2&status=delivered"),
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let next: Value = app
        .get_json(
            &format!(
                "/v1/webhook-endpoints/{endpoint}/deliveries?limit=2&after={}",
                page["next_cursor"].as_str().unwrap()
            ),
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(next["items"].as_array().unwrap().len(), 1);
    assert_eq!(next["next_cursor"], Value::Null);

    // The first two minutes again: ana's and ben's grants, under their first event ids.
    let replay = app
        .admin_post(
            &format!("/v1/webhook-endpoints/{endpoint}/replay"),
            Some(json!({
                "from": tollgate::domain::time::rfc3339(start),
                "to": tollgate::domain::time::rfc3339(start + TimeDelta::seconds(90)),
            })),
        )
        .await;
    assert_eq!(replay.status(), 202);
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["scheduled"], 2);
    let received = receiver.wait_for("the replay", |r| r.len() == 5).await;
    assert_eq!(received[3].id, received[0].id);
    assert_eq!(received[4].id, received[1].id);

    let backwards = app
        .admin_post(
            &format!("/v1/webhook-endpoints/{endpoint}/replay"),
            Some(json!({ "from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z" })),
        )
        .await;
    problem(backwards, 422, "invalid_body").await;
}

#[tokio::test]
async fn two_instances_deliver_each_event_once() {
    let app = spawn_app().await;
    let second = app.second_instance().await;
    let receiver = Receiver::start().await;
    let (endpoint, _) = app.add_endpoint(&receiver.url, &["grant.created"]).await;
    let readers: Vec<String> = (0..24).map(|i| format!("reader-{i}")).collect();
    for (i, reader) in readers.iter().enumerate() {
        let base = if i % 2 == 0 {
            app.address.clone()
        } else {
            second.clone()
        };
        let response = app
            .client
            .post(format!("{base}/v1/readers/{reader}/grants"))
            .bearer_auth(&app.admin_key)
            .json(&json!({ "entitlements": ["articles"], "expires_at": "2099-01-01T00:00:00Z", "reason": "test" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    app.wait_deliveries(&endpoint, |d| {
        d.len() == 24 && d.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ids: Vec<String> = receiver.received().iter().map(|r| r.id.clone()).collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!((before, ids.len()), (24, 24));
}

#[tokio::test]
async fn a_kill_between_the_change_and_its_delivery_loses_no_event() {
    let db = TestDatabase::create().await;
    let receiver = Receiver::start().await;
    // The receiver is down for now: every attempt fails.
    receiver.then_answer(503);
    let mut server = Server::start(
        db.url(),
        &[
            ("TOLLGATE_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1"),
            ("TOLLGATE_ALLOW_INSECURE_WEBHOOK_URLS", "true"),
            ("TOLLGATE_ALLOW_PRIVATE_WEBHOOK_TARGETS", "true"),
            ("TOLLGATE_WEBHOOK_DISPATCH_INTERVAL", "100ms"),
            ("TOLLGATE_WEBHOOK_DELIVERY_BACKOFF", "1s"),
            // A claim the kill left behind runs out within 2 × 2 s + 5 s.
            ("TOLLGATE_WEBHOOK_DELIVERY_TIMEOUT", "2s"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/v1/webhook-endpoints", server.base()))
        .bearer_auth(&server.admin_key)
        .json(&json!({ "url": receiver.url, "event_types": ["grant.created"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let grant: Value = http
        .post(format!("{}/v1/readers/ana/grants", server.base()))
        .bearer_auth(&server.admin_key)
        .json(&json!({ "entitlements": ["articles"], "expires_at": "2099-01-01T00:00:00Z", "reason": "test" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    server.kill().await;
    receiver.then_answer(200);
    server.restart().await;
    let received = receiver
        .wait_within("the grant after the crash", Duration::from_secs(30), |r| {
            r.iter()
                .any(|d| d.answered == 200 && d.json()["data"]["grant_id"] == grant["id"])
        })
        .await;
    let delivered: Vec<_> = received
        .iter()
        .filter(|d| d.json()["data"]["grant_id"] == grant["id"])
        .collect();
    assert!(delivered.iter().all(|d| d.verifies_with(&secret)));
    assert!(delivered.iter().all(|d| d.id == delivered[0].id));
}
