//! The calendar of a report: date ranges in the reporting time zone, cut into days, ISO weeks or
//! months, each with the instants it starts and ends at.

use std::fmt;

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::domain::meter::local_midnight;

/// Longest range a report covers, in months: five years.
pub const MAX_MONTHS: u32 = 60;

/// Why a range was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRange {
    /// A date (or month) that does not parse.
    #[error("`{field}` must be {format}, not `{value}`")]
    Malformed {
        /// The parameter.
        field: &'static str,
        /// What it must look like.
        format: &'static str,
        /// What was given.
        value: String,
    },
    /// The range ends before it starts.
    #[error("`from` ({from}) is after `to` ({to})")]
    Reversed {
        /// Start.
        from: String,
        /// End.
        to: String,
    },
    /// More than five years.
    #[error("a report covers at most five years; {from} to {to} is longer")]
    TooLong {
        /// Start.
        from: String,
        /// End.
        to: String,
    },
}

/// A day, as a query parameter names it (`YYYY-MM-DD`).
pub fn parse_date(field: &'static str, value: &str) -> Result<NaiveDate, InvalidRange> {
    let malformed = || InvalidRange::Malformed {
        field,
        format: "a date as YYYY-MM-DD",
        value: value.chars().take(64).collect(),
    };
    if value.len() != 10 {
        return Err(malformed());
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| malformed())
}

/// A month, as a query parameter names it (`YYYY-MM`): its first day.
pub fn parse_month(field: &'static str, value: &str) -> Result<NaiveDate, InvalidRange> {
    let malformed = || InvalidRange::Malformed {
        field,
        format: "a month as YYYY-MM",
        value: value.chars().take(64).collect(),
    };
    if value.len() != 7 {
        return Err(malformed());
    }
    NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d").map_err(|_| malformed())
}

/// An inclusive range of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
}

impl DateRange {
    /// The range from `from` to `to`, both included, at most five years long.
    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<Self, InvalidRange> {
        if from > to {
            return Err(InvalidRange::Reversed {
                from: from.to_string(),
                to: to.to_string(),
            });
        }
        if to >= from + Months::new(MAX_MONTHS) {
            return Err(InvalidRange::TooLong {
                from: from.to_string(),
                to: to.to_string(),
            });
        }
        Ok(Self { from, to })
    }

    /// The day after the last one.
    fn end_exclusive(&self) -> NaiveDate {
        self.to + Days::new(1)
    }
}

/// How a range is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// Calendar days.
    Day,
    /// ISO weeks, Monday to Sunday.
    Week,
    /// Calendar months.
    Month,
}

impl Interval {
    /// The interval a query parameter names.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "day" => Some(Self::Day),
            "week" => Some(Self::Week),
            "month" => Some(Self::Month),
            _ => None,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    /// The first day of the period `day` falls in.
    fn start_of(self, day: NaiveDate) -> NaiveDate {
        match self {
            Self::Day => day,
            Self::Week => day - Days::new(u64::from(day.weekday().num_days_from_monday())),
            Self::Month => day.with_day(1).unwrap_or(day),
        }
    }

    /// The first day of the period after the one starting on `start`.
    fn next(self, start: NaiveDate) -> NaiveDate {
        match self {
            Self::Day => start + Days::new(1),
            Self::Week => start + Days::new(7),
            Self::Month => start + Months::new(1),
        }
    }

    /// The label of the period starting on `start`: `2026-01-15`, `2026-W03` or `2026-01`.
    fn label(self, start: NaiveDate) -> String {
        match self {
            Self::Day => start.format("%Y-%m-%d").to_string(),
            Self::Week => {
                let week = start.iso_week();
                format!("{}-W{:02}", week.year(), week.week())
            }
            Self::Month => start.format("%Y-%m").to_string(),
        }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One period of a report, clipped to the report's range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// `2026-01-15`, `2026-W03` or `2026-01`.
    pub label: String,
    /// Its first day within the range.
    pub first_day: NaiveDate,
    /// Its last day within the range.
    pub last_day: NaiveDate,
    /// The instant it starts at.
    pub starts: DateTime<Utc>,
    /// The instant the next one starts at.
    pub ends: DateTime<Utc>,
}

/// The periods that cut `range` by `interval` in `tz`, in order.
pub fn periods(range: DateRange, interval: Interval, tz: Tz) -> Vec<Period> {
    let end = range.end_exclusive();
    let mut out = Vec::new();
    let mut start = interval.start_of(range.from);
    while start < end {
        let next = interval.next(start);
        let first_day = start.max(range.from);
        let after = next.min(end);
        out.push(Period {
            label: interval.label(start),
            first_day,
            last_day: after.pred_opt().unwrap_or(after),
            starts: local_midnight(tz, first_day),
            ends: local_midnight(tz, after),
        });
        start = next;
    }
    out
}

/// The months from `from` to `to` (first days), both included, as periods.
pub fn months(from: NaiveDate, to: NaiveDate, tz: Tz) -> Result<Vec<Period>, InvalidRange> {
    let last = (to + Months::new(1)).pred_opt().unwrap_or(to);
    let range = DateRange::new(from, last)?;
    Ok(periods(range, Interval::Month, tz))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn weeks_are_iso_weeks_clipped_to_the_range() {
        let range = DateRange::new(day("2026-01-01"), day("2026-01-13")).unwrap();
        let weeks = periods(range, Interval::Week, Tz::UTC);
        let labels: Vec<_> = weeks
            .iter()
            .map(|p| (p.label.as_str(), p.first_day, p.last_day))
            .collect();
        assert_eq!(
            labels,
            [
                ("2026-W01", day("2026-01-01"), day("2026-01-04")),
                ("2026-W02", day("2026-01-05"), day("2026-01-11")),
                ("2026-W03", day("2026-01-12"), day("2026-01-13")),
            ]
        );
        // The ISO year of the last days of 2026 is 2026's week 53.
        let range = DateRange::new(day("2026-12-28"), day("2027-01-03")).unwrap();
        assert_eq!(periods(range, Interval::Week, Tz::UTC)[0].label, "2026-W53");
    }

    #[test]
    fn months_start_and_end_at_local_midnight_across_daylight_saving() {
        let range = DateRange::new(day("2026-03-01"), day("2026-04-30")).unwrap();
        let months = periods(range, Interval::Month, chrono_tz::Europe::Berlin);
        assert_eq!(months[0].label, "2026-03");
        assert_eq!(months[0].starts.to_rfc3339(), "2026-02-28T23:00:00+00:00");
        // April starts in summer time.
        assert_eq!(months[0].ends.to_rfc3339(), "2026-03-31T22:00:00+00:00");
        assert_eq!(months[1].starts, months[0].ends);
        assert_eq!(months[1].last_day, day("2026-04-30"));
    }

    #[test]
    fn ranges_that_are_reversed_too_long_or_malformed_are_refused() {
        assert!(matches!(
            DateRange::new(day("2026-02-01"), day("2026-01-31")),
            Err(InvalidRange::Reversed { .. })
        ));
        assert!(DateRange::new(day("2021-01-01"), day("2025-12-31")).is_ok());
        assert!(matches!(
            DateRange::new(day("2021-01-01"), day("2026-01-01")),
            Err(InvalidRange::TooLong { .. })
        ));
        for bad in [
            "2026-1-01",
            "2026-02-30",
            "yesterday",
            "2026-01-01T00:00",
            "",
        ] {
            assert!(parse_date("from", bad).is_err(), "{bad}");
        }
        assert_eq!(parse_month("from", "2026-02"), Ok(day("2026-02-01")));
        for bad in ["2026-13", "2026-2", "2026-02-01"] {
            assert!(parse_month("from", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_month_range_lists_each_month_once() {
        let list = months(day("2026-01-01"), day("2026-06-01"), Tz::UTC).unwrap();
        let labels: Vec<_> = list.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"
            ]
        );
    }
}
