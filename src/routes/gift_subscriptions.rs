//! `/v1/gifts/subscriptions`: gift subscriptions bought through Checkout (service): the buyer's
//! list, a code revealed to its buyer, and redemption into a grant.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::domain::time::rfc3339;
use crate::domain::{
    GiftSubscription, GiftSubscriptionId, GiftSubscriptionStatus, PlanId, ReaderId,
};
use crate::http::auth::{Acting, Caller};
use crate::http::error::ApiError;
use crate::http::json::ApiJson;
use crate::http::paths::reader_id;
use crate::http::state::AppState;
use crate::http::views::GrantView;

/// A gift subscription as the API shows it: never its code.
#[derive(Debug, Serialize)]
struct GiftSubscriptionView {
    id: GiftSubscriptionId,
    plan_id: PlanId,
    months: u32,
    status: GiftSubscriptionStatus,
    purchased_at: String,
    expires_at: String,
    amount_total: Option<i64>,
    currency: Option<String>,
    redeemed_by: Option<ReaderId>,
    redeemed_at: Option<String>,
    grant_id: Option<String>,
}

impl GiftSubscriptionView {
    fn new(gift: GiftSubscription, now: chrono::DateTime<chrono::Utc>) -> Self {
        let status = gift.status(now);
        let (redeemed_by, redeemed_at, grant_id) = match gift.redeemed {
            Some((reader, at, grant)) => (Some(reader), Some(rfc3339(at)), Some(grant.to_string())),
            None => (None, None, None),
        };
        Self {
            id: gift.id,
            plan_id: gift.plan_id,
            months: gift.months,
            status,
            purchased_at: rfc3339(gift.purchased_at),
            expires_at: rfc3339(gift.expires_at),
            amount_total: gift.amount_total,
            currency: gift.currency,
            redeemed_by,
            redeemed_at,
            grant_id,
        }
    }
}

/// `GET /v1/gifts/subscriptions` query.
#[derive(Debug, Deserialize)]
pub struct BuyerQuery {
    buyer: Option<String>,
}

/// `POST /v1/gifts/subscriptions/{gift_id}/reveal` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reveal {
    buyer: ReaderId,
}

/// `POST /v1/gifts/subscriptions/redeem` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redeem {
    code: String,
    reader_id: ReaderId,
}

/// A code revealed to its buyer.
#[derive(Debug, Serialize)]
struct RevealedView<'a> {
    id: GiftSubscriptionId,
    code: &'a str,
    expires_at: String,
}

/// A redemption's grant.
#[derive(Debug, Serialize)]
struct RedemptionView {
    gift_id: GiftSubscriptionId,
    grant: GrantView,
}

#[derive(Debug, Serialize)]
struct GiftList {
    items: Vec<GiftSubscriptionView>,
}

/// The gifts a reader bought, newest first.
#[tracing::instrument(skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<BuyerQuery>,
) -> Result<HttpResponse, ApiError> {
    let buyer = reader_id(query.buyer.as_deref().unwrap_or_default())?;
    let gifts = state.gift_subscriptions();
    let now = gifts.now();
    let items = gifts
        .of_buyer(&buyer)
        .await?
        .into_iter()
        .map(|gift| GiftSubscriptionView::new(gift, now))
        .collect();
    Ok(HttpResponse::Ok().json(GiftList { items }))
}

/// The code of an unredeemed gift, for its buyer's site to show them.
#[tracing::instrument(skip_all)]
pub async fn reveal(
    state: web::Data<AppState>,
    acting: Acting,
    gift_id: web::Path<String>,
    body: ApiJson<Reveal>,
) -> Result<HttpResponse, ApiError> {
    let ApiJson(body) = body;
    let revealed = state
        .gift_subscriptions()
        .reveal(&gift_id, &body.buyer, &acting.0)
        .await?;
    // A code is a bearer secret: no cache keeps it.
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(RevealedView {
            code: revealed.code.expose(),
            expires_at: rfc3339(revealed.gift.expires_at),
            id: revealed.gift.id,
        }))
}

/// Redeems a code: 201 with the grant made, 200 with the same grant when this reader redeemed
/// it before.
#[tracing::instrument(skip_all)]
pub async fn redeem(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<Redeem>,
) -> Result<HttpResponse, ApiError> {
    let ApiJson(body) = body;
    let gifts = state.gift_subscriptions();
    let redemption = gifts
        .redeem(&body.code, &body.reader_id, caller.0.id.as_str())
        .await?;
    let view = RedemptionView {
        gift_id: redemption.gift_id,
        grant: GrantView::new(&redemption.grant, gifts.now()),
    };
    Ok(if redemption.new {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}
