//! API keys at the door: the middleware that checks every guarded route's key and role before
//! its handler (or its body parser) runs, and the [`Caller`] it leaves for the handler.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError, web};

use super::error::ApiError;
use super::state::AppState;
use crate::domain::{Actor, ApiKey, ApiKeySecret, Role};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a key.
    Public,
    /// A key of one of these roles, or an `admin` key.
    Roles(&'static [Role]),
}

impl Access {
    /// Only `admin` keys.
    pub const ADMIN: Access = Access::Roles(&[]);
}

/// The authenticated key behind a request to a guarded route.
#[derive(Debug, Clone)]
pub struct Caller(pub ApiKey);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Only the authorisation middleware puts a caller here; a handler asking for one on a
        // public route is a wiring mistake, and it fails closed.
        ready(
            req.extensions()
                .get::<Caller>()
                .cloned()
                .ok_or(ApiError::MissingApiKey),
        )
    }
}

/// Who is acting in a request to a guarded route, for the audit log: the caller's key, its role
/// and the request's id.
#[derive(Debug, Clone)]
pub struct Acting(pub Actor);

impl FromRequest for Acting {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let extensions = req.extensions();
        ready(
            extensions
                .get::<Caller>()
                .map(|caller| {
                    Acting(Actor::key(
                        caller.0.id.to_string(),
                        caller.0.role,
                        extensions
                            .get::<tracing_actix_web::RequestId>()
                            .map(ToString::to_string),
                    ))
                })
                .ok_or(ApiError::MissingApiKey),
        )
    }
}

/// The access rule of each method of one resource.
pub type Policy = Rc<HashMap<Method, Access>>;

/// Checks the request's key against the resource's policy, then hands it on. A refusal is an
/// answer, not an error, so the layers outside (request id, metrics) still see and mark it.
pub async fn authorize(
    policy: Policy,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    // A method the resource does not serve falls through to its 405 answer.
    if let Some(Access::Roles(roles)) = policy.get(req.method()) {
        let refusal = match authenticate(&req).await {
            Ok(caller) if caller.may(roles) => {
                req.extensions_mut().insert(Caller(caller));
                None
            }
            Ok(_) => Some(ApiError::Forbidden),
            Err(err) => Some(err),
        };
        if let Some(err) = refusal {
            return Ok(req
                .into_response(err.error_response())
                .map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

async fn authenticate(req: &ServiceRequest) -> Result<ApiKey, ApiError> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::MissingApiKey)?;
    let presented = header
        .to_str()
        .ok()
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or(ApiError::InvalidApiKey)?;
    let secret = ApiKeySecret::parse(presented).ok_or(ApiError::InvalidApiKey)?;
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state is missing")))?;
    state
        .keys()
        .authenticate(&secret)
        .await?
        .ok_or(ApiError::InvalidApiKey)
}
