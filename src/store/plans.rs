//! Plans: which Stripe prices they sell and what they grant, and what the mirror knows of those
//! prices.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use super::columns::instant;
use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
use crate::domain::{
    AuditEntry, Entitlement, GiftOffer, Interval, Plan, PlanId, PlanSpec, Price, Recurring,
    StripePriceId, Version,
};

/// What storing a plan did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanWrite {
    /// No plan had this id; now one does.
    Created(Plan),
    /// The plan with this id was replaced; it keeps its creation time and archived state.
    Replaced(Plan),
    /// A price already belongs to another plan; nothing changed.
    PriceTaken {
        /// The price.
        price: StripePriceId,
        /// The plan it belongs to.
        plan: PlanId,
    },
}

/// Plans and their prices.
#[async_trait]
pub trait PlanStore: Send + Sync {
    /// Creates the plan `id`, or replaces it, from `at` on.
    async fn put_plan(
        &self,
        id: &PlanId,
        spec: &PlanSpec,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<PlanWrite, StoreError>;

    /// The plan with this id, archived or not.
    async fn get_plan(&self, id: &PlanId) -> Result<Option<Plan>, StoreError>;

    /// Every plan, archived or not, by id.
    async fn list_plans(&self) -> Result<Vec<Plan>, StoreError>;

    /// Archives a plan from `at` on (archiving twice keeps the first time); `None` if no plan
    /// has this id.
    async fn archive_plan(
        &self,
        id: &PlanId,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Option<Plan>, StoreError>;

    /// What the mirror knows of the prices of one plan, or of every plan; prices Stripe has
    /// not told tollgate about yet are missing.
    async fn plan_prices(&self, plan: Option<&PlanId>) -> Result<Vec<Price>, StoreError>;
}

#[derive(FromRow)]
struct PlanRow {
    id: String,
    name: String,
    trial_days: i64,
    allow_promotion_codes: bool,
    seats: bool,
    gift_price: Option<String>,
    gift_months: Option<i64>,
    created_at: i64,
    updated_at: i64,
    archived_at: Option<i64>,
}

/// One row of `plan_prices` or `plan_entitlements`: a plan and one of its values.
#[derive(FromRow)]
struct PlanValueRow {
    plan_id: String,
    value: String,
}

#[derive(FromRow)]
struct PriceRow {
    id: String,
    product: Option<String>,
    active: bool,
    currency: String,
    unit_amount: Option<i64>,
    recurring_interval: Option<String>,
    recurring_count: Option<i64>,
    nickname: Option<String>,
    version_created: i64,
    version_source: String,
}

impl TryFrom<PriceRow> for Price {
    type Error = StoreError;

    fn try_from(row: PriceRow) -> Result<Self, StoreError> {
        let recurring = row
            .recurring_interval
            .map(|interval| -> Result<_, StoreError> {
                Ok(Recurring {
                    interval: interval.parse::<Interval>().map_err(StoreError::other)?,
                    interval_count: row.recurring_count.unwrap_or(1),
                })
            })
            .transpose()?;
        Ok(Price {
            id: StripePriceId::from_stored(row.id),
            product: row.product,
            active: row.active,
            currency: row.currency,
            unit_amount: row.unit_amount,
            recurring,
            nickname: row.nickname,
            version: Version {
                created: row.version_created,
                source: row.version_source,
            },
        })
    }
}

/// Puts plan rows and their prices and entitlements (each sorted by plan id) together.
fn assemble_plans(
    plans: Vec<PlanRow>,
    prices: Vec<PlanValueRow>,
    entitlements: Vec<PlanValueRow>,
) -> Result<Vec<Plan>, StoreError> {
    let mut prices = prices.into_iter().peekable();
    let mut entitlements = entitlements.into_iter().peekable();
    plans
        .into_iter()
        .map(|row| {
            let mut plan_prices = Vec::new();
            while let Some(price) = prices.next_if(|p| p.plan_id == row.id) {
                plan_prices.push(StripePriceId::from_stored(price.value));
            }
            let mut plan_entitlements = Vec::new();
            while let Some(ent) = entitlements.next_if(|e| e.plan_id == row.id) {
                plan_entitlements.push(Entitlement::from_stored(ent.value));
            }
            Ok(Plan {
                id: PlanId::from_stored(row.id),
                spec: PlanSpec {
                    name: row.name,
                    stripe_prices: plan_prices,
                    entitlements: plan_entitlements,
                    trial_days: u32::try_from(row.trial_days).map_err(StoreError::other)?,
                    allow_promotion_codes: row.allow_promotion_codes,
                    seats: row.seats,
                    gift: match (row.gift_price, row.gift_months) {
                        (Some(price), Some(months)) => Some(GiftOffer {
                            price: StripePriceId::from_stored(price),
                            months: u32::try_from(months).map_err(StoreError::other)?,
                        }),
                        _ => None,
                    },
                },
                created_at: instant(row.created_at)?,
                updated_at: instant(row.updated_at)?,
                archived_at: row.archived_at.map(instant).transpose()?,
            })
        })
        .collect()
}

#[sql_bounds]
impl<DB: Dialect> SqlStore<DB> {
    /// Every plan, or only the one `only` names (an empty string means every plan).
    async fn fetch_plans(&self, only: &str) -> Result<Vec<Plan>, StoreError> {
        let plans = sqlx::query_as::<DB, PlanRow>(
            "SELECT id, name, trial_days, allow_promotion_codes, seats, gift_price, gift_months, \
             created_at, updated_at, archived_at FROM plans WHERE $1 = '' OR id = $1 ORDER BY id",
        )
        .bind(only.to_owned())
        .fetch_all(&self.pool)
        .await?;
        let prices = self
            .plan_values(
                "SELECT plan_id, price_id AS value FROM plan_prices \
                 WHERE $1 = '' OR plan_id = $1 ORDER BY plan_id, position",
                only,
            )
            .await?;
        let entitlements = self
            .plan_values(
                "SELECT plan_id, entitlement AS value FROM plan_entitlements \
                 WHERE $1 = '' OR plan_id = $1 ORDER BY plan_id, entitlement",
                only,
            )
            .await?;
        assemble_plans(plans, prices, entitlements)
    }

    /// The rows of a per-plan value table (`sql` takes the plan id, or '' for every plan).
    async fn plan_values(
        &self,
        sql: &'static str,
        only: &str,
    ) -> Result<Vec<PlanValueRow>, StoreError> {
        Ok(sqlx::query_as::<DB, PlanValueRow>(sql)
            .bind(only.to_owned())
            .fetch_all(&self.pool)
            .await?)
    }

    /// The plan, other than `except`, that owns one of `prices` (to subscribe or to give), if
    /// any.
    async fn price_owner(
        conn: &mut DB::Connection,
        prices: &[StripePriceId],
        except: &PlanId,
    ) -> Result<Option<(StripePriceId, PlanId)>, StoreError> {
        for price in prices {
            let owner: Option<PlanValueRow> = sqlx::query_as::<DB, PlanValueRow>(
                "SELECT plan_id, price_id AS value FROM plan_prices WHERE price_id = $1 AND plan_id <> $2 \
                 UNION ALL SELECT id AS plan_id, gift_price AS value FROM plans \
                 WHERE gift_price = $1 AND id <> $2",
            )
            .bind(price.as_str().to_owned())
            .bind(except.as_str().to_owned())
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(owner) = owner {
                return Ok(Some((price.clone(), PlanId::from_stored(owner.plan_id))));
            }
        }
        Ok(None)
    }
}

#[sql_bounds]
#[async_trait]
impl<DB: Dialect> PlanStore for SqlStore<DB> {
    async fn put_plan(
        &self,
        id: &PlanId,
        spec: &PlanSpec,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<PlanWrite, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let every_price: Vec<StripePriceId> = spec
            .stripe_prices
            .iter()
            .chain(spec.gift.as_ref().map(|gift| &gift.price))
            .cloned()
            .collect();
        if let Some((price, plan)) = Self::price_owner(&mut *tx, &every_price, id).await? {
            return Ok(PlanWrite::PriceTaken { price, plan });
        }
        let existed = sqlx::query_as::<DB, (i64,)>("SELECT created_at FROM plans WHERE id = $1")
            .bind(id.as_str().to_owned())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        sqlx::query(
            "INSERT INTO plans (id, name, trial_days, allow_promotion_codes, seats, gift_price, \
             gift_months, created_at, updated_at) VALUES ($1, $2, $3, $4, $6, $7, $8, $5, $5) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, trial_days = excluded.trial_days, \
             allow_promotion_codes = excluded.allow_promotion_codes, seats = excluded.seats, \
             gift_price = excluded.gift_price, gift_months = excluded.gift_months, \
             updated_at = excluded.updated_at",
        )
        .bind(id.as_str().to_owned())
        .bind(spec.name.clone())
        .bind(i64::from(spec.trial_days))
        .bind(spec.allow_promotion_codes)
        .bind(at.timestamp_millis())
        .bind(spec.seats)
        .bind(spec.gift.as_ref().map(|gift| gift.price.as_str().to_owned()))
        .bind(spec.gift.as_ref().map(|gift| i64::from(gift.months)))
        .execute(&mut *tx)
        .await?;
        // Subscribers by the plan's prices before and after the change hold something else now.
        Self::mark_plan_readers(&mut tx, id.as_str(), at).await?;
        for sql in [
            "DELETE FROM plan_prices WHERE plan_id = $1",
            "DELETE FROM plan_entitlements WHERE plan_id = $1",
        ] {
            sqlx::query(sql)
                .bind(id.as_str().to_owned())
                .execute(&mut *tx)
                .await?;
        }
        for (position, price) in (0_i64..).zip(&spec.stripe_prices) {
            let inserted = sqlx::query(
                "INSERT INTO plan_prices (price_id, plan_id, position) VALUES ($1, $2, $3)",
            )
            .bind(price.as_str().to_owned())
            .bind(id.as_str().to_owned())
            .bind(position)
            .execute(&mut *tx)
            .await;
            match inserted {
                Ok(_) => {}
                // Another plan took the price after the check above (PostgreSQL only: SQLite's
                // write lock serialises the two): the primary key stopped it.
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    tx.rollback().await?;
                    let mut conn = self.pool.acquire().await?;
                    return match Self::price_owner(&mut conn, &spec.stripe_prices, id).await? {
                        Some((price, plan)) => Ok(PlanWrite::PriceTaken { price, plan }),
                        None => Err(StoreError::Other(anyhow::anyhow!(
                            "a plan price was taken and released concurrently"
                        ))),
                    };
                }
                Err(e) => return Err(e.into()),
            }
        }
        for entitlement in &spec.entitlements {
            sqlx::query("INSERT INTO plan_entitlements (plan_id, entitlement) VALUES ($1, $2)")
                .bind(id.as_str().to_owned())
                .bind(entitlement.as_str().to_owned())
                .execute(&mut *tx)
                .await?;
        }
        Self::mark_plan_readers(&mut tx, id.as_str(), at).await?;
        Self::append_audit(&mut *tx, audit).await?;
        Self::touch_reports(&mut tx).await?;
        tx.commit().await?;
        let plan = self.fetch_plans(id.as_str()).await?.pop().ok_or_else(|| {
            StoreError::Other(anyhow::anyhow!("plan {id} vanished after it was stored"))
        })?;
        Ok(if existed {
            PlanWrite::Replaced(plan)
        } else {
            PlanWrite::Created(plan)
        })
    }

    async fn get_plan(&self, id: &PlanId) -> Result<Option<Plan>, StoreError> {
        Ok(self.fetch_plans(id.as_str()).await?.pop())
    }

    async fn list_plans(&self) -> Result<Vec<Plan>, StoreError> {
        self.fetch_plans("").await
    }

    async fn archive_plan(
        &self,
        id: &PlanId,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Option<Plan>, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let archived =
            sqlx::query("UPDATE plans SET archived_at = $1 WHERE id = $2 AND archived_at IS NULL")
                .bind(at.timestamp_millis())
                .bind(id.as_str().to_owned())
                .execute(&mut *tx)
                .await?;
        if DB::rows_affected(&archived) == 1 {
            Self::append_audit(&mut *tx, audit).await?;
            Self::touch_reports(&mut tx).await?;
        }
        tx.commit().await?;
        self.get_plan(id).await
    }

    async fn plan_prices(&self, plan: Option<&PlanId>) -> Result<Vec<Price>, StoreError> {
        let rows = sqlx::query_as::<DB, PriceRow>(
            "SELECT p.id, p.product, p.active, p.currency, p.unit_amount, p.recurring_interval, \
             p.recurring_count, p.nickname, p.version_created, p.version_source \
             FROM prices p JOIN plan_prices pp ON pp.price_id = p.id \
             WHERE $1 = '' OR pp.plan_id = $1 ORDER BY pp.plan_id, pp.position",
        )
        .bind(plan.map_or_else(String::new, |p| p.as_str().to_owned()))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Price::try_from).collect()
    }
}
