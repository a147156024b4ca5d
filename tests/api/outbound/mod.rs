//! Events out to the publisher's other services: endpoints, signed deliveries that a receiver
//! verifies itself, retries with backoff on the injected clock, 410 Gone, secret rotation, the
//! entitlement watcher (by writes and by time), the outbox surviving a crash, two instances
//! delivering each event once, and the URL rules that keep the dispatcher off private networks.

mod delivery;
mod events;
mod rules;

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

impl TestApp {
    pub async fn endpoint_request(&self, body: Value) -> Response {
        self.client
            .post(self.url("/v1/webhook-endpoints"))
            .bearer_auth(&self.admin_key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Registers `url` for `types`; the endpoint's id and secret.
    pub async fn add_endpoint(&self, url: &str, types: &[&str]) -> (String, String) {
        let response = self
            .endpoint_request(json!({ "url": url, "event_types": types }))
            .await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        (
            body["id"].as_str().unwrap().to_owned(),
            body["secret"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn endpoint(&self, id: &str) -> Value {
        self.get_json(
            &format!("/v1/webhook-endpoints/{id}"),
            Some(&self.admin_key),
        )
        .await
    }

    pub async fn deliveries(&self, endpoint: &str) -> Vec<Value> {
        self.get_json(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries"),
            Some(&self.admin_key),
        )
        .await["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Waits (up to 15 s) until the endpoint's deliveries satisfy `done`.
    pub async fn wait_deliveries(
        &self,
        endpoint: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        for _ in 0..300 {
            let deliveries = self.deliveries(endpoint).await;
            if done(&deliveries) {
                return deliveries;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "deliveries never got there: {:#}",
            json!(self.deliveries(endpoint).await)
        );
    }

    pub async fn admin_post(&self, path: &str, body: Option<Value>) -> Response {
        let mut request = self
            .client
            .post(self.url(path))
            .bearer_auth(&self.admin_key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }
}

pub fn instant(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

pub async fn app_with_plans() -> TestApp {
    let app = spawn_app().await;
    app.put_plan("all-access", &["price_1TPeerMonthly01"], &["articles"])
        .await;
    app
}
