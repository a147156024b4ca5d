// long file: the one harness every API test shares (app, database, keys, clock, HTTP calls)
//! `spawn_app()` and what tests need around it: a fresh database per test, a fixed clock, an
//! admin key, and a way to take the database away.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Client, Response};
use secrecy::ExposeSecret;
use sqlx::{Connection, Executor};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tollgate::clock::{Clock, ManualClock};
use tollgate::config::Settings;
use tollgate::domain::{Actor, KeyName, Role};
use tollgate::services::keys::{KeyRequest, issue_key};
use tollgate::startup::Application;
use tollgate::store::Store;

use crate::log_capture::{self, Window};

/// The instant every test app starts at.
pub fn test_epoch() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T19:12:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// A database made for one test and removed after it.
pub enum TestDatabase {
    Sqlite {
        _dir: tempfile::TempDir,
        url: String,
    },
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
}

impl TestDatabase {
    /// SQLite in a temporary directory, or a new PostgreSQL database when `TEST_DATABASE_URL`
    /// names a server. A set but unreachable server fails the test: it never falls back.
    pub async fn create() -> Self {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                let name = format!("tollgate_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .expect("TEST_DATABASE_URL is set but the server cannot be reached");
                conn.execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                let mut url = url::Url::parse(&admin_url).unwrap();
                url.set_path(&name);
                Self::Postgres {
                    admin_url,
                    name,
                    url: url.to_string(),
                }
            }
            _ => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("tollgate.db");
                let url = format!("sqlite://{}", path.display());
                Self::Sqlite { _dir: dir, url }
            }
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Self::Sqlite { url, .. } | Self::Postgres { url, .. } => url,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres { .. })
    }

    /// Gathers the planner's statistics, as autovacuum would have by now on a real database
    /// (PostgreSQL's histograms of ids cut large reads into parts read side by side).
    pub async fn analyze(&self) {
        match self {
            Self::Sqlite { url, .. } => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                conn.execute("ANALYZE").await.unwrap();
            }
            Self::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                conn.execute("ANALYZE").await.unwrap();
            }
        }
    }

    /// The rows `sql` reads, straight from the database, whichever backend it is.
    async fn rows<T>(&self, sql: &'static str) -> Vec<T>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin,
    {
        match self {
            Self::Sqlite { url, .. } => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
            }
            Self::Postgres { url, .. } => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query_as(sql).fetch_all(&mut conn).await.unwrap()
            }
        }
    }

    /// Every `table.column` of text or bytes in which some row holds `needle`, whichever
    /// backend it is: where a value is still written down.
    pub async fn columns_holding(&self, needle: &str) -> Vec<String> {
        let columns: Vec<(String, String, String)> = self
            .rows(match self {
                Self::Sqlite { .. } => {
                    "SELECT m.name, c.name, lower(c.type) FROM sqlite_master m \
                     JOIN pragma_table_info(m.name) c WHERE m.type = 'table' \
                     AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations' \
                     ORDER BY 1, 2"
                }
                Self::Postgres { .. } => {
                    "SELECT table_name::text, column_name::text, data_type::text \
                     FROM information_schema.columns WHERE table_schema = 'public' \
                     AND table_name <> '_sqlx_migrations' ORDER BY 1, 2"
                }
            })
            .await;
        let mut holding = Vec::new();
        for (table, column, kind) in columns {
            let condition = match (self, kind.as_str()) {
                (Self::Sqlite { .. }, "text" | "blob") => {
                    format!("instr(CAST(\"{column}\" AS BLOB), CAST($1 AS BLOB)) > 0")
                }
                (Self::Postgres { .. }, "text" | "character varying") => {
                    format!("strpos(\"{column}\", $1) > 0")
                }
                (Self::Postgres { .. }, "bytea") => {
                    format!("position(convert_to($1, 'UTF8') IN \"{column}\") > 0")
                }
                _ => continue,
            };
            let sql = format!("SELECT COUNT(*) FROM \"{table}\" WHERE {condition}");
            let found: i64 = match self {
                Self::Sqlite { url, .. } => {
                    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                    sqlx::query_scalar(&sql)
                        .bind(needle)
                        .fetch_one(&mut conn)
                        .await
                        .unwrap()
                }
                Self::Postgres { url, .. } => {
                    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                    sqlx::query_scalar(&sql)
                        .bind(needle)
                        .fetch_one(&mut conn)
                        .await
                        .unwrap()
                }
            };
            if found > 0 {
                holding.push(format!("{table}.{column}"));
            }
        }
        holding
    }

    /// Whether the SQLite database's files (the database and its write-ahead log, after a
    /// checkpoint) hold `needle` anywhere, free pages included; `None` on PostgreSQL.
    pub async fn files_hold(&self, needle: &str) -> Option<bool> {
        let Self::Sqlite { url, .. } = self else {
            return None;
        };
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            .await
            .unwrap();
        conn.close().await.unwrap();
        let path = url.trim_start_matches("sqlite://");
        let needle = needle.as_bytes();
        Some([path.to_owned(), format!("{path}-wal")].iter().any(|file| {
            std::fs::read(file).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        }))
    }

    /// The number a `SELECT COUNT(*) ...` reads, straight from the database.
    pub async fn count(&self, sql: &'static str) -> i64 {
        let rows: Vec<(i64,)> = self.rows(sql).await;
        rows[0].0
    }

    /// The single text column of every row `sql` reads, straight from the database.
    pub async fn text_rows(&self, sql: &'static str) -> Vec<(String,)> {
        self.rows(sql).await
    }

    /// Every stored key, straight from the table: its hash, and all its text cells joined.
    pub async fn stored_keys(&self) -> Vec<(Vec<u8>, String)> {
        self.rows(
            "SELECT key_hash, id || name || role || hint || coalesce(created_by, '') \
             FROM api_keys ORDER BY id",
        )
        .await
    }

    /// Every dashboard session as stored: its token's hash, and all its text cells joined.
    pub async fn stored_sessions(&self) -> Vec<(Vec<u8>, String)> {
        self.rows("SELECT token_hash, id || key_id FROM dashboard_sessions ORDER BY id")
            .await
    }

    /// Each gift subscription's code as it is stored: sealed (until redeemed) and hashed.
    pub async fn gift_codes_at_rest(&self) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
        self.rows("SELECT code_sealed, code_hash FROM gift_subscriptions ORDER BY id")
            .await
    }

    /// Puts the database back to before announcements began for readers who hold something:
    /// no announcement and no mark, then the marks migration 0014 seeds (`baseline`). The
    /// readers marked.
    pub async fn restart_announcements(&self) -> Vec<String> {
        let _: Vec<(String,)> = self
            .rows("DELETE FROM entitlement_announcements RETURNING reader_id")
            .await;
        let _: Vec<(String,)> = self
            .rows("DELETE FROM entitlement_checks RETURNING reader_id")
            .await;
        let seeded: Vec<(String,)> = self
            .rows(
                "INSERT INTO entitlement_checks (reader_id, cause, due_at) \
                 SELECT reader_id, 'baseline', 0 FROM customers WHERE reader_id IS NOT NULL \
                 UNION SELECT reader_id, 'baseline', 0 FROM grants \
                 UNION SELECT reader_id, 'baseline', 0 FROM licence_members \
                 UNION SELECT reader_id, 'baseline', 0 FROM team_members \
                 UNION SELECT owner_id, 'baseline', 0 FROM teams RETURNING reader_id",
            )
            .await;
        seeded.into_iter().map(|(reader,)| reader).collect()
    }

    /// The answers kept for idempotent replay, as text.
    pub async fn idempotent_bodies(&self) -> Vec<String> {
        let rows: Vec<(Vec<u8>,)> = self
            .rows("SELECT body FROM idempotency_keys WHERE body IS NOT NULL")
            .await;
        rows.into_iter()
            .map(|(body,)| String::from_utf8_lossy(&body).into_owned())
            .collect()
    }

    /// The private signing keys (PEM) stored in the database, read on a thread of its own: for
    /// a `Drop`, which runs inside the test's runtime and cannot block on it.
    pub fn private_signing_keys(&self) -> anyhow::Result<Vec<String>> {
        const SQL: &str = "SELECT private_key_pem FROM signing_keys";
        let (url, postgres) = (self.url().to_owned(), self.is_postgres());
        let read = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let rows: Vec<(String,)> = if postgres {
                    let mut conn = sqlx::PgConnection::connect(&url).await?;
                    let rows = sqlx::query_as(SQL).fetch_all(&mut conn).await?;
                    conn.close().await?;
                    rows
                } else {
                    let mut conn = sqlx::SqliteConnection::connect(&url).await?;
                    let rows = sqlx::query_as(SQL).fetch_all(&mut conn).await?;
                    conn.close().await?;
                    rows
                };
                anyhow::Ok(rows.into_iter().map(|(pem,)| pem).collect())
            })
        });
        read.join()
            .map_err(|_| anyhow::anyhow!("the thread reading the signing keys panicked"))?
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Self::Postgres {
            admin_url, name, ..
        } = self
        {
            let (admin_url, db_name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime, which cannot be blocked on: use a thread.
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
                    conn.execute(
                        format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)").as_str(),
                    )
                    .await?;
                    conn.close().await
                })
            })
            .join();
            if !matches!(dropped, Ok(Ok(()))) {
                eprintln!("could not drop test database {name}");
            }
        }
    }
}

/// A running tollgate and what a test needs to talk to it.
pub struct TestApp {
    pub address: String,
    pub client: Client,
    pub admin_key: String,
    pub clock: ManualClock,
    pub store: Arc<dyn Store>,
    configure: Option<fn(&mut Settings)>,
    proxy: Option<Proxy>,
    /// The log lines written while the app ran, checked for secrets when it is dropped.
    logs: Window,
    /// The metrics of every instance, checked for secrets when the app is dropped.
    metrics: Mutex<Vec<prometheus::Registry>>,
    // Dropped last, after the server that uses it.
    pub db: TestDatabase,
}

/// Knobs for [`spawn_app_with`].
#[derive(Default)]
pub struct Options {
    /// Route PostgreSQL traffic through a proxy the test can cut.
    pub via_proxy: bool,
    /// Overrides the request body limit.
    pub body_limit: Option<usize>,
    /// Overrides the Stripe webhook secrets (by default, [`WEBHOOK_SECRET`] alone).
    pub webhook_secrets: Option<Vec<&'static str>>,
    /// How often failed events are retried (by default, rarely enough never to happen in a test).
    pub retry_interval: Option<Duration>,
    /// Stripe's API: base URL and secret key (by default, not configured).
    pub stripe_api: Option<(String, &'static str)>,
    /// Any other change to the settings (meter policy, token lifetimes ...).
    pub configure: Option<fn(&mut Settings)>,
}

/// The key of erased readers' pseudonyms test apps are configured with.
pub const TEST_ERASURE_KEY: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

/// The webhook signing secret test apps are configured with.
pub const WEBHOOK_SECRET: &str = "whsec_test_primary";

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    let db = TestDatabase::create().await;
    let proxy = match (&db, options.via_proxy) {
        (TestDatabase::Postgres { url, .. }, true) => Some(Proxy::start(url).await),
        _ => None,
    };
    let database_url = proxy
        .as_ref()
        .map_or_else(|| db.url().to_owned(), |p| p.url.clone());
    let mut settings = test_settings(database_url);
    settings.stripe_webhook_secrets = options
        .webhook_secrets
        .unwrap_or_else(|| vec![WEBHOOK_SECRET])
        .into_iter()
        .map(Into::into)
        .collect();
    if let Some(limit) = options.body_limit {
        settings.body_limit = limit;
    }
    settings.webhook_retry_interval = options.retry_interval.unwrap_or(Duration::from_secs(3600));
    if let Some((base, key)) = options.stripe_api {
        settings.stripe_api_base = base;
        settings.stripe_secret_key = Some(key.into());
    }
    if let Some(configure) = options.configure {
        configure(&mut settings);
    }
    let logs = log_capture::open_window(configured_secrets(&settings));
    let clock = ManualClock::new(test_epoch());
    let app = Application::build(settings, Arc::new(clock.clone()))
        .await
        .unwrap();
    let address = format!("http://{}", app.address());
    let store = app.store();
    let metrics = Mutex::new(vec![app.metrics()]);
    tokio::spawn(app.run_until_stopped());
    let admin = issue_key(
        store.as_ref(),
        &clock,
        KeyRequest::new(Role::Admin, KeyName::parse("test admin").unwrap()),
        None,
        &Actor::cli(),
    )
    .await
    .unwrap();
    TestApp {
        address,
        client: Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        admin_key: admin.secret.expose().to_owned(),
        clock,
        store,
        configure: options.configure,
        proxy,
        logs,
        metrics,
        db,
    }
}

/// The secrets in `settings`, which no log line, error body or metric may show.
fn configured_secrets(settings: &Settings) -> Vec<String> {
    settings
        .stripe_webhook_secrets
        .iter()
        .chain(&settings.stripe_secret_key)
        .chain(&settings.erasure_key)
        .map(|secret| secret.expose_secret().to_owned())
        .collect()
}

impl Drop for TestApp {
    /// Fails the test if a secret reached a log line (which includes every error body), or a
    /// metric, while the app ran. A test that failed already is not checked.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.logs.close();
            return;
        }
        let private_keys = self.db.private_signing_keys().unwrap_or_else(|err| {
            eprintln!("secret check: could not read the signing keys, looking for their shape only: {err:#}");
            Vec::new()
        });
        let metrics: Vec<String> = self
            .metrics
            .lock()
            .unwrap()
            .iter()
            .map(|registry| {
                prometheus::TextEncoder::new()
                    .encode_to_string(&registry.gather())
                    .unwrap()
            })
            .collect();
        if let Err(leaks) = self.logs.check(&private_keys, &metrics) {
            panic!(
                "secrets leaked while this test ran (the lines may come from a test that ran \
                 at the same time: the spans name the route and the host):\n{leaks}"
            );
        }
    }
}

/// The settings every test app starts from.
fn test_settings(database_url: String) -> Settings {
    Settings {
        bind: "127.0.0.1:0".into(),
        database_url: database_url.into(),
        database_acquire_timeout: Duration::from_secs(1),
        sqlite_busy_timeout: Duration::from_millis(250),
        readiness_timeout: Duration::from_secs(1),
        shutdown_timeout: Duration::from_secs(1),
        workers: 1,
        // Events go to receivers the tests run on this machine, and nowhere else.
        webhook_allowed_hosts: vec!["127.0.0.1".into()],
        allow_insecure_webhook_urls: true,
        allow_private_webhook_targets: true,
        webhook_dispatch_interval: Duration::from_millis(50),
        erasure_key: Some(TEST_ERASURE_KEY.into()),
        ..Settings::default()
    }
}

impl TestApp {
    /// Starts another instance on the same database, configured alike and showing the same
    /// time; its base URL. It runs until the test ends.
    pub async fn second_instance(&self) -> String {
        let mut settings = test_settings(self.db.url().to_owned());
        // Generous: the instances' writers compete for one SQLite file.
        settings.sqlite_busy_timeout = Duration::from_secs(5);
        if let Some(configure) = self.configure {
            configure(&mut settings);
        }
        let app = Application::build(settings, Arc::new(self.clock.clone()))
            .await
            .unwrap();
        let address = format!("http://{}", app.address());
        self.metrics.lock().unwrap().push(app.metrics());
        tokio::spawn(app.run_until_stopped());
        address
    }

    /// Every log line written since the app started, by any app of this process.
    pub fn captured_logs(&self) -> String {
        self.logs.text()
    }

    /// `POST /v1/access` with the admin key; the decision.
    pub async fn access(&self, body: serde_json::Value) -> serde_json::Value {
        self.access_at(&self.address, body).await
    }

    /// `POST /v1/access` to the instance at `base`; the decision, which must be a 200.
    pub async fn access_at(&self, base: &str, body: serde_json::Value) -> serde_json::Value {
        let response = self
            .client
            .post(format!("{base}/v1/access"))
            .bearer_auth(&self.admin_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{body}");
        response.json().await.unwrap()
    }

    /// A reader's decision on an article that requires `articles`.
    pub async fn read(&self, reader: &str, article: &str) -> serde_json::Value {
        self.access(serde_json::json!({ "reader_id": reader, "article_id": article }))
            .await
    }

    /// Gives a reader entitlements until 2099 with the admin key.
    pub async fn grant(&self, reader: &str, entitlements: &[&str]) -> serde_json::Value {
        let response = self
            .client
            .post(self.url(&format!("/v1/readers/{reader}/grants")))
            .bearer_auth(&self.admin_key)
            .json(&serde_json::json!({
                "entitlements": entitlements,
                "expires_at": "2099-01-01T00:00:00Z",
                "reason": "test",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Response {
        let mut request = self.client.get(self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send().await.unwrap()
    }

    /// GETs `path` and reads its JSON body, which must come with a 200.
    pub async fn get_json(&self, path: &str, key: Option<&str>) -> serde_json::Value {
        let response = self.get(path, key).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    pub async fn create_key(&self, key: &str, body: serde_json::Value) -> Response {
        self.client
            .post(self.url("/v1/keys"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Creates a key of `role` with the admin key and returns its id and secret.
    pub async fn new_key(&self, role: &str) -> (String, String) {
        let response = self
            .create_key(
                &self.admin_key,
                serde_json::json!({ "role": role, "name": format!("{role} key") }),
            )
            .await;
        assert_eq!(response.status(), 201);
        let body: serde_json::Value = response.json().await.unwrap();
        (
            body["id"].as_str().unwrap().to_owned(),
            body["key"].as_str().unwrap().to_owned(),
        )
    }

    /// POSTs a raw body to `/v1/keys` with this content type and, if given, this key.
    pub async fn post_raw(&self, key: Option<&str>, content_type: &str, body: String) -> Response {
        let mut request = self
            .client
            .post(self.url("/v1/keys"))
            .header("content-type", content_type);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.body(body).send().await.unwrap()
    }

    pub async fn revoke(&self, key: &str, id: &str) -> Response {
        self.client
            .delete(self.url(&format!("/v1/keys/{id}")))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    /// The answers kept for idempotent replay, as text.
    pub async fn stored_idempotent_bodies(&self) -> Vec<String> {
        self.db.idempotent_bodies().await
    }

    pub async fn key_count(&self) -> usize {
        let body = self
            .get_json("/v1/keys?limit=500", Some(&self.admin_key))
            .await;
        body["items"].as_array().unwrap().len()
    }

    /// Delivers `body` to the webhook endpoint as Stripe would, signed with `secret` at `at`.
    pub async fn deliver_signed(&self, body: &[u8], secret: &str, at: i64) -> Response {
        let signature = tollgate::stripe::signature::sign(body, secret, at);
        self.client
            .post(self.url("/v1/webhooks/stripe"))
            .header("content-type", "application/json")
            .header("stripe-signature", signature)
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// Delivers `body` signed with the configured secret, now.
    pub async fn deliver(&self, body: &[u8]) -> Response {
        self.deliver_signed(body, WEBHOOK_SECRET, self.clock.now().timestamp())
            .await
    }

    /// Takes the database away until the returned outage ends: on PostgreSQL the proxy between
    /// tollgate and the server is cut; on SQLite another connection holds the write lock.
    pub async fn database_outage(&self) -> Outage<'_> {
        match (&self.db, &self.proxy) {
            (TestDatabase::Postgres { .. }, Some(proxy)) => {
                proxy.cut();
                Outage::Postgres(proxy)
            }
            (TestDatabase::Sqlite { url, .. }, _) => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                conn.execute("BEGIN EXCLUSIVE").await.unwrap();
                Outage::Sqlite(conn)
            }
            (TestDatabase::Postgres { .. }, None) => {
                panic!("spawn the app with `via_proxy` to cut its database")
            }
        }
    }
}

/// A database outage in progress.
pub enum Outage<'a> {
    Postgres(&'a Proxy),
    Sqlite(sqlx::SqliteConnection),
}

impl Outage<'_> {
    pub async fn end(self) {
        match self {
            Outage::Postgres(proxy) => proxy.restore().await,
            Outage::Sqlite(mut conn) => {
                conn.execute("ROLLBACK").await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }
}

/// A TCP proxy in front of PostgreSQL that a test can cut and restore.
pub struct Proxy {
    pub url: String,
    listen: std::net::SocketAddr,
    upstream: String,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    pub async fn start(database_url: &str) -> Self {
        let parsed = url::Url::parse(database_url).unwrap();
        let upstream = format!(
            "{}:{}",
            parsed.host_str().unwrap(),
            parsed.port().unwrap_or(5432)
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listen = listener.local_addr().unwrap();
        let mut url = parsed.clone();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(listen.port())).unwrap();
        let proxy = Self {
            url: url.to_string(),
            listen,
            upstream,
            tasks: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let tasks = Arc::clone(&self.tasks);
        let upstream = self.upstream.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(pipe);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Closes the listening socket and every open connection.
    pub fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restore(&self) {
        let listener = TcpListener::bind(self.listen).await.unwrap();
        self.serve(listener);
    }
}

/// Reads a problem document, checking its media type and members.
pub async fn problem(response: Response, status: u16, code: &str) -> serde_json::Value {
    assert_eq!(response.status(), status, "unexpected status");
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some("application/problem+json".to_owned())
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["type"], format!("urn:tollgate:problem:{code}"));
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    body
}

/// The instant `secs` Unix seconds name.
pub fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

/// A Stripe event built from a fixture: its id and creation time replaced, then `edit` applied
/// to its `data.object`.
pub fn event(
    fixture: &[u8],
    id: &str,
    created: i64,
    edit: impl FnOnce(&mut serde_json::Value),
) -> Vec<u8> {
    let mut event: serde_json::Value = serde_json::from_slice(fixture).unwrap();
    event["id"] = id.into();
    event["created"] = created.into();
    edit(&mut event["data"]["object"]);
    serde_json::to_vec(&event).unwrap()
}

/// A `PUT /v1/plans/{id}` body: a name, prices and entitlements, and the optional fields only
/// when a test sets them (left out, the server's defaults apply).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanBody {
    name: String,
    stripe_prices: Vec<String>,
    entitlements: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trial_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allow_promotion_codes: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seats: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gift_price: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gift_months: Option<u32>,
}

impl PlanBody {
    pub fn new(name: impl Into<String>, prices: &[&str], entitlements: &[&str]) -> Self {
        let owned = |names: &[&str]| names.iter().map(|&n| n.to_owned()).collect();
        Self {
            name: name.into(),
            stripe_prices: owned(prices),
            entitlements: owned(entitlements),
            trial_days: None,
            allow_promotion_codes: None,
            seats: None,
            gift_price: None,
            gift_months: None,
        }
    }

    /// Sold by the seat.
    pub fn seats(mut self) -> Self {
        self.seats = Some(true);
        self
    }

    /// Given for `months` at the one-off `price`.
    pub fn gift(mut self, price: &str, months: u32) -> Self {
        self.gift_price = Some(price.to_owned());
        self.gift_months = Some(months);
        self
    }

    pub fn trial_days(mut self, days: u32) -> Self {
        self.trial_days = Some(days);
        self
    }

    pub fn allow_promotion_codes(mut self, allow: bool) -> Self {
        self.allow_promotion_codes = Some(allow);
        self
    }

    /// The body as JSON, for a test to break a field of.
    pub fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap()
    }
}

impl TestApp {
    /// `PUT /v1/plans/{id}` with the admin key and `body` (a [`PlanBody`], or any JSON); the
    /// answer, whatever it is.
    pub async fn put_plan_body(&self, id: &str, body: &impl serde::Serialize) -> Response {
        self.client
            .put(self.url(&format!("/v1/plans/{id}")))
            .bearer_auth(&self.admin_key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Creates (or replaces) a plan with the admin key; it must succeed.
    pub async fn put_plan_with(&self, id: &str, plan: &PlanBody) {
        let response = self.put_plan_body(id, plan).await;
        assert!(
            response.status().is_success(),
            "PUT plan {id}: {}",
            response.status()
        );
    }

    /// Creates (or replaces) a plan named after its id with the admin key.
    pub async fn put_plan(&self, id: &str, prices: &[&str], entitlements: &[&str]) {
        self.put_plan_with(id, &PlanBody::new(id, prices, entitlements))
            .await;
    }

    /// `POST /v1/admin/signing-keys/rotate` with the admin key, which must succeed; the answer.
    pub async fn rotate_signing_key(&self) -> serde_json::Value {
        let response = self
            .client
            .post(self.url("/v1/admin/signing-keys/rotate"))
            .bearer_auth(&self.admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// `GET /v1/readers/{id}` with the admin key.
    pub async fn reader(&self, id: &str) -> serde_json::Value {
        self.get_json(&format!("/v1/readers/{id}"), Some(&self.admin_key))
            .await
    }

    /// The names of the entitlements a reader holds now.
    pub async fn entitlements(&self, id: &str) -> Vec<String> {
        self.reader(id).await["entitlements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// How many of `readers` hold any entitlement now.
    pub async fn entitled_among(&self, readers: &[String]) -> usize {
        let mut entitled = 0;
        for reader in readers {
            entitled += usize::from(!self.entitlements(reader).await.is_empty());
        }
        entitled
    }

    /// Delivers a signed event, which must be acknowledged with 200.
    pub async fn deliver_ok(&self, body: &[u8]) {
        let response = self.deliver(body).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }

    /// The stored event with this id, as the admin listing shows it.
    pub async fn stored_event(&self, id: &str) -> serde_json::Value {
        let page = self
            .get_json("/v1/admin/webhook-events?limit=500", Some(&self.admin_key))
            .await;
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no stored event {id}"))
    }
}
