//! A local stand-in for api.stripe.com: an actix-web server on a loopback port that answers every
//! request with the test's function and records what it saw (method, path, query, form body and
//! the headers tollgate sends), so tests can assert exactly what went to Stripe.

use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::json;

use crate::helpers::{Options, TestApp, spawn_app_with};

/// What the fake Stripe saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The query string's pairs, percent-decoded (`created%5Bgte%5D` reads `created[gte]`).
    pub query: Vec<(String, String)>,
    /// The form body's pairs, percent-decoded, in the order sent.
    pub form: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub idempotency_key: Option<String>,
}

impl Seen {
    fn of(req: &HttpRequest, body: &[u8]) -> Self {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        Self {
            method: req.method().to_string(),
            path: req.path().to_owned(),
            query: url::form_urlencoded::parse(req.query_string().as_bytes())
                .into_owned()
                .collect(),
            form: url::form_urlencoded::parse(body).into_owned().collect(),
            authorization: header("authorization"),
            idempotency_key: header("idempotency-key"),
        }
    }

    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The form body as sorted `name=value` lines, for exact comparisons.
    pub fn form_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.form.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lines.sort();
        lines
    }
}

type Answer = Arc<dyn Fn(&Seen) -> HttpResponse + Send + Sync>;

/// The fake server; stop it at the end of the test.
pub struct FakeStripe {
    pub base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    handle: ServerHandle,
}

impl FakeStripe {
    /// Starts a fake that answers every request with `answer` (which may block to play a slow
    /// Stripe: the fake has a thread of its own).
    pub async fn start(answer: impl Fn(&Seen) -> HttpResponse + Send + Sync + 'static) -> Self {
        let answer: Answer = Arc::new(answer);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&seen);
        let server = HttpServer::new(move || {
            let answer = Arc::clone(&answer);
            let recorded = Arc::clone(&recorded);
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let answer = Arc::clone(&answer);
                let recorded = Arc::clone(&recorded);
                async move {
                    let seen = Seen::of(&req, &body);
                    recorded.lock().unwrap().push(seen.clone());
                    answer(&seen)
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let address = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base: format!("http://{address}/"),
            seen,
            handle,
        }
    }

    /// Every request so far, in the order they came.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The paths of every request so far.
    pub fn paths(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.path).collect()
    }

    /// An app whose Stripe API is this fake, reached with `secret_key`, with `configure`'s
    /// other settings.
    pub async fn app_with(
        &self,
        secret_key: &'static str,
        configure: Option<fn(&mut tollgate::config::Settings)>,
    ) -> TestApp {
        spawn_app_with(Options {
            stripe_api: Some((self.base.clone(), secret_key)),
            configure,
            ..Options::default()
        })
        .await
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// Stripe's answer to a request it has no route for.
pub fn unrecognized(seen: &Seen) -> HttpResponse {
    HttpResponse::NotFound().json(json!({
        "error": {
            "message": format!("Unrecognized request URL ({}: {})", seen.method, seen.path),
            "type": "invalid_request_error",
        }
    }))
}
