//! `/v1/webhooks/stripe`: Stripe's deliveries, and the inbox operators list and retry under
//! `/v1/admin/webhook-events` (`services::webhooks` holds the rules).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::domain::time::rfc3339;
use crate::domain::{EventStatus, EventType, StripeEventId, WebhookEvent};
use crate::http::auth::Acting;
use crate::http::error::ApiError;
use crate::http::paging::{page_limit, paginate};
use crate::http::state::AppState;
use crate::http::views::Page;
use crate::store::EventFilter;

/// Largest webhook body accepted: invoices with many lines are large.
pub const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;

/// The acknowledgement Stripe gets.
#[derive(Debug, Serialize)]
struct Acknowledged {
    received: bool,
    duplicate: bool,
}

/// Verifies, stores and acknowledges one delivery.
#[tracing::instrument(skip_all, fields(event_id, event_type))]
pub async fn receive(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = match payload.to_bytes_limited(WEBHOOK_BODY_LIMIT).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            return Err(ApiError::MalformedJson(
                "the request body could not be read".into(),
            ));
        }
        Err(_) => return Err(ApiError::PayloadTooLarge(WEBHOOK_BODY_LIMIT)),
    };
    let signature = req
        .headers()
        .get("stripe-signature")
        .map(|value| value.to_str().unwrap_or_default());
    let received = state.webhooks().receive(signature, &body).await?;
    Ok(HttpResponse::Ok().json(Acknowledged {
        received: true,
        duplicate: !received.new,
    }))
}

/// `GET /v1/admin/webhook-events` query.
#[derive(Debug, Deserialize)]
pub struct ListEvents {
    status: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    limit: Option<u32>,
    before: Option<i64>,
}

/// A stored event as operators see it.
#[derive(Debug, Serialize)]
struct EventView {
    id: StripeEventId,
    #[serde(rename = "type")]
    kind: EventType,
    created: Option<String>,
    api_version: Option<String>,
    livemode: bool,
    status: EventStatus,
    attempts: i64,
    last_error: Option<String>,
    note: Option<String>,
    received_at: String,
    applied_at: Option<String>,
    next_attempt_at: Option<String>,
    waiting_for_customer: Option<String>,
    body_dropped_at: Option<String>,
}

impl From<WebhookEvent> for EventView {
    fn from(event: WebhookEvent) -> Self {
        Self {
            id: event.id,
            kind: event.kind,
            created: chrono::DateTime::from_timestamp(event.created, 0).map(rfc3339),
            api_version: event.api_version,
            livemode: event.livemode,
            status: event.status,
            attempts: event.attempts,
            last_error: event.last_error,
            note: event.note,
            received_at: rfc3339(event.received_at),
            applied_at: event.applied_at.map(rfc3339),
            next_attempt_at: event.next_attempt_at.map(rfc3339),
            waiting_for_customer: event.waiting_for,
            body_dropped_at: event.body_dropped_at.map(rfc3339),
        }
    }
}

/// Lists stored events, newest first, a page at a time.
#[tracing::instrument(skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<ListEvents>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = page_limit(query.limit)?;
    let status = query
        .status
        .as_deref()
        .map(str::parse::<EventStatus>)
        .transpose()
        .map_err(|e| ApiError::invalid("invalid_status", e.to_string()))?;
    let kind = query
        .kind
        .as_deref()
        .map(|kind| {
            EventType::parse(kind).ok_or_else(|| {
                ApiError::invalid(
                    "invalid_type",
                    format!("type must have {}", EventType::RULE),
                )
            })
        })
        .transpose()?;
    if query.before.is_some_and(|b| b < 1) {
        return Err(ApiError::invalid(
            "invalid_cursor",
            "before must be a `next_cursor` this endpoint gave",
        ));
    }
    let filter = EventFilter {
        status,
        kind,
        before: query.before,
        limit: limit + 1,
        id: None,
    };
    let events = state.webhooks().list(&filter).await?;
    let (events, next_cursor) = paginate(events, limit, |event| event.seq);
    Ok(HttpResponse::Ok().json(Page {
        items: events.into_iter().map(EventView::from).collect::<Vec<_>>(),
        next_cursor,
    }))
}

/// Applies one pending or failed event now, and shows where it stands afterwards.
#[tracing::instrument(skip_all, fields(event_id = %event_id))]
pub async fn retry(
    state: web::Data<AppState>,
    acting: Acting,
    event_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let event = state.webhooks().retry(&event_id, &acting.0).await?;
    Ok(HttpResponse::Ok().json(EventView::from(event)))
}
