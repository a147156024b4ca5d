//! How the API writes instants.

use chrono::{DateTime, SecondsFormat, Utc};

/// An instant the way the API shows every instant: RFC 3339, UTC, whole seconds.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_written_in_utc_to_the_second() {
        let at = DateTime::from_timestamp(1_767_225_600, 999_000_000).unwrap();
        assert_eq!(rfc3339(at), "2026-01-01T00:00:00Z");
    }
}
