//! The paywall's calls: `POST /v1/access` (may this reader read this article?), `POST
//! /v1/tokens` (what is this reader entitled to, as a token), `POST /v1/readers/{id}/merge`
//! (an anonymous device's free views join the account's meter), and the JWKS.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::{AccessError, Decision};
use crate::auth::Caller;
use crate::domain::{ArticleId, Entitlement, MeterState, MeterSubject, ReaderId};
use crate::error::ApiError;
use crate::routes::json::{self, ApiJson};
use crate::routes::readers::reader_id;
use crate::routes::rfc3339;
use crate::startup::AppState;
use crate::tokens::TokenError;

impl From<AccessError> for ApiError {
    fn from(err: AccessError) -> Self {
        match err {
            AccessError::Store(err) => err.into(),
            AccessError::Token(err) => token_error(err),
        }
    }
}

pub(crate) fn token_error(err: TokenError) -> ApiError {
    match err {
        TokenError::Store(err) => err.into(),
        TokenError::ManagedByFiles => ApiError::conflict(
            "signing_keys_managed_by_files",
            "signing keys are read from files (signing_key_files); rotate them there",
        ),
        other => ApiError::Internal(other.into()),
    }
}

/// Tokens and decisions are for one reader at one moment: no cache may keep them.
fn no_store(mut response: HttpResponse) -> HttpResponse {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The meter as the API shows it.
pub(crate) fn meter_view(meter: &MeterState) -> Value {
    json!({
        "used": meter.used,
        "limit": meter.limit,
        "remaining": meter.remaining,
        "period_start": rfc3339(meter.period_start),
        "resets_at": meter.resets_at.map(rfc3339),
    })
}

/// `POST /v1/access` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostAccess {
    #[serde(default, deserialize_with = "json::present")]
    reader_id: Option<ReaderId>,
    #[serde(default, deserialize_with = "json::present")]
    device_id: Option<ReaderId>,
    article_id: ArticleId,
    #[serde(default, deserialize_with = "json::present")]
    requires: Option<Entitlement>,
}

/// May this reader (or device) read this article? Always 200 for a well-formed request.
#[tracing::instrument(skip_all)]
pub async fn decide(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<PostAccess>,
) -> Result<HttpResponse, ApiError> {
    let ApiJson(body) = body;
    let subject = match (body.reader_id, body.device_id) {
        (Some(reader), None) => MeterSubject::reader(reader),
        (None, Some(device)) => MeterSubject::device(device),
        _ => {
            return Err(ApiError::invalid(
                "invalid_body",
                "give exactly one of reader_id (a registered reader) and device_id (an anonymous one)",
            ));
        }
    };
    state
        .limits
        .access_per_key
        .admit(caller.0.id.as_str(), "API key")?;
    state.limits.access_per_reader.admit(
        &format!("{}:{}", subject.audience.as_str(), subject.id.as_str()),
        "reader or device",
    )?;
    let requires = body
        .requires
        .unwrap_or_else(|| Entitlement::from_stored("articles".into()));
    let decision = state
        .access
        .decide(&subject, &body.article_id, &requires)
        .await?;
    tracing::debug!(reason = ?decision.reason, "access decided");
    Ok(no_store(HttpResponse::Ok().json(decision_view(&decision))))
}

fn decision_view(decision: &Decision) -> Value {
    json!({
        "granted": decision.granted,
        "reason": decision.reason,
        "token": decision.token.as_ref().map(|t| &t.token),
        "token_expires_at": decision.token.as_ref().map(|t| rfc3339(t.expires_at)),
        "meter": decision.meter.as_ref().map(meter_view),
        "offers": decision.offers,
    })
}

/// `POST /v1/tokens` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostToken {
    reader_id: ReaderId,
}

/// A token saying what a reader is entitled to now, for the site to keep in a cookie.
#[tracing::instrument(skip_all)]
pub async fn token(
    state: web::Data<AppState>,
    body: ApiJson<PostToken>,
) -> Result<HttpResponse, ApiError> {
    let ApiJson(body) = body;
    let (issued, entitlements) = state.access.entitlements_token(&body.reader_id).await?;
    Ok(no_store(HttpResponse::Ok().json(json!({
        "token": issued.token,
        "expires_at": rfc3339(issued.expires_at),
        "entitlements": entitlements,
    }))))
}

/// `POST /v1/readers/{reader_id}/merge` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostMerge {
    device_id: ReaderId,
}

/// Moves an anonymous device's free views of this period into the reader's meter.
#[tracing::instrument(skip_all, fields(reader_id = %raw_id))]
pub async fn merge(
    state: web::Data<AppState>,
    raw_id: web::Path<String>,
    body: ApiJson<PostMerge>,
) -> Result<HttpResponse, ApiError> {
    let reader = reader_id(&raw_id)?;
    let ApiJson(body) = body;
    let (report, meter) = state.access.merge(&reader, &body.device_id).await?;
    tracing::info!(
        moved = report.moved,
        already_unlocked = report.already_unlocked,
        left_over = report.left_over,
        "device meter merged"
    );
    Ok(HttpResponse::Ok().json(json!({
        "reader_id": reader,
        "device_id": body.device_id,
        "moved": report.moved,
        "already_unlocked": report.already_unlocked,
        "left_over": report.left_over,
        "meter": meter_view(&meter),
    })))
}

/// The public keys that verify tokens: the current one and retired ones still in use.
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    let mut response = HttpResponse::Ok().body(state.access.tokens().jwks());
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    // Short enough that a rotation reaches sites quickly; verifiers refetch on an unknown kid.
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    response
}

/// Makes a new key sign from now on; the old one stays published until its tokens expire.
#[tracing::instrument(skip_all)]
pub async fn rotate_signing_key(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let tokens = state.access.tokens();
    let (kid, retired) = tokens.rotate().await.map_err(token_error)?;
    let keys = tokens.keys();
    let current = keys.iter().find(|k| k.kid == kid);
    Ok(HttpResponse::Ok().json(json!({
        "kid": kid,
        "algorithm": current.map(|k| k.algorithm),
        "created_at": current.and_then(|k| k.created_at).map(rfc3339),
        "retired_kid": retired,
        "keys": keys.iter().map(|k| json!({
            "kid": k.kid,
            "algorithm": k.algorithm,
            "current": k.current,
            "created_at": k.created_at.map(rfc3339),
            "retired_at": k.retired_at.map(rfc3339),
            "published_until": k.published_until.map(rfc3339),
        })).collect::<Vec<_>>(),
    })))
}
