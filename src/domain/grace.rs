//! The past-due grace period: how long a `past_due` subscription still counts, from the first
//! event that showed it past due. Entitlements and the finance reports both follow this one rule.

use chrono::{DateTime, TimeDelta, Utc};

/// How long a subscription keeps counting after it went `past_due`: it counts at `at` when `at`
/// is before `since` + the grace. Never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PastDueGrace(TimeDelta);

const NANOS_PER_SECOND: i128 = 1_000_000_000;

impl PastDueGrace {
    /// A grace of `grace`; a negative one is no grace at all.
    pub fn new(grace: TimeDelta) -> Self {
        Self(grace.max(TimeDelta::zero()))
    }

    /// When the grace of a subscription past due since `since` ends: `since` + the grace, or the
    /// latest instant [`DateTime`] can hold when that is later.
    pub fn ends(self, since: DateTime<Utc>) -> DateTime<Utc> {
        since
            .checked_add_signed(self.0)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Whether a subscription past due since `since` still counts at `at`: less than the grace
    /// has passed since then (or `at` is before `since`). Exact for every pair of instants.
    pub fn covers(self, since: DateTime<Utc>, at: DateTime<Utc>) -> bool {
        // The distance between any two instants fits a TimeDelta, so this cannot overflow.
        at.signed_duration_since(since) < self.0
    }

    /// [`PastDueGrace::covers`] for instants given as Unix seconds, as the finance reports hold
    /// them. Exact for every pair of `i64`, in or out of [`DateTime`]'s range.
    pub fn covers_unix(self, since: i64, at: i64) -> bool {
        (i128::from(at) - i128::from(since)) * NANOS_PER_SECOND < self.nanoseconds()
    }

    fn nanoseconds(self) -> i128 {
        i128::from(self.0.num_seconds()) * NANOS_PER_SECOND + i128::from(self.0.subsec_nanos())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn it_covers_up_to_but_not_including_since_plus_the_grace() {
        let grace = PastDueGrace::new(TimeDelta::seconds(100));
        assert_eq!(grace.ends(at(5_000)), at(5_100));
        assert!(grace.covers(at(5_000), at(5_000)));
        assert!(grace.covers(at(5_000), at(5_099)));
        assert!(!grace.covers(at(5_000), at(5_100)));
        assert!(!grace.covers(at(5_000), at(9_000)));
        // Past due from a time still to come (a clock behind Stripe's): covered.
        assert!(grace.covers(at(5_000), at(4_000)));
        assert!(grace.covers_unix(5_000, 5_099));
        assert!(!grace.covers_unix(5_000, 5_100));
        assert!(grace.covers_unix(5_000, 4_000));
    }

    #[test]
    fn a_zero_grace_covers_nothing_from_since_on_and_a_negative_one_is_zero() {
        let none = PastDueGrace::new(TimeDelta::zero());
        assert!(!none.covers(at(5_000), at(5_000)));
        assert!(!none.covers_unix(5_000, 5_000));
        assert_eq!(none.ends(at(5_000)), at(5_000));
        assert_eq!(PastDueGrace::new(TimeDelta::seconds(-5)), none);
        assert_eq!(PastDueGrace::new(TimeDelta::MIN), none);
    }

    #[test]
    fn a_sub_second_grace_counts_its_fraction() {
        let grace = PastDueGrace::new(TimeDelta::milliseconds(1_500));
        assert!(grace.covers_unix(10, 11));
        assert!(!grace.covers_unix(10, 12));
        assert!(grace.covers(at(10), at(11)));
        assert!(!grace.covers(at(10), at(12)));
    }

    #[test]
    fn the_end_saturates_at_the_last_instant_instead_of_panicking() {
        let longest = PastDueGrace::new(TimeDelta::MAX);
        let last = DateTime::<Utc>::MAX_UTC;
        let first = DateTime::<Utc>::MIN_UTC;
        assert_eq!(longest.ends(at(0)), last);
        assert_eq!(longest.ends(last), last);
        assert_eq!(longest.ends(first), last);
        assert_eq!(
            PastDueGrace::new(TimeDelta::days(7)).ends(last - TimeDelta::days(1)),
            last
        );
        assert_eq!(PastDueGrace::new(TimeDelta::zero()).ends(last), last);
        assert_eq!(PastDueGrace::new(TimeDelta::zero()).ends(first), first);
        // Covering is exact even where the end saturates.
        assert!(longest.covers(first, last));
        assert!(longest.covers(last, last));
        assert!(!PastDueGrace::new(TimeDelta::days(7)).covers(first, last));
    }

    #[test]
    fn unix_seconds_out_of_any_calendar_range_neither_panic_nor_wrap() {
        let longest = PastDueGrace::new(TimeDelta::MAX);
        let week = PastDueGrace::new(TimeDelta::days(7));
        assert!(!longest.covers_unix(i64::MIN, i64::MAX));
        assert!(longest.covers_unix(i64::MAX, i64::MIN));
        assert!(longest.covers_unix(i64::MAX, i64::MAX));
        assert!(!week.covers_unix(i64::MIN, 0));
        assert!(week.covers_unix(i64::MAX, 0));
        assert!(week.covers_unix(i64::MAX - 10, i64::MAX));
        assert!(!PastDueGrace::new(TimeDelta::zero()).covers_unix(i64::MIN, i64::MIN));
    }

    proptest! {
        #[test]
        fn instants_and_unix_seconds_agree_and_match_the_end(
            since in -8_000_000_000_000_i64..8_000_000_000_000,
            at_secs in -8_000_000_000_000_i64..8_000_000_000_000,
            grace_ms in 0_i64..=i64::MAX,
        ) {
            let grace = PastDueGrace::new(TimeDelta::milliseconds(grace_ms));
            let (since_at, at_at) = (at(since), at(at_secs));
            let covered = grace.covers(since_at, at_at);
            prop_assert_eq!(covered, grace.covers_unix(since, at_secs));
            if grace.ends(since_at) < DateTime::<Utc>::MAX_UTC {
                prop_assert_eq!(covered, at_at < grace.ends(since_at));
            }
        }
    }
}
