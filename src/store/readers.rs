//! A reader as the mirror knows them: their Stripe customers, subscriptions, grants, licence
//! seats and team seats, read in a handful of queries.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use super::columns::{instant, stripe_time};
use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
use crate::domain::{
    Grant, Licence, ReaderId, SeatRole, StripePriceId, Subscription, SubscriptionItem,
    SubscriptionStatus, TeamSeat, Teams, Version,
};

/// A Stripe customer linked to a reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerLink {
    /// `cus_...`.
    pub id: String,
    /// When Stripe deleted the customer, if it did.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Everything the mirror holds about one reader.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReaderRecord {
    /// Their Stripe customers, oldest link first.
    pub customers: Vec<CustomerLink>,
    /// Their subscriptions, by id.
    pub subscriptions: Vec<Subscription>,
    /// Their grants that were not revoked, expired ones included, by id.
    pub grants: Vec<Grant>,
    /// The licences in which they hold a seat, in force or not, by id.
    pub licences: Vec<Licence>,
    /// Their seats in teams billed to others, and their own subscriptions whose team moved to
    /// another owner.
    pub teams: Teams,
}

impl ReaderRecord {
    /// The customer checkout and the billing portal use: the latest link Stripe has not deleted.
    pub fn current_customer(&self) -> Option<&str> {
        self.customers
            .iter()
            .rev()
            .find(|c| c.deleted_at.is_none())
            .map(|c| c.id.as_str())
    }
}

/// Reading a reader back.
#[async_trait]
pub trait ReaderStore: Send + Sync {
    /// Everything the mirror holds about a reader.
    async fn reader(&self, id: &ReaderId) -> Result<ReaderRecord, StoreError>;
}

/// A customer (`kind` `customer`), a licence seat (`licence`), a team seat (`seat`, the id being
/// the team's subscription) or a team owned (`team`) of a reader.
#[derive(FromRow)]
struct LinkRow {
    kind: String,
    id: String,
    deleted_at: Option<i64>,
    /// A team's owner.
    owner: Option<String>,
    /// How many members joined a team before this one.
    rank: Option<i64>,
}

#[derive(FromRow)]
struct SubscriptionRow {
    id: String,
    customer_id: String,
    status: String,
    currency: Option<String>,
    current_period_start: Option<i64>,
    current_period_end: Option<i64>,
    cancel_at_period_end: bool,
    cancel_at: Option<i64>,
    canceled_at: Option<i64>,
    ended_at: Option<i64>,
    trial_end: Option<i64>,
    past_due_since: Option<i64>,
    version_created: i64,
    version_source: String,
    /// The owner of the subscription's team, when it has one.
    team_owner: Option<String>,
}

#[derive(FromRow)]
struct ItemRow {
    subscription_id: String,
    item_id: String,
    price_id: String,
    quantity: i64,
}

/// Puts subscription rows and their items (both sorted by subscription id) together.
fn assemble_subscriptions(
    rows: Vec<SubscriptionRow>,
    items: Vec<ItemRow>,
) -> Result<Vec<Subscription>, StoreError> {
    let mut items = items.into_iter().peekable();
    rows.into_iter()
        .map(|row| {
            let mut own = Vec::new();
            while let Some(item) = items.next_if(|i| i.subscription_id == row.id) {
                own.push(SubscriptionItem {
                    id: item.item_id,
                    price: StripePriceId::from_stored(item.price_id),
                    quantity: item.quantity,
                });
            }
            Ok(Subscription {
                status: row
                    .status
                    .parse::<SubscriptionStatus>()
                    .map_err(StoreError::other)?,
                id: row.id,
                customer_id: row.customer_id,
                items: own,
                currency: row.currency,
                current_period_start: stripe_time(row.current_period_start),
                current_period_end: stripe_time(row.current_period_end),
                cancel_at_period_end: row.cancel_at_period_end,
                cancel_at: stripe_time(row.cancel_at),
                canceled_at: stripe_time(row.canceled_at),
                ended_at: stripe_time(row.ended_at),
                trial_end: stripe_time(row.trial_end),
                past_due_since: stripe_time(row.past_due_since),
                version: Version {
                    created: row.version_created,
                    source: row.version_source,
                },
            })
        })
        .collect()
}

/// Whose subscriptions to read.
#[derive(Clone, Copy)]
enum Whose {
    /// A reader's, through their customers.
    Reader,
    /// The one with this id (a team's).
    Id,
}

#[sql_bounds]
impl<DB: Dialect> SqlStore<DB> {
    /// Subscriptions and their items: a reader's (through the reader's customers), or one by id.
    async fn subscription_rows(
        &self,
        whose: Whose,
        key: &str,
    ) -> Result<(Vec<SubscriptionRow>, Vec<ItemRow>), StoreError> {
        let (subscriptions, items) = match whose {
            Whose::Reader => (
                "SELECT s.id, s.customer_id, s.status, s.currency, s.current_period_start, \
                 s.current_period_end, s.cancel_at_period_end, s.cancel_at, s.canceled_at, \
                 s.ended_at, s.trial_end, s.past_due_since, s.version_created, s.version_source, \
                 t.owner_id AS team_owner \
                 FROM subscriptions s JOIN customers c ON c.id = s.customer_id \
                 LEFT JOIN teams t ON t.subscription_id = s.id \
                 WHERE c.reader_id = $1 ORDER BY s.id",
                "SELECT i.subscription_id, i.item_id, i.price_id, i.quantity \
                 FROM subscription_items i JOIN subscriptions s ON s.id = i.subscription_id \
                 JOIN customers c ON c.id = s.customer_id \
                 WHERE c.reader_id = $1 ORDER BY i.subscription_id, i.position",
            ),
            Whose::Id => (
                "SELECT s.id, s.customer_id, s.status, s.currency, s.current_period_start, \
                 s.current_period_end, s.cancel_at_period_end, s.cancel_at, s.canceled_at, \
                 s.ended_at, s.trial_end, s.past_due_since, s.version_created, s.version_source, \
                 NULL AS team_owner FROM subscriptions s WHERE s.id = $1",
                "SELECT subscription_id, item_id, price_id, quantity FROM subscription_items \
                 WHERE subscription_id = $1 ORDER BY position",
            ),
        };
        let subscriptions = sqlx::query_as::<DB, SubscriptionRow>(subscriptions)
            .bind(key.to_owned())
            .fetch_all(&self.pool)
            .await?;
        let items = sqlx::query_as::<DB, ItemRow>(items)
            .bind(key.to_owned())
            .fetch_all(&self.pool)
            .await?;
        Ok((subscriptions, items))
    }

    /// The subscription `id`, if the mirror has it.
    pub(in crate::store) async fn subscription_with_id(
        &self,
        id: &str,
    ) -> Result<Option<Subscription>, StoreError> {
        let (rows, items) = self.subscription_rows(Whose::Id, id).await?;
        Ok(assemble_subscriptions(rows, items)?.pop())
    }

    /// The reader's seats in teams billed to others, from their `seat` and `team` links;
    /// `own` are the reader's own subscriptions, whose teams they hold as subscriber.
    async fn team_seats(
        &self,
        links: Vec<LinkRow>,
        own: &[Subscription],
    ) -> Result<Vec<TeamSeat>, StoreError> {
        let mut seats = Vec::new();
        for link in links {
            let mine = own.iter().find(|sub| sub.id == link.id);
            // A team of their own subscription they hold as its subscriber already; a seat in it
            // (after they moved its ownership away) they hold as any member does.
            if mine.is_some() && link.kind == "team" {
                continue;
            }
            let subscription = match mine {
                Some(subscription) => subscription.clone(),
                None => match self.subscription_with_id(&link.id).await? {
                    Some(subscription) => subscription,
                    None => continue,
                },
            };
            let (role, rank) = if link.kind == "team" {
                (SeatRole::Owner, 0)
            } else {
                (
                    SeatRole::Member,
                    u32::try_from(link.rank.unwrap_or(0)).map_err(StoreError::other)?,
                )
            };
            seats.push(TeamSeat {
                subscription,
                owner_id: ReaderId::from_stored(link.owner.unwrap_or_default()),
                role,
                rank,
            });
        }
        Ok(seats)
    }
}

#[sql_bounds]
#[async_trait]
impl<DB: Dialect> ReaderStore for SqlStore<DB> {
    async fn reader(&self, id: &ReaderId) -> Result<ReaderRecord, StoreError> {
        let reader = id.as_str().to_owned();
        // The reader's customers, licence seats, teams and whether they have grants, in one
        // round trip: most readers have none of them, and this read is on the paywall's path
        // whenever the cache misses. (The casts give PostgreSQL the columns' types, which it
        // takes from the first branch.)
        let links = sqlx::query_as::<DB, LinkRow>(
            "SELECT 'customer' AS kind, id, deleted_at, updated_at AS ord, \
             CAST(NULL AS TEXT) AS owner, CAST(NULL AS BIGINT) AS rank FROM customers \
             WHERE reader_id = $1 \
             UNION ALL SELECT 'licence' AS kind, licence_id AS id, NULL AS deleted_at, \
             joined_at AS ord, NULL AS owner, NULL AS rank FROM licence_members \
             WHERE reader_id = $1 AND removed_at IS NULL \
             UNION ALL SELECT 'seat' AS kind, m.subscription_id AS id, NULL AS deleted_at, \
             m.added_at AS ord, t.owner_id AS owner, \
             (SELECT COUNT(*) FROM team_members o WHERE o.subscription_id = m.subscription_id \
             AND (o.added_at < m.added_at OR (o.added_at = m.added_at \
             AND o.reader_id < m.reader_id))) AS rank \
             FROM team_members m JOIN teams t ON t.subscription_id = m.subscription_id \
             WHERE m.reader_id = $1 \
             UNION ALL SELECT 'team' AS kind, subscription_id AS id, NULL AS deleted_at, \
             created_at AS ord, owner_id AS owner, 0 AS rank FROM teams WHERE owner_id = $1 \
             UNION ALL SELECT 'grant' AS kind, id, NULL AS deleted_at, created_at AS ord, \
             NULL AS owner, NULL AS rank FROM grants WHERE reader_id = $1 AND revoked_at IS NULL \
             ORDER BY kind, ord, id",
        )
        .bind(reader.clone())
        .fetch_all(&self.pool)
        .await?;
        let has_grants = links.iter().any(|row| row.kind == "grant");
        let (customer_rows, others): (Vec<LinkRow>, Vec<LinkRow>) = links
            .into_iter()
            .filter(|row| row.kind != "grant")
            .partition(|row| row.kind == "customer");
        let (seat_rows, team_rows): (Vec<LinkRow>, Vec<LinkRow>) =
            others.into_iter().partition(|row| row.kind == "licence");
        let customers = customer_rows
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
            self.subscription_rows(Whose::Reader, &reader).await?
        };
        let ceded = subscriptions
            .iter()
            .filter(|row| {
                row.team_owner
                    .as_ref()
                    .is_some_and(|owner| owner != &reader)
            })
            .map(|row| row.id.clone())
            .collect();
        let subscriptions = assemble_subscriptions(subscriptions, items)?;
        let seats = if team_rows.is_empty() {
            Vec::new()
        } else {
            self.team_seats(team_rows, &subscriptions).await?
        };
        let grants = if has_grants {
            self.reader_grants(&reader).await?
        } else {
            Vec::new()
        };
        let licences = self
            .licences_with_ids(seat_rows.into_iter().map(|row| row.id).collect())
            .await?;
        Ok(ReaderRecord {
            customers,
            subscriptions,
            grants,
            licences,
            teams: Teams { seats, ceded },
        })
    }
}
