//! The subscribe flow: `POST /v1/checkout/sessions` sends a refused reader to Stripe Checkout for
//! a plan, `POST /v1/portal/sessions` sends a subscriber to Stripe's Billing Portal. The loop
//! closes through the webhooks that follow (`checkout.session.completed`,
//! `customer.subscription.created`), which carry the reader id set here.
//!
//! Every input is checked before Stripe is called: redirect URLs must be on an allowed origin,
//! so no request can make tollgate an open redirect.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, TimeDelta};
use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::domain::entitlements::held;
use crate::domain::{PlanId, ReaderId, RedirectUrl, StripePriceId};
use crate::error::ApiError;
use crate::routes::admin::{stripe_client, stripe_problem};
use crate::routes::json::{self, ApiJson};
use crate::routes::rfc3339;
use crate::startup::AppState;
use crate::store::ReaderRecord;
use crate::stripe::client::CheckoutSessionRequest;

/// Longest `Idempotency-Key` passed on to Stripe, which allows 255 characters.
const MAX_IDEMPOTENCY_KEY: usize = 255;
/// Longest e-mail address (RFC 5321's path limit).
const MAX_EMAIL: usize = 254;

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
}

/// `POST /v1/portal/sessions` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostPortal {
    reader_id: ReaderId,
    return_url: String,
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
    state
        .limits
        .checkout_per_key
        .admit(caller.0.id.as_str(), "API key")?;
    state
        .limits
        .checkout_per_reader
        .admit(body.reader_id.as_str(), "reader")?;
    let idempotency_key = idempotency_key(&req)?;
    let success_url = redirect(&state, "success_url", &body.success_url)?;
    let cancel_url = redirect(&state, "cancel_url", &body.cancel_url)?;
    let email = body.email.as_deref().map(email).transpose()?;
    let plan = state
        .store
        .get_plan(&body.plan_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no plan has the id `{}`", body.plan_id)))?;
    if plan.archived_at.is_some() {
        return Err(ApiError::conflict(
            "plan_archived",
            format!(
                "plan `{}` is archived and takes no new subscribers",
                plan.id
            ),
        ));
    }
    let price =
        match body.price {
            Some(price) if plan.spec.stripe_prices.contains(&price) => price,
            Some(price) => {
                return Err(ApiError::invalid(
                    "price_not_in_plan",
                    format!("price `{price}` is not one of plan `{}`'s prices", plan.id),
                ));
            }
            None => plan.spec.stripe_prices.first().cloned().ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("plan {} has no price", plan.id))
            })?,
        };
    let record = state.store.reader(&body.reader_id).await?;
    if subscribed_to_all(&state, &record, &plan.spec.entitlements).await? {
        return Err(ApiError::conflict(
            "already_subscribed",
            format!(
                "reader `{}` already has a subscription granting what plan `{}` grants; send \
                 them to the billing portal (POST /v1/portal/sessions) to change it",
                body.reader_id, plan.id
            ),
        ));
    }
    let client = stripe_client(&state)?;
    let request = CheckoutSessionRequest {
        price: price.as_str(),
        success_url: success_url.as_str(),
        cancel_url: cancel_url.as_str(),
        reader_id: body.reader_id.as_str(),
        customer: record.current_customer(),
        customer_email: email,
        trial_days: Some(plan.spec.trial_days),
        allow_promotion_codes: plan.spec.allow_promotion_codes,
    };
    let session = client
        .create_checkout_session(&request, idempotency_key)
        .await
        .map_err(stripe_problem)?;
    tracing::info!(
        session_id = %session.id,
        reader_id = %body.reader_id,
        plan_id = %plan.id,
        "checkout session created"
    );
    let expires_at = DateTime::from_timestamp(session.expires_at, 0).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "Stripe gave an expiry out of range: {}",
            session.expires_at
        ))
    })?;
    Ok(HttpResponse::Created().json(json!({
        "id": session.id,
        "url": session.url,
        "expires_at": rfc3339(expires_at),
    })))
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
    let return_url = redirect(&state, "return_url", &body.return_url)?;
    let record = state.store.reader(&body.reader_id).await?;
    let customer = record.current_customer().ok_or_else(|| {
        ApiError::NotFound(format!(
            "reader `{}` has no Stripe customer yet: they have never been through checkout",
            body.reader_id
        ))
    })?;
    let client = stripe_client(&state)?;
    let session = client
        .create_portal_session(customer, return_url.as_str(), idempotency_key)
        .await
        .map_err(stripe_problem)?;
    tracing::info!(reader_id = %body.reader_id, "billing portal session created");
    Ok(HttpResponse::Created().json(json!({ "url": session.url })))
}

/// Whether the reader's subscriptions in good standing (grants aside) already grant every
/// entitlement in `entitlements`.
async fn subscribed_to_all(
    state: &AppState,
    record: &ReaderRecord,
    entitlements: &[crate::domain::Entitlement],
) -> Result<bool, ApiError> {
    if record.subscriptions.is_empty() {
        return Ok(false);
    }
    let plans = state.access.plans().await?;
    let grace = TimeDelta::from_std(state.settings.past_due_grace).unwrap_or(TimeDelta::MAX);
    let holds = held(&record.subscriptions, &plans, &[], state.clock.now(), grace);
    Ok(entitlements
        .iter()
        .all(|wanted| holds.iter().any(|h| &h.name == wanted)))
}

/// A redirect URL from the body, checked against the allowed origins.
fn redirect(state: &AppState, field: &str, raw: &str) -> Result<RedirectUrl, ApiError> {
    RedirectUrl::parse(raw, &state.settings.allowed_redirect_origins)
        .map_err(|e| ApiError::invalid("invalid_redirect_url", format!("{field} {e}")))
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

/// An e-mail address to prefill at checkout: a plausible `local@domain`, checked no further
/// (Stripe's form lets the reader correct it).
fn email(raw: &str) -> Result<&str, ApiError> {
    let plausible = raw.len() <= MAX_EMAIL
        && !raw.chars().any(|c| c.is_whitespace() || c.is_control())
        && raw.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if plausible {
        Ok(raw)
    } else {
        Err(ApiError::invalid(
            "invalid_email",
            format!(
                "email must be an address such as reader@example.com, at most {MAX_EMAIL} characters"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plausible_addresses_pass_and_others_do_not() {
        assert!(email("reader@example.com").is_ok());
        assert!(email("first.last+news@mail.example.co.uk").is_ok());
        for bad in [
            "",
            "reader",
            "@example.com",
            "reader@",
            "reader@example",
            "reader@@example.com",
            "reader@.example.com",
            "reader@example.com.",
            "read er@example.com",
            "reader@example.com\n",
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
        assert!(email(&format!("{}@example.com", "a".repeat(250))).is_err());
    }
}
