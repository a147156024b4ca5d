use std::collections::HashSet;

use crate::helpers::{Options, problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn healthz_answers_200_while_the_process_runs() {
    let app = spawn_app().await;
    let response = app.get("/healthz", None).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_answers_200_and_names_the_backend_when_the_database_answers() {
    let app = spawn_app().await;
    let response = app.get("/readyz", None).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let expected = if app.db.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(body["database"], expected);
}

#[tokio::test]
async fn while_the_database_is_unreachable_readyz_and_writes_answer_503_and_nothing_changes_then_it_recovers()
 {
    let app = spawn_app_with(Options {
        via_proxy: true,
        ..Options::default()
    })
    .await;
    let keys_before = app.key_count().await;

    let outage = app.database_outage().await;
    let response = app.get("/readyz", None).await;
    assert!(response.headers().contains_key("retry-after"));
    problem(response, 503, "database_unavailable").await;
    let response = app
        .create_key(
            &app.admin_key,
            serde_json::json!({ "role": "service", "name": "during outage" }),
        )
        .await;
    let body = problem(response, 503, "database_unavailable").await;
    assert!(
        !body.to_string().to_lowercase().contains("sqlx"),
        "internals leaked: {body}"
    );
    outage.end().await;

    // The pool reconnects on its own: no restart.
    let mut ready = false;
    for _ in 0..50 {
        if app.get("/readyz", None).await.status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        ready,
        "tollgate did not recover after the database came back"
    );
    assert_eq!(
        app.key_count().await,
        keys_before,
        "a refused write was stored"
    );
    let (_, key) = app.new_key("service").await;
    assert!(key.starts_with("tgk_"));
}

#[tokio::test]
async fn metrics_count_requests_and_time_them_by_route_pattern_and_status() {
    let app = spawn_app().await;
    app.get("/healthz", None).await;
    app.get("/v1/keys", Some(&app.admin_key)).await;
    app.get("/v1/keys", None).await;
    app.get("/definitely/not/a/route", None).await;
    let (id, _) = app.new_key("finance").await;
    app.revoke(&app.admin_key, &id).await;

    let response = app.get("/metrics", None).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for line in [
        r#"tollgate_http_requests_total{endpoint="/healthz",method="GET",status="200"} 1"#,
        r#"tollgate_http_requests_total{endpoint="/v1/keys",method="GET",status="200"} 1"#,
        r#"tollgate_http_requests_total{endpoint="/v1/keys",method="GET",status="401"} 1"#,
        r#"tollgate_http_requests_total{endpoint="/v1/keys/{key_id}",method="DELETE",status="204"} 1"#,
        r#"tollgate_http_requests_total{endpoint="UNMATCHED",method="GET",status="404"} 1"#,
        r#"tollgate_http_requests_duration_seconds_count{endpoint="/v1/keys",method="POST",status="201"} 1"#,
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    assert!(text.contains(r#"tollgate_http_requests_duration_seconds_bucket{endpoint="/healthz",method="GET",status="200",le="0.005"}"#));
}

#[tokio::test]
async fn the_contract_is_served_and_describes_every_route_the_service_answers() {
    let app = spawn_app().await;
    let response = app.get("/openapi.yaml", None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/yaml");
    let served = response.text().await.unwrap();
    assert_eq!(served, include_str!("../../openapi.yaml"));

    let contract: serde_yaml::Value = serde_yaml::from_str(&served).unwrap();
    let documented: HashSet<(String, String)> = contract["paths"]
        .as_mapping()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            let path = path.as_str().unwrap().to_owned();
            ops.as_mapping()
                .unwrap()
                .keys()
                .map(move |method| (method.as_str().unwrap().to_uppercase(), path.clone()))
        })
        .collect();
    let served_routes: HashSet<(String, String)> = tollgate::routes::specs()
        .into_iter()
        .map(|spec| (spec.method.to_string(), spec.path.to_owned()))
        .collect();
    assert_eq!(documented, served_routes);
}

#[tokio::test]
async fn every_answer_carries_its_own_request_id() {
    let app = spawn_app().await;
    let mut seen = HashSet::new();
    for response in [
        app.get("/healthz", None).await,
        app.get("/v1/keys", None).await,
        app.get("/v1/keys", Some("tgk_0000")).await,
        app.get("/nowhere", None).await,
        app.client.put(app.url("/v1/keys")).send().await.unwrap(),
    ] {
        let id = response
            .headers()
            .get("x-request-id")
            .expect("no x-request-id")
            .to_str()
            .unwrap()
            .to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        assert!(seen.insert(id), "a request id was reused");
    }
}
