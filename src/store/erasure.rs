//! Erasing a reader in one transaction: what is theirs alone is deleted, what the books need
//! keeps the pseudonym instead of their id, stored text that names them is rewritten, and a
//! tombstone remembers the pseudonym so that Stripe's later word about their customers never
//! links the reader again.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use tollgate_macros::sql_bounds;

use super::columns::instant;
use super::dialect::{Dialect, SqlStore};
use super::error::StoreError;
use crate::domain::erasure::{ErasedCounts, Erasure, Replacement};
use crate::domain::{Actor, AuditEntry, OutboundEvent, ReaderId};

/// Erasing readers, and finding their tombstones.
#[async_trait]
pub trait ErasureStore: Send + Sync {
    /// Erases `reader`, whose pseudonym is `pseudonym`, at `at`, on behalf of `actor`: with its
    /// audit entry and, the first time, a `reader.erased` event. Asked again, it erases what
    /// was written about the reader since, and keeps the first erasure's time.
    async fn erase_reader(
        &self,
        reader: &ReaderId,
        pseudonym: &ReaderId,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Erasure, StoreError>;

    /// Which of `pseudonyms` are erased readers'.
    async fn erased_readers(&self, pseudonyms: &[ReaderId]) -> Result<Vec<ReaderId>, StoreError>;
}

#[derive(FromRow)]
struct StripeEventRow {
    seq: i64,
    status: String,
    body: String,
    note: Option<String>,
    last_error: Option<String>,
}

#[derive(FromRow)]
struct AuditRow {
    id: String,
    target: String,
    changes: String,
}

#[derive(FromRow)]
struct SyncRunRow {
    id: String,
    report: Option<String>,
    error: Option<String>,
}

/// A value bound to an erasure's statement.
enum Bind {
    Text(String),
    Instant(i64),
}

/// `text` with the reader's id rewritten, or as it was.
fn rewritten(swap: &Replacement<'_>, text: Option<&str>) -> (Option<String>, bool) {
    match text.map(|t| (t, swap.in_text(t))) {
        Some((_, Some(new))) => (Some(new), true),
        Some((old, None)) => (Some(old.to_owned()), false),
        None => (None, false),
    }
}

/// The `LIKE` pattern of rows whose text holds `needle`: a superset (SQLite's `LIKE` ignores
/// case, and `_` in an id matches any character), narrowed exactly in Rust.
fn holding(needle: &str) -> String {
    format!("%{needle}%")
}

#[sql_bounds]
impl<DB: Dialect> SqlStore<DB> {
    /// Runs `sql` with `binds` as `$1`, `$2`...; how many rows it changed.
    async fn erase_step(
        conn: &mut DB::Connection,
        sql: &str,
        binds: &[Bind],
    ) -> Result<u64, StoreError> {
        let mut query = sqlx::query::<DB>(sql);
        for bind in binds {
            query = match bind {
                Bind::Text(text) => query.bind(text.clone()),
                Bind::Instant(at) => query.bind(*at),
            };
        }
        Ok(DB::rows_affected(&query.execute(&mut *conn).await?))
    }

    /// Deletes the reader's own records and moves those the books keep to the pseudonym.
    async fn erase_records(
        conn: &mut DB::Connection,
        swap: &Replacement<'_>,
        at: i64,
        counts: &mut ErasedCounts,
    ) -> Result<(), StoreError> {
        let id = || Bind::Text(swap.id.to_owned());
        let pseudonym = || Bind::Text(swap.pseudonym.to_owned());
        // Seats first: the counters their claims check must drop with them.
        Self::erase_step(
            conn,
            "UPDATE licences SET members = members - 1 WHERE id IN (SELECT licence_id FROM \
             licence_members WHERE reader_id = $1 AND removed_at IS NULL)",
            &[id()],
        )
        .await?;
        counts.licence_seats = Self::erase_step(
            conn,
            "UPDATE licence_members SET removed_at = $2 WHERE reader_id = $1 \
             AND removed_at IS NULL",
            &[id(), Bind::Instant(at)],
        )
        .await?;
        Self::erase_step(
            conn,
            "UPDATE teams SET members = members - 1 WHERE subscription_id IN (SELECT \
             subscription_id FROM team_members WHERE reader_id = $1)",
            &[id()],
        )
        .await?;
        counts.team_seats = Self::erase_step(
            conn,
            "DELETE FROM team_members WHERE reader_id = $1",
            &[id()],
        )
        .await?;
        Self::erase_step(
            conn,
            "DELETE FROM grant_entitlements WHERE grant_id IN (SELECT id FROM grants \
             WHERE reader_id = $1)",
            &[id()],
        )
        .await?;
        counts.grants =
            Self::erase_step(conn, "DELETE FROM grants WHERE reader_id = $1", &[id()]).await?;
        counts.meter_unlocks = Self::erase_step(
            conn,
            "DELETE FROM meter_unlocks WHERE audience = 'registered' AND subject = $1",
            &[id()],
        )
        .await?;
        for sql in [
            "DELETE FROM entitlement_announcements WHERE reader_id = $1",
            "DELETE FROM entitlement_checks WHERE reader_id = $1",
        ] {
            Self::erase_step(conn, sql, &[id()]).await?;
        }
        // What the books keep: the reader becomes the pseudonym.
        counts.pseudonymized += Self::erase_step(
            conn,
            "UPDATE customers SET reader_id = $2, updated_at = $3 WHERE reader_id = $1",
            &[id(), pseudonym(), Bind::Instant(at)],
        )
        .await?;
        for sql in [
            "UPDATE licence_members SET reader_id = $2 WHERE reader_id = $1",
            "UPDATE teams SET owner_id = $2 WHERE owner_id = $1",
            "UPDATE gift_links SET giver = $2 WHERE giver = $1",
            "UPDATE gift_subscriptions SET buyer = $2 WHERE buyer = $1",
            "UPDATE gift_subscriptions SET redeemed_by = $2 WHERE redeemed_by = $1",
        ] {
            counts.pseudonymized += Self::erase_step(conn, sql, &[id(), pseudonym()]).await?;
        }
        let subject = |id: &str| Bind::Text(format!("registered:{id}"));
        for sql in [
            "UPDATE licence_openings SET subject = $2 WHERE subject = $1",
            "UPDATE gift_redemptions SET recipient = $2 WHERE recipient = $1",
        ] {
            counts.pseudonymized +=
                Self::erase_step(conn, sql, &[subject(swap.id), subject(swap.pseudonym)]).await?;
        }
        Ok(())
    }

    /// Rewrites the stored Stripe events that name the reader, or one of their `customers`:
    /// an applied or skipped event loses its body (the row stays, for deduplication), one still
    /// to be applied keeps its body with the pseudonym for the reader id; notes and errors are
    /// rewritten.
    async fn erase_from_stripe_events(
        conn: &mut DB::Connection,
        swap: &Replacement<'_>,
        customers: &[String],
        at: i64,
        counts: &mut ErasedCounts,
    ) -> Result<(), StoreError> {
        let mut needles = vec![swap.id.to_owned()];
        needles.extend(customers.iter().map(|c| format!("\"{c}\"")));
        let mut seen = std::collections::BTreeSet::new();
        for needle in &needles {
            let rows = sqlx::query_as::<DB, StripeEventRow>(
                "SELECT seq, status, body, note, last_error FROM webhook_events \
                 WHERE body LIKE $1 OR note LIKE $1 OR last_error LIKE $1 ORDER BY seq",
            )
            .bind(holding(needle))
            .fetch_all(&mut *conn)
            .await?;
            for row in rows {
                if !seen.insert(row.seq) {
                    continue;
                }
                let names_customer = customers
                    .iter()
                    .any(|c| row.body.contains(&format!("\"{c}\"")));
                let body = swap.in_text(&row.body);
                let (note, note_changed) = rewritten(swap, row.note.as_deref());
                let (last_error, error_changed) = rewritten(swap, row.last_error.as_deref());
                let settled = matches!(row.status.as_str(), "applied" | "skipped");
                let drop_body = settled && (names_customer || body.is_some());
                if drop_body {
                    counts.stripe_bodies_dropped += 1;
                } else if body.is_some() || note_changed || error_changed {
                    counts.texts_rewritten += 1;
                } else {
                    continue;
                }
                let (body, dropped_at) = if drop_body {
                    (String::new(), Some(at))
                } else {
                    (body.unwrap_or(row.body), None)
                };
                sqlx::query(
                    "UPDATE webhook_events SET body = $2, note = $3, last_error = $4, \
                     body_dropped_at = COALESCE($5, body_dropped_at) WHERE seq = $1",
                )
                .bind(row.seq)
                .bind(body)
                .bind(note)
                .bind(last_error)
                .bind(dropped_at)
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(())
    }

    /// Rewrites audit entries, outbound events and reconcile reports that name the reader, and
    /// deletes the kept answers to idempotent requests that did.
    async fn erase_from_logs(
        conn: &mut DB::Connection,
        swap: &Replacement<'_>,
        counts: &mut ErasedCounts,
    ) -> Result<(), StoreError> {
        let pattern = holding(swap.id);
        let entries = sqlx::query_as::<DB, AuditRow>(
            "SELECT id, target, changes FROM audit_log WHERE target LIKE $1 OR changes LIKE $1",
        )
        .bind(pattern.clone())
        .fetch_all(&mut *conn)
        .await?;
        for entry in entries {
            let target = swap.in_text(&entry.target);
            let changes = swap.in_text(&entry.changes);
            if target.is_none() && changes.is_none() {
                continue;
            }
            sqlx::query("UPDATE audit_log SET target = $2, changes = $3 WHERE id = $1")
                .bind(entry.id)
                .bind(target.unwrap_or(entry.target))
                .bind(changes.unwrap_or(entry.changes))
                .execute(&mut *conn)
                .await?;
            counts.texts_rewritten += 1;
        }
        let events = sqlx::query_as::<DB, (String, String)>(
            // An earlier erasure's notice must still tell the publisher's services who it was.
            "SELECT id, body FROM outbound_events WHERE body LIKE $1 AND type <> 'reader.erased'",
        )
        .bind(pattern.clone())
        .fetch_all(&mut *conn)
        .await?;
        for (id, body) in events {
            if let Some(body) = swap.in_text(&body) {
                sqlx::query("UPDATE outbound_events SET body = $2 WHERE id = $1")
                    .bind(id)
                    .bind(body)
                    .execute(&mut *conn)
                    .await?;
                counts.texts_rewritten += 1;
            }
        }
        let runs = sqlx::query_as::<DB, SyncRunRow>(
            "SELECT id, report, error FROM stripe_sync_runs WHERE report LIKE $1 OR error LIKE $1",
        )
        .bind(pattern.clone())
        .fetch_all(&mut *conn)
        .await?;
        for run in runs {
            let (report, report_changed) = rewritten(swap, run.report.as_deref());
            let (error, error_changed) = rewritten(swap, run.error.as_deref());
            if report_changed || error_changed {
                sqlx::query("UPDATE stripe_sync_runs SET report = $2, error = $3 WHERE id = $1")
                    .bind(run.id)
                    .bind(report)
                    .bind(error)
                    .execute(&mut *conn)
                    .await?;
                counts.texts_rewritten += 1;
            }
        }
        let kept = sqlx::query_as::<DB, (String, String, String, Option<Vec<u8>>)>(&format!(
            "SELECT scope, route, key, body FROM idempotency_keys WHERE route LIKE $1 OR {}",
            DB::BODY_CONTAINS
        ))
        .bind(pattern)
        .bind(swap.id.as_bytes().to_vec())
        .fetch_all(&mut *conn)
        .await?;
        for (scope, route, key, body) in kept {
            let body = body.map(|b| String::from_utf8_lossy(&b).into_owned());
            if swap.in_text(&route).is_none()
                && body.as_deref().and_then(|b| swap.in_text(b)).is_none()
            {
                continue;
            }
            sqlx::query(
                "DELETE FROM idempotency_keys WHERE scope = $1 AND route = $2 AND key = $3",
            )
            .bind(scope)
            .bind(route)
            .bind(key)
            .execute(&mut *conn)
            .await?;
            counts.idempotency_records += 1;
        }
        Ok(())
    }
}

#[sql_bounds]
#[async_trait]
impl<DB: Dialect> ErasureStore for SqlStore<DB> {
    async fn erase_reader(
        &self,
        reader: &ReaderId,
        pseudonym: &ReaderId,
        actor: &Actor,
        at: DateTime<Utc>,
    ) -> Result<Erasure, StoreError> {
        let swap = Replacement {
            id: reader.as_str(),
            pseudonym: pseudonym.as_str(),
        };
        let now = at.timestamp_millis();
        // The mirror's lock: no Stripe event links one of the reader's customers meanwhile.
        let mut tx = self.begin_mirror_write().await?;
        let customers: Vec<String> = sqlx::query_as::<DB, (String,)>(
            "SELECT id FROM customers WHERE reader_id = $1 OR reader_id = $2 ORDER BY id",
        )
        .bind(swap.id.to_owned())
        .bind(swap.pseudonym.to_owned())
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect();
        let mut counts = ErasedCounts::default();
        Self::erase_records(&mut tx, &swap, now, &mut counts).await?;
        Self::erase_from_stripe_events(&mut tx, &swap, &customers, now, &mut counts).await?;
        Self::erase_from_logs(&mut tx, &swap, &mut counts).await?;
        let before = sqlx::query_as::<DB, (i64,)>(
            "SELECT erased_at FROM reader_erasures WHERE pseudonym = $1",
        )
        .bind(swap.pseudonym.to_owned())
        .fetch_optional(&mut *tx)
        .await?;
        let listed = serde_json::to_string(&customers).map_err(StoreError::other)?;
        sqlx::query(
            "INSERT INTO reader_erasures (pseudonym, erased_at, stripe_customers) \
             VALUES ($1, $2, $3) ON CONFLICT (pseudonym) DO UPDATE \
             SET stripe_customers = excluded.stripe_customers",
        )
        .bind(swap.pseudonym.to_owned())
        .bind(now)
        .bind(listed)
        .execute(&mut *tx)
        .await?;
        let audit = AuditEntry::new(
            actor,
            "reader.erase",
            format!("reader:{pseudonym}"),
            serde_json::json!({ "stripe_customers": customers, "erased": counts }),
            at,
        );
        Self::append_audit(&mut tx, &audit).await?;
        if before.is_none() {
            let event = OutboundEvent::reader_erased(reader, pseudonym, &customers, at);
            Self::emit(&mut tx, &event).await?;
        }
        Self::touch_reports(&mut tx).await?;
        tx.commit().await?;
        if let Some(sql) = DB::AFTER_ERASURE {
            // The erased bytes may still sit in the write-ahead log's copies of the pages; a
            // checkpoint that a reader blocks is retried by the periodic checkpoints.
            if let Err(error) = sqlx::query::<DB>(sql).execute(&self.pool).await {
                tracing::warn!(%error, "the checkpoint after an erasure failed");
            }
        }
        Ok(Erasure {
            pseudonym: pseudonym.clone(),
            first_erased_at: instant(before.map_or(now, |(first,)| first))?,
            repeated: before.is_some(),
            stripe_customers: customers,
            counts,
        })
    }

    async fn erased_readers(&self, pseudonyms: &[ReaderId]) -> Result<Vec<ReaderId>, StoreError> {
        let mut erased = Vec::new();
        for pseudonym in pseudonyms {
            let found = sqlx::query_as::<DB, (String,)>(
                "SELECT pseudonym FROM reader_erasures WHERE pseudonym = $1",
            )
            .bind(pseudonym.as_str().to_owned())
            .fetch_optional(&self.pool)
            .await?;
            if found.is_some() {
                erased.push(pseudonym.clone());
            }
        }
        Ok(erased)
    }
}
