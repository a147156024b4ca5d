//! The `Idempotency-Key` middleware of the POSTs that create something: the first answer to a
//! key (per API key and path) is kept for a day, secrets blanked, and replayed to a retry with
//! the same body, marked `Idempotent-Replayed: true`; the same key with another body is refused,
//! and so is a retry while the first attempt is still being served. 5xx and 429 answers are not
//! kept, so that a retry does the work.

use std::collections::HashMap;
use std::rc::Rc;

use actix_web::body::{BoxBody, MessageBody, to_bytes};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, ResponseError, web};
use futures_util::StreamExt;

use super::auth::Caller;
use super::error::ApiError;
use super::state::AppState;
use crate::domain::idempotency::{fingerprint, without_secrets};
use crate::domain::{IdempotencyKey, KeptResponse};
use crate::store::{AttemptKey, Claim};

/// The methods of one resource that honour `Idempotency-Key`, with the top-level fields of their
/// answers that are secrets (never kept: a replay carries `null` in their place).
pub type IdempotentMethods = Rc<HashMap<Method, &'static [&'static str]>>;

/// The header that marks a replayed answer.
const REPLAYED: &str = "idempotent-replayed";

/// Serves `req` once per `Idempotency-Key`, when its method honours one.
pub async fn idempotent(
    methods: IdempotentMethods,
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let secrets = methods.get(req.method()).copied();
    let (Some(secrets), Some(raw)) = (secrets, req.headers().get("idempotency-key")) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let Some(key) = raw.to_str().ok().and_then(IdempotencyKey::parse) else {
        let refusal = ApiError::invalid(
            "invalid_idempotency_key",
            format!("Idempotency-Key must have {}", IdempotencyKey::RULE),
        );
        return Ok(req.into_response(refusal.error_response()));
    };
    let (Some(caller), Some(state)) = (
        req.extensions().get::<Caller>().map(|c| c.0.id.to_string()),
        req.app_data::<web::Data<AppState>>().cloned(),
    ) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    // The body is read here to fingerprint it, and handed on unchanged. One longer than the
    // limit is handed on unread: the handler refuses it (413), and nothing is claimed.
    let limit = state.settings.body_limit;
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        body.extend_from_slice(&chunk?);
        if body.len() > limit {
            break;
        }
    }
    let body = body.freeze();
    let within_limit = body.len() <= limit;
    req.set_payload(Payload::from(body.clone()));
    if !within_limit {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let route = format!("{} {}", req.method(), req.path());
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or("", |p| p.as_str())
        .to_owned();
    let content = fingerprint(req.method().as_str(), &path_and_query, &body);
    let attempt = AttemptKey {
        scope: &caller,
        route: &route,
        key: key.as_str(),
    };
    let idempotency = state.idempotency();
    let claim = match idempotency.claim(attempt, &content).await {
        Ok(claim) => claim,
        Err(e) => return Ok(req.into_response(ApiError::from(e).error_response())),
    };
    match claim {
        Claim::Serve => {}
        Claim::Replay(kept) => return Ok(req.into_response(replay(&kept))),
        Claim::Mismatch => {
            let refusal = ApiError::invalid(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a request with another body or query; use a new key for a new request",
            );
            return Ok(req.into_response(refusal.error_response()));
        }
        Claim::InProgress => {
            let refusal = ApiError::conflict(
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is being served now; retry once it is answered",
            );
            return Ok(req.into_response(refusal.error_response()));
        }
    }
    let response = next.call(req).await?;
    let status = response.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        settle(&idempotency, attempt, None).await;
        return Ok(response.map_into_boxed_body());
    }
    let (http_request, http_response) = response.into_parts();
    let (head, answer) = http_response.into_parts();
    let answer = to_bytes(answer).await.map_err(|e| {
        let e: Box<dyn std::error::Error> = e.into();
        actix_web::error::ErrorInternalServerError(format!("reading an answer to keep: {e}"))
    })?;
    let header_text = |name| {
        head.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let kept = KeptResponse {
        status: status.as_u16(),
        content_type: header_text(header::CONTENT_TYPE),
        location: header_text(header::LOCATION),
        // Secrets are in what a write made; a refusal's problem body has none (and its `code`
        // is the problem's, not a secret).
        body: if status.is_success() {
            without_secrets(&answer, secrets)
        } else {
            answer.to_vec()
        },
    };
    settle(&idempotency, attempt, Some(&kept)).await;
    Ok(ServiceResponse::new(
        http_request,
        head.set_body(BoxBody::new(answer)),
    ))
}

/// Keeps (or lets go) a claim; a failure is logged, and the claim lapses with its lease.
async fn settle(
    idempotency: &crate::services::idempotency::Idempotency<'_>,
    attempt: AttemptKey<'_>,
    answer: Option<&KeptResponse>,
) {
    if let Err(e) = idempotency.settle(attempt, answer).await {
        tracing::warn!(error = %e, "an idempotent answer could not be kept");
    }
}

/// The kept answer, as it was first given (secrets blanked).
fn replay(kept: &KeptResponse) -> HttpResponse {
    let mut response =
        HttpResponse::build(StatusCode::from_u16(kept.status).unwrap_or(StatusCode::OK));
    if let Some(content_type) = &kept.content_type {
        response.insert_header((header::CONTENT_TYPE, content_type.as_str()));
    }
    if let Some(location) = &kept.location {
        response.insert_header((header::LOCATION, location.as_str()));
    }
    response.insert_header((REPLAYED, "true"));
    response.body(kept.body.clone())
}
