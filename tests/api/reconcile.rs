// long file: one fake Stripe and the shaped fixtures every reconcile test reads
//! `POST /v1/admin/stripe/sync` and `tollgate stripe sync` against a fake Stripe API: a local
//! actix-web server that answers list endpoints a page at a time with the fixtures' objects and
//! records every request it gets.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};
use sqlx::Connection;
use tollgate::clock::Clock;

use crate::fake_stripe::{FakeStripe, FakeStripeBuilder, Reply};
use crate::helpers::{TestApp, TestDatabase, at, event, problem, spawn_app};

pub const SUBSCRIPTION_CREATED: &[u8] =
    include_bytes!("../fixtures/stripe/customer.subscription.created.json");
const SUBSCRIPTION_DELETED: &[u8] =
    include_bytes!("../fixtures/stripe/customer.subscription.deleted.json");
pub const INVOICE_PAID: &[u8] = include_bytes!("../fixtures/stripe/invoice.paid.json");
pub const INVOICE_PAYMENT_PAID: &[u8] =
    include_bytes!("../fixtures/stripe/invoice_payment.paid.json");
const CHARGE_REFUNDED: &[u8] = include_bytes!("../fixtures/stripe/charge.refunded.json");

/// The secret key the apps under test send to the fake Stripe.
pub const SECRET_KEY: &str = "sk_test_fake_reconcile";
/// How far back a reconcile reads invoices and refunds by default.
pub const WINDOW: TimeDelta = TimeDelta::days(35);

pub const PRICE: &str = "price_1TPeerMonthly01";
pub const CUSTOMER_42: &str = "cus_TPeer0Reader01";
pub const SUBSCRIPTION_42: &str = "sub_1TPeerSubscr0001";
const CUSTOMER_9: &str = "cus_TPeer0Reader09";
const SUBSCRIPTION_9: &str = "sub_1TPeerSubscr0009";
const STRANGER: &str = "cus_TPeerStranger01";
const STRANGERS_SUBSCRIPTION: &str = "sub_1TPeerSubscr0077";
pub const INVOICE: &str = "in_1TPeerInvoice001";
pub const REFUND: &str = "re_3TPeerRefund0001";
pub const PAYMENT_INTENT: &str = "pi_3TPeerPayment001";

/// The fake's app, with the reconcile tests' key.
pub trait ReconcileApp {
    async fn app(&self) -> TestApp;
}

impl ReconcileApp for FakeStripe {
    /// An app whose Stripe API is this fake, reached with [`SECRET_KEY`].
    async fn app(&self) -> TestApp {
        self.app_with(SECRET_KEY, None).await
    }
}

/// A fake Stripe whose only objects are `subscriptions`: its other listings are empty.
pub fn subscriptions_only(subscriptions: Vec<Value>) -> FakeStripeBuilder {
    FakeStripe::builder()
        .list("/v1/subscriptions", subscriptions)
        .list("/v1/prices", vec![])
        .list("/v1/invoices", vec![])
        .list("/v1/refunds", vec![])
        .list("/v1/disputes", vec![])
}

/// The `data.object` of a fixture event.
pub fn object(fixture: &[u8]) -> Value {
    let event: Value = serde_json::from_slice(fixture).unwrap();
    event["data"]["object"].clone()
}

/// Makes a subscription fixture's object subscription `id` of `customer`, naming `reader` in its
/// metadata (or no reader), renewing and not set to cancel. The fixtures carry the API
/// reference's placeholder times (`cancel_at: 1234567890` and the like); those are cleared.
fn shape_subscription(subscription: &mut Value, id: &str, customer: &str, reader: Option<&str>) {
    subscription["id"] = id.into();
    subscription["customer"] = customer.into();
    subscription["metadata"] = reader.map_or_else(|| json!({}), |r| json!({ "reader_id": r }));
    subscription["cancel_at_period_end"] = false.into();
    for field in ["cancel_at", "canceled_at", "ended_at", "pending_update"] {
        subscription[field] = Value::Null;
    }
    let item = &mut subscription["items"]["data"][0];
    item["id"] = format!("si_{}", &id[4..]).into();
    item["subscription"] = id.into();
    subscription["items"]["url"] = format!("/v1/subscription_items?subscription={id}").into();
}

pub fn active_subscription(id: &str, customer: &str, reader: Option<&str>) -> Value {
    let mut subscription = object(SUBSCRIPTION_CREATED);
    shape_subscription(&mut subscription, id, customer, reader);
    subscription
}

/// The refund the `charge.refunded` fixture lists: it names its charge and payment intent, and
/// (as every refund object) no invoice.
pub fn refund() -> Value {
    let refund = object(CHARGE_REFUNDED)["refunds"]["data"][0].clone();
    assert_eq!(refund["id"], REFUND);
    assert_eq!(refund["payment_intent"], PAYMENT_INTENT);
    assert!(refund.get("invoice").is_none());
    refund
}

impl TestApp {
    pub async fn reconcile(&self) -> reqwest::Response {
        self.client
            .post(self.url("/v1/admin/stripe/sync"))
            .bearer_auth(&self.admin_key)
            .send()
            .await
            .unwrap()
    }

    /// `GET /v1/admin/stripe/sync/last`.
    pub async fn last_sync(&self) -> reqwest::Response {
        self.get("/v1/admin/stripe/sync/last", Some(&self.admin_key))
            .await
    }

    /// A reconcile, which must answer 200 with its report.
    pub async fn reconcile_ok(&self) -> Value {
        let response = self.reconcile().await;
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Each refund the mirror holds and the invoice it is attributed to, straight from the table.
    async fn stored_refunds(&self) -> Vec<(String, Option<String>)> {
        const SQL: &str = "SELECT id, invoice_id FROM refunds ORDER BY id";
        match &self.db {
            TestDatabase::Sqlite { url, .. } => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::query_as(SQL).fetch_all(&mut conn).await.unwrap()
            }
            TestDatabase::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query_as(SQL).fetch_all(&mut conn).await.unwrap()
            }
        }
    }

    /// Each invoice the mirror holds and its status, straight from the table.
    async fn stored_invoices(&self) -> Vec<(String, String)> {
        const SQL: &str = "SELECT id, status FROM invoices ORDER BY id";
        match &self.db {
            TestDatabase::Sqlite { url, .. } => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::query_as(SQL).fetch_all(&mut conn).await.unwrap()
            }
            TestDatabase::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query_as(SQL).fetch_all(&mut conn).await.unwrap()
            }
        }
    }
}

/// A listing read to its end.
pub fn read(listing: &str, seen: u64, changed: u64, unresolved: u64) -> Value {
    json!({
        "listing": listing,
        "ok": true,
        "seen": seen,
        "changed": changed,
        "unresolved": unresolved,
        "error": null,
    })
}

/// The report a reconcile at `now` gives, with these listings.
pub fn report(
    outcome: &str,
    listings: [Value; 5],
    events_applied: u64,
    now: DateTime<Utc>,
) -> Value {
    json!({
        "outcome": outcome,
        "listings": listings,
        "events_applied": events_applied,
        "window_start": (now - WINDOW).to_rfc3339_opts(SecondsFormat::Secs, true),
    })
}

/// The report of a reconcile at `now` that read every listing, seeing nothing but these
/// invoices, subscriptions and refunds (seen, changed, unresolved).
fn succeeded(
    subscriptions: (u64, u64, u64),
    invoices: (u64, u64, u64),
    refunds: (u64, u64, u64),
    now: DateTime<Utc>,
) -> Value {
    report(
        "succeeded",
        [
            read("prices", 0, 0, 0),
            read(
                "subscriptions",
                subscriptions.0,
                subscriptions.1,
                subscriptions.2,
            ),
            read("invoices", invoices.0, invoices.1, invoices.2),
            read("refunds", refunds.0, refunds.1, refunds.2),
            read("disputes", 0, 0, 0),
        ],
        0,
        now,
    )
}

#[tokio::test]
async fn a_reconcile_reads_every_page_and_entitles_readers_it_can_resolve() {
    let page_one = vec![
        active_subscription(SUBSCRIPTION_42, CUSTOMER_42, Some("reader-42")),
        {
            let mut canceled = object(SUBSCRIPTION_DELETED);
            shape_subscription(&mut canceled, SUBSCRIPTION_9, CUSTOMER_9, Some("reader-9"));
            canceled["status"] = "canceled".into();
            canceled["canceled_at"] = 1_763_086_400.into();
            canceled["ended_at"] = 1_763_086_400.into();
            canceled
        },
    ];
    let page_two = vec![active_subscription(STRANGERS_SUBSCRIPTION, STRANGER, None)];
    let monthly = object(SUBSCRIPTION_CREATED)["items"]["data"][0]["price"].clone();
    assert_eq!(monthly["id"], PRICE);
    // The second page is asked for after the last subscription of the first, SUBSCRIPTION_9.
    let stripe = FakeStripe::builder()
        .list("/v1/prices", vec![monthly])
        .when("limit", "100")
        .pages("/v1/subscriptions", vec![page_one, page_two])
        .list("/v1/invoices", vec![])
        .list("/v1/refunds", vec![])
        .list("/v1/disputes", vec![])
        .start()
        .await;
    let app = stripe.app().await;
    app.put_plan("all-access", &[PRICE], &["articles"]).await;
    // A day after the subscriptions began: reader-42's period runs until 2025-12-13.
    let now = at(1_763_100_000);
    app.clock.set(now);

    let body = app.reconcile_ok().await;

    assert_eq!(
        body,
        report(
            "succeeded",
            [
                read("prices", 1, 1, 0),
                read("subscriptions", 3, 2, 1),
                read("invoices", 0, 0, 0),
                read("refunds", 0, 0, 0),
                read("disputes", 0, 0, 0),
            ],
            0,
            now
        )
    );
    let seen = stripe.seen();
    assert_eq!(
        stripe.paths(),
        [
            "/v1/prices",
            "/v1/subscriptions",
            "/v1/subscriptions",
            "/v1/invoices",
            "/v1/refunds",
            "/v1/disputes"
        ]
    );
    for request in &seen[1..3] {
        assert_eq!(request.param("status"), Some("all"), "{request:?}");
        assert_eq!(request.param("limit"), Some("100"), "{request:?}");
    }
    assert_eq!(seen[1].param("starting_after"), None);
    assert_eq!(seen[2].param("starting_after"), Some(SUBSCRIPTION_9));
    for request in &seen {
        assert_eq!(
            request.authorization.as_deref(),
            Some("Bearer sk_test_fake_reconcile"),
            "{request:?}"
        );
    }

    let plan = app
        .get_json("/v1/plans/all-access", Some(&app.admin_key))
        .await;
    assert_eq!(
        (
            plan["prices"][0]["unit_amount"].clone(),
            plan["prices"][0]["currency"].clone()
        ),
        (json!(999), json!("eur"))
    );
    let reader = app.reader("reader-42").await;
    assert_eq!(reader["stripe_customer_id"], CUSTOMER_42);
    assert_eq!(
        reader["entitlements"],
        json!([{
            "name": "articles",
            "lapses_at": null,
            "sources": [{ "kind": "subscription", "id": SUBSCRIPTION_42, "lapses_at": null }],
        }])
    );
    let reader = app.reader("reader-9").await;
    assert_eq!(reader["stripe_customer_id"], CUSTOMER_9);
    assert_eq!(reader["entitlements"], json!([]));
    assert_eq!(reader["subscriptions"][0]["id"], SUBSCRIPTION_9);
    assert_eq!(reader["subscriptions"][0]["status"], "canceled");
    assert_eq!(reader["subscriptions"][0]["good_standing"], false);
    stripe.stop().await;
}

#[tokio::test]
async fn a_reconcile_applies_events_that_waited_for_their_reader() {
    let stripe = subscriptions_only(vec![active_subscription(
        SUBSCRIPTION_42,
        CUSTOMER_42,
        Some("reader-42"),
    )])
    .start()
    .await;
    let app = stripe.app().await;
    app.put_plan("all-access", &[PRICE], &["articles"]).await;
    app.clock.set(at(1_763_000_100));
    // The subscription as the event carries it: no metadata names its reader.
    let body = event(
        SUBSCRIPTION_CREATED,
        "evt_reconcile_waits01",
        1_763_000_003,
        |o| {
            shape_subscription(o, SUBSCRIPTION_42, CUSTOMER_42, None);
        },
    );
    app.deliver_ok(&body).await;
    let stored = app.stored_event("evt_reconcile_waits01").await;
    assert_eq!(stored["status"], "failed", "{stored}");
    assert_eq!(stored["waiting_for_customer"], CUSTOMER_42, "{stored}");
    assert!(app.entitlements("reader-42").await.is_empty());

    app.clock.advance(TimeDelta::hours(1));
    let now = app.clock.now();
    let body = app.reconcile_ok().await;

    assert_eq!(
        body,
        report(
            "succeeded",
            [
                read("prices", 0, 0, 0),
                read("subscriptions", 1, 1, 0),
                read("invoices", 0, 0, 0),
                read("refunds", 0, 0, 0),
                read("disputes", 0, 0, 0),
            ],
            1,
            now
        )
    );
    let stored = app.stored_event("evt_reconcile_waits01").await;
    assert_eq!(stored["status"], "applied", "{stored}");
    assert_eq!(stored["waiting_for_customer"], Value::Null, "{stored}");
    assert_eq!(stored["last_error"], Value::Null, "{stored}");
    assert_eq!(app.entitlements("reader-42").await, ["articles"]);
    stripe.stop().await;
}

#[tokio::test]
async fn a_reconcile_stores_recent_invoices_and_refunds_and_attributes_refunds_through_invoice_payments()
 {
    let stripe = FakeStripe::builder()
        .list("/v1/subscriptions", vec![])
        .list("/v1/prices", vec![])
        .list("/v1/invoices", vec![object(INVOICE_PAID)])
        .list("/v1/refunds", vec![refund()])
        .list("/v1/disputes", vec![])
        .list("/v1/invoice_payments", vec![object(INVOICE_PAYMENT_PAID)])
        .when("payment[type]", "payment_intent")
        .when("payment[payment_intent]", PAYMENT_INTENT)
        .list("/v1/invoice_payments", vec![])
        .start()
        .await;
    let app = stripe.app().await;
    // Two days after the refund: the invoice and the refund are inside the window.
    let now = at(1_763_345_600);
    app.clock.set(now);
    let since = (now - WINDOW).timestamp().to_string();

    let body = app.reconcile_ok().await;

    assert_eq!(body, succeeded((0, 0, 0), (1, 1, 0), (1, 1, 0), now));
    assert_eq!(
        stripe.paths(),
        [
            "/v1/prices",
            "/v1/subscriptions",
            "/v1/invoices",
            "/v1/refunds",
            "/v1/invoice_payments",
            "/v1/disputes"
        ]
    );
    let seen = stripe.seen();
    for request in [&seen[2], &seen[3], &seen[5]] {
        assert_eq!(
            request.param("created[gte]"),
            Some(since.as_str()),
            "{request:?}"
        );
        assert_eq!(request.param("limit"), Some("100"), "{request:?}");
    }
    assert_eq!(seen[4].param("payment[type]"), Some("payment_intent"));
    assert_eq!(
        seen[4].param("payment[payment_intent]"),
        Some(PAYMENT_INTENT)
    );
    for request in &seen {
        assert_eq!(
            request.authorization.as_deref(),
            Some("Bearer sk_test_fake_reconcile"),
            "{request:?}"
        );
    }
    assert_eq!(
        app.stored_invoices().await,
        [(INVOICE.to_owned(), "paid".to_owned())]
    );
    assert_eq!(
        app.stored_refunds().await,
        [(REFUND.to_owned(), Some(INVOICE.to_owned()))]
    );

    // The same objects read again at the same instant change nothing, and the refund, now
    // attributed, sends nobody to Stripe's invoice payments again.
    let body = app.reconcile_ok().await;
    assert_eq!(body, succeeded((0, 0, 0), (1, 0, 0), (1, 0, 0), now));
    assert_eq!(stripe.seen().len(), 11);

    // Read again an hour later, the same objects are newer snapshots of unchanged content: they
    // confirm what the mirror holds and are not counted as changes.
    app.clock.advance(TimeDelta::hours(1));
    let later = app.clock.now();
    let body = app.reconcile_ok().await;
    assert_eq!(body, succeeded((0, 0, 0), (1, 0, 0), (1, 0, 0), later));
    let seen = stripe.seen();
    assert_eq!(
        seen[11..]
            .iter()
            .map(|s| s.path.as_str())
            .collect::<Vec<_>>(),
        [
            "/v1/prices",
            "/v1/subscriptions",
            "/v1/invoices",
            "/v1/refunds",
            "/v1/disputes"
        ]
    );
    let since = (later - WINDOW).timestamp().to_string();
    for request in &seen[13..] {
        assert_eq!(request.param("created[gte]"), Some(since.as_str()));
    }
    assert_eq!(
        app.stored_refunds().await,
        [(REFUND.to_owned(), Some(INVOICE.to_owned()))]
    );
    stripe.stop().await;
}

#[tokio::test]
async fn without_a_secret_key_a_reconcile_is_a_503_problem_that_says_so() {
    let app = spawn_app().await;
    let body = problem(app.reconcile().await, 503, "stripe_not_configured").await;
    assert!(
        body["detail"].as_str().unwrap().contains("secret key"),
        "{body}"
    );
}

#[tokio::test]
async fn stripe_refusing_every_listing_is_a_502_problem_carrying_the_report_and_never_the_key() {
    let stripe = FakeStripe::builder()
        .otherwise(Reply::error(
            401,
            json!({
                "type": "invalid_request_error",
                "message": "Invalid API Key provided: sk_test_****",
            }),
        ))
        .start()
        .await;
    let app = stripe.app().await;
    problem(app.last_sync().await, 404, "not_found").await;

    let body = problem(app.reconcile().await, 502, "stripe_error").await;

    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("invalid_request_error"), "{body}");
    assert!(detail.contains("401"), "{body}");
    assert!(!body.to_string().contains(SECRET_KEY), "{body}");
    // Every listing is tried, each refused once (a 401 is not tried again); the problem
    // carries the report, and the run is remembered as failed, with why.
    assert_eq!(
        stripe.paths(),
        [
            "/v1/prices",
            "/v1/subscriptions",
            "/v1/invoices",
            "/v1/refunds",
            "/v1/disputes"
        ]
    );
    assert_eq!(body["report"]["outcome"], "failed", "{body}");
    let listings = body["report"]["listings"].as_array().unwrap();
    assert_eq!(listings.len(), 5);
    for listing in listings {
        assert_eq!(listing["ok"], false, "{listing}");
        let error = listing["error"].as_str().unwrap();
        assert!(error.contains("401 to GET /v1/"), "{error}");
    }
    let last: Value = app.last_sync().await.json().await.unwrap();
    assert_eq!(last["outcome"], "failed", "{last}");
    assert_eq!(last["trigger"], "api");
    assert_eq!(last["report"], body["report"]);
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("invalid_request_error"),
        "{last}"
    );
    assert!(!last.to_string().contains(SECRET_KEY), "{last}");
    assert_eq!(
        stripe.seen()[0].authorization.as_deref(),
        Some("Bearer sk_test_fake_reconcile")
    );
    stripe.stop().await;
}

#[tokio::test]
async fn the_command_line_reconcile_prints_its_report() {
    let stripe = FakeStripe::builder()
        .list(
            "/v1/subscriptions",
            vec![active_subscription(
                SUBSCRIPTION_42,
                CUSTOMER_42,
                Some("reader-42"),
            )],
        )
        .list("/v1/prices", vec![])
        .list("/v1/invoices", vec![object(INVOICE_PAID)])
        .list("/v1/refunds", vec![])
        .list("/v1/disputes", vec![])
        .start()
        .await;
    // An app without Stripe, for its database and to read the result through the API.
    let app = spawn_app().await;
    app.put_plan("all-access", &[PRICE], &["articles"]).await;
    let dir = tempfile::tempdir().unwrap();

    let before = Utc::now();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .current_dir(dir.path())
        .env_clear()
        .env("DATABASE_URL", app.db.url())
        .env("TOLLGATE_STRIPE_SECRET_KEY", SECRET_KEY)
        .env("TOLLGATE_STRIPE_API_BASE", &stripe.base)
        .args(["stripe", "sync"])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let after = Utc::now();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains(SECRET_KEY), "{stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let printed: Value = serde_json::from_str(&stdout).unwrap();
    let window_start = DateTime::parse_from_rfc3339(printed["window_start"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(
        printed,
        succeeded((1, 1, 0), (1, 1, 0), (0, 0, 0), window_start + WINDOW)
    );
    // The window ends when the command ran (it uses the system clock).
    assert!(
        window_start.timestamp() >= (before - WINDOW).timestamp() && window_start <= after - WINDOW,
        "{window_start} is not 35 days before {before}..{after}"
    );
    let seen = stripe.seen();
    assert_eq!(
        stripe.paths(),
        [
            "/v1/prices",
            "/v1/subscriptions",
            "/v1/invoices",
            "/v1/refunds",
            "/v1/disputes"
        ]
    );
    let since = window_start.timestamp().to_string();
    for request in &seen[2..] {
        assert_eq!(request.param("created[gte]"), Some(since.as_str()));
    }
    for request in &seen {
        assert_eq!(
            request.authorization.as_deref(),
            Some("Bearer sk_test_fake_reconcile"),
            "{request:?}"
        );
    }
    let reader = app.reader("reader-42").await;
    assert_eq!(reader["stripe_customer_id"], CUSTOMER_42);
    assert_eq!(reader["subscriptions"][0]["id"], SUBSCRIPTION_42);
    assert_eq!(app.entitlements("reader-42").await, ["articles"]);
    // The operations page sees the run: when, from where, and what it printed.
    let last: Value = app.last_sync().await.json().await.unwrap();
    assert_eq!(last["trigger"], "cli", "{last}");
    assert_eq!(last["outcome"], "succeeded");
    assert_eq!(last["report"], printed);
    assert_eq!(last["error"], Value::Null);
    let started = DateTime::parse_from_rfc3339(last["started_at"].as_str().unwrap()).unwrap();
    let finished = DateTime::parse_from_rfc3339(last["finished_at"].as_str().unwrap()).unwrap();
    assert!(
        started <= finished && finished.timestamp() <= after.timestamp() + 1,
        "{last}"
    );
    assert!(last["id"].as_str().unwrap().starts_with("syn_"), "{last}");
    stripe.stop().await;
}

#[tokio::test]
async fn a_reconcile_finds_the_reader_in_the_expanded_customers_metadata() {
    let mut subscription = active_subscription(SUBSCRIPTION_42, CUSTOMER_42, None);
    subscription["customer"] = json!({
        "id": CUSTOMER_42,
        "object": "customer",
        "email": "reader42@example.org",
        "metadata": { "reader_id": "reader-42" },
    });
    let stripe = subscriptions_only(vec![subscription]).start().await;
    let app = stripe.app().await;
    app.put_plan("all-access", &[PRICE], &["articles"]).await;
    app.clock.set(at(1_763_100_000));

    let body = app.reconcile_ok().await;

    assert_eq!(body["listings"][1], read("subscriptions", 1, 1, 0));
    assert_eq!(stripe.seen()[1].param("expand[0]"), Some("data.customer"));
    let reader = app.reader("reader-42").await;
    assert_eq!(reader["stripe_customer_id"], CUSTOMER_42);
    assert_eq!(app.entitlements("reader-42").await, ["articles"]);
    stripe.stop().await;
}
