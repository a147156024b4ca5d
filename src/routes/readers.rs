//! `/v1/readers/{reader_id}`: what a reader is entitled to and why, their subscriptions, and the
//! grants admins give them.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::domain::entitlements::{held, plan_of, plans_by_price};
use crate::domain::{Entitlement, Grant, GrantId, MeterSubject, NewGrant, ReaderId, Standing};
use crate::error::ApiError;
use crate::routes::access::meter_view;
use crate::routes::json::ApiJson;
use crate::routes::rfc3339;
use crate::startup::AppState;

/// The reader id in a path: one that breaks the rule is refused before anything is read.
pub(crate) fn reader_id(raw: &str) -> Result<ReaderId, ApiError> {
    ReaderId::parse(raw).ok_or_else(|| {
        ApiError::invalid(
            "invalid_reader_id",
            format!("a reader id has {}", ReaderId::RULE),
        )
    })
}

/// The reader's entitlements with their sources, subscriptions, grants and Stripe customer.
#[tracing::instrument(skip_all, fields(reader_id = %raw_id))]
pub async fn get(
    state: web::Data<AppState>,
    raw_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = reader_id(&raw_id)?;
    let record = state.store.reader(&id).await?;
    let plans = state.store.list_plans().await?;
    let now = state.clock.now();
    let grace = TimeDelta::from_std(state.settings.past_due_grace).unwrap_or(TimeDelta::MAX);
    let entitlements = held(&record.subscriptions, &plans, &record.grants, now, grace);
    let by_price = plans_by_price(&plans);
    let subscriptions: Vec<Value> = record
        .subscriptions
        .iter()
        .map(|sub| {
            let standing = sub.standing(now, grace);
            let items: Vec<Value> = sub
                .items
                .iter()
                .map(|item| {
                    json!({
                        "id": item.id,
                        "price": item.price,
                        "quantity": item.quantity,
                        "plan_id": plan_of(&by_price, &item.price),
                    })
                })
                .collect();
            json!({
                "id": sub.id,
                "customer_id": sub.customer_id,
                "status": sub.status,
                "good_standing": matches!(standing, Standing::Good { .. }),
                "lapses_at": match standing {
                    Standing::Good { until } => until.map(rfc3339),
                    Standing::Lapsed => None,
                },
                "items": items,
                "current_period_start": sub.current_period_start.map(rfc3339),
                "current_period_end": sub.current_period_end.map(rfc3339),
                "cancel_at_period_end": sub.cancel_at_period_end,
                "cancel_at": sub.cancel_at.map(rfc3339),
                "canceled_at": sub.canceled_at.map(rfc3339),
                "ended_at": sub.ended_at.map(rfc3339),
                "trial_end": sub.trial_end.map(rfc3339),
                "past_due_since": sub.past_due_since.map(rfc3339),
            })
        })
        .collect();
    let entitlements: Vec<Value> = entitlements
        .into_iter()
        .map(|e| {
            let sources: Vec<Value> = e
                .sources
                .into_iter()
                .map(|s| json!({ "kind": s.kind, "id": s.id, "lapses_at": s.lapses_at.map(rfc3339) }))
                .collect();
            json!({ "name": e.name, "lapses_at": e.lapses_at.map(rfc3339), "sources": sources })
        })
        .collect();
    let grants: Vec<Value> = record.grants.iter().map(|g| grant_view(g, now)).collect();
    let meter = state
        .access
        .meter(&MeterSubject::reader(id.clone()))
        .await?;
    let customer = record.current_customer();
    Ok(HttpResponse::Ok().json(json!({
        "reader_id": id,
        "stripe_customer_id": customer,
        "entitlements": entitlements,
        "subscriptions": subscriptions,
        "grants": grants,
        "meter": meter_view(&meter),
    })))
}

fn grant_view(grant: &Grant, now: DateTime<Utc>) -> Value {
    json!({
        "id": grant.id,
        "reader_id": grant.reader_id,
        "entitlements": grant.entitlements,
        "expires_at": rfc3339(grant.expires_at),
        "reason": grant.reason,
        "active": grant.is_active(now),
        "created_at": rfc3339(grant.created_at),
    })
}

/// `POST /v1/readers/{reader_id}/grants` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostGrant {
    entitlements: Vec<Entitlement>,
    expires_at: DateTime<Utc>,
    reason: String,
}

/// Gives a reader entitlements until a time, without Stripe.
#[tracing::instrument(skip_all, fields(reader_id = %raw_id))]
pub async fn create_grant(
    state: web::Data<AppState>,
    caller: Caller,
    raw_id: web::Path<String>,
    body: ApiJson<PostGrant>,
) -> Result<HttpResponse, ApiError> {
    let id = reader_id(&raw_id)?;
    let ApiJson(body) = body;
    let now = state.clock.now();
    let grant = NewGrant::new(
        id,
        body.entitlements,
        body.expires_at,
        body.reason,
        now,
        Some(caller.0.id.as_str().to_owned()),
    )
    .map_err(|e| ApiError::invalid("invalid_body", e.to_string()))?;
    let grant = state.store.insert_grant(&grant).await?;
    state.access.cache().forget_reader(&grant.reader_id).await;
    tracing::info!(grant_id = %grant.id, "grant created");
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/v1/readers/{}/grants/{}", grant.reader_id, grant.id),
        ))
        .json(grant_view(&grant, now)))
}

/// Revokes a grant at once.
#[tracing::instrument(skip_all, fields(reader_id = %path.0, grant_id = %path.1))]
pub async fn revoke_grant(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (raw_reader, raw_grant) = path.into_inner();
    let reader = reader_id(&raw_reader)?;
    let not_found = || {
        ApiError::NotFound(format!(
            "reader `{reader}` has no active grant `{raw_grant}`"
        ))
    };
    let grant = GrantId::parse(&raw_grant).ok_or_else(not_found)?;
    if state
        .store
        .revoke_grant(&reader, &grant, state.clock.now())
        .await?
    {
        state.access.cache().forget_reader(&reader).await;
        tracing::info!("grant revoked");
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(not_found())
    }
}
