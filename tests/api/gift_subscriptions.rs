//! Gift subscriptions: bought through Checkout in payment mode (a subscriber may buy one), a code
//! issued once per completed session and sealed until it is redeemed, revealed only to its
//! buyer, redeemed once however many try at the same time, expired after its validity, and the
//! payment counted as the plan's revenue.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::Response;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tollgate::clock::Clock;
use tollgate::config::Settings;

use crate::fake_stripe::{FakeStripe, Reply, Seen};
use crate::helpers::{PlanBody, TestApp, problem};
use crate::stripe_events::{self, Subscription};

const SECRET_KEY: &str = "sk_test_fake_gifts_0123456789";
const CHECKOUT_COMPLETED: &[u8] =
    include_bytes!("../fixtures/stripe/checkout.session.completed.subscription.json");
const SESSION: &str = "cs_test_a1TPeerGiftSession000001";
const GIFT_KEY: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

fn configure(settings: &mut Settings) {
    settings.allowed_redirect_origins = vec!["https://news.example".parse().unwrap()];
    settings.stripe_timeout = Duration::from_millis(500);
    settings.gift_code_key = Some(GIFT_KEY.into());
    // Concurrent redemptions are a dozen SQLite writers in turn: on a busy machine the last
    // can wait longer than the tests' usual 250 ms for the lock, and would rightly get a 503.
    settings.sqlite_busy_timeout = Duration::from_secs(5);
}

fn configure_without_key(settings: &mut Settings) {
    configure(settings);
    settings.gift_code_key = None;
}

/// Stripe's answer to a new Checkout Session: the fixture's session, open, with a URL.
fn created_session(seen: &Seen) -> Value {
    let event: Value = serde_json::from_slice(CHECKOUT_COMPLETED).unwrap();
    let mut session = event["data"]["object"].clone();
    session["id"] = SESSION.into();
    session["mode"] = json!(seen.form_field("mode"));
    session["status"] = "open".into();
    session["payment_status"] = "unpaid".into();
    session["subscription"] = Value::Null;
    session["url"] = format!("https://checkout.stripe.com/c/pay/{SESSION}").into();
    session
}

async fn stripe() -> FakeStripe {
    FakeStripe::builder()
        .on_post("/v1/checkout/sessions", Reply::computed(created_session))
        .start()
        .await
}

/// The `checkout.session.completed` event of a paid gift of `plan` bought by `buyer`.
fn gift_completed(event_id: &str, created: i64, buyer: &str, plan: &str) -> Vec<u8> {
    gift_session_event(
        "checkout.session.completed",
        "paid",
        event_id,
        created,
        buyer,
        plan,
    )
}

/// An event of type `kind` about a gift session whose payment is `payment_status`.
fn gift_session_event(
    kind: &str,
    payment_status: &str,
    event_id: &str,
    created: i64,
    buyer: &str,
    plan: &str,
) -> Vec<u8> {
    let mut event: Value = serde_json::from_slice(CHECKOUT_COMPLETED).unwrap();
    event["id"] = event_id.into();
    event["type"] = kind.into();
    event["created"] = created.into();
    let session = &mut event["data"]["object"];
    session["id"] = SESSION.into();
    session["mode"] = "payment".into();
    session["subscription"] = Value::Null;
    session["payment_intent"] = "pi_1TPeerGiftPayment01".into();
    session["invoice"] = "in_1TPeerGiftInvoice01".into();
    session["client_reference_id"] = buyer.into();
    session["metadata"] = json!({ "reader_id": buyer, "gift_plan_id": plan, "gift_months": "12" });
    session["amount_subtotal"] = 9900.into();
    session["amount_total"] = 9900.into();
    session["payment_status"] = payment_status.into();
    serde_json::to_vec(&event).unwrap()
}

impl TestApp {
    async fn post_json(&self, path: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.admin_key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn gifts_of(&self, buyer: &str) -> Vec<Value> {
        self.get_json(
            &format!("/v1/gifts/subscriptions?buyer={buyer}"),
            Some(&self.admin_key),
        )
        .await["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn reveal(&self, id: &str, buyer: &str) -> Response {
        self.post_json(
            &format!("/v1/gifts/subscriptions/{id}/reveal"),
            json!({ "buyer": buyer }),
        )
        .await
    }

    async fn redeem(&self, code: &str, reader: &str) -> Response {
        self.post_json(
            "/v1/gifts/subscriptions/redeem",
            json!({ "code": code, "reader_id": reader }),
        )
        .await
    }

    /// A gift of a 12-month plan that `buyer`, a subscriber, bought now: its id and code.
    async fn bought_gift(&self, buyer: &str) -> (String, String) {
        self.giftable_plan_and_subscriber(buyer).await;
        let now = self.clock.now().timestamp();
        self.deliver_ok(&gift_completed("evt_gift", now, buyer, "digital"))
            .await;
        let id = self.gifts_of(buyer).await[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let revealed: Value = self.reveal(&id, buyer).await.json().await.unwrap();
        (id, revealed["code"].as_str().unwrap().to_owned())
    }

    /// A plan that can be given for 12 months, and `buyer` subscribed to it.
    async fn giftable_plan_and_subscriber(&self, buyer: &str) {
        self.put_plan_with(
            "digital",
            &PlanBody::new("Digital", &["price_monthly"], &["articles"]).gift("price_gift", 12),
        )
        .await;
        let subscription = Subscription {
            id: "sub_buyer",
            customer: "cus_buyer",
            reader_id: buyer,
            status: "active",
            price: stripe_events::price("price_monthly", 999, "eur", "month"),
            cancel_at_period_end: false,
        };
        let event = stripe_events::subscription(
            "customer.subscription.created",
            "evt_buyer",
            self.clock.now().timestamp(),
            &subscription,
        );
        self.deliver_ok(&serde_json::to_vec(&event).unwrap()).await;
    }
}

#[tokio::test]
async fn a_subscriber_buys_a_gift_in_payment_mode_and_the_code_is_revealed_only_to_them() {
    let stripe = stripe().await;
    let app = stripe.app_with(SECRET_KEY, Some(configure)).await;
    app.giftable_plan_and_subscriber("ana").await;

    let response = app
        .post_json(
            "/v1/checkout/sessions",
            json!({
                "reader_id": "ana", "plan_id": "digital", "gift": true,
                "success_url": "https://news.example/gift/thanks",
                "cancel_url": "https://news.example/gift",
            }),
        )
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let form = stripe.seen()[0].form_lines();
    for line in [
        "mode=payment",
        "line_items[0][price]=price_gift",
        "line_items[0][quantity]=1",
        "metadata[gift_plan_id]=digital",
        "metadata[gift_months]=12",
        "metadata[reader_id]=ana",
        "invoice_creation[enabled]=true",
    ] {
        assert!(form.contains(&line.to_owned()), "{line} not in {form:?}");
    }
    assert!(
        !form.iter().any(|l| l.starts_with("subscription_data")),
        "{form:?}"
    );

    // The completed session records one gift, however often it is delivered.
    let now = app.clock.now().timestamp();
    app.deliver_ok(&gift_completed("evt_gift_1", now, "ana", "digital"))
        .await;
    app.deliver_ok(&gift_completed("evt_gift_1", now, "ana", "digital"))
        .await;
    app.deliver_ok(&gift_completed("evt_gift_1_replay", now, "ana", "digital"))
        .await;
    let gifts = app.gifts_of("ana").await;
    assert_eq!(gifts.len(), 1, "{gifts:?}");
    let gift = &gifts[0];
    let id = gift["id"].as_str().unwrap();
    assert!(id.starts_with("gsub_"), "{gift}");
    assert_eq!(gift["status"], "unredeemed");
    assert_eq!(gift["months"], 12);
    assert_eq!(gift["amount_total"], 9900);
    assert_eq!(gift["currency"], "eur");
    assert!(gift.get("code").is_none());
    assert!(app.gifts_of("ben").await.is_empty());

    // Only the buyer sees the code, as often as they like until it is redeemed.
    problem(app.reveal(id, "ben").await, 404, "not_found").await;
    let revealed: Value = app.reveal(id, "ana").await.json().await.unwrap();
    let code = revealed["code"].as_str().unwrap().to_owned();
    assert!(code.starts_with("gsc_") && code.len() == 36, "{revealed}");
    let again: Value = app.reveal(id, "ana").await.json().await.unwrap();
    assert_eq!(again["code"], code.as_str());

    // At rest the code is sealed and hashed, never in clear.
    let at_rest = app.db.gift_codes_at_rest().await;
    let (sealed, hash) = &at_rest[0];
    let sealed = sealed.as_ref().expect("sealed until redeemed");
    let hex = &code[4..];
    for stored in [sealed.as_slice(), hash.as_slice()] {
        assert!(!stored.windows(hex.len()).any(|w| w == hex.as_bytes()));
    }
    assert_eq!(hash.as_slice(), Sha256::digest(code.as_bytes()).as_slice());
    // Each reveal is on the record, without the code.
    let reveals = app
        .get_json(
            "/v1/admin/audit-log?action=gift_subscription.reveal",
            Some(&app.admin_key),
        )
        .await;
    let reveals = reveals["items"].as_array().unwrap();
    assert_eq!(reveals.len(), 2);
    assert_eq!(
        reveals[0]["target"],
        format!("gift_subscription:{id}").as_str()
    );
    assert_eq!(reveals[0]["changes"]["buyer"], "ana");
    assert!(!Value::from(reveals.clone()).to_string().contains(hex));

    // Redeemed: a grant of the plan for twelve months, shown as a gift.
    let redeemed = app.redeem(&code, "cy").await;
    assert_eq!(redeemed.status(), 201);
    let redemption: Value = redeemed.json().await.unwrap();
    assert_eq!(redemption["gift_id"], id);
    assert_eq!(redemption["grant"]["entitlements"], json!(["articles"]));
    let expires =
        chrono::DateTime::parse_from_rfc3339(redemption["grant"]["expires_at"].as_str().unwrap())
            .unwrap();
    let twelve_months = app
        .clock
        .now()
        .checked_add_months(chrono::Months::new(12))
        .unwrap();
    assert_eq!(expires.timestamp(), twelve_months.timestamp());
    let cy = app.reader("cy").await;
    assert_eq!(cy["entitlements"][0]["sources"][0]["kind"], "gift", "{cy}");
    // Again as Cy: the same grant; as anyone else: spent.
    let retried = app.redeem(&code, "cy").await;
    assert_eq!(retried.status(), 200);
    let retried: Value = retried.json().await.unwrap();
    assert_eq!(retried["grant"]["id"], redemption["grant"]["id"]);
    problem(app.redeem(&code, "dan").await, 409, "gift_already_redeemed").await;
    problem(app.reveal(id, "ana").await, 409, "gift_already_redeemed").await;
    let listed = &app.gifts_of("ana").await[0];
    assert_eq!(listed["status"], "redeemed");
    assert_eq!(listed["redeemed_by"], "cy");
    // A gift does not make Cy a giver of articles.
    problem(
        app.post_json(
            "/v1/gifts/articles",
            json!({ "reader_id": "cy", "article_id": "a1" }),
        )
        .await,
        409,
        "giver_not_entitled",
    )
    .await;
    // Once redeemed, only the hash is kept; the code never reached a log line.
    assert_eq!(app.db.gift_codes_at_rest().await[0].0, None);
    assert!(!app.captured_logs().contains(&code[4..]));
    stripe.stop().await;
}

#[tokio::test]
async fn concurrent_redemptions_of_one_code_make_one_grant() {
    let stripe = stripe().await;
    let app = stripe.app_with(SECRET_KEY, Some(configure)).await;
    let (_, code) = app.bought_gift("ana").await;

    let mut statuses: Vec<u16> = join_all((0..12).map(|i| {
        let (app, code) = (&app, &code);
        async move { app.redeem(code, &format!("r{i}")).await.status().as_u16() }
    }))
    .await;
    statuses.sort_unstable();
    assert_eq!(statuses, [[201; 1].as_slice(), &[409; 11]].concat());
    let readers: Vec<String> = (0..12).map(|i| format!("r{i}")).collect();
    assert_eq!(app.entitled_among(&readers).await, 1);
    stripe.stop().await;
}

#[tokio::test]
async fn a_code_expires_unredeemed_and_bad_codes_are_refused() {
    let stripe = stripe().await;
    let app = stripe.app_with(SECRET_KEY, Some(configure)).await;
    let (id, code) = app.bought_gift("ana").await;

    problem(
        app.redeem("gsc_nope", "ben").await,
        422,
        "invalid_gift_code",
    )
    .await;
    problem(
        app.redeem("gsc_0123456789abcdef0123456789abcdef", "ben")
            .await,
        404,
        "not_found",
    )
    .await;

    // Twelve months (the default validity) and a day later.
    app.clock.advance(chrono::Duration::days(366));
    problem(app.redeem(&code, "ben").await, 409, "gift_expired").await;
    problem(app.reveal(&id, "ana").await, 409, "gift_expired").await;
    assert_eq!(app.gifts_of("ana").await[0]["status"], "expired");
    assert!(app.entitlements("ben").await.is_empty());
    stripe.stop().await;
}

#[tokio::test]
async fn without_a_gift_code_key_a_purchase_waits_as_a_failed_event_and_nothing_is_lost() {
    let stripe = stripe().await;
    let app = stripe
        .app_with(SECRET_KEY, Some(configure_without_key))
        .await;
    app.giftable_plan_and_subscriber("ana").await;
    let now = app.clock.now().timestamp();
    app.deliver_ok(&gift_completed("evt_gift", now, "ana", "digital"))
        .await;
    let stored = app.stored_event("evt_gift").await;
    assert_eq!(stored["status"], "failed", "{stored}");
    assert!(
        stored["last_error"]
            .as_str()
            .unwrap()
            .contains("gift_code_key"),
        "{stored}"
    );
    assert!(app.gifts_of("ana").await.is_empty());
    stripe.stop().await;
}

#[tokio::test]
async fn checkout_checks_gifts_and_seat_quantities_before_stripe_is_called() {
    let stripe = stripe().await;
    let app = stripe.app_with(SECRET_KEY, Some(configure)).await;
    app.put_plan("plain", &["price_plain"], &["articles"]).await;
    app.put_plan_with(
        "team",
        &PlanBody::new("Team", &["price_team"], &["articles"]).seats(),
    )
    .await;
    let body = |plan: &str, extra: Value| {
        let mut body = json!({
            "reader_id": "ana", "plan_id": plan,
            "success_url": "https://news.example/ok", "cancel_url": "https://news.example/no",
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let checkout = |b: Value| app.post_json("/v1/checkout/sessions", b);
    problem(
        checkout(body("plain", json!({ "gift": true }))).await,
        422,
        "plan_not_giftable",
    )
    .await;
    problem(
        checkout(body("plain", json!({ "quantity": 2 }))).await,
        422,
        "quantity_not_allowed",
    )
    .await;
    problem(
        checkout(body("team", json!({ "quantity": 10_001 }))).await,
        422,
        "quantity_not_allowed",
    )
    .await;
    assert!(stripe.seen().is_empty());

    assert_eq!(
        checkout(body("team", json!({ "quantity": 5 })))
            .await
            .status(),
        201
    );
    let form = stripe.seen()[0].form_lines();
    assert!(
        form.contains(&"line_items[0][quantity]=5".to_owned()),
        "{form:?}"
    );
    assert!(form.contains(&"mode=subscription".to_owned()), "{form:?}");
    stripe.stop().await;
}

#[tokio::test]
async fn plans_keep_their_seats_and_gift_offer_and_refuse_half_an_offer() {
    let stripe = stripe().await;
    let app = stripe.app_with(SECRET_KEY, Some(configure)).await;
    app.put_plan_with(
        "team",
        &PlanBody::new("Team", &["price_team"], &["articles"])
            .seats()
            .gift("price_team_gift", 6),
    )
    .await;
    let plan = app.get_json("/v1/plans/team", Some(&app.admin_key)).await;
    assert_eq!(plan["seats"], true);
    assert_eq!(plan["gift_price"], "price_team_gift");
    assert_eq!(plan["gift_months"], 6);
    let mut half = PlanBody::new("Half", &["price_half"], &["articles"]).json();
    half["gift_price"] = "price_half_gift".into();
    problem(app.put_plan_body("half", &half).await, 422, "invalid_body").await;
    // Another plan's gift price is taken.
    let taken = PlanBody::new("Other", &["price_team_gift"], &["articles"]);
    assert_eq!(app.put_plan_body("other", &taken).await.status(), 409);
    stripe.stop().await;
}

#[tokio::test]
async fn a_gifts_payment_is_the_plans_revenue_and_never_mrr() {
    let stripe = stripe().await;
    let app = stripe.app_with(SECRET_KEY, Some(configure)).await;
    app.giftable_plan_and_subscriber("ana").await;
    let now = app.clock.now().timestamp();
    app.deliver_ok(&gift_completed("evt_gift", now, "ana", "digital"))
        .await;
    // The invoice Checkout made for the payment: no subscription, one line of the gift price.
    let mut invoice = stripe_events::invoice(
        "evt_gift_invoice",
        now,
        &stripe_events::Invoice {
            id: "in_1TPeerGiftInvoice01",
            customer: "cus_buyer",
            subscription: "",
            reader_id: "ana",
            price_id: "price_gift",
            currency: "eur",
            subtotal: 9900,
            discount: 0,
            tax: 0,
            paid: true,
        },
    );
    let object = &mut invoice["data"]["object"];
    object["parent"] = Value::Null;
    object["subscription"] = Value::Null;
    object["lines"]["data"][0]["parent"] = Value::Null;
    app.deliver_ok(&serde_json::to_vec(&invoice).unwrap()).await;

    let month = app.clock.now().format("%Y-%m").to_string();
    let revenue = app
        .get_json(
            &format!(
                "/v1/reports/revenue?from={month}-01&to={month}-28&interval=month&group_by=plan"
            ),
            Some(&app.admin_key),
        )
        .await;
    let rows = revenue["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{revenue}");
    assert_eq!(rows[0]["plan_id"], "digital");
    assert_eq!(rows[0]["gross"], 9900);
    assert_eq!(rows[0]["invoices"], 1);

    // MRR counts the buyer's own subscription only.
    let mrr = app
        .get_json(
            &format!("/v1/reports/mrr?from={month}&to={month}"),
            Some(&app.admin_key),
        )
        .await;
    assert_eq!(mrr["rows"][0]["mrr"], 999, "{mrr}");
    stripe.stop().await;
}

#[tokio::test]
async fn a_gift_paid_later_or_free_is_recorded_when_it_is_settled() {
    let stripe = stripe().await;
    let app = stripe.app_with(SECRET_KEY, Some(configure)).await;
    app.giftable_plan_and_subscriber("ana").await;
    let now = app.clock.now().timestamp();
    // A bank transfer: the session completes unpaid, and nothing is given yet ...
    let unpaid = gift_session_event(
        "checkout.session.completed",
        "unpaid",
        "evt_done",
        now,
        "ana",
        "digital",
    );
    app.deliver_ok(&unpaid).await;
    assert!(app.gifts_of("ana").await.is_empty());
    // ... until the payment succeeds.
    let paid = gift_session_event(
        "checkout.session.async_payment_succeeded",
        "paid",
        "evt_paid",
        now + 3_600,
        "ana",
        "digital",
    );
    app.deliver_ok(&paid).await;
    assert_eq!(app.stored_event("evt_paid").await["status"], "applied");
    assert_eq!(app.gifts_of("ana").await.len(), 1);

    // A 100 % promotion code: nothing to pay, and the gift is given.
    let mut free: Value = serde_json::from_slice(&gift_session_event(
        "checkout.session.completed",
        "no_payment_required",
        "evt_free",
        now,
        "ben",
        "digital",
    ))
    .unwrap();
    free["data"]["object"]["id"] = "cs_test_a1TPeerGiftSessionFree01".into();
    free["data"]["object"]["amount_total"] = 0.into();
    app.deliver_ok(&serde_json::to_vec(&free).unwrap()).await;
    let given = app.gifts_of("ben").await;
    assert_eq!(given.len(), 1);
    assert_eq!(given[0]["amount_total"], 0);
    stripe.stop().await;
}
