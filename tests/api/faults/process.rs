//! tollgate as its own process: the release or debug binary this crate built, started with
//! `serve` on a port of its own and a database of the test's, killed with SIGKILL, restarted.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use serde_json::Value;

use super::SECRET;
use super::scenario::PLANS;
use crate::helpers::PlanBody;

const BINARY: &str = env!("CARGO_BIN_EXE_tollgate");

/// A tollgate process and how to start it again.
pub struct Server {
    port: u16,
    env: Vec<(String, String)>,
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
    /// An admin key for this database, made with `tollgate keys create`.
    pub admin_key: String,
}

impl Server {
    /// Migrates the database at `database_url`, makes an admin key and starts the server with
    /// the fault suite's settings, then `env` on top; returns once it answers `/healthz`.
    pub async fn start(database_url: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut settings: Vec<(String, String)> = [
            ("DATABASE_URL", database_url),
            ("TOLLGATE_BIND", &format!("127.0.0.1:{port}")),
            ("TOLLGATE_STRIPE_WEBHOOK_SECRETS", SECRET),
            ("TOLLGATE_LOG_LEVEL", "info"),
            ("TOLLGATE_WORKERS", "2"),
            // Events a crash left stored but unapplied are picked up within a second or so.
            ("TOLLGATE_WEBHOOK_RETRY_INTERVAL", "200ms"),
            ("TOLLGATE_WEBHOOK_RETRY_BACKOFF", "1s"),
            ("TOLLGATE_RATE_LIMIT_ACCESS_PER_READER", "0"),
            ("TOLLGATE_SHUTDOWN_TIMEOUT", "2s"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (key, value) in env {
            settings.retain(|(k, _)| k != key);
            settings.push(((*key).to_owned(), (*value).to_owned()));
        }
        let made = Command::new(BINARY)
            .args(["keys", "create", "--role", "admin", "--name", "fault suite"])
            .env_clear()
            .envs(settings.iter().cloned())
            .output()
            .await
            .unwrap();
        assert!(
            made.status.success(),
            "keys create: {}",
            String::from_utf8_lossy(&made.stderr)
        );
        let admin_key = String::from_utf8(made.stdout).unwrap().trim().to_owned();
        let mut server = Self {
            port,
            env: settings,
            child: None,
            log: dir.path().join("server.log"),
            _dir: dir,
            admin_key,
        };
        server.spawn().await;
        server
    }

    /// Its base URL; the same across restarts.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Puts the scenario's plans, as an admin would.
    pub async fn put_plans(&self) {
        let http = super::client();
        for (id, price, entitlements) in PLANS {
            let response = http
                .put(format!("{}/v1/plans/{id}", self.base()))
                .bearer_auth(&self.admin_key)
                .json(&PlanBody::new(id, &[price], entitlements))
                .send()
                .await
                .unwrap();
            assert!(
                response.status().is_success(),
                "PUT plan {id}: {}",
                response.status()
            );
        }
    }

    /// `GET <path>` with the admin key.
    async fn admin_get(&self, path: &str) -> reqwest::Response {
        super::client()
            .get(format!("{}{path}", self.base()))
            .bearer_auth(&self.admin_key)
            .send()
            .await
            .unwrap()
    }

    /// `GET /v1/readers/{id}`.
    pub async fn reader(&self, id: &str) -> Value {
        self.admin_get(&format!("/v1/readers/{id}"))
            .await
            .json()
            .await
            .unwrap()
    }

    /// The server's `/metrics` page.
    pub async fn metrics(&self) -> String {
        self.admin_get("/metrics").await.text().await.unwrap()
    }

    /// The names of the entitlements a reader holds, sorted.
    pub async fn entitlements(&self, id: &str) -> Vec<String> {
        let mut names: Vec<String> = self.reader(id).await["entitlements"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(BINARY)
            .arg("serve")
            .env_clear()
            .envs(self.env.iter().cloned())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.wait_healthy().await;
    }

    async fn wait_healthy(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("tollgate exited with {status}:\n{}", self.log_text());
            }
            let answer = client.get(format!("{}/healthz", self.base())).send().await;
            if answer.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("tollgate did not start:\n{}", self.log_text());
    }

    /// SIGKILL: no shutdown, no draining, whatever it was doing.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().unwrap();
            child.wait().await.unwrap();
        }
    }

    /// Starts it again on the same port and database.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().and_then(Child::id).unwrap()
    }

    /// The most memory it has held at once (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:")
    }

    /// The memory it holds now (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:")
    }

    /// Everything it logged, across restarts.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    /// Fails the test if a secret reached the server's log, across all its restarts.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let leaks = crate::log_capture::leaks_in(&self.log_text());
        assert!(
            leaks.is_empty(),
            "secrets in the log:\n{}",
            leaks.join("\n")
        );
    }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
