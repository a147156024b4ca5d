//! `/v1/plans`: what is sold and what it grants. Admins write; sites (service keys) read.

use std::collections::HashMap;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::domain::{Entitlement, Plan, PlanId, PlanSpec, Price, Recurring, StripePriceId};
use crate::error::ApiError;
use crate::routes::json::ApiJson;
use crate::routes::rfc3339;
use crate::startup::AppState;
use crate::store::PlanWrite;

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
            archived: plan.archived_at.is_some(),
            archived_at: plan.archived_at.map(rfc3339),
            created_at: rfc3339(plan.created_at),
            updated_at: rfc3339(plan.updated_at),
        }
    }
}

/// The prices the mirror knows of one plan (or of every plan), by id.
async fn known_prices(
    state: &AppState,
    plan: Option<&PlanId>,
) -> Result<HashMap<StripePriceId, Price>, ApiError> {
    Ok(state
        .store
        .plan_prices(plan)
        .await?
        .into_iter()
        .map(|price| (price.id.clone(), price))
        .collect())
}

/// `plan` as the API shows it, with its prices.
async fn view(state: &AppState, plan: Plan) -> Result<PlanView, ApiError> {
    let known = known_prices(state, Some(&plan.id)).await?;
    Ok(PlanView::new(plan, &known))
}

fn not_found(plan_id: &str) -> ApiError {
    ApiError::NotFound(format!("no plan has the id `{plan_id}`"))
}

/// The plan id in a path that reads a plan: one that cannot be a plan id names no plan.
fn known_id(plan_id: &str) -> Result<PlanId, ApiError> {
    PlanId::parse(plan_id).ok_or_else(|| not_found(plan_id))
}

/// Creates or replaces a plan. Replacing keeps its creation time and archived state.
#[tracing::instrument(skip_all, fields(plan_id = %plan_id))]
pub async fn put(
    state: web::Data<AppState>,
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
    .map_err(|e| ApiError::invalid("invalid_body", e.to_string()))?;
    let written = state.store.put_plan(&id, &spec, state.clock.now()).await?;
    // What a plan grants changes what its subscribers hold.
    state.access.cache().forget_all();
    match written {
        PlanWrite::Created(plan) => {
            tracing::info!("plan created");
            Ok(HttpResponse::Created().json(view(&state, plan).await?))
        }
        PlanWrite::Replaced(plan) => {
            tracing::info!("plan replaced");
            Ok(HttpResponse::Ok().json(view(&state, plan).await?))
        }
        PlanWrite::PriceTaken { price, plan } => Err(ApiError::conflict(
            "price_in_use",
            format!(
                "price `{price}` already belongs to plan `{plan}`; a price belongs to one plan at most"
            ),
        )),
    }
}

/// Every plan, archived ones marked.
#[tracing::instrument(skip_all)]
pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let known = known_prices(&state, None).await?;
    let items: Vec<PlanView> = state
        .store
        .list_plans()
        .await?
        .into_iter()
        .map(|plan| PlanView::new(plan, &known))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items })))
}

/// One plan, archived or not.
#[tracing::instrument(skip_all, fields(plan_id = %plan_id))]
pub async fn get(
    state: web::Data<AppState>,
    plan_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let plan = state
        .store
        .get_plan(&known_id(&plan_id)?)
        .await?
        .ok_or_else(|| not_found(&plan_id))?;
    Ok(HttpResponse::Ok().json(view(&state, plan).await?))
}

/// Archives a plan: its subscribers keep what it grants, nobody new may buy it. Archiving an
/// archived plan changes nothing.
#[tracing::instrument(skip_all, fields(plan_id = %plan_id))]
pub async fn archive(
    state: web::Data<AppState>,
    plan_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let plan = state
        .store
        .archive_plan(&known_id(&plan_id)?, state.clock.now())
        .await?
        .ok_or_else(|| not_found(&plan_id))?;
    state.access.cache().forget_all();
    tracing::info!("plan archived");
    Ok(HttpResponse::Ok().json(view(&state, plan).await?))
}
