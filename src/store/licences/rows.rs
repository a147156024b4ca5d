//! How licences are read and written: their rows, assembled into [`Licence`]s, and the lock
//! that licence writes share.

use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use super::super::columns::instant;
use super::super::dialect::{Dialect, SqlStore};
use super::super::error::StoreError;
use crate::domain::{EmailDomain, Entitlement, IpRange, Licence, LicenceId, LicenceSpec};

#[derive(FromRow)]
pub(super) struct LicenceRow {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) seats: Option<i64>,
    pub(super) members: i64,
    pub(super) starts_at: i64,
    pub(super) expires_at: i64,
    pub(super) created_at: i64,
}

#[derive(FromRow)]
pub(super) struct PairRow {
    pub(super) owner: String,
    pub(super) value: String,
}

#[derive(FromRow)]
pub(super) struct MemberRow {
    pub(super) reader_id: String,
    pub(super) domain: String,
    pub(super) joined_at: i64,
}

#[derive(FromRow)]
pub(super) struct IdRow {
    pub(super) id: String,
}

#[derive(FromRow)]
pub(super) struct EntryRow {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) starts_at: i64,
    pub(super) expires_at: i64,
    pub(super) deleted_at: Option<i64>,
}

#[derive(FromRow)]
pub(super) struct CountRow {
    pub(super) id: String,
    pub(super) n: i64,
}

#[derive(FromRow)]
pub(super) struct OpeningsRow {
    pub(super) month: String,
    pub(super) licence_id: String,
    pub(super) readers: i64,
    pub(super) articles: i64,
}

/// Which licences a read assembles.
pub(super) enum Which<'a> {
    All,
    One(&'a str),
}

pub(super) fn count(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

/// Puts licence rows and their entitlements, ranges and domains (each sorted by licence id)
/// together.
pub(super) fn assemble(
    rows: Vec<LicenceRow>,
    entitlements: Vec<PairRow>,
    ranges: Vec<PairRow>,
    domains: Vec<PairRow>,
) -> Result<Vec<Licence>, StoreError> {
    let mut entitlements = entitlements.into_iter().peekable();
    let mut ranges = ranges.into_iter().peekable();
    let mut domains = domains.into_iter().peekable();
    rows.into_iter()
        .map(|row| {
            let mut spec = LicenceSpec {
                name: row.name,
                entitlements: Vec::new(),
                ip_ranges: Vec::new(),
                email_domains: Vec::new(),
                seats: row.seats.map(count),
                starts_at: instant(row.starts_at)?,
                expires_at: instant(row.expires_at)?,
            };
            while let Some(e) = entitlements.next_if(|e| e.owner == row.id) {
                spec.entitlements.push(Entitlement::from_stored(e.value));
            }
            while let Some(r) = ranges.next_if(|r| r.owner == row.id) {
                let range = IpRange::parse(&r.value).ok_or_else(|| {
                    StoreError::other(anyhow::anyhow!(
                        "stored licence range `{}` is not a range",
                        r.value
                    ))
                })?;
                spec.ip_ranges.push(range);
            }
            while let Some(d) = domains.next_if(|d| d.owner == row.id) {
                spec.email_domains.push(EmailDomain::from_stored(d.value));
            }
            spec.ip_ranges.sort();
            Ok(Licence {
                id: LicenceId::from_stored(row.id),
                spec,
                members: count(row.members),
                created_at: instant(row.created_at)?,
            })
        })
        .collect()
}

#[sql_bounds]
impl<DB: Dialect> SqlStore<DB> {
    /// The licences `which` names, not deleted, by id, read on `conn`.
    pub(super) async fn read_licences(
        conn: &mut DB::Connection,
        which: Which<'_>,
    ) -> Result<Vec<Licence>, StoreError> {
        let (filter, id) = match which {
            Which::All => ("", String::new()),
            Which::One(id) => (" AND l.id = $1", id.to_owned()),
        };
        let rows_sql = format!(
            "SELECT l.id, l.name, l.seats, l.members, l.starts_at, l.expires_at, l.created_at \
             FROM licences l WHERE l.deleted_at IS NULL{filter} ORDER BY l.id"
        );
        let mut rows = sqlx::query_as::<DB, LicenceRow>(&rows_sql);
        if matches!(which, Which::One(_)) {
            rows = rows.bind(id.clone());
        }
        let rows = rows.fetch_all(&mut *conn).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let pairs = |table: &str, column: &str| {
            format!(
                "SELECT t.licence_id AS owner, t.{column} AS value FROM {table} t \
                 JOIN licences l ON l.id = t.licence_id WHERE l.deleted_at IS NULL{filter} \
                 ORDER BY t.licence_id, t.{column}"
            )
        };
        let mut parts = Vec::with_capacity(3);
        for (table, column) in [
            ("licence_entitlements", "entitlement"),
            ("licence_ip_ranges", "cidr"),
            ("licence_email_domains", "domain"),
        ] {
            let sql = pairs(table, column);
            let mut query = sqlx::query_as::<DB, PairRow>(&sql);
            if matches!(which, Which::One(_)) {
                query = query.bind(id.clone());
            }
            parts.push(query.fetch_all(&mut *conn).await?);
        }
        let domains = parts.pop().unwrap_or_default();
        let ranges = parts.pop().unwrap_or_default();
        let entitlements = parts.pop().unwrap_or_default();
        assemble(rows, entitlements, ranges, domains)
    }

    /// Begins a transaction that writes licences, holding their lock
    /// ([`Dialect::LOCK_LICENCES`]) until it ends.
    pub(super) async fn begin_licence_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, DB>, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        if let Some(sql) = DB::LOCK_LICENCES {
            sqlx::query::<DB>(sql).execute(&mut *tx).await?;
        }
        Ok(tx)
    }

    /// Writes the ranges, domains and entitlements of the licence `id`, replacing any.
    pub(super) async fn write_licence_parts(
        conn: &mut DB::Connection,
        id: &str,
        spec: &LicenceSpec,
    ) -> Result<(), StoreError> {
        for table in [
            "licence_entitlements",
            "licence_ip_ranges",
            "licence_email_domains",
        ] {
            sqlx::query::<DB>(&format!("DELETE FROM {table} WHERE licence_id = $1"))
                .bind(id.to_owned())
                .execute(&mut *conn)
                .await?;
        }
        for entitlement in &spec.entitlements {
            sqlx::query(
                "INSERT INTO licence_entitlements (licence_id, entitlement) VALUES ($1, $2)",
            )
            .bind(id.to_owned())
            .bind(entitlement.as_str().to_owned())
            .execute(&mut *conn)
            .await?;
        }
        for range in &spec.ip_ranges {
            let (first, last) = range.bounds();
            sqlx::query(
                "INSERT INTO licence_ip_ranges (licence_id, cidr, first_address, last_address) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id.to_owned())
            .bind(range.to_string())
            .bind(first.to_vec())
            .bind(last.to_vec())
            .execute(&mut *conn)
            .await?;
        }
        for domain in &spec.email_domains {
            sqlx::query("INSERT INTO licence_email_domains (licence_id, domain) VALUES ($1, $2)")
                .bind(id.to_owned())
                .bind(domain.as_str().to_owned())
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// The licences named by `ids`, in that order, read on `conn`.
    pub(super) async fn licences_by_ids(
        conn: &mut DB::Connection,
        ids: Vec<IdRow>,
    ) -> Result<Vec<Licence>, StoreError> {
        let mut licences = Vec::with_capacity(ids.len());
        for row in ids {
            licences.extend(Self::read_licences(&mut *conn, Which::One(&row.id)).await?);
        }
        Ok(licences)
    }

    /// The licences (not deleted) with the ids `ids`, in that order: for a reader's record,
    /// whose query finds their seats' licence ids.
    pub(in crate::store) async fn licences_with_ids(
        &self,
        ids: Vec<String>,
    ) -> Result<Vec<Licence>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.pool.acquire().await?;
        let ids = ids.into_iter().map(|id| IdRow { id }).collect();
        Self::licences_by_ids(&mut conn, ids).await
    }
}
