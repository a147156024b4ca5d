//! What a service can fail with, in the service's own terms: something is missing, breaks a
//! rule, conflicts with what is stored, is over a limit, or cannot be done now. The HTTP layer
//! turns each into its status and problem body (`http::error`); the services know nothing of
//! HTTP.

use std::time::Duration;

use crate::store::StoreError;
use crate::stripe::client::StripeError;
use crate::tokens::TokenError;

/// Why a service refused or failed a request.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// What the request names does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Well-formed input that breaks a rule, with a stable code for the rule.
    #[error("{detail}")]
    Invalid {
        /// Stable code for the rule that was broken.
        code: &'static str,
        /// What was wrong, safe to show.
        detail: String,
    },
    /// Input that cannot be taken as it is at all (a bad signature, a body that is no event),
    /// with a stable code for why.
    #[error("{detail}")]
    Unacceptable {
        /// Stable code for why.
        code: &'static str,
        /// Why, safe to show.
        detail: String,
    },
    /// The request conflicts with what is stored, with a stable code for the conflict.
    #[error("{detail}")]
    Conflict {
        /// Stable code for the conflict.
        code: &'static str,
        /// What conflicted, safe to show.
        detail: String,
    },
    /// The caller's key may not do this particular thing, though its role may call the
    /// endpoint, with a stable code for what it lacks.
    #[error("{detail}")]
    NotPermitted {
        /// Stable code for what the key lacks.
        code: &'static str,
        /// What the key lacks, safe to show.
        detail: String,
    },
    /// Over a rate limit; another request is allowed after `retry_after`.
    #[error("{detail}")]
    RateLimited {
        /// Which limit, safe to show.
        detail: String,
        /// How long to wait.
        retry_after: Duration,
    },
    /// The service is not set up to do this (a secret is not configured); retrying once an
    /// operator has configured it works.
    #[error("{detail}")]
    NotConfigured {
        /// Stable code for what is missing.
        code: &'static str,
        /// What is missing, safe to show.
        detail: String,
    },
    /// Stripe failed or refused the call.
    #[error(transparent)]
    Stripe(#[from] StripeError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything unexpected; the cause is for the log only.
    #[error("an internal error occurred")]
    Internal(#[source] anyhow::Error),
}

impl ServiceError {
    /// Input that breaks the rule `code`.
    pub fn invalid(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            detail: detail.into(),
        }
    }

    /// A request that conflicts with what is stored.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
        }
    }
}

impl From<TokenError> for ServiceError {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::Store(err) => Self::Store(err),
            TokenError::ManagedByFiles => Self::conflict(
                "signing_keys_managed_by_files",
                "signing keys are read from files (signing_key_files); rotate them there",
            ),
            other => Self::Internal(other.into()),
        }
    }
}
