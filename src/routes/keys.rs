//! `/v1/keys`: creating, listing and revoking API keys (admin only).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, issue_key};
use crate::domain::{ApiKey, ApiKeyId, KeyName, Role};
use crate::error::ApiError;
use crate::routes::json::ApiJson;
use crate::routes::{page_limit, paginate, rfc3339};
use crate::startup::AppState;
use crate::store::RevokeOutcome;

/// `POST /v1/keys` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    role: Role,
    name: KeyName,
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
        }
    }
}

/// Creates a key; the answer is the only place its secret ever appears.
#[tracing::instrument(skip_all, fields(created_by = %caller.0.id))]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: ApiJson<CreateKey>,
) -> Result<HttpResponse, ApiError> {
    let ApiJson(CreateKey { role, name }) = body;
    let issued = issue_key(
        state.store.as_ref(),
        state.clock.as_ref(),
        role,
        name,
        Some(caller.0.id),
    )
    .await?;
    tracing::info!(key_id = %issued.key.id, "API key created");
    Ok(HttpResponse::Created().json(serde_json::json!({
        "id": issued.key.id,
        "key": issued.secret.expose(),
        "role": issued.key.role,
        "name": issued.key.name,
        "created_at": rfc3339(issued.key.created_at),
    })))
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
    let keys = state.store.list_api_keys(after.as_ref(), limit + 1).await?;
    let (keys, next_cursor) = paginate(keys, limit, |key| key.id.clone());
    let items: Vec<KeyView> = keys.into_iter().map(KeyView::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "items": items,
        "next_cursor": next_cursor,
    })))
}

/// Revokes a key at once. A key may not revoke itself, so an admin cannot lock itself out by
/// mistake; revoking a revoked key changes nothing and succeeds.
#[tracing::instrument(skip_all, fields(key_id = %key_id))]
pub async fn revoke(
    state: web::Data<AppState>,
    caller: Caller,
    key_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::NotFound(format!("no API key has the id `{key_id}`"));
    let id = ApiKeyId::parse(&key_id).ok_or_else(not_found)?;
    if id == caller.0.id {
        return Err(ApiError::conflict(
            "cannot_revoke_self",
            "a key cannot revoke itself; revoke it with another admin key",
        ));
    }
    let outcome = state.store.revoke_api_key(&id, state.clock.now()).await?;
    state.keys.forget_all();
    match outcome {
        RevokeOutcome::Revoked => {
            tracing::info!("API key revoked");
            Ok(HttpResponse::NoContent().finish())
        }
        RevokeOutcome::AlreadyRevoked => Ok(HttpResponse::NoContent().finish()),
        RevokeOutcome::NotFound => Err(not_found()),
    }
}
