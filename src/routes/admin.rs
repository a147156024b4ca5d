//! `/v1/admin/stripe/sync`: an operator's reconcile of the mirror against Stripe's API, and the
//! last one's outcome.

use actix_web::{HttpResponse, web};

use crate::http::auth::Acting;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::services::{ServiceError, reconcile};

/// Reads subscriptions and recent invoices and refunds from Stripe and repairs the mirror.
#[tracing::instrument(skip_all)]
pub async fn sync(state: web::Data<AppState>, acting: Acting) -> Result<HttpResponse, ApiError> {
    let report = state
        .reconcile()?
        .run(state.clock.now(), &acting.0)
        .await
        .map_err(ServiceError::from)?;
    tracing::info!(?report, "reconcile finished");
    Ok(HttpResponse::Ok().json(report))
}

/// The reconcile that started last, whatever it came to.
#[tracing::instrument(skip_all)]
pub async fn last_sync(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let run = reconcile::last_run(state.store.as_ref())
        .await?
        .ok_or_else(|| ApiError::NotFound("no reconcile has run yet".into()))?;
    Ok(HttpResponse::Ok().json(run))
}
