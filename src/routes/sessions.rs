//! `/v1/sessions` and `/v1/whoami`: the finance dashboard exchanges a key for a read-only session
//! token, signs out, and asks who it is.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::domain::time::rfc3339;
use crate::domain::{ApiKeyId, Role, SessionId};
use crate::http::auth::{Acting, Caller, CallerSession};
use crate::http::error::ApiError;
use crate::http::state::AppState;

/// A session just opened, with its token: the only time the token is shown.
#[derive(Debug, Serialize)]
struct OpenedView<'a> {
    id: SessionId,
    token: &'a str,
    role: Role,
    key_id: ApiKeyId,
    expires_at: String,
}

/// A session as `whoami` shows it.
#[derive(Debug, Serialize)]
struct SessionView {
    id: SessionId,
    expires_at: String,
}

/// Who is calling.
#[derive(Debug, Serialize)]
struct WhoamiView<'a> {
    role: Role,
    key_id: &'a ApiKeyId,
    key_name: &'a str,
    session: Option<SessionView>,
}

/// Opens a session with the caller's key (`finance` or `admin`).
#[tracing::instrument(skip_all, fields(key_id = %caller.0.id))]
pub async fn open(
    state: web::Data<AppState>,
    caller: Caller,
    acting: Acting,
) -> Result<HttpResponse, ApiError> {
    let opened = state.sessions().open(&caller.0, &acting.0).await?;
    Ok(HttpResponse::Created()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .json(OpenedView {
            id: opened.session.id,
            token: opened.token.expose(),
            role: opened.session.key.role,
            key_id: opened.session.key.id,
            expires_at: rfc3339(opened.session.expires_at),
        }))
}

/// Ends the caller's session.
#[tracing::instrument(skip_all, fields(session_id = %session.0.id))]
pub async fn close(
    state: web::Data<AppState>,
    session: CallerSession,
) -> Result<HttpResponse, ApiError> {
    state.sessions().revoke(&session.0.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's role and key, and its session when it is one.
#[tracing::instrument(skip_all)]
pub async fn whoami(caller: Caller, session: Option<CallerSession>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .json(WhoamiView {
            role: caller.0.role,
            key_id: &caller.0.id,
            key_name: caller.0.name.as_str(),
            session: session.map(|s| SessionView {
                id: s.0.id,
                expires_at: rfc3339(s.0.expires_at),
            }),
        })
}
