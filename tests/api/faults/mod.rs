//! The fault suite: tollgate run as its real binary, as operators run it, and then crashed,
//! starved of its database, doubled, and flooded with hostile clients. Each test proves one
//! promise of the SPEC's Webhooks, Metered access and Bad input sections under that fault.
//!
//! The sizes are small enough for every `cargo test`; `chaos/run` runs the long variants by
//! raising them through the environment (`FAULTS_EVENTS`, `FAULTS_CRASHES`,
//! `FAULTS_IDLE_CONNECTIONS`). Each test prints a `FIGURES {json}` line with what it measured.

mod clients;
mod crash;
mod instances;
mod outage;
pub mod process;
mod races;
mod scenario;
mod stale;

use std::time::Duration;

use reqwest::Client;

/// The webhook signing secret every fault-suite server is configured with.
const SECRET: &str = "whsec_faults_suite";

/// A size from the environment, or its default for the short variant.
fn size(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Prints what a test measured, for `chaos/run` to collect.
fn figures(test: &str, backend: &str, values: serde_json::Value) {
    let mut line = serde_json::json!({ "test": test, "backend": backend });
    if let (Some(line), Some(values)) = (line.as_object_mut(), values.as_object()) {
        line.extend(values.clone());
    }
    eprintln!("FIGURES {line}");
}

/// An HTTP client for one sender: short timeouts, since a server may be killed under it.
fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

/// The `Stripe-Signature` header Stripe would send for `body` now.
fn signature(body: &[u8]) -> String {
    tollgate::stripe::signature::sign(body, SECRET, chrono::Utc::now().timestamp())
}

/// What delivering one event until it was acknowledged took.
#[derive(Debug, Default, Clone)]
struct Delivery {
    /// Requests sent, the acknowledged one included.
    attempts: u32,
    /// Answers that were neither 2xx nor 503 (a 5xx other than 503, a 4xx): each is a failure.
    unexpected: Vec<u16>,
    /// 503 answers: the server could not store the event and said so.
    unavailable: u32,
}

/// Delivers `body` to the webhook endpoint at `base` as Stripe does: signed afresh each time,
/// retried after any failure (refused connection, reset, timeout, 5xx) until a 2xx comes back.
async fn deliver_until_acknowledged(client: &Client, base: &str, body: &[u8]) -> Delivery {
    let mut delivery = Delivery::default();
    let mut pause = Duration::from_millis(20);
    loop {
        delivery.attempts += 1;
        let sent = client
            .post(format!("{base}/v1/webhooks/stripe"))
            .header("content-type", "application/json")
            .header("stripe-signature", signature(body))
            .body(body.to_vec())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => return delivery,
            Ok(response) if response.status() == 503 => delivery.unavailable += 1,
            Ok(response) => delivery.unexpected.push(response.status().as_u16()),
            Err(_) => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(400));
    }
}

/// Rows from the database at `url`, whichever backend it is.
async fn rows<T>(url: &str, sql: &str) -> Vec<T>
where
    T: Send
        + Unpin
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
    }
}

/// How many events are stored, and how many of them are applied with exactly one attempt (an
/// attempt counts only when its transaction commits: one means applied exactly once).
async fn stored_and_applied_once(url: &str) -> (i64, i64) {
    let counts: Vec<(i64, i64)> = rows(
        url,
        "SELECT count(*), count(CASE WHEN status = 'applied' AND attempts = 1 THEN 1 END) \
         FROM webhook_events",
    )
    .await;
    counts[0]
}
