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
