//! What finance reports are computed from, as the store reads it: the subscription history with
//! the discounts paid invoices show (for MRR), and paid invoices and refunds summed per local day
//! (for revenue), and licences with their monthly usage. Plain values: the store fills them,
//! `reports` computes on them.

use chrono::{DateTime, Utc};

use super::{StripePriceId, SubscriptionStatus};

/// One snapshot of a subscription, as the history holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// When it took effect: the creation time of the event that carried it (Unix seconds).
    pub at: i64,
    /// Its status.
    pub status: SubscriptionStatus,
    /// Its items: price and quantity.
    pub items: Vec<(StripePriceId, i64)>,
}

/// A subscription's whole history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// `sub_...`.
    pub subscription_id: String,
    /// The customer paying for it.
    pub customer_id: String,
    /// Its snapshots, in version order.
    pub snapshots: Vec<Snapshot>,
}

/// A paid invoice of a subscription, for the discount it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaidInvoice {
    /// When it was paid (Unix seconds).
    pub paid_at: i64,
    /// Before discounts and tax.
    pub subtotal: i64,
    /// The discounts on it.
    pub discount: i64,
}

/// Paid invoices of one local day, currency and price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceDay {
    /// Local days since 1970-01-01.
    pub day: i64,
    /// Three-letter code.
    pub currency: String,
    /// The price of the invoices' largest line.
    pub price_id: Option<String>,
    /// Amounts paid, tax included.
    pub gross: i64,
    /// Tax in them.
    pub tax: i64,
    /// How many invoices.
    pub invoices: i64,
}

/// Refunds of one local day, currency and invoice price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundDay {
    /// Local days since 1970-01-01.
    pub day: i64,
    /// Three-letter code.
    pub currency: String,
    /// Whether the refunds are linked to an invoice.
    pub linked: bool,
    /// The price of that invoice's largest line.
    pub price_id: Option<String>,
    /// Amount refunded.
    pub amount: i64,
}

/// A licence as the report names it, deleted ones included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenceEntry {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it came into force.
    pub starts_at: DateTime<Utc>,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
    /// When it was deleted, if it was.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Readers and articles opened under a licence in one month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Openings {
    /// Distinct readers and devices.
    pub readers: u64,
    /// Articles opened, each reader's article once.
    pub articles: u64,
}

/// What readers did with gift links in a span of time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GiftActivity {
    /// When each link was made.
    pub links: Vec<DateTime<Utc>>,
    /// Each recipient (`registered:<id>` or `anonymous:<id>`) of each link, with when the link
    /// first opened an article for them.
    pub redemptions: Vec<(String, DateTime<Utc>)>,
    /// Each recipient whose first gift ever fell in the span.
    pub first_gifts: Vec<GiftRecipient>,
}

/// A recipient's first gift, and whether they subscribed after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GiftRecipient {
    /// When a gift first opened an article for them.
    pub first_at: DateTime<Utc>,
    /// Whether, as a registered reader, they started a subscription within 30 days of it.
    pub subscribed_within_30_days: bool,
}

/// A paid invoice as recognised revenue reads it (instants in Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceService {
    /// Three-letter code.
    pub currency: String,
    /// When it was paid.
    pub paid_at: i64,
    /// Amount paid, tax included.
    pub amount_paid: i64,
    /// Tax in it.
    pub tax: i64,
    /// The price of its largest line.
    pub price_id: Option<String>,
    /// Its lines, in order.
    pub lines: Vec<ServiceLine>,
    /// Its refunds that did not fail: when, and how much (tax included), oldest first.
    pub refunds: Vec<(i64, i64)>,
}

/// One line of a paid invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLine {
    /// Its price.
    pub price_id: Option<String>,
    /// Its amount after discounts, before tax: its weight when the invoice is shared out.
    pub amount: i64,
    /// Its service period, `start..end`.
    pub period: Option<(i64, i64)>,
}

/// A gift subscription sold (instants in Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiftSale {
    /// The plan given.
    pub plan_id: String,
    /// Three-letter code.
    pub currency: String,
    /// What the buyer paid, less its tax.
    pub amount: i64,
    /// When.
    pub purchased_at: i64,
    /// Months given.
    pub months: u32,
    /// When it was redeemed, if it was.
    pub redeemed_at: Option<i64>,
    /// When the code expires unredeemed.
    pub expires_at: i64,
}

/// A lost dispute, closed on a local day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostDispute {
    /// Local days since 1970-01-01 of its close.
    pub day: i64,
    /// Three-letter code.
    pub currency: String,
    /// Whether it is linked to an invoice.
    pub linked: bool,
    /// The price of that invoice's largest line.
    pub price_id: Option<String>,
    /// Amount disputed.
    pub amount: i64,
    /// What the disputed payment paid, when its invoice is known.
    pub paid: Option<i64>,
    /// What had been refunded of the payment by the close.
    pub refunded: i64,
}

/// Disputes opened on one local day, in one currency, by their status now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeDay {
    /// Local days since 1970-01-01.
    pub day: i64,
    /// Three-letter code.
    pub currency: String,
    /// Stripe's status.
    pub status: String,
    /// How many.
    pub disputes: i64,
    /// Their amounts.
    pub amount: i64,
}
