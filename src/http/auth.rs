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
use crate::domain::{Actor, ApiKey, ApiKeySecret, Role, Session, SessionToken};

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

/// Whether a guarded route takes a dashboard session's token (`tgs_...`) in place of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sessions {
    /// Keys only: a session token is refused (`403 session_not_allowed`).
    Refused,
    /// A key, or a session opened with a key of one of the route's roles.
    Accepted,
    /// A session only (signing out of one): a key is refused (`403 session_required`).
    Required,
}

/// The session behind a request made with a session token.
#[derive(Debug, Clone)]
pub struct CallerSession(pub Session);

impl FromRequest for CallerSession {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<CallerSession>()
                .cloned()
                .ok_or_else(session_required),
        )
    }
}

/// The refusal of a key whose role may not call a route, naming the roles that may.
fn wrong_role(role: Role, allowed: &[Role]) -> ApiError {
    let may: Vec<&str> = allowed
        .iter()
        .map(|r| r.as_str())
        .chain(std::iter::once(Role::Admin.as_str()))
        .collect();
    ApiError::NotPermitted {
        code: "forbidden",
        detail: format!(
            "a {role} key may not call this route: it takes {} keys",
            may.join(" or ")
        ),
    }
}

fn session_required() -> ApiError {
    ApiError::NotPermitted {
        code: "session_required",
        detail: "this route takes a dashboard session's token, not an API key".into(),
    }
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

/// The access rule of each method of one resource, and whether it takes session tokens.
pub type Policy = Rc<HashMap<Method, (Access, Sessions)>>;

/// Checks the request's key against the resource's policy, then hands it on. A refusal is an
/// answer, not an error, so the layers outside (request id, metrics) still see and mark it.
pub async fn authorize(
    policy: Policy,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    // A method the resource does not serve falls through to its 405 answer.
    if let Some(&(Access::Roles(roles), sessions)) = policy.get(req.method()) {
        let refusal = match authenticate(&req, sessions).await {
            Ok((caller, _)) if !caller.may(roles) => Some(wrong_role(caller.role, roles)),
            Ok((_, None)) if sessions == Sessions::Required => Some(session_required()),
            Ok((caller, session)) => {
                let mut extensions = req.extensions_mut();
                extensions.insert(Caller(caller));
                if let Some(session) = session {
                    extensions.insert(CallerSession(session));
                }
                None
            }
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

/// The key behind the request's bearer token, and the session when the token is a session's.
async fn authenticate(
    req: &ServiceRequest,
    sessions: Sessions,
) -> Result<(ApiKey, Option<Session>), ApiError> {
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
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state is missing")))?;
    if presented.starts_with(SessionToken::PREFIX) {
        if sessions == Sessions::Refused {
            return Err(ApiError::NotPermitted {
                code: "session_not_allowed",
                detail: "a dashboard session reads reports only: this route takes an API key"
                    .into(),
            });
        }
        let session = state
            .sessions()
            .authenticate(presented)
            .await?
            .ok_or(ApiError::InvalidApiKey)?;
        return Ok((session.key.clone(), Some(session)));
    }
    let secret = ApiKeySecret::parse(presented).ok_or(ApiError::InvalidApiKey)?;
    let key = state
        .keys()
        .authenticate(&secret)
        .await?
        .ok_or(ApiError::InvalidApiKey)?;
    Ok((key, None))
}
