//! `/v1/readers/{reader_id}`: what a reader is entitled to and why, their subscriptions, and the
//! grants admins give them.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::erasure::{ErasedCounts, Erasure};
use crate::domain::time::rfc3339;
use crate::domain::{
    Entitlement, Held, PlanId, ReaderId, Source, SourceKind, Standing, StripePriceId,
    SubscriptionStatus,
};
use crate::http::auth::{Acting, Caller};
use crate::http::error::ApiError;
use crate::http::json::ApiJson;
use crate::http::paths::reader_id;
use crate::http::state::AppState;
use crate::http::views::GrantView;
use crate::http::views::MeterView;
use crate::services::readers::{ReaderOverview, SubscriptionStanding};

/// A reader as staff see them.
#[derive(Debug, Serialize)]
struct ReaderView {
    reader_id: ReaderId,
    stripe_customer_id: Option<String>,
    entitlements: Vec<HeldView>,
    subscriptions: Vec<SubscriptionView>,
    grants: Vec<GrantView>,
    meter: MeterView,
}

impl From<ReaderOverview> for ReaderView {
    fn from(overview: ReaderOverview) -> Self {
        let now = overview.holdings.now;
        let record = overview.holdings.record;
        Self {
            stripe_customer_id: record.current_customer().map(str::to_owned),
            reader_id: overview.id,
            entitlements: overview
                .holdings
                .held
                .into_iter()
                .map(HeldView::from)
                .collect(),
            subscriptions: overview
                .subscriptions
                .into_iter()
                .map(SubscriptionView::from)
                .collect(),
            grants: record
                .grants
                .iter()
                .map(|grant| GrantView::new(grant, now))
                .collect(),
            meter: MeterView::from(&overview.meter),
        }
    }
}

/// An entitlement a reader holds, and why.
#[derive(Debug, Serialize)]
struct HeldView {
    name: Entitlement,
    lapses_at: Option<String>,
    sources: Vec<SourceView>,
}

impl From<Held> for HeldView {
    fn from(held: Held) -> Self {
        Self {
            name: held.name,
            lapses_at: held.lapses_at.map(rfc3339),
            sources: held.sources.into_iter().map(SourceView::from).collect(),
        }
    }
}

#[derive(Debug, Serialize)]
struct SourceView {
    kind: SourceKind,
    id: String,
    lapses_at: Option<String>,
}

impl From<Source> for SourceView {
    fn from(source: Source) -> Self {
        Self {
            kind: source.kind,
            id: source.id,
            lapses_at: source.lapses_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize)]
struct SubscriptionView {
    id: String,
    customer_id: String,
    status: SubscriptionStatus,
    good_standing: bool,
    lapses_at: Option<String>,
    items: Vec<ItemView>,
    current_period_start: Option<String>,
    current_period_end: Option<String>,
    cancel_at_period_end: bool,
    cancel_at: Option<String>,
    canceled_at: Option<String>,
    ended_at: Option<String>,
    trial_end: Option<String>,
    past_due_since: Option<String>,
}

#[derive(Debug, Serialize)]
struct ItemView {
    id: String,
    price: StripePriceId,
    quantity: i64,
    plan_id: Option<PlanId>,
}

impl From<SubscriptionStanding> for SubscriptionView {
    fn from(standing: SubscriptionStanding) -> Self {
        let sub = standing.subscription;
        let items = sub
            .items
            .into_iter()
            .zip(standing.item_plans)
            .map(|(item, plan_id)| ItemView {
                id: item.id,
                price: item.price,
                quantity: item.quantity,
                plan_id,
            })
            .collect();
        Self {
            id: sub.id,
            customer_id: sub.customer_id,
            status: sub.status,
            good_standing: matches!(standing.standing, Standing::Good { .. }),
            lapses_at: match standing.standing {
                Standing::Good { until } => until.map(rfc3339),
                Standing::Lapsed => None,
            },
            items,
            current_period_start: sub.current_period_start.map(rfc3339),
            current_period_end: sub.current_period_end.map(rfc3339),
            cancel_at_period_end: sub.cancel_at_period_end,
            cancel_at: sub.cancel_at.map(rfc3339),
            canceled_at: sub.canceled_at.map(rfc3339),
            ended_at: sub.ended_at.map(rfc3339),
            trial_end: sub.trial_end.map(rfc3339),
            past_due_since: sub.past_due_since.map(rfc3339),
        }
    }
}

/// The reader's entitlements with their sources, subscriptions, grants and Stripe customer.
#[tracing::instrument(skip_all, fields(reader_id = %raw_id))]
pub async fn get(
    state: web::Data<AppState>,
    raw_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = reader_id(&raw_id)?;
    let overview = state.readers().overview(&id).await?;
    Ok(HttpResponse::Ok().json(ReaderView::from(overview)))
}

/// What an erasure did, and what it left to the operator: the Stripe customers.
#[derive(Debug, Serialize)]
struct ErasureView {
    pseudonym: ReaderId,
    erased_at: String,
    repeated: bool,
    stripe: StripeCustomersView,
    erased: ErasedCounts,
}

#[derive(Debug, Serialize)]
struct StripeCustomersView {
    customers: Vec<String>,
    untouched: bool,
    detail: &'static str,
}

impl From<Erasure> for ErasureView {
    fn from(erasure: Erasure) -> Self {
        Self {
            pseudonym: erasure.pseudonym,
            erased_at: rfc3339(erasure.first_erased_at),
            repeated: erasure.repeated,
            stripe: StripeCustomersView {
                customers: erasure.stripe_customers,
                untouched: true,
                detail: "tollgate changed nothing at Stripe: these customers, and the personal \
                         data Stripe holds of them, stay until the operator deletes them there; \
                         tollgate keeps them linked to the pseudonym",
            },
            erased: erasure.counts,
        }
    }
}

/// Erases a reader's personal data. The reader id is not recorded in the span or the log: the
/// pseudonym is, once made.
#[tracing::instrument(skip_all)]
pub async fn erase(
    state: web::Data<AppState>,
    acting: Acting,
    raw_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = reader_id(&raw_id)?;
    let erasure = state.erasures().erase(&id, &acting.0).await?;
    Ok(HttpResponse::Ok().json(ErasureView::from(erasure)))
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
    acting: Acting,
    raw_id: web::Path<String>,
    body: ApiJson<PostGrant>,
) -> Result<HttpResponse, ApiError> {
    let id = reader_id(&raw_id)?;
    let ApiJson(body) = body;
    let readers = state.readers();
    let grant = readers
        .grant(
            id,
            body.entitlements,
            body.expires_at,
            body.reason,
            caller.0.id.as_str(),
            &acting.0,
        )
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/v1/readers/{}/grants/{}", grant.reader_id, grant.id),
        ))
        .json(GrantView::new(&grant, readers.now())))
}

/// Revokes a grant at once.
#[tracing::instrument(skip_all, fields(reader_id = %path.0, grant_id = %path.1))]
pub async fn revoke_grant(
    state: web::Data<AppState>,
    acting: Acting,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (raw_reader, raw_grant) = path.into_inner();
    let reader = reader_id(&raw_reader)?;
    state
        .readers()
        .revoke_grant(&reader, &raw_grant, &acting.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
