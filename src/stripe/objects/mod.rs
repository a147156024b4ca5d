//! What each applied event type changes, read tolerantly from `data.object` into domain
//! [`Change`]s. Both shapes Stripe sends are read: basil (2025-03-31) and later, and the older
//! ones that accounts pinned to earlier API versions still receive. Unknown fields are ignored,
//! optional ones may be missing or `null`, and expandable references may be an id or an object.

mod customers;
mod disputes;
mod error;
mod fields;
#[cfg(test)]
mod fixtures;
mod invoices;
mod prices;
mod refunds;
mod subscriptions;

pub use disputes::dispute;
pub use error::ObjectError;
pub use invoices::{invoice, invoice_payment};
pub use prices::price;
pub use refunds::{charge_refunds, refund};
pub use subscriptions::subscription;

use serde_json::Value;

use crate::domain::{Change, Price, Version};
use customers::checkout_changes;
use fields::{int, text};
use subscriptions::item_prices;

/// The event types tollgate applies; every other type is stored and acknowledged only.
pub const APPLIED_TYPES: [&str; 26] = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.trial_will_end",
    "customer.subscription.pending_update_applied",
    "customer.subscription.pending_update_expired",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "invoice_payment.paid",
    "charge.refunded",
    "refund.created",
    "refund.updated",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "customer.deleted",
    "price.created",
    "price.updated",
    "price.deleted",
];

/// Whether tollgate applies events of this type.
pub fn is_applied(kind: &str) -> bool {
    APPLIED_TYPES.contains(&kind)
}

/// The changes an event of type `kind` makes, read from its whole body. An empty list means the
/// event changes nothing (a checkout in payment mode that is no gift, say).
pub fn changes(kind: &str, event: &Value) -> Result<Vec<Change>, ObjectError> {
    let object = event
        .pointer("/data/object")
        .filter(|o| o.is_object())
        .ok_or(ObjectError::Missing("data.object"))?;
    let version = Version {
        created: int(event, "/created").unwrap_or(0),
        source: text(event, "/id").ok_or(ObjectError::Missing("id"))?,
    };
    Ok(match kind {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            checkout_changes(object, version.created)
        }
        k if k.starts_with("customer.subscription.") => {
            let (subscription, reader_id) = subscription(object, version.clone())?;
            let mut changes = vec![Change::Subscription {
                subscription,
                reader_id,
            }];
            changes.extend(item_prices(object, &version).map(Change::Price));
            changes
        }
        k if k.starts_with("invoice.") => vec![Change::Invoice(invoice(object)?)],
        "invoice_payment.paid" => vec![Change::InvoicePayment(invoice_payment(object)?)],
        "charge.refunded" => vec![Change::Refunds(charge_refunds(object)?)],
        "refund.created" | "refund.updated" => vec![Change::Refunds(vec![refund(object, None)?])],
        "charge.dispute.created" | "charge.dispute.updated" | "charge.dispute.closed" => {
            vec![Change::Dispute(dispute(object)?)]
        }
        "price.created" | "price.updated" => vec![Change::Price(price(object, version)?)],
        "price.deleted" => vec![Change::Price(Price {
            active: false,
            ..price(object, version)?
        })],
        "customer.deleted" => vec![Change::CustomerDeleted {
            customer_id: text(object, "/id").ok_or(ObjectError::Missing("id"))?,
        }],
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::fixtures::fixture;
    use super::*;

    #[test]
    fn a_missing_object_or_an_unknown_status_is_an_error_that_names_it() {
        let no_object = serde_json::json!({ "id": "evt_1", "type": "invoice.paid", "data": {} });
        assert_eq!(
            changes("invoice.paid", &no_object),
            Err(ObjectError::Missing("data.object"))
        );
        let mut event = fixture("created");
        event["data"]["object"]["status"] = "frozen".into();
        assert!(matches!(
            changes("customer.subscription.created", &event),
            Err(ObjectError::UnknownStatus { .. })
        ));
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "(active|paid|cus_1|price_1|sub_1|.{0,8})".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::hash_map(
                    "(id|status|customer|items|data|price|lines|refunds|created|metadata|.{0,6})",
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_object_of_any_applied_type_is_read_or_refused_without_panicking(
            object in any_json(),
            kind in prop::sample::select(APPLIED_TYPES.to_vec()),
        ) {
            let event = serde_json::json!({ "id": "evt_1", "created": 1, "data": { "object": object } });
            let _ = changes(kind, &event);
        }
    }
}
