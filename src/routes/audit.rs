//! `GET /v1/admin/audit-log`: every admin write, through the API or the command line, oldest
//! first, a page at a time (admin). Nothing in the API changes an entry.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::time::rfc3339;
use crate::domain::{ActorRole, AuditEntry, AuditId};
use crate::http::error::ApiError;
use crate::http::paging::{page_limit, paginate};
use crate::http::state::AppState;
use crate::http::views::Page;
use crate::store::AuditFilter;

/// Longest action or target filter.
const MAX_FILTER: usize = 200;

/// `GET /v1/admin/audit-log` query.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    action: Option<String>,
    target: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: Option<u32>,
    after: Option<String>,
}

/// An entry as the API shows it.
#[derive(Debug, Serialize)]
struct EntryView {
    id: AuditId,
    at: String,
    key_id: Option<String>,
    role: ActorRole,
    action: String,
    target: String,
    request_id: Option<String>,
    changes: serde_json::Value,
}

impl From<AuditEntry> for EntryView {
    fn from(entry: AuditEntry) -> Self {
        Self {
            id: entry.id,
            at: rfc3339(entry.at),
            key_id: entry.actor.key_id,
            role: entry.actor.role,
            request_id: entry.actor.request_id,
            action: entry.action,
            target: entry.target,
            changes: entry.changes,
        }
    }
}

/// The entries the query selects, oldest first.
#[tracing::instrument(skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = page_limit(query.limit)?;
    for (name, value) in [("action", &query.action), ("target", &query.target)] {
        if value
            .as_ref()
            .is_some_and(|v| v.is_empty() || v.len() > MAX_FILTER || v.contains('\0'))
        {
            return Err(ApiError::invalid(
                "invalid_query",
                format!("{name} must have 1 to {MAX_FILTER} characters"),
            ));
        }
    }
    let after = query
        .after
        .as_deref()
        .map(|after| {
            AuditId::parse(after).ok_or_else(|| {
                ApiError::invalid(
                    "invalid_cursor",
                    "after must be a `next_cursor` this endpoint gave",
                )
            })
        })
        .transpose()?;
    let filter = AuditFilter {
        action: query.action,
        target: query.target,
        from: query.from,
        to: query.to,
        after,
        limit: limit + 1,
    };
    let entries = state.audit_log().entries(&filter).await?;
    let (items, next_cursor) = paginate(entries, limit, |entry| entry.id.clone());
    Ok(HttpResponse::Ok().json(Page {
        items: items.into_iter().map(EntryView::from).collect::<Vec<_>>(),
        next_cursor,
    }))
}
