//! The meter's SQL: counting a subject's unlocks in a window, unlocking under the subject's lock,
//! and merging a device's meter into a reader's.
//!
//! No over-grant, whatever the concurrency: every check-then-insert runs in a write transaction
//! that first takes the subject's lock. SQLite has one writer at a time (`BEGIN IMMEDIATE`), so
//! the lock is the database's own; PostgreSQL takes a transaction-scoped advisory lock keyed by
//! the subject, which serialises every instance on the database. Locks are always taken in
//! ascending key order, so two transactions never wait for each other in a cycle.

use tollgate_macros::sql_bounds;

use super::model::{MergeReport, MeterDialect, Unlock, UnlockOutcome, UnlockRequest, lock_key};
use crate::domain::{ArticleId, Audience, MeterSubject, Usage, Window};
use crate::store::columns::instant;
use crate::store::error::StoreError;

/// Takes `subject`'s lock until the transaction ends (nothing to do on SQLite, whose write
/// transaction already excludes every other writer).
#[sql_bounds]
pub(super) async fn lock<DB: MeterDialect>(
    conn: &mut DB::Connection,
    key: i64,
) -> Result<(), StoreError> {
    if let Some(sql) = DB::LOCK_SUBJECT {
        sqlx::query::<DB>(sql).bind(key).execute(&mut *conn).await?;
    }
    Ok(())
}

/// What `subject` unlocked since `window` began, and whether `article` is among it. Unlocks
/// later than the window's `now` count too: a request that waited behind a later one, or came
/// from an instance whose clock is behind, must still see them.
#[sql_bounds]
pub(super) async fn usage<DB: MeterDialect>(
    conn: &mut DB::Connection,
    subject: &MeterSubject,
    article: Option<&ArticleId>,
    window: &Window,
) -> Result<Usage, StoreError> {
    let (used, oldest, has_article) = sqlx::query_as::<DB, (i64, Option<i64>, i64)>(
        "SELECT COUNT(*), MIN(unlocked_at), COUNT(CASE WHEN article_id = $1 THEN 1 END) \
         FROM meter_unlocks WHERE audience = $2 AND subject = $3 \
         AND unlocked_at >= $4",
    )
    .bind(article.map(|a| a.as_str().to_owned()).unwrap_or_default())
    .bind(subject.audience.as_str().to_owned())
    .bind(subject.id.as_str().to_owned())
    .bind(window.counts_from.timestamp_millis())
    .fetch_one(&mut *conn)
    .await?;
    Ok(Usage {
        used: u32::try_from(used).map_err(|e| StoreError::Other(e.into()))?,
        oldest: oldest.map(instant).transpose()?,
        has_article: article.is_some() && has_article > 0,
    })
}

#[sql_bounds]
async fn insert_unlock<DB: MeterDialect>(
    conn: &mut DB::Connection,
    subject: &MeterSubject,
    article: &str,
    at: i64,
    merged_from: Option<String>,
) -> Result<(), StoreError> {
    sqlx::query::<DB>(
        "INSERT INTO meter_unlocks (audience, subject, article_id, unlocked_at, merged_from) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(subject.audience.as_str().to_owned())
    .bind(subject.id.as_str().to_owned())
    .bind(article.to_owned())
    .bind(at)
    .bind(merged_from)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Most rows one INSERT writes (four parameters each, far below either engine's limit).
const ROWS_PER_INSERT: usize = 128;

/// Unlocks each request's article unless its subject's meter is full, in the caller's
/// transaction; the answers come in the order of `requests`, each seeing the unlocks of the ones
/// before it.
///
/// However many requests the batch holds, it costs one read and one write per 128 unlocks: every
/// subject's lock is taken (ascending), their unlocks are read at once, the decisions are made in
/// memory, and the new unlocks are inserted together.
#[sql_bounds]
pub(super) async fn unlock<DB: MeterDialect>(
    conn: &mut DB::Connection,
    requests: &[UnlockRequest],
) -> Result<Vec<Unlock>, StoreError> {
    let Some(since) = requests.iter().map(|r| r.window.counts_from).min() else {
        return Ok(Vec::new());
    };
    let mut keys: Vec<i64> = requests.iter().map(|r| lock_key(&r.subject)).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        lock::<DB>(conn, key).await?;
    }
    let mut subjects: Vec<&MeterSubject> = requests.iter().map(|r| &r.subject).collect();
    subjects.sort_unstable();
    subjects.dedup();
    let mut held = unlocks_since::<DB>(conn, &subjects, since.timestamp_millis()).await?;
    let mut new = Vec::new();
    let mut answers = Vec::with_capacity(requests.len());
    for request in requests {
        let from = request.window.counts_from.timestamp_millis();
        let counted = held
            .iter()
            .filter(|u| u.at >= from && u.audience == request.subject.audience.as_str())
            .filter(|u| u.subject == request.subject.id.as_str());
        let mut usage = Usage {
            used: 0,
            oldest: None,
            has_article: false,
        };
        let mut oldest = None::<i64>;
        for unlock in counted {
            usage.used += 1;
            oldest = Some(oldest.map_or(unlock.at, |o| o.min(unlock.at)));
            usage.has_article |= unlock.article == request.article.as_str();
        }
        let outcome = if usage.has_article {
            UnlockOutcome::AlreadyUnlocked
        } else if usage.used >= request.limit {
            UnlockOutcome::Exhausted
        } else {
            let unlock = StoredUnlock {
                audience: request.subject.audience.as_str().to_owned(),
                subject: request.subject.id.as_str().to_owned(),
                article: request.article.as_str().to_owned(),
                at: request.window.now.timestamp_millis(),
            };
            usage.used += 1;
            usage.has_article = true;
            oldest = Some(oldest.map_or(unlock.at, |o| o.min(unlock.at)));
            new.push(held.len());
            held.push(unlock);
            UnlockOutcome::Unlocked
        };
        usage.oldest = oldest.map(instant).transpose()?;
        answers.push(Unlock { outcome, usage });
    }
    for rows in new.chunks(ROWS_PER_INSERT) {
        let values: Vec<String> = (0..rows.len())
            .map(|i| {
                format!(
                    "(${}, ${}, ${}, ${})",
                    4 * i + 1,
                    4 * i + 2,
                    4 * i + 3,
                    4 * i + 4
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO meter_unlocks (audience, subject, article_id, unlocked_at) VALUES {}",
            values.join(", ")
        );
        let mut insert = sqlx::query::<DB>(&sql).persistent(false);
        for &row in rows {
            let unlock = &held[row];
            insert = insert
                .bind(unlock.audience.clone())
                .bind(unlock.subject.clone())
                .bind(unlock.article.clone())
                .bind(unlock.at);
        }
        insert.execute(&mut *conn).await?;
    }
    Ok(answers)
}

/// One unlock as [`unlock`] reads it.
struct StoredUnlock {
    audience: String,
    subject: String,
    article: String,
    at: i64,
}

/// Every unlock of `subjects` from `since` (Unix milliseconds) on.
#[sql_bounds]
async fn unlocks_since<DB: MeterDialect>(
    conn: &mut DB::Connection,
    subjects: &[&MeterSubject],
    since: i64,
) -> Result<Vec<StoredUnlock>, StoreError> {
    let mut held = Vec::new();
    // Each term names the index's columns, so both engines read each subject's range of it.
    for chunk in subjects.chunks(ROWS_PER_INSERT) {
        let terms: Vec<String> = (0..chunk.len())
            .map(|i| {
                format!(
                    "(audience = ${} AND subject = ${} AND unlocked_at >= ${})",
                    3 * i + 1,
                    3 * i + 2,
                    3 * i + 3
                )
            })
            .collect();
        let sql = format!(
            "SELECT audience, subject, article_id, unlocked_at FROM meter_unlocks WHERE {}",
            terms.join(" OR ")
        );
        let mut select =
            sqlx::query_as::<DB, (String, String, String, i64)>(&sql).persistent(false);
        for subject in chunk {
            select = select
                .bind(subject.audience.as_str().to_owned())
                .bind(subject.id.as_str().to_owned())
                .bind(since);
        }
        held.extend(select.fetch_all(&mut *conn).await?.into_iter().map(
            |(audience, subject, article, at)| StoredUnlock {
                audience,
                subject,
                article,
                at,
            },
        ));
    }
    Ok(held)
}

/// Moves the unlocks `device` made in `device_window` into `reader`'s meter, oldest first, as
/// long as the reader's meter (counted in `reader_window`) has room; articles the reader had
/// unlocked already just leave the device. What does not fit stays with the device.
#[sql_bounds]
pub(super) async fn merge<DB: MeterDialect>(
    conn: &mut DB::Connection,
    device: &MeterSubject,
    device_window: &Window,
    reader: &MeterSubject,
    reader_window: &Window,
    limit: u32,
) -> Result<MergeReport, StoreError> {
    debug_assert_eq!(device.audience, Audience::Anonymous);
    let mut keys = [lock_key(device), lock_key(reader)];
    keys.sort_unstable();
    lock::<DB>(conn, keys[0]).await?;
    if keys[1] != keys[0] {
        lock::<DB>(conn, keys[1]).await?;
    }
    let rows = |subject: &MeterSubject, window: &Window| {
        sqlx::query_as::<DB, (String, i64)>(
            "SELECT article_id, unlocked_at FROM meter_unlocks WHERE audience = $1 \
             AND subject = $2 AND unlocked_at >= $3 \
             ORDER BY unlocked_at, article_id",
        )
        .bind(subject.audience.as_str().to_owned())
        .bind(subject.id.as_str().to_owned())
        .bind(window.counts_from.timestamp_millis())
    };
    let unlocked: Vec<(String, i64)> = rows(reader, reader_window).fetch_all(&mut *conn).await?;
    let mut held: Vec<String> = unlocked.into_iter().map(|(article, _)| article).collect();
    let candidates: Vec<(String, i64)> = rows(device, device_window).fetch_all(&mut *conn).await?;
    let mut report = MergeReport::default();
    for (article, unlocked_at) in candidates {
        if held.contains(&article) {
            report.already_unlocked += 1;
        } else if (held.len() as u64) < u64::from(limit) {
            // Counted from when the device unlocked it, or from the start of the reader's
            // window if the device's began earlier, so it counts in this period and no other.
            let at = unlocked_at.max(reader_window.counts_from.timestamp_millis());
            insert_unlock::<DB>(
                conn,
                reader,
                &article,
                at,
                Some(device.id.as_str().to_owned()),
            )
            .await?;
            report.moved += 1;
            held.push(article.clone());
        } else {
            report.left_over += 1;
            continue;
        }
        sqlx::query::<DB>(
            "DELETE FROM meter_unlocks WHERE audience = $1 AND subject = $2 AND article_id = $3 \
             AND unlocked_at = $4",
        )
        .bind(device.audience.as_str().to_owned())
        .bind(device.id.as_str().to_owned())
        .bind(article)
        .bind(unlocked_at)
        .execute(&mut *conn)
        .await?;
    }
    report.usage = usage::<DB>(conn, reader, None, reader_window).await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ReaderId;

    fn subject(audience: Audience, id: &str) -> MeterSubject {
        MeterSubject {
            audience,
            id: ReaderId::parse(id).unwrap_or_else(|| ReaderId::from_stored(id.into())),
        }
    }

    #[test]
    fn a_subjects_lock_key_is_stable_and_tells_audiences_apart() {
        let reader = subject(Audience::Registered, "r-1");
        assert_eq!(lock_key(&reader), lock_key(&reader.clone()));
        assert_ne!(
            lock_key(&reader),
            lock_key(&subject(Audience::Anonymous, "r-1"))
        );
        assert_ne!(
            lock_key(&reader),
            lock_key(&subject(Audience::Registered, "r-2"))
        );
    }
}
