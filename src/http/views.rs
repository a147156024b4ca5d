//! Pieces of response bodies that more than one resource shows.

use serde::Serialize;

use chrono::{DateTime, Utc};

use crate::domain::time::rfc3339;
use crate::domain::{Entitlement, Grant, GrantId, MeterState, ReaderId};

/// A meter as the API shows it.
#[derive(Debug, Serialize)]
pub struct MeterView {
    used: u32,
    limit: u32,
    remaining: u32,
    period_start: String,
    resets_at: Option<String>,
}

impl From<&MeterState> for MeterView {
    fn from(meter: &MeterState) -> Self {
        Self {
            used: meter.used,
            limit: meter.limit,
            remaining: meter.remaining,
            period_start: rfc3339(meter.period_start),
            resets_at: meter.resets_at.map(rfc3339),
        }
    }
}

/// A listing's page and the cursor of the next one.
#[derive(Debug, Serialize)]
pub struct Page<T, C> {
    /// The items.
    pub items: Vec<T>,
    /// Where the next page starts, when there is one.
    pub next_cursor: Option<C>,
}

/// A grant as the API shows it.
#[derive(Debug, Serialize)]
pub struct GrantView {
    id: GrantId,
    reader_id: ReaderId,
    entitlements: Vec<Entitlement>,
    expires_at: String,
    reason: String,
    active: bool,
    created_at: String,
}

impl GrantView {
    /// `grant` as it stands at `now`.
    pub fn new(grant: &Grant, now: DateTime<Utc>) -> Self {
        Self {
            id: grant.id.clone(),
            reader_id: grant.reader_id.clone(),
            entitlements: grant.entitlements.clone(),
            expires_at: rfc3339(grant.expires_at),
            reason: grant.reason.clone(),
            active: grant.is_active(now),
            created_at: rfc3339(grant.created_at),
        }
    }
}
