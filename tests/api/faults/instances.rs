//! Two tollgate processes on one database, behind no balancer: each event is applied once
//! whichever instance gets it (or both at once), a reader's free articles are counted once
//! across both, and the background retry tries each failed event once, not once per instance.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use super::process::Server;
use super::scenario::Scenario;
use super::{client, figures, rows, signature, stored_and_applied_once};
use crate::helpers::TestDatabase;

const SUBSCRIPTION: &[u8] =
    include_bytes!("../../fixtures/stripe/customer.subscription.created.json");

/// The sum of a counter over the series whose labels include `label`, from `/metrics`.
async fn counter(server: &Server, name: &str, label: &str) -> u64 {
    let text = server.metrics().await;
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .sum()
}

fn backend(db: &TestDatabase) -> &'static str {
    if db.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    }
}

/// Delivers `body` once to `base`: the status and the body's `duplicate` flag.
async fn deliver_once(http: &reqwest::Client, base: &str, body: &[u8]) -> (u16, Value) {
    let response = http
        .post(format!("{base}/v1/webhooks/stripe"))
        .header("content-type", "application/json")
        .header("stripe-signature", signature(body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_event_delivered_to_two_instances_at_once_is_stored_and_applied_once() {
    let db = TestDatabase::create().await;
    let busy = [("TOLLGATE_SQLITE_BUSY_TIMEOUT", "5s")];
    let (a, b) = (
        Server::start(db.url(), &busy).await,
        Server::start(db.url(), &busy).await,
    );
    a.put_plans().await;
    let scenario = Scenario::new(400, 11);
    let http = client();
    let mut pairs = Vec::new();
    for chunk in scenario.events.chunks(8) {
        let sends = chunk.iter().map(|(_, body)| {
            let (http, a, b) = (http.clone(), a.base(), b.base());
            async move {
                tokio::join!(
                    deliver_once(&http, &a, body),
                    deliver_once(&http, &b, body)
                )
            }
        });
        pairs.extend(futures_util::future::join_all(sends).await);
    }
    let applied = counter(
        &a,
        "tollgate_webhook_events_applied_total",
        "outcome=\"applied\"",
    )
    .await
        + counter(
            &b,
            "tollgate_webhook_events_applied_total",
            "outcome=\"applied\"",
        )
        .await;
    figures(
        "instances_same_event",
        backend(&db),
        json!({ "events": scenario.events.len(), "deliveries": 2 * pairs.len(), "applied": applied }),
    );
    for ((status_a, body_a), (status_b, body_b)) in &pairs {
        assert_eq!((*status_a, *status_b), (200, 200), "{body_a} {body_b}");
        let duplicates = [&body_a["duplicate"], &body_b["duplicate"]];
        assert!(
            duplicates.contains(&&json!(true)) && duplicates.contains(&&json!(false)),
            "one copy stored it, the other found it stored: {body_a} {body_b}"
        );
    }
    assert_eq!(
        applied,
        scenario.events.len() as u64,
        "applied once across both"
    );
    let sent = i64::try_from(scenario.events.len()).unwrap();
    assert_eq!(stored_and_applied_once(db.url()).await, (sent, sent));
    for (reader, expected) in &scenario.expected {
        assert_eq!(&b.entitlements(reader).await, expected, "{reader}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_reading_through_two_instances_at_once_never_gets_more_than_the_limit() {
    let db = TestDatabase::create().await;
    let busy = [("TOLLGATE_SQLITE_BUSY_TIMEOUT", "5s")];
    let (a, b) = (
        Server::start(db.url(), &busy).await,
        Server::start(db.url(), &busy).await,
    );
    let http = client();
    let readers = 8;
    let articles = 12;
    let requests =
        (0..readers).flat_map(|reader| (0..articles).map(move |article| (reader, article)));
    let answers = futures_util::future::join_all(requests.map(|(reader, article)| {
        let http = http.clone();
        let (base, key) = if article % 2 == 0 {
            (a.base(), a.admin_key.clone())
        } else {
            (b.base(), b.admin_key.clone())
        };
        async move {
            let response = http
                .post(format!("{base}/v1/access"))
                .bearer_auth(key)
                .json(&json!({ "reader_id": format!("two-{reader}"), "article_id": format!("a{article}") }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let decision: Value = response.json().await.unwrap();
            (reader, article, decision["granted"] == true)
        }
    }))
    .await;
    let mut granted = 0;
    for reader in 0..readers {
        let mine: BTreeSet<i32> = answers
            .iter()
            .filter(|(r, _, g)| *r == reader && *g)
            .map(|(_, article, _)| *article)
            .collect();
        assert_eq!(mine.len(), 3, "reader {reader} was granted {mine:?}");
        let view = a.reader(&format!("two-{reader}")).await;
        assert_eq!(view["meter"]["used"], 3);
        granted += mine.len();
    }
    figures(
        "instances_meter",
        backend(&db),
        json!({ "requests": answers.len(), "granted": granted, "limit_per_reader": 3 }),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_background_retry_tries_each_failed_event_once_not_once_per_instance() {
    let db = TestDatabase::create().await;
    // Retried a second after failing, and only once: the next retry would fall after the
    // window. So each event ends with exactly two attempts, unless both instances retry it.
    let retry = [
        ("TOLLGATE_SQLITE_BUSY_TIMEOUT", "5s"),
        ("TOLLGATE_WEBHOOK_RETRY_INTERVAL", "50ms"),
        ("TOLLGATE_WEBHOOK_RETRY_BACKOFF", "1s"),
        ("TOLLGATE_WEBHOOK_RETRY_FOR", "1500ms"),
    ];
    let (a, b) = (
        Server::start(db.url(), &retry).await,
        Server::start(db.url(), &retry).await,
    );
    let http = client();
    let events = 150;
    // Subscriptions of customers no reader is linked to: they wait, and fail each attempt.
    for i in 0..events {
        let mut event: Value = serde_json::from_slice(SUBSCRIPTION).unwrap();
        event["id"] = format!("evt_unlinked_{i}").into();
        let object = &mut event["data"]["object"];
        object["id"] = format!("sub_unlinked_{i}").into();
        object["customer"] = format!("cus_unlinked_{i}").into();
        object["metadata"] = json!({});
        let base = if i % 2 == 0 { a.base() } else { b.base() };
        let (status, _) = deliver_once(&http, &base, &serde_json::to_vec(&event).unwrap()).await;
        assert_eq!(status, 200);
    }
    // Wait until no event is due any more (each retried once), and a little longer.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let pending: Vec<(i64,)> = rows(
            db.url(),
            "SELECT count(*) FROM webhook_events WHERE next_attempt_at IS NOT NULL",
        )
        .await;
        if pending[0].0 == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "events still due");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let attempts: Vec<(String, i64)> = rows(
        db.url(),
        "SELECT id, attempts FROM webhook_events WHERE status = 'failed' ORDER BY id",
    )
    .await;
    let waiting = counter(
        &a,
        "tollgate_webhook_events_applied_total",
        "outcome=\"waiting\"",
    )
    .await
        + counter(
            &b,
            "tollgate_webhook_events_applied_total",
            "outcome=\"waiting\"",
        )
        .await;
    let on_a = counter(
        &a,
        "tollgate_webhook_events_applied_total",
        "outcome=\"waiting\"",
    )
    .await;
    figures(
        "instances_retry",
        backend(&db),
        json!({ "events": events, "attempts": waiting, "attempts_on_first_instance": on_a }),
    );
    assert_eq!(attempts.len(), events, "every event kept as failed");
    let twice: Vec<&(String, i64)> = attempts.iter().filter(|(_, n)| *n != 2).collect();
    assert!(twice.is_empty(), "attempts other than 2: {twice:?}");
    assert_eq!(
        waiting,
        2 * events as u64,
        "each attempt counted once, on one instance"
    );
}
