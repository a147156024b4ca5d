//! The PostgreSQL backend: production, and several tollgate instances on one database.

use std::str::FromStr;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use sqlx::postgres::PgConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{Connection, Pool, Postgres};

use super::columns::instant;
use super::connections;
use super::dialect::{Backend, Dialect, SqlStore};
use super::error::OpenError;
use super::error::StoreError;
use super::meter::{MeterDialect, Unlock, UnlockOutcome, UnlockRequest, lock_key};
use crate::config::views::DatabaseSettings;
use crate::domain::Usage;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a pooled connection may sit unused before it is checked before use.
const CHECK_IF_IDLE_FOR: Duration = Duration::from_secs(1);

impl Dialect for Postgres {
    const BACKEND: Backend = Backend::Postgres;
    const PROBE: &'static str = "SELECT 1";
    // Two int4 keys, a key space apart from the meter subjects' single bigint keys: 'tg' and 1.
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const STRING_AGG: &'static str = "string_agg";
    const COLUMN_HISTOGRAM: Option<&'static str> = Some(
        "SELECT bound FROM pg_stats, \
         unnest(histogram_bounds::text::text[]) WITH ORDINALITY AS h(bound, n) \
         WHERE schemaname = current_schema() AND tablename = $1 AND attname = $2 ORDER BY n",
    );
    const LOCK_MIRROR: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(29799, 1)");
    const LOCK_LICENCES: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(29799, 2)");
    // A key space of its own ('tg' + 1) for givers, hashed by name.
    const LOCK_GIVER: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(29800, hashtext($1))");
    const BEGIN_WRITE: &'static str = "BEGIN";
    const BODY_CONTAINS: &'static str = "position($2 IN body) > 0";
    const AFTER_ERASURE: Option<&'static str> = None;

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }

    fn some_rows(table: &str, _index: &str, condition: &str) -> String {
        format!(
            "ctid = ANY(ARRAY(SELECT ctid FROM {table} WHERE {condition} LIMIT $2 \
             FOR UPDATE SKIP LOCKED)) AND {condition}"
        )
    }

    fn migrate(pool: &Pool<Self>) -> BoxFuture<'_, Result<(), sqlx::migrate::MigrateError>> {
        // The migrator takes an advisory lock, so instances starting together migrate once.
        Box::pin(MIGRATOR.run(pool))
    }

    fn copy_out<'a>(
        pool: &'a Pool<Self>,
        select: &'a str,
        sink: &'a mut (dyn FnMut(&[u8]) -> Result<(), StoreError> + Send),
    ) -> Option<BoxFuture<'a, Result<(), StoreError>>> {
        Some(Box::pin(copy_out(pool, select, sink)))
    }
}

/// See [`Dialect::copy_out`].
async fn copy_out(
    pool: &Pool<Postgres>,
    select: &str,
    sink: &mut (dyn FnMut(&[u8]) -> Result<(), StoreError> + Send),
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    // The JIT would compile the plan of a read this large (its estimated cost is far above
    // `jit_above_cost`): a quarter of a second, for a read that only hands rows on.
    sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
    {
        let mut chunks = tx
            .copy_out_raw(&format!("COPY ({select}) TO STDOUT"))
            .await?;
        while let Some(chunk) = chunks.next().await {
            sink(&chunk?)?;
        }
    }
    tx.commit().await?;
    Ok(())
}

impl MeterDialect for Postgres {
    const LOCK_SUBJECT: Option<&'static str> = Some("SELECT pg_advisory_xact_lock($1)");
    const UNLOCKS_IN_ONE_STATEMENT: bool = true;

    fn unlock_batch<'a>(
        conn: &'a mut PgConnection,
        requests: &'a [UnlockRequest],
    ) -> BoxFuture<'a, Result<Vec<Unlock>, StoreError>> {
        Box::pin(unlock_in_one_statement(conn, requests))
    }
}

/// Connects to the PostgreSQL database at `url`.
pub(super) async fn open(
    url: &str,
    settings: &DatabaseSettings<'_>,
) -> Result<SqlStore<Postgres>, OpenError> {
    let mut options = PgConnectOptions::from_str(url)
        .map_err(OpenError::Connect)?
        .application_name("tollgate");
    if tls_adds_nothing(url, std::env::var_os("PGSSLMODE").is_some()) {
        options = options.ssl_mode(PgSslMode::Disable);
    }
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        // sqlx checks every connection before use by default, a round trip more for each query.
        // Only those that sat idle are checked, and every one for a while after a connection
        // failed (the database restarted, the network was cut), when others may be broken too.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > CHECK_IF_IDLE_FOR
                    || connections::failed_within(connections::CHECK_AFTER_FAILURE)
                {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .map_err(OpenError::Connect)?;
    Ok(SqlStore::new(pool, Vec::new()))
}

/// Whether TLS would protect nothing on the connections to `url`: the server is on this machine
/// (a loopback address, `localhost`, or a Unix socket) and neither the URL (`sslmode`) nor the
/// environment (`PGSSLMODE`, `pgssl_mode_set`) asks for a mode. sqlx's default, `prefer`, then
/// encrypts every round trip over loopback, which doubles the cost of a one-row read.
fn tls_adds_nothing(url: &str, pgssl_mode_set: bool) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    if pgssl_mode_set
        || parsed
            .query_pairs()
            .any(|(key, _)| key == "sslmode" || key == "ssl-mode")
    {
        return false;
    }
    let socket = parsed
        .query_pairs()
        .any(|(key, value)| key == "host" && value.starts_with('/'));
    // `postgres:` is not a scheme the URL standard knows, so its host comes back as text.
    match parsed.host_str() {
        None | Some("") => true,
        Some(_) if socket => true,
        Some(host) => {
            host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|address| address.is_loopback())
        }
    }
}

/// A batch of unlocks on PostgreSQL in one round trip: the migrations' `tollgate_unlock` function takes
/// each subject's lock, counts and inserts, item by item, in the statement's own transaction.
async fn unlock_in_one_statement(
    conn: &mut sqlx::PgConnection,
    requests: &[UnlockRequest],
) -> Result<Vec<Unlock>, StoreError> {
    let mut order: Vec<(i64, usize)> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| (lock_key(&r.subject), i))
        .collect();
    order.sort_unstable();
    let ordered: Vec<&UnlockRequest> = order.iter().map(|&(_, i)| &requests[i]).collect();
    let texts = |f: fn(&UnlockRequest) -> &str| -> Vec<String> {
        ordered.iter().map(|r| f(r).to_owned()).collect()
    };
    let numbers =
        |f: fn(&UnlockRequest) -> i64| -> Vec<i64> { ordered.iter().map(|r| f(r)).collect() };
    let rows: Vec<(i32, String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT item, outcome, used, oldest FROM tollgate_unlock($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(order.iter().map(|&(key, _)| key).collect::<Vec<i64>>())
    .bind(texts(|r| r.subject.audience.as_str()))
    .bind(texts(|r| r.subject.id.as_str()))
    .bind(texts(|r| r.article.as_str()))
    .bind(numbers(|r| r.window.counts_from.timestamp_millis()))
    .bind(numbers(|r| r.window.now.timestamp_millis()))
    .bind(numbers(|r| i64::from(r.limit)))
    .fetch_all(conn)
    .await?;
    let mut answers: Vec<Option<Unlock>> = vec![None; requests.len()];
    for (item, outcome, used, oldest) in rows {
        let position = usize::try_from(item - 1)
            .ok()
            .and_then(|p| order.get(p))
            .map(|&(_, i)| i)
            .ok_or_else(|| {
                StoreError::other(anyhow::anyhow!("tollgate_unlock named item {item}"))
            })?;
        let outcome = match outcome.as_str() {
            "unlocked" => UnlockOutcome::Unlocked,
            "already_unlocked" => UnlockOutcome::AlreadyUnlocked,
            "exhausted" => UnlockOutcome::Exhausted,
            other => {
                return Err(StoreError::other(anyhow::anyhow!(
                    "tollgate_unlock answered {other:?}"
                )));
            }
        };
        answers[position] = Some(Unlock {
            outcome,
            usage: Usage {
                used: u32::try_from(used).map_err(StoreError::other)?,
                oldest: oldest.map(instant).transpose()?,
                has_article: outcome != UnlockOutcome::Exhausted,
            },
        });
    }
    answers
        .into_iter()
        .map(|a| a.ok_or_else(|| StoreError::other(anyhow::anyhow!("an unlock went unanswered"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::tls_adds_nothing;

    #[test]
    fn tls_is_left_out_only_for_a_server_on_this_machine_that_no_setting_asks_it_of() {
        for local in [
            "postgres://postgres@127.0.0.1:5432/tollgate",
            "postgres://postgres@127.8.0.1/tollgate",
            "postgres://postgres@localhost/tollgate",
            "postgres://postgres@[::1]:5432/tollgate",
            "postgres://postgres@x/tollgate?host=/var/run/postgresql",
            "postgres:///tollgate",
        ] {
            assert!(tls_adds_nothing(local, false), "{local}");
            assert!(!tls_adds_nothing(local, true), "{local} with PGSSLMODE");
        }
        for other in [
            "postgres://postgres@db.internal:5432/tollgate",
            "postgres://postgres@10.0.0.5/tollgate",
            "postgres://postgres@127.0.0.1/tollgate?sslmode=require",
            "postgres://postgres@localhost/tollgate?sslmode=prefer",
            "not a url",
        ] {
            assert!(!tls_adds_nothing(other, false), "{other}");
        }
    }
}
