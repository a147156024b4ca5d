//! Revenue per period: what paid invoices brought in and what refunds took back, by currency and
//! optionally by plan. The database sums invoices and refunds per quarter hour (every time zone's
//! offset is a whole number of quarter hours), and those sums are put into the report's periods
//! here, so a day, week or month in any time zone is exact without reading every invoice.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::periods::Period;
use crate::domain::{PlanId, StripePriceId};

/// Seconds in the slots the database sums over.
pub const SLOT_SECONDS: i64 = 900;

/// The group of refunds whose invoice is unknown.
pub const UNATTRIBUTED: &str = "unattributed";

/// Paid invoices of one quarter hour, currency and price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceSlot {
    /// `paid_at` ÷ [`SLOT_SECONDS`].
    pub slot: i64,
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

/// Refunds of one quarter hour, currency and invoice price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundSlot {
    /// `created` ÷ [`SLOT_SECONDS`].
    pub slot: i64,
    /// Three-letter code.
    pub currency: String,
    /// Whether the refunds are linked to an invoice.
    pub linked: bool,
    /// The price of that invoice's largest line.
    pub price_id: Option<String>,
    /// Amount refunded.
    pub amount: i64,
}

/// One period's revenue for one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevenueRow {
    /// `2026-01-15`, `2026-W03` or `2026-01`.
    pub period: String,
    /// First day, within the range.
    pub period_start: String,
    /// Last day, within the range.
    pub period_end: String,
    /// The plan (or `unattributed`), when grouped by plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
    /// Three-letter code.
    pub currency: String,
    /// Paid, tax included.
    pub gross: i64,
    /// Tax.
    pub tax: i64,
    /// Refunded.
    pub refunds: i64,
    /// Gross less refunds.
    pub net: i64,
    /// Invoices paid.
    pub invoices: i64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    gross: i64,
    tax: i64,
    refunds: i64,
    invoices: i64,
}

/// The revenue report over `periods` (consecutive, in order) from the database's sums.
/// Invoices and refunds of invoices whose price is in no plan are left out; refunds linked to no
/// invoice are `unattributed`.
pub fn report(
    periods: &[Period],
    invoices: &[InvoiceSlot],
    refunds: &[RefundSlot],
    plans: &HashMap<StripePriceId, PlanId>,
    by_plan: bool,
) -> Vec<RevenueRow> {
    let starts: Vec<i64> = periods.iter().map(|p| p.starts.timestamp()).collect();
    let end = periods.last().map_or(i64::MIN, |p| p.ends.timestamp());
    let period_of = |slot: i64| -> Option<usize> {
        let at = slot.checked_mul(SLOT_SECONDS)?;
        if at >= end {
            return None;
        }
        starts.partition_point(|start| *start <= at).checked_sub(1)
    };
    let plan_of = |price: Option<&String>| -> Option<&str> {
        price
            .and_then(|p| StripePriceId::parse(p))
            .and_then(|p| plans.get(&p))
            .map(PlanId::as_str)
    };
    let group = |currency: &str, plan: &str| -> (String, Option<String>) {
        (currency.to_owned(), by_plan.then(|| plan.to_owned()))
    };

    let mut sums: BTreeMap<(usize, (String, Option<String>)), Sums> = BTreeMap::new();
    let mut groups = BTreeSet::new();
    for slot in invoices {
        let (Some(period), Some(plan)) = (period_of(slot.slot), plan_of(slot.price_id.as_ref()))
        else {
            continue;
        };
        let key = group(&slot.currency, plan);
        groups.insert(key.clone());
        let sum = sums.entry((period, key)).or_default();
        sum.gross += slot.gross;
        sum.tax += slot.tax;
        sum.invoices += slot.invoices;
    }
    for slot in refunds {
        let Some(period) = period_of(slot.slot) else {
            continue;
        };
        let plan = if slot.linked {
            match plan_of(slot.price_id.as_ref()) {
                Some(plan) => plan,
                None => continue,
            }
        } else {
            UNATTRIBUTED
        };
        let key = group(&slot.currency, plan);
        groups.insert(key.clone());
        sums.entry((period, key)).or_default().refunds += slot.amount;
    }

    let mut rows = Vec::with_capacity(periods.len() * groups.len());
    for (index, period) in periods.iter().enumerate() {
        for key in &groups {
            let sum = sums.get(&(index, key.clone())).copied().unwrap_or_default();
            rows.push(RevenueRow {
                period: period.label.clone(),
                period_start: period.first_day.to_string(),
                period_end: period.last_day.to_string(),
                plan_id: key.1.clone(),
                currency: key.0.clone(),
                gross: sum.gross,
                tax: sum.tax,
                refunds: sum.refunds,
                net: sum.gross - sum.refunds,
                invoices: sum.invoices,
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::reports::periods::{DateRange, Interval, periods};

    fn plans() -> HashMap<StripePriceId, PlanId> {
        [("price_monthly", "digital"), ("price_print", "print")]
            .into_iter()
            .map(|(p, plan)| {
                (
                    StripePriceId::parse(p).unwrap(),
                    PlanId::parse(plan).unwrap(),
                )
            })
            .collect()
    }

    fn slot_at(date_time: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(date_time)
            .unwrap()
            .timestamp()
            / SLOT_SECONDS
    }

    fn invoice(at: &str, price: &str, gross: i64) -> InvoiceSlot {
        InvoiceSlot {
            slot: slot_at(at),
            currency: "eur".into(),
            price_id: Some(price.into()),
            gross,
            tax: gross / 5,
            invoices: 1,
        }
    }

    #[test]
    fn sums_fall_into_local_days_and_groups_and_foreign_prices_are_left_out() {
        let day = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
        let range = DateRange::new(day("2026-01-01"), day("2026-01-02")).unwrap();
        let days = periods(range, Interval::Day, chrono_tz::Europe::Berlin);
        let invoices = [
            // 23:30 UTC on the 1st is the 2nd in Berlin.
            invoice("2026-01-01T23:30:00Z", "price_monthly", 1_000),
            invoice("2026-01-01T10:00:00Z", "price_monthly", 1_000),
            invoice("2026-01-01T10:00:00Z", "price_print", 500),
            invoice("2026-01-01T10:00:00Z", "price_foreign", 7_000),
            // Before the range (31 December in Berlin).
            invoice("2025-12-31T22:45:00Z", "price_monthly", 1_000),
        ];
        let refunds = [
            RefundSlot {
                slot: slot_at("2026-01-02T08:00:00Z"),
                currency: "eur".into(),
                linked: false,
                price_id: None,
                amount: 300,
            },
            RefundSlot {
                slot: slot_at("2026-01-02T08:00:00Z"),
                currency: "eur".into(),
                linked: true,
                price_id: Some("price_foreign".into()),
                amount: 7_000,
            },
        ];
        let rows = report(&days, &invoices, &refunds, &plans(), true);
        let table: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.period.as_str(),
                    r.plan_id.as_deref().unwrap(),
                    r.gross,
                    r.refunds,
                    r.net,
                    r.invoices,
                )
            })
            .collect();
        assert_eq!(
            table,
            [
                ("2026-01-01", "digital", 1_000, 0, 1_000, 1),
                ("2026-01-01", "print", 500, 0, 500, 1),
                ("2026-01-01", "unattributed", 0, 0, 0, 0),
                ("2026-01-02", "digital", 1_000, 0, 1_000, 1),
                ("2026-01-02", "print", 0, 0, 0, 0),
                ("2026-01-02", "unattributed", 0, 300, -300, 0),
            ]
        );
        let ungrouped = report(&days, &invoices, &refunds, &plans(), false);
        assert_eq!(ungrouped.len(), 2);
        assert_eq!(ungrouped[0].gross, 1_500);
        assert_eq!(ungrouped[0].tax, 300);
        assert_eq!(ungrouped[1].net, 700);
        assert_eq!(ungrouped[1].plan_id, None);
    }
}
