//! A publisher's service receiving tollgate's events: an actix-web server on a loopback port
//! that records every delivery, verifies its Standard Webhooks signature itself (with HMAC code
//! of this test crate, not tollgate's), and answers as the test scripts it: a status per
//! request in turn, then 200; optionally after a delay.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// One delivery as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signatures: Vec<String>,
    pub body: String,
    pub user_agent: String,
    pub content_type: String,
    /// The status the receiver answered with.
    pub answered: u16,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }

    pub fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap().to_owned()
    }

    /// Whether one of its signatures is the one `secret` makes (the Standard Webhooks rule:
    /// HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed with the base64 after `whsec_`).
    pub fn verifies_with(&self, secret: &str) -> bool {
        let key = BASE64
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{}.{}.{}", self.id, self.timestamp, self.body).as_bytes());
        let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
        self.signatures.contains(&expected)
    }
}

#[derive(Default)]
struct Script {
    statuses: VecDeque<u16>,
    /// The status once the script is used up.
    then: Option<u16>,
    delay: Option<Duration>,
    /// The `Location` of 3xx answers.
    location: Option<String>,
}

/// The running receiver.
pub struct Receiver {
    pub url: String,
    pub port: u16,
    seen: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Script>>,
    /// Requests that arrived, answered or not yet.
    started: Arc<AtomicUsize>,
    handle: ServerHandle,
}

impl Receiver {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0").await
    }

    /// A receiver on `address` (a port a test reserved, to restart on).
    pub async fn start_on(address: &str) -> Self {
        let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script: Arc<Mutex<Script>> = Arc::default();
        let started: Arc<AtomicUsize> = Arc::default();
        let (s, sc, st) = (Arc::clone(&seen), Arc::clone(&script), Arc::clone(&started));
        let server = HttpServer::new(move || {
            let (seen, script, started) = (Arc::clone(&s), Arc::clone(&sc), Arc::clone(&st));
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (seen, script) = (Arc::clone(&seen), Arc::clone(&script));
                started.fetch_add(1, Ordering::SeqCst);
                async move {
                    let header = |name: &str| {
                        req.headers()
                            .get(name)
                            .map(|v| v.to_str().unwrap().to_owned())
                            .unwrap_or_default()
                    };
                    let (status, delay, location) = {
                        let mut script = script.lock().unwrap();
                        let status = script.statuses.pop_front().or(script.then).unwrap_or(200);
                        (status, script.delay, script.location.clone())
                    };
                    if let Some(delay) = delay {
                        tokio::time::sleep(delay).await;
                    }
                    seen.lock().unwrap().push(Received {
                        id: header("webhook-id"),
                        timestamp: header("webhook-timestamp"),
                        signatures: header("webhook-signature")
                            .split(' ')
                            .map(str::to_owned)
                            .collect(),
                        body: String::from_utf8(body.to_vec()).unwrap(),
                        user_agent: header("user-agent"),
                        content_type: header("content-type"),
                        answered: status,
                    });
                    let mut answer = HttpResponse::build(StatusCode::from_u16(status).unwrap());
                    if let (Some(location), 300..=399) = (location, status) {
                        answer.insert_header(("location", location));
                    }
                    answer.body("ok")
                }
            }))
        })
        .workers(2)
        .disable_signals()
        .bind(address)
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/hooks"),
            port,
            seen,
            script,
            started,
            handle,
        }
    }

    /// Sends 3xx answers to `location`.
    pub fn redirect_to(&self, location: &str) {
        self.script.lock().unwrap().location = Some(location.to_owned());
    }

    /// How many requests arrived, answered or not yet.
    pub fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    /// Answers the next requests with `statuses`, in turn.
    pub fn answer(&self, statuses: &[u16]) {
        self.script.lock().unwrap().statuses.extend(statuses);
    }

    /// Answers with `status` once the scripted answers are used up.
    pub fn then_answer(&self, status: u16) {
        self.script.lock().unwrap().then = Some(status);
    }

    /// Waits `delay` before answering.
    pub fn delay(&self, delay: Duration) {
        self.script.lock().unwrap().delay = Some(delay);
    }

    pub fn received(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    /// The deliveries of type `kind`.
    pub fn of_type(&self, kind: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.kind() == kind)
            .collect()
    }

    /// Waits (up to 15 s) until `done` holds of what was received; what was received.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        self.wait_within(what, Duration::from_secs(15), done).await
    }

    /// Waits up to `within` until `done` holds of what was received; what was received.
    pub async fn wait_within(
        &self,
        what: &str,
        within: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            let received = self.received();
            if done(&received) {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "waited {within:?} for {what}; received: {:#?}",
            self.received()
                .iter()
                .map(|r| (r.kind(), r.id.clone()))
                .collect::<Vec<_>>()
        );
    }
}

impl Drop for Receiver {
    /// Stops the server (the stop command is sent at once; nothing waits for it).
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}
