//! The application: its shared state, its middleware stack and its HTTP server.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Server, ServiceResponse};
use actix_web::error::{PathError, QueryPayloadError};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers, Next, from_fn};
use actix_web::{App, HttpMessage, HttpServer, ResponseError, web};
use actix_web_prom::{PrometheusMetrics, PrometheusMetricsBuilder};
use anyhow::Context;
use chrono_tz::Tz;
use tracing_actix_web::{RequestId, TracingLogger};

use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::PastDueGrace;
use crate::http::error::{ApiError, PROBLEM_JSON};
use crate::http::state::{AppState, InFlight};
use crate::routes;
use crate::services::access::{AccessService, Breaker, EntitlementCache};
use crate::services::erasure::Tombstones;
use crate::services::gift_subscriptions::CodeIssuer;
use crate::services::keys::KeyCache;
use crate::services::limits::RateLimits;
use crate::services::mirror::{Mirror, RetryPolicy};
use crate::services::outbound::{DispatchMetrics, Dispatcher, EntitlementWatcher};
use crate::services::reports::{self, ReportCache};
use crate::services::storage::{PurgeMetrics, Purger};
use crate::store::{self, Store};
use crate::stripe::client::StripeClient;
use crate::tokens::Tokens;

/// A built, bound, not yet running service.
pub struct Application {
    address: SocketAddr,
    server: Server,
    store: Arc<dyn Store>,
    in_flight: InFlight,
    shutdown_timeout: Duration,
    mirror: Mirror,
    tokens: Tokens,
    metrics: prometheus::Registry,
    dispatcher: Dispatcher,
    watcher: EntitlementWatcher,
    purger: Purger,
    /// What the task that keeps the dashboard's MRR computed needs.
    report_warmer: (Arc<dyn Clock>, Tz, PastDueGrace, ReportCache),
    /// Whether the access path finds the database reachable; its heartbeat runs with the server.
    breaker: Breaker,
}

impl Application {
    /// Validates the settings, opens and migrates the database, binds the listening socket
    /// (port 0 picks a free port) and builds the server.
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        settings.validate()?;
        let store = store::open(&settings)
            .await
            .context("opening the database")?;
        store
            .migrate()
            .await
            .context("applying database migrations")?;
        Self::assemble(settings, clock, store).await
    }

    /// Validates the settings and builds the server over a store that is already open and
    /// migrated.
    pub async fn with_store(
        settings: Settings,
        clock: Arc<dyn Clock>,
        store: Arc<dyn Store>,
    ) -> anyhow::Result<Self> {
        settings.validate()?;
        Self::assemble(settings, clock, store).await
    }

    /// Builds the server from settings that passed validation.
    async fn assemble(
        settings: Settings,
        clock: Arc<dyn Clock>,
        store: Arc<dyn Store>,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&settings.bind)
            .with_context(|| format!("binding {}", settings.bind))?;
        let address = listener.local_addr()?;
        let registry = prometheus::Registry::new();
        let http_metrics = PrometheusMetricsBuilder::new("tollgate")
            .registry(registry.clone())
            .mask_unmatched_patterns("UNMATCHED")
            .build()
            .map_err(|e| anyhow::anyhow!("building HTTP metrics: {e}"))?;
        let cache = EntitlementCache::new(settings.entitlement_cache_ttl, settings.stale_if_error);
        let gift_codes = Arc::new(CodeIssuer::from_settings(&settings));
        let mirror = Mirror::new(
            Arc::clone(&store),
            Arc::clone(&clock),
            RetryPolicy::from_settings(&settings),
            &registry,
        )
        .map_err(|e| anyhow::anyhow!("registering mirror metrics: {e}"))?
        .with_cache(cache.clone())
        .with_gift_codes(Arc::clone(&gift_codes))
        .with_tombstones(Tombstones::from_settings(&settings));
        let tokens = Tokens::start(Arc::clone(&store), Arc::clone(&clock), &settings)
            .await
            .context("loading the token signing keys")?;
        let stripe = StripeClient::from_settings(&settings).context("configuring Stripe")?;
        let settings = Arc::new(settings);
        let limits = Arc::new(RateLimits::from_settings(&settings));
        let breaker = Breaker::register(&registry)
            .map_err(|e| anyhow::anyhow!("registering access metrics: {e}"))?;
        let access = AccessService::new(
            Arc::clone(&store),
            Arc::clone(&clock),
            Arc::clone(&settings),
            (cache, breaker.clone()),
            tokens.clone(),
            Arc::clone(&limits),
        );
        let dispatcher = Dispatcher::new(
            Arc::clone(&store),
            Arc::clone(&clock),
            &settings,
            DispatchMetrics::register(&registry)
                .map_err(|e| anyhow::anyhow!("registering webhook delivery metrics: {e}"))?,
        )
        .context("configuring webhook deliveries")?;
        let watcher = EntitlementWatcher::new(
            Arc::clone(&store),
            Arc::clone(&clock),
            settings.billing().past_due_grace,
            settings.webhook_dispatch_interval,
        );
        let purger = Purger::new(Arc::clone(&store), Arc::clone(&clock), settings.storage())
            .with_metrics(
                PurgeMetrics::register(&registry)
                    .map_err(|e| anyhow::anyhow!("registering storage purge metrics: {e}"))?,
            );
        let in_flight = InFlight::default();
        let report_cache = ReportCache::default();
        let report_warmer = (
            Arc::clone(&clock),
            settings.billing().reporting_time_zone,
            settings.billing().past_due_grace,
            report_cache.clone(),
        );
        let state = web::Data::new(AppState {
            store: Arc::clone(&store),
            clock,
            settings: Arc::clone(&settings),
            metrics: registry.clone(),
            in_flight: in_flight.clone(),
            mirror: mirror.clone(),
            stripe,
            access,
            key_cache: KeyCache::new(
                settings.api_key_cache_ttl,
                settings.stale_if_error,
                breaker.clone(),
            ),
            limits,
            gift_codes,
            report_cache,
        });
        let mut server = HttpServer::new(move || app(state.clone(), http_metrics.clone()))
            .shutdown_timeout(settings.shutdown_timeout.as_secs_f64().ceil() as u64)
            // actix-web stops at once on SIGINT; tollgate drains on SIGINT and SIGTERM alike.
            .disable_signals()
            .listen(listener)?;
        if settings.workers > 0 {
            server = server.workers(settings.workers);
        }
        tracing::info!(%address, database = store.backend().as_str(), "listening");
        Ok(Self {
            address,
            server: server.run(),
            store,
            in_flight,
            shutdown_timeout: settings.shutdown_timeout,
            mirror,
            tokens,
            metrics: registry,
            dispatcher,
            watcher,
            purger,
            report_warmer,
            breaker,
        })
    }

    /// The address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The store the server uses.
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// The registry of every metric the server exports at `/metrics`.
    pub fn metrics(&self) -> prometheus::Registry {
        self.metrics.clone()
    }

    /// Serves (and retries failed Stripe events, delivers outbound events and purges storage)
    /// until SIGTERM or SIGINT, then lets in-flight requests finish and closes the store.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let retries = self.mirror.spawn_retry_task();
        let key_refresh = self.tokens.spawn_refresh_task();
        let purge = self.purger.spawn();
        let heartbeat = self.breaker.spawn_heartbeat(Arc::clone(&self.store));
        let dispatcher = self.dispatcher.spawn();
        let watcher = self.watcher.spawn();
        let (clock, time_zone, grace, cache) = self.report_warmer;
        let warmer =
            reports::spawn_warmer(Arc::clone(&self.store), clock, (time_zone, grace), cache);
        let handle = self.server.handle();
        let (in_flight, within) = (self.in_flight.clone(), self.shutdown_timeout);
        let signals = tokio::spawn(async move {
            let signal = shutdown_signal().await;
            tracing::info!(
                signal,
                in_flight = in_flight.count(),
                "shutting down: finishing requests in flight"
            );
            handle.pause().await;
            if !in_flight.drained(within).await {
                tracing::warn!(
                    in_flight = in_flight.count(),
                    "shutdown timeout reached; closing requests still in flight"
                );
            }
            handle.stop(true).await;
        });
        let result = self.server.await;
        signals.abort();
        retries.abort();
        key_refresh.abort();
        purge.abort();
        dispatcher.abort();
        watcher.abort();
        warmer.abort();
        heartbeat.abort();
        self.store.close().await;
        tracing::info!("stopped");
        result
    }
}

/// Waits for SIGTERM or SIGINT and names the one that came.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => {
            tracing::error!("could not listen for shutdown signals; stop the process with SIGKILL");
            std::future::pending().await
        }
    }
}

fn app(
    state: web::Data<AppState>,
    http_metrics: PrometheusMetrics,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let body_limit = state.settings.body_limit;
    App::new()
        .app_data(state)
        .app_data(web::PayloadConfig::new(body_limit))
        .app_data(web::QueryConfig::default().error_handler(|err, _| query_error(err).into()))
        .app_data(web::PathConfig::default().error_handler(|err, _| path_error(err).into()))
        .wrap(ErrorHandlers::new().default_handler(as_problem))
        .wrap(http_metrics)
        .wrap(from_fn(access_log))
        .wrap(TracingLogger::default())
        .configure(routes::configure)
        .default_service(web::to(routes::not_found))
}

fn query_error(err: QueryPayloadError) -> ApiError {
    ApiError::invalid("invalid_query", err.to_string())
}

fn path_error(err: PathError) -> ApiError {
    ApiError::NotFound(format!("nothing is found at this path: {err}"))
}

/// Writes one access-log line per request (inside the request's span, so it carries the request
/// id, method and route) and copies the request id into the response, so a client can quote it
/// and an operator can find every log line of that request. Probes log at debug level only.
async fn access_log(
    req: actix_web::dev::ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = req.extensions().get::<RequestId>().copied();
    let _in_flight = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.in_flight.enter());
    let probe = matches!(req.path(), "/healthz" | "/readyz" | "/metrics");
    let started = std::time::Instant::now();
    let mut response = next.call(req).await?;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if probe {
        tracing::debug!(status, elapsed_ms, "request finished");
    } else {
        tracing::info!(status, elapsed_ms, "request finished");
    }
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(&id.to_string()).ok()) {
        response
            .headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), id);
    }
    Ok(response)
}

/// Turns any error answer that is not yet a problem document (the framework's own 404, 405,
/// 413, 400 ...) into one, keeping its status and its `Allow` and `WWW-Authenticate` headers.
fn as_problem<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes() == PROBLEM_JSON.as_bytes());
    if is_problem {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let (req, original) = res.into_parts();
    let mut problem = ApiError::from_status(original.status()).error_response();
    for name in [header::ALLOW, header::WWW_AUTHENTICATE, header::RETRY_AFTER] {
        if let Some(value) = original.headers().get(&name) {
            problem.headers_mut().insert(name, value.clone());
        }
    }
    let res: ServiceResponse<EitherBody<B>> =
        ServiceResponse::new(req, problem).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}

#[cfg(test)]
mod tests {
    use actix_web::{HttpResponse, test};

    use super::*;

    #[actix_web::test]
    async fn a_bare_framework_error_becomes_a_problem_that_keeps_its_status_and_allow_header() {
        let app = test::init_service(
            App::new()
                .wrap(ErrorHandlers::new().default_handler(as_problem))
                .route(
                    "/",
                    web::get().to(|| async {
                        HttpResponse::MethodNotAllowed()
                            .insert_header((header::ALLOW, "GET"))
                            .body("plain text")
                    }),
                ),
        )
        .await;
        let response =
            test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers().get(header::ALLOW).unwrap(), "GET");
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            PROBLEM_JSON
        );
        let body: serde_json::Value = test::read_body_json(response).await;
        assert_eq!(body["code"], "method_not_allowed");
        assert_eq!(body["status"], 405);
    }
}
