//! A reconcile that degrades, not dies: against a fake Stripe whose listings fail one at a time
//! (an HTML 404, a body that is no JSON, a 500 or a 429 it gets over), the other listings are
//! read and repaired all the same, and the report names the one that failed with what Stripe
//! answered; through the API (200 partial, 502 when nothing could be read) and the command line
//! (exit 0, 3 or 1).

use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Connection;

use crate::fake_stripe::{FakeStripe, FakeStripeBuilder, Reply};
use crate::helpers::{TestApp, TestDatabase, at, problem, spawn_app};
use crate::reconcile::{
    CUSTOMER_42, INVOICE, INVOICE_PAID, INVOICE_PAYMENT_PAID, PAYMENT_INTENT, PRICE, REFUND,
    SECRET_KEY, SUBSCRIPTION_42, active_subscription, object, refund,
};

const DISPUTE_CREATED: &[u8] = include_bytes!("../fixtures/stripe/charge.dispute.created.json");
const DISPUTE: &str = "dp_1TPeerDispute0001";

/// The listings a reconcile reads, in order: their name, their path, the mirror's table.
const LISTINGS: [(&str, &str, &str); 5] = [
    ("prices", "/v1/prices", "prices"),
    ("subscriptions", "/v1/subscriptions", "subscriptions"),
    ("invoices", "/v1/invoices", "invoices"),
    ("refunds", "/v1/refunds", "refunds"),
    ("disputes", "/v1/disputes", "disputes"),
];

/// A web server's 404 for a path it has no resource at: what an API without the listing says.
const HTML_404: &str = "<!DOCTYPE html><html><head><title>404 Not Found</title></head>\
                        <body><h1>Not Found</h1><p>The requested URL was not found on this \
                        server.</p></body></html>";

/// The object each listing holds, as Stripe lists it.
fn listed(path: &str) -> Value {
    match path {
        "/v1/prices" => {
            object(crate::reconcile::SUBSCRIPTION_CREATED)["items"]["data"][0]["price"].clone()
        }
        "/v1/subscriptions" => active_subscription(SUBSCRIPTION_42, CUSTOMER_42, Some("reader-42")),
        "/v1/invoices" => object(INVOICE_PAID),
        "/v1/refunds" => refund(),
        "/v1/disputes" => object(DISPUTE_CREATED),
        other => panic!("no listing at {other}"),
    }
}

/// The id of the object each listing holds: what its repair puts in the mirror.
fn listed_id(table: &str) -> &'static str {
    match table {
        "prices" => PRICE,
        "subscriptions" => SUBSCRIPTION_42,
        "invoices" => INVOICE,
        "refunds" => REFUND,
        "disputes" => DISPUTE,
        other => panic!("no table {other}"),
    }
}

/// A fake Stripe whose listings hold one object each, except that `broken`'s first requests
/// (`times` of them, or all) get `reply`.
fn stripe_with(broken: &str, reply: Reply, times: Option<usize>) -> FakeStripeBuilder {
    let mut stripe = FakeStripe::builder().on_get(broken, reply);
    if let Some(times) = times {
        stripe = stripe.times(times);
    }
    for (_, path, _) in LISTINGS {
        stripe = stripe.list(path, vec![listed(path)]);
    }
    stripe
        .list("/v1/invoice_payments", vec![object(INVOICE_PAYMENT_PAID)])
        .when("payment[payment_intent]", PAYMENT_INTENT)
}

/// Retries 10 ms apart, so a test waits only for what a `Retry-After` asks.
fn quick_retries(settings: &mut tollgate::config::Settings) {
    settings.stripe_retry_backoff = Duration::from_millis(10);
}

impl TestApp {
    /// The ids the mirror's `table` holds, straight from the database.
    async fn ids_in(&self, table: &str) -> Vec<String> {
        let sql = format!("SELECT id FROM {table} ORDER BY id");
        let rows: Vec<(String,)> = match &self.db {
            TestDatabase::Sqlite { url, .. } => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::query_as(&sql).fetch_all(&mut conn).await.unwrap()
            }
            TestDatabase::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query_as(&sql).fetch_all(&mut conn).await.unwrap()
            }
        };
        rows.into_iter().map(|(id,)| id).collect()
    }

    /// A reconcile that must answer 200 with a `partial` report.
    async fn reconcile_partial(&self) -> Value {
        let response = self.reconcile().await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["outcome"], "partial", "{body}");
        body
    }
}

/// An app of `stripe` with a plan of the listed price, its clock two days after the dispute, so
/// the listed invoice, refund and dispute are inside the window.
async fn app_of(stripe: &FakeStripe) -> TestApp {
    let app = stripe.app_with(SECRET_KEY, Some(quick_retries)).await;
    app.put_plan("all-access", &[PRICE], &["articles"]).await;
    app.clock.set(at(1_763_345_600));
    app
}

/// `listing`'s report in `body`.
fn listing<'a>(body: &'a Value, name: &str) -> &'a Value {
    body["listings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["listing"] == name)
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

/// Asserts that every listing but `broken` was read with its one object, and that its repair
/// is in the mirror.
async fn the_others_are_repaired(app: &TestApp, body: &Value, broken: &str) {
    for (name, _, table) in LISTINGS.into_iter().filter(|(name, ..)| *name != broken) {
        let report = listing(body, name);
        assert_eq!(report["ok"], true, "{name}: {body}");
        assert_eq!(report["error"], Value::Null, "{name}: {body}");
        assert_eq!(report["seen"], 1, "{name}: {body}");
        assert!(
            app.ids_in(table)
                .await
                .contains(&listed_id(table).to_owned()),
            "{name} failed to repair the mirror while {broken} was broken"
        );
    }
    if broken != "subscriptions" {
        assert_eq!(app.entitlements("reader-42").await, ["articles"]);
    }
}

#[tokio::test]
async fn each_listing_answered_an_html_404_alone_fails_and_the_others_are_repaired() {
    for (broken, path, _) in LISTINGS {
        let stripe = stripe_with(path, Reply::raw(404, "text/html", HTML_404), None)
            .start()
            .await;
        let app = app_of(&stripe).await;

        let body = app.reconcile_partial().await;

        let failed = listing(&body, broken);
        assert_eq!(failed["ok"], false, "{body}");
        let error = failed["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!(
                "Stripe answered 404 to GET {path}, not in its API's format: <!DOCTYPE html>"
            )),
            "{error}"
        );
        the_others_are_repaired(&app, &body, broken).await;
        // A 404 is no transient failure: asked for once.
        let asked = stripe.paths().iter().filter(|p| *p == path).count();
        assert_eq!(asked, 1, "{broken}");
        let last: Value = app.last_sync().await.json().await.unwrap();
        assert_eq!(last["outcome"], "partial", "{last}");
        assert_eq!(last["report"], body, "{last}");
        let why = last["error"].as_str().unwrap();
        assert!(
            why.starts_with(&format!("1 of 5 listings failed ({broken}); {broken}: ")),
            "{why}"
        );
        stripe.stop().await;
    }
}

#[tokio::test]
async fn a_listing_whose_body_is_no_json_fails_naming_its_status_method_and_path() {
    let stripe = stripe_with(
        "/v1/invoices",
        Reply::raw(
            200,
            "application/json",
            r#"{"object": "list", "data": [{"id": "in_"#,
        ),
        None,
    )
    .start()
    .await;
    let app = app_of(&stripe).await;

    let body = app.reconcile_partial().await;

    assert_eq!(
        listing(&body, "invoices")["error"],
        "Stripe answered 200 to GET /v1/invoices, not in its API's format: \
         {\"object\": \"list\", \"data\": [{\"id\": \"in_"
    );
    the_others_are_repaired(&app, &body, "invoices").await;
    stripe.stop().await;
}

#[tokio::test]
async fn a_listing_answered_500_once_is_tried_again_and_read() {
    let stripe = stripe_with(
        "/v1/subscriptions",
        Reply::error(
            500,
            json!({ "type": "api_error", "message": "An unknown error occurred" }),
        ),
        Some(1),
    )
    .start()
    .await;
    let app = app_of(&stripe).await;

    let response = app.reconcile().await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["outcome"], "succeeded", "{body}");
    the_others_are_repaired(&app, &body, "none").await;
    assert_eq!(listing(&body, "subscriptions")["ok"], true);
    let asked = stripe
        .paths()
        .iter()
        .filter(|p| *p == "/v1/subscriptions")
        .count();
    assert_eq!(asked, 2);
    stripe.stop().await;
}

#[tokio::test]
async fn a_listing_answered_429_is_asked_again_after_its_retry_after() {
    let stripe = stripe_with(
        "/v1/refunds",
        Reply::error(
            429,
            json!({
                "type": "invalid_request_error",
                "code": "rate_limit",
                "message": "Too many requests hit the API too quickly."
            }),
        )
        .header("retry-after", "1"),
        Some(1),
    )
    .start()
    .await;
    let app = app_of(&stripe).await;

    let response = app.reconcile().await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["outcome"], "succeeded", "{body}");
    let refunds: Vec<_> = stripe
        .seen()
        .into_iter()
        .filter(|s| s.path == "/v1/refunds")
        .collect();
    assert_eq!(refunds.len(), 2);
    let gap = refunds[1].at - refunds[0].at;
    // The retry backoff is 10 ms here: only Retry-After makes it wait a second.
    assert!(
        gap >= Duration::from_secs(1) && gap < Duration::from_secs(3),
        "{gap:?}"
    );
    assert_eq!(
        app.ids_in("refunds").await,
        [REFUND.to_owned()],
        "the refund is repaired"
    );
    stripe.stop().await;
}

#[tokio::test]
async fn every_listing_failing_is_a_502_whose_problem_carries_the_report() {
    let stripe = FakeStripe::builder()
        .otherwise(Reply::raw(404, "text/html", HTML_404))
        .start()
        .await;
    let app = app_of(&stripe).await;

    let body = problem(app.reconcile().await, 502, "stripe_error").await;

    let report = &body["report"];
    assert_eq!(report["outcome"], "failed", "{body}");
    for (name, path, _) in LISTINGS {
        let failed = listing(report, name);
        assert_eq!(failed["ok"], false, "{body}");
        assert!(
            failed["error"]
                .as_str()
                .unwrap()
                .starts_with(&format!("Stripe answered 404 to GET {path}, ")),
            "{body}"
        );
    }
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("no Stripe listing could be read: 5 of 5 listings failed"),
        "{body}"
    );
    let last: Value = app.last_sync().await.json().await.unwrap();
    assert_eq!(last["outcome"], "failed", "{last}");
    assert_eq!(last["report"], *report, "{last}");
    stripe.stop().await;
}

#[tokio::test]
async fn many_small_pages_are_followed_to_the_end() {
    // One page more than a reconcile once read at most (1,000), one subscription on each. Their
    // customers are linked to no reader, so each is read and counted unresolved without a write:
    // the test pays for the pages, not for a thousand commits.
    let pages: Vec<Vec<Value>> = (0..1_001)
        .map(|n| {
            vec![active_subscription(
                &format!("sub_1TPeerPage{n:06}"),
                &format!("cus_TPeerStranger{n:04}"),
                None,
            )]
        })
        .collect();
    let stripe = FakeStripe::builder()
        .list("/v1/prices", vec![])
        .pages("/v1/subscriptions", pages)
        .list("/v1/invoices", vec![])
        .list("/v1/refunds", vec![])
        .list("/v1/disputes", vec![])
        .start()
        .await;
    let app = app_of(&stripe).await;

    let response = app.reconcile().await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["outcome"], "succeeded", "{body}");
    let subscriptions = listing(&body, "subscriptions");
    assert_eq!(
        (&subscriptions["seen"], &subscriptions["unresolved"]),
        (&json!(1_001), &json!(1_001))
    );
    let asked: Vec<_> = stripe
        .seen()
        .into_iter()
        .filter(|s| s.path == "/v1/subscriptions")
        .collect();
    assert_eq!(asked.len(), 1_001);
    assert_eq!(
        asked.last().unwrap().param("starting_after"),
        Some("sub_1TPeerPage000999")
    );
    stripe.stop().await;
}

#[tokio::test]
async fn a_list_that_comes_back_to_a_page_it_gave_is_not_followed_round_again() {
    let stripe = stripe_with(
        "/v1/prices",
        Reply::computed(|_| {
            json!({
                "object": "list",
                "data": [listed("/v1/prices")],
                "has_more": true,
                "url": "/v1/prices",
            })
        }),
        None,
    )
    .start()
    .await;
    let app = app_of(&stripe).await;

    let body = app.reconcile_partial().await;

    assert_eq!(
        listing(&body, "prices")["error"],
        format!(
            "Stripe's list of prices came back to {PRICE} after more pages; it was not followed \
             further"
        )
    );
    let asked = stripe.paths().iter().filter(|p| *p == "/v1/prices").count();
    assert_eq!(asked, 2);
    the_others_are_repaired(&app, &body, "prices").await;
    stripe.stop().await;
}

/// Runs `tollgate stripe sync` against `stripe` with `app`'s database.
async fn stripe_sync(app: &TestApp, stripe: &FakeStripe) -> Output {
    let dir = tempfile::tempdir().unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .current_dir(dir.path())
        .env_clear()
        .env("DATABASE_URL", app.db.url())
        .env("TOLLGATE_STRIPE_SECRET_KEY", SECRET_KEY)
        .env("TOLLGATE_STRIPE_API_BASE", &stripe.base)
        .env("TOLLGATE_STRIPE_RETRY_BACKOFF", "10ms")
        .args(["stripe", "sync"])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_command_line_exits_3_for_a_partial_reconcile_and_prints_the_report() {
    let stripe = stripe_with("/v1/prices", Reply::raw(404, "text/html", HTML_404), None)
        .start()
        .await;
    // An app without Stripe, for its database and to read the result through the API.
    let app = spawn_app().await;
    app.put_plan("all-access", &[PRICE], &["articles"]).await;

    let output = stripe_sync(&app, &stripe).await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["outcome"], "partial");
    assert_eq!(listing(&printed, "prices")["ok"], false);
    assert_eq!(listing(&printed, "subscriptions")["ok"], true);
    assert!(
        stderr.contains("the reconcile was partial: 1 of 5 listings failed (prices)"),
        "{stderr}"
    );
    // Not a terminal: the progress is log lines, one per listing done.
    assert_eq!(
        stderr.matches("done with a Stripe listing").count(),
        5,
        "{stderr}"
    );
    assert!(!stderr.contains(SECRET_KEY), "{stderr}");
    assert_eq!(app.entitlements("reader-42").await, ["articles"]);
    let last: Value = app.last_sync().await.json().await.unwrap();
    assert_eq!(
        (&last["trigger"], &last["outcome"]),
        (&json!("cli"), &json!("partial"))
    );
    assert_eq!(last["report"], printed);
    stripe.stop().await;
}

#[tokio::test]
async fn the_command_line_exits_1_when_no_listing_could_be_read() {
    let stripe = FakeStripe::builder()
        .otherwise(Reply::raw(404, "text/html", HTML_404))
        .start()
        .await;
    let app = spawn_app().await;

    let output = stripe_sync(&app, &stripe).await;

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed["outcome"], "failed");
    assert!(
        stderr.contains("the reconcile failed: 5 of 5 listings failed"),
        "{stderr}"
    );
    stripe.stop().await;
}
