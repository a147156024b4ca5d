//! `/v1/plans`: what is sold and what it grants. Admins write; sites (service keys) read.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::domain::time::rfc3339;
use crate::domain::{Entitlement, Plan, PlanId, PlanSpec, Price, Recurring, StripePriceId};
use crate::http::auth::Acting;
use crate::http::error::ApiError;
use crate::http::json::ApiJson;
use crate::http::state::AppState;
use crate::services::plans::{PricedPlan, Stored};

/// `PUT /v1/plans/{plan_id}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutPlan {
    name: String,
    stripe_prices: Vec<StripePriceId>,
    entitlements: Vec<Entitlement>,
    #[serde(default)]
    trial_days: u32,
    #[serde(default)]
    allow_promotion_codes: bool,
    #[serde(default)]
    seats: bool,
    #[serde(default)]
    gift_price: Option<StripePriceId>,
    #[serde(default)]
    gift_months: Option<u32>,
}

/// A plan price as the API shows it: what Stripe says of it, or only its id (and nulls) while
/// no `price.*` event, subscription or reconcile has told tollgate about it yet.
#[derive(Debug, Serialize)]
struct PriceView {
    id: StripePriceId,
    known: bool,
    active: Option<bool>,
    currency: Option<String>,
    unit_amount: Option<i64>,
    recurring: Option<Recurring>,
    nickname: Option<String>,
    product: Option<String>,
}

impl PriceView {
    fn new(id: StripePriceId, known: Option<&Price>) -> Self {
        Self {
            id,
            known: known.is_some(),
            active: known.map(|p| p.active),
            currency: known.map(|p| p.currency.clone()),
            unit_amount: known.and_then(|p| p.unit_amount),
            recurring: known.and_then(|p| p.recurring),
            nickname: known.and_then(|p| p.nickname.clone()),
            product: known.and_then(|p| p.product.clone()),
        }
    }
}

/// A plan as the API shows it.
#[derive(Debug, Serialize)]
struct PlanView {
    id: PlanId,
    name: String,
    stripe_prices: Vec<StripePriceId>,
    prices: Vec<PriceView>,
    entitlements: Vec<Entitlement>,
    trial_days: u32,
    allow_promotion_codes: bool,
    seats: bool,
    gift_price: Option<StripePriceId>,
    gift_months: Option<u32>,
    archived: bool,
    archived_at: Option<String>,
    created_at: String,
    updated_at: String,
}

impl PlanView {
    /// `plan`, with what `known` says of its prices.
    fn new(plan: Plan, known: &HashMap<StripePriceId, Price>) -> Self {
        Self {
            id: plan.id,
            name: plan.spec.name,
            prices: plan
                .spec
                .stripe_prices
                .iter()
                .map(|id| PriceView::new(id.clone(), known.get(id)))
                .collect(),
            stripe_prices: plan.spec.stripe_prices,
            entitlements: plan.spec.entitlements,
            trial_days: plan.spec.trial_days,
            allow_promotion_codes: plan.spec.allow_promotion_codes,
            seats: plan.spec.seats,
            gift_price: plan.spec.gift.as_ref().map(|gift| gift.price.clone()),
            gift_months: plan.spec.gift.as_ref().map(|gift| gift.months),
            archived: plan.archived_at.is_some(),
            archived_at: plan.archived_at.map(rfc3339),
            created_at: rfc3339(plan.created_at),
            updated_at: rfc3339(plan.updated_at),
        }
    }
}

impl From<PricedPlan> for PlanView {
    fn from(priced: PricedPlan) -> Self {
        Self::new(priced.plan, &priced.prices)
    }
}

/// Every plan.
#[derive(Debug, Serialize)]
struct PlanList {
    items: Vec<PlanView>,
}

/// Creates or replaces a plan. Replacing keeps its creation time and archived state.
#[tracing::instrument(skip_all, fields(plan_id = %plan_id))]
pub async fn put(
    state: web::Data<AppState>,
    acting: Acting,
    plan_id: web::Path<String>,
    body: ApiJson<PutPlan>,
) -> Result<HttpResponse, ApiError> {
    let id = PlanId::parse(&plan_id).ok_or_else(|| {
        ApiError::invalid("invalid_plan_id", format!("a plan id has {}", PlanId::RULE))
    })?;
    let ApiJson(body) = body;
    let spec = PlanSpec::new(
        body.name,
        body.stripe_prices,
        body.entitlements,
        body.trial_days,
        body.allow_promotion_codes,
    )
    .and_then(|spec| {
        spec.with_seats(body.seats)
            .with_gift(body.gift_price, body.gift_months)
    })
    .map_err(|e| ApiError::invalid("invalid_body", e.to_string()))?;
    Ok(match state.plans().put(&id, &spec, &acting.0).await? {
        Stored::Created(plan) => HttpResponse::Created().json(PlanView::from(plan)),
        Stored::Replaced(plan) => HttpResponse::Ok().json(PlanView::from(plan)),
    })
}

/// Every plan, archived ones marked.
#[tracing::instrument(skip_all)]
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (plans, known) = state.plans().list().await?;
    let items = plans
        .into_iter()
        .map(|plan| PlanView::new(plan, &known))
        .collect();
    Ok(HttpResponse::Ok().json(PlanList { items }))
}

/// One plan, archived or not.
#[tracing::instrument(skip_all, fields(plan_id = %plan_id))]
pub async fn get(
    state: web::Data<AppState>,
    plan_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let plan = state.plans().get(&plan_id).await?;
    Ok(HttpResponse::Ok().json(PlanView::from(plan)))
}

/// Archives a plan: its subscribers keep what it grants, nobody new may buy it. Archiving an
/// archived plan changes nothing.
#[tracing::instrument(skip_all, fields(plan_id = %plan_id))]
pub async fn archive(
    state: web::Data<AppState>,
    acting: Acting,
    plan_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let plan = state.plans().archive(&plan_id, &acting.0).await?;
    Ok(HttpResponse::Ok().json(PlanView::from(plan)))
}
