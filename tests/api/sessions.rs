//! Dashboard sessions: a `finance` or `admin` key opens an eight-hour, read-only session whose
//! token reads reports and `whoami` and nothing else; signing out, revoking the key and time end
//! it; only the token's hash is stored.

use chrono::{DateTime, TimeDelta};
use reqwest::Method;
use serde_json::Value;
use tollgate::clock::Clock;
use tollgate::http::auth::{Access, Sessions};

use crate::helpers::{TestApp, problem, spawn_app};

impl TestApp {
    async fn open_session(&self, key: &str) -> reqwest::Response {
        self.client
            .post(self.url("/v1/sessions"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    /// A session of `key`, which must open: its answer.
    async fn session(&self, key: &str) -> Value {
        let response = self.open_session(key).await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    async fn sign_out(&self, token: &str) -> reqwest::Response {
        self.client
            .delete(self.url("/v1/sessions/current"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }
}

const REPORT: &str = "/v1/reports/mrr?from=2026-01&to=2026-02";

#[tokio::test]
async fn a_finance_key_opens_an_eight_hour_session_whose_token_is_stored_only_as_a_hash() {
    let app = spawn_app().await;
    let (key_id, finance) = app.new_key("finance").await;
    let response = app.open_session(&finance).await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let token = body["token"].as_str().unwrap();
    assert!(token.starts_with("tgs_") && token.len() == 36, "{body}");
    assert!(body["id"].as_str().unwrap().starts_with("ses_"));
    assert_eq!(body["role"], "finance");
    assert_eq!(body["key_id"], key_id.as_str());
    let expires = DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires, app.clock.now() + TimeDelta::hours(8));

    let stored = app.db.stored_sessions().await;
    assert_eq!(stored.len(), 1);
    let (hash, text) = &stored[0];
    assert_eq!(
        hash.as_slice(),
        <sha2::Sha256 as sha2::Digest>::digest(token.as_bytes()).as_slice()
    );
    assert!(!text.contains(&token[4..]), "the token is stored");

    // The token reads reports and says who it is.
    assert_eq!(app.get(REPORT, Some(token)).await.status(), 200);
    let me: Value = app
        .get("/v1/whoami", Some(token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "finance");
    assert_eq!(me["key_id"], key_id.as_str());
    assert_eq!(me["session"]["id"], body["id"]);
    assert_eq!(me["session"]["expires_at"], body["expires_at"]);

    // Opening one is in the audit log, without the token.
    let audit: Value = app
        .get_json(
            "/v1/admin/audit-log?action=session.create",
            Some(&app.admin_key),
        )
        .await;
    let entry = &audit["items"][0];
    assert_eq!(
        entry["target"],
        format!("session:{}", body["id"].as_str().unwrap())
    );
    assert_eq!(entry["key_id"], key_id.as_str());
    assert!(!audit.to_string().contains(token), "{audit}");

    // At the eighth hour it ends.
    app.clock.advance(TimeDelta::hours(8));
    problem(app.get(REPORT, Some(token)).await, 401, "invalid_api_key").await;
}

#[tokio::test]
async fn an_admin_key_opens_one_too_and_a_service_key_is_told_why_not() {
    let app = spawn_app().await;
    assert_eq!(app.session(&app.admin_key).await["role"], "admin");
    let (_, service) = app.new_key("service").await;
    let body = problem(app.open_session(&service).await, 403, "forbidden").await;
    let detail = body["detail"].as_str().unwrap();
    assert_eq!(
        detail,
        "a service key may not call this route: it takes finance or admin keys"
    );
    let wrong = format!("tgk_{}", "0".repeat(64));
    problem(app.open_session(&wrong).await, 401, "invalid_api_key").await;
    problem(app.open_session("").await, 401, "invalid_api_key").await;
    // A session does not open another.
    let token = app.session(&app.admin_key).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    problem(app.open_session(&token).await, 403, "session_not_allowed").await;
    // whoami takes any key.
    let me: Value = app
        .get("/v1/whoami", Some(&service))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "service");
    assert_eq!(me["session"], Value::Null);
}

#[tokio::test]
async fn a_session_reads_every_report_and_nothing_else() {
    let app = spawn_app().await;
    let (_, finance) = app.new_key("finance").await;
    let admin_token = app.session(&app.admin_key).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let finance_token = app.session(&finance).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut accepted = 0;
    for spec in tollgate::routes::specs() {
        let Access::Roles(_) = spec.access else {
            continue;
        };
        let method = Method::from_bytes(spec.method.as_str().as_bytes()).unwrap();
        let path = spec
            .path
            .replace("{key_id}", "key_0123456789abcdef0123456789abcdef")
            .replace("{plan_id}", "no-such-plan")
            .replace("{reader_id}", "reader-1")
            .replace("{event_id}", "evt_none");
        // Signing out is tested on its own: here it would end the sessions under test.
        if spec.sessions == Sessions::Required {
            continue;
        }
        for token in [&admin_token, &finance_token] {
            let response = app
                .client
                .request(method.clone(), app.url(&path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let route = format!("{} {}", spec.method, spec.path);
            match spec.sessions {
                Sessions::Refused => {
                    problem(response, 403, "session_not_allowed").await;
                }
                Sessions::Accepted | Sessions::Required => {
                    let status = response.status();
                    assert!(status != 401 && status != 403, "{route}: {status}");
                    // Sessions only read (and end themselves).
                    assert!(
                        spec.method == actix_web::http::Method::GET
                            || spec.path == "/v1/sessions/current",
                        "{route}"
                    );
                    accepted += 1;
                }
            }
        }
    }
    // The seven reports and whoami, with each token.
    assert_eq!(accepted, 2 * 8);
}

#[tokio::test]
async fn signing_out_or_revoking_the_key_ends_a_session_and_an_api_key_cannot_sign_out() {
    let app = spawn_app().await;
    let (key_id, finance) = app.new_key("finance").await;
    let first = app.session(&finance).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = app.session(&finance).await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    problem(app.sign_out(&finance).await, 403, "session_required").await;
    assert_eq!(app.sign_out(&first).await.status(), 204);
    problem(app.get(REPORT, Some(&first)).await, 401, "invalid_api_key").await;
    problem(app.sign_out(&first).await, 401, "invalid_api_key").await;
    // The other session lives on until its key is revoked.
    assert_eq!(app.get(REPORT, Some(&second)).await.status(), 200);
    assert_eq!(app.revoke(&app.admin_key, &key_id).await.status(), 204);
    problem(app.get(REPORT, Some(&second)).await, 401, "invalid_api_key").await;
    problem(
        app.get("/v1/whoami", Some(&second)).await,
        401,
        "invalid_api_key",
    )
    .await;
    // A token of the right shape that was never issued.
    let forged = format!("tgs_{}", "a".repeat(32));
    problem(app.get(REPORT, Some(&forged)).await, 401, "invalid_api_key").await;
}
