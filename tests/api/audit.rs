//! The audit log: every admin write route leaves exactly one entry naming the key, its role, the
//! request's id and what changed, never a secret; the command line's writes are recorded with
//! role `cli`; refused or failed writes leave none; the log is read a page at a time.

use std::collections::BTreeSet;

use reqwest::{Method, Response};
use serde_json::{Value, json};
use tollgate::http::auth::Access;
use tollgate::routes;

use crate::fake_stripe::FakeStripe;
use crate::helpers::TestApp;

const SECRET_KEY: &str = "sk_test_fake_audit_0123456789";
const LEGACY_CREATED: &[u8] =
    include_bytes!("../fixtures/stripe/legacy.customer.subscription.created.json");

impl TestApp {
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.admin_key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    async fn audit(&self, query: &str) -> Value {
        self.get_json(
            &format!("/v1/admin/audit-log{query}"),
            Some(&self.admin_key),
        )
        .await
    }

    async fn audit_entries(&self) -> Vec<Value> {
        self.audit("?limit=500").await["items"]
            .as_array()
            .unwrap()
            .clone()
    }
}

/// One admin write: the route it exercises, how, and the action it must record.
struct Write {
    method: Method,
    pattern: &'static str,
    path: String,
    body: Option<Value>,
    action: &'static str,
}

fn write(
    method: Method,
    pattern: &'static str,
    path: &str,
    body: Option<Value>,
    action: &'static str,
) -> Write {
    Write {
        method,
        pattern,
        path: path.to_owned(),
        body,
        action,
    }
}

#[tokio::test]
async fn every_admin_write_route_records_one_entry_with_its_key_and_request() {
    let stripe = FakeStripe::builder()
        .list("/v1/prices", vec![])
        .list("/v1/subscriptions", vec![])
        .list("/v1/invoices", vec![])
        .list("/v1/refunds", vec![])
        .list("/v1/disputes", vec![])
        .start()
        .await;
    let app = stripe.app_with(SECRET_KEY, None).await;
    // What the writes act on.
    let (service_key_id, _) = app.new_key("service").await;
    let grant = app.grant("ana", &["articles"]).await;
    let grant_id = grant["id"].as_str().unwrap().to_owned();
    app.put_plan("digital", &["price_monthly"], &["articles"])
        .await;
    let licence: Value = app
        .send(
            Method::POST,
            "/v1/licences",
            Some(json!({
                "name": "University of Example", "entitlements": ["articles"],
                "email_domains": ["example.edu"], "seats": 10,
                "starts_at": "2026-01-01T00:00:00Z", "expires_at": "2027-12-31T00:00:00Z",
            })),
        )
        .await
        .json()
        .await
        .unwrap();
    let licence_id = licence["id"].as_str().unwrap().to_owned();
    let claimed = app
        .send(
            Method::POST,
            "/v1/readers/student/licence-claims",
            Some(json!({ "email": "student@example.edu" })),
        )
        .await;
    assert_eq!(claimed.status(), 201);
    let endpoint: Value = app
        .send(
            Method::POST,
            "/v1/webhook-endpoints",
            Some(json!({ "url": "http://127.0.0.1:9/hooks", "event_types": ["grant.created"] })),
        )
        .await
        .json()
        .await
        .unwrap();
    let endpoint_id = endpoint["id"].as_str().unwrap().to_owned();
    app.grant("cleo", &["articles"]).await;
    let deliveries: Value = app
        .get_json(
            &format!("/v1/webhook-endpoints/{endpoint_id}/deliveries"),
            Some(&app.admin_key),
        )
        .await;
    let delivery_id = deliveries["items"][0]["id"].as_str().unwrap().to_owned();
    app.deliver_ok(LEGACY_CREATED).await;
    let event: Value = serde_json::from_slice(LEGACY_CREATED).unwrap();
    let event_id = event["id"].as_str().unwrap().to_owned();

    let writes = [
        write(
            Method::POST,
            "/v1/keys",
            "/v1/keys",
            Some(json!({ "role": "finance", "name": "books" })),
            "key.create",
        ),
        write(
            Method::DELETE,
            "/v1/keys/{key_id}",
            &format!("/v1/keys/{service_key_id}"),
            None,
            "key.revoke",
        ),
        write(
            Method::POST,
            "/v1/readers/{reader_id}/grants",
            "/v1/readers/ben/grants",
            Some(
                json!({ "entitlements": ["articles"], "expires_at": "2030-01-01T00:00:00Z", "reason": "press" }),
            ),
            "grant.create",
        ),
        write(
            Method::DELETE,
            "/v1/readers/{reader_id}/grants/{grant_id}",
            &format!("/v1/readers/ana/grants/{grant_id}"),
            None,
            "grant.revoke",
        ),
        write(
            Method::DELETE,
            "/v1/readers/{reader_id}",
            "/v1/readers/cleo",
            None,
            "reader.erase",
        ),
        write(
            Method::PUT,
            "/v1/plans/{plan_id}",
            "/v1/plans/yearly",
            Some(
                json!({ "name": "Yearly", "stripe_prices": ["price_yearly"], "entitlements": ["articles"] }),
            ),
            "plan.put",
        ),
        write(
            Method::POST,
            "/v1/plans/{plan_id}/archive",
            "/v1/plans/digital/archive",
            None,
            "plan.archive",
        ),
        write(
            Method::POST,
            "/v1/licences",
            "/v1/licences",
            Some(
                json!({ "name": "Ministry", "entitlements": ["articles"], "ip_ranges": ["192.0.2.0/24"], "starts_at": "2026-01-01T00:00:00Z", "expires_at": "2027-01-01T00:00:00Z" }),
            ),
            "licence.create",
        ),
        write(
            Method::PATCH,
            "/v1/licences/{licence_id}",
            &format!("/v1/licences/{licence_id}"),
            Some(json!({ "seats": 20 })),
            "licence.update",
        ),
        write(
            Method::DELETE,
            "/v1/licences/{licence_id}/members/{reader_id}",
            &format!("/v1/licences/{licence_id}/members/student"),
            None,
            "licence.remove_member",
        ),
        write(
            Method::DELETE,
            "/v1/licences/{licence_id}",
            &format!("/v1/licences/{licence_id}"),
            None,
            "licence.delete",
        ),
        write(
            Method::POST,
            "/v1/admin/signing-keys/rotate",
            "/v1/admin/signing-keys/rotate",
            None,
            "signing_key.rotate",
        ),
        write(
            Method::POST,
            "/v1/admin/webhook-events/{event_id}/retry",
            &format!("/v1/admin/webhook-events/{event_id}/retry"),
            None,
            "webhook_event.retry",
        ),
        write(
            Method::POST,
            "/v1/webhook-endpoints",
            "/v1/webhook-endpoints",
            Some(
                json!({ "url": "http://127.0.0.1:9/other", "event_types": ["*"], "description": "crm" }),
            ),
            "webhook_endpoint.create",
        ),
        write(
            Method::PATCH,
            "/v1/webhook-endpoints/{endpoint_id}",
            &format!("/v1/webhook-endpoints/{endpoint_id}"),
            Some(json!({ "description": "newsletters" })),
            "webhook_endpoint.update",
        ),
        write(
            Method::POST,
            "/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
            &format!("/v1/webhook-endpoints/{endpoint_id}/rotate-secret"),
            None,
            "webhook_endpoint.rotate_secret",
        ),
        write(
            Method::POST,
            "/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/retry",
            &format!("/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/retry"),
            None,
            "webhook_delivery.retry",
        ),
        write(
            Method::POST,
            "/v1/webhook-endpoints/{endpoint_id}/replay",
            &format!("/v1/webhook-endpoints/{endpoint_id}/replay"),
            Some(json!({ "from": "2020-01-01T00:00:00Z", "to": "2020-01-31T00:00:00Z" })),
            "webhook_endpoint.replay",
        ),
        write(
            Method::DELETE,
            "/v1/webhook-endpoints/{endpoint_id}",
            &format!("/v1/webhook-endpoints/{endpoint_id}"),
            None,
            "webhook_endpoint.delete",
        ),
        write(
            Method::POST,
            "/v1/admin/stripe/sync",
            "/v1/admin/stripe/sync",
            None,
            "stripe.sync",
        ),
    ];

    // The list is the route table's: a new admin write route fails here until it is audited.
    let admin_writes: BTreeSet<(String, &str)> = routes::specs()
        .into_iter()
        .filter(|spec| spec.access == Access::ADMIN && spec.method != actix_web::http::Method::GET)
        .map(|spec| (spec.method.to_string(), spec.path))
        .collect();
    let exercised: BTreeSet<(String, &str)> = writes
        .iter()
        .map(|w| (w.method.to_string(), w.pattern))
        .collect();
    assert_eq!(exercised, admin_writes);

    let admin_id = app
        .audit_entries()
        .await
        .into_iter()
        .find(|entry| entry["role"] == "admin")
        .and_then(|entry| entry["key_id"].as_str().map(str::to_owned));
    assert!(admin_id.is_some());
    for w in &writes {
        let before = app.audit_entries().await.len();
        let response = app.send(w.method.clone(), &w.path, w.body.clone()).await;
        let status = response.status();
        let request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let answer = response.text().await.unwrap();
        assert!(
            status.is_success(),
            "{} {}: {status} {answer}",
            w.method,
            w.path
        );
        let entries = app.audit_entries().await;
        assert_eq!(entries.len(), before + 1, "{} {}", w.method, w.path);
        let entry = entries.last().unwrap();
        assert_eq!(entry["action"], w.action, "{entry}");
        assert_eq!(entry["role"], "admin");
        assert_eq!(
            entry["key_id"].as_str().map(str::to_owned),
            admin_id,
            "{entry}"
        );
        assert_eq!(entry["request_id"], request_id.as_str(), "{entry}");
        assert!(entry["id"].as_str().unwrap().starts_with("aud_"));
        assert!(entry["changes"].is_object(), "{entry}");
        // An erasure's entry names the pseudonym, never the reader.
        if w.action == "reader.erase" {
            assert!(!entry.to_string().contains("cleo"), "{entry}");
            assert!(
                entry["target"]
                    .as_str()
                    .unwrap()
                    .starts_with("reader:erased:")
            );
        }
        // Secrets stay out: the new key's secret is in its answer only.
        if w.action == "key.create" {
            let secret: Value = serde_json::from_str(&answer).unwrap();
            assert!(!entry.to_string().contains(secret["key"].as_str().unwrap()));
            assert_eq!(entry["changes"]["role"], "finance");
        }
        if matches!(
            w.action,
            "webhook_endpoint.create" | "webhook_endpoint.rotate_secret"
        ) {
            let shown: Value = serde_json::from_str(&answer).unwrap();
            let secret = shown["secret"].as_str().unwrap();
            assert!(secret.starts_with("whsec_"));
            assert!(!entry.to_string().contains(secret));
        }
    }
    stripe.stop().await;
}

#[tokio::test]
async fn refused_writes_record_nothing_and_the_log_pages_and_filters() {
    let app = crate::helpers::spawn_app().await;
    // The test's admin key was made as `tollgate keys create` makes one: by the command line.
    let bootstrap = &app.audit_entries().await[0];
    assert_eq!(bootstrap["action"], "key.create");
    assert_eq!(bootstrap["role"], "cli");
    assert_eq!(bootstrap["key_id"], Value::Null);
    let before = app.audit_entries().await.len();
    // Unknown targets and invalid bodies change nothing, so nothing is recorded.
    assert_eq!(
        app.send(Method::DELETE, "/v1/keys/key_0", None)
            .await
            .status(),
        404
    );
    assert_eq!(
        app.send(Method::POST, "/v1/plans/nope/archive", None)
            .await
            .status(),
        404
    );
    assert_eq!(
        app.send(Method::PUT, "/v1/plans/x", Some(json!({ "name": "" })))
            .await
            .status(),
        422
    );
    assert_eq!(app.audit_entries().await.len(), before);

    for reader in ["a", "b", "c"] {
        app.grant(reader, &["articles"]).await;
    }
    let first = app.audit("?action=grant.create&limit=2").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app
        .audit(&format!("?action=grant.create&limit=2&after={cursor}"))
        .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["next_cursor"], Value::Null);
    let b = app.audit("?action=grant.create&limit=10").await["items"][1]["target"].clone();
    let only_b = app.audit(&format!("?target={}", b.as_str().unwrap())).await;
    assert_eq!(only_b["items"].as_array().unwrap().len(), 1);
    let later = app.audit("?from=2100-01-01T00:00:00Z").await;
    assert!(later["items"].as_array().unwrap().is_empty());

    // Only admins read it, and bad filters are refused.
    let (_, finance) = app.new_key("finance").await;
    assert_eq!(
        app.get("/v1/admin/audit-log", Some(&finance))
            .await
            .status(),
        403
    );
    for query in ["?after=nope", "?limit=0", "?from=yesterday"] {
        let status = app
            .get(&format!("/v1/admin/audit-log{query}"), Some(&app.admin_key))
            .await
            .status();
        assert_eq!(status, 422, "{query}");
    }
}
