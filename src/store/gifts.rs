//! Gift links: made within a giver's allowance (counted and written under the giver's lock, so
//! concurrent requests never make more than it allows), looked up by their code's hash, and
//! redeemed against a counter that one statement checks and increments.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use super::columns::instant;
use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
use crate::domain::report_inputs::{GiftActivity, GiftRecipient};
use crate::domain::{ArticleId, GiftId, GiftLink, ReaderId};

/// What making a gift link came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GiftWrite {
    /// Made; the giver has made `used` links in the window, this one included.
    Made {
        /// Links made in the window.
        used: u32,
    },
    /// The giver has made their allowance of links in the window already.
    AllowanceExhausted,
}

/// What redeeming a gift link came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redemption {
    /// It opens the article for the recipient: `new` when this is their first time.
    Opened {
        /// Whether this recipient is new to the link.
        new: bool,
    },
    /// It has opened the article for as many people as it may, and not for this one.
    Full,
}

/// Gift links and who they opened articles for.
#[async_trait]
pub trait GiftStore: Send + Sync {
    /// Stores `link` (with its code's hash) unless its giver has made `allowance` links at or
    /// after `window_start` already; the count and the write hold the giver's lock.
    async fn create_gift_link(
        &self,
        link: &GiftLink,
        code_hash: &[u8; 32],
        window_start: DateTime<Utc>,
        allowance: u32,
    ) -> Result<GiftWrite, StoreError>;

    /// How many links `giver` has made at or after `window_start`.
    async fn gift_links_made(
        &self,
        giver: &ReaderId,
        window_start: DateTime<Utc>,
    ) -> Result<u32, StoreError>;

    /// The link whose code hashes to `code_hash`.
    async fn gift_by_code(&self, code_hash: &[u8; 32]) -> Result<Option<GiftLink>, StoreError>;

    /// Opens the link's article for `recipient` unless the link has reached its recipients
    /// (one who has it already keeps it).
    async fn redeem_gift(
        &self,
        id: &GiftId,
        recipient: &str,
        at: DateTime<Utc>,
    ) -> Result<Redemption, StoreError>;

    /// Revokes `giver`'s link `id` from `at` on; `false` if they have no such link.
    async fn revoke_gift(
        &self,
        id: &GiftId,
        giver: &ReaderId,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Links made, redemptions and first gifts in `[from, to)`, for the gift report.
    async fn gift_activity(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<GiftActivity, StoreError>;
}

#[derive(FromRow)]
struct GiftRow {
    id: String,
    giver: String,
    article_id: String,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    max_recipients: i64,
    recipients: i64,
}

#[derive(FromRow)]
struct CountRow {
    n: i64,
}

#[derive(FromRow)]
struct InstantRow {
    at: i64,
}

#[derive(FromRow)]
struct RedemptionRow {
    recipient: String,
    at: i64,
}

#[derive(FromRow)]
struct FirstGiftRow {
    at: i64,
    subscribed: i64,
}

/// Thirty days in milliseconds: how soon after a first gift a subscription counts for it.
const CONVERSION_WINDOW_MS: i64 = 30 * 24 * 3600 * 1000;

fn count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

impl TryFrom<GiftRow> for GiftLink {
    type Error = StoreError;

    fn try_from(row: GiftRow) -> Result<Self, StoreError> {
        Ok(GiftLink {
            id: GiftId::from_stored(row.id),
            giver: ReaderId::from_stored(row.giver),
            article: ArticleId::from_stored(row.article_id),
            created_at: instant(row.created_at)?,
            expires_at: instant(row.expires_at)?,
            revoked_at: row.revoked_at.map(instant).transpose()?,
            max_recipients: count(row.max_recipients),
            recipients: count(row.recipients),
        })
    }
}

#[sql_bounds]
impl<DB: Dialect> SqlStore<DB> {
    /// Links made by `giver` at or after `since`, read on `conn`.
    async fn count_gift_links(
        conn: &mut DB::Connection,
        giver: &ReaderId,
        since: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        let row = sqlx::query_as::<DB, CountRow>(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM gift_links \
             WHERE giver = $1 AND created_at >= $2",
        )
        .bind(giver.as_str().to_owned())
        .bind(since.timestamp_millis())
        .fetch_one(&mut *conn)
        .await?;
        Ok(count(row.n))
    }
}

#[sql_bounds]
#[async_trait]
impl<DB: Dialect> GiftStore for SqlStore<DB> {
    async fn create_gift_link(
        &self,
        link: &GiftLink,
        code_hash: &[u8; 32],
        window_start: DateTime<Utc>,
        allowance: u32,
    ) -> Result<GiftWrite, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        if let Some(sql) = DB::LOCK_GIVER {
            sqlx::query::<DB>(sql)
                .bind(link.giver.as_str().to_owned())
                .execute(&mut *tx)
                .await?;
        }
        let used = Self::count_gift_links(&mut tx, &link.giver, window_start).await?;
        if used >= allowance {
            tx.rollback().await?;
            return Ok(GiftWrite::AllowanceExhausted);
        }
        sqlx::query(
            "INSERT INTO gift_links (id, code_hash, giver, article_id, created_at, expires_at, \
             max_recipients) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(link.id.as_str().to_owned())
        .bind(code_hash.to_vec())
        .bind(link.giver.as_str().to_owned())
        .bind(link.article.as_str().to_owned())
        .bind(link.created_at.timestamp_millis())
        .bind(link.expires_at.timestamp_millis())
        .bind(i64::from(link.max_recipients))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(GiftWrite::Made { used: used + 1 })
    }

    async fn gift_links_made(
        &self,
        giver: &ReaderId,
        window_start: DateTime<Utc>,
    ) -> Result<u32, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Self::count_gift_links(&mut conn, giver, window_start).await
    }

    async fn gift_by_code(&self, code_hash: &[u8; 32]) -> Result<Option<GiftLink>, StoreError> {
        sqlx::query_as::<DB, GiftRow>(
            "SELECT id, giver, article_id, created_at, expires_at, revoked_at, max_recipients, \
             recipients FROM gift_links WHERE code_hash = $1",
        )
        .bind(code_hash.to_vec())
        .fetch_optional(&self.pool)
        .await?
        .map(GiftLink::try_from)
        .transpose()
    }

    async fn redeem_gift(
        &self,
        id: &GiftId,
        recipient: &str,
        at: DateTime<Utc>,
    ) -> Result<Redemption, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        // The recipient first: a second redemption by the same one waits on the primary key
        // until the first ends, and then inserts nothing.
        let inserted = sqlx::query(
            "INSERT INTO gift_redemptions (gift_id, recipient, first_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id.as_str().to_owned())
        .bind(recipient.to_owned())
        .bind(at.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&inserted) == 0 {
            tx.rollback().await?;
            return Ok(Redemption::Opened { new: false });
        }
        // Then the count: one statement checks and increments it, so concurrent redemptions
        // queue on the link's row and never exceed its recipients.
        let counted = sqlx::query(
            "UPDATE gift_links SET recipients = recipients + 1 WHERE id = $1 \
             AND recipients < max_recipients",
        )
        .bind(id.as_str().to_owned())
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&counted) == 0 {
            tx.rollback().await?;
            return Ok(Redemption::Full);
        }
        tx.commit().await?;
        Ok(Redemption::Opened { new: true })
    }

    async fn revoke_gift(
        &self,
        id: &GiftId,
        giver: &ReaderId,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let revoked = sqlx::query(
            "UPDATE gift_links SET revoked_at = $1 WHERE id = $2 AND giver = $3 \
             AND revoked_at IS NULL",
        )
        .bind(at.timestamp_millis())
        .bind(id.as_str().to_owned())
        .bind(giver.as_str().to_owned())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&revoked) == 1)
    }

    async fn gift_activity(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<GiftActivity, StoreError> {
        let (from, to) = (from.timestamp_millis(), to.timestamp_millis());
        let links = sqlx::query_as::<DB, InstantRow>(
            "SELECT created_at AS at FROM gift_links WHERE created_at >= $1 AND created_at < $2",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let redemptions = sqlx::query_as::<DB, RedemptionRow>(
            "SELECT recipient, first_at AS at FROM gift_redemptions \
             WHERE first_at >= $1 AND first_at < $2",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        // A recipient's first gift ever, and whether a subscription of a customer linked to
        // them (as a registered reader) began within 30 days of it: its first snapshot in the
        // mirror's history, whose times are Stripe's Unix seconds.
        let first_gifts = sqlx::query_as::<DB, FirstGiftRow>(
            "SELECT f.first_at AS at, CAST(CASE WHEN EXISTS (SELECT 1 FROM customers c \
             JOIN (SELECT s.customer_id, MIN(h.version_created) AS began FROM subscriptions s \
             JOIN subscription_history h ON h.subscription_id = s.id \
             GROUP BY s.id, s.customer_id) b ON b.customer_id = c.id \
             WHERE f.recipient = 'registered:' || c.reader_id \
             AND b.began * 1000 >= f.first_at AND b.began * 1000 < f.first_at + $3) \
             THEN 1 ELSE 0 END AS BIGINT) AS subscribed \
             FROM (SELECT recipient, MIN(first_at) AS first_at FROM gift_redemptions \
             GROUP BY recipient) f WHERE f.first_at >= $1 AND f.first_at < $2",
        )
        .bind(from)
        .bind(to)
        .bind(CONVERSION_WINDOW_MS)
        .fetch_all(&self.pool)
        .await?;
        Ok(GiftActivity {
            links: links
                .into_iter()
                .map(|row| instant(row.at))
                .collect::<Result<_, _>>()?,
            redemptions: redemptions
                .into_iter()
                .map(|row| Ok((row.recipient, instant(row.at)?)))
                .collect::<Result<_, StoreError>>()?,
            first_gifts: first_gifts
                .into_iter()
                .map(|row| {
                    Ok(GiftRecipient {
                        first_at: instant(row.at)?,
                        subscribed_within_30_days: row.subscribed == 1,
                    })
                })
                .collect::<Result<_, StoreError>>()?,
        })
    }
}
