//! Outbound Stripe API calls: for the reconcile job, one page of prices, subscriptions, invoices,
//! refunds, disputes or invoice payments at a time, each object kept as raw JSON for the caller's
//! tolerant parsers; for the subscribe flow, Checkout and Billing Portal sessions.
//!
//! # What it is built on
//!
//! Requests are encoded by async-stripe's `RequestBuilder` (`stripe_client_core`), so queries and
//! forms follow Stripe's conventions (`expand[0]=..`, `line_items[0][price]=..`) as Stripe's own
//! libraries write them, and carry the `Stripe-Version` async-stripe was generated for
//! (`2026-09-30.endive` in 1.0.0-rc.10; [`StripeClient::api_version`]), a basil-or-later version
//! as `/v1/invoice_payments` needs, so the response shapes move only when it is upgraded.
//!
//! They are sent with reqwest (rustls with ring and the bundled webpki roots, no proxy, no
//! redirects), not with async-stripe's own hyper client: that one turns an error answer whose body
//! is not Stripe's error JSON (a proxy's HTML page, an older API version's 404 for a resource it
//! lacks) into "error deserializing Stripe error", losing its status. Here such an answer is
//! [`StripeError::Http`] with its status, method, path and the start of its body.
//!
//! Transient failures (429, 5xx, no answer) are tried again as the [`RetryPolicy`] says:
//! exponential backoff with jitter, `Retry-After` honoured, attempts and the total wait bounded.
//! A `POST` is tried again only with an idempotency key.

mod error;
#[cfg(test)]
mod fake_stripe;
mod page;
mod queries;
mod redact;
mod retry;
mod sessions;
#[cfg(test)]
mod tests;
mod transport;

use std::fmt;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

pub use error::StripeError;
pub use page::Page;
pub use retry::RetryPolicy;
pub use sessions::{CheckoutPurpose, CheckoutSession, CheckoutSessionRequest, PortalSession};

use queries::{CreatedSinceQuery, InvoicePaymentsQuery, PricesQuery, SubscriptionsQuery};
use sessions::{CheckoutSessionForm, PortalSessionForm, RawCheckoutSession, RawPortalSession};

/// A client for Stripe's REST API, reading lists one page at a time. Cheap to clone.
#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    api_base: String,
    timeout: Duration,
    retry: RetryPolicy,
}

impl fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeClient")
            .field("api_base", &self.api_base)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl StripeClient {
    /// Builds a client that sends `secret_key` to `api_base` (`https://api.stripe.com/` in
    /// production), gives up on any one request after `timeout`, and tries again after transient
    /// failures as [`RetryPolicy::default`] says.
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
        let mut base = api_base.as_str().to_owned();
        if !base.ends_with('/') {
            base.push('/');
        }
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {}", secret_key.expose_secret())).map_err(
                |_| {
                    StripeError::Config(
                        "the Stripe secret key must be visible ASCII characters only".into(),
                    )
                },
            )?;
        authorization.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization);
        let version = Self::api_version();
        headers.insert(
            "stripe-version",
            HeaderValue::from_str(&version)
                .map_err(|_| StripeError::Config(format!("a Stripe-Version of {version}")))?,
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("tollgate/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| StripeError::Config(format!("the HTTP client: {error}")))?;
        Ok(Self {
            http,
            api_base: base,
            timeout,
            retry: RetryPolicy::default(),
        })
    }

    /// The same client, trying again after transient failures as `retry` says.
    pub fn with_retry(self, retry: RetryPolicy) -> Self {
        Self { retry, ..self }
    }

    /// The client the settings describe, or `None` when no secret key is configured.
    pub fn from_settings(settings: &crate::config::Settings) -> Result<Option<Self>, StripeError> {
        let Some(key) = &settings.stripe_secret_key else {
            return Ok(None);
        };
        let base = url::Url::parse(&settings.stripe_api_base)
            .map_err(|e| StripeError::Config(format!("stripe_api_base is not a URL: {e}")))?;
        let retry = RetryPolicy {
            attempts: settings.stripe_retry_attempts,
            backoff: settings.stripe_retry_backoff,
            max_wait: settings.stripe_retry_max_wait,
        };
        Ok(Some(
            Self::new(key, &base, settings.stripe_timeout)?.with_retry(retry),
        ))
    }

    /// The `Stripe-Version` every request carries: the one async-stripe was generated for (see
    /// the module documentation).
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
            "/v1/subscriptions",
            &SubscriptionsQuery::new(starting_after),
        )
        .await
    }

    /// `GET /v1/prices?limit=100[&starting_after=..]`: every price, active or not.
    pub async fn list_prices(&self, starting_after: Option<&str>) -> Result<Page, StripeError> {
        self.list("/v1/prices", &PricesQuery::new(starting_after))
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
            "/v1/invoices",
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
            "/v1/refunds",
            &CreatedSinceQuery::new(created_gte, starting_after),
        )
        .await
    }

    /// `GET /v1/disputes?created[gte]=..&limit=100[&starting_after=..]`: disputes created at or
    /// after `created_gte` (Unix seconds).
    pub async fn list_disputes(
        &self,
        created_gte: i64,
        starting_after: Option<&str>,
    ) -> Result<Page, StripeError> {
        self.list(
            "/v1/disputes",
            &CreatedSinceQuery::new(created_gte, starting_after),
        )
        .await
    }

    /// `GET /v1/invoice_payments?payment[type]=payment_intent&payment[payment_intent]=..&limit=100`:
    /// the invoice payments that link `payment_intent` (`pi_...`) to its invoices (API versions
    /// 2025-03-31.basil and later).
    pub async fn invoice_payments_for(&self, payment_intent: &str) -> Result<Page, StripeError> {
        self.list(
            "/v1/invoice_payments",
            &InvoicePaymentsQuery::new(payment_intent),
        )
        .await
    }

    /// `POST /v1/checkout/sessions`: a Checkout Session in subscription mode, or in payment
    /// mode for a gift. With an
    /// `idempotency_key`, Stripe answers a retried call with the session it created first.
    pub async fn create_checkout_session(
        &self,
        request: &CheckoutSessionRequest<'_>,
        idempotency_key: Option<&str>,
    ) -> Result<CheckoutSession, StripeError> {
        let form = CheckoutSessionForm::new(request);
        let session: RawCheckoutSession = self
            .post("/v1/checkout/sessions", &form, idempotency_key)
            .await?;
        session.into_session()
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
                "/v1/billing_portal/sessions",
                &PortalSessionForm::new(customer, return_url),
                idempotency_key,
            )
            .await?;
        Ok(session.into_session())
    }
}
