//! The store's SQL, written once for both backends. The few things that differ between SQLite and
//! PostgreSQL (how a pool is opened, how a write transaction starts, how migrations are found)
//! live behind [`Dialect`] in `sqlite.rs` and `postgres.rs`.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use secrecy::ExposeSecret;
use sqlx::pool::PoolConnection;
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Pool, Type};
use tokio::task::JoinHandle;

use super::mirror::{
    CustomerRow, GrantRow, ItemRow, PairRow, PriceRow, Step, SubscriptionRow,
    SubscriptionVersionRow, VersionRow, assemble_grants, assemble_subscriptions,
};
use super::reports::{HistoryRow, InvoiceSlotRow, PaidInvoiceRow, RefundSlotRow};
use super::{
    ApplyOutcome, ApplyReport, Backend, CustomerLink, EventFailure, EventFilter, MergeReport,
    PlanWrite, ReaderRecord, RevokeOutcome, Store, StoreError, StoredEvent, StoredSigningKey,
    Unlock, UnlockRequest, meter,
};
use crate::domain::{
    ApiKey, ApiKeyId, ArticleId, Change, Entitlement, EventStatus, Grant, GrantId, KeyHash,
    KeyName, MeterSubject, NewApiKey, NewGrant, NewWebhookEvent, Plan, PlanId, PlanSpec, Price,
    ReaderId, Role, StripePriceId, Usage, Version, WebhookEvent, Window,
};
use crate::reports::mrr::{History, PaidInvoice};
use crate::reports::revenue::{InvoiceDay, RefundDay};

/// What differs between the backends.
pub(super) trait Dialect: Database + sqlx::database::HasStatementCache {
    /// Which backend this is.
    const BACKEND: Backend;
    /// Starts a transaction that will write. SQLite must take the write lock up front, or two
    /// readers that both try to upgrade deadlock; PostgreSQL's row locks need no such thing.
    const BEGIN_WRITE: &'static str;
    /// Takes a transaction-scoped lock on a meter subject's key (`$1`, a BIGINT), or `None`
    /// where the write transaction already excludes every other writer.
    const LOCK_SUBJECT: Option<&'static str>;
    /// Takes the transaction-scoped lock that mirror writes share, or `None` where the write
    /// transaction already excludes every other writer. Applying a change reads what is stored
    /// to decide what to write (the newest snapshot wins, a terminal state stays terminal, a
    /// refund finds its invoice through a payment), so two changes applied side by side under
    /// PostgreSQL's READ COMMITTED could each decide on a state the other is replacing.
    const LOCK_MIRROR: Option<&'static str>;

    /// How many rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// Applies the backend's migrations.
    fn migrate(pool: &Pool<Self>) -> BoxFuture<'_, Result<(), sqlx::migrate::MigrateError>>;

    /// Whether a batch of unlocks is one statement on this backend ([`Dialect::unlock_batch`],
    /// PostgreSQL's `tollgate_unlock`), run on a connection the meter's writers keep. Otherwise
    /// [`meter::unlock`] runs in a write transaction, which costs SQLite nothing since it runs
    /// in-process.
    const UNLOCKS_IN_ONE_STATEMENT: bool = false;

    /// Unlocks a batch in one statement; only called where [`Dialect::UNLOCKS_IN_ONE_STATEMENT`].
    fn unlock_batch<'a>(
        _conn: &'a mut Self::Connection,
        _requests: &'a [UnlockRequest],
    ) -> BoxFuture<'a, Result<Vec<Unlock>, StoreError>> {
        Box::pin(async {
            Err(StoreError::Other(anyhow::anyhow!(
                "this backend unlocks statement by statement"
            )))
        })
    }
}

/// A [`Store`] over one sqlx pool.
pub(super) struct SqlStore<DB: Database> {
    pub(super) pool: Pool<DB>,
    background: Vec<JoinHandle<()>>,
    /// Connections kept by the meter's writers between batches where a batch is one statement
    /// ([`Dialect::unlock_batch`]): taken from the pool once, they skip the pool's check of a
    /// connection before and after each use, two round trips of the three a batch would cost.
    /// One that fails is dropped, not kept.
    unlock_connections: std::sync::Mutex<Vec<PoolConnection<DB>>>,
}

impl<DB: Database> SqlStore<DB> {
    /// A store over `pool`; `background` tasks are stopped when the store is closed.
    pub(super) fn new(pool: Pool<DB>, background: Vec<JoinHandle<()>>) -> Self {
        Self {
            pool,
            background,
            unlock_connections: std::sync::Mutex::default(),
        }
    }

    fn kept_unlock_connections(&self) -> std::sync::MutexGuard<'_, Vec<PoolConnection<DB>>> {
        // The list stays whole whatever panicked while holding it.
        self.unlock_connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(FromRow)]
struct ApiKeyRow {
    id: String,
    name: String,
    role: String,
    hint: String,
    created_at: i64,
    created_by: Option<String>,
    revoked_at: Option<i64>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;

    fn try_from(row: ApiKeyRow) -> Result<Self, Self::Error> {
        Ok(ApiKey {
            id: ApiKeyId::from_stored(row.id),
            name: KeyName::from_stored(row.name),
            role: row
                .role
                .parse::<Role>()
                .map_err(|e| StoreError::Other(e.into()))?,
            hint: row.hint,
            created_at: instant(row.created_at)?,
            created_by: row.created_by.map(ApiKeyId::from_stored),
            revoked_at: row.revoked_at.map(instant).transpose()?,
        })
    }
}

/// Converts stored Unix milliseconds back into an instant.
pub(super) fn instant(millis: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(millis).ok_or_else(|| {
        StoreError::Other(anyhow::anyhow!("stored instant {millis} is out of range"))
    })
}

#[derive(FromRow)]
pub(super) struct SigningKeyRow {
    kid: String,
    algorithm: String,
    private_key_pem: String,
    public_jwk: String,
    created_at: i64,
    retired_at: Option<i64>,
}

impl TryFrom<SigningKeyRow> for StoredSigningKey {
    type Error = StoreError;

    fn try_from(row: SigningKeyRow) -> Result<Self, Self::Error> {
        Ok(StoredSigningKey {
            kid: row.kid,
            algorithm: row.algorithm,
            private_key_pem: row.private_key_pem.into(),
            public_jwk: row.public_jwk,
            created_at: instant(row.created_at)?,
            retired_at: row.retired_at.map(instant).transpose()?,
        })
    }
}

#[derive(FromRow)]
pub(super) struct PlanRow {
    id: String,
    name: String,
    trial_days: i64,
    allow_promotion_codes: bool,
    created_at: i64,
    updated_at: i64,
    archived_at: Option<i64>,
}

/// One row of `plan_prices` or `plan_entitlements`: a plan and one of its values.
#[derive(FromRow)]
pub(super) struct PlanValueRow {
    plan_id: String,
    value: String,
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
                    trial_days: u32::try_from(row.trial_days)
                        .map_err(|e| StoreError::Other(e.into()))?,
                    allow_promotion_codes: row.allow_promotion_codes,
                },
                created_at: instant(row.created_at)?,
                updated_at: instant(row.updated_at)?,
                archived_at: row.archived_at.map(instant).transpose()?,
            })
        })
        .collect()
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'r> PlanRow: FromRow<'r, DB::Row>,
    for<'r> PlanValueRow: FromRow<'r, DB::Row>,
{
    /// Begins a transaction that writes to the mirror, holding the mirror's lock
    /// ([`Dialect::LOCK_MIRROR`]) until it ends.
    async fn begin_mirror_write(&self) -> Result<sqlx::Transaction<'static, DB>, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        if let Some(sql) = DB::LOCK_MIRROR {
            sqlx::query::<DB>(sql).execute(&mut *tx).await?;
        }
        Ok(tx)
    }

    /// Every plan, or only the one `only` names (an empty string means every plan).
    async fn fetch_plans(&self, only: &str) -> Result<Vec<Plan>, StoreError> {
        let plans = sqlx::query_as::<DB, PlanRow>(
            "SELECT id, name, trial_days, allow_promotion_codes, created_at, updated_at, archived_at \
             FROM plans WHERE $1 = '' OR id = $1 ORDER BY id",
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

    /// The plan, other than `except`, that owns one of `prices`, if any.
    async fn price_owner(
        conn: &mut DB::Connection,
        prices: &[StripePriceId],
        except: &PlanId,
    ) -> Result<Option<(StripePriceId, PlanId)>, StoreError> {
        for price in prices {
            let owner: Option<PlanValueRow> = sqlx::query_as::<DB, PlanValueRow>(
                "SELECT plan_id, price_id AS value FROM plan_prices WHERE price_id = $1 AND plan_id <> $2",
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

#[derive(FromRow)]
pub(super) struct WebhookEventRow {
    seq: i64,
    id: String,
    #[sqlx(rename = "type")]
    kind: String,
    created: i64,
    api_version: Option<String>,
    livemode: bool,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    note: Option<String>,
    received_at: i64,
    applied_at: Option<i64>,
    next_attempt_at: Option<i64>,
    waiting_for: Option<String>,
}

impl TryFrom<WebhookEventRow> for WebhookEvent {
    type Error = StoreError;

    fn try_from(row: WebhookEventRow) -> Result<Self, Self::Error> {
        Ok(WebhookEvent {
            seq: row.seq,
            id: row.id,
            kind: row.kind,
            created: row.created,
            api_version: row.api_version,
            livemode: row.livemode,
            status: row
                .status
                .parse::<EventStatus>()
                .map_err(|e| StoreError::Other(e.into()))?,
            attempts: row.attempts,
            last_error: row.last_error,
            note: row.note,
            received_at: instant(row.received_at)?,
            applied_at: row.applied_at.map(instant).transpose()?,
            next_attempt_at: row.next_attempt_at.map(instant).transpose()?,
            waiting_for: row.waiting_for,
        })
    }
}

#[derive(FromRow)]
pub(super) struct StoredEventRow {
    id: String,
    #[sqlx(rename = "type")]
    kind: String,
    status: String,
    body: String,
    attempts: i64,
    received_at: i64,
}

/// `SELECT`s every column of an API key but its hash, followed by `$tail`.
macro_rules! select_api_keys {
    ($tail:literal) => {
        concat!(
            "SELECT id, name, role, hint, created_at, created_by, revoked_at FROM api_keys ",
            $tail
        )
    };
}

/// A reader's subscriptions and their items, through the reader's customers.
async fn reader_subscriptions<DB>(
    pool: &Pool<DB>,
    reader: &str,
) -> Result<(Vec<SubscriptionRow>, Vec<ItemRow>), StoreError>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'r> SubscriptionRow: FromRow<'r, DB::Row>,
    for<'r> ItemRow: FromRow<'r, DB::Row>,
{
    let subscriptions = sqlx::query_as::<DB, SubscriptionRow>(
        "SELECT s.id, s.customer_id, s.status, s.currency, s.current_period_start, \
             s.current_period_end, s.cancel_at_period_end, s.cancel_at, s.canceled_at, s.ended_at, \
             s.trial_end, s.past_due_since, s.version_created, s.version_source \
             FROM subscriptions s JOIN customers c ON c.id = s.customer_id \
             WHERE c.reader_id = $1 ORDER BY s.id",
    )
    .bind(reader.to_owned())
    .fetch_all(pool)
    .await?;
    let items = sqlx::query_as::<DB, ItemRow>(
        "SELECT i.subscription_id, i.item_id, i.price_id, i.quantity \
             FROM subscription_items i JOIN subscriptions s ON s.id = i.subscription_id \
             JOIN customers c ON c.id = s.customer_id \
             WHERE c.reader_id = $1 ORDER BY i.subscription_id, i.position",
    )
    .bind(reader.to_owned())
    .fetch_all(pool)
    .await?;
    Ok((subscriptions, items))
}

#[async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'r> ApiKeyRow: FromRow<'r, DB::Row>,
    for<'r> PlanRow: FromRow<'r, DB::Row>,
    for<'r> PlanValueRow: FromRow<'r, DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> WebhookEventRow: FromRow<'r, DB::Row>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'r> VersionRow: FromRow<'r, DB::Row>,
    for<'r> CustomerRow: FromRow<'r, DB::Row>,
    for<'r> (String,): FromRow<'r, DB::Row>,
    for<'r> SubscriptionVersionRow: FromRow<'r, DB::Row>,
    for<'r> PriceRow: FromRow<'r, DB::Row>,
    for<'r> InvoiceSlotRow: FromRow<'r, DB::Row>,
    for<'r> RefundSlotRow: FromRow<'r, DB::Row>,
    for<'r> HistoryRow: FromRow<'r, DB::Row>,
    for<'r> PaidInvoiceRow: FromRow<'r, DB::Row>,
    for<'r> SubscriptionRow: FromRow<'r, DB::Row>,
    for<'r> ItemRow: FromRow<'r, DB::Row>,
    for<'r> GrantRow: FromRow<'r, DB::Row>,
    for<'r> PairRow: FromRow<'r, DB::Row>,
    for<'r> StoredEventRow: FromRow<'r, DB::Row>,
    for<'r> (i64, Option<i64>, i64): FromRow<'r, DB::Row>,
    for<'r> (String, String, String, i64): FromRow<'r, DB::Row>,
    for<'r> (String, i64): FromRow<'r, DB::Row>,
    for<'r> SigningKeyRow: FromRow<'r, DB::Row>,
{
    fn backend(&self) -> Backend {
        DB::BACKEND
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        DB::migrate(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner) => StoreError::from(inner),
            other => StoreError::Other(other.into()),
        })
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        let tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        tx.rollback().await?;
        Ok(())
    }

    async fn insert_api_key(&self, key: &NewApiKey) -> Result<ApiKey, StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, role, key_hash, hint, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(key.id.as_str().to_owned())
        .bind(key.name.as_str().to_owned())
        .bind(key.role.as_str().to_owned())
        .bind(key.hash.0.to_vec())
        .bind(key.hint.clone())
        .bind(key.created_at.timestamp_millis())
        .bind(key.created_by.as_ref().map(|id| id.as_str().to_owned()))
        .execute(&self.pool)
        .await?;
        Ok(ApiKey {
            id: key.id.clone(),
            name: key.name.clone(),
            role: key.role,
            hint: key.hint.clone(),
            created_at: key.created_at,
            created_by: key.created_by.clone(),
            revoked_at: None,
        })
    }

    async fn find_api_key_by_hash(&self, hash: &KeyHash) -> Result<Option<ApiKey>, StoreError> {
        sqlx::query_as::<DB, ApiKeyRow>(select_api_keys!("WHERE key_hash = $1"))
            .bind(hash.0.to_vec())
            .fetch_optional(&self.pool)
            .await?
            .map(ApiKey::try_from)
            .transpose()
    }

    async fn list_api_keys(
        &self,
        after: Option<&ApiKeyId>,
        limit: u32,
    ) -> Result<Vec<ApiKey>, StoreError> {
        // Every id sorts after the empty string, so "no cursor" needs no second query.
        sqlx::query_as::<DB, ApiKeyRow>(select_api_keys!("WHERE id > $1 ORDER BY id LIMIT $2"))
            .bind(after.map(|id| id.as_str().to_owned()).unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(ApiKey::try_from)
            .collect()
    }

    async fn revoke_api_key(
        &self,
        id: &ApiKeyId,
        at: DateTime<Utc>,
    ) -> Result<RevokeOutcome, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let revoked =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(at.timestamp_millis())
                .bind(id.as_str().to_owned())
                .execute(&mut *tx)
                .await?;
        let outcome = if DB::rows_affected(&revoked) == 1 {
            RevokeOutcome::Revoked
        } else {
            match sqlx::query_as::<DB, ApiKeyRow>(select_api_keys!("WHERE id = $1"))
                .bind(id.as_str().to_owned())
                .fetch_optional(&mut *tx)
                .await?
            {
                Some(_) => RevokeOutcome::AlreadyRevoked,
                None => RevokeOutcome::NotFound,
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn put_plan(
        &self,
        id: &PlanId,
        spec: &PlanSpec,
        at: DateTime<Utc>,
    ) -> Result<PlanWrite, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        if let Some((price, plan)) = Self::price_owner(&mut *tx, &spec.stripe_prices, id).await? {
            return Ok(PlanWrite::PriceTaken { price, plan });
        }
        let existed = sqlx::query_as::<DB, (i64,)>("SELECT created_at FROM plans WHERE id = $1")
            .bind(id.as_str().to_owned())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        sqlx::query(
            "INSERT INTO plans (id, name, trial_days, allow_promotion_codes, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, trial_days = excluded.trial_days, \
             allow_promotion_codes = excluded.allow_promotion_codes, updated_at = excluded.updated_at",
        )
        .bind(id.as_str().to_owned())
        .bind(spec.name.clone())
        .bind(i64::from(spec.trial_days))
        .bind(spec.allow_promotion_codes)
        .bind(at.timestamp_millis())
        .execute(&mut *tx)
        .await?;
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

    async fn invoice_days(
        &self,
        from: i64,
        to: i64,
        offset: i64,
    ) -> Result<Vec<InvoiceDay>, StoreError> {
        self.invoice_days_sql(from, to, offset).await
    }

    async fn refund_days(
        &self,
        from: i64,
        to: i64,
        offset: i64,
    ) -> Result<Vec<RefundDay>, StoreError> {
        self.refund_days_sql(from, to, offset).await
    }

    async fn subscription_histories(&self, before: i64) -> Result<Vec<History>, StoreError> {
        self.histories_sql(before).await
    }

    async fn discounted_invoices(
        &self,
        before: i64,
    ) -> Result<HashMap<String, Vec<PaidInvoice>>, StoreError> {
        self.discounted_sql(before).await
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

    async fn archive_plan(
        &self,
        id: &PlanId,
        at: DateTime<Utc>,
    ) -> Result<Option<Plan>, StoreError> {
        sqlx::query("UPDATE plans SET archived_at = $1 WHERE id = $2 AND archived_at IS NULL")
            .bind(at.timestamp_millis())
            .bind(id.as_str().to_owned())
            .execute(&self.pool)
            .await?;
        self.get_plan(id).await
    }

    async fn record_webhook_event(&self, event: &NewWebhookEvent) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO webhook_events \
             (id, type, created, api_version, livemode, body, status, note, received_at, \
             next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(event.id.clone())
        .bind(event.kind.clone())
        .bind(event.created)
        .bind(event.api_version.clone())
        .bind(event.livemode)
        .bind(event.body.clone())
        .bind(event.status.as_str().to_owned())
        .bind(event.note.clone())
        .bind(event.received_at.timestamp_millis())
        .bind(event.next_attempt_at.map(|at| at.timestamp_millis()))
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&inserted) == 1)
    }

    async fn list_webhook_events(
        &self,
        filter: &EventFilter,
    ) -> Result<Vec<WebhookEvent>, StoreError> {
        sqlx::query_as::<DB, WebhookEventRow>(
            "SELECT seq, id, type, created, api_version, livemode, status, attempts, last_error, \
             note, received_at, applied_at, next_attempt_at, waiting_for FROM webhook_events \
             WHERE ($1 = '' OR status = $1) AND ($2 = '' OR type = $2) AND seq < $3 \
             AND ($5 = '' OR id = $5) ORDER BY seq DESC LIMIT $4",
        )
        .bind(
            filter
                .status
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
        )
        .bind(filter.kind.clone().unwrap_or_default())
        .bind(filter.before.unwrap_or(i64::MAX))
        .bind(i64::from(filter.limit))
        .bind(filter.id.clone().unwrap_or_default())
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(WebhookEvent::try_from)
        .collect()
    }

    async fn stored_event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        sqlx::query_as::<DB, StoredEventRow>(
            "SELECT id, type, status, body, attempts, received_at FROM webhook_events WHERE id = $1",
        )
        .bind(id.to_owned())
        .fetch_optional(&self.pool)
        .await?
        .map(|row| {
            Ok(StoredEvent {
                status: row
                    .status
                    .parse::<EventStatus>()
                    .map_err(|e| StoreError::Other(e.into()))?,
                id: row.id,
                kind: row.kind,
                body: row.body,
                attempts: row.attempts,
                received_at: instant(row.received_at)?,
            })
        })
        .transpose()
    }

    async fn apply_event(
        &self,
        id: &str,
        changes: &[Change],
        at: DateTime<Utc>,
    ) -> Result<ApplyOutcome, StoreError> {
        let mut tx = self.begin_mirror_write().await?;
        // Claiming the event first makes concurrent attempts queue on its row (or on SQLite's
        // write lock); whoever comes second finds it applied and changes nothing.
        let claimed = sqlx::query(
            "UPDATE webhook_events SET status = 'applied', applied_at = $1, attempts = attempts + 1, \
             last_error = NULL, waiting_for = NULL, next_attempt_at = NULL \
             WHERE id = $2 AND status IN ('pending', 'failed')",
        )
        .bind(at.timestamp_millis())
        .bind(id.to_owned())
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&claimed) == 0 {
            tx.rollback().await?;
            return Ok(ApplyOutcome::NotPending);
        }
        let created =
            sqlx::query_as::<DB, (i64,)>("SELECT created FROM webhook_events WHERE id = $1")
                .bind(id.to_owned())
                .fetch_one(&mut *tx)
                .await?
                .0;
        let version = Version {
            created,
            source: id.to_owned(),
        };
        let mut report = ApplyReport::default();
        for change in changes {
            if let Step::Waiting(customer_id) =
                Self::apply_change(&mut tx, change, &version, at, &mut report).await?
            {
                tx.rollback().await?;
                return Ok(ApplyOutcome::Waiting { customer_id });
            }
        }
        let mut notes = report.notes.clone();
        if !report.unattributed_refunds.is_empty() {
            notes.push(format!(
                "refunds not attributed to an invoice yet: {}",
                report.unattributed_refunds.join(", ")
            ));
        }
        if !report.foreign_prices.is_empty() {
            notes.push(format!(
                "prices in no plan, granting nothing: {}",
                report.foreign_prices.join(", ")
            ));
        }
        sqlx::query("UPDATE webhook_events SET note = $1 WHERE id = $2")
            .bind((!notes.is_empty()).then(|| notes.join("; ")))
            .bind(id.to_owned())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ApplyOutcome::Applied(report))
    }

    async fn fail_event(
        &self,
        id: &str,
        failure: &EventFailure,
        _at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhook_events SET status = 'failed', attempts = attempts + 1, last_error = $1, \
             waiting_for = $2, next_attempt_at = $3 WHERE id = $4 AND status IN ('pending', 'failed')",
        )
        .bind(failure.error.clone())
        .bind(failure.waiting_for.clone())
        .bind(failure.next_attempt_at.map(|t| t.timestamp_millis()))
        .bind(id.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn claim_due_events(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        // The outer conditions are checked again on each row as it is updated: when two
        // instances pick the same rows, PostgreSQL makes the second wait for the first and then
        // finds the rows no longer due; SQLite runs one writer at a time.
        let mut claimed = sqlx::query_as::<DB, (String, i64)>(
            "UPDATE webhook_events SET next_attempt_at = $1 \
             WHERE id IN (SELECT id FROM webhook_events WHERE next_attempt_at IS NOT NULL \
             AND next_attempt_at <= $2 AND status IN ('pending', 'failed') \
             ORDER BY next_attempt_at, seq LIMIT $3) \
             AND next_attempt_at <= $2 AND status IN ('pending', 'failed') \
             RETURNING id, seq",
        )
        .bind(lease_until.timestamp_millis())
        .bind(now.timestamp_millis())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        claimed.sort_unstable_by_key(|(_, seq)| *seq);
        Ok(claimed.into_iter().map(|(id, _)| id).collect())
    }

    async fn events_waiting_for(&self, customer_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_as::<DB, (String,)>(
            "SELECT id FROM webhook_events WHERE waiting_for = $1 AND status = 'failed' \
             ORDER BY created, id",
        )
        .bind(customer_id.to_owned())
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect())
    }

    async fn apply_sync(
        &self,
        changes: &[Change],
        at: DateTime<Utc>,
    ) -> Result<Vec<ApplyOutcome>, StoreError> {
        let version = Version::sync(at);
        let mut outcomes = Vec::with_capacity(changes.len());
        for change in changes {
            let mut tx = self.begin_mirror_write().await?;
            let mut report = ApplyReport::default();
            let outcome =
                match Self::apply_change(&mut tx, change, &version, at, &mut report).await? {
                    Step::Done => ApplyOutcome::Applied(report),
                    Step::Waiting(customer_id) => ApplyOutcome::Waiting { customer_id },
                };
            tx.commit().await?;
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn reader(&self, id: &ReaderId) -> Result<ReaderRecord, StoreError> {
        let reader = id.as_str().to_owned();
        let customers = sqlx::query_as::<DB, CustomerRow>(
            "SELECT id, reader_id, deleted_at FROM customers WHERE reader_id = $1 \
             ORDER BY updated_at, id",
        )
        .bind(reader.clone())
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|row| {
            Ok(CustomerLink {
                id: row.id,
                deleted_at: row.deleted_at.map(instant).transpose()?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        // Subscriptions reach a reader only through a customer: most readers have none.
        let (subscriptions, items) = if customers.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            reader_subscriptions::<DB>(&self.pool, &reader).await?
        };
        let grants = sqlx::query_as::<DB, GrantRow>(
            "SELECT id, reader_id, expires_at, reason, created_at, created_by FROM grants \
             WHERE reader_id = $1 AND revoked_at IS NULL ORDER BY id",
        )
        .bind(reader.clone())
        .fetch_all(&self.pool)
        .await?;
        let entitlements = if grants.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as::<DB, PairRow>(
                "SELECT e.grant_id AS owner, e.entitlement AS value FROM grant_entitlements e \
                 JOIN grants g ON g.id = e.grant_id WHERE g.reader_id = $1 \
                 AND g.revoked_at IS NULL ORDER BY e.grant_id, e.entitlement",
            )
            .bind(reader)
            .fetch_all(&self.pool)
            .await?
        };
        Ok(ReaderRecord {
            customers,
            subscriptions: assemble_subscriptions(subscriptions, items)?,
            grants: assemble_grants(grants, entitlements)?,
        })
    }

    async fn insert_grant(&self, grant: &NewGrant) -> Result<Grant, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        sqlx::query(
            "INSERT INTO grants (id, reader_id, expires_at, reason, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(grant.id.as_str().to_owned())
        .bind(grant.reader_id.as_str().to_owned())
        .bind(grant.expires_at.timestamp_millis())
        .bind(grant.reason.clone())
        .bind(grant.created_at.timestamp_millis())
        .bind(grant.created_by.clone())
        .execute(&mut *tx)
        .await?;
        for entitlement in &grant.entitlements {
            sqlx::query("INSERT INTO grant_entitlements (grant_id, entitlement) VALUES ($1, $2)")
                .bind(grant.id.as_str().to_owned())
                .bind(entitlement.as_str().to_owned())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Grant {
            id: grant.id.clone(),
            reader_id: grant.reader_id.clone(),
            entitlements: grant.entitlements.clone(),
            expires_at: instant(grant.expires_at.timestamp_millis())?,
            reason: grant.reason.clone(),
            created_at: instant(grant.created_at.timestamp_millis())?,
            created_by: grant.created_by.clone(),
        })
    }

    async fn revoke_grant(
        &self,
        reader: &ReaderId,
        id: &GrantId,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let revoked = sqlx::query(
            "UPDATE grants SET revoked_at = $1 WHERE id = $2 AND reader_id = $3 \
             AND revoked_at IS NULL",
        )
        .bind(at.timestamp_millis())
        .bind(id.as_str().to_owned())
        .bind(reader.as_str().to_owned())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&revoked) == 1)
    }

    async fn meter_usage(
        &self,
        subject: &MeterSubject,
        article: Option<&ArticleId>,
        window: &Window,
    ) -> Result<Usage, StoreError> {
        let mut conn = self.pool.acquire().await?;
        meter::usage::<DB>(&mut conn, subject, article, window).await
    }

    async fn unlock(&self, requests: &[UnlockRequest]) -> Result<Vec<Unlock>, StoreError> {
        if DB::UNLOCKS_IN_ONE_STATEMENT {
            let kept = self.kept_unlock_connections().pop();
            let (mut conn, was_kept) = match kept {
                Some(conn) => (conn, true),
                None => (self.pool.acquire().await?, false),
            };
            let mut answers = DB::unlock_batch(&mut conn, requests).await;
            if was_kept && matches!(answers, Err(StoreError::Unavailable(_))) {
                // A kept connection can die while it waits (the database restarted): once more
                // on a fresh one, which the pool checks. Safe to repeat: an unlock that did
                // commit is found again and answered as already unlocked, never counted twice.
                conn.close_on_drop();
                drop(conn);
                conn = self.pool.acquire().await?;
                answers = DB::unlock_batch(&mut conn, requests).await;
            }
            if answers.is_ok() {
                self.kept_unlock_connections().push(conn);
            } else {
                conn.close_on_drop();
            }
            return answers;
        }
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let answers = meter::unlock::<DB>(&mut tx, requests).await?;
        tx.commit().await?;
        Ok(answers)
    }

    async fn merge_meter(
        &self,
        device: &MeterSubject,
        device_window: &Window,
        reader: &MeterSubject,
        reader_window: &Window,
        limit: u32,
    ) -> Result<MergeReport, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let report =
            meter::merge::<DB>(&mut tx, device, device_window, reader, reader_window, limit)
                .await?;
        tx.commit().await?;
        Ok(report)
    }

    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        sqlx::query_as::<DB, SigningKeyRow>(
            "SELECT kid, algorithm, private_key_pem, public_jwk, created_at, retired_at \
             FROM signing_keys ORDER BY created_at DESC, kid",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(StoredSigningKey::try_from)
        .collect()
    }

    async fn ensure_signing_key(
        &self,
        key: &StoredSigningKey,
    ) -> Result<StoredSigningKey, StoreError> {
        // The unique `is_current` column lets exactly one of several instances starting at once
        // store its key; the others read the winner's.
        sqlx::query(
            "INSERT INTO signing_keys \
             (kid, algorithm, private_key_pem, public_jwk, created_at, is_current) \
             SELECT $1, $2, $3, $4, $5, 1 \
             WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE is_current = 1) \
             ON CONFLICT DO NOTHING",
        )
        .bind(key.kid.clone())
        .bind(key.algorithm.clone())
        .bind(key.private_key_pem.expose_secret().to_owned())
        .bind(key.public_jwk.clone())
        .bind(key.created_at.timestamp_millis())
        .execute(&self.pool)
        .await?;
        sqlx::query_as::<DB, SigningKeyRow>(
            "SELECT kid, algorithm, private_key_pem, public_jwk, created_at, retired_at \
             FROM signing_keys WHERE is_current = 1",
        )
        .fetch_one(&self.pool)
        .await?
        .try_into()
    }

    async fn rotate_signing_key(
        &self,
        key: &StoredSigningKey,
        at: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let retired = sqlx::query_as::<DB, (String,)>(
            "UPDATE signing_keys SET is_current = NULL, retired_at = $1 WHERE is_current = 1 \
             RETURNING kid",
        )
        .bind(at.timestamp_millis())
        .fetch_optional(&mut *tx)
        .await?
        .map(|(kid,)| kid);
        sqlx::query(
            "INSERT INTO signing_keys \
             (kid, algorithm, private_key_pem, public_jwk, created_at, is_current) \
             VALUES ($1, $2, $3, $4, $5, 1)",
        )
        .bind(key.kid.clone())
        .bind(key.algorithm.clone())
        .bind(key.private_key_pem.expose_secret().to_owned())
        .bind(key.public_jwk.clone())
        .bind(key.created_at.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(retired)
    }

    async fn close(&self) {
        for task in &self.background {
            task.abort();
        }
        // The pool waits for every connection to come back before it closes.
        self.kept_unlock_connections().clear();
        self.pool.close().await;
    }
}
