//! Why a call to Stripe failed, from what async-stripe reports.

use std::time::Duration;

use super::redact::bounded_message;

/// Why a call to Stripe failed. The secret key is never part of it.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe answered with an error object.
    #[error(
        "Stripe answered {status} ({error_type}{}): {}",
        code.as_deref().map(|c| format!(", {c}")).unwrap_or_default(),
        message.as_deref().unwrap_or("no message")
    )]
    Api {
        /// The HTTP status, such as 404.
        status: u16,
        /// Stripe's error `type`, such as `invalid_request_error`, kept verbatim.
        error_type: String,
        /// Stripe's error `code`, such as `resource_missing`, kept verbatim.
        code: Option<String>,
        /// Stripe's human-readable `message`, cut to a bounded length.
        message: Option<String>,
    },
    /// Stripe did not answer within the configured timeout.
    #[error("Stripe did not answer within {0:?}")]
    Timeout(Duration),
    /// Stripe could not be reached: connection refused, DNS, TLS and the like.
    #[error("could not reach Stripe: {0}")]
    Network(String),
    /// Stripe answered with something that is not what its API documents.
    #[error("unexpected answer from Stripe: {0}")]
    Unexpected(String),
    /// The client could not be built from the settings given.
    #[error("invalid Stripe client settings: {0}")]
    Config(String),
}

impl StripeError {
    pub(super) fn from_library(error: stripe::StripeError, timeout: Duration) -> Self {
        match error {
            stripe::StripeError::Stripe(api, status) => Self::Api {
                status,
                error_type: api.type_.as_str().to_owned(),
                code: api.code.as_ref().map(|code| code.as_str().to_owned()),
                message: api.message.as_deref().map(bounded_message),
            },
            stripe::StripeError::Timeout => Self::Timeout(timeout),
            stripe::StripeError::ClientError(message) => Self::Network(message),
            stripe::StripeError::JSONDeserialize(message) => Self::Unexpected(message),
            stripe::StripeError::ConfigError(message) => Self::Config(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use actix_web::HttpResponse;
    use serde_json::json;

    use super::*;
    use crate::stripe::client::StripeClient;
    use crate::stripe::client::fake_stripe::{FakeStripe, KEY, PAYMENT_INTENT, key, stripe_error};

    #[actix_web::test]
    async fn a_stripe_error_body_becomes_an_api_error_with_type_code_message_and_status() {
        let stripe = FakeStripe::start(|_| {
            stripe_error(
                404,
                json!({ "error": {
                    "code": "resource_missing",
                    "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
                    "message": "No such payment_intent: 'pi_3QxZ0a2eZvKYlo2C1kLmNoPq'",
                    "param": "payment[payment_intent]",
                    "request_log_url": "https://dashboard.stripe.com/test/logs/req_8VpZbLhW3kQx0A",
                    "type": "invalid_request_error"
                } }),
            )
        })
        .await;

        let error = stripe
            .client()
            .invoice_payments_for(PAYMENT_INTENT)
            .await
            .unwrap_err();

        match &error {
            StripeError::Api {
                status,
                error_type,
                code,
                message,
            } => {
                assert_eq!(*status, 404);
                assert_eq!(error_type, "invalid_request_error");
                assert_eq!(code.as_deref(), Some("resource_missing"));
                assert_eq!(
                    message.as_deref(),
                    Some("No such payment_intent: 'pi_3QxZ0a2eZvKYlo2C1kLmNoPq'")
                );
            }
            other => panic!("expected an API error, got {other:?}"),
        }
        assert_eq!(
            error.to_string(),
            "Stripe answered 404 (invalid_request_error, resource_missing): \
             No such payment_intent: 'pi_3QxZ0a2eZvKYlo2C1kLmNoPq'"
        );
        // Stripe-Should-Retry aside, nothing is retried here: one request, one answer.
        assert_eq!(stripe.seen().len(), 1);
        stripe.stop().await;
    }

    #[actix_web::test]
    async fn error_types_and_codes_stripe_adds_later_are_kept_verbatim() {
        let stripe = FakeStripe::start(|_| {
            stripe_error(
                429,
                json!({ "error": {
                    "type": "rate_limit_error",
                    "code": "lock_timeout_of_the_future",
                    "message": "Too many requests hit the API too quickly.\nSlow down."
                } }),
            )
        })
        .await;

        let error = stripe.client().list_subscriptions(None).await.unwrap_err();

        let StripeError::Api {
            status,
            error_type,
            code,
            message,
        } = error
        else {
            panic!("expected an API error, got {error:?}");
        };
        assert_eq!(status, 429);
        assert_eq!(error_type, "rate_limit_error");
        assert_eq!(code.as_deref(), Some("lock_timeout_of_the_future"));
        assert_eq!(
            message.as_deref(),
            Some("Too many requests hit the API too quickly. Slow down.")
        );
        stripe.stop().await;
    }

    #[actix_web::test]
    async fn a_server_that_never_answers_is_cut_off_by_the_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        // Accepts connections and holds them open without a word, for at most 30 s.
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            let deadline = tokio::time::sleep(Duration::from_secs(30));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    accepted = listener.accept() => held.push(accepted.unwrap().0),
                    () = &mut deadline => break,
                }
            }
        });
        let base = url::Url::parse(&format!("http://{address}/")).unwrap();
        let timeout = Duration::from_millis(300);
        let client = StripeClient::new(&key(), &base, timeout).unwrap();

        let started = Instant::now();
        let error = client.list_invoices(1_738_000_000, None).await.unwrap_err();

        assert!(
            matches!(error, StripeError::Timeout(t) if t == timeout),
            "{error:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(error.to_string(), "Stripe did not answer within 300ms");
        silent.abort();
    }

    #[actix_web::test]
    async fn a_refused_connection_is_a_network_error() {
        let address = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        // The listener is dropped: nothing listens there any more.
        let base = url::Url::parse(&format!("http://{address}/")).unwrap();
        let client = StripeClient::new(&key(), &base, Duration::from_secs(5)).unwrap();

        let error = client.list_refunds(0, None).await.unwrap_err();

        assert!(matches!(error, StripeError::Network(_)), "{error:?}");
        assert!(!error.to_string().contains(KEY));
    }

    #[actix_web::test]
    async fn answers_that_are_not_stripe_json_are_unexpected() {
        let stripe = FakeStripe::start(|seen| match seen.path.as_str() {
            "/v1/subscriptions" => HttpResponse::Ok()
                .content_type("text/html")
                .body("<html><body>captive portal</body></html>"),
            "/v1/invoices" => HttpResponse::Ok().json(json!({ "object": "list", "data": [] })),
            _ => HttpResponse::BadGateway()
                .content_type("text/html")
                .body("<html><body>502 Bad Gateway</body></html>"),
        })
        .await;
        let client = stripe.client();

        let not_json = client.list_subscriptions(None).await.unwrap_err();
        let no_has_more = client.list_invoices(0, None).await.unwrap_err();
        let proxy_page = client.list_refunds(0, None).await.unwrap_err();

        assert!(
            matches!(not_json, StripeError::Unexpected(_)),
            "{not_json:?}"
        );
        assert!(
            matches!(no_has_more, StripeError::Unexpected(_)),
            "{no_has_more:?}"
        );
        // async-stripe drops the status of an error answer it cannot parse.
        assert!(
            matches!(proxy_page, StripeError::Unexpected(_)),
            "{proxy_page:?}"
        );
        stripe.stop().await;
    }
}
