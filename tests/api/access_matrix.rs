//! Every route of the route table × no key, malformed, unknown and revoked keys, and each role.
//! (Dashboard session tokens on every route: `sessions.rs`.)
//! The routes come from the table the application is wired from, so a new route is checked
//! the moment it exists.

use tollgate::domain::Role;
use tollgate::http::auth::{Access, Sessions};

use crate::helpers::{TestApp, spawn_app};

async fn call(
    app: &TestApp,
    method: &reqwest::Method,
    path: &str,
    key: Option<&str>,
) -> reqwest::Response {
    let path = path
        .replace("{key_id}", "key_0123456789abcdef0123456789abcdef")
        .replace("{plan_id}", "no-such-plan")
        .replace("{reader_id}", "reader-1")
        .replace("{grant_id}", "grt_0123456789abcdef0123456789abcdef")
        .replace("{event_id}", "evt_none");
    let mut request = app.client.request(method.clone(), app.url(&path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if *method == reqwest::Method::POST || *method == reqwest::Method::PUT {
        request = request.json(&serde_json::json!({}));
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn every_guarded_route_refuses_missing_bad_and_revoked_keys_and_wrong_roles() {
    let app = spawn_app().await;
    let (revoked_id, revoked) = app.new_key("admin").await;
    assert_eq!(app.revoke(&app.admin_key, &revoked_id).await.status(), 204);
    let unknown = format!("tgk_{}", "0".repeat(64));
    let mut keys = Vec::new();
    for role in Role::ALL {
        keys.push((role, app.new_key(role.as_str()).await.1));
    }

    let specs = tollgate::routes::specs();
    assert!(!specs.is_empty());
    for spec in specs {
        let method = reqwest::Method::from_bytes(spec.method.as_str().as_bytes()).unwrap();
        let route = format!("{} {}", spec.method, spec.path);
        match spec.access {
            Access::Public => {
                let status = call(&app, &method, spec.path, None).await.status();
                assert!(
                    status != 401 && status != 403,
                    "{route} without a key: {status}"
                );
            }
            Access::Roles(roles) => {
                for (label, key) in [
                    ("no key", None),
                    ("a malformed key", Some("tgk_not-a-key")),
                    ("an unknown key", Some(unknown.as_str())),
                    ("a revoked key", Some(revoked.as_str())),
                ] {
                    let status = call(&app, &method, spec.path, key).await.status();
                    assert_eq!(status, 401, "{route} with {label}");
                }
                for (role, key) in &keys {
                    let status = call(&app, &method, spec.path, Some(key)).await.status();
                    if spec.sessions == Sessions::Required {
                        // Signing out of a session takes the session's token, never a key.
                        assert_eq!(status, 403, "{route} as {role}");
                    } else if *role == Role::Admin || roles.contains(role) {
                        assert!(
                            status != 401 && status != 403,
                            "{route} as {role}: {status}"
                        );
                    } else {
                        assert_eq!(status, 403, "{route} as {role}");
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn the_authorization_header_is_read_strictly() {
    let app = spawn_app().await;
    for header in [
        format!("Basic {}", app.admin_key),
        app.admin_key.clone(),
        format!("Bearer{}", app.admin_key),
        format!("Bearer {}x", app.admin_key),
        "Bearer ".to_owned(),
    ] {
        let response = app
            .client
            .get(app.url("/v1/keys"))
            .header("authorization", header.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{header:?}");
    }
    let response = app
        .client
        .get(app.url("/v1/keys"))
        .header("authorization", format!("bearer {}", app.admin_key))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the scheme is case-insensitive");
}
