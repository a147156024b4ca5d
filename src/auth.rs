//! API keys at the door: issuing them, and the middleware that checks every guarded route's key
//! and role before its handler (or its body parser) runs.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError, web};

use crate::clock::Clock;
use crate::domain::{ApiKey, ApiKeyId, ApiKeySecret, KeyHash, KeyName, NewApiKey, Role};
use crate::error::ApiError;
use crate::startup::AppState;
use crate::store::{Store, StoreError};

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

/// A freshly issued key: the stored record and the secret, which is shown once.
#[derive(Debug)]
pub struct IssuedKey {
    /// The stored record.
    pub key: ApiKey,
    /// The secret to hand to the key's holder.
    pub secret: ApiKeySecret,
}

/// Makes and stores a new key. `created_by` is the key that asked for it, if any.
pub async fn issue_key(
    store: &dyn Store,
    clock: &dyn Clock,
    role: Role,
    name: KeyName,
    created_by: Option<ApiKeyId>,
) -> Result<IssuedKey, StoreError> {
    let secret = ApiKeySecret::generate();
    let now = clock.now();
    let new = NewApiKey {
        id: ApiKeyId::generate(now),
        name,
        role,
        hash: secret.hash(),
        hint: secret.hint(),
        created_at: now,
        created_by,
    };
    let key = store.insert_api_key(&new).await?;
    Ok(IssuedKey { key, secret })
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

/// Recently checked active keys, so that the hot path does not read the database for the key
/// on every request. Only keys found active are kept, for `api_key_cache_ttl`: a revocation
/// through this instance empties the cache at once, one through another instance (or the CLI)
/// takes effect here within that time. A zero time to live keeps nothing.
#[derive(Clone)]
pub struct KeyCache(Option<moka::sync::Cache<KeyHash, ApiKey>>);

impl KeyCache {
    /// Most keys kept.
    const CAPACITY: u64 = 10_000;

    /// A cache whose entries live for `ttl`.
    pub fn new(ttl: std::time::Duration) -> Self {
        Self((!ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(Self::CAPACITY)
                .time_to_live(ttl)
                .build()
        }))
    }

    /// Forgets every key (one was revoked).
    pub fn forget_all(&self) {
        if let Some(cache) = &self.0 {
            cache.invalidate_all();
        }
    }
}

/// The access rule of each method of one resource.
pub(crate) type Policy = Rc<HashMap<Method, Access>>;

/// Checks the request's key against the resource's policy, then hands it on. A refusal is an
/// answer, not an error, so the layers outside (request id, metrics) still see and mark it.
pub(crate) async fn authorize(
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
    let hash = secret.hash();
    if let Some(key) = state.keys.0.as_ref().and_then(|cache| cache.get(&hash)) {
        return Ok(key);
    }
    match state.store.find_api_key_by_hash(&hash).await? {
        Some(key) if key.is_active() => {
            if let Some(cache) = &state.keys.0 {
                cache.insert(hash, key.clone());
            }
            Ok(key)
        }
        _ => Err(ApiError::InvalidApiKey),
    }
}
