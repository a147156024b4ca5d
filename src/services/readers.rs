//! Readers as staff see them (what they hold and why, their subscriptions, grants and meter), and
//! the grants admins give and revoke. Every write here empties the reader's cached entitlements.

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::domain::entitlements::{plan_of, plans_by_price};
use crate::domain::{
    Actor, AuditEntry, Entitlement, Grant, GrantId, MeterState, MeterSubject, NewGrant, PlanId,
    ReaderId, Standing, Subscription,
};
use crate::services::ServiceError;
use crate::services::access::{AccessService, Holdings};
use crate::store::Store;

/// A subscription with its standing and the plan of each of its items.
#[derive(Debug, Clone)]
pub struct SubscriptionStanding {
    /// The subscription.
    pub subscription: Subscription,
    /// Whether it gives what its plans grant now, and until when.
    pub standing: Standing,
    /// The plan each item's price belongs to, in item order; `None` for a price in no plan.
    pub item_plans: Vec<Option<PlanId>>,
}

/// Everything staff see of a reader.
#[derive(Debug, Clone)]
pub struct ReaderOverview {
    /// The reader.
    pub id: ReaderId,
    /// What they hold, as the access path sees it.
    pub holdings: Holdings,
    /// Their subscriptions, with standing.
    pub subscriptions: Vec<SubscriptionStanding>,
    /// Their meter now.
    pub meter: MeterState,
}

/// The reader operations.
pub struct Readers<'a> {
    /// Where readers' grants are kept.
    pub store: &'a dyn Store,
    /// What time it is.
    pub clock: &'a dyn Clock,
    /// What readers hold, and their meters.
    pub access: &'a AccessService,
}

impl Readers<'_> {
    /// The reader `id` as staff see them.
    pub async fn overview(&self, id: &ReaderId) -> Result<ReaderOverview, ServiceError> {
        let holdings = self.access.holdings(id).await?;
        let grace = self.access.grace();
        let by_price = plans_by_price(&holdings.plans);
        let subscriptions = holdings
            .record
            .subscriptions
            .iter()
            .map(|sub| SubscriptionStanding {
                standing: sub.standing(holdings.now, grace),
                item_plans: sub
                    .items
                    .iter()
                    .map(|item| plan_of(&by_price, &item.price).cloned())
                    .collect(),
                subscription: sub.clone(),
            })
            .collect();
        let meter = self.access.meter(&MeterSubject::reader(id.clone())).await?;
        Ok(ReaderOverview {
            id: id.clone(),
            subscriptions,
            holdings,
            meter,
        })
    }

    /// Gives `reader` `entitlements` until `expires_at`, without Stripe, on behalf of the key
    /// `by`.
    pub async fn grant(
        &self,
        reader: ReaderId,
        entitlements: Vec<Entitlement>,
        expires_at: DateTime<Utc>,
        reason: String,
        by: &str,
        actor: &Actor,
    ) -> Result<Grant, ServiceError> {
        let grant = NewGrant::new(
            reader,
            entitlements,
            expires_at,
            reason,
            self.clock.now(),
            Some(by.to_owned()),
        )
        .map_err(|e| ServiceError::invalid("invalid_body", e.to_string()))?;
        let audit = AuditEntry::new(
            actor,
            "grant.create",
            format!("grant:{}", grant.id),
            serde_json::json!({
                "reader_id": grant.reader_id, "entitlements": grant.entitlements,
                "expires_at": crate::domain::time::rfc3339(grant.expires_at),
                "reason": grant.reason,
            }),
            grant.created_at,
        );
        let grant = self.store.insert_grant(&grant, &audit).await?;
        self.access.cache().forget_reader(&grant.reader_id).await;
        tracing::info!(grant_id = %grant.id, "grant created");
        Ok(grant)
    }

    /// Revokes the reader's grant `grant` (as the caller named it) at once.
    pub async fn revoke_grant(
        &self,
        reader: &ReaderId,
        grant: &str,
        actor: &Actor,
    ) -> Result<(), ServiceError> {
        let not_found =
            || ServiceError::NotFound(format!("reader `{reader}` has no active grant `{grant}`"));
        let id = GrantId::parse(grant).ok_or_else(not_found)?;
        let now = self.clock.now();
        let audit = AuditEntry::new(
            actor,
            "grant.revoke",
            format!("grant:{id}"),
            serde_json::json!({ "reader_id": reader }),
            now,
        );
        if self.store.revoke_grant(reader, &id, now, &audit).await? {
            self.access.cache().forget_reader(reader).await;
            tracing::info!("grant revoked");
            Ok(())
        } else {
            Err(not_found())
        }
    }

    /// What time it is, for views that say whether a grant is active.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}
