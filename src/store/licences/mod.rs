//! Institutional licences: their ranges and domains, checked against every other licence in
//! force at the same time under one lock; seats claimed by e-mail domain against a counter that
//! one statement checks and increments; and the articles opened under each, per month.

use std::net::IpAddr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tollgate_macros::sql_bounds;

mod rows;

use rows::{CountRow, EntryRow, IdRow, MemberRow, OpeningsRow, Which};

use super::columns::instant;
use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
use crate::domain::licence::{LicenceConflict, address_key, first_conflict};
use crate::domain::report_inputs::{LicenceEntry, Openings};
use crate::domain::{
    AuditEntry, ChangeCause, EmailDomain, Licence, LicenceId, LicenceSpec, ReaderId,
};

/// A seat taken by e-mail domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenceMember {
    /// Who.
    pub reader_id: ReaderId,
    /// The domain they proved.
    pub domain: EmailDomain,
    /// Since when.
    pub joined_at: DateTime<Utc>,
}

/// What a seat claim came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatClaim {
    /// The reader now holds a seat.
    Enrolled,
    /// The reader held a seat already; nothing changed.
    AlreadyMember,
    /// Every seat is taken.
    NoSeatsLeft,
    /// No such licence (or it was deleted).
    NotFound,
}

/// What replacing a licence came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LicenceWrite {
    /// Written.
    Written(Licence),
    /// It would overlap a licence in force at the same time.
    Conflict(LicenceConflict),
    /// It would have fewer seats than members.
    SeatsBelowMembers(u32),
    /// No such licence (or it was deleted).
    NotFound,
}

/// Licences, their members and their usage.
#[async_trait]
pub trait LicenceStore: Send + Sync {
    /// Stores a new licence unless it overlaps a licence in force at the same time that has not
    /// ended by `now`; the check and the write hold one lock, so two conflicting licences made
    /// at once cannot both be stored.
    async fn create_licence(
        &self,
        licence: &Licence,
        created_by: Option<&str>,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<LicenceWrite, StoreError>;

    /// Replaces what the licence `id` is, under the same rule as [`Self::create_licence`], and
    /// never to fewer seats than it has members.
    async fn replace_licence(
        &self,
        id: &LicenceId,
        spec: &LicenceSpec,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<LicenceWrite, StoreError>;

    /// Deletes a licence from `at` on: its readers lose what it gave; its usage stays in the
    /// reports. `false` if there is no such licence.
    async fn delete_licence(
        &self,
        id: &LicenceId,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;

    /// One licence that was not deleted.
    async fn licence(&self, id: &LicenceId) -> Result<Option<Licence>, StoreError>;

    /// Every licence that was not deleted, by id.
    async fn list_licences(&self) -> Result<Vec<Licence>, StoreError>;

    /// The licence in force at `now` one of whose ranges holds `address`. Overlaps are refused,
    /// so there is at most one.
    async fn licence_at_address(
        &self,
        address: IpAddr,
        now: DateTime<Utc>,
    ) -> Result<Option<Licence>, StoreError>;

    /// The licence in force at `now` that admits `domain`.
    async fn licence_for_domain(
        &self,
        domain: &EmailDomain,
        now: DateTime<Utc>,
    ) -> Result<Option<Licence>, StoreError>;

    /// Enrols `reader` in the licence `id` by `domain` while seats remain: never more members
    /// than seats, however many claims run at once.
    async fn claim_seat(
        &self,
        id: &LicenceId,
        reader: &ReaderId,
        domain: &EmailDomain,
        now: DateTime<Utc>,
    ) -> Result<SeatClaim, StoreError>;

    /// The licence's current members, by when they joined.
    async fn licence_members(&self, id: &LicenceId) -> Result<Vec<LicenceMember>, StoreError>;

    /// Frees `reader`'s seat from `at` on; `false` if they held none.
    async fn remove_licence_member(
        &self,
        id: &LicenceId,
        reader: &ReaderId,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError>;

    /// Every licence ever made, deleted ones included, for the usage report.
    async fn licence_entries(&self) -> Result<Vec<LicenceEntry>, StoreError>;

    /// Per licence, the readers who held a seat at some time in `[from, to)`.
    async fn licence_members_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(String, u64)>, StoreError>;

    /// Per month (`YYYY-MM`, from `first` to `last` included) and licence, what was opened.
    async fn licence_openings(
        &self,
        first: &str,
        last: &str,
    ) -> Result<Vec<(String, String, Openings)>, StoreError>;

    /// Notes that `subject` opened `article` under the licence `id` in `month` (`YYYY-MM`); once
    /// per subject, article and month.
    async fn record_licensed_opening(
        &self,
        id: &LicenceId,
        month: &str,
        subject: &str,
        article: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

#[sql_bounds]
#[async_trait]
impl<DB: Dialect> LicenceStore for SqlStore<DB> {
    async fn create_licence(
        &self,
        licence: &Licence,
        created_by: Option<&str>,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<LicenceWrite, StoreError> {
        let mut tx = self.begin_licence_write().await?;
        let others = Self::read_licences(&mut tx, Which::All).await?;
        if let Some(conflict) = first_conflict(&licence.spec, &others, now) {
            tx.rollback().await?;
            return Ok(LicenceWrite::Conflict(conflict));
        }
        let spec = &licence.spec;
        sqlx::query(
            "INSERT INTO licences (id, name, seats, members, starts_at, expires_at, created_at, \
             created_by) VALUES ($1, $2, $3, 0, $4, $5, $6, $7)",
        )
        .bind(licence.id.as_str().to_owned())
        .bind(spec.name.clone())
        .bind(spec.seats.map(i64::from))
        .bind(spec.starts_at.timestamp_millis())
        .bind(spec.expires_at.timestamp_millis())
        .bind(licence.created_at.timestamp_millis())
        .bind(created_by.map(str::to_owned))
        .execute(&mut *tx)
        .await?;
        Self::write_licence_parts(&mut tx, licence.id.as_str(), spec).await?;
        let stored = Self::read_licences(&mut tx, Which::One(licence.id.as_str())).await?;
        Self::append_audit(&mut *tx, audit).await?;
        tx.commit().await?;
        stored
            .into_iter()
            .next()
            .map(LicenceWrite::Written)
            .ok_or_else(|| {
                StoreError::other(anyhow::anyhow!("a licence just stored cannot be read back"))
            })
    }

    async fn replace_licence(
        &self,
        id: &LicenceId,
        spec: &LicenceSpec,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<LicenceWrite, StoreError> {
        let mut tx = self.begin_licence_write().await?;
        let mut all = Self::read_licences(&mut tx, Which::All).await?;
        let Some(position) = all.iter().position(|l| &l.id == id) else {
            tx.rollback().await?;
            return Ok(LicenceWrite::NotFound);
        };
        let current = all.remove(position);
        if let Some(conflict) = first_conflict(spec, &all, now) {
            tx.rollback().await?;
            return Ok(LicenceWrite::Conflict(conflict));
        }
        if spec.seats.is_some_and(|seats| seats < current.members) {
            tx.rollback().await?;
            return Ok(LicenceWrite::SeatsBelowMembers(current.members));
        }
        sqlx::query(
            "UPDATE licences SET name = $1, seats = $2, starts_at = $3, expires_at = $4 \
             WHERE id = $5",
        )
        .bind(spec.name.clone())
        .bind(spec.seats.map(i64::from))
        .bind(spec.starts_at.timestamp_millis())
        .bind(spec.expires_at.timestamp_millis())
        .bind(id.as_str().to_owned())
        .execute(&mut *tx)
        .await?;
        Self::write_licence_parts(&mut tx, id.as_str(), spec).await?;
        let stored = Self::read_licences(&mut tx, Which::One(id.as_str())).await?;
        Self::append_audit(&mut *tx, audit).await?;
        Self::mark_licence_readers(&mut tx, id.as_str(), now).await?;
        tx.commit().await?;
        Ok(stored
            .into_iter()
            .next()
            .map_or(LicenceWrite::NotFound, LicenceWrite::Written))
    }

    async fn delete_licence(
        &self,
        id: &LicenceId,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_licence_write().await?;
        let deleted =
            sqlx::query("UPDATE licences SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL")
                .bind(at.timestamp_millis())
                .bind(id.as_str().to_owned())
                .execute(&mut *tx)
                .await?;
        let deleted = DB::rows_affected(&deleted) == 1;
        if deleted {
            sqlx::query(
                "UPDATE licence_members SET removed_at = $1 WHERE licence_id = $2 \
                 AND removed_at IS NULL",
            )
            .bind(at.timestamp_millis())
            .bind(id.as_str().to_owned())
            .execute(&mut *tx)
            .await?;
            Self::append_audit(&mut *tx, audit).await?;
            Self::mark_licence_readers(&mut tx, id.as_str(), at).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn licence(&self, id: &LicenceId) -> Result<Option<Licence>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(Self::read_licences(&mut conn, Which::One(id.as_str()))
            .await?
            .into_iter()
            .next())
    }

    async fn list_licences(&self) -> Result<Vec<Licence>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Self::read_licences(&mut conn, Which::All).await
    }

    async fn licence_at_address(
        &self,
        address: IpAddr,
        now: DateTime<Utc>,
    ) -> Result<Option<Licence>, StoreError> {
        let key = address_key(crate::domain::licence::unmap_address(address)).to_vec();
        let mut conn = self.pool.acquire().await?;
        let ids = sqlx::query_as::<DB, IdRow>(
            "SELECT l.id FROM licence_ip_ranges r JOIN licences l ON l.id = r.licence_id \
             WHERE r.first_address <= $1 AND r.last_address >= $1 AND l.deleted_at IS NULL \
             AND l.starts_at <= $2 AND l.expires_at > $2 ORDER BY l.id LIMIT 1",
        )
        .bind(key)
        .bind(now.timestamp_millis())
        .fetch_all(&mut *conn)
        .await?;
        Ok(Self::licences_by_ids(&mut conn, ids)
            .await?
            .into_iter()
            .next())
    }

    async fn licence_for_domain(
        &self,
        domain: &EmailDomain,
        now: DateTime<Utc>,
    ) -> Result<Option<Licence>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let ids = sqlx::query_as::<DB, IdRow>(
            "SELECT l.id FROM licence_email_domains d JOIN licences l ON l.id = d.licence_id \
             WHERE d.domain = $1 AND l.deleted_at IS NULL AND l.starts_at <= $2 \
             AND l.expires_at > $2 ORDER BY l.id LIMIT 1",
        )
        .bind(domain.as_str().to_owned())
        .bind(now.timestamp_millis())
        .fetch_all(&mut *conn)
        .await?;
        Ok(Self::licences_by_ids(&mut conn, ids)
            .await?
            .into_iter()
            .next())
    }

    async fn claim_seat(
        &self,
        id: &LicenceId,
        reader: &ReaderId,
        domain: &EmailDomain,
        now: DateTime<Utc>,
    ) -> Result<SeatClaim, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        // The membership first: a second claim of the same reader waits on the unique index
        // until the first ends, and then inserts nothing.
        let inserted = sqlx::query(
            "INSERT INTO licence_members (id, licence_id, reader_id, domain, joined_at) \
             SELECT $1, l.id, $3, $4, $5 FROM licences l WHERE l.id = $2 AND l.deleted_at IS NULL \
             ON CONFLICT (licence_id, reader_id) WHERE removed_at IS NULL DO NOTHING",
        )
        .bind(uuid::Uuid::now_v7().simple().to_string())
        .bind(id.as_str().to_owned())
        .bind(reader.as_str().to_owned())
        .bind(domain.as_str().to_owned())
        .bind(now.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&inserted) == 0 {
            let exists = sqlx::query_as::<DB, IdRow>(
                "SELECT id FROM licences WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(id.as_str().to_owned())
            .fetch_optional(&mut *tx)
            .await?;
            tx.rollback().await?;
            return Ok(if exists.is_some() {
                SeatClaim::AlreadyMember
            } else {
                SeatClaim::NotFound
            });
        }
        // Then the seat: one statement checks and counts it, so concurrent claims queue on the
        // licence's row and never take more seats than there are.
        let seated = sqlx::query(
            "UPDATE licences SET members = members + 1 WHERE id = $1 \
             AND (seats IS NULL OR members < seats)",
        )
        .bind(id.as_str().to_owned())
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&seated) == 0 {
            tx.rollback().await?;
            return Ok(SeatClaim::NoSeatsLeft);
        }
        Self::mark_reader(&mut tx, reader.as_str(), ChangeCause::Licence, now).await?;
        tx.commit().await?;
        Ok(SeatClaim::Enrolled)
    }

    async fn licence_members(&self, id: &LicenceId) -> Result<Vec<LicenceMember>, StoreError> {
        let rows = sqlx::query_as::<DB, MemberRow>(
            "SELECT reader_id, domain, joined_at FROM licence_members \
             WHERE licence_id = $1 AND removed_at IS NULL ORDER BY joined_at, reader_id",
        )
        .bind(id.as_str().to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(LicenceMember {
                    reader_id: ReaderId::from_stored(row.reader_id),
                    domain: EmailDomain::from_stored(row.domain),
                    joined_at: instant(row.joined_at)?,
                })
            })
            .collect()
    }

    async fn remove_licence_member(
        &self,
        id: &LicenceId,
        reader: &ReaderId,
        at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let removed = sqlx::query(
            "UPDATE licence_members SET removed_at = $1 WHERE licence_id = $2 \
             AND reader_id = $3 AND removed_at IS NULL",
        )
        .bind(at.timestamp_millis())
        .bind(id.as_str().to_owned())
        .bind(reader.as_str().to_owned())
        .execute(&mut *tx)
        .await?;
        let removed = DB::rows_affected(&removed) == 1;
        if removed {
            sqlx::query("UPDATE licences SET members = members - 1 WHERE id = $1")
                .bind(id.as_str().to_owned())
                .execute(&mut *tx)
                .await?;
            Self::append_audit(&mut *tx, audit).await?;
            Self::mark_reader(&mut tx, reader.as_str(), ChangeCause::Licence, at).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn licence_entries(&self) -> Result<Vec<LicenceEntry>, StoreError> {
        let rows = sqlx::query_as::<DB, EntryRow>(
            "SELECT id, name, starts_at, expires_at, deleted_at FROM licences ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(LicenceEntry {
                    id: row.id,
                    name: row.name,
                    starts_at: instant(row.starts_at)?,
                    expires_at: instant(row.expires_at)?,
                    deleted_at: row.deleted_at.map(instant).transpose()?,
                })
            })
            .collect()
    }

    async fn licence_members_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = sqlx::query_as::<DB, CountRow>(
            "SELECT licence_id AS id, CAST(COUNT(DISTINCT reader_id) AS BIGINT) AS n \
             FROM licence_members WHERE joined_at < $2 \
             AND (removed_at IS NULL OR removed_at > $1) GROUP BY licence_id",
        )
        .bind(from.timestamp_millis())
        .bind(to.timestamp_millis())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.id, u64::try_from(row.n).unwrap_or(0)))
            .collect())
    }

    async fn licence_openings(
        &self,
        first: &str,
        last: &str,
    ) -> Result<Vec<(String, String, Openings)>, StoreError> {
        let rows = sqlx::query_as::<DB, OpeningsRow>(
            "SELECT month, licence_id, CAST(COUNT(DISTINCT subject) AS BIGINT) AS readers, \
             CAST(COUNT(*) AS BIGINT) AS articles FROM licence_openings \
             WHERE month >= $1 AND month <= $2 GROUP BY month, licence_id",
        )
        .bind(first.to_owned())
        .bind(last.to_owned())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let openings = Openings {
                    readers: u64::try_from(row.readers).unwrap_or(0),
                    articles: u64::try_from(row.articles).unwrap_or(0),
                };
                (row.month, row.licence_id, openings)
            })
            .collect())
    }

    async fn record_licensed_opening(
        &self,
        id: &LicenceId,
        month: &str,
        subject: &str,
        article: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO licence_openings (licence_id, month, subject, article_id, first_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(id.as_str().to_owned())
        .bind(month.to_owned())
        .bind(subject.to_owned())
        .bind(article.to_owned())
        .bind(at.timestamp_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
