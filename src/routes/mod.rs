//! The route table: every route with its method, path and who may call it, in one list that both
//! wires the application and tells tests what to check, so no route can go unguarded or untested.

mod access;
mod admin;
mod audit;
mod checkout;
mod dashboard;
mod gift_subscriptions;
mod gifts;
mod health;
mod keys;
mod licences;
mod plans;
mod readers;
mod reports;
mod sessions;
mod teams;
mod webhook_endpoints;
mod webhooks;

use std::collections::HashMap;
use std::rc::Rc;

use actix_web::http::Method;
use actix_web::http::header;
use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, web};

use crate::domain::Role;
use crate::http::auth::{self, Access, Sessions};
use crate::http::error::ApiError;
use crate::http::idempotency::{self, IdempotentMethods};

/// What the table says about one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Its HTTP method.
    pub method: Method,
    /// Its path pattern, `{name}` marking a parameter.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// For a POST that creates something: it honours `Idempotency-Key`, and these top-level
    /// fields of its answer are secrets, never kept for replay.
    pub idempotent: Option<&'static [&'static str]>,
    /// Whether it takes a dashboard session's token.
    pub sessions: Sessions,
}

/// One row of the table: the spec and its handler.
struct ApiRoute {
    spec: RouteSpec,
    route: actix_web::Route,
}

fn route(method: Method, path: &'static str, access: Access, route: actix_web::Route) -> ApiRoute {
    ApiRoute {
        route: route.method(method.clone()),
        spec: RouteSpec {
            method,
            path,
            access,
            idempotent: None,
            sessions: Sessions::Refused,
        },
    }
}

/// `row`, a route that takes a dashboard session's token as well as a key (`Accepted`), or only
/// a session's (`Required`).
fn with_sessions(sessions: Sessions, mut row: ApiRoute) -> ApiRoute {
    row.spec.sessions = sessions;
    row
}

/// A report: `finance` and `admin` keys, and dashboard sessions.
fn report(path: &'static str, handler: actix_web::Route) -> ApiRoute {
    with_sessions(
        Sessions::Accepted,
        route(Method::GET, path, FINANCE, handler),
    )
}

/// `row`, a POST that creates something: it honours `Idempotency-Key`, and `secrets` are the
/// fields of its answer that a replay shows as `null`.
fn creating(secrets: &'static [&'static str], mut row: ApiRoute) -> ApiRoute {
    row.spec.idempotent = Some(secrets);
    row
}

/// Routes a publisher's site calls with a `service` key (and admins too).
const SERVICE: Access = Access::Roles(&[Role::Service]);
const FINANCE: Access = Access::Roles(&[Role::Finance]);
/// Any key.
const ANY_KEY: Access = Access::Roles(&[Role::Service, Role::Finance]);

fn table() -> Vec<ApiRoute> {
    use Access::Public;
    vec![
        route(
            Method::GET,
            "/healthz",
            Public,
            web::route().to(health::healthz),
        ),
        route(
            Method::GET,
            "/readyz",
            Public,
            web::route().to(health::readyz),
        ),
        route(
            Method::GET,
            "/metrics",
            Public,
            web::route().to(health::metrics),
        ),
        route(
            Method::GET,
            "/openapi.yaml",
            Public,
            web::route().to(health::openapi),
        ),
        route(
            Method::GET,
            "/dashboard",
            Public,
            web::route().to(dashboard::redirect),
        ),
        route(
            Method::GET,
            "/dashboard/",
            Public,
            web::route().to(dashboard::index),
        ),
        route(
            Method::GET,
            "/dashboard/{file}",
            Public,
            web::route().to(dashboard::file),
        ),
        route(
            Method::GET,
            "/dashboard/vendor/{file}",
            Public,
            web::route().to(dashboard::vendor_file),
        ),
        creating(
            &["key"],
            route(
                Method::POST,
                "/v1/keys",
                Access::ADMIN,
                web::route().to(keys::create),
            ),
        ),
        route(
            Method::GET,
            "/v1/keys",
            Access::ADMIN,
            web::route().to(keys::list),
        ),
        route(
            Method::DELETE,
            "/v1/keys/{key_id}",
            Access::ADMIN,
            web::route().to(keys::revoke),
        ),
        route(
            Method::POST,
            "/v1/webhooks/stripe",
            Public,
            web::route().to(webhooks::receive),
        ),
        route(
            Method::GET,
            "/v1/admin/webhook-events",
            Access::ADMIN,
            web::route().to(webhooks::list),
        ),
        route(
            Method::POST,
            "/v1/admin/webhook-events/{event_id}/retry",
            Access::ADMIN,
            web::route().to(webhooks::retry),
        ),
        route(
            Method::GET,
            "/v1/admin/audit-log",
            Access::ADMIN,
            web::route().to(audit::list),
        ),
        creating(
            &["secret"],
            route(
                Method::POST,
                "/v1/webhook-endpoints",
                Access::ADMIN,
                web::route().to(webhook_endpoints::create),
            ),
        ),
        route(
            Method::GET,
            "/v1/webhook-endpoints",
            Access::ADMIN,
            web::route().to(webhook_endpoints::list),
        ),
        route(
            Method::GET,
            "/v1/webhook-endpoints/{endpoint_id}",
            Access::ADMIN,
            web::route().to(webhook_endpoints::get),
        ),
        route(
            Method::PATCH,
            "/v1/webhook-endpoints/{endpoint_id}",
            Access::ADMIN,
            web::route().to(webhook_endpoints::update),
        ),
        route(
            Method::DELETE,
            "/v1/webhook-endpoints/{endpoint_id}",
            Access::ADMIN,
            web::route().to(webhook_endpoints::delete),
        ),
        route(
            Method::POST,
            "/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
            Access::ADMIN,
            web::route().to(webhook_endpoints::rotate_secret),
        ),
        route(
            Method::GET,
            "/v1/webhook-endpoints/{endpoint_id}/deliveries",
            Access::ADMIN,
            web::route().to(webhook_endpoints::deliveries),
        ),
        route(
            Method::POST,
            "/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/retry",
            Access::ADMIN,
            web::route().to(webhook_endpoints::retry),
        ),
        creating(
            &[],
            route(
                Method::POST,
                "/v1/webhook-endpoints/{endpoint_id}/replay",
                Access::ADMIN,
                web::route().to(webhook_endpoints::replay),
            ),
        ),
        route(
            Method::POST,
            "/v1/admin/stripe/sync",
            Access::ADMIN,
            web::route().to(admin::sync),
        ),
        route(
            Method::GET,
            "/v1/admin/stripe/sync/last",
            Access::ADMIN,
            web::route().to(admin::last_sync),
        ),
        route(
            Method::GET,
            "/v1/readers/{reader_id}",
            SERVICE,
            web::route().to(readers::get),
        ),
        route(
            Method::DELETE,
            "/v1/readers/{reader_id}",
            Access::ADMIN,
            web::route().to(readers::erase),
        ),
        creating(
            &[],
            route(
                Method::POST,
                "/v1/readers/{reader_id}/grants",
                Access::ADMIN,
                web::route().to(readers::create_grant),
            ),
        ),
        route(
            Method::DELETE,
            "/v1/readers/{reader_id}/grants/{grant_id}",
            Access::ADMIN,
            web::route().to(readers::revoke_grant),
        ),
        route(
            Method::POST,
            "/v1/readers/{reader_id}/merge",
            SERVICE,
            web::route().to(access::merge),
        ),
        creating(
            &[],
            route(
                Method::POST,
                "/v1/readers/{reader_id}/licence-claims",
                SERVICE,
                web::route().to(licences::claim),
            ),
        ),
        route(
            Method::GET,
            "/v1/readers/{reader_id}/seats",
            SERVICE,
            web::route().to(teams::list),
        ),
        creating(
            &[],
            route(
                Method::POST,
                "/v1/readers/{reader_id}/seats",
                SERVICE,
                web::route().to(teams::add),
            ),
        ),
        // Before `seats/{member_id}`, which would match `transfer` first.
        route(
            Method::POST,
            "/v1/readers/{reader_id}/seats/transfer",
            SERVICE,
            web::route().to(teams::transfer),
        ),
        route(
            Method::DELETE,
            "/v1/readers/{reader_id}/seats/{member_id}",
            SERVICE,
            web::route().to(teams::remove),
        ),
        route(
            Method::GET,
            "/v1/gifts/subscriptions",
            SERVICE,
            web::route().to(gift_subscriptions::list),
        ),
        creating(
            &[],
            route(
                Method::POST,
                "/v1/gifts/subscriptions/redeem",
                SERVICE,
                web::route().to(gift_subscriptions::redeem),
            ),
        ),
        route(
            Method::POST,
            "/v1/gifts/subscriptions/{gift_id}/reveal",
            SERVICE,
            web::route().to(gift_subscriptions::reveal),
        ),
        creating(
            &["code"],
            route(
                Method::POST,
                "/v1/gifts/articles",
                SERVICE,
                web::route().to(gifts::create),
            ),
        ),
        route(
            Method::DELETE,
            "/v1/gifts/articles/{gift_id}",
            SERVICE,
            web::route().to(gifts::revoke),
        ),
        report("/v1/reports/gifts", web::route().to(reports::gifts)),
        report("/v1/reports/licences", web::route().to(reports::licences)),
        creating(
            &[],
            route(
                Method::POST,
                "/v1/licences",
                Access::ADMIN,
                web::route().to(licences::create),
            ),
        ),
        route(
            Method::GET,
            "/v1/licences",
            Access::ADMIN,
            web::route().to(licences::list),
        ),
        route(
            Method::GET,
            "/v1/licences/{licence_id}",
            Access::ADMIN,
            web::route().to(licences::get),
        ),
        route(
            Method::PATCH,
            "/v1/licences/{licence_id}",
            Access::ADMIN,
            web::route().to(licences::update),
        ),
        route(
            Method::DELETE,
            "/v1/licences/{licence_id}",
            Access::ADMIN,
            web::route().to(licences::delete),
        ),
        route(
            Method::GET,
            "/v1/licences/{licence_id}/members",
            Access::ADMIN,
            web::route().to(licences::members),
        ),
        route(
            Method::DELETE,
            "/v1/licences/{licence_id}/members/{reader_id}",
            Access::ADMIN,
            web::route().to(licences::remove_member),
        ),
        route(
            Method::POST,
            "/v1/access",
            SERVICE,
            web::route().to(access::decide),
        ),
        route(
            Method::POST,
            "/v1/tokens",
            SERVICE,
            web::route().to(access::token),
        ),
        route(
            Method::GET,
            "/.well-known/jwks.json",
            Public,
            web::route().to(access::jwks),
        ),
        creating(
            &[],
            route(
                Method::POST,
                "/v1/admin/signing-keys/rotate",
                Access::ADMIN,
                web::route().to(access::rotate_signing_key),
            ),
        ),
        creating(
            &[],
            route(
                Method::POST,
                "/v1/checkout/sessions",
                SERVICE,
                web::route().to(checkout::create_checkout),
            ),
        ),
        creating(
            &["url"],
            route(
                Method::POST,
                "/v1/portal/sessions",
                SERVICE,
                web::route().to(checkout::create_portal),
            ),
        ),
        report("/v1/reports/revenue", web::route().to(reports::revenue)),
        report("/v1/reports/mrr", web::route().to(reports::mrr)),
        report(
            "/v1/reports/subscribers",
            web::route().to(reports::subscribers),
        ),
        report(
            "/v1/reports/recognized-revenue",
            web::route().to(reports::recognized_revenue),
        ),
        report("/v1/reports/disputes", web::route().to(reports::disputes)),
        creating(
            &["token"],
            route(
                Method::POST,
                "/v1/sessions",
                FINANCE,
                web::route().to(sessions::open),
            ),
        ),
        with_sessions(
            Sessions::Required,
            route(
                Method::DELETE,
                "/v1/sessions/current",
                ANY_KEY,
                web::route().to(sessions::close),
            ),
        ),
        with_sessions(
            Sessions::Accepted,
            route(
                Method::GET,
                "/v1/whoami",
                ANY_KEY,
                web::route().to(sessions::whoami),
            ),
        ),
        route(
            Method::GET,
            "/v1/plans",
            SERVICE,
            web::route().to(plans::list),
        ),
        route(
            Method::GET,
            "/v1/plans/{plan_id}",
            SERVICE,
            web::route().to(plans::get),
        ),
        route(
            Method::PUT,
            "/v1/plans/{plan_id}",
            Access::ADMIN,
            web::route().to(plans::put),
        ),
        route(
            Method::POST,
            "/v1/plans/{plan_id}/archive",
            Access::ADMIN,
            web::route().to(plans::archive),
        ),
    ]
}

/// Every route the service answers, with its access rule.
pub fn specs() -> Vec<RouteSpec> {
    table().into_iter().map(|r| r.spec).collect()
}

/// Registers every route of the table, grouped into one resource per path.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let mut by_path: Vec<(&'static str, Vec<ApiRoute>)> = Vec::new();
    for row in table() {
        match by_path.iter_mut().find(|(path, _)| *path == row.spec.path) {
            Some((_, rows)) => rows.push(row),
            None => by_path.push((row.spec.path, vec![row])),
        }
    }
    // The router tries resources in order, and a path with parameters costs a regex match: fixed
    // paths (the hot `/v1/access` among them) go first. No fixed path matches a pattern, so the
    // order changes nothing else.
    by_path.sort_by_key(|(path, _)| path.contains('{'));
    for (path, rows) in by_path {
        let policy: auth::Policy = Rc::new(
            rows.iter()
                .map(|r| (r.spec.method.clone(), (r.spec.access, r.spec.sessions)))
                .collect::<HashMap<_, _>>(),
        );
        let allow = rows
            .iter()
            .map(|r| r.spec.method.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let mut resource = web::resource(path).default_service(web::to(move || {
            let allow = allow.clone();
            async move { method_not_allowed(allow) }
        }));
        let idempotent: IdempotentMethods = Rc::new(
            rows.iter()
                .filter_map(|r| Some((r.spec.method.clone(), r.spec.idempotent?)))
                .collect(),
        );
        for row in rows {
            resource = resource.route(row.route);
        }
        let authorize = move |req, next| auth::authorize(Rc::clone(&policy), req, next);
        if idempotent.is_empty() {
            cfg.service(resource.wrap(from_fn(authorize)));
        } else {
            // The last `wrap` runs first: the key is checked before an attempt is claimed
            // under it.
            cfg.service(
                resource
                    .wrap(from_fn(move |req, next| {
                        idempotency::idempotent(Rc::clone(&idempotent), req, next)
                    }))
                    .wrap(from_fn(authorize)),
            );
        }
    }
}

fn method_not_allowed(allow: String) -> HttpResponse {
    let mut response = actix_web::ResponseError::error_response(&ApiError::MethodNotAllowed);
    if let Ok(value) = header::HeaderValue::from_str(&allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// The answer for a path that names nothing.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("nothing is found at this path".into()))
}
