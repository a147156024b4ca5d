//! Stripe events built from the fixtures, for tests that tell a story through the signed
//! webhook endpoint: a price, a subscription snapshot, an invoice, the payment that names an
//! invoice, a refund. Each takes the event's id and `created` (Unix seconds) and returns the
//! event as JSON, in API version 2025-09-30.clover like the fixtures.

use serde_json::{Value, json};

const SUBSCRIPTION: &[u8] = include_bytes!("../fixtures/stripe/customer.subscription.created.json");
const INVOICE: &[u8] = include_bytes!("../fixtures/stripe/invoice.paid.json");
const INVOICE_PAYMENT: &[u8] = include_bytes!("../fixtures/stripe/invoice_payment.paid.json");
const CHARGE_REFUNDED: &[u8] = include_bytes!("../fixtures/stripe/charge.refunded.json");

/// 12:00 UTC on `date` (`YYYY-MM-DD`), in Unix seconds: when the stories' events happen.
pub fn noon(date: &str) -> i64 {
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp()
}

fn envelope(fixture: &[u8], kind: &str, id: &str, created: i64) -> Value {
    let mut event: Value = serde_json::from_slice(fixture).unwrap();
    event["type"] = kind.into();
    event["id"] = id.into();
    event["created"] = created.into();
    event
}

/// A recurring price object as Stripe embeds it in subscription items.
pub fn price(id: &str, amount: i64, currency: &str, interval: &str) -> Value {
    let event: Value = serde_json::from_slice(SUBSCRIPTION).unwrap();
    let mut price = event["data"]["object"]["items"]["data"][0]["price"].clone();
    price["id"] = id.into();
    price["unit_amount"] = amount.into();
    price["unit_amount_decimal"] = amount.to_string().into();
    price["currency"] = currency.into();
    price["recurring"]["interval"] = interval.into();
    price["lookup_key"] = Value::Null;
    price
}

/// One subscription as a snapshot shows it: one item, of `price`.
pub struct Subscription<'a> {
    pub id: &'a str,
    pub customer: &'a str,
    pub reader_id: &'a str,
    pub status: &'a str,
    pub price: Value,
    pub cancel_at_period_end: bool,
}

/// A `customer.subscription.*` event (`kind`) showing `subscription`.
pub fn subscription(
    kind: &str,
    event_id: &str,
    created: i64,
    subscription: &Subscription,
) -> Value {
    let mut event = envelope(SUBSCRIPTION, kind, event_id, created);
    let object = &mut event["data"]["object"];
    object["id"] = subscription.id.into();
    object["customer"] = subscription.customer.into();
    object["metadata"] = json!({ "reader_id": subscription.reader_id });
    object["status"] = subscription.status.into();
    object["currency"] = subscription.price["currency"].clone();
    object["cancel_at_period_end"] = subscription.cancel_at_period_end.into();
    for field in [
        "cancel_at",
        "canceled_at",
        "ended_at",
        "pending_update",
        "trial_end",
    ] {
        object[field] = Value::Null;
    }
    let item = &mut object["items"]["data"][0];
    item["id"] = format!("si_{}", subscription.id).into();
    item["subscription"] = subscription.id.into();
    item["price"] = subscription.price.clone();
    item["plan"] = Value::Null;
    event
}

/// One invoice of a subscription: `subtotal` for one line of `price_id`, less `discount`, plus
/// `tax`; paid (`invoice.paid`, at the event's time) or still open (`invoice.payment_failed`).
pub struct Invoice<'a> {
    pub id: &'a str,
    pub customer: &'a str,
    pub subscription: &'a str,
    pub reader_id: &'a str,
    pub price_id: &'a str,
    pub currency: &'a str,
    pub subtotal: i64,
    pub discount: i64,
    pub tax: i64,
    pub paid: bool,
}

/// The `invoice.paid` or `invoice.payment_failed` event of `invoice`.
pub fn invoice(event_id: &str, created: i64, invoice: &Invoice) -> Value {
    let Invoice {
        id,
        customer,
        subscription,
        subtotal,
        discount,
        tax,
        paid,
        ..
    } = *invoice;
    let kind = if paid {
        "invoice.paid"
    } else {
        "invoice.payment_failed"
    };
    let mut event = envelope(INVOICE, kind, event_id, created);
    let total = subtotal - discount + tax;
    let discounts = if discount > 0 {
        json!([{ "amount": discount, "discount": format!("di_{customer}") }])
    } else {
        json!([])
    };
    let object = &mut event["data"]["object"];
    object["id"] = id.into();
    object["customer"] = customer.into();
    object["currency"] = invoice.currency.into();
    object["parent"]["subscription_details"]["subscription"] = subscription.into();
    object["parent"]["subscription_details"]["metadata"] =
        json!({ "reader_id": invoice.reader_id });
    object["status"] = if paid { "paid" } else { "open" }.into();
    object["subtotal"] = subtotal.into();
    object["subtotal_excluding_tax"] = subtotal.into();
    object["total"] = total.into();
    object["total_excluding_tax"] = (subtotal - discount).into();
    object["amount_due"] = total.into();
    object["amount_paid"] = if paid { total } else { 0 }.into();
    object["amount_remaining"] = if paid { 0 } else { total }.into();
    object["status_transitions"]["paid_at"] = if paid { created.into() } else { Value::Null };
    object["total_discount_amounts"] = discounts.clone();
    object["total_taxes"] = if tax > 0 {
        json!([{
            "amount": tax, "tax_behavior": "exclusive", "taxability_reason": "standard_rated",
            "taxable_amount": subtotal - discount, "type": "tax_rate_details",
            "tax_rate_details": { "tax_rate": "txr_1TPeerVat19" }
        }])
    } else {
        Value::Null
    };
    let line = &mut object["lines"]["data"][0];
    line["id"] = format!("il_{id}").into();
    line["invoice"] = id.into();
    line["amount"] = subtotal.into();
    line["currency"] = invoice.currency.into();
    line["pricing"]["price_details"]["price"] = invoice.price_id.into();
    line["parent"]["subscription_item_details"]["subscription"] = subscription.into();
    line["parent"]["subscription_item_details"]["subscription_item"] =
        format!("si_{subscription}").into();
    line["discount_amounts"] = discounts;
    event
}

/// `invoice_payment.paid`: payment `inpay_{name}` of payment intent `intent` paid `invoice`.
pub fn invoice_payment(
    event_id: &str,
    created: i64,
    name: &str,
    invoice: &str,
    intent: &str,
) -> Value {
    let mut event = envelope(INVOICE_PAYMENT, "invoice_payment.paid", event_id, created);
    let object = &mut event["data"]["object"];
    object["id"] = format!("inpay_{name}").into();
    object["invoice"] = invoice.into();
    object["payment"]["payment_intent"] = intent.into();
    event
}

/// `charge.refunded`: refund `re_{name}` gives back `amount` of charge `ch_{name}`, paid
/// through `intent`.
pub fn refund(
    event_id: &str,
    created: i64,
    name: &str,
    intent: &str,
    currency: &str,
    amount: i64,
) -> Value {
    let mut event = envelope(CHARGE_REFUNDED, "charge.refunded", event_id, created);
    let object = &mut event["data"]["object"];
    object["id"] = format!("ch_{name}").into();
    object["payment_intent"] = intent.into();
    object["currency"] = currency.into();
    object["amount_refunded"] = amount.into();
    let refund = &mut object["refunds"]["data"][0];
    refund["id"] = format!("re_{name}").into();
    refund["charge"] = format!("ch_{name}").into();
    refund["payment_intent"] = intent.into();
    refund["amount"] = amount.into();
    refund["currency"] = currency.into();
    refund["created"] = created.into();
    event
}

const DISPUTE: &[u8] = include_bytes!("../fixtures/stripe/charge.dispute.created.json");

/// `charge.dispute.<kind>`: dispute `dp_{name}` of `amount` against the charge paid through
/// `intent`, with Stripe's `status`, opened at `opened`.
pub fn dispute(
    kind: &str,
    event_id: &str,
    created: i64,
    (name, intent, opened): (&str, &str, i64),
    (currency, amount, status): (&str, i64, &str),
) -> Value {
    let mut event = envelope(
        DISPUTE,
        &format!("charge.dispute.{kind}"),
        event_id,
        created,
    );
    let object = &mut event["data"]["object"];
    object["id"] = format!("dp_{name}").into();
    object["charge"] = format!("ch_{name}").into();
    object["payment_intent"] = intent.into();
    object["currency"] = currency.into();
    object["amount"] = amount.into();
    object["status"] = status.into();
    object["created"] = opened.into();
    event
}

/// `event` (an invoice's) with its line's service period set to `start..end`.
pub fn with_period(mut event: Value, start: i64, end: i64) -> Value {
    event["data"]["object"]["lines"]["data"][0]["period"] = json!({ "start": start, "end": end });
    event
}
