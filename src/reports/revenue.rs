//! Revenue per period: what paid invoices brought in and what refunds took back, by currency and
//! optionally by plan. The database sums invoices and refunds per local day, and those sums are
//! put into the report's periods here (days, ISO weeks and months are all whole local days). A
//! local day is `(unix_seconds + offset) / 86400`, exact within a stretch of time where the zone's
//! UTC offset does not change; [`offset_stretches`] cuts a range at every change.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::periods::Period;
use crate::domain::{InvoiceDay, LostDispute, PlanId, RefundDay, StripePriceId};

/// A stretch `start..end` (Unix seconds) in which `tz` is `offset` seconds ahead of UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stretch {
    /// First second.
    pub start: i64,
    /// The second after the last.
    pub end: i64,
    /// Local time minus UTC, in seconds.
    pub offset: i64,
}

/// How far `tz` is ahead of UTC at `at` (Unix seconds), in seconds.
pub fn offset_at(tz: Tz, at: i64) -> i64 {
    let instant = DateTime::<Utc>::from_timestamp(at, 0).unwrap_or_default();
    i64::from(
        tz.offset_from_utc_datetime(&instant.naive_utc())
            .fix()
            .local_minus_utc(),
    )
}

/// `from..to` cut wherever `tz` changes its UTC offset. Offsets are looked at every six hours
/// (zones change at most a few times a year) and each change is then found to the second.
pub fn offset_stretches(tz: Tz, from: i64, to: i64) -> Vec<Stretch> {
    const STEP: i64 = 6 * 3600;
    let mut out = Vec::new();
    let mut start = from;
    let mut offset = offset_at(tz, from);
    let mut probe = from;
    while probe < to {
        let next = (probe + STEP).min(to);
        let next_offset = offset_at(tz, next.min(to - 1).max(probe));
        if next_offset != offset {
            // The change is in probe..=next: find its first second.
            let (mut low, mut high) = (probe, next.min(to - 1).max(probe));
            while low + 1 < high {
                let middle = low + (high - low) / 2;
                if offset_at(tz, middle) == offset {
                    low = middle;
                } else {
                    high = middle;
                }
            }
            out.push(Stretch {
                start,
                end: high,
                offset,
            });
            start = high;
            offset = next_offset;
        }
        probe = next;
    }
    out.push(Stretch {
        start,
        end: to,
        offset,
    });
    out
}

/// The date of local day `day` (days since 1970-01-01).
fn date_of(day: i64) -> Option<NaiveDate> {
    DateTime::<Utc>::from_timestamp(day.checked_mul(86_400)?, 0).map(|at| at.date_naive())
}

/// The group of refunds whose invoice is unknown.
pub const UNATTRIBUTED: &str = "unattributed";

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
    /// Lost disputes, at their close, less what of the payment had been refunded by then.
    pub disputes_lost: i64,
    /// Net less lost disputes.
    pub net_after_disputes: i64,
}

/// What a lost dispute takes from revenue: its amount, but never more than what of the payment
/// was not refunded already (when the payment is known).
pub fn dispute_loss(dispute: &LostDispute) -> i64 {
    match dispute.paid {
        Some(paid) => dispute.amount.min((paid - dispute.refunded).max(0)),
        None => dispute.amount,
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Sums {
    gross: i64,
    tax: i64,
    refunds: i64,
    invoices: i64,
    disputes: i64,
}

/// The revenue report over `periods` (consecutive, in order) from the database's sums.
/// Invoices, refunds and lost disputes of invoices whose price is in no plan are left out;
/// refunds and disputes linked to no invoice are `unattributed`.
pub fn report(
    periods: &[Period],
    invoices: &[InvoiceDay],
    refunds: &[RefundDay],
    disputes: &[LostDispute],
    plans: &HashMap<StripePriceId, PlanId>,
    by_plan: bool,
) -> Vec<RevenueRow> {
    let period_of = |day: i64| -> Option<usize> {
        let date = date_of(day)?;
        let index = periods
            .partition_point(|p| p.first_day <= date)
            .checked_sub(1)?;
        (date <= periods[index].last_day).then_some(index)
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
        let (Some(period), Some(plan)) = (period_of(slot.day), plan_of(slot.price_id.as_ref()))
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
        let Some(period) = period_of(slot.day) else {
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
    for dispute in disputes {
        let Some(period) = period_of(dispute.day) else {
            continue;
        };
        let plan = if dispute.linked {
            match plan_of(dispute.price_id.as_ref()) {
                Some(plan) => plan,
                None => continue,
            }
        } else {
            UNATTRIBUTED
        };
        let key = group(&dispute.currency, plan);
        groups.insert(key.clone());
        sums.entry((period, key)).or_default().disputes += dispute_loss(dispute);
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
                disputes_lost: sum.disputes,
                net_after_disputes: sum.gross - sum.refunds - sum.disputes,
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

    /// The local day of `date_time` in Berlin in winter.
    fn day_at(date_time: &str) -> i64 {
        (chrono::DateTime::parse_from_rfc3339(date_time)
            .unwrap()
            .timestamp()
            + 3600)
            / 86_400
    }

    fn invoice(at: &str, price: &str, gross: i64) -> InvoiceDay {
        InvoiceDay {
            day: day_at(at),
            currency: "eur".into(),
            price_id: Some(price.into()),
            gross,
            tax: gross / 5,
            invoices: 1,
        }
    }

    #[test]
    fn a_lost_dispute_costs_what_of_its_payment_was_not_refunded_and_goes_to_its_plan() {
        let day = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
        let range = DateRange::new(day("2026-01-01"), day("2026-01-31")).unwrap();
        let month = periods(range, Interval::Month, chrono_tz::Europe::Berlin);
        let lost = |paid: Option<i64>, refunded: i64, linked: bool| LostDispute {
            day: day_at("2026-01-20T10:00:00Z"),
            currency: "eur".into(),
            linked,
            price_id: linked.then(|| "price_monthly".into()),
            amount: 1_000,
            paid,
            refunded,
        };
        assert_eq!(dispute_loss(&lost(Some(1_000), 0, true)), 1_000);
        assert_eq!(dispute_loss(&lost(Some(1_000), 300, true)), 700);
        assert_eq!(dispute_loss(&lost(Some(1_000), 1_000, true)), 0);
        assert_eq!(dispute_loss(&lost(None, 0, false)), 1_000);
        let invoices = [invoice("2026-01-05T10:00:00Z", "price_monthly", 1_000)];
        let disputes = [lost(Some(1_000), 300, true), lost(None, 0, false)];
        let rows = report(&month, &invoices, &[], &disputes, &plans(), true);
        let table: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.plan_id.as_deref().unwrap(),
                    r.net,
                    r.disputes_lost,
                    r.net_after_disputes,
                )
            })
            .collect();
        assert_eq!(
            table,
            [
                ("digital", 1_000, 700, 300),
                ("unattributed", 0, 1_000, -1_000)
            ]
        );
    }

    #[test]
    fn a_range_is_cut_where_the_zone_changes_its_offset_to_the_second() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp();
        let (from, to) = (at("2026-01-01T00:00:00Z"), at("2027-01-01T00:00:00Z"));
        let stretches = offset_stretches(chrono_tz::Europe::Berlin, from, to);
        assert_eq!(
            stretches,
            [
                Stretch {
                    start: from,
                    end: at("2026-03-29T01:00:00Z"),
                    offset: 3600
                },
                Stretch {
                    start: at("2026-03-29T01:00:00Z"),
                    end: at("2026-10-25T01:00:00Z"),
                    offset: 7200
                },
                Stretch {
                    start: at("2026-10-25T01:00:00Z"),
                    end: to,
                    offset: 3600
                },
            ]
        );
        assert_eq!(
            offset_stretches(Tz::UTC, from, to),
            [Stretch {
                start: from,
                end: to,
                offset: 0
            }]
        );
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
            RefundDay {
                day: day_at("2026-01-02T08:00:00Z"),
                currency: "eur".into(),
                linked: false,
                price_id: None,
                amount: 300,
            },
            RefundDay {
                day: day_at("2026-01-02T08:00:00Z"),
                currency: "eur".into(),
                linked: true,
                price_id: Some("price_foreign".into()),
                amount: 7_000,
            },
        ];
        let rows = report(&days, &invoices, &refunds, &[], &plans(), true);
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
        let ungrouped = report(&days, &invoices, &refunds, &[], &plans(), false);
        assert_eq!(ungrouped.len(), 2);
        assert_eq!(ungrouped[0].gross, 1_500);
        assert_eq!(ungrouped[0].tax, 300);
        assert_eq!(ungrouped[1].net, 700);
        assert_eq!(ungrouped[1].plan_id, None);
    }
}
