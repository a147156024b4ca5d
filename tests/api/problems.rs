use crate::helpers::{Options, problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_body_that_is_not_json_is_a_400_problem_and_creates_nothing() {
    let app = spawn_app().await;
    let before = app.key_count().await;
    for body in [
        "",
        "{",
        "role=admin",
        "{\"role\": \"service\", \"name\": }",
        "\u{0}",
    ] {
        let response = app
            .post_raw(Some(&app.admin_key), "application/json", body.to_string())
            .await;
        problem(response, 400, "malformed_json").await;
    }
    assert_eq!(app.key_count().await, before);
}

#[tokio::test]
async fn well_formed_json_that_breaks_a_rule_is_a_422_problem_and_creates_nothing() {
    let app = spawn_app().await;
    let before = app.key_count().await;
    for body in [
        serde_json::json!({}),
        serde_json::json!([]),
        serde_json::json!("admin"),
        serde_json::json!({ "role": "service" }),
        serde_json::json!({ "name": "x" }),
        serde_json::json!({ "role": "root", "name": "x" }),
        serde_json::json!({ "role": "SERVICE", "name": "x" }),
        serde_json::json!({ "role": 1, "name": "x" }),
        serde_json::json!({ "role": "service", "name": "" }),
        serde_json::json!({ "role": "service", "name": "   " }),
        serde_json::json!({ "role": "service", "name": "line\nbreak" }),
        serde_json::json!({ "role": "service", "name": "x".repeat(101) }),
        serde_json::json!({ "role": "service", "name": null }),
        serde_json::json!({ "role": "service", "name": "x", "admin": true }),
        // The fields in order, which serde alone would read as the struct.
        serde_json::json!(["service", "x"]),
    ] {
        let response = app.create_key(&app.admin_key, body.clone()).await;
        assert_eq!(response.status(), 422, "{body}");
        problem(response, 422, "invalid_body").await;
    }
    assert_eq!(app.key_count().await, before);
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_problem_and_creates_nothing() {
    let app = spawn_app().await;
    let before = app.key_count().await;
    let name = "x".repeat(70 * 1024);
    let response = app
        .create_key(
            &app.admin_key,
            serde_json::json!({ "role": "service", "name": name }),
        )
        .await;
    problem(response, 413, "payload_too_large").await;
    assert_eq!(app.key_count().await, before);
}

#[tokio::test]
async fn the_body_limit_is_configurable() {
    let app = spawn_app_with(Options {
        body_limit: Some(256),
        ..Options::default()
    })
    .await;
    let response = app
        .create_key(
            &app.admin_key,
            serde_json::json!({ "role": "service", "name": "x".repeat(90) }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let padded = format!(
        "{{\"role\": \"service\", \"name\": \"ok\"{}}}",
        " ".repeat(300)
    );
    let response = app
        .post_raw(Some(&app.admin_key), "application/json", padded)
        .await;
    problem(response, 413, "payload_too_large").await;
}

#[tokio::test]
async fn a_body_that_is_not_declared_json_is_a_415_problem() {
    let app = spawn_app().await;
    let response = app
        .post_raw(
            Some(&app.admin_key),
            "text/plain",
            r#"{"role": "service", "name": "x"}"#.to_string(),
        )
        .await;
    problem(response, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn control_characters_in_an_event_id_or_type_filter_are_problems_on_every_backend() {
    let app = spawn_app().await;
    let retry = app
        .client
        .post(app.url("/v1/admin/webhook-events/evt_1%00x/retry"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    problem(retry, 404, "not_found").await;
    problem(
        app.get(
            "/v1/admin/webhook-events?type=invoice.paid%00",
            Some(&app.admin_key),
        )
        .await,
        422,
        "invalid_type",
    )
    .await;
}

#[tokio::test]
async fn bad_query_parameters_are_422_problems() {
    let app = spawn_app().await;
    for (query, code) in [
        ("limit=0", "invalid_limit"),
        ("limit=501", "invalid_limit"),
        ("limit=abc", "invalid_query"),
        ("limit=-1", "invalid_query"),
        ("after=nope", "invalid_cursor"),
    ] {
        problem(
            app.get(&format!("/v1/keys?{query}"), Some(&app.admin_key))
                .await,
            422,
            code,
        )
        .await;
    }
}

#[tokio::test]
async fn an_unknown_path_is_a_404_problem_and_a_wrong_method_a_405_problem_with_allow() {
    let app = spawn_app().await;
    problem(
        app.get("/v2/everything", Some(&app.admin_key)).await,
        404,
        "not_found",
    )
    .await;
    let response = app
        .client
        .patch(app.url("/v1/keys"))
        .bearer_auth(&app.admin_key)
        .send()
        .await
        .unwrap();
    let allow = response
        .headers()
        .get("allow")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(allow.contains("POST") && allow.contains("GET"), "{allow}");
    problem(response, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn a_refused_request_is_refused_before_its_body_is_read() {
    let app = spawn_app().await;
    let response = app
        .post_raw(None, "application/json", "{ not json".to_string())
        .await;
    problem(response, 401, "missing_api_key").await;
}
