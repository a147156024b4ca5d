//! Gift subscriptions: purchases recorded from completed gift checkouts (inside the mirror's
//! transaction for the event), the buyer's list, a code's seal for a reveal, and redemption,
//! which marks the gift redeemed, drops the seal and stores the grant in one transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use super::columns::instant;
use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
use super::mirror::ApplyReport;
use crate::domain::{
    GiftPurchase, GiftSubscription, GiftSubscriptionId, Grant, GrantId, NewGrant, PlanId, ReaderId,
};

/// What a redemption came to.
#[derive(Debug, Clone)]
pub enum Redeemed {
    /// Redeemed now: the grant made.
    Granted(Grant),
    /// This reader redeemed it before: the grant then made.
    AlreadyYours(GrantId),
    /// Another reader redeemed it.
    Taken,
    /// It expired unredeemed.
    Expired,
    /// No gift has this code.
    NotFound,
}

/// Keeping gift subscriptions.
#[async_trait]
pub trait GiftSubscriptionStore: Send + Sync {
    /// The gifts `buyer` bought, newest first.
    async fn gift_subscriptions_of(
        &self,
        buyer: &ReaderId,
    ) -> Result<Vec<GiftSubscription>, StoreError>;

    /// The gift `id` and its sealed code (`None` once redeemed).
    async fn gift_subscription(
        &self,
        id: &GiftSubscriptionId,
    ) -> Result<Option<(GiftSubscription, Option<Vec<u8>>)>, StoreError>;

    /// The gift whose code hashes to `hash`.
    async fn gift_subscription_by_code(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<GiftSubscription>, StoreError>;

    /// Redeems the gift whose code hashes to `hash` for `grant`'s reader at `now`, storing
    /// `grant` if it is redeemed now. Concurrent redemptions of one code make one grant.
    async fn redeem_gift_subscription(
        &self,
        hash: &[u8; 32],
        grant: &NewGrant,
        now: DateTime<Utc>,
    ) -> Result<Redeemed, StoreError>;
}

#[derive(FromRow)]
struct GiftRow {
    id: String,
    buyer: String,
    plan_id: String,
    months: i64,
    amount_total: Option<i64>,
    currency: Option<String>,
    purchased_at: i64,
    expires_at: i64,
    redeemed_by: Option<String>,
    redeemed_at: Option<i64>,
    grant_id: Option<String>,
    code_sealed: Option<Vec<u8>>,
}

const COLUMNS: &str = "id, buyer, plan_id, months, amount_total, currency, purchased_at, \
                       expires_at, redeemed_by, redeemed_at, grant_id, code_sealed";

impl GiftRow {
    fn into_gift(self) -> Result<(GiftSubscription, Option<Vec<u8>>), StoreError> {
        let redeemed = match (self.redeemed_by, self.redeemed_at, self.grant_id) {
            (Some(reader), Some(at), Some(grant)) => Some((
                ReaderId::from_stored(reader),
                instant(at)?,
                GrantId::from_stored(grant),
            )),
            _ => None,
        };
        Ok((
            GiftSubscription {
                id: GiftSubscriptionId::from_stored(self.id),
                buyer: ReaderId::from_stored(self.buyer),
                plan_id: PlanId::from_stored(self.plan_id),
                months: u32::try_from(self.months).map_err(StoreError::other)?,
                amount_total: self.amount_total,
                currency: self.currency,
                purchased_at: instant(self.purchased_at)?,
                expires_at: instant(self.expires_at)?,
                redeemed,
            },
            self.code_sealed,
        ))
    }
}

#[sql_bounds]
impl<DB: Dialect> SqlStore<DB> {
    /// Records a purchase whose code was issued, once per Checkout Session: a redelivered or
    /// replayed event changes nothing.
    pub(super) async fn put_gift_purchase(
        conn: &mut DB::Connection,
        purchase: &GiftPurchase,
        report: &mut ApplyReport,
    ) -> Result<(), StoreError> {
        let Some(issued) = &purchase.issued else {
            return Err(StoreError::Other(anyhow::anyhow!(
                "gift purchase {} reached the store without a code",
                purchase.checkout_session
            )));
        };
        let written = sqlx::query(
            "INSERT INTO gift_subscriptions (id, checkout_session, buyer, plan_id, months, \
             code_hash, code_sealed, amount_total, currency, purchased_at, expires_at, amount_tax) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (checkout_session) DO NOTHING",
        )
        .bind(issued.id.as_str().to_owned())
        .bind(purchase.checkout_session.clone())
        .bind(purchase.buyer.as_str().to_owned())
        .bind(purchase.plan_id.as_str().to_owned())
        .bind(i64::from(issued.months))
        .bind(issued.hash.to_vec())
        .bind(issued.sealed.clone())
        .bind(purchase.amount_total)
        .bind(purchase.currency.clone())
        .bind(purchase.purchased_at.timestamp_millis())
        .bind(issued.expires_at.timestamp_millis())
        .bind(purchase.amount_tax)
        .execute(&mut *conn)
        .await?;
        if DB::rows_affected(&written) == 1 {
            report.changed += 1;
        } else {
            report.notes.push(format!(
                "the gift bought in {} was recorded before",
                purchase.checkout_session
            ));
        }
        Ok(())
    }
}

#[sql_bounds]
#[async_trait]
impl<DB: Dialect> GiftSubscriptionStore for SqlStore<DB> {
    async fn gift_subscriptions_of(
        &self,
        buyer: &ReaderId,
    ) -> Result<Vec<GiftSubscription>, StoreError> {
        let rows = sqlx::query_as::<DB, GiftRow>(&format!(
            "SELECT {COLUMNS} FROM gift_subscriptions WHERE buyer = $1 \
             ORDER BY purchased_at DESC, id DESC"
        ))
        .bind(buyer.as_str().to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| row.into_gift().map(|(gift, _)| gift))
            .collect()
    }

    async fn gift_subscription(
        &self,
        id: &GiftSubscriptionId,
    ) -> Result<Option<(GiftSubscription, Option<Vec<u8>>)>, StoreError> {
        sqlx::query_as::<DB, GiftRow>(&format!(
            "SELECT {COLUMNS} FROM gift_subscriptions WHERE id = $1"
        ))
        .bind(id.as_str().to_owned())
        .fetch_optional(&self.pool)
        .await?
        .map(GiftRow::into_gift)
        .transpose()
    }

    async fn gift_subscription_by_code(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<GiftSubscription>, StoreError> {
        sqlx::query_as::<DB, GiftRow>(&format!(
            "SELECT {COLUMNS} FROM gift_subscriptions WHERE code_hash = $1"
        ))
        .bind(hash.to_vec())
        .fetch_optional(&self.pool)
        .await?
        .map(|row| row.into_gift().map(|(gift, _)| gift))
        .transpose()
    }

    async fn redeem_gift_subscription(
        &self,
        hash: &[u8; 32],
        grant: &NewGrant,
        now: DateTime<Utc>,
    ) -> Result<Redeemed, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        // One statement claims the code: concurrent redemptions queue on its row, and whoever
        // comes second finds it redeemed.
        let claimed = sqlx::query(
            "UPDATE gift_subscriptions SET redeemed_by = $1, redeemed_at = $2, grant_id = $3, \
             code_sealed = NULL \
             WHERE code_hash = $4 AND redeemed_at IS NULL AND expires_at > $2",
        )
        .bind(grant.reader_id.as_str().to_owned())
        .bind(now.timestamp_millis())
        .bind(grant.id.as_str().to_owned())
        .bind(hash.to_vec())
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&claimed) == 1 {
            let stored = Self::insert_grant_on(&mut *tx, grant).await?;
            tx.commit().await?;
            return Ok(Redeemed::Granted(stored));
        }
        tx.rollback().await?;
        let Some(gift) = self.gift_subscription_by_code(hash).await? else {
            return Ok(Redeemed::NotFound);
        };
        Ok(match gift.redeemed {
            Some((reader, _, grant_id)) if reader == grant.reader_id => {
                Redeemed::AlreadyYours(grant_id)
            }
            Some(_) => Redeemed::Taken,
            None => Redeemed::Expired,
        })
    }
}
