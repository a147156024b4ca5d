//! `/v1/webhook-endpoints`: where tollgate sends its events (admin), their deliveries, retries
//! and replays.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::time::rfc3339;
use crate::domain::{DeliveryId, DeliveryStatus, EndpointId};
use crate::http::auth::Acting;
use crate::http::error::ApiError;
use crate::http::json::{self, ApiJson};
use crate::http::paging::{page_limit, paginate};
use crate::http::state::AppState;
use crate::http::views::Page;
use crate::services::outbound::EndpointRequest;
use crate::store::{Delivery, DeliveryFilter, Endpoint};

/// An endpoint as the API shows it; `secret` only when it is made.
#[derive(Debug, Serialize)]
struct EndpointView {
    id: EndpointId,
    url: String,
    event_types: Vec<String>,
    description: String,
    enabled: bool,
    disabled_reason: Option<String>,
    created_at: String,
    updated_at: String,
}

impl From<Endpoint> for EndpointView {
    fn from(endpoint: Endpoint) -> Self {
        Self {
            id: endpoint.id,
            url: endpoint.url,
            event_types: endpoint.event_types,
            description: endpoint.description,
            enabled: endpoint.enabled,
            disabled_reason: endpoint.disabled_reason,
            created_at: rfc3339(endpoint.created_at),
            updated_at: rfc3339(endpoint.updated_at),
        }
    }
}

/// A new endpoint, with its secret.
#[derive(Debug, Serialize)]
struct CreatedView {
    #[serde(flatten)]
    endpoint: EndpointView,
    secret: String,
}

/// A delivery as the API shows it.
#[derive(Debug, Serialize)]
struct DeliveryView {
    id: DeliveryId,
    event_id: String,
    event_type: String,
    status: DeliveryStatus,
    attempts: i64,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    last_attempt_at: Option<String>,
    next_attempt_at: Option<String>,
    delivered_at: Option<String>,
    created_at: String,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id.to_string(),
            event_type: d.event_type,
            // The next attempt of a delivery that is no longer pending is no one's business.
            next_attempt_at: (d.status == DeliveryStatus::Pending)
                .then_some(d.next_attempt_at)
                .flatten()
                .map(rfc3339),
            status: d.status,
            attempts: d.attempts,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            last_attempt_at: d.last_attempt_at.map(rfc3339),
            delivered_at: d.delivered_at.map(rfc3339),
            created_at: rfc3339(d.created_at),
        }
    }
}

/// `POST /v1/webhook-endpoints` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    url: String,
    event_types: Vec<String>,
    #[serde(default, deserialize_with = "json::present")]
    description: Option<String>,
}

/// Registers an endpoint; its secret is shown in this answer only.
#[tracing::instrument(skip_all)]
pub async fn create(
    state: web::Data<AppState>,
    acting: Acting,
    body: ApiJson<CreateEndpoint>,
) -> Result<HttpResponse, ApiError> {
    let ApiJson(body) = body;
    let created = state
        .webhook_endpoints()
        .create(
            EndpointRequest {
                url: body.url,
                event_types: body.event_types,
                description: body.description.unwrap_or_default(),
            },
            &acting.0,
        )
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/v1/webhook-endpoints/{}", created.endpoint.id),
        ))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(CreatedView {
            endpoint: created.endpoint.into(),
            secret: created.secret.expose().to_owned(),
        }))
}

/// `GET /v1/webhook-endpoints` query.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<u32>,
    after: Option<String>,
}

/// Endpoints by id, a page at a time.
#[tracing::instrument(skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let after = cursor(query.after.as_deref(), EndpointId::parse)?;
    let endpoints = state
        .webhook_endpoints()
        .list(after.as_ref(), limit + 1)
        .await?;
    let (items, next_cursor) = paginate(endpoints, limit, |e| e.id.clone());
    Ok(HttpResponse::Ok().json(Page {
        items: items
            .into_iter()
            .map(EndpointView::from)
            .collect::<Vec<_>>(),
        next_cursor,
    }))
}

/// One endpoint.
#[tracing::instrument(skip_all, fields(endpoint_id = %id))]
pub async fn get(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = state.webhook_endpoints().get(&id).await?;
    Ok(HttpResponse::Ok().json(EndpointView::from(endpoint)))
}

/// `PATCH /v1/webhook-endpoints/{id}` body: the fields to change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchEndpoint {
    #[serde(default, deserialize_with = "json::present")]
    url: Option<String>,
    #[serde(default, deserialize_with = "json::present")]
    event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "json::present")]
    description: Option<String>,
    #[serde(default, deserialize_with = "json::present")]
    enabled: Option<bool>,
}

/// Changes an endpoint; enabling it again clears why it was disabled.
#[tracing::instrument(skip_all, fields(endpoint_id = %id))]
pub async fn update(
    state: web::Data<AppState>,
    acting: Acting,
    id: web::Path<String>,
    body: ApiJson<PatchEndpoint>,
) -> Result<HttpResponse, ApiError> {
    let ApiJson(body) = body;
    let endpoint = state
        .webhook_endpoints()
        .update(
            &id,
            body.url,
            body.event_types,
            body.description,
            body.enabled,
            &acting.0,
        )
        .await?;
    Ok(HttpResponse::Ok().json(EndpointView::from(endpoint)))
}

/// Deletes an endpoint and its deliveries.
#[tracing::instrument(skip_all, fields(endpoint_id = %id))]
pub async fn delete(
    state: web::Data<AppState>,
    acting: Acting,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.webhook_endpoints().delete(&id, &acting.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A rotated secret.
#[derive(Debug, Serialize)]
struct RotatedView {
    id: EndpointId,
    secret: String,
    previous_secret_expires_at: String,
}

/// Gives an endpoint a new secret; the one before keeps signing for the overlap.
#[tracing::instrument(skip_all, fields(endpoint_id = %id))]
pub async fn rotate_secret(
    state: web::Data<AppState>,
    acting: Acting,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rotated = state
        .webhook_endpoints()
        .rotate_secret(&id, &acting.0)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(RotatedView {
            id: rotated.id,
            secret: rotated.secret.expose().to_owned(),
            previous_secret_expires_at: rfc3339(rotated.previous_expires_at),
        }))
}

/// `GET /v1/webhook-endpoints/{id}/deliveries` query.
#[derive(Debug, Deserialize)]
pub struct DeliveriesQuery {
    status: Option<DeliveryStatus>,
    limit: Option<u32>,
    after: Option<String>,
}

/// An endpoint's deliveries, oldest first.
#[tracing::instrument(skip_all, fields(endpoint_id = %id))]
pub async fn deliveries(
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<DeliveriesQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let filter = DeliveryFilter {
        status: query.status,
        after: cursor(query.after.as_deref(), DeliveryId::parse)?,
        limit: limit + 1,
    };
    let deliveries = state.webhook_endpoints().deliveries(&id, &filter).await?;
    let (items, next_cursor) = paginate(deliveries, limit, |d| d.id.clone());
    Ok(HttpResponse::Ok().json(Page {
        items: items
            .into_iter()
            .map(DeliveryView::from)
            .collect::<Vec<_>>(),
        next_cursor,
    }))
}

/// Makes a delivery due now, whatever it came to before.
#[tracing::instrument(skip_all)]
pub async fn retry(
    state: web::Data<AppState>,
    acting: Acting,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, delivery) = path.into_inner();
    let delivery = state
        .webhook_endpoints()
        .retry(&id, &delivery, &acting.0)
        .await?;
    Ok(HttpResponse::Accepted().json(DeliveryView::from(delivery)))
}

/// `POST /v1/webhook-endpoints/{id}/replay` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

/// What a replay scheduled.
#[derive(Debug, Serialize)]
struct ReplayView {
    endpoint_id: String,
    from: String,
    to: String,
    scheduled: u64,
}

/// Delivers every event of a time range of the endpoint's types to it again.
#[tracing::instrument(skip_all, fields(endpoint_id = %id))]
pub async fn replay(
    state: web::Data<AppState>,
    acting: Acting,
    id: web::Path<String>,
    body: ApiJson<Replay>,
) -> Result<HttpResponse, ApiError> {
    let ApiJson(body) = body;
    let scheduled = state
        .webhook_endpoints()
        .replay(&id, body.from, body.to, &acting.0)
        .await?;
    Ok(HttpResponse::Accepted().json(ReplayView {
        endpoint_id: id.into_inner(),
        from: rfc3339(body.from),
        to: rfc3339(body.to),
        scheduled,
    }))
}

/// A page cursor this listing gave, parsed by `parse`.
fn cursor<T>(after: Option<&str>, parse: fn(&str) -> Option<T>) -> Result<Option<T>, ApiError> {
    after
        .map(|after| {
            parse(after).ok_or_else(|| {
                ApiError::invalid(
                    "invalid_cursor",
                    "after must be a `next_cursor` this endpoint gave",
                )
            })
        })
        .transpose()
}
