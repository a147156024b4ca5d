//! Which reader a Stripe customer belongs to: a completed checkout links the two, and metadata
//! may name the reader.

use serde_json::Value;

use chrono::DateTime;

use super::fields::{id, int, text};
use crate::domain::{Change, GiftPurchase, PlanId, ReaderId};

/// A completed subscription checkout links its customer to the reader named by
/// `client_reference_id` or `metadata.reader_id`.
pub(super) fn checkout_link(session: &Value) -> Option<Change> {
    let customer_id = id(session, "/customer")?;
    let reader_id = text(session, "/client_reference_id")
        .and_then(|r| ReaderId::parse(&r))
        .or_else(|| reader_in_metadata(session))?;
    Some(Change::LinkCustomer {
        customer_id,
        reader_id,
    })
}

/// What a completed checkout changes: the link of its customer to its reader and, for a gift
/// bought in payment mode, the purchase (`created` is the event's time).
pub(super) fn checkout_changes(session: &Value, created: i64) -> Vec<Change> {
    let mut changes: Vec<Change> = checkout_link(session).into_iter().collect();
    if let Some(purchase) = gift_purchase(session, created) {
        changes.push(Change::GiftPurchased(purchase));
    }
    changes
}

/// A paid gift: a payment-mode session whose metadata names the plan given and the buyer.
fn gift_purchase(session: &Value, created: i64) -> Option<GiftPurchase> {
    // Paid, or nothing to pay (a 100 % promotion code). A delayed payment method completes the
    // session `unpaid`; its `checkout.session.async_payment_succeeded` records the gift.
    if text(session, "/mode").as_deref() != Some("payment")
        || !matches!(
            text(session, "/payment_status").as_deref(),
            Some("paid" | "no_payment_required")
        )
    {
        return None;
    }
    let plan_id = text(session, "/metadata/gift_plan_id").and_then(|p| PlanId::parse(&p))?;
    let buyer = text(session, "/client_reference_id")
        .and_then(|r| ReaderId::parse(&r))
        .or_else(|| reader_in_metadata(session))?;
    Some(GiftPurchase {
        checkout_session: text(session, "/id")?,
        buyer,
        plan_id,
        months: text(session, "/metadata/gift_months").and_then(|m| m.parse().ok()),
        amount_total: int(session, "/amount_total"),
        amount_tax: int(session, "/total_details/amount_tax"),
        currency: text(session, "/currency"),
        purchased_at: DateTime::from_timestamp(created, 0)?,
        issued: None,
    })
}

pub(super) fn reader_in_metadata(object: &Value) -> Option<ReaderId> {
    text(object, "/metadata/reader_id").and_then(|r| ReaderId::parse(&r))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::domain::Change;
    use crate::stripe::objects::changes;
    use crate::stripe::objects::fixtures::{fixture, only};

    #[test]
    fn a_checkout_links_by_client_reference_id_or_metadata() {
        let mut event = fixture("checkout");
        let Change::LinkCustomer {
            reader_id,
            customer_id,
        } = only(changes("checkout.session.completed", &event).unwrap())
        else {
            panic!("not a link");
        };
        assert_eq!(
            (reader_id.as_str(), customer_id.as_str()),
            ("reader-42", "cus_TPeer0Reader01")
        );
        event["data"]["object"]["client_reference_id"] = Value::Null;
        assert_eq!(
            changes("checkout.session.completed", &event).unwrap().len(),
            1
        );
        event["data"]["object"]["metadata"] = serde_json::json!({});
        assert!(
            changes("checkout.session.completed", &event)
                .unwrap()
                .is_empty()
        );
    }
}
