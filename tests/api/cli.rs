//! The `tollgate` binary, run as an operator would run it.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::TestDatabase;
use crate::log_capture;

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

/// The binary with a clean environment: no inherited TOLLGATE_* or DATABASE_URL.
fn tollgate(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.current_dir(dir).env_clear().kill_on_drop(true);
    command
}

/// A `tollgate serve` process and everything it has logged so far.
struct Served {
    child: Child,
    address: String,
    log: Arc<Mutex<String>>,
}

impl Served {
    async fn start(mut command: Command) -> Self {
        let mut child = command
            .arg("serve")
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let address = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                log.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(address) = listening_address(&line) {
                    return address;
                }
            }
            panic!("tollgate exited before listening:\n{}", log.lock().unwrap());
        })
        .await
        .expect("tollgate did not start listening");
        let sink = Arc::clone(&log);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Self {
            child,
            address: format!("http://{address}"),
            log,
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    async fn terminate(self) -> String {
        let pid = self.child.id().unwrap().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        self.terminate_after_signal().await
    }

    /// Waits for a clean exit after a signal was sent, and returns the whole log, which must
    /// show no secret.
    async fn terminate_after_signal(mut self) -> String {
        let exit = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(exit.success(), "tollgate exited with {exit}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let log = self.log.lock().unwrap().clone();
        let leaks = log_capture::leaks_in(&log);
        assert!(
            leaks.is_empty(),
            "secrets in the log:\n{}",
            leaks.join("\n")
        );
        log
    }
}

/// The address in the "listening" line, in either log format.
fn listening_address(line: &str) -> Option<String> {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(line) {
        return (json["message"] == "listening")
            .then(|| json["address"].as_str().unwrap().to_owned());
    }
    let rest = line.split("listening address=").nth(1)?;
    Some(rest.split_whitespace().next()?.to_owned())
}

async fn create_key(command: &mut Command, role: &str) -> String {
    let output = command
        .args(["keys", "create", "--role", role, "--name", "ops"])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A database with an admin key made by `tollgate keys create`, and a server on it.
struct Deployment {
    // Declared first so that the server stops before its database goes.
    server: Served,
    admin: String,
    _db: TestDatabase,
    _dir: tempfile::TempDir,
}

async fn deploy(env: &[(&str, &str)]) -> Deployment {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let admin = create_key(tollgate(dir.path()).env("DATABASE_URL", db.url()), "admin")
        .await
        .trim()
        .to_owned();
    let mut command = tollgate(dir.path());
    command
        .env("DATABASE_URL", db.url())
        .env("TOLLGATE_BIND", "127.0.0.1:0")
        .envs(env.iter().copied());
    let server = Served::start(command).await;
    Deployment {
        server,
        admin,
        _db: db,
        _dir: dir,
    }
}

#[tokio::test]
async fn with_no_configuration_it_serves_from_a_sqlite_file_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    // The only setting: a free port instead of 8080, which another process may hold.
    let mut command = tollgate(dir.path());
    command.env("TOLLGATE_BIND", "127.0.0.1:0");
    let server = Served::start(command).await;
    assert!(dir.path().join("tollgate.db").is_file());
    let ready = reqwest::get(format!("{}/readyz", server.address))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let log = server.terminate().await;
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[tokio::test]
async fn keys_create_prints_only_the_key_and_the_key_opens_the_api() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = tollgate(dir.path());
    command.env("DATABASE_URL", db.url());
    let stdout = create_key(&mut command, "admin").await;
    let key = stdout.strip_suffix('\n').unwrap();
    assert!(
        !key.contains('\n'),
        "more than the key on stdout: {stdout:?}"
    );
    assert!(key.starts_with("tgk_") && key.len() == 68, "{key:?}");

    let mut command = tollgate(dir.path());
    command
        .env("DATABASE_URL", db.url())
        .env("TOLLGATE_BIND", "127.0.0.1:0");
    let server = Served::start(command).await;
    let client = reqwest::Client::new();
    let listed = client
        .get(format!("{}/v1/keys", server.address))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    // The command line's write is on the record, as the command line's.
    let audit: serde_json::Value = client
        .get(format!("{}/v1/admin/audit-log", server.address))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entry = &audit["items"][0];
    assert_eq!(entry["action"], "key.create", "{audit}");
    assert_eq!(entry["role"], "cli");
    assert_eq!(entry["key_id"], serde_json::Value::Null);
    assert!(
        !audit.to_string().contains(&key[4..]),
        "the audit log shows a secret"
    );
    server.terminate().await;

    let output = tollgate(dir.path())
        .env("DATABASE_URL", db.url())
        .args(["keys", "list"])
        .output()
        .await
        .unwrap();
    let listing = String::from_utf8(output.stdout).unwrap();
    assert!(listing.contains("\tadmin\tops\t"), "{listing}");
    assert!(!listing.contains(&key[4..]), "keys list shows a secret");
}

#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish_before_the_process_exits() {
    a_request_in_flight_finishes_after("TERM").await;
}

#[tokio::test]
async fn sigint_lets_a_request_in_flight_finish_before_the_process_exits() {
    a_request_in_flight_finishes_after("INT").await;
}

async fn a_request_in_flight_finishes_after(signal: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let Deployment {
        server,
        admin,
        _db,
        _dir,
    } = deploy(&[]).await;

    // A request that stops after its headers: the server's `100 Continue` shows it is being
    // served, and its body is sent only after the signal, so it is in flight when that comes.
    let body = r#"{"role": "service", "name": "in flight"}"#;
    let mut stream = tokio::net::TcpStream::connect(server.address.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST /v1/keys HTTP/1.1\r\nHost: tollgate\r\nAuthorization: Bearer {admin}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("100 Continue\r\n\r\n") {
        let mut buffer = [0u8; 256];
        let read = stream.read(&mut buffer).await.unwrap();
        assert!(read > 0, "the connection closed before 100 Continue");
        seen.extend_from_slice(&buffer[..read]);
    }
    let pid = server.child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    stream.write_all(body.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert!(response.contains("\"name\":\"in flight\""), "{response}");
    let log = server.terminate_after_signal().await;
    assert!(log.contains(&format!("signal=\"SIG{signal}\"")), "{log}");
    assert!(log.contains("shutting down"), "{log}");
}

#[tokio::test]
async fn each_request_is_logged_once_with_its_id_and_no_api_key_appears_even_at_debug_level() {
    let Deployment {
        server,
        admin,
        _db,
        _dir,
    } = deploy(&[
        ("TOLLGATE_LOG_LEVEL", "debug"),
        ("TOLLGATE_LOG_FORMAT", "json"),
    ])
    .await;
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("{}/v1/keys", server.address))
        .bearer_auth(&admin)
        .json(&serde_json::json!({ "role": "service", "name": "frontend" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let service = created["key"].as_str().unwrap().to_owned();
    let unknown = format!("tgk_{}", "ab".repeat(32));
    for key in [&service, &unknown, &admin] {
        client
            .get(format!("{}/v1/keys", server.address))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
    }
    let log = server.terminate().await;
    assert!(
        log.contains("API key created"),
        "the log was not captured:\n{log}"
    );
    let finished: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["message"] == "request finished")
        .collect();
    assert_eq!(finished.len(), 4, "one access-log line per request:\n{log}");
    assert!(
        finished
            .iter()
            .all(|line| line["span"]["request_id"].is_string()),
        "{log}"
    );
    for secret in [&admin, &service, &unknown] {
        assert!(
            !log.contains(&secret[4..]),
            "a key appears in the log:\n{log}"
        );
    }
}

#[tokio::test]
async fn configuration_is_shown_and_logged_without_the_database_password() {
    let dir = tempfile::tempdir().unwrap();
    let url = "postgres://tollgate:pa55-w0rd-xyz@127.0.0.1:1/tollgate";
    let output = tollgate(dir.path())
        .env("DATABASE_URL", url)
        .arg("config")
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let shown = String::from_utf8(output.stdout).unwrap();
    assert!(shown.contains("127.0.0.1:1/tollgate"), "{shown}");
    assert!(!shown.contains("pa55-w0rd-xyz"), "{shown}");

    // Port 1 refuses the connection: start-up fails, after logging its configuration.
    let output = tollgate(dir.path())
        .env("DATABASE_URL", url)
        .env("TOLLGATE_DATABASE_ACQUIRE_TIMEOUT", "1s")
        .arg("serve")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let log = String::from_utf8(output.stderr).unwrap();
    assert!(log.contains("starting"), "{log}");
    assert!(!log.contains("pa55-w0rd-xyz"), "{log}");
}

#[tokio::test]
async fn a_bad_setting_stops_start_up_with_a_message_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = tollgate(dir.path())
        .env("TOLLGATE_BODY_LIMT", "10")
        .arg("serve")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let message = String::from_utf8(output.stderr).unwrap();
    assert!(message.contains("body_limt"), "{message}");
    assert!(
        !dir.path().join("tollgate.db").exists(),
        "it started anyway"
    );
}

#[tokio::test]
async fn storage_purge_removes_what_has_expired_and_prints_what_it_removed_as_json() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    create_key(
        tollgate(dir.path()).env("DATABASE_URL", db.url()),
        "finance",
    )
    .await;
    // A dashboard session of that key that ended in 1970.
    let sql = if db.is_postgres() {
        "INSERT INTO dashboard_sessions (id, token_hash, key_id, created_at, expires_at) \
         SELECT 'ses_ended', decode(repeat('00', 32), 'hex'), id, 0, 1000 FROM api_keys \
         RETURNING id"
    } else {
        "INSERT INTO dashboard_sessions (id, token_hash, key_id, created_at, expires_at) \
         SELECT 'ses_ended', zeroblob(32), id, 0, 1000 FROM api_keys RETURNING id"
    };
    assert_eq!(db.text_rows(sql).await, [("ses_ended".to_owned(),)]);

    let output = tollgate(dir.path())
        .env("DATABASE_URL", db.url())
        .args(["storage", "purge"])
        .output()
        .await
        .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        report["removed"],
        serde_json::json!({
            "meter_unlocks": 0,
            "webhook_bodies": 0,
            "delivered_deliveries": 0,
            "failed_deliveries": 0,
            "idempotency_keys": 0,
            "dashboard_sessions": 1,
            "erasure_notices": 0,
        })
    );
    assert_eq!(report["batches"], 7);
    assert_eq!(db.count("SELECT COUNT(*) FROM dashboard_sessions").await, 0);
}
