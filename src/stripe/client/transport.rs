//! The requests themselves: a form `POST` or a list `GET` sent through async-stripe, once, within
//! the client's timeout, and its answer read back.

use serde::Serialize;
use stripe::RequestStrategy;
use stripe_client_core::{IdempotencyKey, RequestBuilder, StripeMethod};

use super::StripeClient;
use super::convert::to_serde_json;
use super::error::StripeError;
use super::page::Page;

/// A Stripe list as async-stripe can hand it over: its other keys (`object`, `url`) are ignored.
#[derive(miniserde::Deserialize)]
struct RawList {
    data: Vec<miniserde::json::Value>,
    has_more: bool,
}

impl StripeClient {
    /// `POST`s `form` to `path` (with `idempotency_key`, when there is one) and reads the answer.
    pub(super) async fn post<T: miniserde::Deserialize>(
        &self,
        path: &str,
        form: &impl Serialize,
        idempotency_key: Option<&str>,
    ) -> Result<T, StripeError> {
        let strategy = match idempotency_key {
            Some(key) => RequestStrategy::Idempotent(
                IdempotencyKey::new(key).map_err(|e| StripeError::Config(e.to_string()))?,
            ),
            None => RequestStrategy::Once,
        };
        RequestBuilder::new(StripeMethod::Post, path)
            .form(form)
            .customize::<T>()
            .request_strategy(strategy)
            .send(&self.inner)
            .await
            .map_err(|error| StripeError::from_library(error, self.timeout))
    }

    /// `GET`s one page of the list at `path`, its objects converted to serde_json.
    pub(super) async fn list(
        &self,
        path: &str,
        query: &impl Serialize,
    ) -> Result<Page, StripeError> {
        let list: RawList = RequestBuilder::new(StripeMethod::Get, path)
            .query(query)
            .customize::<RawList>()
            .send(&self.inner)
            .await
            .map_err(|error| StripeError::from_library(error, self.timeout))?;
        let data = list
            .data
            .into_iter()
            .map(|object| to_serde_json(object, 0))
            .collect::<Result<_, _>>()?;
        Ok(Page {
            data,
            has_more: list.has_more,
        })
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
