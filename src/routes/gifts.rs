//! `/v1/gifts/articles`: readers sharing an article with a link (service).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::domain::time::rfc3339;
use crate::domain::{ArticleId, GiftId, ReaderId};
use crate::http::error::ApiError;
use crate::http::json::ApiJson;
use crate::http::paths::reader_id;
use crate::http::state::AppState;

/// `POST /v1/gifts/articles` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGift {
    reader_id: ReaderId,
    article_id: ArticleId,
}

/// A link just made: the only answer that shows its code.
#[derive(Debug, Serialize)]
struct GiftView<'a> {
    id: GiftId,
    code: &'a str,
    article_id: ArticleId,
    expires_at: String,
    remaining_this_period: u32,
    max_recipients: u32,
}

/// Makes a link with which the reader shares one article.
#[tracing::instrument(skip_all)]
pub async fn create(
    state: web::Data<AppState>,
    body: ApiJson<CreateGift>,
) -> Result<HttpResponse, ApiError> {
    let ApiJson(body) = body;
    let made = state
        .gifts()
        .create(body.reader_id, body.article_id)
        .await?;
    Ok(HttpResponse::Created().json(GiftView {
        code: made.code.expose(),
        id: made.link.id,
        article_id: made.link.article,
        expires_at: rfc3339(made.link.expires_at),
        remaining_this_period: made.remaining_this_period,
        max_recipients: made.link.max_recipients,
    }))
}

/// `DELETE /v1/gifts/articles/{gift_id}?reader_id=`
#[derive(Debug, Deserialize)]
pub struct RevokeGift {
    reader_id: Option<String>,
}

/// Revokes one of the reader's links: it opens its article for nobody from now on.
#[tracing::instrument(skip_all, fields(gift_id = %gift_id))]
pub async fn revoke(
    state: web::Data<AppState>,
    gift_id: web::Path<String>,
    query: web::Query<RevokeGift>,
) -> Result<HttpResponse, ApiError> {
    let giver = query.reader_id.as_deref().ok_or_else(|| {
        ApiError::invalid(
            "invalid_reader_id",
            "`reader_id`, the giver, is required: only the giver revokes a link",
        )
    })?;
    let giver = reader_id(giver)?;
    state.gifts().revoke(&gift_id, &giver).await?;
    Ok(HttpResponse::NoContent().finish())
}
