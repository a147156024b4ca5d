//! A database outage under load. PostgreSQL is cut off by a proxy the test owns; SQLite's file
//! is locked by the test process, another process than the server's. While the database is
//! away, `/readyz` says 503, webhooks are answered 503 (never a 2xx without storing the event),
//! and access decisions that need the database are a 503 problem without internals; when it
//! returns, the same process serves again and the redelivered events apply.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::{Connection, Executor};

use super::process::Server;
use super::scenario::Scenario;
use super::{client, deliver_until_acknowledged, figures, stored_and_applied_once};
use crate::helpers::{Proxy, TestDatabase};

/// Words that would betray internals in a problem document.
const INTERNALS: [&str; 9] = [
    "sqlx",
    "sqlite",
    "postgres",
    "pool",
    "locked",
    "os error",
    "refused",
    "127.0.0.1",
    "tollgate_test_",
];

/// Every answer the load got, by phase.
#[derive(Default)]
struct Answers {
    /// (during the outage?, status) of each `/readyz`.
    ready: Vec<(bool, u16)>,
    /// Status of each access decision, and of each that was neither 200 nor a clean 503.
    access: Vec<(bool, u16)>,
    bad_problems: Vec<String>,
    /// Per reader, the articles whose access was granted.
    granted: BTreeMap<String, BTreeSet<String>>,
}

/// Takes the database away from the server; dropping it, or `end`, gives it back.
pub(super) enum Outage {
    Postgres(Arc<Proxy>),
    Sqlite(sqlx::SqliteConnection),
}

/// A proxy that can cut the database off (PostgreSQL only; SQLite's outage is a lock on its
/// file), and the URL a server should be given: the proxy's, or the database's own.
pub(super) async fn cuttable(db: &TestDatabase) -> (Option<Arc<Proxy>>, String) {
    let proxy = if db.is_postgres() {
        Some(Arc::new(Proxy::start(db.url()).await))
    } else {
        None
    };
    let url = proxy
        .as_ref()
        .map_or_else(|| db.url().to_owned(), |p| p.url.clone());
    (proxy, url)
}

impl Outage {
    pub(super) async fn begin(db: &TestDatabase, proxy: Option<&Arc<Proxy>>) -> Self {
        match proxy {
            Some(proxy) => {
                proxy.cut();
                Self::Postgres(Arc::clone(proxy))
            }
            None => {
                let mut conn = sqlx::SqliteConnection::connect(db.url()).await.unwrap();
                conn.execute("BEGIN EXCLUSIVE").await.unwrap();
                Self::Sqlite(conn)
            }
        }
    }

    pub(super) async fn end(self) {
        match self {
            Self::Postgres(proxy) => proxy.restore().await,
            Self::Sqlite(mut conn) => {
                conn.execute("ROLLBACK").await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }
}

/// Notes one access answer; whether it was a decision (so the next article is due).
fn record(
    answers: &Mutex<Answers>,
    reader_id: &str,
    article_id: &str,
    during: bool,
    status: u16,
    content_type: Option<String>,
    body: &str,
) -> bool {
    let mut answers = answers.lock().unwrap();
    answers.access.push((during, status));
    if status == 200 {
        let decision: Value = serde_json::from_str(body).unwrap();
        if decision["granted"] == true {
            answers
                .granted
                .entry(reader_id.to_owned())
                .or_default()
                .insert(article_id.to_owned());
        }
        return true;
    }
    let lower = body.to_lowercase();
    if status != 503
        || content_type.as_deref() != Some("application/problem+json")
        || !body.contains("\"code\":\"database_unavailable\"")
        || INTERNALS.iter().any(|word| lower.contains(word))
    {
        answers.bad_problems.push(format!("{status} {body}"));
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_load_a_database_outage_answers_503_and_the_same_process_recovers() {
    let db = TestDatabase::create().await;
    let (proxy, url) = cuttable(&db).await;
    let server = Server::start(
        &url,
        &[
            ("TOLLGATE_DATABASE_ACQUIRE_TIMEOUT", "1s"),
            ("TOLLGATE_SQLITE_BUSY_TIMEOUT", "250ms"),
            ("TOLLGATE_READINESS_TIMEOUT", "1s"),
            // An event stored just before the outage may fail to apply inline; the retry task
            // must come back to it within the test's patience.
            ("TOLLGATE_WEBHOOK_RETRY_INTERVAL", "200ms"),
            ("TOLLGATE_WEBHOOK_RETRY_BACKOFF", "1s"),
        ],
    )
    .await;
    let pid = server.pid();
    let base = server.base();
    let http = client();
    server.put_plans().await;

    let outage_on = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(Mutex::new(Answers::default()));
    let scenario = Scenario::new(400, 7);
    let events = Arc::new(Mutex::new(scenario.events.clone()));
    let deliveries = Arc::new(Mutex::new(Vec::new()));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (events, deliveries, base) =
            (Arc::clone(&events), Arc::clone(&deliveries), base.clone());
        load.push(tokio::spawn(async move {
            let http = client();
            loop {
                let next = events.lock().unwrap().pop();
                let Some((_, body)) = next else { break };
                let delivery = deliver_until_acknowledged(&http, &base, &body).await;
                deliveries.lock().unwrap().push(delivery);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    for reader in 0..4 {
        let (answers, outage_on, stop) = (
            Arc::clone(&answers),
            Arc::clone(&outage_on),
            Arc::clone(&stop),
        );
        let (base, key) = (base.clone(), server.admin_key.clone());
        load.push(tokio::spawn(async move {
            let http = client();
            // Each reader reads four articles: three are free, the fourth is refused.
            for round in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let reader_id = format!("metered-{reader}-{round}");
                for article in 1..=4 {
                    let article_id = format!("article-{article}");
                    loop {
                        let during = outage_on.load(Ordering::SeqCst);
                        let sent = http
                            .post(format!("{base}/v1/access"))
                            .bearer_auth(&key)
                            .json(&json!({ "reader_id": reader_id, "article_id": article_id }))
                            .send()
                            .await;
                        let Ok(response) = sent else { continue };
                        let status = response.status().as_u16();
                        let content_type = response
                            .headers()
                            .get("content-type")
                            .map(|v| v.to_str().unwrap().to_owned());
                        let body = response.text().await.unwrap_or_default();
                        if record(
                            &answers,
                            &reader_id,
                            &article_id,
                            during,
                            status,
                            content_type,
                            &body,
                        ) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    {
        let (answers, outage_on, stop, base) = (
            Arc::clone(&answers),
            Arc::clone(&outage_on),
            Arc::clone(&stop),
            base.clone(),
        );
        load.push(tokio::spawn(async move {
            let http = client();
            while !stop.load(Ordering::SeqCst) {
                let during = outage_on.load(Ordering::SeqCst);
                if let Ok(response) = http.get(format!("{base}/readyz")).send().await {
                    answers
                        .lock()
                        .unwrap()
                        .ready
                        .push((during, response.status().as_u16()));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    let outage = Outage::begin(&db, proxy.as_ref()).await;
    outage_on.store(true, Ordering::SeqCst);
    let began = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    outage_on.store(false, Ordering::SeqCst);
    outage.end().await;
    let outage_seconds = began.elapsed().as_secs_f64();
    // Recovery: ready again, in the same process.
    let recovered = Instant::now();
    loop {
        let ready = http.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            recovered.elapsed() < Duration::from_secs(15),
            "not ready again after the outage"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recovery_seconds = recovered.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for task in load {
        tokio::time::timeout(Duration::from_secs(120), task)
            .await
            .expect("the load did not finish")
            .unwrap();
    }
    assert_eq!(server.pid(), pid, "the same process served throughout");

    let deliveries = deliveries.lock().unwrap().clone();
    let answers = std::mem::take(&mut *answers.lock().unwrap());
    let during_503 = |list: &[(bool, u16)]| list.iter().filter(|(d, s)| *d && *s == 503).count();
    let webhook_503: u32 = deliveries.iter().map(|d| d.unavailable).sum();
    let unexpected: Vec<u16> = deliveries
        .iter()
        .flat_map(|d| d.unexpected.clone())
        .collect();
    figures(
        "outage",
        if db.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        },
        json!({
            "outage_seconds": (outage_seconds * 10.0).round() / 10.0,
            "ready_again_after_seconds": (recovery_seconds * 100.0).round() / 100.0,
            "events_sent": scenario.events.len(),
            "webhooks_answered_503": webhook_503,
            "access_answered_503": during_503(&answers.access),
            "readyz_answered_503": during_503(&answers.ready),
            "access_decisions": answers.access.len(),
        }),
    );

    assert!(
        unexpected.is_empty(),
        "webhook answers other than 2xx and 503: {unexpected:?}"
    );
    assert!(
        answers.bad_problems.is_empty(),
        "{:?}",
        answers.bad_problems
    );
    assert!(
        during_503(&answers.ready) > 0,
        "/readyz never said 503: {:?}",
        answers.ready
    );
    assert!(webhook_503 > 0, "no webhook was refused during the outage");
    assert!(
        during_503(&answers.access) > 0,
        "no access decision was refused during the outage"
    );
    // Every event acknowledged, stored, and applied once the database came back: inline, or, for
    // one stored just as the database went away, by the retry task after its backoff.
    let sent = i64::try_from(scenario.events.len()).unwrap();
    let settling = Instant::now();
    let mut counts = stored_and_applied_once(db.url()).await;
    while counts != (sent, sent) && settling.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        counts = stored_and_applied_once(db.url()).await;
    }
    assert_eq!(counts, (sent, sent), "stored, and applied exactly once");
    // No grant that was not recorded: each reader's meter holds exactly the articles it was
    // granted, and never more than three.
    for (reader, granted) in &answers.granted {
        let view = server.reader(reader).await;
        assert_eq!(
            view["meter"]["used"],
            json!(granted.len()),
            "{reader} was granted {granted:?}"
        );
        assert!(granted.len() <= 3, "{reader} was granted {granted:?}");
    }
}
