//! `/v1/keys`: creating, listing and revoking API keys (admin only).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::domain::time::rfc3339;
use crate::domain::{ApiKey, ApiKeyId, KeyName, Role};
use crate::http::auth::{Acting, Caller};
use crate::http::error::ApiError;
use crate::http::json::ApiJson;
use crate::http::paging::{page_limit, paginate};
use crate::http::state::AppState;
use crate::http::views::Page;
use crate::services::keys::KeyRequest;

/// `POST /v1/keys` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    role: Role,
    name: KeyName,
    #[serde(default)]
    may_assert_ip: bool,
}

/// A key as listed: never its secret or hash.
#[derive(Debug, Serialize)]
struct KeyView {
    id: ApiKeyId,
    name: KeyName,
    role: Role,
    hint: String,
    created_at: String,
    created_by: Option<ApiKeyId>,
    revoked_at: Option<String>,
    may_assert_ip: bool,
}

/// A key just issued, with its secret: the only time the secret is shown.
#[derive(Debug, Serialize)]
struct IssuedView<'a> {
    id: ApiKeyId,
    key: &'a str,
    role: Role,
    name: KeyName,
    created_at: String,
    may_assert_ip: bool,
}

impl From<ApiKey> for KeyView {
    fn from(key: ApiKey) -> Self {
        Self {
            id: key.id,
            name: key.name,
            role: key.role,
            hint: key.hint,
            created_at: rfc3339(key.created_at),
            created_by: key.created_by,
            revoked_at: key.revoked_at.map(rfc3339),
            may_assert_ip: key.may_assert_ip,
        }
    }
}

/// Creates a key; the answer is the only place its secret ever appears.
#[tracing::instrument(skip_all, fields(created_by = %caller.0.id))]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    acting: Acting,
    body: ApiJson<CreateKey>,
) -> Result<HttpResponse, ApiError> {
    let ApiJson(CreateKey {
        role,
        name,
        may_assert_ip,
    }) = body;
    let request = KeyRequest {
        role,
        name,
        may_assert_ip,
    };
    let issued = state.keys().issue(request, caller.0.id, &acting.0).await?;
    Ok(HttpResponse::Created().json(IssuedView {
        key: issued.secret.expose(),
        id: issued.key.id,
        role: issued.key.role,
        name: issued.key.name,
        created_at: rfc3339(issued.key.created_at),
        may_assert_ip: issued.key.may_assert_ip,
    }))
}

/// `GET /v1/keys` query.
#[derive(Debug, Deserialize)]
pub struct ListKeys {
    limit: Option<u32>,
    after: Option<String>,
}

/// Lists keys in creation order, a page at a time.
#[tracing::instrument(skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<ListKeys>,
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit)?;
    let after = match query.after.as_deref() {
        Some(cursor) => Some(
            ApiKeyId::parse(cursor)
                .ok_or_else(|| ApiError::invalid("invalid_cursor", "after must be a key id"))?,
        ),
        None => None,
    };
    let keys = state.keys().list(after.as_ref(), limit + 1).await?;
    let (keys, next_cursor) = paginate(keys, limit, |key| key.id.clone());
    Ok(HttpResponse::Ok().json(Page {
        items: keys.into_iter().map(KeyView::from).collect::<Vec<_>>(),
        next_cursor,
    }))
}

/// Revokes a key at once. A key may not revoke itself, so an admin cannot lock itself out by
/// mistake; revoking a revoked key changes nothing and succeeds.
#[tracing::instrument(skip_all, fields(key_id = %key_id))]
pub async fn revoke(
    state: web::Data<AppState>,
    caller: Caller,
    acting: Acting,
    key_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = ApiKeyId::parse(&key_id)
        .ok_or_else(|| ApiError::NotFound(format!("no API key has the id `{key_id}`")))?;
    state.keys().revoke(&id, &caller.0.id, &acting.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
