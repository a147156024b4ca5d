//! `/v1/admin/stripe/sync`: an operator's reconcile of the mirror against Stripe's API, and the
//! last one's outcome.

use actix_web::{HttpResponse, web};

use crate::domain::SyncOutcome;
use crate::http::auth::Acting;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::services::reconcile;

/// Reads Stripe's listings and repairs the mirror: 200 with the report when at least one listing
/// was read to its end, 502 (the report as the problem's `report` member) when none was.
#[tracing::instrument(skip_all)]
pub async fn sync(state: web::Data<AppState>, acting: Acting) -> Result<HttpResponse, ApiError> {
    let report = state.reconcile()?.run(state.clock.now(), &acting.0).await?;
    tracing::info!(outcome = %report.outcome, "reconcile finished");
    if report.outcome == SyncOutcome::Failed {
        return Err(ApiError::Upstream {
            code: "stripe_error",
            detail: format!(
                "no Stripe listing could be read: {}",
                report.failures().unwrap_or_default()
            ),
            report: serde_json::to_value(&report).ok(),
        });
    }
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
