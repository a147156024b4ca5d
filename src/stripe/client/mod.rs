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

mod convert;
mod error;
#[cfg(test)]
mod fake_stripe;
mod page;
mod queries;
mod redact;
mod sessions;
#[cfg(test)]
mod tests;
mod transport;

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use stripe::{ClientBuilder, RequestStrategy};

pub use error::StripeError;
pub use page::Page;
pub use sessions::{CheckoutPurpose, CheckoutSession, CheckoutSessionRequest, PortalSession};

use queries::{CreatedSinceQuery, InvoicePaymentsQuery, PricesQuery, SubscriptionsQuery};
use sessions::{CheckoutSessionForm, PortalSessionForm, RawCheckoutSession, RawPortalSession};

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
        self.list("/subscriptions", &SubscriptionsQuery::new(starting_after))
            .await
    }

    /// `GET /v1/prices?limit=100[&starting_after=..]`: every price, active or not.
    pub async fn list_prices(&self, starting_after: Option<&str>) -> Result<Page, StripeError> {
        self.list("/prices", &PricesQuery::new(starting_after))
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
            .post("/checkout/sessions", &form, idempotency_key)
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
                "/billing_portal/sessions",
                &PortalSessionForm::new(customer, return_url),
                idempotency_key,
            )
            .await?;
        Ok(session.into_session())
    }
}
