//! Outbound Stripe API calls: for the reconcile job, one page of subscriptions, invoices, refunds
//! or invoice payments at a time, each object kept as raw JSON for the caller's tolerant parsers;
//! for the subscribe flow, Checkout and Billing Portal sessions.
//!
//! # Built on async-stripe, and where it stops
//!
//! The transport is async-stripe's hyper client (`stripe::Client`) on rustls with ring and the
//! bundled webpki roots: it sends the secret key as bearer auth (marked sensitive, so never
//! debug-printed), takes a custom base URL (`ClientBuilder::url`) and a per-request timeout, and
//! parses Stripe's error bodies. Requests are built with async-stripe's generic
//! `RequestBuilder::new(StripeMethod::Get, path).query(..)`, so no typed request struct is used.
//!
//! What it does not do cleanly:
//! - Raw JSON: `send` deserializes with miniserde, not serde, so `serde_json::Value` cannot be the
//!   response type, and the lower `StripeClient::execute`, which returns the raw bytes, takes a
//!   `CustomizedStripeRequest` that only async-stripe itself can construct. So a page is read as
//!   miniserde's JSON `Value` and converted, without loss, to `serde_json::Value` here.
//! - `Stripe-Version`: async-stripe always sends the API version it was generated for
//!   (`2026-09-30.endive` in 1.0.0-rc.10) and offers no way to leave it out, so the account's
//!   default version cannot apply. The response shapes therefore follow that pinned version and
//!   move only when async-stripe is upgraded, which also guarantees a basil-or-later version, as
//!   `/v1/invoice_payments` needs. [`StripeClient::api_version`] tells which one is sent.
//! - An error answer whose body is not Stripe's JSON error (a proxy's 502 page, say) comes back
//!   from async-stripe without its HTTP status, as [`StripeError::Unexpected`].
//! - A card error whose embedded payment intent does not fit async-stripe's typed structs is
//!   reported the same way; list calls do not produce card errors.
//!
//! async-stripe retries nothing here (`RequestStrategy::Once`): the reconcile job decides.
//!
//! rustls picks its crypto provider from its enabled features; only ring is enabled in this
//! tree. Should another dependency ever enable aws-lc-rs as well, a process default provider must
//! be installed at start-up, or building the client panics inside hyper-rustls.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use stripe::{ClientBuilder, RequestStrategy};
use stripe_client_core::{IdempotencyKey, RequestBuilder, StripeMethod};

/// Objects asked for per page: Stripe's maximum.
const PAGE_LIMIT: u32 = 100;
/// Deepest JSON nesting accepted in an object; Stripe's objects are far shallower.
const MAX_DEPTH: usize = 128;
/// Longest Stripe error message kept, in characters.
const MAX_MESSAGE_CHARS: usize = 500;

/// One page of a Stripe list, objects kept as raw JSON so the caller parses them with its own
/// tolerant types.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The objects on this page, in Stripe's order (newest first).
    pub data: Vec<serde_json::Value>,
    /// Whether Stripe has more objects after the last one of this page.
    pub has_more: bool,
}

impl Page {
    /// The `id` of the last object, the `starting_after` cursor of the next page.
    pub fn last_id(&self) -> Option<&str> {
        self.data.last()?.get("id")?.as_str()
    }
}

/// Why a call to Stripe failed. The secret key is never part of it.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe answered with an error object.
    #[error(
        "Stripe answered {status} ({error_type}{}): {}",
        code.as_deref().map(|c| format!(", {c}")).unwrap_or_default(),
        message.as_deref().unwrap_or("no message")
    )]
    Api {
        /// The HTTP status, such as 404.
        status: u16,
        /// Stripe's error `type`, such as `invalid_request_error`, kept verbatim.
        error_type: String,
        /// Stripe's error `code`, such as `resource_missing`, kept verbatim.
        code: Option<String>,
        /// Stripe's human-readable `message`, cut to a bounded length.
        message: Option<String>,
    },
    /// Stripe did not answer within the configured timeout.
    #[error("Stripe did not answer within {0:?}")]
    Timeout(Duration),
    /// Stripe could not be reached: connection refused, DNS, TLS and the like.
    #[error("could not reach Stripe: {0}")]
    Network(String),
    /// Stripe answered with something that is not what its API documents.
    #[error("unexpected answer from Stripe: {0}")]
    Unexpected(String),
    /// The client could not be built from the settings given.
    #[error("invalid Stripe client settings: {0}")]
    Config(String),
}

impl StripeError {
    fn from_library(error: stripe::StripeError, timeout: Duration) -> Self {
        match error {
            stripe::StripeError::Stripe(api, status) => Self::Api {
                status,
                error_type: api.type_.as_str().to_owned(),
                code: api.code.as_ref().map(|code| code.as_str().to_owned()),
                message: api.message.as_deref().map(bounded_message),
            },
            stripe::StripeError::Timeout => Self::Timeout(timeout),
            stripe::StripeError::ClientError(message) => Self::Network(message),
            stripe::StripeError::JSONDeserialize(message) => Self::Unexpected(message),
            stripe::StripeError::ConfigError(message) => Self::Config(message),
        }
    }
}

/// A Stripe error message on one line (control characters become spaces), cut to
/// [`MAX_MESSAGE_CHARS`], with anything shaped like a Stripe secret replaced, so it can go into a
/// log line or an answer as it is. (Stripe masks keys it quotes, but this does not rely on it.)
fn bounded_message(message: &str) -> String {
    let one_line: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE_CHARS)
        .collect();
    redact_secrets(&one_line)
}

/// Prefixes of Stripe's secrets: secret and restricted keys, webhook signing secrets.
const SECRET_PREFIXES: [&str; 5] = ["sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"];

/// `text` with every word that starts like a Stripe secret replaced by `[redacted]`.
fn redact_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((at, prefix)) = SECRET_PREFIXES
        .iter()
        .filter_map(|p| rest.find(p).map(|at| (at, *p)))
        .min()
    {
        out.push_str(&rest[..at]);
        out.push_str("[redacted]");
        let after = &rest[at + prefix.len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '*' || c == '_'))
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// A client for Stripe's REST API, reading lists one page at a time. Cheap to clone.
#[derive(Clone)]
pub struct StripeClient {
    inner: stripe::Client,
    api_base: String,
    timeout: Duration,
}

impl fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeClient")
            .field("api_base", &self.api_base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl StripeClient {
    /// Builds a client that sends `secret_key` to `api_base` (`https://api.stripe.com/` in
    /// production) and gives up on any request after `timeout`.
    pub fn new(
        secret_key: &SecretString,
        api_base: &url::Url,
        timeout: Duration,
    ) -> Result<Self, StripeError> {
        crate::config::check_stripe_api_base(api_base).map_err(StripeError::Config)?;
        if timeout.is_zero() {
            return Err(StripeError::Config(
                "the Stripe request timeout must be positive".into(),
            ));
        }
        // async-stripe appends `v1/<resource>` to the base as it is written.
        let mut base = api_base.as_str().to_owned();
        if !base.ends_with('/') {
            base.push('/');
        }
        let inner = ClientBuilder::new(secret_key.expose_secret())
            .url(base.clone())
            .timeout(timeout)
            .request_strategy(RequestStrategy::Once)
            .app_info("tollgate", Some(env!("CARGO_PKG_VERSION").to_owned()), None)
            .build()
            .map_err(|error| match error {
                // Its only complaint about a key is that it is not visible ASCII; say so without
                // the key.
                stripe::StripeError::ClientError(message) => StripeError::Config(message),
                other => StripeError::from_library(other, timeout),
            })?;
        Ok(Self {
            inner,
            api_base: base,
            timeout,
        })
    }

    /// The client the settings describe, or `None` when no secret key is configured.
    pub fn from_settings(settings: &crate::config::Settings) -> Result<Option<Self>, StripeError> {
        let Some(key) = &settings.stripe_secret_key else {
            return Ok(None);
        };
        let base = url::Url::parse(&settings.stripe_api_base)
            .map_err(|e| StripeError::Config(format!("stripe_api_base is not a URL: {e}")))?;
        Self::new(key, &base, settings.stripe_timeout).map(Some)
    }

    /// The `Stripe-Version` every request carries: the one async-stripe was generated for, since
    /// it cannot be left out (see the module documentation).
    pub fn api_version() -> String {
        stripe_client_core::VERSION.as_str().to_owned()
    }

    /// `GET /v1/subscriptions?status=all&limit=100&expand[]=data.customer[&starting_after=..]`:
    /// every subscription, canceled ones included, with its customer expanded.
    pub async fn list_subscriptions(
        &self,
        starting_after: Option<&str>,
    ) -> Result<Page, StripeError> {
        self.list(
            "/subscriptions",
            &SubscriptionsQuery {
                status: "all",
                limit: PAGE_LIMIT,
                expand: ["data.customer"],
                starting_after,
            },
        )
        .await
    }

    /// `GET /v1/prices?limit=100[&starting_after=..]`: every price, active or not.
    pub async fn list_prices(&self, starting_after: Option<&str>) -> Result<Page, StripeError> {
        self.list(
            "/prices",
            &PricesQuery {
                limit: PAGE_LIMIT,
                starting_after,
            },
        )
        .await
    }

    /// `GET /v1/invoices?created[gte]=..&limit=100[&starting_after=..]`: invoices created at or
    /// after `created_gte` (Unix seconds).
    pub async fn list_invoices(
        &self,
        created_gte: i64,
        starting_after: Option<&str>,
    ) -> Result<Page, StripeError> {
        self.list(
            "/invoices",
            &CreatedSinceQuery::new(created_gte, starting_after),
        )
        .await
    }

    /// `GET /v1/refunds?created[gte]=..&limit=100[&starting_after=..]`: refunds created at or
    /// after `created_gte` (Unix seconds).
    pub async fn list_refunds(
        &self,
        created_gte: i64,
        starting_after: Option<&str>,
    ) -> Result<Page, StripeError> {
        self.list(
            "/refunds",
            &CreatedSinceQuery::new(created_gte, starting_after),
        )
        .await
    }

    /// `GET /v1/invoice_payments?payment[type]=payment_intent&payment[payment_intent]=..&limit=100`:
    /// the invoice payments that link `payment_intent` (`pi_...`) to its invoices (API versions
    /// 2025-03-31.basil and later).
    pub async fn invoice_payments_for(&self, payment_intent: &str) -> Result<Page, StripeError> {
        self.list(
            "/invoice_payments",
            &InvoicePaymentsQuery {
                payment: PaymentFilter {
                    kind: "payment_intent",
                    payment_intent,
                },
                limit: PAGE_LIMIT,
            },
        )
        .await
    }

    /// `POST /v1/checkout/sessions`: a Checkout Session in subscription mode. With an
    /// `idempotency_key`, Stripe answers a retried call with the session it created first.
    pub async fn create_checkout_session(
        &self,
        request: &CheckoutSessionRequest<'_>,
        idempotency_key: Option<&str>,
    ) -> Result<CheckoutSession, StripeError> {
        let form = CheckoutSessionForm {
            mode: "subscription",
            line_items: [LineItem {
                price: request.price,
                quantity: 1,
            }],
            success_url: request.success_url,
            cancel_url: request.cancel_url,
            client_reference_id: request.reader_id,
            metadata: ReaderMetadata {
                reader_id: request.reader_id,
            },
            subscription_data: SubscriptionData {
                metadata: ReaderMetadata {
                    reader_id: request.reader_id,
                },
                trial_period_days: request.trial_days.filter(|days| *days > 0),
            },
            customer: request.customer,
            customer_email: request
                .customer
                .is_none()
                .then_some(request.customer_email)
                .flatten(),
            allow_promotion_codes: request.allow_promotion_codes.then_some(true),
        };
        let session: RawCheckoutSession = self
            .post("/checkout/sessions", &form, idempotency_key)
            .await?;
        let url = session
            .url
            .ok_or_else(|| StripeError::Unexpected("a Checkout Session without a url".into()))?;
        Ok(CheckoutSession {
            id: session.id,
            url,
            expires_at: session.expires_at,
        })
    }

    /// `POST /v1/billing_portal/sessions`: a Billing Portal session for `customer`, which
    /// returns the reader to `return_url`.
    pub async fn create_portal_session(
        &self,
        customer: &str,
        return_url: &str,
        idempotency_key: Option<&str>,
    ) -> Result<PortalSession, StripeError> {
        let session: RawPortalSession = self
            .post(
                "/billing_portal/sessions",
                &PortalSessionForm {
                    customer,
                    return_url,
                },
                idempotency_key,
            )
            .await?;
        Ok(PortalSession { url: session.url })
    }

    async fn post<T: miniserde::Deserialize>(
        &self,
        path: &str,
        form: &impl Serialize,
        idempotency_key: Option<&str>,
    ) -> Result<T, StripeError> {
        let strategy = match idempotency_key {
            Some(key) => RequestStrategy::Idempotent(
                IdempotencyKey::new(key).map_err(|e| StripeError::Config(e.to_string()))?,
            ),
            None => RequestStrategy::Once,
        };
        RequestBuilder::new(StripeMethod::Post, path)
            .form(form)
            .customize::<T>()
            .request_strategy(strategy)
            .send(&self.inner)
            .await
            .map_err(|error| StripeError::from_library(error, self.timeout))
    }

    async fn list(&self, path: &str, query: &impl Serialize) -> Result<Page, StripeError> {
        let list: RawList = RequestBuilder::new(StripeMethod::Get, path)
            .query(query)
            .customize::<RawList>()
            .send(&self.inner)
            .await
            .map_err(|error| StripeError::from_library(error, self.timeout))?;
        let data = list
            .data
            .into_iter()
            .map(|object| to_serde_json(object, 0))
            .collect::<Result<_, _>>()?;
        Ok(Page {
            data,
            has_more: list.has_more,
        })
    }
}

#[derive(Serialize)]
struct SubscriptionsQuery<'a> {
    status: &'static str,
    limit: u32,
    /// The customer comes as an object, so its metadata can name the reader.
    expand: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    starting_after: Option<&'a str>,
}

#[derive(Serialize)]
struct PricesQuery<'a> {
    limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    starting_after: Option<&'a str>,
}

#[derive(Serialize)]
struct CreatedSinceQuery<'a> {
    created: CreatedRange,
    limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    starting_after: Option<&'a str>,
}

impl<'a> CreatedSinceQuery<'a> {
    fn new(created_gte: i64, starting_after: Option<&'a str>) -> Self {
        Self {
            created: CreatedRange { gte: created_gte },
            limit: PAGE_LIMIT,
            starting_after,
        }
    }
}

#[derive(Serialize)]
struct CreatedRange {
    gte: i64,
}

#[derive(Serialize)]
struct InvoicePaymentsQuery<'a> {
    payment: PaymentFilter<'a>,
    limit: u32,
}

#[derive(Serialize)]
struct PaymentFilter<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    payment_intent: &'a str,
}

/// What a Checkout Session is made of; see [`StripeClient::create_checkout_session`].
#[derive(Debug, Clone, Copy)]
pub struct CheckoutSessionRequest<'a> {
    /// The Stripe price subscribed to.
    pub price: &'a str,
    /// Where Stripe sends the reader after paying (`{CHECKOUT_SESSION_ID}` is filled in).
    pub success_url: &'a str,
    /// Where Stripe sends the reader who gives up.
    pub cancel_url: &'a str,
    /// The reader, carried as `client_reference_id` and in both metadata.
    pub reader_id: &'a str,
    /// The reader's Stripe customer, when they have one.
    pub customer: Option<&'a str>,
    /// The e-mail address to fill in, when there is no customer.
    pub customer_email: Option<&'a str>,
    /// Free days before the first payment, if any.
    pub trial_days: Option<u32>,
    /// Whether the reader may enter a promotion code.
    pub allow_promotion_codes: bool,
}

/// A Checkout Session Stripe created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutSession {
    /// `cs_...`.
    pub id: String,
    /// Where to send the reader.
    pub url: String,
    /// When the session expires (Unix seconds).
    pub expires_at: i64,
}

/// A Billing Portal session Stripe created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalSession {
    /// Where to send the reader.
    pub url: String,
}

#[derive(Serialize)]
struct CheckoutSessionForm<'a> {
    mode: &'static str,
    line_items: [LineItem<'a>; 1],
    success_url: &'a str,
    cancel_url: &'a str,
    client_reference_id: &'a str,
    metadata: ReaderMetadata<'a>,
    subscription_data: SubscriptionData<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allow_promotion_codes: Option<bool>,
}

#[derive(Serialize)]
struct LineItem<'a> {
    price: &'a str,
    quantity: u32,
}

/// The reader, so the webhooks that follow can be linked to them.
#[derive(Serialize)]
struct ReaderMetadata<'a> {
    reader_id: &'a str,
}

#[derive(Serialize)]
struct SubscriptionData<'a> {
    metadata: ReaderMetadata<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trial_period_days: Option<u32>,
}

#[derive(Serialize)]
struct PortalSessionForm<'a> {
    customer: &'a str,
    return_url: &'a str,
}

/// The fields of a Checkout Session tollgate reads; the others are ignored.
#[derive(miniserde::Deserialize)]
struct RawCheckoutSession {
    id: String,
    url: Option<String>,
    expires_at: i64,
}

/// The field of a Billing Portal session tollgate reads.
#[derive(miniserde::Deserialize)]
struct RawPortalSession {
    url: String,
}

/// A Stripe list as async-stripe can hand it over: its other keys (`object`, `url`) are ignored.
#[derive(miniserde::Deserialize)]
struct RawList {
    data: Vec<miniserde::json::Value>,
    has_more: bool,
}

/// Converts miniserde's JSON value to serde_json's, the same numbers, strings and key order
/// aside (serde_json's map is sorted, like miniserde's).
fn to_serde_json(
    value: miniserde::json::Value,
    depth: usize,
) -> Result<serde_json::Value, StripeError> {
    use miniserde::json::{Number, Value};
    if depth > MAX_DEPTH {
        return Err(StripeError::Unexpected(format!(
            "an object nested more than {MAX_DEPTH} levels deep"
        )));
    }
    Ok(match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(b),
        Value::Number(Number::U64(n)) => n.into(),
        Value::Number(Number::I64(n)) => n.into(),
        Value::Number(Number::F64(n)) => serde_json::Number::from_f64(n)
            .map(serde_json::Value::Number)
            .ok_or_else(|| StripeError::Unexpected(format!("a non-finite number {n}")))?,
        Value::String(s) => serde_json::Value::String(s),
        Value::Array(items) => serde_json::Value::Array(
            items
                .into_iter()
                .map(|item| to_serde_json(item, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(entries) => serde_json::Value::Object(
            entries
                .into_iter()
                .map(|(key, item)| Ok((key, to_serde_json(item, depth + 1)?)))
                .collect::<Result<_, StripeError>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use actix_web::dev::ServerHandle;
    use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
    use serde_json::{Value, json};

    use super::*;

    const KEY: &str = "sk_test_51QxYzA2eZvKYlo2CtollgateFakeKey0123456789abcdef";
    const CUSTOMER: &str = "cus_RqT5xY7aBcDeFg";
    const PAYMENT_INTENT: &str = "pi_3QxZ0a2eZvKYlo2C1kLmNoPq";

    fn key() -> SecretString {
        SecretString::from(KEY)
    }

    /// What the fake Stripe saw of one request.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        raw_query: String,
        query: Vec<(String, String)>,
        authorization: Option<String>,
        stripe_version: Option<String>,
        user_agent: Option<String>,
    }

    impl Seen {
        fn of(req: &HttpRequest) -> Self {
            let header = |name: &str| {
                req.headers()
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_owned())
            };
            Self {
                method: req.method().to_string(),
                path: req.path().to_owned(),
                raw_query: req.query_string().to_owned(),
                query: url::form_urlencoded::parse(req.query_string().as_bytes())
                    .into_owned()
                    .collect(),
                authorization: header("authorization"),
                stripe_version: header("stripe-version"),
                user_agent: header("user-agent"),
            }
        }

        fn param(&self, name: &str) -> Option<&str> {
            self.query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// A local stand-in for api.stripe.com: answers every request with `answer` and records it.
    struct FakeStripe {
        base: url::Url,
        seen: Arc<Mutex<Vec<Seen>>>,
        handle: ServerHandle,
    }

    impl FakeStripe {
        async fn start(answer: fn(&Seen) -> HttpResponse) -> Self {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let recorded = Arc::clone(&seen);
            let server = HttpServer::new(move || {
                let recorded = Arc::clone(&recorded);
                App::new().default_service(web::to(move |req: HttpRequest| {
                    let recorded = Arc::clone(&recorded);
                    async move {
                        let seen = Seen::of(&req);
                        let response = answer(&seen);
                        recorded.lock().unwrap().push(seen);
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

        fn client(&self) -> StripeClient {
            StripeClient::new(&key(), &self.base, Duration::from_secs(5)).unwrap()
        }

        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }

        async fn stop(self) {
            self.handle.stop(false).await;
        }
    }

    fn list(url: &str, has_more: bool, data: Vec<Value>) -> HttpResponse {
        HttpResponse::Ok().json(json!({
            "object": "list",
            "data": data,
            "has_more": has_more,
            "url": url,
        }))
    }

    fn stripe_error(status: u16, body: Value) -> HttpResponse {
        HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
            .insert_header(("request-id", "req_8VpZbLhW3kQx0A"))
            .json(body)
    }

    fn subscription(id: &str, status: &str) -> Value {
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

    fn invoice(id: &str, created: i64) -> Value {
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

    fn refund(id: &str, created: i64) -> Value {
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

    fn invoice_payment(payment_intent: &str) -> Value {
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

    #[actix_web::test]
    async fn sends_the_secret_key_as_bearer_auth_and_asks_for_every_subscription_status() {
        let stripe = FakeStripe::start(|_| {
            list(
                "/v1/subscriptions",
                false,
                vec![
                    subscription("sub_1QxYzA2eZvKYlo2C8nT0aB3d", "active"),
                    subscription("sub_1QwXyZ2eZvKYlo2C7mS9zA2c", "canceled"),
                ],
            )
        })
        .await;

        let page = stripe.client().list_subscriptions(None).await.unwrap();

        assert!(!page.has_more);
        assert_eq!(page.data.len(), 2);
        assert_eq!(
            page.data[0],
            subscription("sub_1QxYzA2eZvKYlo2C8nT0aB3d", "active")
        );
        assert_eq!(page.data[1]["status"], "canceled");
        assert_eq!(page.last_id(), Some("sub_1QwXyZ2eZvKYlo2C7mS9zA2c"));
        let seen = stripe.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].method, "GET");
        assert_eq!(seen[0].path, "/v1/subscriptions");
        assert_eq!(
            seen[0].authorization.as_deref(),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(seen[0].param("status"), Some("all"));
        assert_eq!(seen[0].param("limit"), Some("100"));
        // Indexed, as Stripe's own libraries encode arrays.
        assert_eq!(seen[0].param("expand[0]"), Some("data.customer"));
        assert_eq!(seen[0].param("starting_after"), None);
        // async-stripe pins the API version it was generated for (see the module docs).
        assert_eq!(seen[0].stripe_version, Some(StripeClient::api_version()));
        assert!(seen[0].user_agent.as_deref().unwrap().contains("tollgate/"));
        stripe.stop().await;
    }

    #[actix_web::test]
    async fn reads_two_pages_of_invoices_following_has_more_and_starting_after() {
        let stripe = FakeStripe::start(|seen| match seen.param("starting_after") {
            None => list(
                "/v1/invoices",
                true,
                vec![
                    invoice("in_1QxZ0b2eZvKYlo2C00000003", 1_738_368_000),
                    invoice("in_1QxZ0b2eZvKYlo2C00000002", 1_738_300_000),
                ],
            ),
            Some("in_1QxZ0b2eZvKYlo2C00000002") => list(
                "/v1/invoices",
                false,
                vec![invoice("in_1QxZ0b2eZvKYlo2C00000001", 1_738_200_000)],
            ),
            Some(other) => stripe_error(
                400,
                json!({ "error": { "type": "invalid_request_error", "message": format!("bad cursor {other}") } }),
            ),
        })
        .await;
        let client = stripe.client();

        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = client
                .list_invoices(1_738_000_000, cursor.as_deref())
                .await
                .unwrap();
            ids.extend(
                page.data
                    .iter()
                    .map(|i| i["id"].as_str().unwrap().to_owned()),
            );
            if !page.has_more {
                break;
            }
            cursor = page.last_id().map(str::to_owned);
        }

        assert_eq!(
            ids,
            [
                "in_1QxZ0b2eZvKYlo2C00000003",
                "in_1QxZ0b2eZvKYlo2C00000002",
                "in_1QxZ0b2eZvKYlo2C00000001"
            ]
        );
        let seen = stripe.seen();
        assert_eq!(seen.len(), 2);
        for request in &seen {
            assert_eq!(request.path, "/v1/invoices");
            assert_eq!(request.param("created[gte]"), Some("1738000000"));
            assert_eq!(request.param("limit"), Some("100"));
            assert_eq!(
                request.authorization.as_deref(),
                Some(format!("Bearer {KEY}").as_str())
            );
        }
        assert_eq!(seen[0].raw_query, "created[gte]=1738000000&limit=100");
        assert_eq!(seen[0].param("starting_after"), None);
        assert_eq!(
            seen[1].param("starting_after"),
            Some("in_1QxZ0b2eZvKYlo2C00000002")
        );
        stripe.stop().await;
    }

    #[actix_web::test]
    async fn lists_refunds_created_since_a_time_after_a_cursor() {
        let stripe = FakeStripe::start(|_| {
            list(
                "/v1/refunds",
                false,
                vec![refund("re_3QxZ0a2eZvKYlo2C1rEfUnD1", 1_738_400_000)],
            )
        })
        .await;

        let page = stripe
            .client()
            .list_refunds(1_738_368_000, Some("re_3QxZ0a2eZvKYlo2C1rEfUnD2"))
            .await
            .unwrap();

        assert_eq!(
            page.data,
            [refund("re_3QxZ0a2eZvKYlo2C1rEfUnD1", 1_738_400_000)]
        );
        let seen = stripe.seen();
        assert_eq!(seen[0].path, "/v1/refunds");
        assert_eq!(seen[0].param("created[gte]"), Some("1738368000"));
        assert_eq!(seen[0].param("limit"), Some("100"));
        assert_eq!(
            seen[0].param("starting_after"),
            Some("re_3QxZ0a2eZvKYlo2C1rEfUnD2")
        );
        stripe.stop().await;
    }

    #[actix_web::test]
    async fn finds_the_invoice_payments_of_a_payment_intent() {
        let stripe = FakeStripe::start(|seen| {
            let payment_intent = seen.param("payment[payment_intent]").unwrap_or_default();
            list(
                "/v1/invoice_payments",
                false,
                vec![invoice_payment(payment_intent)],
            )
        })
        .await;

        let page = stripe
            .client()
            .invoice_payments_for(PAYMENT_INTENT)
            .await
            .unwrap();

        assert_eq!(page.data.len(), 1);
        assert_eq!(page.data[0]["invoice"], "in_1QxYzB2eZvKYlo2C0aBcDeFg");
        assert_eq!(page.data[0]["payment"]["payment_intent"], PAYMENT_INTENT);
        let seen = stripe.seen();
        assert_eq!(seen[0].path, "/v1/invoice_payments");
        assert_eq!(seen[0].param("payment[type]"), Some("payment_intent"));
        assert_eq!(
            seen[0].param("payment[payment_intent]"),
            Some(PAYMENT_INTENT)
        );
        stripe.stop().await;
    }

    #[actix_web::test]
    async fn a_stripe_error_body_becomes_an_api_error_with_type_code_message_and_status() {
        let stripe = FakeStripe::start(|_| {
            stripe_error(
                404,
                json!({ "error": {
                    "code": "resource_missing",
                    "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
                    "message": "No such payment_intent: 'pi_3QxZ0a2eZvKYlo2C1kLmNoPq'",
                    "param": "payment[payment_intent]",
                    "request_log_url": "https://dashboard.stripe.com/test/logs/req_8VpZbLhW3kQx0A",
                    "type": "invalid_request_error"
                } }),
            )
        })
        .await;

        let error = stripe
            .client()
            .invoice_payments_for(PAYMENT_INTENT)
            .await
            .unwrap_err();

        match &error {
            StripeError::Api {
                status,
                error_type,
                code,
                message,
            } => {
                assert_eq!(*status, 404);
                assert_eq!(error_type, "invalid_request_error");
                assert_eq!(code.as_deref(), Some("resource_missing"));
                assert_eq!(
                    message.as_deref(),
                    Some("No such payment_intent: 'pi_3QxZ0a2eZvKYlo2C1kLmNoPq'")
                );
            }
            other => panic!("expected an API error, got {other:?}"),
        }
        assert_eq!(
            error.to_string(),
            "Stripe answered 404 (invalid_request_error, resource_missing): \
             No such payment_intent: 'pi_3QxZ0a2eZvKYlo2C1kLmNoPq'"
        );
        // Stripe-Should-Retry aside, nothing is retried here: one request, one answer.
        assert_eq!(stripe.seen().len(), 1);
        stripe.stop().await;
    }

    #[actix_web::test]
    async fn error_types_and_codes_stripe_adds_later_are_kept_verbatim() {
        let stripe = FakeStripe::start(|_| {
            stripe_error(
                429,
                json!({ "error": {
                    "type": "rate_limit_error",
                    "code": "lock_timeout_of_the_future",
                    "message": "Too many requests hit the API too quickly.\nSlow down."
                } }),
            )
        })
        .await;

        let error = stripe.client().list_subscriptions(None).await.unwrap_err();

        let StripeError::Api {
            status,
            error_type,
            code,
            message,
        } = error
        else {
            panic!("expected an API error, got {error:?}");
        };
        assert_eq!(status, 429);
        assert_eq!(error_type, "rate_limit_error");
        assert_eq!(code.as_deref(), Some("lock_timeout_of_the_future"));
        assert_eq!(
            message.as_deref(),
            Some("Too many requests hit the API too quickly. Slow down.")
        );
        stripe.stop().await;
    }

    #[actix_web::test]
    async fn a_server_that_never_answers_is_cut_off_by_the_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        // Accepts connections and holds them open without a word, for at most 30 s.
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            let deadline = tokio::time::sleep(Duration::from_secs(30));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    accepted = listener.accept() => held.push(accepted.unwrap().0),
                    () = &mut deadline => break,
                }
            }
        });
        let base = url::Url::parse(&format!("http://{address}/")).unwrap();
        let timeout = Duration::from_millis(300);
        let client = StripeClient::new(&key(), &base, timeout).unwrap();

        let started = Instant::now();
        let error = client.list_invoices(1_738_000_000, None).await.unwrap_err();

        assert!(
            matches!(error, StripeError::Timeout(t) if t == timeout),
            "{error:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(error.to_string(), "Stripe did not answer within 300ms");
        silent.abort();
    }

    #[actix_web::test]
    async fn a_refused_connection_is_a_network_error() {
        let address = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        // The listener is dropped: nothing listens there any more.
        let base = url::Url::parse(&format!("http://{address}/")).unwrap();
        let client = StripeClient::new(&key(), &base, Duration::from_secs(5)).unwrap();

        let error = client.list_refunds(0, None).await.unwrap_err();

        assert!(matches!(error, StripeError::Network(_)), "{error:?}");
        assert!(!error.to_string().contains(KEY));
    }

    #[actix_web::test]
    async fn answers_that_are_not_stripe_json_are_unexpected() {
        let stripe = FakeStripe::start(|seen| match seen.path.as_str() {
            "/v1/subscriptions" => HttpResponse::Ok()
                .content_type("text/html")
                .body("<html><body>captive portal</body></html>"),
            "/v1/invoices" => HttpResponse::Ok().json(json!({ "object": "list", "data": [] })),
            _ => HttpResponse::BadGateway()
                .content_type("text/html")
                .body("<html><body>502 Bad Gateway</body></html>"),
        })
        .await;
        let client = stripe.client();

        let not_json = client.list_subscriptions(None).await.unwrap_err();
        let no_has_more = client.list_invoices(0, None).await.unwrap_err();
        let proxy_page = client.list_refunds(0, None).await.unwrap_err();

        assert!(
            matches!(not_json, StripeError::Unexpected(_)),
            "{not_json:?}"
        );
        assert!(
            matches!(no_has_more, StripeError::Unexpected(_)),
            "{no_has_more:?}"
        );
        // async-stripe drops the status of an error answer it cannot parse.
        assert!(
            matches!(proxy_page, StripeError::Unexpected(_)),
            "{proxy_page:?}"
        );
        stripe.stop().await;
    }

    #[actix_web::test]
    async fn an_api_base_with_a_path_keeps_it_in_front_of_v1() {
        let stripe = FakeStripe::start(|seen| {
            if seen.path == "/stripe-proxy/v1/subscriptions" {
                list("/v1/subscriptions", false, vec![])
            } else {
                HttpResponse::NotFound().finish()
            }
        })
        .await;
        let base = stripe.base.join("stripe-proxy").unwrap();
        assert!(!base.as_str().ends_with('/'));
        let client = StripeClient::new(&key(), &base, Duration::from_secs(5)).unwrap();

        let page = client.list_subscriptions(None).await.unwrap();

        assert_eq!(
            page,
            Page {
                data: vec![],
                has_more: false
            }
        );
        assert_eq!(page.last_id(), None);
        assert_eq!(stripe.seen()[0].path, "/stripe-proxy/v1/subscriptions");
        stripe.stop().await;
    }

    #[test]
    fn settings_that_cannot_work_are_refused_without_showing_the_key() {
        let https = url::Url::parse("https://api.stripe.com").unwrap();
        let second = Duration::from_secs(1);
        for (key, base, timeout) in [
            (
                key(),
                url::Url::parse("ftp://api.stripe.com/").unwrap(),
                second,
            ),
            (
                key(),
                url::Url::parse("mailto:billing@example.com").unwrap(),
                second,
            ),
            (
                key(),
                url::Url::parse("https://api.stripe.com/?x=1").unwrap(),
                second,
            ),
            (key(), https.clone(), Duration::ZERO),
            (
                SecretString::from(format!("{KEY}\n")),
                https.clone(),
                second,
            ),
        ] {
            let error = StripeClient::new(&key, &base, timeout).unwrap_err();
            assert!(matches!(error, StripeError::Config(_)), "{error:?}");
            assert!(!error.to_string().contains(KEY), "{error}");
            assert!(!format!("{error:?}").contains(KEY), "{error:?}");
        }
    }

    #[test]
    fn the_secret_key_never_shows_in_debug() {
        let base = url::Url::parse("https://api.stripe.com").unwrap();
        let client = StripeClient::new(&key(), &base, Duration::from_secs(20)).unwrap();

        let shown = format!("{client:?}");

        assert!(!shown.contains(KEY), "{shown}");
        assert!(shown.contains("https://api.stripe.com/"), "{shown}");
    }

    #[test]
    fn miniserde_json_converts_to_the_same_serde_json() {
        let mut object = subscription("sub_1QxYzA2eZvKYlo2C8nT0aB3d", "past_due");
        object["discounts"] = json!([{ "coupon": { "percent_off": 12.5, "amount_off": null } }]);
        object["metadata"]["balance"] = json!(-4_200);
        object["metadata"]["big"] = json!(u64::MAX);
        object["metadata"]["unicode"] = json!("Zeitung für \"alle\" \u{1F4F0}");
        let text = serde_json::to_string(&object).unwrap();
        let mini: miniserde::json::Value = miniserde::json::from_str(&text).unwrap();

        assert_eq!(to_serde_json(mini, 0).unwrap(), object);
    }

    #[test]
    fn json_nested_beyond_the_limit_is_unexpected() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 2), "]".repeat(MAX_DEPTH + 2));
        let mini: miniserde::json::Value = miniserde::json::from_str(&deep).unwrap();

        let error = to_serde_json(mini, 0).unwrap_err();

        assert!(matches!(error, StripeError::Unexpected(_)), "{error:?}");
    }
}
