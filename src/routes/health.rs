//! Liveness, readiness, metrics and the API contract: what operators and their tools read.

use actix_web::{HttpResponse, web};
use prometheus::{Encoder, TextEncoder};
use serde::Serialize;

use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::store::StoreError;

/// The API contract, as served at `/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// What the probes answer.
#[derive(Debug, Serialize)]
struct Status {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<&'static str>,
}

/// 200 for as long as the process runs.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Status {
        status: "ok",
        database: None,
    })
}

/// 200 when the database can serve requests, writes included; 503 otherwise.
#[tracing::instrument(skip_all)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match tokio::time::timeout(state.settings.readiness_timeout, state.store.check_ready()).await {
        Ok(Ok(())) => Ok(HttpResponse::Ok().json(Status {
            status: "ready",
            database: Some(state.store.backend().as_str()),
        })),
        Ok(Err(err)) => Err(match err {
            StoreError::Unavailable(source) | StoreError::Other(source) => {
                ApiError::DatabaseUnavailable(source)
            }
        }),
        Err(_) => Err(ApiError::DatabaseUnavailable(anyhow::anyhow!(
            "the database did not answer within {:?}",
            state.settings.readiness_timeout
        ))),
    }
}

/// Prometheus text exposition of every metric.
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    encoder
        .encode(&state.metrics.gather(), &mut body)
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(HttpResponse::Ok()
        .content_type(encoder.format_type())
        .body(body))
}

/// The OpenAPI document that describes this service.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(OPENAPI_YAML)
}
