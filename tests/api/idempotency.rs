//! Idempotent POSTs: the first answer to an `Idempotency-Key` (per API key and path) is replayed
//! to a retry with the same body without doing the work again, secrets blanked; another body is
//! refused; concurrent attempts execute once; 5xx answers are not kept; a key lives a day.

use futures_util::future::join_all;
use reqwest::Response;
use serde_json::{Value, json};
use tollgate::routes;

use crate::helpers::{Options, TestApp, problem, spawn_app, spawn_app_with};

impl TestApp {
    async fn post_idempotent(
        &self,
        api_key: &str,
        path: &str,
        key: &str,
        body: &Value,
    ) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(api_key)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn grant_count(&self, reader: &str) -> usize {
        self.reader(reader).await["grants"]
            .as_array()
            .unwrap()
            .len()
    }
}

fn grant_body(reason: &str) -> Value {
    json!({ "entitlements": ["articles"], "expires_at": "2030-01-01T00:00:00Z", "reason": reason })
}

fn replayed(response: &Response) -> bool {
    response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

#[tokio::test]
async fn a_retried_post_replays_its_first_answer_without_doing_the_work_again() {
    let app = spawn_app().await;
    let path = "/v1/readers/ana/grants";
    let first = app
        .post_idempotent(&app.admin_key, path, "grant-ana-1", &grant_body("gift"))
        .await;
    assert_eq!(first.status(), 201);
    assert!(!replayed(&first));
    let first: Value = first.json().await.unwrap();

    let again = app
        .post_idempotent(&app.admin_key, path, "grant-ana-1", &grant_body("gift"))
        .await;
    assert_eq!(again.status(), 201);
    assert!(replayed(&again));
    assert_eq!(again.headers()["content-type"], "application/json");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again, first);
    assert_eq!(app.grant_count("ana").await, 1);

    // Without a key, or with another one, the work is done again.
    assert_eq!(
        app.post_idempotent(&app.admin_key, path, "grant-ana-2", &grant_body("gift"))
            .await
            .status(),
        201
    );
    assert_eq!(app.grant_count("ana").await, 2);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused_and_keys_are_per_caller_and_path() {
    let app = spawn_app().await;
    let path = "/v1/readers/ana/grants";
    assert_eq!(
        app.post_idempotent(&app.admin_key, path, "k1", &grant_body("gift"))
            .await
            .status(),
        201
    );
    problem(
        app.post_idempotent(&app.admin_key, path, "k1", &grant_body("another reason"))
            .await,
        422,
        "idempotency_key_reused",
    )
    .await;
    // Another path, or another caller: their own attempts.
    assert_eq!(
        app.post_idempotent(
            &app.admin_key,
            "/v1/readers/ben/grants",
            "k1",
            &grant_body("gift")
        )
        .await
        .status(),
        201
    );
    let (_, other_admin) = app.new_key("admin").await;
    let other = app
        .post_idempotent(&other_admin, path, "k1", &grant_body("gift"))
        .await;
    assert_eq!(other.status(), 201);
    assert!(!replayed(&other));
    assert_eq!(app.grant_count("ana").await, 2);
    assert_eq!(app.grant_count("ben").await, 1);

    for bad in ["", "a b", &"k".repeat(256)] {
        problem(
            app.post_idempotent(&app.admin_key, path, bad, &grant_body("gift"))
                .await,
            422,
            "invalid_idempotency_key",
        )
        .await;
    }
    assert_eq!(app.grant_count("ana").await, 2);
}

#[tokio::test]
async fn a_new_keys_secret_is_never_kept_a_replay_shows_null() {
    let app = spawn_app().await;
    let body = json!({ "role": "service", "name": "site" });
    let created = app
        .post_idempotent(&app.admin_key, "/v1/keys", "new-site-key", &body)
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let secret = created["key"].as_str().unwrap().to_owned();
    let keys_before = app.key_count().await;

    let replay = app
        .post_idempotent(&app.admin_key, "/v1/keys", "new-site-key", &body)
        .await;
    assert_eq!(replay.status(), 201);
    assert!(replayed(&replay));
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["id"], created["id"]);
    assert_eq!(replay["key"], Value::Null);
    assert_eq!(app.key_count().await, keys_before);
    // The secret is nowhere in the database's kept answers.
    let stored = app.stored_idempotent_bodies().await;
    assert_eq!(stored.len(), 1);
    assert!(!stored.iter().any(|b| b.contains(&secret)));
}

fn allow_news_example(settings: &mut tollgate::config::Settings) {
    settings.allowed_redirect_origins = vec!["https://news.example".parse().unwrap()];
}

#[tokio::test]
async fn refusals_are_kept_and_server_errors_are_not() {
    let app = spawn_app_with(Options {
        configure: Some(allow_news_example),
        ..Options::default()
    })
    .await;
    let path = "/v1/readers/ana/grants";
    let past = json!({ "entitlements": ["articles"], "expires_at": "2001-01-01T00:00:00Z", "reason": "x" });
    problem(
        app.post_idempotent(&app.admin_key, path, "bad-1", &past)
            .await,
        422,
        "invalid_body",
    )
    .await;
    let again = app
        .post_idempotent(&app.admin_key, path, "bad-1", &past)
        .await;
    assert!(replayed(&again));
    problem(again, 422, "invalid_body").await;

    // A refusal is kept whole: its problem `code` is not the `code` a gift link's answer
    // hides.
    let gift = json!({ "reader_id": "nobody", "article_id": "a1" });
    for _ in 0..2 {
        problem(
            app.post_idempotent(&app.admin_key, "/v1/gifts/articles", "gift-1", &gift)
                .await,
            409,
            "giver_not_entitled",
        )
        .await;
    }

    // Without Stripe, checkout answers 503: not kept, so a retry is served again.
    app.put_plan("digital", &["price_monthly"], &["articles"])
        .await;
    let checkout = json!({
        "reader_id": "ana", "plan_id": "digital",
        "success_url": "https://news.example/ok", "cancel_url": "https://news.example/no",
    });
    for _ in 0..2 {
        let response = app
            .post_idempotent(&app.admin_key, "/v1/checkout/sessions", "co-1", &checkout)
            .await;
        assert!(!replayed(&response));
        assert!(
            response.status() == 503 || response.status() == 422,
            "{}",
            response.status()
        );
    }
}

#[tokio::test]
async fn concurrent_attempts_with_one_key_execute_once() {
    let app = spawn_app().await;
    let path = "/v1/readers/ana/grants";
    let body = grant_body("gift");
    let answers = join_all((0..10).map(|_| {
        let (app, body) = (&app, &body);
        async move {
            let response = app
                .post_idempotent(&app.admin_key, path, "race", body)
                .await;
            (response.status().as_u16(), replayed(&response))
        }
    }))
    .await;
    let executed = answers.iter().filter(|(s, r)| *s == 201 && !r).count();
    assert_eq!(executed, 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|(s, r)| (*s == 201) || (*s == 409 && !r)),
        "{answers:?}"
    );
    assert_eq!(app.grant_count("ana").await, 1);
}

#[tokio::test]
async fn a_key_is_kept_for_a_day_then_names_a_new_attempt() {
    let app = spawn_app().await;
    let path = "/v1/readers/ana/grants";
    let body = grant_body("gift");
    assert_eq!(
        app.post_idempotent(&app.admin_key, path, "day", &body)
            .await
            .status(),
        201
    );
    app.clock.advance(chrono::Duration::hours(23));
    assert!(replayed(
        &app.post_idempotent(&app.admin_key, path, "day", &body)
            .await
    ));
    app.clock.advance(chrono::Duration::hours(2));
    let later = app
        .post_idempotent(&app.admin_key, path, "day", &body)
        .await;
    assert_eq!(later.status(), 201);
    assert!(!replayed(&later));
    assert_eq!(app.grant_count("ana").await, 2);
    // The purge deletes what has passed its window.
    app.clock.advance(chrono::Duration::hours(25));
    let now = tollgate::clock::Clock::now(&app.clock);
    assert_eq!(
        app.store
            .purge_batch(tollgate::domain::Purge::IdempotencyKeys, now, now, 1000)
            .await
            .unwrap(),
        1
    );
}

#[test]
fn every_post_that_creates_something_honours_idempotency_keys() {
    let idempotent: Vec<&str> = routes::specs()
        .into_iter()
        .filter(|spec| spec.idempotent.is_some())
        .map(|spec| {
            assert_eq!(spec.method, actix_web::http::Method::POST, "{}", spec.path);
            spec.path
        })
        .collect();
    for path in [
        "/v1/keys",
        "/v1/readers/{reader_id}/grants",
        "/v1/licences",
        "/v1/readers/{reader_id}/licence-claims",
        "/v1/readers/{reader_id}/seats",
        "/v1/gifts/articles",
        "/v1/gifts/subscriptions/redeem",
        "/v1/checkout/sessions",
        "/v1/portal/sessions",
        "/v1/admin/signing-keys/rotate",
    ] {
        assert!(idempotent.contains(&path), "{path}");
    }
    // The contract documents the header on each of them.
    let contract: serde_yaml::Value =
        serde_yaml::from_str(include_str!("../../openapi.yaml")).unwrap();
    for path in idempotent {
        let parameters = &contract["paths"][path]["post"]["parameters"];
        let documented = parameters.as_sequence().is_some_and(|list| {
            list.iter().any(|p| {
                p["$ref"].as_str() == Some("#/components/parameters/IdempotencyKey")
                    || p["name"].as_str() == Some("Idempotency-Key")
            })
        });
        assert!(documented, "{path} does not document Idempotency-Key");
    }
}
