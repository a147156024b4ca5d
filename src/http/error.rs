//! The one error type of the HTTP API and its RFC 9457 `application/problem+json` rendering.
//!
//! Client errors carry a safe message and a stable snake_case `code` that clients may match on.
//! Unexpected failures become an opaque 500 whose cause chain goes to the log, never to the client.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::services::ServiceError;
use crate::store::StoreError;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON at all (400).
    #[error("{0}")]
    MalformedJson(String),
    /// A request that cannot be taken as it is, for a reason with its own code (400).
    #[error("{detail}")]
    BadRequest {
        /// Stable code for what was wrong.
        code: &'static str,
        /// What was wrong, safe to show.
        detail: String,
    },
    /// A header, parameter or body is well-formed but breaks a rule (422).
    #[error("{detail}")]
    Invalid {
        /// Stable code for the rule that was broken.
        code: &'static str,
        /// What was wrong, safe to show.
        detail: String,
    },
    /// No API key was presented (401).
    #[error("this endpoint needs an API key: send `Authorization: Bearer <key>`")]
    MissingApiKey,
    /// The presented key (or dashboard session token) is malformed, unknown, revoked or expired
    /// (401).
    #[error(
        "the API key or session token is not valid: it is malformed, unknown, revoked or expired"
    )]
    InvalidApiKey,
    /// The key's role may not do this (403).
    #[error("this API key's role may not do this")]
    Forbidden,
    /// The key's role may call this, but the key lacks a permission the request needs (403).
    #[error("{detail}")]
    NotPermitted {
        /// Stable code for what the key lacks.
        code: &'static str,
        /// What the key lacks, safe to show.
        detail: String,
    },
    /// The path names nothing (404).
    #[error("{0}")]
    NotFound(String),
    /// The path exists but not for this method (405).
    #[error("this path does not support this method; the Allow header lists those it does")]
    MethodNotAllowed,
    /// The request conflicts with the current state (409).
    #[error("{detail}")]
    Conflict {
        /// Stable code for the conflict.
        code: &'static str,
        /// What conflicted, safe to show.
        detail: String,
    },
    /// The body is larger than the limit (413).
    #[error("the request body is larger than the {0} bytes this endpoint accepts")]
    PayloadTooLarge(usize),
    /// The body is not of a media type this endpoint reads (415).
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// Any other client error the framework detected, rendered under its own status.
    #[error("{detail}")]
    Client {
        /// Its status, a 4xx.
        status: StatusCode,
        /// What was wrong, safe to show.
        detail: String,
    },
    /// The service cannot take this request now for a reason with its own code (503); retrying
    /// later may work.
    #[error("{detail}")]
    Unavailable {
        /// Stable code for why.
        code: &'static str,
        /// Why, safe to show.
        detail: String,
    },
    /// An outside service (Stripe) failed or refused the call (502).
    #[error("{detail}")]
    Upstream {
        /// Stable code for why.
        code: &'static str,
        /// What the outside service said, safe to show.
        detail: String,
        /// A report of what was tried, part by part, carried as the problem's `report` member.
        report: Option<serde_json::Value>,
    },
    /// The database cannot be reached or is too busy right now (503); retrying later may work.
    #[error("the database is unavailable; retry later")]
    DatabaseUnavailable(#[source] anyhow::Error),
    /// Over a rate limit (429); `retry_after` seconds until another request is allowed.
    #[error("{detail}")]
    RateLimited {
        /// Which limit, safe to show.
        detail: String,
        /// Whole seconds to wait.
        retry_after: u64,
    },
    /// Anything unexpected (500). The cause is logged, never shown.
    #[error("an internal error occurred")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// A 422 for a rule that input broke.
    pub fn invalid(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            detail: detail.into(),
        }
    }

    /// A 409 for a request that conflicts with the current state.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
        }
    }

    /// The stable code clients may match on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::Invalid { code, .. }
            | Self::Conflict { code, .. }
            | Self::BadRequest { code, .. }
            | Self::NotPermitted { code, .. }
            | Self::Unavailable { code, .. }
            | Self::Upstream { code, .. } => code,
            Self::MissingApiKey => "missing_api_key",
            Self::InvalidApiKey => "invalid_api_key",
            Self::Forbidden => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Client { status, .. } => client_code(*status),
            Self::DatabaseUnavailable(_) => "database_unavailable",
            Self::RateLimited { .. } => "rate_limited",
            Self::Internal(_) => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "Malformed JSON",
            Self::BadRequest { .. } => "Bad request",
            Self::Invalid { .. } => "Invalid request",
            Self::MissingApiKey | Self::InvalidApiKey => "Unauthorized",
            Self::Forbidden | Self::NotPermitted { .. } => "Forbidden",
            Self::NotFound(_) => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::Conflict { .. } => "Conflict",
            Self::PayloadTooLarge(_) => "Payload too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::Client { status, .. } => status.canonical_reason().unwrap_or("Client error"),
            Self::DatabaseUnavailable(_) | Self::Unavailable { .. } => "Service unavailable",
            Self::Upstream { .. } => "Bad gateway",
            Self::RateLimited { .. } => "Too many requests",
            Self::Internal(_) => "Internal server error",
        }
    }

    /// The problem for a bare status that some layer below the handlers produced.
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::BAD_REQUEST => Self::MalformedJson("the request could not be read".into()),
            StatusCode::NOT_FOUND => Self::NotFound("nothing is found at this path".into()),
            s if s.is_client_error() => Self::Client {
                status: s,
                detail: s
                    .canonical_reason()
                    .unwrap_or("client error")
                    .to_lowercase(),
            },
            s if s == StatusCode::SERVICE_UNAVAILABLE => {
                Self::DatabaseUnavailable(anyhow::anyhow!("service unavailable"))
            }
            s => Self::Internal(anyhow::anyhow!("a lower layer answered {s}")),
        }
    }
}

fn client_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        405 => "method_not_allowed",
        408 => "request_timeout",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        411 => "length_required",
        414 => "uri_too_long",
        431 => "headers_too_large",
        _ => "bad_request",
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(source) => Self::DatabaseUnavailable(source),
            StoreError::Other(source) => Self::Internal(source),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::NotFound(detail) => Self::NotFound(detail),
            ServiceError::Invalid { code, detail } => Self::Invalid { code, detail },
            ServiceError::Conflict { code, detail } => Self::Conflict { code, detail },
            ServiceError::NotPermitted { code, detail } => Self::NotPermitted { code, detail },
            ServiceError::Unacceptable { code, detail } => Self::BadRequest { code, detail },
            ServiceError::RateLimited {
                detail,
                retry_after,
            } => Self::RateLimited {
                detail,
                // Whole seconds, never 0: a client told to wait 0 seconds would not wait.
                retry_after: retry_after.as_secs_f64().ceil().max(1.0) as u64,
            },
            ServiceError::NotConfigured { code, detail } => Self::Unavailable { code, detail },
            ServiceError::Stripe(err) => {
                tracing::warn!(error = %err, "a Stripe API call failed");
                // Stripe's error type and message, never the key.
                Self::Upstream {
                    code: "stripe_error",
                    detail: err.to_string(),
                    report: None,
                }
            }
            ServiceError::Store(err) => err.into(),
            ServiceError::Internal(source) => Self::Internal(source),
        }
    }
}

/// The RFC 9457 body.
#[derive(Debug, Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: String,
    code: &'a str,
    /// An extension member: what was tried, part by part (a reconcile's report).
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<&'a serde_json::Value>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) | Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MissingApiKey | Self::InvalidApiKey => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::NotPermitted { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Client { status, .. } => *status,
            Self::DatabaseUnavailable(_) | Self::Unavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            Self::Internal(source) => {
                tracing::error!(error = ?source, "request failed with an internal error");
            }
            Self::DatabaseUnavailable(source) => {
                tracing::warn!(error = %format!("{source:#}"), "database unavailable");
            }
            _ => {}
        }
        let problem = Problem {
            kind: format!("urn:tollgate:problem:{}", self.code()),
            title: self.title(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: self.code(),
            report: match self {
                Self::Upstream { report, .. } => report.as_ref(),
                _ => None,
            },
        };
        // Every problem body is written here, so this one line lets an operator (and the test
        // suite's secret check) see what each error answer said.
        tracing::debug!(
            status = problem.status,
            code = problem.code,
            detail = %problem.detail,
            "answered with a problem"
        );
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        match self {
            Self::MissingApiKey | Self::InvalidApiKey => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            Self::DatabaseUnavailable(_) | Self::Unavailable { .. } => {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
            Self::RateLimited { retry_after, .. } => {
                response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            _ => {}
        }
        response.body(serde_json::to_string(&problem).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    async fn body_of(err: ApiError) -> serde_json::Value {
        let bytes = to_bytes(err.error_response().into_body()).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[actix_web::test]
    async fn a_problem_body_has_the_rfc_9457_members_and_a_stable_code() {
        let body = body_of(ApiError::conflict("cannot_revoke_self", "no")).await;
        assert_eq!(body["type"], "urn:tollgate:problem:cannot_revoke_self");
        assert_eq!(body["title"], "Conflict");
        assert_eq!(body["status"], 409);
        assert_eq!(body["detail"], "no");
        assert_eq!(body["code"], "cannot_revoke_self");
    }

    #[actix_web::test]
    async fn an_internal_error_never_shows_its_cause() {
        let err = ApiError::Internal(anyhow::anyhow!("password=hunter2 at db.internal:5432"));
        let response = err.error_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let text = to_bytes(response.into_body()).await.unwrap();
        let text = String::from_utf8_lossy(&text);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("db.internal"), "{text}");
    }

    #[actix_web::test]
    async fn unauthorized_answers_say_how_to_authenticate() {
        let response = ApiError::MissingApiKey.error_response();
        assert_eq!(
            response.headers().get(header::WWW_AUTHENTICATE).unwrap(),
            "Bearer"
        );
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            PROBLEM_JSON
        );
    }
}
