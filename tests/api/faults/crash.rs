//! Crash mid-stream: eight senders deliver signed events and retry until acknowledged, as
//! Stripe does, while the server is killed with SIGKILL at random moments and restarted.
//! Every acknowledged event must be stored and applied exactly once, and the mirror must end
//! up as it does when nothing crashes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::json;

use super::process::Server;
use super::scenario::{INVOICE_AMOUNT, REFUND_AMOUNT, Scenario};
use super::{Delivery, client, deliver_until_acknowledged, figures, rows, size};
use crate::helpers::TestDatabase;

const SENDERS: usize = 8;

/// What one run left behind.
struct Run {
    deliveries: Vec<Delivery>,
    acknowledged: Vec<String>,
    entitlements: BTreeMap<String, Vec<String>>,
    crashes: usize,
    seconds: f64,
    peak_rss_kib: u64,
}

/// Delivers every event of `scenario` to a fresh server on `db`, killing it `crashes` times.
async fn run(db: &TestDatabase, scenario: &Scenario, crashes: usize) -> Run {
    let mut server = Server::start(db.url(), &[]).await;
    server.put_plans().await;
    let events = Arc::new(scenario.events.clone());
    let next = Arc::new(AtomicUsize::new(0));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let deliveries = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (events, next) = (Arc::clone(&events), Arc::clone(&next));
            let (acknowledged, deliveries) = (Arc::clone(&acknowledged), Arc::clone(&deliveries));
            let base = server.base();
            tokio::spawn(async move {
                let http = client();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((id, body)) = events.get(i) else {
                        break;
                    };
                    let delivery = deliver_until_acknowledged(&http, &base, body).await;
                    acknowledged.lock().unwrap().push(id.clone());
                    deliveries.lock().unwrap().push(delivery);
                }
            })
        })
        .collect();
    // Each crash falls at a random moment within its own stretch of the run.
    let total = events.len();
    let mut peak_rss_kib = 0;
    for crash in 0..crashes {
        let stretch = total / (crashes + 1);
        let at = stretch * crash + stretch / 2 + rand::rng().random_range(0..stretch.max(1));
        while acknowledged.lock().unwrap().len() < at {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        peak_rss_kib = peak_rss_kib.max(server.peak_rss_kib());
        server.kill().await;
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(0..300))).await;
        server.restart().await;
    }
    for sender in senders {
        tokio::time::timeout(Duration::from_secs(600), sender)
            .await
            .expect("the senders did not finish")
            .unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    wait_until_applied(db.url(), total).await;
    peak_rss_kib = peak_rss_kib.max(server.peak_rss_kib());
    let mut entitlements = BTreeMap::new();
    for (reader, _) in &scenario.expected {
        entitlements.insert(reader.clone(), server.entitlements(reader).await);
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let deliveries = deliveries.lock().unwrap().clone();
    Run {
        deliveries,
        acknowledged,
        entitlements,
        crashes,
        seconds,
        peak_rss_kib,
    }
}

/// Waits (a bounded time) until `total` events are stored and none is left to apply: an event
/// a crash stored but did not apply is applied by its redelivery or the retry task.
async fn wait_until_applied(url: &str, total: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counts: Vec<(i64, i64)> = rows(
            url,
            "SELECT count(*), count(CASE WHEN status = 'applied' THEN 1 END) FROM webhook_events",
        )
        .await;
        if counts[0] == (i64::try_from(total).unwrap(), i64::try_from(total).unwrap()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "stored and applied events: {counts:?} of {total}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_event_is_applied_exactly_once_across_kill_9_crashes() {
    let events = size("FAULTS_EVENTS", 2_000);
    let crashes = size("FAULTS_CRASHES", 3);
    let scenario = Scenario::new(events, rand::rng().random());
    let calm_db = TestDatabase::create().await;
    let calm = run(&calm_db, &Scenario::new(events, 1), 0).await;
    let db = TestDatabase::create().await;
    let chaos = run(&db, &scenario, crashes).await;

    let sent = scenario.events.len();
    let attempts: u32 = chaos.deliveries.iter().map(|d| d.attempts).sum();
    let unavailable: u32 = chaos.deliveries.iter().map(|d| d.unavailable).sum();
    let unexpected: Vec<u16> = chaos
        .deliveries
        .iter()
        .flat_map(|d| d.unexpected.clone())
        .collect();
    let stored: Vec<(String, String, i64)> =
        rows(db.url(), "SELECT id, status, attempts FROM webhook_events").await;
    let stored: BTreeMap<String, (String, i64)> = stored
        .into_iter()
        .map(|(id, status, attempts)| (id, (status, attempts)))
        .collect();
    let lost: Vec<&String> = chaos
        .acknowledged
        .iter()
        .filter(|id| {
            stored
                .get(*id)
                .is_none_or(|(status, _)| status != "applied")
        })
        .collect();
    let applied_more_than_once: Vec<(&String, i64)> = stored
        .iter()
        .filter(|(_, (_, attempts))| *attempts != 1)
        .map(|(id, (_, attempts))| (id, *attempts))
        .collect();
    figures(
        "crash",
        if db.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        },
        json!({
            "sent": sent,
            "acknowledged": chaos.acknowledged.len(),
            "applied": stored.values().filter(|(status, _)| status == "applied").count(),
            "lost": lost.len(),
            "crashes": chaos.crashes,
            "deliveries": attempts,
            "answered_503": unavailable,
            "seconds": (chaos.seconds * 10.0).round() / 10.0,
            "seconds_without_crashes": (calm.seconds * 10.0).round() / 10.0,
            "peak_rss_mib": chaos.peak_rss_kib / 1024,
        }),
    );

    assert_eq!(chaos.crashes, crashes);
    assert!(
        unexpected.is_empty(),
        "answers other than 2xx and 503: {unexpected:?}"
    );
    assert_eq!(
        chaos.acknowledged.len(),
        sent,
        "every event was acknowledged in the end"
    );
    assert!(lost.is_empty(), "acknowledged but not applied: {lost:?}");
    assert_eq!(stored.len(), sent, "one stored event per event id");
    // An attempt counts only when its transaction commits, so 1 means applied exactly once.
    assert!(
        applied_more_than_once.is_empty(),
        "events applied more than once: {applied_more_than_once:?}"
    );
    let money: Vec<(i64, i64)> = rows(
        db.url(),
        "SELECT count(*), CAST(COALESCE(SUM(amount_paid), 0) AS BIGINT) FROM invoices",
    )
    .await;
    assert_eq!(
        money[0],
        (scenario.invoices, scenario.invoices * INVOICE_AMOUNT),
        "no invoice twice"
    );
    let refunds: Vec<(i64, i64, i64)> = rows(
        db.url(),
        "SELECT count(*), CAST(COALESCE(SUM(amount), 0) AS BIGINT), count(invoice_id) FROM refunds",
    )
    .await;
    assert_eq!(
        refunds[0],
        (
            scenario.refunds,
            scenario.refunds * REFUND_AMOUNT,
            scenario.refunds
        ),
        "no refund twice, each linked to its invoice"
    );
    let expected: BTreeMap<String, Vec<String>> = scenario
        .expected
        .iter()
        .map(|(reader, names)| {
            (
                reader.clone(),
                names.iter().map(|n| (*n).to_owned()).collect(),
            )
        })
        .collect();
    assert_eq!(
        differences(&calm.entitlements, &expected),
        [],
        "without crashes"
    );
    assert_eq!(
        differences(&chaos.entitlements, &calm.entitlements),
        [],
        "with crashes, against the run without"
    );
}

/// The readers whose entitlements differ: (reader, found, expected).
fn differences(
    found: &BTreeMap<String, Vec<String>>,
    expected: &BTreeMap<String, Vec<String>>,
) -> Vec<(String, Vec<String>, Vec<String>)> {
    let mut readers: Vec<&String> = found.keys().chain(expected.keys()).collect();
    readers.sort();
    readers.dedup();
    readers
        .into_iter()
        .filter(|reader| found.get(*reader) != expected.get(*reader))
        .map(|reader| {
            (
                reader.clone(),
                found.get(reader).cloned().unwrap_or_default(),
                expected.get(reader).cloned().unwrap_or_default(),
            )
        })
        .collect()
}
