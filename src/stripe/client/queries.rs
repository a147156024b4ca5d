//! The query strings of the list calls, a full page at a time.

use serde::Serialize;

/// Objects asked for per page: Stripe's maximum.
const PAGE_LIMIT: u32 = 100;

/// `status=all&limit=100&expand[]=data.customer[&starting_after=..]`.
#[derive(Serialize)]
pub(super) struct SubscriptionsQuery<'a> {
    status: &'static str,
    limit: u32,
    /// The customer comes as an object, so its metadata can name the reader.
    expand: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    starting_after: Option<&'a str>,
}

impl<'a> SubscriptionsQuery<'a> {
    pub(super) fn new(starting_after: Option<&'a str>) -> Self {
        Self {
            status: "all",
            limit: PAGE_LIMIT,
            expand: ["data.customer"],
            starting_after,
        }
    }
}

/// `limit=100[&starting_after=..]`.
#[derive(Serialize)]
pub(super) struct PricesQuery<'a> {
    limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    starting_after: Option<&'a str>,
}

impl<'a> PricesQuery<'a> {
    pub(super) fn new(starting_after: Option<&'a str>) -> Self {
        Self {
            limit: PAGE_LIMIT,
            starting_after,
        }
    }
}

/// `created[gte]=..&limit=100[&starting_after=..]`.
#[derive(Serialize)]
pub(super) struct CreatedSinceQuery<'a> {
    created: CreatedRange,
    limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    starting_after: Option<&'a str>,
}

impl<'a> CreatedSinceQuery<'a> {
    pub(super) fn new(created_gte: i64, starting_after: Option<&'a str>) -> Self {
        Self {
            created: CreatedRange { gte: created_gte },
            limit: PAGE_LIMIT,
            starting_after,
        }
    }
}

#[derive(Serialize)]
struct CreatedRange {
    gte: i64,
}

/// `payment[type]=payment_intent&payment[payment_intent]=..&limit=100`.
#[derive(Serialize)]
pub(super) struct InvoicePaymentsQuery<'a> {
    payment: PaymentFilter<'a>,
    limit: u32,
}

impl<'a> InvoicePaymentsQuery<'a> {
    pub(super) fn new(payment_intent: &'a str) -> Self {
        Self {
            payment: PaymentFilter {
                kind: "payment_intent",
                payment_intent,
            },
            limit: PAGE_LIMIT,
        }
    }
}

#[derive(Serialize)]
struct PaymentFilter<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    payment_intent: &'a str,
}
