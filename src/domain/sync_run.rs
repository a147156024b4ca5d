//! A reconcile with Stripe as it is remembered: when it ran, who started it, what it came to.

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

/// An instant as the API shows them: RFC 3339, whole seconds, `Z`.
fn whole_seconds<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&super::time::rfc3339(*at))
}

prefixed_id!(
    /// The identifier of a reconcile run: `syn_` and a time-ordered UUID.
    SyncRunId,
    "syn_"
);

/// One reconcile run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncRun {
    /// `syn_...`.
    pub id: String,
    /// `api` (an admin's request) or `cli` (`tollgate stripe sync`).
    #[serde(rename = "trigger")]
    pub source: String,
    /// When it started.
    #[serde(serialize_with = "whole_seconds")]
    pub started_at: DateTime<Utc>,
    /// When it ended.
    #[serde(serialize_with = "whole_seconds")]
    pub finished_at: DateTime<Utc>,
    /// `succeeded` or `failed`.
    pub outcome: String,
    /// What it saw and changed, when it succeeded.
    pub report: Option<serde_json::Value>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}
