//! The paywall's calls: `POST /v1/access` (may this reader read this article?), `POST
//! /v1/tokens` (what is this reader entitled to, as a token), `POST /v1/readers/{id}/merge`
//! (an anonymous device's free views join the account's meter), and the JWKS.

use actix_web::http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_TYPE, HeaderValue,
};
use std::net::IpAddr;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::domain::time::rfc3339;
use crate::domain::{ArticleId, Entitlement, GiftStatus, LicenceId, MeterSubject, ReaderId};
use crate::http::auth::{Acting, Caller};
use crate::http::error::ApiError;
use crate::http::json::{self, ApiJson};
use crate::http::paths::reader_id;
use crate::http::state::AppState;
use crate::http::views::MeterView;
use crate::services::ServiceError;
use crate::services::access::{AccessQuestion, Decision, Offer, ReaderToken, Reason};
use crate::tokens::KeyInfo;

/// Tokens and decisions are for one reader at one moment: no cache may keep them.
fn no_store(mut response: HttpResponse) -> HttpResponse {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
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
    #[serde(default, deserialize_with = "json::present")]
    ip: Option<IpAddr>,
    #[serde(default, deserialize_with = "json::present")]
    gift: Option<String>,
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
    if body
        .gift
        .as_ref()
        .is_some_and(|code| code.chars().count() > 64)
    {
        return Err(ApiError::invalid(
            "invalid_body",
            "gift must be a gift link's code, at most 64 characters",
        ));
    }
    let requires = body
        .requires
        .unwrap_or_else(|| Entitlement::from_stored("articles".into()));
    let question = AccessQuestion {
        subject: &subject,
        article: &body.article_id,
        requires: &requires,
        address: body.ip,
        gift: body.gift.as_deref(),
    };
    let decision = state.access.decide(&caller.0, question).await?;
    tracing::debug!(reason = ?decision.reason, "access decided");
    Ok(no_store(
        HttpResponse::Ok().json(DecisionView::from(&decision)),
    ))
}

/// A decision as the API shows it.
#[derive(Debug, Serialize)]
struct DecisionView<'a> {
    granted: bool,
    reason: Reason,
    token: Option<&'a str>,
    token_expires_at: Option<String>,
    meter: Option<MeterView>,
    offers: &'a [Offer],
    #[serde(skip_serializing_if = "Option::is_none")]
    licence_id: Option<&'a LicenceId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gift_status: Option<GiftStatus>,
    /// `true` when decided from the reader's last load while the database is unreachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    stale: Option<bool>,
}

impl<'a> From<&'a Decision> for DecisionView<'a> {
    fn from(decision: &'a Decision) -> Self {
        Self {
            granted: decision.granted,
            reason: decision.reason,
            token: decision.token.as_ref().map(|t| t.token.as_str()),
            token_expires_at: decision.token.as_ref().map(|t| rfc3339(t.expires_at)),
            meter: decision.meter.as_ref().map(MeterView::from),
            offers: &decision.offers,
            licence_id: decision.licence_id.as_ref(),
            gift_status: decision.gift_status,
            stale: decision.stale.then_some(true),
        }
    }
}

/// `POST /v1/tokens` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostToken {
    reader_id: ReaderId,
    #[serde(default, deserialize_with = "json::present")]
    ip: Option<IpAddr>,
}

/// A token saying what a reader is entitled to now, for the site to keep in a cookie.
#[tracing::instrument(skip_all)]
pub async fn token(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<PostToken>,
) -> Result<HttpResponse, ApiError> {
    let ApiJson(body) = body;
    let ReaderToken {
        issued,
        entitlements,
        licence,
        stale,
    } = state
        .access
        .token_for(&caller.0, &body.reader_id, body.ip)
        .await?;
    Ok(no_store(HttpResponse::Ok().json(TokenView {
        token: issued.token,
        expires_at: rfc3339(issued.expires_at),
        entitlements,
        stale: stale.then_some(true),
        licence: licence.map(|licence| LicenceHint {
            licence_id: licence.id,
            name: licence.spec.name,
            entitlements: licence.spec.entitlements,
        }),
    })))
}

/// An entitlements token.
#[derive(Debug, Serialize)]
struct TokenView {
    token: String,
    expires_at: String,
    entitlements: Vec<Entitlement>,
    /// `true` when made from the reader's last load while the database is unreachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    stale: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    licence: Option<LicenceHint>,
}

/// The licence in force at the reader's address: what each article request with that address
/// will be granted, which the token itself never carries.
#[derive(Debug, Serialize)]
struct LicenceHint {
    licence_id: LicenceId,
    name: String,
    entitlements: Vec<Entitlement>,
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
    Ok(HttpResponse::Ok().json(MergeView {
        reader_id: reader,
        device_id: body.device_id,
        moved: report.moved,
        already_unlocked: report.already_unlocked,
        left_over: report.left_over,
        meter: MeterView::from(&meter),
    }))
}

/// What a merge did.
#[derive(Debug, Serialize)]
struct MergeView {
    reader_id: ReaderId,
    device_id: ReaderId,
    moved: u32,
    already_unlocked: u32,
    left_over: u32,
    meter: MeterView,
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
    // Public keys, readable by a site's pages for UI hints (the site's server does the gating).
    // Nothing else tollgate serves is meant for a browser, so nothing else says this.
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

/// Makes a new key sign from now on; the old one stays published until its tokens expire.
#[tracing::instrument(skip_all)]
pub async fn rotate_signing_key(
    state: web::Data<AppState>,
    acting: Acting,
) -> Result<HttpResponse, ApiError> {
    let tokens = state.access.tokens();
    let (kid, retired) = tokens.rotate(&acting.0).await.map_err(ServiceError::from)?;
    let keys = tokens.keys();
    let current = keys.iter().find(|k| k.kid == kid);
    Ok(HttpResponse::Ok().json(RotationView {
        algorithm: current.map(|k| k.algorithm),
        created_at: current.and_then(|k| k.created_at).map(rfc3339),
        kid,
        retired_kid: retired,
        keys: keys.iter().map(SigningKeyView::from).collect(),
    }))
}

/// What a rotation did, and every key published now.
#[derive(Debug, Serialize)]
struct RotationView {
    kid: String,
    algorithm: Option<&'static str>,
    created_at: Option<String>,
    retired_kid: Option<String>,
    keys: Vec<SigningKeyView>,
}

/// A published signing key.
#[derive(Debug, Serialize)]
struct SigningKeyView {
    kid: String,
    algorithm: &'static str,
    current: bool,
    created_at: Option<String>,
    retired_at: Option<String>,
    published_until: Option<String>,
}

impl From<&KeyInfo> for SigningKeyView {
    fn from(key: &KeyInfo) -> Self {
        Self {
            kid: key.kid.clone(),
            algorithm: key.algorithm,
            current: key.current,
            created_at: key.created_at.map(rfc3339),
            retired_at: key.retired_at.map(rfc3339),
            published_until: key.published_until.map(rfc3339),
        }
    }
}
