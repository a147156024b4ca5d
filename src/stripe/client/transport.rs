//! The requests themselves: a list `GET` or a form `POST`, sent with reqwest within the client's
//! timeout, tried again after a transient failure as the client's [`RetryPolicy`] says, and its
//! answer read back with serde_json. A `GET` is always safe to try again; a `POST` only with an
//! idempotency key, which Stripe uses to answer a repeated call with the first one's result.

use std::time::Duration;

use backon::Retryable;
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use stripe_client_core::{IdempotencyKey, RequestBuilder, StripeMethod};

use super::StripeClient;
use super::error::StripeError;
use super::page::Page;
use super::retry::{Failure, RetryPolicy};

/// A Stripe list as sent: its other keys (`object`, `url`) are ignored.
#[derive(serde::Deserialize)]
struct RawList {
    data: Vec<serde_json::Value>,
    has_more: bool,
}

impl StripeClient {
    /// `POST`s `form` to `path` (with `idempotency_key`, when there is one) and reads the answer.
    pub(super) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        form: &impl Serialize,
        idempotency_key: Option<&str>,
    ) -> Result<T, StripeError> {
        if let Some(key) = idempotency_key {
            IdempotencyKey::new(key).map_err(|e| StripeError::Config(e.to_string()))?;
        }
        let request = RequestBuilder::new(StripeMethod::Post, path).form(form);
        let (status, body) = self.send(&request, idempotency_key).await?;
        serde_json::from_slice(&body).map_err(|error| {
            tracing::warn!(path, %error, "a Stripe answer did not read as the object asked for");
            StripeError::unreadable(status, "POST", path, &body)
        })
    }

    /// `GET`s one page of the list at `path`.
    pub(super) async fn list(
        &self,
        path: &str,
        query: &impl Serialize,
    ) -> Result<Page, StripeError> {
        let request = RequestBuilder::new(StripeMethod::Get, path).query(query);
        let (status, body) = self.send(&request, None).await?;
        let list: RawList = serde_json::from_slice(&body).map_err(|error| {
            tracing::warn!(path, %error, "a Stripe answer did not read as a list");
            StripeError::unreadable(status, "GET", path, &body)
        })?;
        Ok(Page {
            data: list.data,
            has_more: list.has_more,
        })
    }

    /// Sends `request` until it succeeds, fails for good, or the retry policy gives up; the
    /// successful answer's status and body.
    async fn send(
        &self,
        request: &RequestBuilder,
        idempotency_key: Option<&str>,
    ) -> Result<(u16, Bytes), StripeError> {
        let attempt = || self.attempt(request, idempotency_key);
        let repeatable = matches!(request.method, StripeMethod::Get) || idempotency_key.is_some();
        if !repeatable {
            return attempt().await.map_err(|failure| failure.error);
        }
        let policy: RetryPolicy = self.retry;
        let mut waited = Duration::ZERO;
        attempt
            .retry(policy.backoff())
            .when(|failure: &Failure| failure.transient)
            .adjust(|failure, planned| policy.next_wait(failure.retry_after, planned, &mut waited))
            .notify(|failure, wait| {
                tracing::warn!(
                    error = %failure.error,
                    wait = ?wait,
                    "a Stripe API call failed; it is tried again"
                );
            })
            .await
            .map_err(|failure| failure.error)
    }

    /// One try of `request`.
    async fn attempt(
        &self,
        request: &RequestBuilder,
        idempotency_key: Option<&str>,
    ) -> Result<(u16, Bytes), Failure> {
        let mut url = format!("{}{}", self.api_base, request.path.trim_start_matches('/'));
        if let Some(query) = request.query.as_deref().filter(|q| !q.is_empty()) {
            url.push('?');
            url.push_str(query);
        }
        let (method, name) = match request.method {
            StripeMethod::Get => (reqwest::Method::GET, "GET"),
            StripeMethod::Post => (reqwest::Method::POST, "POST"),
            StripeMethod::Delete => (reqwest::Method::DELETE, "DELETE"),
        };
        let mut builder = self.http.request(method, url);
        if let Some(body) = &request.body {
            builder = builder
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body.clone());
        }
        if let Some(key) = idempotency_key {
            builder = builder.header("idempotency-key", key);
        }
        let unanswered = |error| Failure::unanswered(StripeError::unanswered(error, self.timeout));
        let response = builder.send().await.map_err(unanswered)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(unanswered)?;
        if (200..300).contains(&status) {
            return Ok((status, body));
        }
        let error = StripeError::from_answer(status, name, &request.path, &body);
        Err(Failure::answered(error, status, &headers))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::stripe::client::fake_stripe::{FakeStripe, KEY, invoice, list, stripe_error};

    #[actix_web::test]
    async fn reads_two_pages_of_invoices_following_has_more_and_starting_after() {
        let stripe = FakeStripe::start(|seen| match seen.param("starting_after") {
            None => list(
                "/v1/invoices",
                true,
                vec![
                    invoice("in_1QxZ0b2eZvKYlo2C00000003", 1_738_368_000),
                    invoice("in_1QxZ0b2eZvKYlo2C00000002", 1_738_300_000),
                ],
            ),
            Some("in_1QxZ0b2eZvKYlo2C00000002") => list(
                "/v1/invoices",
                false,
                vec![invoice("in_1QxZ0b2eZvKYlo2C00000001", 1_738_200_000)],
            ),
            Some(other) => stripe_error(
                400,
                json!({ "error": { "type": "invalid_request_error", "message": format!("bad cursor {other}") } }),
            ),
        })
        .await;
        let client = stripe.client();

        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = client
                .list_invoices(1_738_000_000, cursor.as_deref())
                .await
                .unwrap();
            ids.extend(
                page.data
                    .iter()
                    .map(|i| i["id"].as_str().unwrap().to_owned()),
            );
            if !page.has_more {
                break;
            }
            cursor = page.last_id().map(str::to_owned);
        }

        assert_eq!(
            ids,
            [
                "in_1QxZ0b2eZvKYlo2C00000003",
                "in_1QxZ0b2eZvKYlo2C00000002",
                "in_1QxZ0b2eZvKYlo2C00000001"
            ]
        );
        let seen = stripe.seen();
        assert_eq!(seen.len(), 2);
        for request in &seen {
            assert_eq!(request.path, "/v1/invoices");
            assert_eq!(request.param("created[gte]"), Some("1738000000"));
            assert_eq!(request.param("limit"), Some("100"));
            assert_eq!(
                request.authorization.as_deref(),
                Some(format!("Bearer {KEY}").as_str())
            );
        }
        assert_eq!(seen[0].raw_query, "created[gte]=1738000000&limit=100");
        assert_eq!(seen[0].param("starting_after"), None);
        assert_eq!(
            seen[1].param("starting_after"),
            Some("in_1QxZ0b2eZvKYlo2C00000002")
        );
        stripe.stop().await;
    }
}
