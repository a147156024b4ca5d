//! A local stand-in for api.stripe.com for the client's tests, and the objects it answers with.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::{RetryPolicy, StripeClient};

pub(super) const KEY: &str = "sk_test_51QxYzA2eZvKYlo2CtollgateFakeKey0123456789abcdef";
const CUSTOMER: &str = "cus_RqT5xY7aBcDeFg";
pub(super) const PAYMENT_INTENT: &str = "pi_3QxZ0a2eZvKYlo2C1kLmNoPq";

pub(super) fn key() -> SecretString {
    SecretString::from(KEY)
}

/// What the fake Stripe saw of one request.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    /// Which request this was: 1 for the first the fake got.
    pub(super) number: usize,
    /// When it came.
    pub(super) at: Instant,
    pub(super) method: String,
    pub(super) path: String,
    pub(super) raw_query: String,
    query: Vec<(String, String)>,
    pub(super) authorization: Option<String>,
    pub(super) stripe_version: Option<String>,
    pub(super) user_agent: Option<String>,
    pub(super) idempotency_key: Option<String>,
}

impl Seen {
    fn of(req: &HttpRequest, number: usize) -> Self {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        Self {
            number,
            at: Instant::now(),
            method: req.method().to_string(),
            path: req.path().to_owned(),
            raw_query: req.query_string().to_owned(),
            query: url::form_urlencoded::parse(req.query_string().as_bytes())
                .into_owned()
                .collect(),
            authorization: header("authorization"),
            stripe_version: header("stripe-version"),
            user_agent: header("user-agent"),
            idempotency_key: header("idempotency-key"),
        }
    }

    pub(super) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A local stand-in for api.stripe.com: answers every request with `answer` and records it.
pub(super) struct FakeStripe {
    pub(super) base: url::Url,
    seen: Arc<Mutex<Vec<Seen>>>,
    handle: ServerHandle,
}

impl FakeStripe {
    pub(super) async fn start(answer: fn(&Seen) -> HttpResponse) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&seen);
        let server = HttpServer::new(move || {
            let recorded = Arc::clone(&recorded);
            App::new().default_service(web::to(move |req: HttpRequest| {
                let recorded = Arc::clone(&recorded);
                async move {
                    let mut recorded = recorded.lock().unwrap();
                    let seen = Seen::of(&req, recorded.len() + 1);
                    let response = answer(&seen);
                    recorded.push(seen);
                    response
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let address = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            base: url::Url::parse(&format!("http://{address}/")).unwrap(),
            seen,
            handle,
        }
    }

    /// A client of this fake that tries again quickly: 3 tries, 10 ms backoff, at most 5 s of
    /// waiting (so a `Retry-After: 1` is honoured).
    pub(super) fn client(&self) -> StripeClient {
        StripeClient::new(&key(), &self.base, Duration::from_secs(5))
            .unwrap()
            .with_retry(RetryPolicy {
                attempts: 3,
                backoff: Duration::from_millis(10),
                max_wait: Duration::from_secs(5),
            })
    }

    pub(super) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub(super) async fn stop(self) {
        self.handle.stop(false).await;
    }
}

pub(super) fn list(url: &str, has_more: bool, data: Vec<Value>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "object": "list",
        "data": data,
        "has_more": has_more,
        "url": url,
    }))
}

pub(super) fn stripe_error(status: u16, body: Value) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .insert_header(("request-id", "req_8VpZbLhW3kQx0A"))
        .json(body)
}

pub(super) fn subscription(id: &str, status: &str) -> Value {
    json!({
        "id": id,
        "object": "subscription",
        "application": null,
        "application_fee_percent": null,
        "automatic_tax": { "enabled": false, "liability": null },
        "billing_cycle_anchor": 1_735_689_600,
        "cancel_at": null,
        "cancel_at_period_end": false,
        "canceled_at": if status == "canceled" { json!(1_738_368_000) } else { Value::Null },
        "cancellation_details": { "comment": null, "feedback": null, "reason": null },
        "collection_method": "charge_automatically",
        "created": 1_735_689_600,
        "currency": "eur",
        "customer": CUSTOMER,
        "default_payment_method": "pm_1QxYz82eZvKYlo2CqWerTyUi",
        "discounts": [],
        "items": {
            "object": "list",
            "data": [{
                "id": "si_RqT6aBcDeFgHiJ",
                "object": "subscription_item",
                "created": 1_735_689_601,
                "current_period_end": 1_738_368_000,
                "current_period_start": 1_735_689_600,
                "discounts": [],
                "metadata": {},
                "price": {
                    "id": "price_1QxYw12eZvKYlo2CaBcDeFgH",
                    "object": "price",
                    "active": true,
                    "billing_scheme": "per_unit",
                    "currency": "eur",
                    "lookup_key": "digital_monthly",
                    "product": "prod_RqT2aBcDeFgHiJ",
                    "recurring": {
                        "interval": "month",
                        "interval_count": 1,
                        "usage_type": "licensed"
                    },
                    "tax_behavior": "inclusive",
                    "type": "recurring",
                    "unit_amount": 999,
                    "unit_amount_decimal": "999"
                },
                "quantity": 1,
                "subscription": id,
                "tax_rates": []
            }],
            "has_more": false,
            "total_count": 1,
            "url": format!("/v1/subscription_items?subscription={id}")
        },
        "latest_invoice": "in_1QxYzB2eZvKYlo2C0aBcDeFg",
        "livemode": false,
        "metadata": { "tollgate_account": "01J9ZQ3K7M2N4P6R8S0T2V4X6Z" },
        "pending_update": null,
        "start_date": 1_735_689_600,
        "status": status,
        "trial_end": null,
        "trial_start": null
    })
}

pub(super) fn invoice(id: &str, created: i64) -> Value {
    json!({
        "id": id,
        "object": "invoice",
        "account_country": "DE",
        "amount_due": 999,
        "amount_paid": 999,
        "amount_remaining": 0,
        "attempt_count": 1,
        "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically",
        "created": created,
        "currency": "eur",
        "customer": CUSTOMER,
        "lines": {
            "object": "list",
            "data": [{
                "id": "il_1QxZ0b2eZvKYlo2CdEfGhIjK",
                "object": "line_item",
                "amount": 999,
                "currency": "eur",
                "description": "1 × Digital (at €9.99 / month)",
                "period": { "end": created + 2_678_400, "start": created },
                "pricing": {
                    "price_details": {
                        "price": "price_1QxYw12eZvKYlo2CaBcDeFgH",
                        "product": "prod_RqT2aBcDeFgHiJ"
                    },
                    "type": "price_details",
                    "unit_amount_decimal": "999"
                },
                "quantity": 1
            }],
            "has_more": false,
            "total_count": 1,
            "url": format!("/v1/invoices/{id}/lines")
        },
        "livemode": false,
        "metadata": {},
        "parent": {
            "quote_details": null,
            "subscription_details": {
                "metadata": {},
                "subscription": "sub_1QxYzA2eZvKYlo2C8nT0aB3d"
            },
            "type": "subscription_details"
        },
        "period_end": created,
        "period_start": created - 2_678_400,
        "status": "paid",
        "status_transitions": {
            "finalized_at": created + 3_600,
            "marked_uncollectible_at": null,
            "paid_at": created + 3_610,
            "voided_at": null
        },
        "subtotal": 999,
        "total": 999,
        "total_taxes": [{
            "amount": 160,
            "tax_behavior": "inclusive",
            "tax_rate_details": { "tax_rate": "txr_1QxYv02eZvKYlo2CmNoPqRsT" },
            "taxability_reason": "standard_rated",
            "taxable_amount": 839,
            "type": "tax_rate_details"
        }]
    })
}

pub(super) fn refund(id: &str, created: i64) -> Value {
    json!({
        "id": id,
        "object": "refund",
        "amount": 999,
        "balance_transaction": "txn_3QxZ0a2eZvKYlo2C1aBcDeFg",
        "charge": "ch_3QxZ0a2eZvKYlo2C1zYxWvUt",
        "created": created,
        "currency": "eur",
        "destination_details": {
            "card": { "reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund" },
            "type": "card"
        },
        "metadata": {},
        "payment_intent": PAYMENT_INTENT,
        "reason": "requested_by_customer",
        "receipt_number": null,
        "source_transfer_reversal": null,
        "status": "succeeded",
        "transfer_reversal": null
    })
}

pub(super) fn invoice_payment(payment_intent: &str) -> Value {
    json!({
        "id": "inpay_1QxZ0c2eZvKYlo2CqRsTuVwX",
        "object": "invoice_payment",
        "amount_paid": 999,
        "amount_requested": 999,
        "created": 1_738_368_010,
        "currency": "eur",
        "invoice": "in_1QxYzB2eZvKYlo2C0aBcDeFg",
        "is_default": true,
        "livemode": false,
        "payment": { "payment_intent": payment_intent, "type": "payment_intent" },
        "status": "paid",
        "status_transitions": { "canceled_at": null, "paid_at": 1_738_368_012 }
    })
}
