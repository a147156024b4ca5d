//! Rate limits on `POST /v1/access` and `POST /v1/checkout/sessions`: per API key and per reader,
//! answered with a 429 problem and `Retry-After`, and a refused request changes nothing.

use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, problem, spawn_app_with};

async fn app_with(configure: fn(&mut tollgate::config::Settings)) -> TestApp {
    spawn_app_with(Options {
        configure: Some(configure),
        ..Options::default()
    })
    .await
}

impl TestApp {
    async fn post_with(&self, key: &str, path: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

/// A 429 `rate_limited` problem whose `Retry-After` is `seconds`, or a little less when the
/// requests before it took a while.
async fn limited(response: Response, seconds: u64) {
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in whole seconds");
    assert!(
        retry_after <= seconds && retry_after + 5 > seconds,
        "Retry-After {retry_after}, expected about {seconds}"
    );
    problem(response, 429, "rate_limited").await;
}

#[tokio::test]
async fn a_reader_over_its_limit_gets_429_with_retry_after_and_its_meter_does_not_move() {
    let app = app_with(|s| s.rate_limit_access_per_reader = 2).await;
    let read = |article: &str| json!({ "reader_id": "reader-7", "article_id": article });
    for article in ["a-1", "a-2"] {
        let response = app
            .post_with(&app.admin_key, "/v1/access", read(article))
            .await;
        assert_eq!(response.status(), 200);
    }
    // Two a minute: the next one is allowed in 30 s.
    limited(
        app.post_with(&app.admin_key, "/v1/access", read("a-3"))
            .await,
        30,
    )
    .await;
    let reader = app.reader("reader-7").await;
    assert_eq!(reader["meter"]["used"], 2, "{reader}");
    // Other readers, and a device that happens to share the id, have their own allowance.
    let other = app
        .post_with(
            &app.admin_key,
            "/v1/access",
            json!({ "reader_id": "reader-8", "article_id": "a-3" }),
        )
        .await;
    assert_eq!(other.status(), 200);
    let device = app
        .post_with(
            &app.admin_key,
            "/v1/access",
            json!({ "device_id": "reader-7", "article_id": "a-3" }),
        )
        .await;
    assert_eq!(device.status(), 200);
}

#[tokio::test]
async fn one_sites_key_over_its_limit_does_not_starve_another_sites_key() {
    let app = app_with(|s| {
        s.rate_limit_access_per_key = 3;
        s.rate_limit_access_per_reader = 0;
    })
    .await;
    let (_, noisy) = app.new_key("service").await;
    let (_, quiet) = app.new_key("service").await;
    let body = |n: u32| json!({ "reader_id": format!("reader-{n}"), "article_id": "a-1" });
    for n in 0..3 {
        assert_eq!(
            app.post_with(&noisy, "/v1/access", body(n)).await.status(),
            200
        );
    }
    limited(app.post_with(&noisy, "/v1/access", body(3)).await, 20).await;
    assert_eq!(
        app.post_with(&quiet, "/v1/access", body(3)).await.status(),
        200
    );
}

#[tokio::test]
async fn checkout_is_limited_per_reader_before_anything_is_looked_up() {
    let app = app_with(|s| s.rate_limit_checkout_per_reader = 1).await;
    let body = |reader: &str| {
        json!({
            "reader_id": reader, "plan_id": "no-such-plan",
            "success_url": "https://news.example/welcome", "cancel_url": "https://news.example/offer"
        })
    };
    // The first is answered on its merits (no such plan; no allowed origins here either).
    let first = app
        .post_with(&app.admin_key, "/v1/checkout/sessions", body("reader-1"))
        .await;
    assert!(first.status().is_client_error(), "{}", first.status());
    assert_ne!(first.status(), 429);
    limited(
        app.post_with(&app.admin_key, "/v1/checkout/sessions", body("reader-1"))
            .await,
        60,
    )
    .await;
    let other = app
        .post_with(&app.admin_key, "/v1/checkout/sessions", body("reader-2"))
        .await;
    assert_ne!(other.status(), 429);
}

#[tokio::test]
async fn checkout_is_limited_per_key() {
    let app = app_with(|s| {
        s.rate_limit_checkout_per_key = 2;
        s.rate_limit_checkout_per_reader = 0;
    })
    .await;
    let body = json!({
        "reader_id": "reader-1", "plan_id": "no-such-plan",
        "success_url": "https://news.example/welcome", "cancel_url": "https://news.example/offer"
    });
    for _ in 0..2 {
        let response = app
            .post_with(&app.admin_key, "/v1/checkout/sessions", body.clone())
            .await;
        assert_ne!(response.status(), 429);
    }
    limited(
        app.post_with(&app.admin_key, "/v1/checkout/sessions", body)
            .await,
        30,
    )
    .await;
}
