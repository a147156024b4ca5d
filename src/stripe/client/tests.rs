//! The client's calls, as a fake Stripe sees and answers them.

use std::time::Duration;

use actix_web::HttpResponse;
use secrecy::SecretString;

use super::fake_stripe::{
    FakeStripe, KEY, PAYMENT_INTENT, invoice_payment, key, list, refund, subscription,
};
use super::{Page, StripeClient, StripeError};

#[actix_web::test]
async fn sends_the_secret_key_as_bearer_auth_and_asks_for_every_subscription_status() {
    let stripe = FakeStripe::start(|_| {
        list(
            "/v1/subscriptions",
            false,
            vec![
                subscription("sub_1QxYzA2eZvKYlo2C8nT0aB3d", "active"),
                subscription("sub_1QwXyZ2eZvKYlo2C7mS9zA2c", "canceled"),
            ],
        )
    })
    .await;

    let page = stripe.client().list_subscriptions(None).await.unwrap();

    assert!(!page.has_more);
    assert_eq!(page.data.len(), 2);
    assert_eq!(
        page.data[0],
        subscription("sub_1QxYzA2eZvKYlo2C8nT0aB3d", "active")
    );
    assert_eq!(page.data[1]["status"], "canceled");
    assert_eq!(page.last_id(), Some("sub_1QwXyZ2eZvKYlo2C7mS9zA2c"));
    let seen = stripe.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path, "/v1/subscriptions");
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(seen[0].param("status"), Some("all"));
    assert_eq!(seen[0].param("limit"), Some("100"));
    // Indexed, as Stripe's own libraries encode arrays.
    assert_eq!(seen[0].param("expand[0]"), Some("data.customer"));
    assert_eq!(seen[0].param("starting_after"), None);
    // async-stripe pins the API version it was generated for (see the module docs).
    assert_eq!(seen[0].stripe_version, Some(StripeClient::api_version()));
    assert!(seen[0].user_agent.as_deref().unwrap().contains("tollgate/"));
    stripe.stop().await;
}

#[actix_web::test]
async fn lists_refunds_created_since_a_time_after_a_cursor() {
    let stripe = FakeStripe::start(|_| {
        list(
            "/v1/refunds",
            false,
            vec![refund("re_3QxZ0a2eZvKYlo2C1rEfUnD1", 1_738_400_000)],
        )
    })
    .await;

    let page = stripe
        .client()
        .list_refunds(1_738_368_000, Some("re_3QxZ0a2eZvKYlo2C1rEfUnD2"))
        .await
        .unwrap();

    assert_eq!(
        page.data,
        [refund("re_3QxZ0a2eZvKYlo2C1rEfUnD1", 1_738_400_000)]
    );
    let seen = stripe.seen();
    assert_eq!(seen[0].path, "/v1/refunds");
    assert_eq!(seen[0].param("created[gte]"), Some("1738368000"));
    assert_eq!(seen[0].param("limit"), Some("100"));
    assert_eq!(
        seen[0].param("starting_after"),
        Some("re_3QxZ0a2eZvKYlo2C1rEfUnD2")
    );
    stripe.stop().await;
}

#[actix_web::test]
async fn finds_the_invoice_payments_of_a_payment_intent() {
    let stripe = FakeStripe::start(|seen| {
        let payment_intent = seen.param("payment[payment_intent]").unwrap_or_default();
        list(
            "/v1/invoice_payments",
            false,
            vec![invoice_payment(payment_intent)],
        )
    })
    .await;

    let page = stripe
        .client()
        .invoice_payments_for(PAYMENT_INTENT)
        .await
        .unwrap();

    assert_eq!(page.data.len(), 1);
    assert_eq!(page.data[0]["invoice"], "in_1QxYzB2eZvKYlo2C0aBcDeFg");
    assert_eq!(page.data[0]["payment"]["payment_intent"], PAYMENT_INTENT);
    let seen = stripe.seen();
    assert_eq!(seen[0].path, "/v1/invoice_payments");
    assert_eq!(seen[0].param("payment[type]"), Some("payment_intent"));
    assert_eq!(
        seen[0].param("payment[payment_intent]"),
        Some(PAYMENT_INTENT)
    );
    stripe.stop().await;
}

#[actix_web::test]
async fn an_api_base_with_a_path_keeps_it_in_front_of_v1() {
    let stripe = FakeStripe::start(|seen| {
        if seen.path == "/stripe-proxy/v1/subscriptions" {
            list("/v1/subscriptions", false, vec![])
        } else {
            HttpResponse::NotFound().finish()
        }
    })
    .await;
    let base = stripe.base.join("stripe-proxy").unwrap();
    assert!(!base.as_str().ends_with('/'));
    let client = StripeClient::new(&key(), &base, Duration::from_secs(5)).unwrap();

    let page = client.list_subscriptions(None).await.unwrap();

    assert_eq!(
        page,
        Page {
            data: vec![],
            has_more: false
        }
    );
    assert_eq!(page.last_id(), None);
    assert_eq!(stripe.seen()[0].path, "/stripe-proxy/v1/subscriptions");
    stripe.stop().await;
}

#[test]
fn settings_that_cannot_work_are_refused_without_showing_the_key() {
    let https = url::Url::parse("https://api.stripe.com").unwrap();
    let second = Duration::from_secs(1);
    for (key, base, timeout) in [
        (
            key(),
            url::Url::parse("ftp://api.stripe.com/").unwrap(),
            second,
        ),
        (
            key(),
            url::Url::parse("mailto:billing@example.com").unwrap(),
            second,
        ),
        (
            key(),
            url::Url::parse("https://api.stripe.com/?x=1").unwrap(),
            second,
        ),
        (key(), https.clone(), Duration::ZERO),
        (
            SecretString::from(format!("{KEY}\n")),
            https.clone(),
            second,
        ),
    ] {
        let error = StripeClient::new(&key, &base, timeout).unwrap_err();
        assert!(matches!(error, StripeError::Config(_)), "{error:?}");
        assert!(!error.to_string().contains(KEY), "{error}");
        assert!(!format!("{error:?}").contains(KEY), "{error:?}");
    }
}

#[test]
fn the_secret_key_never_shows_in_debug() {
    let base = url::Url::parse("https://api.stripe.com").unwrap();
    let client = StripeClient::new(&key(), &base, Duration::from_secs(20)).unwrap();

    let shown = format!("{client:?}");

    assert!(!shown.contains(KEY), "{shown}");
    assert!(shown.contains("https://api.stripe.com/"), "{shown}");
}

/// Stripe's Billing Portal session, as `POST /v1/billing_portal/sessions` answers it.
fn portal_session() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "id": "bps_1QxZ1a2eZvKYlo2CpOrTaLsE",
        "object": "billing_portal.session",
        "customer": "cus_RqT5xY7aBcDeFg",
        "livemode": false,
        "return_url": "https://news.example.com/account",
        "url": "https://billing.stripe.com/p/session/test_YWNjdF8xUXhZ"
    }))
}

/// A 5xx as a proxy in front of Stripe sends it: not Stripe's JSON.
fn unavailable() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .content_type("text/html")
        .body("<html><body>503 Service Temporarily Unavailable</body></html>")
}

#[actix_web::test]
async fn a_read_that_fails_with_a_5xx_is_tried_again_and_succeeds() {
    let stripe = FakeStripe::start(|seen| match seen.number {
        1 => HttpResponse::InternalServerError().json(serde_json::json!({ "error": {
            "type": "api_error",
            "message": "An unknown error occurred"
        } })),
        _ => list(
            "/v1/refunds",
            false,
            vec![refund("re_3QxZ0a2eZvKYlo2C1rEfUnD1", 1_738_400_000)],
        ),
    })
    .await;

    let page = stripe.client().list_refunds(0, None).await.unwrap();

    assert_eq!(page.data.len(), 1);
    let seen = stripe.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].raw_query, seen[1].raw_query);
    stripe.stop().await;
}

#[actix_web::test]
async fn a_429_is_tried_again_no_sooner_than_its_retry_after_says() {
    let stripe = FakeStripe::start(|seen| match seen.number {
        1 => HttpResponse::TooManyRequests()
            .insert_header(("retry-after", "1"))
            .json(serde_json::json!({ "error": {
                "type": "rate_limit_error",
                "message": "Too many requests hit the API too quickly."
            } })),
        _ => list("/v1/subscriptions", false, vec![]),
    })
    .await;

    stripe.client().list_subscriptions(None).await.unwrap();

    let seen = stripe.seen();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at - seen[0].at;
    // The client's own backoff is 10 ms: only Retry-After makes it wait a second.
    assert!(
        gap >= Duration::from_secs(1) && gap < Duration::from_secs(3),
        "{gap:?}"
    );
    stripe.stop().await;
}

#[actix_web::test]
async fn a_retry_after_longer_than_the_most_waited_ends_the_retries_at_once() {
    let stripe = FakeStripe::start(|_| {
        HttpResponse::TooManyRequests()
            .insert_header(("retry-after", "60"))
            .content_type("text/plain")
            .body("slow down")
    })
    .await;

    let started = std::time::Instant::now();
    let error = stripe.client().list_prices(None).await.unwrap_err();

    assert!(
        matches!(error, StripeError::Http { status: 429, .. }),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(stripe.seen().len(), 1);
    stripe.stop().await;
}

#[actix_web::test]
async fn a_failure_stripe_marks_not_to_retry_is_not_tried_again() {
    let stripe = FakeStripe::start(|_| {
        HttpResponse::ServiceUnavailable()
            .insert_header(("stripe-should-retry", "false"))
            .json(serde_json::json!({ "error": {
                "type": "api_error",
                "message": "The request was not processed."
            } }))
    })
    .await;

    let error = stripe.client().list_prices(None).await.unwrap_err();

    assert!(
        matches!(error, StripeError::Api { status: 503, .. }),
        "{error:?}"
    );
    assert_eq!(stripe.seen().len(), 1);
    stripe.stop().await;
}

#[actix_web::test]
async fn a_post_is_tried_again_only_with_an_idempotency_key_and_then_with_the_same_key() {
    let stripe = FakeStripe::start(
        |seen| match (seen.idempotency_key.as_deref(), seen.number) {
            (None, _) | (Some(_), 2) => unavailable(),
            (Some(_), _) => portal_session(),
        },
    )
    .await;
    let client = stripe.client();

    let error = client
        .create_portal_session(
            "cus_RqT5xY7aBcDeFg",
            "https://news.example.com/account",
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StripeError::Http {
                status: 503,
                method: "POST",
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(stripe.seen().len(), 1);

    let session = client
        .create_portal_session(
            "cus_RqT5xY7aBcDeFg",
            "https://news.example.com/account",
            Some("portal-reader-42-01J9ZQ3K7M"),
        )
        .await
        .unwrap();

    assert_eq!(
        session.url,
        "https://billing.stripe.com/p/session/test_YWNjdF8xUXhZ"
    );
    let seen = stripe.seen();
    assert_eq!(seen.len(), 3);
    for request in &seen[1..] {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/v1/billing_portal/sessions");
        assert_eq!(
            request.idempotency_key.as_deref(),
            Some("portal-reader-42-01J9ZQ3K7M")
        );
    }
    stripe.stop().await;
}

#[actix_web::test]
async fn a_read_that_keeps_failing_gives_up_after_the_attempts() {
    let stripe = FakeStripe::start(|_| unavailable()).await;

    let error = stripe.client().list_disputes(0, None).await.unwrap_err();

    assert_eq!(
        error.to_string(),
        "Stripe answered 503 to GET /v1/disputes, not in its API's format: \
         <html><body>503 Service Temporarily Unavailable</body></html>"
    );
    assert_eq!(stripe.seen().len(), 3);
    stripe.stop().await;
}
