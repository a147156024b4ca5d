//! Why a call to Stripe failed, and how an error answer is read: Stripe's own error JSON when it
//! is that, or else the status, the request and the start of the body.

use std::time::Duration;

use serde::Deserialize;

use super::redact::{body_excerpt, bounded_message};

/// Why a call to Stripe failed. The secret key is never part of it.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe answered with its error JSON.
    #[error(
        "Stripe answered {status} to {method} {path} ({error_type}{}): {}",
        code.as_deref().map(|c| format!(", {c}")).unwrap_or_default(),
        message.as_deref().unwrap_or("no message")
    )]
    Api {
        /// The HTTP status, such as 404.
        status: u16,
        /// The request's method, `GET` or `POST`.
        method: &'static str,
        /// The API path asked for, such as `/v1/invoices`, without its query.
        path: String,
        /// Stripe's error `type`, such as `invalid_request_error`, kept verbatim.
        error_type: String,
        /// Stripe's error `code`, such as `resource_missing`, kept verbatim.
        code: Option<String>,
        /// Stripe's human-readable `message`, cut to a bounded length.
        message: Option<String>,
    },
    /// An answer that is not what Stripe's API documents: an error status without Stripe's error
    /// JSON (a proxy's HTML page, an API version without this resource), or a success whose body
    /// does not read as the object asked for.
    #[error("Stripe answered {status} to {method} {path}, not in its API's format: {body_excerpt}")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The request's method, `GET` or `POST`.
        method: &'static str,
        /// The API path asked for, such as `/v1/prices`, without its query.
        path: String,
        /// The start of the body, on one line, bounded, anything shaped like a secret replaced.
        body_excerpt: String,
    },
    /// Stripe did not answer within the configured timeout.
    #[error("Stripe did not answer within {0:?}")]
    Timeout(Duration),
    /// Stripe could not be reached: connection refused, DNS, TLS and the like.
    #[error("could not reach Stripe: {0}")]
    Network(String),
    /// Stripe answered with an object that lacks what tollgate needs of it.
    #[error("unexpected answer from Stripe: {0}")]
    Unexpected(String),
    /// The client could not be built from the settings given.
    #[error("invalid Stripe client settings: {0}")]
    Config(String),
}

/// Stripe's error JSON: `{"error": {"type": .., "code": .., "message": ..}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorObject,
}

#[derive(Deserialize)]
struct ErrorObject {
    #[serde(rename = "type")]
    kind: String,
    code: Option<String>,
    message: Option<String>,
}

impl StripeError {
    /// The error an answer of `status` to `method path` with `body` says: Stripe's, when the body
    /// is its error JSON, or else the status and the start of the body.
    pub(super) fn from_answer(status: u16, method: &'static str, path: &str, body: &[u8]) -> Self {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(ErrorBody { error }) => Self::Api {
                status,
                method,
                path: path.to_owned(),
                error_type: bounded_message(&error.kind),
                code: error.code.as_deref().map(bounded_message),
                message: error.message.as_deref().map(bounded_message),
            },
            Err(_) => Self::unreadable(status, method, path, body),
        }
    }

    /// An answer of `status` to `method path` whose `body` is not what was asked for.
    pub(super) fn unreadable(status: u16, method: &'static str, path: &str, body: &[u8]) -> Self {
        Self::Http {
            status,
            method,
            path: path.to_owned(),
            body_excerpt: body_excerpt(body),
        }
    }

    /// The error of a request that got no answer: it timed out after `timeout`, or failed on
    /// the way (the chain of causes, without the URL).
    pub(super) fn unanswered(error: reqwest::Error, timeout: Duration) -> Self {
        if error.is_timeout() {
            return Self::Timeout(timeout);
        }
        let error = error.without_url();
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = std::error::Error::source(cause);
        }
        Self::Network(bounded_message(&reason))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use actix_web::HttpResponse;
    use serde_json::json;

    use super::*;
    use crate::stripe::client::fake_stripe::{FakeStripe, KEY, PAYMENT_INTENT, key, stripe_error};
    use crate::stripe::client::{RetryPolicy, StripeClient};

    /// Two quick tries.
    const TWICE: RetryPolicy = RetryPolicy {
        attempts: 2,
        backoff: Duration::from_millis(10),
        max_wait: Duration::from_secs(1),
    };

    #[actix_web::test]
    async fn a_stripe_error_body_becomes_an_api_error_with_type_code_message_status_and_request() {
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
                method,
                path,
                error_type,
                code,
                message,
            } => {
                assert_eq!(*status, 404);
                assert_eq!(*method, "GET");
                assert_eq!(path, "/v1/invoice_payments");
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
            "Stripe answered 404 to GET /v1/invoice_payments (invalid_request_error, \
             resource_missing): No such payment_intent: 'pi_3QxZ0a2eZvKYlo2C1kLmNoPq'"
        );
        // A 404 is no transient failure: one request, one answer.
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
            ..
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
        // A 429 is tried again, up to the client's 3 tries.
        assert_eq!(stripe.seen().len(), 3);
        stripe.stop().await;
    }

    #[actix_web::test]
    async fn a_server_that_never_answers_is_cut_off_by_the_timeout_and_a_read_tried_again() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&accepted);
        // Accepts connections and holds them open without a word, for at most 30 s.
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            let deadline = tokio::time::sleep(Duration::from_secs(30));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    connection = listener.accept() => {
                        held.push(connection.unwrap().0);
                        counted.fetch_add(1, Ordering::SeqCst);
                    }
                    () = &mut deadline => break,
                }
            }
        });
        let base = url::Url::parse(&format!("http://{address}/")).unwrap();
        let timeout = Duration::from_millis(300);
        let client = StripeClient::new(&key(), &base, timeout)
            .unwrap()
            .with_retry(TWICE);

        let started = Instant::now();
        let error = client.list_invoices(1_738_000_000, None).await.unwrap_err();

        assert!(
            matches!(error, StripeError::Timeout(t) if t == timeout),
            "{error:?}"
        );
        let took = started.elapsed();
        assert!(
            took >= 2 * timeout && took < Duration::from_secs(5),
            "{took:?}"
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
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
        let client = StripeClient::new(&key(), &base, Duration::from_secs(5))
            .unwrap()
            .with_retry(TWICE);

        let error = client.list_refunds(0, None).await.unwrap_err();

        assert!(matches!(error, StripeError::Network(_)), "{error:?}");
        assert!(!error.to_string().contains(KEY));
    }

    #[actix_web::test]
    async fn answers_that_are_not_stripe_json_keep_their_status_method_path_and_start() {
        let stripe = FakeStripe::start(|seen| match seen.path.as_str() {
            "/v1/subscriptions" => HttpResponse::Ok()
                .content_type("text/html")
                .body("<html><body>captive portal</body></html>"),
            "/v1/invoices" => HttpResponse::Ok().json(json!({ "object": "list", "data": [] })),
            "/v1/prices" => HttpResponse::NotFound()
                .content_type("text/html")
                .body(format!(
                    "<html><body>No route {KEY}\n{}</body></html>",
                    "x".repeat(500)
                )),
            _ => HttpResponse::BadGateway()
                .content_type("text/html")
                .body("<html><body>502 Bad Gateway</body></html>"),
        })
        .await;
        let client = stripe.client();

        let not_json = client.list_subscriptions(None).await.unwrap_err();
        let no_has_more = client.list_invoices(0, None).await.unwrap_err();
        let not_found = client.list_prices(None).await.unwrap_err();
        let proxy_page = client.list_refunds(0, None).await.unwrap_err();

        let http = |error: &StripeError| match error {
            StripeError::Http {
                status,
                method,
                path,
                body_excerpt,
            } => (*status, *method, path.clone(), body_excerpt.clone()),
            other => panic!("expected an HTTP error, got {other:?}"),
        };
        assert_eq!(
            http(&not_json),
            (
                200,
                "GET",
                "/v1/subscriptions".into(),
                "<html><body>captive portal</body></html>".into()
            )
        );
        assert_eq!(http(&no_has_more).0, 200);
        assert_eq!(http(&no_has_more).2, "/v1/invoices");
        let (status, _, path, excerpt) = http(&not_found);
        assert_eq!((status, path.as_str()), (404, "/v1/prices"));
        assert!(
            excerpt.starts_with("<html><body>No route [redacted] xxx"),
            "{excerpt}"
        );
        assert_eq!(excerpt.chars().count(), 200);
        assert_eq!(
            proxy_page.to_string(),
            "Stripe answered 502 to GET /v1/refunds, not in its API's format: \
             <html><body>502 Bad Gateway</body></html>"
        );
        // The 502 was tried again (3 tries), the others not.
        let paths: Vec<String> = stripe.seen().into_iter().map(|s| s.path).collect();
        assert_eq!(
            paths,
            [
                "/v1/subscriptions",
                "/v1/invoices",
                "/v1/prices",
                "/v1/refunds",
                "/v1/refunds",
                "/v1/refunds"
            ]
        );
        stripe.stop().await;
    }
}
