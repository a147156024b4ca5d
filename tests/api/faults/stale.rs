//! Entitlements through a database outage: readers whose entitlements were loaded before it are
//! answered from that load, marked stale, for `stale_if_error` after it, and at once rather than
//! after the pool's acquire timeout; nothing is metered from it, and everyone else gets a 503.
//! PostgreSQL is cut off by the test's proxy. SQLite's outage (its file locked by another
//! process) takes writes away but not reads: there entitled readers are answered afresh.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::outage::{Outage, cuttable};
use super::process::Server;
use super::{client, figures};
use crate::helpers::TestDatabase;

/// How long answers may come from a last load, as the server under test is configured.
const STALE_IF_ERROR: Duration = Duration::from_secs(4);

/// One answer: status, body, and how long it took.
async fn post(server: &Server, path: &str, body: Value) -> (u16, Value, Duration) {
    let started = Instant::now();
    let response = client()
        .post(format!("{}{path}", server.base()))
        .bearer_auth(&server.admin_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, started.elapsed())
}

async fn access(server: &Server, reader: &str, article: &str) -> (u16, Value, Duration) {
    post(
        server,
        "/v1/access",
        json!({ "reader_id": reader, "article_id": article }),
    )
    .await
}

/// The value of the metric line that starts with `series`.
async fn metric(server: &Server, series: &str) -> f64 {
    let text = server.metrics().await;
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

fn instant(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_an_outage_entitled_readers_are_answered_from_their_last_load_and_nothing_is_metered()
 {
    let db = TestDatabase::create().await;
    let (proxy, url) = cuttable(&db).await;
    let server = Server::start(
        &url,
        &[
            // Long on purpose: the answers below must not wait for it.
            ("TOLLGATE_DATABASE_ACQUIRE_TIMEOUT", "10s"),
            ("TOLLGATE_SQLITE_BUSY_TIMEOUT", "250ms"),
            ("TOLLGATE_ENTITLEMENT_CACHE_TTL", "100ms"),
            ("TOLLGATE_STALE_IF_ERROR", "4s"),
        ],
    )
    .await;
    server.put_plans().await;
    let granted = client()
        .post(format!("{}/v1/readers/subscriber/grants", server.base()))
        .bearer_auth(&server.admin_key)
        .json(&json!({
            "entitlements": ["articles"], "expires_at": "2099-01-01T00:00:00Z",
            "reason": "outage test",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status(), 201);

    // Loads before the outage: the subscriber's entitlements, a metered reader's (none).
    let (status, before, _) = access(&server, "subscriber", "a-1").await;
    assert_eq!(status, 200);
    assert_eq!(before["reason"], "entitled");
    assert!(before.get("stale").is_none(), "{before}");
    let (status, metered, _) = access(&server, "free-reader", "a-1").await;
    assert_eq!((status, &metered["reason"]), (200, &json!("metered")));
    let loaded_by = Utc::now();
    let loaded_by_instant = Instant::now();

    let outage = Outage::begin(&db, proxy.as_ref()).await;
    // Past the cache's time to live, so every answer below needs the database.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, during, took) = access(&server, "subscriber", "a-2").await;
    let (token_status, token, token_took) =
        post(&server, "/v1/tokens", json!({ "reader_id": "subscriber" })).await;
    let (free_status, free, free_took) = access(&server, "free-reader", "a-2").await;
    let (new_status, new, new_took) = access(&server, "never-seen", "a-1").await;
    let stale_access = metric(&server, "tollgate_stale_answers_total{route=\"access\"}").await;
    let stale_tokens = metric(&server, "tollgate_stale_answers_total{route=\"tokens\"}").await;
    let unreachable = metric(&server, "tollgate_database_unreachable").await;

    let backend = if db.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    figures(
        "stale_if_error",
        backend,
        json!({
            "entitled_access_ms": took.as_millis(),
            "token_ms": token_took.as_millis(),
            "metered_refusal_ms": free_took.as_millis(),
            "unknown_reader_refusal_ms": new_took.as_millis(),
        }),
    );
    assert_eq!(status, 200, "{during}");
    assert_eq!(
        (during["granted"].clone(), during["reason"].clone()),
        (json!(true), json!("entitled"))
    );
    assert_eq!(token_status, 200, "{token}");
    assert_eq!(token["entitlements"], json!(["articles"]));
    if db.is_postgres() {
        // Reads are gone: answered from the last load, marked, and bounded by it.
        let bound = loaded_by + STALE_IF_ERROR + Duration::from_secs(1);
        assert_eq!(during["stale"], json!(true), "{during}");
        assert!(instant(&during["token_expires_at"]) <= bound, "{during}");
        assert_eq!(token["stale"], json!(true), "{token}");
        assert!(instant(&token["expires_at"]) <= bound, "{token}");
        assert!(stale_access >= 1.0 && stale_tokens >= 1.0);
        assert_eq!(unreachable, 1.0);
        // Within about 100 ms, never the acquire timeout.
        for (what, took) in [("access", took), ("token", token_took)] {
            assert!(took < Duration::from_secs(1), "{what} took {took:?}");
        }
        for (what, took) in [("metered", free_took), ("unknown", new_took)] {
            assert!(
                took < Duration::from_secs(1),
                "{what} refusal took {took:?}"
            );
        }
    } else {
        // Reads still work: answered afresh, nothing stale.
        assert!(during.get("stale").is_none(), "{during}");
        assert!(token.get("stale").is_none(), "{token}");
        assert_eq!((stale_access, stale_tokens, unreachable), (0.0, 0.0, 0.0));
    }
    // Nothing is metered without the database: the metered reader and a reader never seen
    // are refused, cleanly.
    for (status, body) in [(free_status, &free), (new_status, &new)] {
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["code"], "database_unavailable", "{body}");
    }

    if db.is_postgres() {
        // Past `stale_if_error` after the load, the last load is no longer used (the site's key,
        // out of the key cache by now, is still known from before the outage).
        let until = STALE_IF_ERROR + Duration::from_millis(200);
        tokio::time::sleep(until.saturating_sub(loaded_by_instant.elapsed())).await;
        let (status, late, late_took) = access(&server, "subscriber", "a-3").await;
        assert_eq!(status, 503, "{late}");
        assert!(late_took < Duration::from_secs(1), "took {late_took:?}");
    }

    outage.end().await;
    let back = Instant::now();
    loop {
        let (status, after, _) = access(&server, "subscriber", "a-4").await;
        if status == 200 && after.get("stale").is_none() {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "still {status} {after}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&server, "tollgate_database_unreachable").await, 0.0);
    // The refused view was not counted: one article on the meter, as before the outage.
    assert_eq!(
        server.reader("free-reader").await["meter"]["used"],
        json!(1)
    );
}
