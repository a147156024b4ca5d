//! Bounded storage: what the storage purge removes once it no longer matters, and the instant
//! before which a purge at a given moment removes each kind of record.

use chrono::{DateTime, TimeDelta, Utc};

use super::MeterPolicy;

named_enum! {
    /// A kind of record the storage purge removes.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Purge ("purge") {
        /// Meter unlocks older than every meter window, less a margin.
        MeterUnlocks = "meter_unlocks",
        /// The raw bodies of applied and skipped Stripe events (the events stay).
        WebhookBodies = "webhook_bodies",
        /// Outbound deliveries that were delivered.
        DeliveredDeliveries = "delivered_deliveries",
        /// Outbound deliveries given up as failed.
        FailedDeliveries = "failed_deliveries",
        /// Idempotency keys past their replay window.
        IdempotencyKeys = "idempotency_keys",
        /// Dashboard sessions past their end.
        DashboardSessions = "dashboard_sessions",
        /// `reader.erased` events none of whose deliveries is pending, with their deliveries:
        /// they name the reader erased.
        ErasureNotices = "erasure_notices",
    }
}

/// How long records are kept once they no longer matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Every audience's meter rule: an unlock stays while any of their windows can count it.
    pub meters: [MeterPolicy; 2],
    /// How long beyond the start of the longest window unlocks are kept still: for instances
    /// whose clock is behind, and for a period lengthened a little.
    pub unlock_margin: TimeDelta,
    /// How long after receipt the body of an applied or skipped Stripe event is kept.
    pub webhook_body: TimeDelta,
    /// How long after its last attempt a delivered delivery is kept.
    pub delivered: TimeDelta,
    /// How long after its last attempt a failed delivery is kept.
    pub failed_delivery: TimeDelta,
}

impl Retention {
    /// The instant before which a purge at `now` removes records of kind `what`: unlocks made,
    /// events received and deliveries last attempted before it; idempotency keys and sessions
    /// that end at or before it.
    pub fn cutoff(&self, what: Purge, now: DateTime<Utc>) -> DateTime<Utc> {
        match what {
            Purge::MeterUnlocks => {
                let earliest = self
                    .meters
                    .iter()
                    .map(|policy| policy.window(now).counts_from)
                    .min()
                    .unwrap_or(now);
                before(earliest, self.unlock_margin)
            }
            Purge::WebhookBodies => before(now, self.webhook_body),
            Purge::DeliveredDeliveries => before(now, self.delivered),
            Purge::FailedDeliveries => before(now, self.failed_delivery),
            Purge::IdempotencyKeys | Purge::DashboardSessions | Purge::ErasureNotices => now,
        }
    }
}

/// `span` before `at`, or the earliest instant there is.
fn before(at: DateTime<Utc>, span: TimeDelta) -> DateTime<Utc> {
    at.checked_sub_signed(span)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use chrono_tz::Tz;

    use super::*;
    use crate::domain::Period;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn retention(registered: Period, anonymous: Period, tz: Tz) -> Retention {
        let policy = |period| MeterPolicy {
            limit: 3,
            period,
            time_zone: tz,
        };
        Retention {
            meters: [policy(registered), policy(anonymous)],
            unlock_margin: TimeDelta::days(7),
            webhook_body: TimeDelta::days(30),
            delivered: TimeDelta::days(30),
            failed_delivery: TimeDelta::days(90),
        }
    }

    #[test]
    fn calendar_month_meters_keep_unlocks_from_a_margin_before_the_month_began() {
        let keep = retention(Period::CalendarMonth, Period::CalendarMonth, Tz::UTC);
        assert_eq!(
            keep.cutoff(Purge::MeterUnlocks, at("2026-11-23T19:12:00Z")),
            at("2026-10-25T00:00:00Z")
        );
    }

    #[test]
    fn the_month_is_cut_in_the_meters_time_zone() {
        let keep = retention(
            Period::CalendarMonth,
            Period::CalendarMonth,
            Tz::Europe__Berlin,
        );
        assert_eq!(
            keep.cutoff(Purge::MeterUnlocks, at("2026-11-23T19:12:00Z")),
            at("2026-10-24T23:00:00Z")
        );
    }

    #[test]
    fn the_longest_window_of_either_audience_decides() {
        let now = at("2026-11-23T19:12:00Z");
        let rolling = retention(Period::CalendarMonth, Period::RollingDays(90), Tz::UTC);
        let window_start = now - TimeDelta::days(90) + TimeDelta::milliseconds(1);
        assert_eq!(
            rolling.cutoff(Purge::MeterUnlocks, now),
            window_start - TimeDelta::days(7)
        );
        let short = retention(Period::RollingDays(7), Period::CalendarMonth, Tz::UTC);
        assert_eq!(
            short.cutoff(Purge::MeterUnlocks, now),
            at("2026-10-25T00:00:00Z")
        );
    }

    #[test]
    fn bodies_and_deliveries_are_kept_for_their_own_spans_and_expired_records_until_now() {
        let keep = retention(Period::CalendarMonth, Period::CalendarMonth, Tz::UTC);
        let now = at("2026-11-23T19:12:00Z");
        assert_eq!(
            keep.cutoff(Purge::WebhookBodies, now),
            at("2026-10-24T19:12:00Z")
        );
        assert_eq!(
            keep.cutoff(Purge::DeliveredDeliveries, now),
            at("2026-10-24T19:12:00Z")
        );
        assert_eq!(
            keep.cutoff(Purge::FailedDeliveries, now),
            at("2026-08-25T19:12:00Z")
        );
        assert_eq!(keep.cutoff(Purge::IdempotencyKeys, now), now);
        assert_eq!(keep.cutoff(Purge::DashboardSessions, now), now);
    }

    #[test]
    fn a_span_longer_than_time_itself_keeps_everything() {
        let mut keep = retention(Period::CalendarMonth, Period::CalendarMonth, Tz::UTC);
        keep.webhook_body = TimeDelta::MAX;
        assert_eq!(
            keep.cutoff(Purge::WebhookBodies, at("2026-11-23T19:12:00Z")),
            DateTime::<Utc>::MIN_UTC
        );
    }
}
