// long file: the subscribe flow end to end against a fake Stripe, one test per rule
//! The subscribe flow against a fake Stripe API that records every request: Checkout Sessions
//! (new and existing customers, trials, promotion codes, the idempotency key), Billing Portal
//! sessions, redirect URL validation, Stripe's failures, and the whole walk from a refused
//! article through checkout and the webhooks to an entitled reader.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate::config::Settings;

use crate::fake_stripe::{FakeStripe, Reply, Seen};
use crate::helpers::{Options, PlanBody, TestApp, at, problem, spawn_app_with};

/// The secret key the apps under test send to the fake Stripe.
const SECRET_KEY: &str = "sk_test_fake_checkout_0123456789";
const PRICE: &str = "price_1TPeerMonthly01";
const YEARLY: &str = "price_1TPeerYearly001";
const CUSTOMER: &str = "cus_TPeer0Reader01";
const SESSION: &str = "cs_test_a1TPeerCheckoutSession0001";
/// Stripe's endpoint that creates Checkout Sessions.
const STRIPE_CHECKOUT: &str = "/v1/checkout/sessions";
const EXPIRES_AT: i64 = 1_763_186_340;
/// Within the subscription fixtures' first period.
const IN_FIRST_PERIOD: i64 = 1_763_100_000;

const CHECKOUT_COMPLETED: &[u8] =
    include_bytes!("../fixtures/stripe/checkout.session.completed.subscription.json");
const SUBSCRIPTION_CREATED: &[u8] =
    include_bytes!("../fixtures/stripe/customer.subscription.created.json");

fn allow_news_example(settings: &mut Settings) {
    settings.allowed_redirect_origins = vec![
        "https://news.example".parse().unwrap(),
        "http://localhost:3000".parse().unwrap(),
    ];
    settings.stripe_timeout = Duration::from_millis(500);
    // These tests send one reader to checkout many times; its rate limit has tests of its own.
    settings.rate_limit_checkout_per_reader = 0;
}

/// Stripe's answer to a Checkout Session created from `seen`: the completed fixture's session as
/// it looks when new (open, with a URL), echoing what was asked.
fn created_session(seen: &Seen) -> Value {
    let event: Value = serde_json::from_slice(CHECKOUT_COMPLETED).unwrap();
    let mut session = event["data"]["object"].clone();
    session["status"] = json!("open");
    session["payment_status"] = json!("unpaid");
    session["subscription"] = Value::Null;
    session["expires_at"] = json!(EXPIRES_AT);
    session["url"] = json!(format!(
        "https://checkout.stripe.com/c/pay/{SESSION}#fidkdWxOYHwnPyd1blpxYHZxWjA0"
    ));
    for name in [
        "customer",
        "customer_email",
        "success_url",
        "cancel_url",
        "client_reference_id",
    ] {
        session[name] = json!(seen.form_field(name));
    }
    session
}

fn portal_session(seen: &Seen) -> Value {
    json!({
        "id": "bps_1TPeerPortalSess01",
        "object": "billing_portal.session",
        "configuration": "bpc_1TPeerPortalConf01",
        "created": 1_763_100_000,
        "customer": seen.form_field("customer"),
        "flow": null,
        "livemode": false,
        "locale": null,
        "on_behalf_of": null,
        "return_url": seen.form_field("return_url"),
        "url": "https://billing.stripe.com/p/session/test_YWNjdF8xVFBlZXJQb3J0YWw",
    })
}

/// A fake Stripe that creates sessions, like the real one does when all goes well.
async fn working_stripe() -> FakeStripe {
    FakeStripe::builder()
        .on_post(STRIPE_CHECKOUT, Reply::computed(created_session))
        .on_post(
            "/v1/billing_portal/sessions",
            Reply::computed(portal_session),
        )
        .start()
        .await
}

async fn app_on(stripe: &FakeStripe) -> TestApp {
    let app = stripe.app_with(SECRET_KEY, Some(allow_news_example)).await;
    app.clock.set(at(IN_FIRST_PERIOD));
    app
}

impl TestApp {
    async fn post_with_key(
        &self,
        path: &str,
        body: Value,
        idempotency_key: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url(path))
            .bearer_auth(&self.admin_key)
            .json(&body);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.unwrap()
    }

    async fn checkout(&self, body: Value) -> reqwest::Response {
        self.post_with_key("/v1/checkout/sessions", body, None)
            .await
    }
}

fn checkout_body(reader: &str, plan: &str) -> Value {
    json!({
        "reader_id": reader,
        "plan_id": plan,
        "success_url": "https://news.example/welcome?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://news.example/article/42",
    })
}

fn lines(pairs: &[&str]) -> Vec<String> {
    let mut lines: Vec<String> = pairs.iter().map(|s| (*s).to_owned()).collect();
    lines.sort();
    lines
}

#[tokio::test]
async fn a_new_reader_gets_a_subscription_checkout_carrying_their_id_and_email() {
    let stripe = working_stripe().await;
    let app = app_on(&stripe).await;
    app.put_plan("all-access", &[PRICE, YEARLY], &["articles"])
        .await;

    let mut body = checkout_body("reader-7", "all-access");
    body["email"] = json!("reader7@example.com");
    let response = app
        .post_with_key(
            "/v1/checkout/sessions",
            body,
            Some("checkout-reader-7-attempt-1"),
        )
        .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["id"], SESSION);
    assert!(
        created["url"]
            .as_str()
            .unwrap()
            .starts_with("https://checkout.stripe.com/c/pay/cs_test_")
    );
    assert_eq!(created["expires_at"], "2025-11-15T05:59:00Z");

    let seen = stripe.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/v1/checkout/sessions")
    );
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(format!("Bearer {SECRET_KEY}").as_str())
    );
    // Stripe gets a key derived from the caller's key id and theirs, never theirs as it is.
    let sent = seen[0].idempotency_key.clone().unwrap();
    assert!(
        sent.starts_with("tollgate-") && !sent.contains("checkout-reader-7-attempt-1"),
        "{sent}"
    );
    assert_eq!(
        seen[0].form_lines(),
        lines(&[
            "mode=subscription",
            "line_items[0][price]=price_1TPeerMonthly01",
            "line_items[0][quantity]=1",
            "success_url=https://news.example/welcome?session={CHECKOUT_SESSION_ID}",
            "cancel_url=https://news.example/article/42",
            "client_reference_id=reader-7",
            "metadata[reader_id]=reader-7",
            "subscription_data[metadata][reader_id]=reader-7",
            "customer_email=reader7@example.com",
        ])
    );
    stripe.stop().await;
}

#[tokio::test]
async fn a_reader_with_a_customer_checks_out_as_that_customer_with_the_plans_trial_and_codes() {
    let stripe = working_stripe().await;
    let app = app_on(&stripe).await;
    app.put_plan("all-access", &[PRICE], &["articles"]).await;
    app.put_plan_with(
        "analysis",
        &PlanBody::new(
            "Analysis",
            &["price_1TPeerAnalysis01", "price_1TPeerAnalysis12"],
            &["reports"],
        )
        .trial_days(14)
        .allow_promotion_codes(true),
    )
    .await;
    // reader-42 subscribed to all-access through checkout: Stripe knows them as a customer.
    app.deliver_ok(CHECKOUT_COMPLETED).await;
    app.deliver_ok(SUBSCRIPTION_CREATED).await;

    let mut body = checkout_body("reader-42", "analysis");
    body["email"] = json!("someone-else@example.com");
    body["price"] = json!("price_1TPeerAnalysis12");
    let response = app.checkout(body).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());

    let seen = stripe.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].idempotency_key, None);
    assert_eq!(
        seen[0].form_lines(),
        lines(&[
            "mode=subscription",
            "line_items[0][price]=price_1TPeerAnalysis12",
            "line_items[0][quantity]=1",
            "success_url=https://news.example/welcome?session={CHECKOUT_SESSION_ID}",
            "cancel_url=https://news.example/article/42",
            "client_reference_id=reader-42",
            "metadata[reader_id]=reader-42",
            "subscription_data[metadata][reader_id]=reader-42",
            "subscription_data[trial_period_days]=14",
            "allow_promotion_codes=true",
            // The customer, and no e-mail: Stripe already has theirs.
            &format!("customer={CUSTOMER}"),
        ])
    );
    stripe.stop().await;
}

#[tokio::test]
async fn a_subscriber_is_sent_to_the_portal_instead_of_a_second_subscription() {
    let stripe = working_stripe().await;
    let app = app_on(&stripe).await;
    app.put_plan("all-access", &[PRICE], &["articles"]).await;
    app.put_plan("articles-yearly", &[YEARLY], &["articles"])
        .await;
    app.deliver_ok(CHECKOUT_COMPLETED).await;
    app.deliver_ok(SUBSCRIPTION_CREATED).await;

    for plan in ["all-access", "articles-yearly"] {
        let body = problem(
            app.checkout(checkout_body("reader-42", plan)).await,
            409,
            "already_subscribed",
        )
        .await;
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("/v1/portal/sessions"),
            "{body}"
        );
    }
    assert!(stripe.seen().is_empty());

    let response = app
        .post_with_key(
            "/v1/portal/sessions",
            json!({ "reader_id": "reader-42", "return_url": "https://news.example/account" }),
            Some("portal-42"),
        )
        .await;
    assert_eq!(response.status(), 201);
    let portal: Value = response.json().await.unwrap();
    assert_eq!(
        portal["url"],
        "https://billing.stripe.com/p/session/test_YWNjdF8xVFBlZXJQb3J0YWw"
    );
    let seen = stripe.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/billing_portal/sessions");
    let sent = seen[0].idempotency_key.clone().unwrap();
    assert!(
        sent.starts_with("tollgate-") && !sent.contains("portal-42"),
        "{sent}"
    );
    assert_eq!(
        seen[0].form_lines(),
        lines(&[
            &format!("customer={CUSTOMER}"),
            "return_url=https://news.example/account"
        ])
    );
    stripe.stop().await;
}

#[tokio::test]
async fn the_portal_needs_a_customer_and_an_allowed_return_url() {
    let stripe = working_stripe().await;
    let app = app_on(&stripe).await;
    let portal = |reader: &str, url: &str| json!({ "reader_id": reader, "return_url": url });
    problem(
        app.post_with_key(
            "/v1/portal/sessions",
            portal("reader-7", "https://news.example/account"),
            None,
        )
        .await,
        404,
        "not_found",
    )
    .await;
    problem(
        app.post_with_key(
            "/v1/portal/sessions",
            portal("reader-7", "https://evil.example/"),
            None,
        )
        .await,
        422,
        "invalid_redirect_url",
    )
    .await;
    assert!(stripe.seen().is_empty());
    stripe.stop().await;
}

#[tokio::test]
async fn redirect_urls_off_the_allowed_origins_are_refused_before_stripe_is_called() {
    let stripe = working_stripe().await;
    let app = app_on(&stripe).await;
    app.put_plan("all-access", &[PRICE], &["articles"]).await;
    for url in [
        "https://evil.example/welcome",
        "https://news.example.evil.example/",
        "https://news.example@evil.example/",
        "https://news.example:secret@evil.example/",
        "javascript:alert(document.cookie)",
        "data:text/html,<script>alert(1)</script>",
        "/welcome",
        "//evil.example/welcome",
        "http://news.example/welcome",
        "https://news.example\\@evil.example/",
        "https://news.example/\n",
        "",
    ] {
        for field in ["success_url", "cancel_url"] {
            let mut body = checkout_body("reader-7", "all-access");
            body[field] = json!(url);
            let problem = problem(app.checkout(body).await, 422, "invalid_redirect_url").await;
            assert!(
                problem["detail"].as_str().unwrap().starts_with(field),
                "{problem}"
            );
        }
    }
    // Local development may use http on localhost.
    let mut body = checkout_body("reader-7", "all-access");
    body["success_url"] = json!("http://localhost:3000/welcome");
    assert_eq!(app.checkout(body).await.status(), 201);
    assert_eq!(stripe.seen().len(), 1);
    stripe.stop().await;
}

#[tokio::test]
async fn bad_plans_prices_emails_and_idempotency_keys_are_refused_before_stripe_is_called() {
    let stripe = working_stripe().await;
    let app = app_on(&stripe).await;
    app.put_plan("all-access", &[PRICE], &["articles"]).await;
    app.put_plan("old-plan", &[YEARLY], &["articles"]).await;
    let archived = app
        .client
        .post(app.url("/v1/plans/old-plan/archive"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    assert!(archived.status().is_success());

    problem(
        app.checkout(checkout_body("reader-7", "no-such-plan"))
            .await,
        404,
        "not_found",
    )
    .await;
    problem(
        app.checkout(checkout_body("reader-7", "old-plan")).await,
        409,
        "plan_archived",
    )
    .await;
    let mut body = checkout_body("reader-7", "all-access");
    body["price"] = json!(YEARLY);
    problem(app.checkout(body).await, 422, "price_not_in_plan").await;
    let mut body = checkout_body("reader-7", "all-access");
    body["email"] = json!("not an address");
    problem(app.checkout(body).await, 422, "invalid_email").await;
    let mut body = checkout_body("reader-7", "all-access");
    body["coupon"] = json!("FREE");
    problem(app.checkout(body).await, 422, "invalid_body").await;
    problem(
        app.post_with_key(
            "/v1/checkout/sessions",
            checkout_body("reader-7", "all-access"),
            Some(&"k".repeat(256)),
        )
        .await,
        422,
        "invalid_idempotency_key",
    )
    .await;
    assert!(stripe.seen().is_empty());
    stripe.stop().await;
}

#[tokio::test]
async fn stripe_errors_become_502_problems_with_its_error_type_and_never_the_key() {
    const ASKED_PRICE: &str = "line_items[0][price]";
    let stripe = FakeStripe::builder()
        .on_post(
            STRIPE_CHECKOUT,
            Reply::error(
                400,
                json!({
                    "type": "invalid_request_error",
                    "code": "resource_missing",
                    "param": "line_items[0][price]",
                    "message": "No such price: 'price_1TPeerGone00001'",
                    "request_log_url": "https://dashboard.stripe.com/test/logs/req_TPeerLog0001",
                }),
            ),
        )
        .when(ASKED_PRICE, "price_1TPeerGone00001")
        .on_post(
            STRIPE_CHECKOUT,
            Reply::error(
                401,
                json!({
                    "type": "invalid_request_error",
                    "message": format!("Invalid API Key provided: {SECRET_KEY}"),
                }),
            ),
        )
        .when(ASKED_PRICE, "price_1TPeerBadKey001")
        .on_post(
            STRIPE_CHECKOUT,
            Reply::error(
                500,
                json!({
                    "type": "api_error",
                    "message": "Sorry, something went wrong. We've already been notified of the problem.",
                }),
            ),
        )
        .when(ASKED_PRICE, "price_1TPeerDown00001")
        // Any other price: slower than the app's Stripe timeout.
        .on_post(
            STRIPE_CHECKOUT,
            Reply::computed(created_session).after(Duration::from_secs(3)),
        )
        .start()
        .await;
    let app = app_on(&stripe).await;
    app.put_plan(
        "all-access",
        &[
            "price_1TPeerGone00001",
            "price_1TPeerBadKey001",
            "price_1TPeerDown00001",
            "price_1TPeerSlow00001",
        ],
        &["articles"],
    )
    .await;
    let with_price = |price: &str| {
        let mut body = checkout_body("reader-7", "all-access");
        body["price"] = json!(price);
        body
    };
    let gone = problem(
        app.checkout(with_price("price_1TPeerGone00001")).await,
        502,
        "stripe_error",
    )
    .await;
    let detail = gone["detail"].as_str().unwrap();
    assert!(
        detail.contains("invalid_request_error") && detail.contains("resource_missing"),
        "{gone}"
    );
    assert!(detail.contains("No such price"), "{gone}");

    let response = app.checkout(with_price("price_1TPeerBadKey001")).await;
    let text = response.text().await.unwrap();
    assert!(
        !text.contains(SECRET_KEY) && !text.contains("fake_checkout"),
        "{text}"
    );
    assert!(text.contains("[redacted]"), "{text}");

    let down = problem(
        app.checkout(with_price("price_1TPeerDown00001")).await,
        502,
        "stripe_error",
    )
    .await;
    assert!(
        down["detail"].as_str().unwrap().contains("api_error"),
        "{down}"
    );

    let started = Instant::now();
    let slow = problem(
        app.checkout(with_price("price_1TPeerSlow00001")).await,
        502,
        "stripe_error",
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        slow["detail"].as_str().unwrap().contains("did not answer"),
        "{slow}"
    );
    stripe.stop().await;
}

#[tokio::test]
async fn without_a_stripe_key_checkout_and_portal_answer_503() {
    let app = spawn_app_with(Options {
        configure: Some(allow_news_example),
        ..Options::default()
    })
    .await;
    app.clock.set(at(IN_FIRST_PERIOD));
    app.put_plan("all-access", &[PRICE], &["articles"]).await;
    let body = problem(
        app.checkout(checkout_body("reader-7", "all-access")).await,
        503,
        "stripe_not_configured",
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("stripe_secret_key"),
        "{body}"
    );
    // A reader Stripe knows (through the checkout webhook) still cannot get a portal session.
    app.deliver_ok(CHECKOUT_COMPLETED).await;
    let portal = json!({ "reader_id": "reader-42", "return_url": "https://news.example/account" });
    problem(
        app.post_with_key("/v1/portal/sessions", portal, None).await,
        503,
        "stripe_not_configured",
    )
    .await;
}

fn no_free_articles(settings: &mut Settings) {
    allow_news_example(settings);
    settings.meter_registered_limit = 0;
}

/// The paywall refuses, the site sends the reader to checkout, Stripe's webhooks land, and the
/// same article opens.
#[tokio::test]
async fn a_refused_reader_checks_out_and_reads_once_the_webhooks_land() {
    let stripe = working_stripe().await;
    let app = stripe.app_with(SECRET_KEY, Some(no_free_articles)).await;
    app.clock.set(at(IN_FIRST_PERIOD));
    app.put_plan("all-access", &[PRICE], &["articles"]).await;

    let refused = app.read("reader-42", "2025/11/budget").await;
    assert_eq!(refused["granted"], false);
    assert_eq!(refused["reason"], "not_allowed");
    let offer = &refused["offers"][0];
    assert_eq!(offer["plan_id"], "all-access");

    let response = app
        .checkout(json!({
            "reader_id": "reader-42",
            "plan_id": offer["plan_id"],
            "success_url": "https://news.example/billing/success?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://news.example/billing/cancel",
        }))
        .await;
    assert_eq!(response.status(), 201);
    let sent = &stripe.seen()[0];
    assert!(
        sent.form_lines()
            .contains(&"client_reference_id=reader-42".to_owned())
    );

    // What Stripe sends once the reader has paid: the session completes and the subscription
    // starts, both carrying the reader id checkout set.
    app.deliver_ok(CHECKOUT_COMPLETED).await;
    app.deliver_ok(SUBSCRIPTION_CREATED).await;
    let granted = app.read("reader-42", "2025/11/budget").await;
    assert_eq!(granted["granted"], true, "{granted}");
    assert_eq!(granted["reason"], "entitled");
    assert_eq!(app.entitlements("reader-42").await, ["articles"]);
    stripe.stop().await;
}
