//! The recorded Stripe events the tests of this module read.

use serde_json::Value;

use crate::domain::Change;

pub(super) fn fixture(name: &str) -> Value {
    let text = match name {
        "created" => {
            include_str!("../../../tests/fixtures/stripe/customer.subscription.created.json")
        }
        "legacy_created" => {
            include_str!("../../../tests/fixtures/stripe/legacy.customer.subscription.created.json")
        }
        "invoice" => include_str!("../../../tests/fixtures/stripe/invoice.paid.json"),
        "legacy_invoice" => {
            include_str!("../../../tests/fixtures/stripe/legacy.invoice.paid.json")
        }
        "refunded" => include_str!("../../../tests/fixtures/stripe/charge.refunded.json"),
        "legacy_refunded" => {
            include_str!("../../../tests/fixtures/stripe/legacy.charge.refunded.json")
        }
        "checkout" => include_str!(
            "../../../tests/fixtures/stripe/checkout.session.completed.subscription.json"
        ),
        "invoice_payment" => {
            include_str!("../../../tests/fixtures/stripe/invoice_payment.paid.json")
        }
        "price_created" => include_str!("../../../tests/fixtures/stripe/price.created.json"),
        "price_updated" => include_str!("../../../tests/fixtures/stripe/price.updated.json"),
        "dispute_created" => {
            include_str!("../../../tests/fixtures/stripe/charge.dispute.created.json")
        }
        "dispute_lost" => {
            include_str!("../../../tests/fixtures/stripe/charge.dispute.closed.lost.json")
        }
        _ => unreachable!("no fixture {name}"),
    };
    serde_json::from_str(text).unwrap()
}

pub(super) fn only(changes: Vec<Change>) -> Change {
    assert_eq!(changes.len(), 1, "{changes:?}");
    changes.into_iter().next().unwrap()
}
