//! The meter: how many free articles a reader (or an anonymous device) may unlock in a period,
//! and the period arithmetic, exact across month ends and daylight-saving changes.

use std::fmt;
use std::str::FromStr;

use chrono::offset::LocalResult;
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use super::ReaderId;

/// Whether `s` is an article id: 1 to 256 characters, none of them a control character (which
/// no URL slug or CMS id holds, and which some databases refuse to store).
fn is_article_id(s: &str) -> bool {
    !s.is_empty() && s.chars().count() <= 256 && !s.chars().any(char::is_control)
}

validated_string!(
    /// An article, by the publisher's own opaque id: `2026/11/budget-analysis`, `a:83121`.
    ArticleId,
    is_article_id,
    "1 to 256 characters, none of them a control character"
);

named_enum! {
    /// Whose meter: a registered reader's, or an anonymous device's.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Audience ("audience") {
        /// A reader known by the publisher's account id.
        Registered = "registered",
        /// A visitor known only by a device id.
        Anonymous = "anonymous",
    }
}

/// The meter a count belongs to: a reader's, or a device's (device ids follow the reader id rule).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MeterSubject {
    /// Registered or anonymous.
    pub audience: Audience,
    /// The reader or device id.
    pub id: ReaderId,
}

impl MeterSubject {
    /// A registered reader's meter.
    pub fn reader(id: ReaderId) -> Self {
        Self {
            audience: Audience::Registered,
            id,
        }
    }

    /// An anonymous device's meter.
    pub fn device(id: ReaderId) -> Self {
        Self {
            audience: Audience::Anonymous,
            id,
        }
    }
}

/// The window a meter counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// The calendar month, in the configured time zone.
    CalendarMonth,
    /// A sliding window: an unlock counts while it is younger than this many days.
    RollingDays(u32),
}

/// Why a period setting cannot be read.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{0}` is not a period: expected `calendar_month` or `rolling_days:N` with N from 1 to 366"
)]
pub struct InvalidPeriod(String);

impl FromStr for Period {
    type Err = InvalidPeriod;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "calendar_month" {
            return Ok(Self::CalendarMonth);
        }
        s.strip_prefix("rolling_days:")
            .and_then(|n| n.trim().parse::<u32>().ok())
            .filter(|n| (1..=366).contains(n))
            .map(Self::RollingDays)
            .ok_or_else(|| InvalidPeriod(s.to_owned()))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CalendarMonth => f.write_str("calendar_month"),
            Self::RollingDays(days) => write!(f, "rolling_days:{days}"),
        }
    }
}

impl serde::Serialize for Period {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Period {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The meter rule of one audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeterPolicy {
    /// Free articles per period; 0 means none (the site asks the visitor to register).
    pub limit: u32,
    /// The window they are counted in.
    pub period: Period,
    /// The time zone calendar months are counted in.
    pub time_zone: Tz,
}

/// The span of time a meter counts at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Unlocks at or after this instant count (calendar: the month's first instant; rolling:
    /// the instant N days ago, exclusive, stored as the next millisecond).
    pub counts_from: DateTime<Utc>,
    /// The instant the window is evaluated at; unlocks after it (a clock set back) do not count.
    pub now: DateTime<Utc>,
    /// When the period began, as shown: the month's first instant, or exactly N days ago.
    pub period_start: DateTime<Utc>,
    /// When a calendar period ends; a rolling window has no end of its own.
    pub period_end: Option<DateTime<Utc>>,
}

/// What the store counted in a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Distinct articles unlocked in the window.
    pub used: u32,
    /// When the oldest of them was unlocked.
    pub oldest: Option<DateTime<Utc>>,
    /// Whether the article asked about is one of them.
    pub has_article: bool,
}

/// A meter as readers and sites see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeterState {
    /// Articles unlocked in the period.
    pub used: u32,
    /// Free articles per period.
    pub limit: u32,
    /// How many more may be unlocked now.
    pub remaining: u32,
    /// When the period began.
    pub period_start: DateTime<Utc>,
    /// When a slot frees: the next month's first instant, or when the oldest counted unlock
    /// ages out of a rolling window; `None` for a rolling meter with nothing counted.
    pub resets_at: Option<DateTime<Utc>>,
}

impl MeterPolicy {
    /// The window this policy counts in at `now`.
    pub fn window(&self, now: DateTime<Utc>) -> Window {
        match self.period {
            Period::CalendarMonth => {
                let local = now.with_timezone(&self.time_zone).date_naive();
                let first = NaiveDate::from_ymd_opt(local.year(), local.month(), 1);
                let next = first.and_then(|d| d.checked_add_months(chrono::Months::new(1)));
                let start = first.map(|d| local_midnight(self.time_zone, d));
                let end = next.map(|d| local_midnight(self.time_zone, d));
                let start = start.unwrap_or(DateTime::<Utc>::MIN_UTC);
                Window {
                    counts_from: start,
                    now,
                    period_start: start,
                    period_end: end,
                }
            }
            Period::RollingDays(days) => {
                let start = now - TimeDelta::days(i64::from(days));
                Window {
                    counts_from: start + TimeDelta::milliseconds(1),
                    now,
                    period_start: start,
                    period_end: None,
                }
            }
        }
    }

    /// The meter shown for `usage` counted in `window`.
    pub fn state(&self, window: &Window, usage: &Usage) -> MeterState {
        let resets_at = match self.period {
            Period::CalendarMonth => window.period_end,
            Period::RollingDays(days) => usage.oldest.map(|t| t + TimeDelta::days(i64::from(days))),
        };
        MeterState {
            used: usage.used,
            limit: self.limit,
            remaining: self.limit.saturating_sub(usage.used),
            period_start: window.period_start,
            resets_at,
        }
    }
}

/// The first instant of `date` in `tz`. Where midnight falls in a daylight-saving gap (clocks
/// that jump from 23:59:59 to 01:00), the day starts when the gap ends; where it happens twice,
/// at the first.
pub(crate) fn local_midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_time(NaiveTime::MIN);
    match tz.from_local_datetime(&midnight) {
        LocalResult::Single(at) => at.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // The offset in force before the gap turns the missing local midnight into the
            // instant the clocks jumped.
            let before = tz
                .offset_from_utc_datetime(&(midnight - TimeDelta::days(1)))
                .fix();
            let utc = midnight - TimeDelta::seconds(i64::from(before.local_minus_utc()));
            Utc.from_utc_datetime(&utc)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn policy(period: Period, tz: Tz) -> MeterPolicy {
        MeterPolicy {
            limit: 3,
            period,
            time_zone: tz,
        }
    }

    #[test]
    fn article_ids_are_one_to_256_characters_without_control_characters() {
        assert!(ArticleId::parse("2026/11/budget-analysis").is_some());
        assert!(ArticleId::parse(&"é".repeat(256)).is_some());
        assert!(ArticleId::parse(&"é".repeat(257)).is_none());
        assert!(ArticleId::parse("").is_none());
        assert!(ArticleId::parse("a\u{0}b").is_none());
        assert!(ArticleId::parse("line\nbreak").is_none());
    }

    #[test]
    fn periods_read_and_print_one_syntax() {
        assert_eq!(
            "calendar_month".parse::<Period>().ok(),
            Some(Period::CalendarMonth)
        );
        assert_eq!(
            "rolling_days:30".parse::<Period>().ok(),
            Some(Period::RollingDays(30))
        );
        for bad in [
            "monthly",
            "rolling_days:0",
            "rolling_days:",
            "rolling_days:367",
            "",
        ] {
            assert!(bad.parse::<Period>().is_err(), "{bad}");
        }
        assert_eq!(Period::RollingDays(7).to_string(), "rolling_days:7");
    }

    #[test]
    fn a_utc_calendar_month_runs_from_its_first_instant_to_the_next_months() {
        let window = policy(Period::CalendarMonth, Tz::UTC).window(at("2026-12-31T23:59:59Z"));
        assert_eq!(window.period_start, at("2026-12-01T00:00:00Z"));
        assert_eq!(window.period_end, Some(at("2027-01-01T00:00:00Z")));
        let window = policy(Period::CalendarMonth, Tz::UTC).window(at("2027-01-01T00:00:00Z"));
        assert_eq!(window.period_start, at("2027-01-01T00:00:00Z"));
    }

    #[test]
    fn a_calendar_month_follows_the_local_month_of_a_non_utc_zone() {
        let berlin = policy(Period::CalendarMonth, chrono_tz::Europe::Berlin);
        // 23:30 UTC on 31 October is already 1 November in Berlin (UTC+1 after the change).
        let window = berlin.window(at("2026-10-31T23:30:00Z"));
        assert_eq!(window.period_start, at("2026-10-31T23:00:00Z"));
        assert_eq!(window.period_end, Some(at("2026-11-30T23:00:00Z")));
        // October began in summer time (UTC+2) and ends in winter time: 31 days and one hour.
        let window = berlin.window(at("2026-10-31T22:30:00Z"));
        assert_eq!(window.period_start, at("2026-09-30T22:00:00Z"));
        assert_eq!(window.period_end, Some(at("2026-10-31T23:00:00Z")));
        // March changes to summer time: it ends an hour earlier in UTC than it began.
        let window = berlin.window(at("2026-03-29T12:00:00Z"));
        assert_eq!(window.period_start, at("2026-02-28T23:00:00Z"));
        assert_eq!(window.period_end, Some(at("2026-03-31T22:00:00Z")));
    }

    #[test]
    fn a_month_whose_midnight_falls_in_a_gap_starts_when_the_clocks_jump() {
        // Chile moves from UTC-4 to UTC-3 at local midnight on the first Sunday of September;
        // in 2024 that was 1 September 00:00, which never happened there.
        let santiago = policy(Period::CalendarMonth, chrono_tz::America::Santiago);
        let window = santiago.window(at("2024-09-10T12:00:00Z"));
        assert_eq!(window.period_start, at("2024-09-01T04:00:00Z"));
        assert_eq!(window.period_end, Some(at("2024-10-01T03:00:00Z")));
    }

    #[test]
    fn a_rolling_window_counts_unlocks_younger_than_n_days_and_resets_when_the_oldest_ages_out() {
        let rolling = policy(Period::RollingDays(30), Tz::UTC);
        let now = at("2026-03-29T01:30:00Z");
        let window = rolling.window(now);
        assert_eq!(window.period_start, at("2026-02-27T01:30:00Z"));
        assert_eq!(window.counts_from, at("2026-02-27T01:30:00.001Z"));
        assert_eq!(window.period_end, None);
        let usage = Usage {
            used: 3,
            oldest: Some(at("2026-03-01T10:00:00Z")),
            has_article: false,
        };
        let state = rolling.state(&window, &usage);
        assert_eq!(state.remaining, 0);
        assert_eq!(state.resets_at, Some(at("2026-03-31T10:00:00Z")));
        let empty = rolling.state(&window, &Usage::default());
        assert_eq!((empty.remaining, empty.resets_at), (3, None));
    }

    #[test]
    fn remaining_never_goes_below_zero_when_the_limit_was_lowered() {
        let policy = MeterPolicy {
            limit: 1,
            ..policy(Period::CalendarMonth, Tz::UTC)
        };
        let window = policy.window(at("2026-11-24T10:00:00Z"));
        let usage = Usage {
            used: 3,
            ..Usage::default()
        };
        assert_eq!(policy.state(&window, &usage).remaining, 0);
    }
}
