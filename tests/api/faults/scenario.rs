//! The events of a fault run: readers whose subscriptions change plan, fall behind, cancel, and
//! whose invoices are paid and partly refunded, each a distinct Stripe event shaped like the
//! fixtures. What every reader ends up entitled to is known in advance.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde_json::{Value, json};

const SUBSCRIPTION: &[u8] =
    include_bytes!("../../fixtures/stripe/customer.subscription.created.json");
const INVOICE: &[u8] = include_bytes!("../../fixtures/stripe/invoice.paid.json");
const INVOICE_PAYMENT: &[u8] = include_bytes!("../../fixtures/stripe/invoice_payment.paid.json");
const CHARGE_REFUNDED: &[u8] = include_bytes!("../../fixtures/stripe/charge.refunded.json");

/// Events per reader: five subscription snapshots, three paid invoices, the payment of the first
/// and a refund of part of it.
pub const EVENTS_PER_READER: usize = 10;
/// What each invoice charges and each refund gives back, in cents.
pub const INVOICE_AMOUNT: i64 = 1_000;
pub const REFUND_AMOUNT: i64 = 400;

pub const STANDARD_PRICE: &str = "price_faults_standard";
pub const PREMIUM_PRICE: &str = "price_faults_premium";

/// The plans the scenario's prices belong to: id, price, entitlements.
pub const PLANS: [(&str, &str, &[&str]); 2] = [
    ("standard", STANDARD_PRICE, &["articles"]),
    ("premium", PREMIUM_PRICE, &["articles", "reports"]),
];

/// One fault run's events and what they must come to.
pub struct Scenario {
    /// Signed-to-be event bodies with their ids, in a shuffled order: Stripe promises none.
    pub events: Vec<(String, Vec<u8>)>,
    /// Each reader and the entitlements it must hold once every event is applied.
    pub expected: Vec<(String, Vec<&'static str>)>,
    pub invoices: i64,
    pub refunds: i64,
}

/// A subscription's history: (status, price) snapshots in the order they happened.
type History = [(&'static str, &'static str); 5];

/// Four kinds of reader, by `i % 4`, and what each ends up with.
fn history(i: usize) -> (History, &'static [&'static str]) {
    let (s, p) = (STANDARD_PRICE, PREMIUM_PRICE);
    match i % 4 {
        // Upgrades, then downgrades again.
        0 => (
            [
                ("incomplete", s),
                ("active", s),
                ("active", p),
                ("active", p),
                ("active", s),
            ],
            &["articles"],
        ),
        // Falls behind, pays, upgrades.
        1 => (
            [
                ("active", s),
                ("past_due", s),
                ("active", s),
                ("active", p),
                ("active", p),
            ],
            &["articles", "reports"],
        ),
        // Falls behind and is canceled.
        2 => (
            [
                ("active", p),
                ("active", p),
                ("past_due", p),
                ("unpaid", p),
                ("canceled", p),
            ],
            &[],
        ),
        // Canceled, and a later snapshot claiming it active again changes nothing: canceled is
        // terminal.
        _ => (
            [
                ("trialing", s),
                ("active", s),
                ("canceled", s),
                ("active", s),
                ("active", p),
            ],
            &[],
        ),
    }
}

impl Scenario {
    /// About `events` events (a whole number of readers), shuffled with `seed`.
    pub fn new(events: usize, seed: u64) -> Self {
        let readers = events.div_ceil(EVENTS_PER_READER).max(1);
        let base = 1_790_000_000_i64;
        let mut all = Vec::with_capacity(readers * EVENTS_PER_READER);
        let mut expected = Vec::with_capacity(readers);
        for i in 0..readers {
            let (snapshots, entitled) = history(i);
            let created = base + i64::try_from(i).unwrap() * 100;
            for (k, (status, price)) in snapshots.iter().enumerate() {
                let kind = match (k, *status) {
                    (0, _) => "customer.subscription.created",
                    (_, "canceled") => "customer.subscription.deleted",
                    _ => "customer.subscription.updated",
                };
                let at = created + i64::try_from(k).unwrap();
                all.push(subscription(i, k, kind, at, status, price));
            }
            for k in 0..3 {
                all.push(invoice(i, k, created + 10 + k as i64));
            }
            all.push(invoice_payment(i, created + 20));
            all.push(refund(i, created + 30));
            expected.push((format!("reader-f{i}"), entitled.to_vec()));
        }
        all.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        Self {
            events: all,
            expected,
            invoices: i64::try_from(readers * 3).unwrap(),
            refunds: i64::try_from(readers).unwrap(),
        }
    }
}

fn envelope(fixture: &[u8], kind: &str, id: String, created: i64) -> Value {
    let mut event: Value = serde_json::from_slice(fixture).unwrap();
    event["type"] = kind.into();
    event["id"] = id.into();
    event["created"] = created.into();
    event
}

fn done(event: &Value) -> (String, Vec<u8>) {
    (
        event["id"].as_str().unwrap().to_owned(),
        serde_json::to_vec(event).unwrap(),
    )
}

fn price(id: &str) -> Value {
    let event: Value = serde_json::from_slice(SUBSCRIPTION).unwrap();
    let mut price = event["data"]["object"]["items"]["data"][0]["price"].clone();
    price["id"] = id.into();
    price["unit_amount"] = INVOICE_AMOUNT.into();
    price["unit_amount_decimal"] = INVOICE_AMOUNT.to_string().into();
    price["currency"] = "eur".into();
    price["lookup_key"] = Value::Null;
    price
}

fn subscription(
    i: usize,
    k: usize,
    kind: &str,
    at: i64,
    status: &str,
    price_id: &str,
) -> (String, Vec<u8>) {
    let mut event = envelope(SUBSCRIPTION, kind, format!("evt_faults_{i}_sub{k}"), at);
    let object = &mut event["data"]["object"];
    object["id"] = format!("sub_faults_{i}").into();
    object["customer"] = format!("cus_faults_{i}").into();
    object["metadata"] = json!({ "reader_id": format!("reader-f{i}") });
    object["status"] = status.into();
    object["currency"] = "eur".into();
    object["cancel_at_period_end"] = false.into();
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
    item["id"] = format!("si_faults_{i}").into();
    item["subscription"] = format!("sub_faults_{i}").into();
    item["price"] = price(price_id);
    item["plan"] = Value::Null;
    done(&event)
}

fn invoice(i: usize, k: usize, at: i64) -> (String, Vec<u8>) {
    let mut event = envelope(INVOICE, "invoice.paid", format!("evt_faults_{i}_in{k}"), at);
    let invoice = format!("in_faults_{i}_{k}");
    let sub = format!("sub_faults_{i}");
    let object = &mut event["data"]["object"];
    object["id"] = invoice.as_str().into();
    object["customer"] = format!("cus_faults_{i}").into();
    object["currency"] = "eur".into();
    object["parent"]["subscription_details"]["subscription"] = sub.as_str().into();
    object["parent"]["subscription_details"]["metadata"] =
        json!({ "reader_id": format!("reader-f{i}") });
    object["status"] = "paid".into();
    for field in [
        "subtotal",
        "subtotal_excluding_tax",
        "total",
        "total_excluding_tax",
        "amount_due",
        "amount_paid",
    ] {
        object[field] = INVOICE_AMOUNT.into();
    }
    object["amount_remaining"] = 0.into();
    object["status_transitions"]["paid_at"] = at.into();
    object["total_discount_amounts"] = json!([]);
    object["total_taxes"] = Value::Null;
    let line = &mut object["lines"]["data"][0];
    line["id"] = format!("il_{invoice}").into();
    line["invoice"] = invoice.as_str().into();
    line["amount"] = INVOICE_AMOUNT.into();
    line["currency"] = "eur".into();
    line["pricing"]["price_details"]["price"] = STANDARD_PRICE.into();
    line["parent"]["subscription_item_details"]["subscription"] = sub.as_str().into();
    line["parent"]["subscription_item_details"]["subscription_item"] =
        format!("si_faults_{i}").into();
    line["discount_amounts"] = json!([]);
    done(&event)
}

fn invoice_payment(i: usize, at: i64) -> (String, Vec<u8>) {
    let mut event = envelope(
        INVOICE_PAYMENT,
        "invoice_payment.paid",
        format!("evt_faults_{i}_pay"),
        at,
    );
    let object = &mut event["data"]["object"];
    object["id"] = format!("inpay_faults_{i}").into();
    object["invoice"] = format!("in_faults_{i}_0").into();
    object["payment"]["payment_intent"] = format!("pi_faults_{i}").into();
    done(&event)
}

fn refund(i: usize, at: i64) -> (String, Vec<u8>) {
    let mut event = envelope(
        CHARGE_REFUNDED,
        "charge.refunded",
        format!("evt_faults_{i}_refund"),
        at,
    );
    let object = &mut event["data"]["object"];
    object["id"] = format!("ch_faults_{i}").into();
    object["payment_intent"] = format!("pi_faults_{i}").into();
    object["currency"] = "eur".into();
    object["amount_refunded"] = REFUND_AMOUNT.into();
    let refund = &mut object["refunds"]["data"][0];
    refund["id"] = format!("re_faults_{i}").into();
    refund["charge"] = format!("ch_faults_{i}").into();
    refund["payment_intent"] = format!("pi_faults_{i}").into();
    refund["amount"] = REFUND_AMOUNT.into();
    refund["currency"] = "eur".into();
    refund["created"] = at.into();
    done(&event)
}
