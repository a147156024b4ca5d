//! Disputes per month: how many were opened, and for how much, by the status they have now.

use std::collections::BTreeMap;

use serde::Serialize;

use super::periods::Period;
use crate::domain::DisputeDay;

/// Disputes opened in one month, in one currency, with one status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DisputeRow {
    /// `2026-01`.
    pub month: String,
    /// Three-letter code.
    pub currency: String,
    /// Stripe's status now.
    pub status: String,
    /// How many.
    pub disputes: i64,
    /// Their amounts.
    pub amount: i64,
}

/// The rows for `months` (consecutive, in order) from the database's daily counts: only
/// months, currencies and statuses that have disputes.
pub fn report(months: &[Period], days: &[DisputeDay]) -> Vec<DisputeRow> {
    let epoch = chrono::NaiveDate::default();
    let mut sums: BTreeMap<(usize, &str, &str), (i64, i64)> = BTreeMap::new();
    for day in days {
        let Some(date) = epoch.checked_add_signed(chrono::TimeDelta::days(day.day)) else {
            continue;
        };
        let Some(month) = months
            .iter()
            .position(|m| m.first_day <= date && date <= m.last_day)
        else {
            continue;
        };
        let sum = sums
            .entry((month, day.currency.as_str(), day.status.as_str()))
            .or_default();
        sum.0 += day.disputes;
        sum.1 += day.amount;
    }
    sums.into_iter()
        .map(
            |((month, currency, status), (disputes, amount))| DisputeRow {
                month: months[month].label.clone(),
                currency: currency.to_owned(),
                status: status.to_owned(),
                disputes,
                amount,
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::reports::periods::months;

    #[test]
    fn disputes_are_counted_in_the_month_they_were_opened_by_status() {
        let first = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
        let cut = months(first("2026-01-01"), first("2026-02-01"), chrono_tz::UTC).unwrap();
        let day = |d: &str| {
            first(d)
                .signed_duration_since(NaiveDate::default())
                .num_days()
        };
        let opened = |d: &str, status: &str, amount: i64| DisputeDay {
            day: day(d),
            currency: "eur".into(),
            status: status.into(),
            disputes: 1,
            amount,
        };
        let rows = report(
            &cut,
            &[
                opened("2026-01-03", "lost", 999),
                opened("2026-01-30", "lost", 500),
                opened("2026-02-01", "needs_response", 1_200),
                opened("2026-03-01", "won", 100),
            ],
        );
        let table: Vec<_> = rows
            .iter()
            .map(|r| (r.month.as_str(), r.status.as_str(), r.disputes, r.amount))
            .collect();
        assert_eq!(
            table,
            [
                ("2026-01", "lost", 2, 1_499),
                ("2026-02", "needs_response", 1, 1_200)
            ]
        );
    }
}
