//! Checkout and Billing Portal sessions: what tollgate asks for, the forms Stripe is sent, and
//! what is read back from its answers.

use serde::Serialize;

use super::error::StripeError;

/// What a Checkout Session is made of; see
/// [`StripeClient::create_checkout_session`](super::StripeClient::create_checkout_session).
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
    /// How many: the seats of a plan sold by the seat, 1 otherwise.
    pub quantity: u32,
    /// A subscription for the reader, or a one-off payment for a gift of a plan.
    pub purpose: CheckoutPurpose<'a>,
}

/// What a Checkout Session sells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutPurpose<'a> {
    /// A subscription to the price.
    Subscription,
    /// A gift of the plan `plan_id`, paid once (`payment` mode, with an invoice, so the payment
    /// reaches the revenue report as the subscription's invoices do).
    Gift {
        /// The plan given.
        plan_id: &'a str,
        /// Months of it bought.
        months: u32,
    },
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

/// The form of `POST /v1/checkout/sessions`: a Checkout Session in subscription mode, or in
/// payment mode for a gift.
#[derive(Serialize)]
pub(super) struct CheckoutSessionForm<'a> {
    mode: &'static str,
    line_items: [LineItem<'a>; 1],
    success_url: &'a str,
    cancel_url: &'a str,
    client_reference_id: &'a str,
    metadata: ReaderMetadata<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription_data: Option<SubscriptionData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invoice_creation: Option<InvoiceCreation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allow_promotion_codes: Option<bool>,
}

impl<'a> CheckoutSessionForm<'a> {
    pub(super) fn new(request: &CheckoutSessionRequest<'a>) -> Self {
        let gift_plan = match request.purpose {
            CheckoutPurpose::Subscription => None,
            CheckoutPurpose::Gift { plan_id, months } => Some((plan_id, months)),
        };
        let reader = ReaderMetadata {
            reader_id: request.reader_id,
            gift_plan_id: None,
            gift_months: None,
        };
        Self {
            mode: if gift_plan.is_some() {
                "payment"
            } else {
                "subscription"
            },
            line_items: [LineItem {
                price: request.price,
                quantity: request.quantity,
            }],
            success_url: request.success_url,
            cancel_url: request.cancel_url,
            client_reference_id: request.reader_id,
            metadata: ReaderMetadata {
                reader_id: request.reader_id,
                gift_plan_id: gift_plan.map(|(plan, _)| plan),
                gift_months: gift_plan.map(|(_, months)| months),
            },
            subscription_data: gift_plan.is_none().then(|| SubscriptionData {
                metadata: reader,
                trial_period_days: request.trial_days.filter(|days| *days > 0),
            }),
            invoice_creation: gift_plan.map(|_| InvoiceCreation { enabled: true }),
            customer: request.customer,
            customer_email: request
                .customer
                .is_none()
                .then_some(request.customer_email)
                .flatten(),
            allow_promotion_codes: request.allow_promotion_codes.then_some(true),
        }
    }
}

#[derive(Serialize)]
struct LineItem<'a> {
    price: &'a str,
    quantity: u32,
}

/// The reader, so the webhooks that follow can be linked to them, and for a gift the plan given.
#[derive(Serialize)]
struct ReaderMetadata<'a> {
    reader_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    gift_plan_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gift_months: Option<u32>,
}

/// A payment-mode session's invoice, which Stripe makes only when asked.
#[derive(Serialize)]
struct InvoiceCreation {
    enabled: bool,
}

#[derive(Serialize)]
struct SubscriptionData<'a> {
    metadata: ReaderMetadata<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trial_period_days: Option<u32>,
}

/// The form of `POST /v1/billing_portal/sessions`.
#[derive(Serialize)]
pub(super) struct PortalSessionForm<'a> {
    customer: &'a str,
    return_url: &'a str,
}

impl<'a> PortalSessionForm<'a> {
    pub(super) fn new(customer: &'a str, return_url: &'a str) -> Self {
        Self {
            customer,
            return_url,
        }
    }
}

/// The fields of a Checkout Session tollgate reads; the others are ignored.
#[derive(serde::Deserialize)]
pub(super) struct RawCheckoutSession {
    id: String,
    url: Option<String>,
    expires_at: i64,
}

impl RawCheckoutSession {
    /// The session, which cannot do without its `url`.
    pub(super) fn into_session(self) -> Result<CheckoutSession, StripeError> {
        let url = self
            .url
            .ok_or_else(|| StripeError::Unexpected("a Checkout Session without a url".into()))?;
        Ok(CheckoutSession {
            id: self.id,
            url,
            expires_at: self.expires_at,
        })
    }
}

/// The field of a Billing Portal session tollgate reads.
#[derive(serde::Deserialize)]
pub(super) struct RawPortalSession {
    url: String,
}

impl RawPortalSession {
    pub(super) fn into_session(self) -> PortalSession {
        PortalSession { url: self.url }
    }
}
