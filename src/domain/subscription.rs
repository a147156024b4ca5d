//! Subscriptions as Stripe reports them, and the rules that decide which snapshot wins and whether
//! a subscription is in good standing.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{PastDueGrace, StripePriceId};

named_enum! {
    /// A subscription's status, as Stripe names it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum SubscriptionStatus ("subscription status") {
        /// The first payment has not succeeded yet.
        Incomplete = "incomplete",
        /// The first payment never succeeded; final.
        IncompleteExpired = "incomplete_expired",
        /// In a free trial.
        Trialing = "trialing",
        /// Paid up.
        Active = "active",
        /// A renewal payment failed; Stripe is retrying.
        PastDue = "past_due",
        /// Ended; final.
        Canceled = "canceled",
        /// Retries are exhausted and the subscription stays unpaid.
        Unpaid = "unpaid",
        /// The trial ended without a payment method.
        Paused = "paused",
    }
}

impl SubscriptionStatus {
    /// Whether nothing can bring the subscription back: Stripe never reactivates it.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Canceled | Self::IncompleteExpired)
    }
}

/// Which snapshot of a Stripe object is newer: Stripe's creation time of the event that carried
/// it (Unix seconds), ties broken by the event id so every instance decides the same way. A
/// reconcile reads the object at a known time and uses that, with the source `sync`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Unix seconds.
    pub created: i64,
    /// The event id, or `sync`.
    pub source: String,
}

impl Version {
    /// The version of a snapshot read by a reconcile at `at`. Ties with an event of the same
    /// second go to the reconcile, which read the object as Stripe has it.
    pub fn sync(at: DateTime<Utc>) -> Self {
        Self {
            created: at.timestamp(),
            source: "sync".into(),
        }
    }
}

/// Whether a snapshot with status `incoming` and version `incoming_version` replaces the stored
/// one. A terminal state is never left, whatever the times say; reaching one always wins, even
/// from an older event (Stripe's own timestamps can put a deletion before updates); otherwise the
/// newer version wins.
pub fn supersedes(
    stored: Option<(bool, &Version)>,
    incoming_terminal: bool,
    incoming_version: &Version,
) -> bool {
    match stored {
        None => true,
        Some((stored_terminal, stored_version)) => match (stored_terminal, incoming_terminal) {
            (true, false) => false,
            (false, true) => true,
            _ => incoming_version > stored_version,
        },
    }
}

/// When a subscription has been `past_due` since, after a snapshot with `incoming` status from
/// `incoming_created` (Unix seconds) was seen, whether or not it replaced the stored one. Past
/// due is counted from the first event that showed it so: an older past-due event arriving late
/// moves the start back, and leaving past due clears it.
pub fn past_due_since(
    stored_status: Option<SubscriptionStatus>,
    stored_since: Option<i64>,
    incoming: SubscriptionStatus,
    incoming_created: i64,
    replaces: bool,
) -> Option<i64> {
    let stored_past_due = stored_status == Some(SubscriptionStatus::PastDue);
    let incoming_past_due = incoming == SubscriptionStatus::PastDue;
    match (replaces, stored_past_due, incoming_past_due) {
        (true, true, true) | (false, true, true) => {
            Some(stored_since.map_or(incoming_created, |since| since.min(incoming_created)))
        }
        (true, false, true) => Some(incoming_created),
        (true, _, false) => None,
        (false, true, false) => stored_since,
        (false, false, _) => stored_since,
    }
}

/// One item of a subscription: a price and a quantity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionItem {
    /// Stripe's item id (`si_...`).
    pub id: String,
    /// Its price (or legacy plan) id.
    pub price: StripePriceId,
    /// How many.
    pub quantity: i64,
}

/// A subscription as the mirror holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// `sub_...`.
    pub id: String,
    /// The Stripe customer paying for it.
    pub customer_id: String,
    /// Stripe's status.
    pub status: SubscriptionStatus,
    /// Its items.
    pub items: Vec<SubscriptionItem>,
    /// Three-letter currency code, lower case, when known.
    pub currency: Option<String>,
    /// Start of the current billing period.
    pub current_period_start: Option<DateTime<Utc>>,
    /// End of the current billing period.
    pub current_period_end: Option<DateTime<Utc>>,
    /// Whether it ends when the current period does.
    pub cancel_at_period_end: bool,
    /// When it is scheduled to end, if it is.
    pub cancel_at: Option<DateTime<Utc>>,
    /// When it was canceled, if it was.
    pub canceled_at: Option<DateTime<Utc>>,
    /// When it ended, if it has.
    pub ended_at: Option<DateTime<Utc>>,
    /// When its trial ends, if it has one.
    pub trial_end: Option<DateTime<Utc>>,
    /// Since when it has been past due, if it is.
    pub past_due_since: Option<DateTime<Utc>>,
    /// The version of the snapshot it holds.
    pub version: Version,
}

/// Whether a subscription gives its entitlements now, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// It gives them; `until` is when that stops unless Stripe says otherwise (`None`: it
    /// renews).
    Good {
        /// When it lapses.
        until: Option<DateTime<Utc>>,
    },
    /// It gives nothing.
    Lapsed,
}

impl Subscription {
    /// Its standing at `now`: `active` and `trialing` give, `past_due` gives while `grace`
    /// covers it from the first event that showed it so, everything else gives nothing. A
    /// subscription set to cancel gives until its period ends (or the time it is set to end).
    pub fn standing(&self, now: DateTime<Utc>, grace: PastDueGrace) -> Standing {
        let scheduled_end = if self.cancel_at_period_end {
            self.current_period_end
        } else {
            self.cancel_at
        };
        let grace_end = match self.status {
            SubscriptionStatus::Active | SubscriptionStatus::Trialing => None,
            SubscriptionStatus::PastDue => {
                // A subscription whose start is unknown counts as past due from now on.
                let since = self.past_due_since.unwrap_or(now);
                if !grace.covers(since, now) {
                    return Standing::Lapsed;
                }
                Some(grace.ends(since))
            }
            _ => return Standing::Lapsed,
        };
        if scheduled_end.is_some_and(|end| end <= now) {
            return Standing::Lapsed;
        }
        let until = match (scheduled_end, grace_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Standing::Good { until }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn v(created: i64, source: &str) -> Version {
        Version {
            created,
            source: source.into(),
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    fn subscription(status: SubscriptionStatus) -> Subscription {
        Subscription {
            id: "sub_1".into(),
            customer_id: "cus_1".into(),
            status,
            items: vec![],
            currency: Some("eur".into()),
            current_period_start: Some(at(1_000)),
            current_period_end: Some(at(10_000)),
            cancel_at_period_end: false,
            cancel_at: None,
            canceled_at: None,
            ended_at: None,
            trial_end: None,
            past_due_since: None,
            version: v(1, "evt_1"),
        }
    }

    #[test]
    fn the_newer_snapshot_wins_and_ties_go_to_the_greater_event_id() {
        assert!(supersedes(None, false, &v(1, "evt_a")));
        assert!(supersedes(
            Some((false, &v(1, "evt_a"))),
            false,
            &v(2, "evt_a")
        ));
        assert!(!supersedes(
            Some((false, &v(2, "evt_a"))),
            false,
            &v(1, "evt_z")
        ));
        assert!(supersedes(
            Some((false, &v(2, "evt_a"))),
            false,
            &v(2, "evt_b")
        ));
        assert!(!supersedes(
            Some((false, &v(2, "evt_b"))),
            false,
            &v(2, "evt_a")
        ));
        assert!(!supersedes(
            Some((false, &v(2, "evt_b"))),
            false,
            &v(2, "evt_b")
        ));
        assert!(supersedes(
            Some((false, &v(2, "evt_z"))),
            false,
            &Version::sync(at(2))
        ));
    }

    #[test]
    fn terminal_states_are_reached_from_any_time_and_never_left() {
        assert!(supersedes(
            Some((false, &v(9, "evt_a"))),
            true,
            &v(1, "evt_a")
        ));
        assert!(!supersedes(
            Some((true, &v(1, "evt_a"))),
            false,
            &v(9, "evt_a")
        ));
        assert!(supersedes(
            Some((true, &v(1, "evt_a"))),
            true,
            &v(9, "evt_a")
        ));
        assert!(!supersedes(
            Some((true, &v(9, "evt_a"))),
            true,
            &v(1, "evt_a")
        ));
        assert!(SubscriptionStatus::Canceled.is_terminal());
        assert!(SubscriptionStatus::IncompleteExpired.is_terminal());
        assert!(!SubscriptionStatus::Unpaid.is_terminal());
    }

    #[test]
    fn past_due_counts_from_the_first_event_that_showed_it() {
        use SubscriptionStatus::{Active, PastDue};
        assert_eq!(
            past_due_since(Some(Active), None, PastDue, 50, true),
            Some(50)
        );
        assert_eq!(
            past_due_since(Some(PastDue), Some(50), PastDue, 70, true),
            Some(50)
        );
        // An older past-due event arriving late moves the start back.
        assert_eq!(
            past_due_since(Some(PastDue), Some(50), PastDue, 40, false),
            Some(40)
        );
        assert_eq!(
            past_due_since(Some(PastDue), Some(50), Active, 90, true),
            None
        );
        assert_eq!(past_due_since(Some(Active), None, PastDue, 10, false), None);
        assert_eq!(
            past_due_since(Some(PastDue), Some(50), Active, 10, false),
            Some(50)
        );
        assert_eq!(past_due_since(None, None, PastDue, 30, true), Some(30));
    }

    #[test]
    fn active_and_trialing_give_and_renew_and_other_statuses_give_nothing() {
        let grace = PastDueGrace::new(TimeDelta::days(7));
        for status in [SubscriptionStatus::Active, SubscriptionStatus::Trialing] {
            assert_eq!(
                subscription(status).standing(at(5_000), grace),
                Standing::Good { until: None }
            );
        }
        for status in [
            SubscriptionStatus::Canceled,
            SubscriptionStatus::Unpaid,
            SubscriptionStatus::Incomplete,
            SubscriptionStatus::IncompleteExpired,
            SubscriptionStatus::Paused,
        ] {
            assert_eq!(
                subscription(status).standing(at(5_000), grace),
                Standing::Lapsed
            );
        }
    }

    #[test]
    fn past_due_gives_for_the_grace_period_from_when_it_began() {
        let grace = PastDueGrace::new(TimeDelta::seconds(100));
        let mut sub = subscription(SubscriptionStatus::PastDue);
        sub.past_due_since = Some(at(5_000));
        assert_eq!(
            sub.standing(at(5_099), grace),
            Standing::Good {
                until: Some(at(5_100))
            }
        );
        assert_eq!(sub.standing(at(5_100), grace), Standing::Lapsed);
    }

    #[test]
    fn past_due_from_an_unknown_time_counts_from_now_and_an_endless_grace_never_panics() {
        let mut sub = subscription(SubscriptionStatus::PastDue);
        assert_eq!(
            sub.standing(at(5_000), PastDueGrace::new(TimeDelta::seconds(100))),
            Standing::Good {
                until: Some(at(5_100))
            }
        );
        assert_eq!(
            sub.standing(at(5_000), PastDueGrace::new(TimeDelta::zero())),
            Standing::Lapsed
        );
        let endless = PastDueGrace::new(TimeDelta::MAX);
        sub.past_due_since = Some(at(5_000));
        assert_eq!(
            sub.standing(at(5_000), endless),
            Standing::Good {
                until: Some(DateTime::<Utc>::MAX_UTC)
            }
        );
        sub.cancel_at = Some(at(8_000));
        assert_eq!(
            sub.standing(at(7_999), endless),
            Standing::Good {
                until: Some(at(8_000))
            }
        );
        assert_eq!(sub.standing(at(8_000), endless), Standing::Lapsed);
    }

    #[test]
    fn cancel_at_period_end_gives_until_the_period_ends() {
        let grace = PastDueGrace::new(TimeDelta::days(7));
        let mut sub = subscription(SubscriptionStatus::Active);
        sub.cancel_at_period_end = true;
        // Stripe's own placeholder: a cancel_at in the past is ignored when the period end rules.
        sub.cancel_at = Some(at(1));
        assert_eq!(
            sub.standing(at(9_999), grace),
            Standing::Good {
                until: Some(at(10_000))
            }
        );
        assert_eq!(sub.standing(at(10_000), grace), Standing::Lapsed);
        sub.cancel_at_period_end = false;
        sub.cancel_at = Some(at(8_000));
        assert_eq!(
            sub.standing(at(7_999), grace),
            Standing::Good {
                until: Some(at(8_000))
            }
        );
        assert_eq!(sub.standing(at(8_000), grace), Standing::Lapsed);
    }
}
