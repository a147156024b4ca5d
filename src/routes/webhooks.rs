//! `/v1/webhooks/stripe`: Stripe's deliveries. Every verified event is stored before it is
//! acknowledged; a redelivery is acknowledged and stored once. Operators list the inbox under
//! `/v1/admin/webhook-events`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::domain::{EventStatus, NewWebhookEvent, WebhookEvent};
use crate::error::ApiError;
use crate::routes::{page_limit, paginate, rfc3339};
use crate::startup::AppState;
use crate::store::EventFilter;
use crate::stripe::event::Envelope;
use crate::stripe::objects;
use crate::stripe::signature;

/// Largest webhook body accepted: invoices with many lines are large.
pub const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;

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
    let settings = &state.settings;
    if settings.stripe_webhook_secrets.is_empty() {
        // 503, not 4xx: Stripe keeps retrying, so nothing is lost while an operator configures.
        return Err(ApiError::Unavailable {
            code: "webhooks_not_configured",
            detail: "no Stripe webhook secret is configured (stripe_webhook_secrets)".into(),
        });
    }
    let header = req
        .headers()
        .get("stripe-signature")
        .map(|value| value.to_str().unwrap_or_default());
    signature::verify(
        header,
        &body,
        &settings.stripe_webhook_secrets,
        settings.stripe_webhook_tolerance,
        state.clock.now(),
    )
    .map_err(|err| ApiError::BadRequest {
        code: "invalid_signature",
        detail: err.to_string(),
    })?;

    let envelope = Envelope::parse(&body).map_err(|err| {
        // Signed by Stripe yet not an event: nothing to store it under, so it is refused, and
        // operators must hear of it, since Stripe will retry it until it gives up.
        tracing::warn!(bytes = body.len(), reason = %err, "a signed webhook body is not a Stripe event");
        ApiError::BadRequest {
            code: "invalid_event",
            detail: err.to_string(),
        }
    })?;
    let span = tracing::Span::current();
    span.record("event_id", envelope.id.as_str());
    span.record("event_type", envelope.kind.as_str());
    // Envelope::parse succeeded, so the body is valid JSON and therefore UTF-8.
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::MalformedJson("the body is not UTF-8".into()))?;
    let now = state.clock.now();
    let other_mode = envelope.livemode != settings.stripe_livemode;
    let applied_type = objects::is_applied(&envelope.kind);
    let note = if other_mode {
        Some(format!(
            "a {} event, and tollgate applies {} events",
            mode(envelope.livemode),
            mode(settings.stripe_livemode)
        ))
    } else if !applied_type {
        Some(format!("tollgate does not apply {} events", envelope.kind))
    } else {
        None
    };
    let status = if note.is_some() {
        EventStatus::Skipped
    } else {
        EventStatus::Pending
    };
    let event = NewWebhookEvent {
        status,
        note,
        id: envelope.id,
        kind: envelope.kind,
        created: envelope.created,
        api_version: envelope.api_version,
        livemode: envelope.livemode,
        body: text,
        received_at: now,
        // Should the process stop before applying it, the retry task will.
        next_attempt_at: (status == EventStatus::Pending).then(|| {
            now + chrono::TimeDelta::from_std(state.mirror.retry_policy().backoff)
                .unwrap_or(chrono::TimeDelta::seconds(30))
        }),
    };
    let new = state.store.record_webhook_event(&event).await?;
    tracing::info!(new, status = %event.status, "Stripe event received");
    if status == EventStatus::Pending {
        // Stored, so acknowledged whatever happens next: a failure is kept and retried.
        if let Err(err) = state.mirror.apply(&event.id).await {
            tracing::warn!(error = %err, "applying a stored Stripe event failed; it will be retried");
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "received": true, "duplicate": !new })))
}

fn mode(livemode: bool) -> &'static str {
    if livemode { "live-mode" } else { "test-mode" }
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

/// Lists stored events, newest first, a page at a time.
#[tracing::instrument(skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<ListEvents>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = page_limit(query.limit)?;
    let status = match query.status.as_deref() {
        Some(s) => Some(
            s.parse::<EventStatus>()
                .map_err(|e| ApiError::invalid("invalid_status", e.to_string()))?,
        ),
        None => None,
    };
    if query
        .kind
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.chars().count() > 255 || k.chars().any(char::is_control))
    {
        return Err(ApiError::invalid(
            "invalid_type",
            "type must have 1 to 255 characters, none of them a control character",
        ));
    }
    if query.before.is_some_and(|b| b < 1) {
        return Err(ApiError::invalid(
            "invalid_cursor",
            "before must be a `next_cursor` this endpoint gave",
        ));
    }
    let filter = EventFilter {
        status,
        kind: query.kind,
        before: query.before,
        limit: limit + 1,
        id: None,
    };
    let events = state.store.list_webhook_events(&filter).await?;
    let (events, next_cursor) = paginate(events, limit, |event| event.seq);
    let items: Vec<serde_json::Value> = events.into_iter().map(view).collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items, "next_cursor": next_cursor })))
}

fn view(event: WebhookEvent) -> serde_json::Value {
    json!({
        "id": event.id,
        "type": event.kind,
        "created": chrono::DateTime::from_timestamp(event.created, 0).map(rfc3339),
        "api_version": event.api_version,
        "livemode": event.livemode,
        "status": event.status,
        "attempts": event.attempts,
        "last_error": event.last_error,
        "note": event.note,
        "received_at": rfc3339(event.received_at),
        "applied_at": event.applied_at.map(rfc3339),
        "next_attempt_at": event.next_attempt_at.map(rfc3339),
        "waiting_for_customer": event.waiting_for,
    })
}

/// Applies one pending or failed event now, and shows where it stands afterwards.
#[tracing::instrument(skip_all, fields(event_id = %event_id))]
pub async fn retry(
    state: web::Data<AppState>,
    event_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::NotFound(format!("no Stripe event `{event_id}` is stored"));
    // Stored ids passed the envelope's rules; one that breaks them names no stored event (and
    // PostgreSQL refuses some of them, a NUL say, as text at all).
    if event_id.is_empty() || event_id.len() > 255 || event_id.chars().any(char::is_control) {
        return Err(not_found());
    }
    let event = state
        .store
        .stored_event(&event_id)
        .await?
        .ok_or_else(not_found)?;
    match event.status {
        EventStatus::Applied => {
            return Err(ApiError::conflict(
                "event_already_applied",
                "the event is applied already; applying it again would change nothing",
            ));
        }
        EventStatus::Skipped => {
            return Err(ApiError::conflict(
                "event_not_applicable",
                "the event is of a type or Stripe mode tollgate does not apply",
            ));
        }
        EventStatus::Pending | EventStatus::Failed => {}
    }
    let outcome = state.mirror.apply(&event.id).await?;
    tracing::info!(?outcome, "Stripe event retried by an operator");
    let filter = EventFilter {
        id: Some(event.id.clone()),
        limit: 1,
        ..EventFilter::default()
    };
    let stored = state
        .store
        .list_webhook_events(&filter)
        .await?
        .pop()
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(view(stored)))
}
