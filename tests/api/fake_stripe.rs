//! A local stand-in for api.stripe.com: an actix-web server on a loopback port that answers from
//! a route table a test builds, and records what it saw of each request (method, path, query,
//! form body and the headers tollgate sends), so tests can assert exactly what went to Stripe.
//!
//! ```ignore
//! let stripe = FakeStripe::builder()
//!     .list("/v1/prices", vec![price])
//!     .on_get("/v1/invoices", Reply::raw(503, "text/html", "<html>..</html>"))
//!     .times(1)
//!     .list("/v1/invoices", vec![invoice])
//!     .pages("/v1/subscriptions", vec![first_page, second_page])
//!     .on_post("/v1/checkout/sessions", Reply::computed(created_session))
//!     .start()
//!     .await;
//! ```
//!
//! A request no route takes gets Stripe's own answer to an unknown URL: a 404 with an
//! `invalid_request_error`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, spawn_app_with};

/// What the fake Stripe saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When it came.
    pub at: Instant,
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
            at: Instant::now(),
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
        find(&self.query, name)
    }

    /// A form body field.
    pub fn form_field(&self, name: &str) -> Option<&str> {
        find(&self.form, name)
    }

    /// The form body as sorted `name=value` lines, for exact comparisons.
    pub fn form_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.form.iter().map(|(k, v)| format!("{k}={v}")).collect();
        lines.sort();
        lines
    }
}

fn find<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

type Compute = Arc<dyn Fn(&Seen) -> Value + Send + Sync>;

/// How the fake answers a request one of its routes takes.
#[derive(Clone)]
pub struct Reply {
    status: StatusCode,
    body: Body,
    headers: Vec<(&'static str, String)>,
    delay: Option<Duration>,
}

#[derive(Clone)]
enum Body {
    Fixed(Value),
    /// Not JSON: a proxy's page, an HTML 404, a body cut short.
    Raw {
        content_type: &'static str,
        text: String,
    },
    Computed(Compute),
    /// A Stripe list, a page at a time: the first page, then the page after the one whose last
    /// object `starting_after` names.
    Pages {
        url: String,
        pages: Vec<Vec<Value>>,
    },
}

impl Reply {
    /// A 200 whose JSON is made from the request: an object echoing what was asked.
    pub fn computed(compute: impl Fn(&Seen) -> Value + Send + Sync + 'static) -> Self {
        Self::with_body(StatusCode::OK, Body::Computed(Arc::new(compute)))
    }

    /// Stripe's answer to a request it refuses or fails: `status` with `{ "error": error }`.
    pub fn error(status: u16, error: Value) -> Self {
        Self::with_body(
            StatusCode::from_u16(status).unwrap(),
            Body::Fixed(json!({ "error": error })),
        )
    }

    /// `status` with a body that is not JSON (or not Stripe's), as a proxy, a web server in front
    /// of an API without this resource, or a broken connection give it.
    pub fn raw(status: u16, content_type: &'static str, text: &str) -> Self {
        Self::with_body(
            StatusCode::from_u16(status).unwrap(),
            Body::Raw {
                content_type,
                text: text.to_owned(),
            },
        )
    }

    /// The same answer with the header `name: value` too.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    /// The same answer, given only after `delay`: a slow Stripe.
    pub fn after(self, delay: Duration) -> Self {
        Self {
            delay: Some(delay),
            ..self
        }
    }

    fn with_body(status: StatusCode, body: Body) -> Self {
        Self {
            status,
            body,
            headers: Vec::new(),
            delay: None,
        }
    }

    /// The answer to `seen`, or `None` for a list cursor that names no page.
    fn answer(&self, seen: &Seen) -> Option<HttpResponse> {
        let mut response = HttpResponse::build(self.status);
        for (name, value) in &self.headers {
            response.insert_header((*name, value.as_str()));
        }
        let body = match &self.body {
            Body::Raw { content_type, text } => {
                return Some(response.content_type(*content_type).body(text.clone()));
            }
            Body::Fixed(body) => body.clone(),
            Body::Computed(compute) => compute(seen),
            Body::Pages { url, pages } => {
                let page = match seen.param("starting_after") {
                    None => 0,
                    Some(after) => {
                        pages
                            .iter()
                            .position(|page| page.last().is_some_and(|last| last["id"] == after))?
                            + 1
                    }
                };
                json!({
                    "object": "list",
                    "data": pages.get(page)?,
                    "has_more": page + 1 < pages.len(),
                    "url": url,
                })
            }
        };
        Some(response.json(body))
    }
}

struct Route {
    method: &'static str,
    path: String,
    /// Parameters (query or form) a request must carry for this route to take it.
    when: Vec<(String, String)>,
    /// How many more requests it takes, when it takes only so many.
    left: Option<AtomicUsize>,
    reply: Reply,
}

impl Route {
    fn takes(&self, seen: &Seen) -> bool {
        let matches = seen.method == self.method
            && seen.path == self.path
            && self.when.iter().all(|(name, value)| {
                seen.param(name) == Some(value.as_str())
                    || seen.form_field(name) == Some(value.as_str())
            });
        matches
            && self.left.as_ref().is_none_or(|left| {
                left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            })
    }
}

/// A fake Stripe's route table, tried in the order the routes were added.
#[derive(Default)]
pub struct FakeStripeBuilder {
    routes: Vec<Route>,
    otherwise: Option<Reply>,
}

impl FakeStripeBuilder {
    /// `POST path` answers `reply`.
    pub fn on_post(self, path: &str, reply: Reply) -> Self {
        self.route("POST", path, reply)
    }

    /// `GET path` is a Stripe list of `items`, on one page.
    pub fn list(self, path: &str, items: Vec<Value>) -> Self {
        self.pages(path, vec![items])
    }

    /// `GET path` is a Stripe list of these pages, paged with `starting_after` as Stripe does.
    pub fn pages(self, path: &str, pages: Vec<Vec<Value>>) -> Self {
        let url = path.to_owned();
        self.route(
            "GET",
            path,
            Reply::with_body(StatusCode::OK, Body::Pages { url, pages }),
        )
    }

    /// Narrows the route added last to requests whose query or form carries `name=value`.
    pub fn when(mut self, name: &str, value: &str) -> Self {
        self.routes
            .last_mut()
            .expect("`when` narrows a route: add one first")
            .when
            .push((name.to_owned(), value.to_owned()));
        self
    }

    /// `GET path` answers `reply`.
    pub fn on_get(self, path: &str, reply: Reply) -> Self {
        self.route("GET", path, reply)
    }

    /// Narrows the route added last to the first `times` requests it takes; later ones go on
    /// to the routes after it (a Stripe that fails, then recovers).
    pub fn times(mut self, times: usize) -> Self {
        self.routes
            .last_mut()
            .expect("`times` narrows a route: add one first")
            .left = Some(AtomicUsize::new(times));
        self
    }

    /// The answer to every request no route takes, instead of Stripe's 404.
    pub fn otherwise(mut self, reply: Reply) -> Self {
        self.otherwise = Some(reply);
        self
    }

    fn route(mut self, method: &'static str, path: &str, reply: Reply) -> Self {
        self.routes.push(Route {
            method,
            path: path.to_owned(),
            when: Vec::new(),
            left: None,
            reply,
        });
        self
    }

    /// Starts the fake on a loopback port.
    pub async fn start(self) -> FakeStripe {
        let table = Arc::new(self);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&seen);
        let server = HttpServer::new(move || {
            let table = Arc::clone(&table);
            let recorded = Arc::clone(&recorded);
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let table = Arc::clone(&table);
                let recorded = Arc::clone(&recorded);
                async move {
                    let seen = Seen::of(&req, &body);
                    recorded.lock().unwrap().push(seen.clone());
                    table.answer(&seen).await
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
        FakeStripe {
            base: format!("http://{address}/"),
            seen,
            handle,
        }
    }

    async fn answer(&self, seen: &Seen) -> HttpResponse {
        let reply = self
            .routes
            .iter()
            .find(|route| route.takes(seen))
            .map(|route| &route.reply)
            .or(self.otherwise.as_ref());
        let Some(reply) = reply else {
            return unrecognized(seen);
        };
        if let Some(delay) = reply.delay {
            tokio::time::sleep(delay).await;
        }
        reply.answer(seen).unwrap_or_else(|| unrecognized(seen))
    }
}

/// The running fake; stop it at the end of the test.
pub struct FakeStripe {
    pub base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    handle: ServerHandle,
}

impl FakeStripe {
    /// An empty route table: every request gets Stripe's 404 until routes are added.
    pub fn builder() -> FakeStripeBuilder {
        FakeStripeBuilder::default()
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
fn unrecognized(seen: &Seen) -> HttpResponse {
    HttpResponse::NotFound().json(json!({
        "error": {
            "message": format!("Unrecognized request URL ({}: {})", seen.method, seen.path),
            "type": "invalid_request_error",
        }
    }))
}
