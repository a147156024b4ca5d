//! The subscribe flow: `POST /v1/checkout/sessions` sends a refused reader to Stripe Checkout for
//! a plan, `POST /v1/portal/sessions` sends a subscriber to Stripe's Billing Portal
//! (`services::checkout` holds the rules).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::domain::time::rfc3339;
use crate::domain::{PlanId, ReaderId, StripePriceId};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::json::{self, ApiJson};
use crate::http::state::AppState;
use crate::services::checkout::CheckoutRequest;

/// Longest `Idempotency-Key` passed on to Stripe, which allows 255 characters.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// `POST /v1/checkout/sessions` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostCheckout {
    reader_id: ReaderId,
    plan_id: PlanId,
    success_url: String,
    cancel_url: String,
    #[serde(default, deserialize_with = "json::present")]
    email: Option<String>,
    #[serde(default, deserialize_with = "json::present")]
    price: Option<StripePriceId>,
    #[serde(default, deserialize_with = "json::present")]
    quantity: Option<u32>,
    #[serde(default)]
    gift: bool,
}

/// `POST /v1/portal/sessions` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostPortal {
    reader_id: ReaderId,
    return_url: String,
}

/// A Checkout Session to send the reader to.
#[derive(Debug, Serialize)]
struct CheckoutView {
    id: String,
    url: String,
    expires_at: String,
}

/// A Billing Portal session to send the reader to.
#[derive(Debug, Serialize)]
struct PortalView {
    url: String,
}

/// Creates a Stripe Checkout Session for a reader and a plan.
#[tracing::instrument(skip_all)]
pub async fn create_checkout(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: ApiJson<PostCheckout>,
) -> Result<HttpResponse, ApiError> {
    let ApiJson(body) = body;
    let idempotency_key = idempotency_key(&req)?;
    let request = CheckoutRequest {
        reader_id: &body.reader_id,
        plan_id: &body.plan_id,
        price: body.price.as_ref(),
        success_url: &body.success_url,
        cancel_url: &body.cancel_url,
        email: body.email.as_deref(),
        quantity: body.quantity,
        gift: body.gift,
    };
    let session = state
        .checkout()
        .start(&caller.0.id, &request, idempotency_key)
        .await?;
    Ok(HttpResponse::Created().json(CheckoutView {
        id: session.id,
        url: session.url,
        expires_at: rfc3339(session.expires_at),
    }))
}

/// Creates a Stripe Billing Portal session for a reader's customer.
#[tracing::instrument(skip_all)]
pub async fn create_portal(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: ApiJson<PostPortal>,
) -> Result<HttpResponse, ApiError> {
    let ApiJson(body) = body;
    let idempotency_key = idempotency_key(&req)?;
    let url = state
        .checkout()
        .portal(&body.reader_id, &body.return_url, idempotency_key)
        .await?;
    Ok(HttpResponse::Created().json(PortalView { url }))
}

/// The optional `Idempotency-Key` header, passed on to Stripe.
fn idempotency_key(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|key| {
            (1..=MAX_IDEMPOTENCY_KEY).contains(&key.len())
                && key.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid(
                "invalid_idempotency_key",
                format!(
                    "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
                ),
            )
        })
}
