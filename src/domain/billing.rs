//! Money as Stripe records it: invoices with their lines, the payments that settled them, and
//! refunds. Amounts are integers in minor units beside their currency; nothing is converted.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{ReaderId, StripePriceId, Subscription};

named_enum! {
    /// An invoice's status, as Stripe names it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum InvoiceStatus ("invoice status") {
        /// Being prepared.
        Draft = "draft",
        /// Finalised, awaiting payment.
        Open = "open",
        /// Paid; final.
        Paid = "paid",
        /// Written off as unlikely to be paid.
        Uncollectible = "uncollectible",
        /// Canceled; final.
        Void = "void",
    }
}

impl InvoiceStatus {
    /// Whether Stripe never moves the invoice on from here.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Paid | Self::Void)
    }
}

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceLine {
    /// `il_...`.
    pub id: String,
    /// The price (or legacy plan) it bills, when it bills one.
    pub price: Option<StripePriceId>,
    /// The subscription item it bills, when it bills one.
    pub subscription_item: Option<String>,
    /// Amount before discounts, minor units.
    pub amount: i64,
    /// Sum of the discounts applied to it, minor units.
    pub discount_amount: i64,
    /// Three-letter currency code, lower case.
    pub currency: String,
    /// How many.
    pub quantity: Option<i64>,
    /// The service period it bills.
    pub period_start: Option<DateTime<Utc>>,
    /// End of that period.
    pub period_end: Option<DateTime<Utc>>,
    /// Whether it is a proration.
    pub proration: bool,
    /// Stripe's description.
    pub description: Option<String>,
}

/// An invoice as the mirror holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// `in_...`.
    pub id: String,
    /// The customer billed.
    pub customer_id: Option<String>,
    /// The subscription it bills, when it bills one.
    pub subscription_id: Option<String>,
    /// Stripe's status.
    pub status: InvoiceStatus,
    /// Three-letter currency code, lower case.
    pub currency: String,
    /// What is owed, minor units.
    pub amount_due: i64,
    /// What was paid, minor units.
    pub amount_paid: i64,
    /// Before discounts and tax, minor units.
    pub subtotal: i64,
    /// After discounts and tax, minor units.
    pub total: i64,
    /// Tax included in the total, minor units.
    pub tax: i64,
    /// Discounts taken off the subtotal, minor units.
    pub discount: i64,
    /// Start of the period it covers.
    pub period_start: Option<DateTime<Utc>>,
    /// End of that period.
    pub period_end: Option<DateTime<Utc>>,
    /// When Stripe created it.
    pub created: Option<DateTime<Utc>>,
    /// When it was paid.
    pub paid_at: Option<DateTime<Utc>>,
    /// Why it was made (`subscription_create`, `subscription_cycle`, ...).
    pub billing_reason: Option<String>,
    /// The charge that paid it (API versions before basil name it).
    pub charge_id: Option<String>,
    /// The payment intent that paid it (API versions before basil name it).
    pub payment_intent_id: Option<String>,
    /// Its lines.
    pub lines: Vec<InvoiceLine>,
}

impl Invoice {
    /// The price of its largest line (the first of equals): what the invoice is mostly for, and
    /// so the plan its revenue belongs to.
    pub fn main_price(&self) -> Option<&StripePriceId> {
        self.lines
            .iter()
            .filter(|line| line.price.is_some())
            .fold(None::<&InvoiceLine>, |best, line| match best {
                Some(best) if best.amount >= line.amount => Some(best),
                _ => Some(line),
            })
            .and_then(|line| line.price.as_ref())
    }
}

/// A payment applied to an invoice (basil and later): how a refund of that payment finds the
/// invoice it takes money back from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoicePayment {
    /// `inpay_...`.
    pub id: String,
    /// The invoice it pays.
    pub invoice_id: String,
    /// The payment intent, when the payment is one.
    pub payment_intent_id: Option<String>,
    /// The charge, when the payment is one.
    pub charge_id: Option<String>,
    /// Amount paid, minor units.
    pub amount_paid: Option<i64>,
    /// Three-letter currency code, lower case.
    pub currency: Option<String>,
    /// Stripe's status.
    pub status: Option<String>,
}

/// Money given back to a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// `re_...`; for a charge whose event does not list its refunds, the charge id followed by
    /// `:refunded`, standing for everything refunded on it.
    pub id: String,
    /// The charge refunded.
    pub charge_id: Option<String>,
    /// The payment intent refunded.
    pub payment_intent_id: Option<String>,
    /// The invoice it takes money back from, when the payload says so.
    pub invoice_id: Option<String>,
    /// Minor units, positive.
    pub amount: i64,
    /// Three-letter currency code, lower case.
    pub currency: String,
    /// Stripe's status (`succeeded`, `pending`, `failed`, `canceled`).
    pub status: Option<String>,
    /// Stripe's reason.
    pub reason: Option<String>,
    /// When it was made.
    pub created: DateTime<Utc>,
}

impl Refund {
    /// The id that stands for every refund of `charge` when they are not listed one by one.
    pub fn aggregate_id(charge: &str) -> String {
        format!("{charge}:refunded")
    }
}

/// A dispute (chargeback) of a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispute {
    /// `dp_...`.
    pub id: String,
    /// The charge disputed.
    pub charge_id: Option<String>,
    /// The payment intent disputed.
    pub payment_intent_id: Option<String>,
    /// Minor units disputed, positive.
    pub amount: i64,
    /// Three-letter currency code, lower case.
    pub currency: String,
    /// Stripe's reason (`fraudulent`, `product_not_received`, ...).
    pub reason: Option<String>,
    /// Stripe's status (`needs_response`, `under_review`, `won`, `lost`, `warning_*`).
    pub status: String,
    /// When it was opened.
    pub created: DateTime<Utc>,
}

impl Dispute {
    /// Whether its status is final: the dispute is closed.
    pub fn is_closed(&self) -> bool {
        Self::is_closed_status(&self.status)
    }

    /// Whether Stripe's dispute `status` is final.
    pub fn is_closed_status(status: &str) -> bool {
        matches!(status, "won" | "lost" | "warning_closed" | "prevented")
    }
}

/// One change a Stripe event (or a reconcile) makes to the mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A customer belongs to a reader (a completed checkout says so).
    LinkCustomer {
        /// The Stripe customer.
        customer_id: String,
        /// The reader.
        reader_id: ReaderId,
    },
    /// A subscription's state, and its reader when its metadata names one.
    Subscription {
        /// The snapshot.
        subscription: Subscription,
        /// `metadata.reader_id`.
        reader_id: Option<ReaderId>,
    },
    /// An invoice's state.
    Invoice(Invoice),
    /// A payment settled an invoice.
    InvoicePayment(InvoicePayment),
    /// Refunds of one charge.
    Refunds(Vec<Refund>),
    /// A dispute's state.
    Dispute(Dispute),
    /// A price's state (from a `price.*` event, or carried by a subscription item).
    Price(super::Price),
    /// A gift subscription was bought (a completed Checkout Session in payment mode).
    GiftPurchased(super::GiftPurchase),
    /// A customer was deleted in Stripe.
    CustomerDeleted {
        /// The Stripe customer.
        customer_id: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paid_and_void_invoices_are_final() {
        assert!(InvoiceStatus::Paid.is_terminal());
        assert!(InvoiceStatus::Void.is_terminal());
        for status in [
            InvoiceStatus::Draft,
            InvoiceStatus::Open,
            InvoiceStatus::Uncollectible,
        ] {
            assert!(!status.is_terminal());
        }
        assert_eq!(
            "paid".parse::<InvoiceStatus>().unwrap(),
            InvoiceStatus::Paid
        );
    }
}
