//! Plans: what is sold and what it grants. Writing one changes what its subscribers hold, so
//! every write here also empties this instance's entitlement cache.

use std::collections::HashMap;

use crate::clock::Clock;
use crate::domain::{Actor, AuditEntry, Plan, PlanId, PlanSpec, Price, StripePriceId};
use crate::services::ServiceError;
use crate::services::access::EntitlementCache;
use crate::store::{PlanWrite, Store, StoreError};

/// What the mirror knows of prices, by id.
pub type KnownPrices = HashMap<StripePriceId, Price>;

/// A plan with what the mirror knows of its prices.
#[derive(Debug, Clone)]
pub struct PricedPlan {
    /// The plan.
    pub plan: Plan,
    /// Its prices that Stripe has told tollgate about.
    pub prices: KnownPrices,
}

/// What storing a plan did.
#[derive(Debug, Clone)]
pub enum Stored {
    /// No plan had the id; now one does.
    Created(PricedPlan),
    /// The plan was replaced.
    Replaced(PricedPlan),
}

/// The plan operations.
pub struct Plans<'a> {
    /// Where plans are kept.
    pub store: &'a dyn Store,
    /// What time it is.
    pub clock: &'a dyn Clock,
    /// The entitlement cache every plan write empties.
    pub cache: &'a EntitlementCache,
}

fn not_found(id: &str) -> ServiceError {
    ServiceError::NotFound(format!("no plan has the id `{id}`"))
}

impl Plans<'_> {
    async fn known_prices(&self, plan: Option<&PlanId>) -> Result<KnownPrices, StoreError> {
        Ok(self
            .store
            .plan_prices(plan)
            .await?
            .into_iter()
            .map(|price| (price.id.clone(), price))
            .collect())
    }

    async fn priced(&self, plan: Plan) -> Result<PricedPlan, StoreError> {
        let prices = self.known_prices(Some(&plan.id)).await?;
        Ok(PricedPlan { plan, prices })
    }

    /// Creates the plan `id` or replaces it. A price belongs to one plan at most.
    pub async fn put(
        &self,
        id: &PlanId,
        spec: &PlanSpec,
        actor: &Actor,
    ) -> Result<Stored, ServiceError> {
        let now = self.clock.now();
        let audit = AuditEntry::new(
            actor,
            "plan.put",
            format!("plan:{id}"),
            serde_json::json!({
                "name": spec.name,
                "stripe_prices": spec.stripe_prices,
                "entitlements": spec.entitlements,
                "trial_days": spec.trial_days,
                "allow_promotion_codes": spec.allow_promotion_codes,
                "seats": spec.seats,
                "gift_price": spec.gift.as_ref().map(|gift| &gift.price),
                "gift_months": spec.gift.as_ref().map(|gift| gift.months),
            }),
            now,
        );
        let written = self.store.put_plan(id, spec, now, &audit).await?;
        // What a plan grants changes what its subscribers hold.
        self.cache.forget_all();
        match written {
            PlanWrite::Created(plan) => {
                tracing::info!("plan created");
                Ok(Stored::Created(self.priced(plan).await?))
            }
            PlanWrite::Replaced(plan) => {
                tracing::info!("plan replaced");
                Ok(Stored::Replaced(self.priced(plan).await?))
            }
            PlanWrite::PriceTaken { price, plan } => Err(ServiceError::conflict(
                "price_in_use",
                format!(
                    "price `{price}` already belongs to plan `{plan}`; a price belongs to one plan at most"
                ),
            )),
        }
    }

    /// Every plan, archived or not, by id, with what the mirror knows of all their prices.
    pub async fn list(&self) -> Result<(Vec<Plan>, KnownPrices), StoreError> {
        let known = self.known_prices(None).await?;
        Ok((self.store.list_plans().await?, known))
    }

    /// The plan `id`, archived or not. `id` is as the caller gave it: an id no plan can have
    /// names no plan.
    pub async fn get(&self, id: &str) -> Result<PricedPlan, ServiceError> {
        let plan_id = PlanId::parse(id).ok_or_else(|| not_found(id))?;
        let plan = self
            .store
            .get_plan(&plan_id)
            .await?
            .ok_or_else(|| not_found(id))?;
        Ok(self.priced(plan).await?)
    }

    /// Archives the plan `id`: it takes no new subscribers, and its subscribers keep what it
    /// grants.
    pub async fn archive(&self, id: &str, actor: &Actor) -> Result<PricedPlan, ServiceError> {
        let plan_id = PlanId::parse(id).ok_or_else(|| not_found(id))?;
        let now = self.clock.now();
        let audit = AuditEntry::new(
            actor,
            "plan.archive",
            format!("plan:{plan_id}"),
            serde_json::json!({}),
            now,
        );
        let plan = self
            .store
            .archive_plan(&plan_id, now, &audit)
            .await?
            .ok_or_else(|| not_found(id))?;
        self.cache.forget_all();
        tracing::info!("plan archived");
        Ok(self.priced(plan).await?)
    }
}
