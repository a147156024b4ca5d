//! What each applied event type changes, read tolerantly from `data.object` into domain
//! [`Change`]s. Both shapes Stripe sends are read: basil (2025-03-31) and later, and the older
//! ones that accounts pinned to earlier API versions still receive. Unknown fields are ignored,
//! optional ones may be missing or `null`, and expandable references may be an id or an object.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::{
    Change, Interval, Invoice, InvoiceLine, InvoicePayment, InvoiceStatus, Price, ReaderId,
    Recurring, Refund, StripePriceId, Subscription, SubscriptionItem, SubscriptionStatus, Version,
};

/// The event types tollgate applies; every other type is stored and acknowledged only.
pub const APPLIED_TYPES: [&str; 22] = [
    "checkout.session.completed",
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
    "customer.deleted",
    "price.created",
    "price.updated",
    "price.deleted",
];

/// Whether tollgate applies events of this type.
pub fn is_applied(kind: &str) -> bool {
    APPLIED_TYPES.contains(&kind)
}

/// Why an event's object cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// A field the change cannot do without is missing or of the wrong kind.
    #[error("`{0}` is missing or not what Stripe sends")]
    Missing(&'static str),
    /// A status Stripe did not have when tollgate was written.
    #[error("unknown {kind} `{value}`")]
    UnknownStatus {
        /// What kind of status.
        kind: &'static str,
        /// The value.
        value: String,
    },
}

/// The changes an event of type `kind` makes, read from its whole body. An empty list means the
/// event changes nothing (a checkout in payment mode, say).
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
        "checkout.session.completed" => checkout_link(object).into_iter().collect(),
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

/// A completed subscription checkout links its customer to the reader named by
/// `client_reference_id` or `metadata.reader_id`.
fn checkout_link(session: &Value) -> Option<Change> {
    let customer_id = id(session, "/customer")?;
    let reader_id = text(session, "/client_reference_id")
        .and_then(|r| ReaderId::parse(&r))
        .or_else(|| reader_in_metadata(session))?;
    Some(Change::LinkCustomer {
        customer_id,
        reader_id,
    })
}

fn reader_in_metadata(object: &Value) -> Option<ReaderId> {
    text(object, "/metadata/reader_id").and_then(|r| ReaderId::parse(&r))
}

/// A subscription snapshot, and the reader its metadata (or its expanded customer's) names.
pub fn subscription(
    object: &Value,
    version: Version,
) -> Result<(Subscription, Option<ReaderId>), ObjectError> {
    let status = text(object, "/status").ok_or(ObjectError::Missing("status"))?;
    let status = status
        .parse::<SubscriptionStatus>()
        .map_err(|_| ObjectError::UnknownStatus {
            kind: "subscription status",
            value: status,
        })?;
    let entries = list(object, "/items/data");
    let mut items = Vec::with_capacity(entries.len());
    for entry in entries {
        // An item priced with something that is no price id grants nothing; keep it out.
        let Some(price) = id(entry, "/price")
            .or_else(|| id(entry, "/plan"))
            .and_then(|p| StripePriceId::parse(&p))
        else {
            continue;
        };
        items.push(SubscriptionItem {
            id: text(entry, "/id").ok_or(ObjectError::Missing("items.data[].id"))?,
            price,
            quantity: int(entry, "/quantity").unwrap_or(1),
        });
    }
    // Basil moved the period onto each item; before it, the subscription had one.
    let current_period_start = time(object, "/current_period_start").or_else(|| {
        entries
            .iter()
            .filter_map(|e| time(e, "/current_period_start"))
            .min()
    });
    let current_period_end = time(object, "/current_period_end").or_else(|| {
        entries
            .iter()
            .filter_map(|e| time(e, "/current_period_end"))
            .max()
    });
    let subscription = Subscription {
        id: text(object, "/id").ok_or(ObjectError::Missing("id"))?,
        customer_id: id(object, "/customer").ok_or(ObjectError::Missing("customer"))?,
        status,
        items,
        currency: text(object, "/currency"),
        current_period_start,
        current_period_end,
        cancel_at_period_end: object
            .get("cancel_at_period_end")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        cancel_at: time(object, "/cancel_at"),
        canceled_at: time(object, "/canceled_at"),
        ended_at: time(object, "/ended_at"),
        trial_end: time(object, "/trial_end"),
        past_due_since: None,
        version,
    };
    // A reconcile expands the customer, whose metadata may name the reader instead.
    let reader_id = reader_in_metadata(object).or_else(|| {
        object
            .get("customer")
            .filter(|c| c.is_object())
            .and_then(reader_in_metadata)
    });
    Ok((subscription, reader_id))
}

/// A price object (`price.*` events, a reconcile, or a subscription item's `price`).
pub fn price(object: &Value, version: Version) -> Result<Price, ObjectError> {
    let price_id = text(object, "/id")
        .and_then(|p| StripePriceId::parse(&p))
        .ok_or(ObjectError::Missing("id"))?;
    let recurring = match object.get("recurring").filter(|r| r.is_object()) {
        None => None,
        Some(recurring) => {
            let interval =
                text(recurring, "/interval").ok_or(ObjectError::Missing("recurring.interval"))?;
            let interval =
                interval
                    .parse::<Interval>()
                    .map_err(|_| ObjectError::UnknownStatus {
                        kind: "price interval",
                        value: interval,
                    })?;
            Some(Recurring {
                interval,
                interval_count: int(recurring, "/interval_count")
                    .filter(|n| *n >= 1)
                    .unwrap_or(1),
            })
        }
    };
    Ok(Price {
        id: price_id,
        product: id(object, "/product"),
        active: object
            .get("active")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        currency: text(object, "/currency")
            .map(|c| c.to_ascii_lowercase())
            .ok_or(ObjectError::Missing("currency"))?,
        unit_amount: int(object, "/unit_amount"),
        recurring,
        nickname: text(object, "/nickname"),
        version,
    })
}

/// The prices a subscription's items carry as objects; unreadable ones are left out, since the
/// subscription itself does not depend on them.
fn item_prices<'a>(
    subscription: &'a Value,
    version: &'a Version,
) -> impl Iterator<Item = Price> + 'a {
    list(subscription, "/items/data").iter().filter_map(|item| {
        item.get("price")
            .filter(|p| p.is_object())
            .and_then(|p| price(p, version.clone()).ok())
    })
}

/// An invoice snapshot with its lines.
pub fn invoice(object: &Value) -> Result<Invoice, ObjectError> {
    let status = text(object, "/status").ok_or(ObjectError::Missing("status"))?;
    let status = status
        .parse::<InvoiceStatus>()
        .map_err(|_| ObjectError::UnknownStatus {
            kind: "invoice status",
            value: status,
        })?;
    let currency = text(object, "/currency").ok_or(ObjectError::Missing("currency"))?;
    let lines = list(object, "/lines/data")
        .iter()
        .map(|line| invoice_line(line, &currency))
        .collect::<Result<_, _>>()?;
    Ok(Invoice {
        id: text(object, "/id").ok_or(ObjectError::Missing("id"))?,
        customer_id: id(object, "/customer"),
        subscription_id: id(object, "/parent/subscription_details/subscription")
            .or_else(|| id(object, "/subscription")),
        status,
        amount_due: int(object, "/amount_due").unwrap_or(0),
        amount_paid: int(object, "/amount_paid").unwrap_or(0),
        subtotal: int(object, "/subtotal").unwrap_or(0),
        total: int(object, "/total").unwrap_or(0),
        tax: invoice_tax(object),
        discount: sum_of(object, "/total_discount_amounts"),
        period_start: time(object, "/period_start"),
        period_end: time(object, "/period_end"),
        created: time(object, "/created"),
        paid_at: time(object, "/status_transitions/paid_at"),
        billing_reason: text(object, "/billing_reason"),
        charge_id: id(object, "/charge"),
        payment_intent_id: id(object, "/payment_intent"),
        currency,
        lines,
    })
}

/// The tax on an invoice: `total_taxes` (basil and later), `total_tax_amounts` or `tax` before.
fn invoice_tax(object: &Value) -> i64 {
    if object.get("total_taxes").is_some_and(Value::is_array) {
        sum_of(object, "/total_taxes")
    } else if object.get("total_tax_amounts").is_some_and(Value::is_array) {
        sum_of(object, "/total_tax_amounts")
    } else {
        int(object, "/tax").unwrap_or(0)
    }
}

/// The sum of the `amount`s of the objects listed at `pointer`.
fn sum_of(object: &Value, pointer: &str) -> i64 {
    list(object, pointer)
        .iter()
        .filter_map(|entry| int(entry, "/amount"))
        .sum()
}

fn invoice_line(line: &Value, currency: &str) -> Result<InvoiceLine, ObjectError> {
    let item_details = "/parent/subscription_item_details";
    Ok(InvoiceLine {
        id: text(line, "/id").ok_or(ObjectError::Missing("lines.data[].id"))?,
        price: id(line, "/pricing/price_details/price")
            .or_else(|| id(line, "/price"))
            .or_else(|| id(line, "/plan"))
            .and_then(|p| StripePriceId::parse(&p)),
        subscription_item: id(line, &format!("{item_details}/subscription_item"))
            .or_else(|| id(line, "/subscription_item")),
        amount: int(line, "/amount").ok_or(ObjectError::Missing("lines.data[].amount"))?,
        discount_amount: sum_of(line, "/discount_amounts"),
        currency: text(line, "/currency").unwrap_or_else(|| currency.to_owned()),
        quantity: int(line, "/quantity"),
        period_start: time(line, "/period/start"),
        period_end: time(line, "/period/end"),
        proration: line
            .pointer(&format!("{item_details}/proration"))
            .or_else(|| line.get("proration"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        description: text(line, "/description"),
    })
}

/// A payment that settled an invoice.
pub fn invoice_payment(object: &Value) -> Result<InvoicePayment, ObjectError> {
    Ok(InvoicePayment {
        id: text(object, "/id").ok_or(ObjectError::Missing("id"))?,
        invoice_id: id(object, "/invoice").ok_or(ObjectError::Missing("invoice"))?,
        payment_intent_id: id(object, "/payment/payment_intent"),
        charge_id: id(object, "/payment/charge"),
        amount_paid: int(object, "/amount_paid"),
        currency: text(object, "/currency"),
        status: text(object, "/status"),
    })
}

/// The refunds of a refunded charge: each listed refund, or, when the charge does not list
/// them (API versions from 2022-11-15 leave the list out), what it says was refunded in all.
pub fn charge_refunds(charge: &Value) -> Result<Vec<Refund>, ObjectError> {
    let charge_id = text(charge, "/id").ok_or(ObjectError::Missing("id"))?;
    let invoice_id = id(charge, "/invoice");
    let listed = list(charge, "/refunds/data");
    if !listed.is_empty() {
        return listed
            .iter()
            .map(|r| {
                let mut refund = refund(r, invoice_id.clone())?;
                refund.charge_id.get_or_insert_with(|| charge_id.clone());
                if refund.payment_intent_id.is_none() {
                    refund.payment_intent_id = id(charge, "/payment_intent");
                }
                Ok(refund)
            })
            .collect();
    }
    let amount = int(charge, "/amount_refunded").unwrap_or(0);
    if amount <= 0 {
        return Ok(Vec::new());
    }
    Ok(vec![Refund {
        id: Refund::aggregate_id(&charge_id),
        payment_intent_id: id(charge, "/payment_intent"),
        invoice_id,
        amount,
        currency: text(charge, "/currency").ok_or(ObjectError::Missing("currency"))?,
        status: Some("succeeded".into()),
        reason: None,
        created: time(charge, "/created").ok_or(ObjectError::Missing("created"))?,
        charge_id: Some(charge_id),
    }])
}

/// One refund object; `invoice_id` is what the charge said, when it said.
pub fn refund(object: &Value, invoice_id: Option<String>) -> Result<Refund, ObjectError> {
    Ok(Refund {
        id: text(object, "/id").ok_or(ObjectError::Missing("refunds.data[].id"))?,
        charge_id: id(object, "/charge"),
        payment_intent_id: id(object, "/payment_intent"),
        invoice_id,
        amount: int(object, "/amount").ok_or(ObjectError::Missing("refund amount"))?,
        currency: text(object, "/currency").ok_or(ObjectError::Missing("refund currency"))?,
        status: text(object, "/status"),
        reason: text(object, "/reason"),
        created: time(object, "/created").ok_or(ObjectError::Missing("refund created"))?,
    })
}

/// A non-empty string at `pointer`.
fn text(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// An expandable reference at `pointer`: an id, or an expanded object with an `id`.
fn id(value: &Value, pointer: &str) -> Option<String> {
    let found = value.pointer(pointer)?;
    match found {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(_) => text(found, "/id"),
        _ => None,
    }
}

fn int(value: &Value, pointer: &str) -> Option<i64> {
    value.pointer(pointer).and_then(Value::as_i64)
}

/// Unix seconds at `pointer`, as an instant.
fn time(value: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    int(value, pointer).and_then(|secs| DateTime::from_timestamp(secs, 0))
}

/// The array at `pointer`; empty when there is none.
fn list<'v>(value: &'v Value, pointer: &str) -> &'v [Value] {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn fixture(name: &str) -> Value {
        let text = match name {
            "created" => {
                include_str!("../../tests/fixtures/stripe/customer.subscription.created.json")
            }
            "legacy_created" => {
                include_str!(
                    "../../tests/fixtures/stripe/legacy.customer.subscription.created.json"
                )
            }
            "invoice" => include_str!("../../tests/fixtures/stripe/invoice.paid.json"),
            "legacy_invoice" => {
                include_str!("../../tests/fixtures/stripe/legacy.invoice.paid.json")
            }
            "refunded" => include_str!("../../tests/fixtures/stripe/charge.refunded.json"),
            "legacy_refunded" => {
                include_str!("../../tests/fixtures/stripe/legacy.charge.refunded.json")
            }
            "checkout" => include_str!(
                "../../tests/fixtures/stripe/checkout.session.completed.subscription.json"
            ),
            "invoice_payment" => {
                include_str!("../../tests/fixtures/stripe/invoice_payment.paid.json")
            }
            "price_created" => include_str!("../../tests/fixtures/stripe/price.created.json"),
            "price_updated" => include_str!("../../tests/fixtures/stripe/price.updated.json"),
            _ => unreachable!("no fixture {name}"),
        };
        serde_json::from_str(text).unwrap()
    }

    fn price_of(changes: Vec<Change>) -> Price {
        let Change::Price(price) = only(changes) else {
            panic!("not a price");
        };
        price
    }

    #[test]
    fn a_subscription_event_carries_its_items_prices_at_the_events_version() {
        let event = fixture("created");
        let price = match changes("customer.subscription.created", &event)
            .unwrap()
            .pop()
        {
            Some(Change::Price(price)) => price,
            other => panic!("not a price: {other:?}"),
        };
        assert_eq!(price.id.as_str(), "price_1TPeerMonthly01");
        assert_eq!(price.currency, "eur");
        assert_eq!(price.unit_amount, Some(999));
        assert_eq!(
            price.recurring,
            Some(Recurring {
                interval: Interval::Month,
                interval_count: 1
            })
        );
        assert_eq!(price.product.as_deref(), Some("prod_TPeerDigital01"));
        assert!(price.active);
        assert_eq!(price.version.source, "evt_1TPeerEvent0002");
    }

    #[test]
    fn price_events_read_amount_interval_and_state_and_a_deleted_price_is_inactive() {
        let created = price_of(changes("price.created", &fixture("price_created")).unwrap());
        assert_eq!(created.id.as_str(), "price_1TPeerYearly002");
        assert_eq!(created.unit_amount, Some(9900));
        assert_eq!(created.recurring.unwrap().interval, Interval::Year);
        assert_eq!(created.nickname.as_deref(), Some("Digital, yearly"));
        assert!(created.active);
        let updated = price_of(changes("price.updated", &fixture("price_updated")).unwrap());
        assert!(!updated.active);
        assert_eq!(updated.version.source, "evt_1TPeerPriceUpd01");
        let deleted = price_of(changes("price.deleted", &fixture("price_created")).unwrap());
        assert!(!deleted.active);
    }

    #[test]
    fn a_one_off_price_has_no_cycle_and_an_unknown_interval_is_refused() {
        let mut event = fixture("price_created");
        event["data"]["object"]["recurring"] = Value::Null;
        assert_eq!(
            price_of(changes("price.created", &event).unwrap()).recurring,
            None
        );
        event["data"]["object"]["recurring"] = serde_json::json!({"interval": "fortnight"});
        assert_eq!(
            changes("price.created", &event),
            Err(ObjectError::UnknownStatus {
                kind: "price interval",
                value: "fortnight".into()
            })
        );
    }

    fn only(changes: Vec<Change>) -> Change {
        assert_eq!(changes.len(), 1, "{changes:?}");
        changes.into_iter().next().unwrap()
    }

    #[test]
    fn a_basil_subscription_takes_its_period_from_its_items() {
        let event = fixture("created");
        let mut all = changes("customer.subscription.created", &event).unwrap();
        assert_eq!(
            all.len(),
            2,
            "the subscription, then its item's price: {all:?}"
        );
        let Change::Subscription {
            subscription,
            reader_id,
        } = all.remove(0)
        else {
            panic!("not a subscription");
        };
        assert_eq!(subscription.id, "sub_1TPeerSubscr0001");
        assert_eq!(subscription.customer_id, "cus_TPeer0Reader01");
        assert_eq!(subscription.status, SubscriptionStatus::Active);
        assert_eq!(
            subscription.items[0].price.as_str(),
            "price_1TPeerMonthly01"
        );
        assert_eq!(
            subscription.current_period_end.unwrap().timestamp(),
            1_765_592_000
        );
        assert_eq!(subscription.version.source, "evt_1TPeerEvent0002");
        assert_eq!(reader_id.unwrap().as_str(), "reader-42");
    }

    #[test]
    fn an_older_subscription_takes_its_period_from_the_top_and_its_price_from_the_plan() {
        let event = fixture("legacy_created");
        let Change::Subscription {
            subscription,
            reader_id,
        } = changes("customer.subscription.created", &event)
            .unwrap()
            .remove(0)
        else {
            panic!("not a subscription");
        };
        assert_eq!(subscription.items[0].price.as_str(), "plan_LegacyYearly07");
        assert_eq!(
            subscription.current_period_end.unwrap().timestamp(),
            1_752_580_800
        );
        assert_eq!(reader_id, None);
    }

    #[test]
    fn an_expanded_customer_may_name_the_reader_instead_of_the_subscription() {
        let mut object = fixture("legacy_created")["data"]["object"].clone();
        object["customer"] = serde_json::json!({
            "id": "cus_Legacy0Reader07",
            "object": "customer",
            "metadata": { "reader_id": "reader-7" },
        });
        let (subscription, reader_id) =
            subscription(&object, Version::sync(chrono::Utc::now())).unwrap();
        assert_eq!(subscription.customer_id, "cus_Legacy0Reader07");
        assert_eq!(reader_id.unwrap().as_str(), "reader-7");
    }

    #[test]
    fn invoices_of_both_shapes_name_their_subscription_and_line_prices() {
        let Change::Invoice(current) = only(changes("invoice.paid", &fixture("invoice")).unwrap())
        else {
            panic!("not an invoice");
        };
        assert_eq!(
            current.subscription_id.as_deref(),
            Some("sub_1TPeerSubscr0001")
        );
        assert_eq!(current.status, InvoiceStatus::Paid);
        assert_eq!(
            current.lines[0].price.as_ref().unwrap().as_str(),
            "price_1TPeerMonthly01"
        );
        assert_eq!(
            current.lines[0].subscription_item.as_deref(),
            Some("si_TPeerItem0001")
        );
        assert_eq!(current.lines[0].amount, 999);

        let Change::Invoice(legacy) =
            only(changes("invoice.paid", &fixture("legacy_invoice")).unwrap())
        else {
            panic!("not an invoice");
        };
        assert_eq!(
            legacy.subscription_id.as_deref(),
            Some("sub_1LegacySubscr007")
        );
        assert_eq!(legacy.charge_id.as_deref(), Some("ch_1LegacyCharge0007"));
        assert_eq!(
            legacy.lines[0].price.as_ref().unwrap().as_str(),
            "plan_LegacyYearly07"
        );
        assert_eq!(legacy.amount_paid, 9900);
        assert_eq!(legacy.currency, "usd");
    }

    #[test]
    fn refunds_are_read_one_by_one_with_the_charges_invoice_when_it_names_one() {
        let Change::Refunds(current) =
            only(changes("charge.refunded", &fixture("refunded")).unwrap())
        else {
            panic!("not refunds");
        };
        assert_eq!(current[0].id, "re_3TPeerRefund0001");
        assert_eq!(current[0].invoice_id, None);
        assert_eq!(
            current[0].payment_intent_id.as_deref(),
            Some("pi_3TPeerPayment001")
        );

        let Change::Refunds(legacy) =
            only(changes("charge.refunded", &fixture("legacy_refunded")).unwrap())
        else {
            panic!("not refunds");
        };
        assert_eq!(legacy[0].amount, 4950);
        assert_eq!(
            legacy[0].invoice_id.as_deref(),
            Some("in_1LegacyInvoice007")
        );
    }

    #[test]
    fn a_charge_without_its_refund_list_stands_for_everything_refunded_on_it() {
        let mut event = fixture("refunded");
        event["data"]["object"]["refunds"] = Value::Null;
        let Change::Refunds(refunds) = only(changes("charge.refunded", &event).unwrap()) else {
            panic!("not refunds");
        };
        assert_eq!(refunds[0].id, "ch_3TPeerCharge0001:refunded");
        assert_eq!(refunds[0].amount, 999);
    }

    #[test]
    fn a_checkout_links_by_client_reference_id_or_metadata_and_an_invoice_payment_by_intent() {
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

        let Change::InvoicePayment(payment) =
            only(changes("invoice_payment.paid", &fixture("invoice_payment")).unwrap())
        else {
            panic!("not an invoice payment");
        };
        assert_eq!(payment.invoice_id, "in_1TPeerInvoice001");
        assert_eq!(
            payment.payment_intent_id.as_deref(),
            Some("pi_3TPeerPayment001")
        );
    }

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
