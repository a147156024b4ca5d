//! The audit log: one entry for every admin write, through the API or the CLI, appended in the
//! write's own transaction, so that a change without its entry cannot happen. Entries never
//! carry secrets.

use chrono::{DateTime, Utc};

prefixed_id!(
    /// The identifier of an audit entry: `aud_` and a time-ordered UUID, so ids sort by time.
    AuditId,
    "aud_"
);

named_enum! {
    /// Who acted: an API key of a role, or the command line on the database's host.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum ActorRole ("actor role") {
        /// An `admin` API key.
        Admin = "admin",
        /// A `service` key (a site revealing a gift code to its buyer).
        Service = "service",
        /// A `finance` key.
        Finance = "finance",
        /// `tollgate keys create`, `tollgate stripe sync` and the other commands.
        Cli = "cli",
    }
}

/// Who made a change, and in which request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The API key, for an API request.
    pub key_id: Option<String>,
    /// Admin key or command line.
    pub role: ActorRole,
    /// The request's id, for an API request.
    pub request_id: Option<String>,
}

impl Actor {
    /// The key `key_id` of `role`, in the request `request_id`.
    pub fn key(key_id: String, role: super::Role, request_id: Option<String>) -> Self {
        Self {
            key_id: Some(key_id),
            role: match role {
                super::Role::Admin => ActorRole::Admin,
                super::Role::Service => ActorRole::Service,
                super::Role::Finance => ActorRole::Finance,
            },
            request_id,
        }
    }

    /// The command line.
    pub fn cli() -> Self {
        Self {
            key_id: None,
            role: ActorRole::Cli,
            request_id: None,
        }
    }
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Its id.
    pub id: AuditId,
    /// When the change was made.
    pub at: DateTime<Utc>,
    /// Who made it.
    pub actor: Actor,
    /// What was done: `key.create`, `plan.put`, `grant.revoke` ...
    pub action: String,
    /// What it was done to: `key:key_...`, `plan:all-access` ...
    pub target: String,
    /// What changed, secrets left out.
    pub changes: serde_json::Value,
}

impl AuditEntry {
    /// An entry for `action` on `target` by `actor` at `at`.
    pub fn new(
        actor: &Actor,
        action: &str,
        target: impl Into<String>,
        changes: serde_json::Value,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: AuditId::generate(),
            at,
            actor: actor.clone(),
            action: action.to_owned(),
            target: target.into(),
            changes,
        }
    }
}
