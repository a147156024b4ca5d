//! The subscribe flow: `POST /v1/checkout/sessions` sends a refused reader to Stripe Checkout for
//! a plan, `POST /v1/portal/sessions` sends a subscriber to Stripe's Billing Portal
//! (`services::checkout` holds the rules).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::domain::time::rfc3339;
use crate::domain::{IdempotencyKey, PlanId, ReaderId, StripePriceId};
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::json::{self, ApiJson};
use crate::http::state::AppState;
use crate::services::checkout::CheckoutRequest;

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
    let idempotency_key = stripe_idempotency_key(&req, &caller)?;
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
        .start(&caller.0.id, &request, idempotency_key.as_deref())
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
    caller: Caller,
    req: HttpRequest,
    body: ApiJson<PostPortal>,
) -> Result<HttpResponse, ApiError> {
    let ApiJson(body) = body;
    let idempotency_key = stripe_idempotency_key(&req, &caller)?;
    let url = state
        .checkout()
        .portal(
            &body.reader_id,
            &body.return_url,
            idempotency_key.as_deref(),
        )
        .await?;
    Ok(HttpResponse::Created().json(PortalView { url }))
}

/// The key Stripe is sent for the request's optional `Idempotency-Key`: derived from the
/// caller's key id and theirs, so that two callers' keys never name one attempt at Stripe.
fn stripe_idempotency_key(req: &HttpRequest, caller: &Caller) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(IdempotencyKey::parse)
        .map(|key| Some(key.for_stripe(caller.0.id.as_str())))
        .ok_or_else(|| {
            ApiError::invalid(
                "invalid_idempotency_key",
                format!("Idempotency-Key must have {}", IdempotencyKey::RULE),
            )
        })
}
