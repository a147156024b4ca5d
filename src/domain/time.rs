//! How the API writes instants.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

/// An instant the way the API shows every instant: RFC 3339, UTC, whole seconds.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A span of time for people: whole days, hours or minutes when it is one, else seconds.
pub fn span(span: TimeDelta) -> String {
    let secs = span.num_seconds();
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match secs {
        s if s > 0 && s % 86_400 == 0 => plural(s / 86_400, "day"),
        s if s > 0 && s % 3_600 == 0 => plural(s / 3_600, "hour"),
        s if s > 0 && s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_written_in_their_largest_whole_unit() {
        assert_eq!(span(TimeDelta::days(5)), "5 days");
        assert_eq!(span(TimeDelta::hours(1)), "1 hour");
        assert_eq!(span(TimeDelta::minutes(90)), "90 minutes");
        assert_eq!(span(TimeDelta::seconds(61)), "61 seconds");
    }

    #[test]
    fn instants_are_written_in_utc_to_the_second() {
        let at = DateTime::from_timestamp(1_767_225_600, 999_000_000).unwrap();
        assert_eq!(rfc3339(at), "2026-01-01T00:00:00Z");
    }
}
