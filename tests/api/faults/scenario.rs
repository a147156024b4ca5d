//! The events of a fault run: readers whose subscriptions change plan, fall behind, cancel, and
//! whose invoices are paid and partly refunded, each a distinct Stripe event shaped like the
//! fixtures. What every reader ends up entitled to is known in advance.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde_json::Value;

use crate::stripe_events::{self, Invoice, Subscription};

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

fn done(event: &Value) -> (String, Vec<u8>) {
    (
        event["id"].as_str().unwrap().to_owned(),
        serde_json::to_vec(event).unwrap(),
    )
}

fn subscription(
    i: usize,
    k: usize,
    kind: &str,
    at: i64,
    status: &str,
    price_id: &str,
) -> (String, Vec<u8>) {
    done(&stripe_events::subscription(
        kind,
        &format!("evt_faults_{i}_sub{k}"),
        at,
        &Subscription {
            id: &format!("sub_faults_{i}"),
            customer: &format!("cus_faults_{i}"),
            reader_id: &format!("reader-f{i}"),
            status,
            price: stripe_events::price(price_id, INVOICE_AMOUNT, "eur", "month"),
            cancel_at_period_end: false,
        },
    ))
}

fn invoice(i: usize, k: usize, at: i64) -> (String, Vec<u8>) {
    done(&stripe_events::invoice(
        &format!("evt_faults_{i}_in{k}"),
        at,
        &Invoice {
            id: &format!("in_faults_{i}_{k}"),
            customer: &format!("cus_faults_{i}"),
            subscription: &format!("sub_faults_{i}"),
            reader_id: &format!("reader-f{i}"),
            price_id: STANDARD_PRICE,
            currency: "eur",
            subtotal: INVOICE_AMOUNT,
            discount: 0,
            tax: 0,
            paid: true,
        },
    ))
}

fn invoice_payment(i: usize, at: i64) -> (String, Vec<u8>) {
    done(&stripe_events::invoice_payment(
        &format!("evt_faults_{i}_pay"),
        at,
        &format!("faults_{i}"),
        &format!("in_faults_{i}_0"),
        &format!("pi_faults_{i}"),
    ))
}

fn refund(i: usize, at: i64) -> (String, Vec<u8>) {
    done(&stripe_events::refund(
        &format!("evt_faults_{i}_refund"),
        at,
        &format!("faults_{i}"),
        &format!("pi_faults_{i}"),
        "eur",
        REFUND_AMOUNT,
    ))
}
