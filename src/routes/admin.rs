//! `/v1/admin/stripe/sync`: an operator's reconcile of the mirror against Stripe's API.

use actix_web::{HttpResponse, web};

use crate::error::ApiError;
use crate::reconcile::{Reconcile, SyncError};
use crate::startup::AppState;
use crate::stripe::client::{StripeClient, StripeError};

/// Reads subscriptions and recent invoices and refunds from Stripe and repairs the mirror.
#[tracing::instrument(skip_all)]
pub async fn sync(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let client = stripe_client(&state)?;
    let reconcile = Reconcile {
        client,
        store: state.store.as_ref(),
        mirror: &state.mirror,
        window: state.settings.stripe_sync_window,
    };
    let report = reconcile
        .run(state.clock.now())
        .await
        .map_err(|err| match err {
            SyncError::Store(err) => ApiError::from(err),
            SyncError::Stripe(err) => stripe_problem(err),
        })?;
    state.access.cache().forget_all();
    tracing::info!(?report, "reconcile finished");
    Ok(HttpResponse::Ok().json(report))
}

/// The Stripe client, or the 503 that says none is configured.
pub(crate) fn stripe_client(state: &AppState) -> Result<&StripeClient, ApiError> {
    state.stripe.as_ref().ok_or_else(|| ApiError::Unavailable {
        code: "stripe_not_configured",
        detail: "no Stripe secret key is configured (stripe_secret_key)".into(),
    })
}

/// A Stripe failure as the API shows it: Stripe's error type and message, never the key.
pub(crate) fn stripe_problem(err: StripeError) -> ApiError {
    tracing::warn!(error = %err, "a Stripe API call failed");
    ApiError::Upstream {
        code: "stripe_error",
        detail: err.to_string(),
    }
}
