//! Teams: who owns each subscription sold by the seat, and the members they seated. A team's row
//! is made when its owner first seats someone or hands it on; until then the subscriber owns it.
//!
//! Every write runs in one transaction and changes the team's row first (its member counter or
//! its owner), so that writes to one team queue on that row in PostgreSQL and on the write lock
//! in SQLite: concurrent additions never seat more readers than `seats`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use super::columns::instant;
use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
use crate::domain::{ChangeCause, ReaderId};

/// A member of a team (the owner aside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamMember {
    /// The reader.
    pub reader_id: ReaderId,
    /// When they were seated: the order in which seats are lost when there are too few.
    pub added_at: DateTime<Utc>,
}

/// What seating a reader came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seating {
    /// They were seated now.
    Seated,
    /// They held a seat already; nothing changed.
    AlreadyMember,
    /// Every seat is taken; nothing changed.
    NoSeatsLeft,
    /// The team belongs to someone else now; nothing changed.
    NotOwner,
}

/// Keeping teams.
#[async_trait]
pub trait TeamStore: Send + Sync {
    /// Seats `reader` in the team of `subscription`, owned by `owner`, if fewer than `seats`
    /// readers (the owner included) hold seats.
    async fn seat_member(
        &self,
        subscription: &str,
        owner: &ReaderId,
        reader: &ReaderId,
        seats: i64,
        now: DateTime<Utc>,
    ) -> Result<Seating, StoreError>;

    /// The members of the team of `subscription`, in the order they were seated.
    async fn team_members(&self, subscription: &str) -> Result<Vec<TeamMember>, StoreError>;

    /// Frees `reader`'s seat in the team of `subscription`, owned by `owner`; whether they held
    /// one.
    async fn unseat_member(
        &self,
        subscription: &str,
        owner: &ReaderId,
        reader: &ReaderId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Hands the team of `subscription` from `owner` to `new_owner`. `owner` keeps a seat as a
    /// member: `new_owner`'s place in the order when they were a member, a new seat (if one of
    /// `seats` is free) when they were not.
    async fn transfer_team(
        &self,
        subscription: &str,
        owner: &ReaderId,
        new_owner: &ReaderId,
        seats: i64,
        now: DateTime<Utc>,
    ) -> Result<Seating, StoreError>;
}

#[derive(FromRow)]
struct MemberRow {
    reader_id: String,
    added_at: i64,
}

#[sql_bounds]
impl<DB: Dialect> SqlStore<DB> {
    /// Makes the team's row, owned by `owner`, unless it exists; whether `owner` owns it now.
    async fn own_team(
        conn: &mut DB::Connection,
        subscription: &str,
        owner: &ReaderId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        sqlx::query(
            "INSERT INTO teams (subscription_id, owner_id, members, created_at) \
             VALUES ($1, $2, 0, $3) ON CONFLICT (subscription_id) DO NOTHING",
        )
        .bind(subscription.to_owned())
        .bind(owner.as_str().to_owned())
        .bind(now.timestamp_millis())
        .execute(&mut *conn)
        .await?;
        let owned = sqlx::query_as::<DB, (String,)>(
            "SELECT owner_id FROM teams WHERE subscription_id = $1",
        )
        .bind(subscription.to_owned())
        .fetch_optional(&mut *conn)
        .await?;
        Ok(owned.is_some_and(|(id,)| id == owner.as_str()))
    }

    /// Takes one more seat of the team owned by `owner`, if fewer than `seats` are taken (the
    /// owner's included); whether it could, and if not, why.
    async fn take_seat(
        conn: &mut DB::Connection,
        subscription: &str,
        owner: &ReaderId,
        seats: i64,
    ) -> Result<Seating, StoreError> {
        let taken = sqlx::query(
            "UPDATE teams SET members = members + 1 \
             WHERE subscription_id = $1 AND owner_id = $2 AND members + 1 < $3",
        )
        .bind(subscription.to_owned())
        .bind(owner.as_str().to_owned())
        .bind(seats)
        .execute(&mut *conn)
        .await?;
        if DB::rows_affected(&taken) == 1 {
            return Ok(Seating::Seated);
        }
        // The row is locked by the update's attempt: who owns it now is settled.
        let current = sqlx::query_as::<DB, (String,)>(
            "SELECT owner_id FROM teams WHERE subscription_id = $1",
        )
        .bind(subscription.to_owned())
        .fetch_optional(&mut *conn)
        .await?;
        Ok(match current {
            Some((id,)) if id == owner.as_str() => Seating::NoSeatsLeft,
            _ => Seating::NotOwner,
        })
    }
}

#[sql_bounds]
#[async_trait]
impl<DB: Dialect> TeamStore for SqlStore<DB> {
    async fn seat_member(
        &self,
        subscription: &str,
        owner: &ReaderId,
        reader: &ReaderId,
        seats: i64,
        now: DateTime<Utc>,
    ) -> Result<Seating, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        if !Self::own_team(&mut *tx, subscription, owner, now).await? {
            tx.rollback().await?;
            return Ok(Seating::NotOwner);
        }
        let inserted = sqlx::query(
            "INSERT INTO team_members (subscription_id, reader_id, added_at) VALUES ($1, $2, $3) \
             ON CONFLICT (subscription_id, reader_id) DO NOTHING",
        )
        .bind(subscription.to_owned())
        .bind(reader.as_str().to_owned())
        .bind(now.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&inserted) == 0 {
            tx.rollback().await?;
            return Ok(Seating::AlreadyMember);
        }
        match Self::take_seat(&mut *tx, subscription, owner, seats).await? {
            Seating::Seated => {
                Self::mark_reader(&mut tx, reader.as_str(), ChangeCause::Seat, now).await?;
                tx.commit().await?;
                Ok(Seating::Seated)
            }
            refused => {
                tx.rollback().await?;
                Ok(refused)
            }
        }
    }

    async fn team_members(&self, subscription: &str) -> Result<Vec<TeamMember>, StoreError> {
        let rows = sqlx::query_as::<DB, MemberRow>(
            "SELECT reader_id, added_at FROM team_members WHERE subscription_id = $1 \
             ORDER BY added_at, reader_id",
        )
        .bind(subscription.to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(TeamMember {
                    reader_id: ReaderId::from_stored(row.reader_id),
                    added_at: instant(row.added_at)?,
                })
            })
            .collect()
    }

    async fn unseat_member(
        &self,
        subscription: &str,
        owner: &ReaderId,
        reader: &ReaderId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        // The member's row first: of two removals of one member, the second waits on it and
        // then deletes nothing, so the counter is decremented once.
        let removed =
            sqlx::query("DELETE FROM team_members WHERE subscription_id = $1 AND reader_id = $2")
                .bind(subscription.to_owned())
                .bind(reader.as_str().to_owned())
                .execute(&mut *tx)
                .await?;
        if DB::rows_affected(&removed) == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let freed = sqlx::query(
            "UPDATE teams SET members = members - 1 WHERE subscription_id = $1 AND owner_id = $2",
        )
        .bind(subscription.to_owned())
        .bind(owner.as_str().to_owned())
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&freed) == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        // The freed seat may let a member who was over in.
        Self::mark_reader(&mut tx, reader.as_str(), ChangeCause::Seat, now).await?;
        Self::mark_subscription_readers(&mut tx, subscription, ChangeCause::Seat, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn transfer_team(
        &self,
        subscription: &str,
        owner: &ReaderId,
        new_owner: &ReaderId,
        seats: i64,
        now: DateTime<Utc>,
    ) -> Result<Seating, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        Self::own_team(&mut *tx, subscription, owner, now).await?;
        let moved = sqlx::query(
            "UPDATE teams SET owner_id = $3 WHERE subscription_id = $1 AND owner_id = $2",
        )
        .bind(subscription.to_owned())
        .bind(owner.as_str().to_owned())
        .bind(new_owner.as_str().to_owned())
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&moved) == 0 {
            tx.rollback().await?;
            return Ok(Seating::NotOwner);
        }
        let place = sqlx::query_as::<DB, (i64,)>(
            "DELETE FROM team_members WHERE subscription_id = $1 AND reader_id = $2 \
             RETURNING added_at",
        )
        .bind(subscription.to_owned())
        .bind(new_owner.as_str().to_owned())
        .fetch_optional(&mut *tx)
        .await?;
        let added_at = match place {
            Some((added_at,)) => added_at,
            None => match Self::take_seat(&mut *tx, subscription, new_owner, seats).await? {
                Seating::Seated => now.timestamp_millis(),
                refused => {
                    tx.rollback().await?;
                    return Ok(refused);
                }
            },
        };
        sqlx::query(
            "INSERT INTO team_members (subscription_id, reader_id, added_at) VALUES ($1, $2, $3)",
        )
        .bind(subscription.to_owned())
        .bind(owner.as_str().to_owned())
        .bind(added_at)
        .execute(&mut *tx)
        .await?;
        Self::mark_subscription_readers(&mut tx, subscription, ChangeCause::Seat, now).await?;
        tx.commit().await?;
        Ok(Seating::Seated)
    }
}
