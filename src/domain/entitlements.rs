//! What a reader is entitled to: the entitlements of their subscriptions in good standing, through
//! the plans that own each item's price, plus their grants that have not expired, the licences
//! in force in which they hold a seat, and their seats in teams whose subscription is in good
//! standing.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::team::{is_over, seat_count};
use super::{
    Entitlement, Grant, Licence, PastDueGrace, Plan, PlanId, SeatRole, Standing, StripePriceId,
    Subscription, Teams,
};

/// Where an entitlement comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A Stripe subscription.
    Subscription,
    /// A grant.
    Grant,
    /// A seat of an institutional licence.
    Licence,
    /// A seat in a team, given by its owner.
    Seat,
    /// A grant that redeemed a gift subscription.
    Gift,
}

/// One reason a reader holds an entitlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    /// A subscription, a grant, a licence or a team seat.
    pub kind: SourceKind,
    /// Its id.
    pub id: String,
    /// When it stops giving the entitlement; `None` while it renews.
    pub lapses_at: Option<DateTime<Utc>>,
}

/// An entitlement a reader holds, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Held {
    /// The entitlement.
    pub name: Entitlement,
    /// When the last of its sources lapses; `None` while one of them renews.
    pub lapses_at: Option<DateTime<Utc>>,
    /// Every source that gives it.
    pub sources: Vec<Source>,
}

/// The plan each price belongs to, archived plans included: archiving stops new checkouts, not
/// what existing subscribers hold.
pub fn plans_by_price(plans: &[Plan]) -> HashMap<&StripePriceId, &Plan> {
    plans
        .iter()
        .flat_map(|plan| {
            plan.spec
                .stripe_prices
                .iter()
                .map(move |price| (price, plan))
        })
        .collect()
}

/// The plan that owns `price`, if any.
pub fn plan_of<'p>(
    by_price: &HashMap<&StripePriceId, &'p Plan>,
    price: &StripePriceId,
) -> Option<&'p PlanId> {
    by_price.get(price).map(|plan| &plan.id)
}

/// Everything a reader holds at `now`, by entitlement name.
pub fn held(
    subscriptions: &[Subscription],
    plans: &[Plan],
    grants: &[Grant],
    licences: &[Licence],
    teams: &Teams,
    now: DateTime<Utc>,
    past_due_grace: PastDueGrace,
) -> Vec<Held> {
    let by_price = plans_by_price(plans);
    let mut sources: BTreeMap<&Entitlement, Vec<Source>> = BTreeMap::new();
    // The plans of a subscription's items, and when it stops giving them; a team whose
    // ownership moved away gives its payer nothing by itself.
    let granted = |subscription: &Subscription, skip_seats: bool| {
        let Standing::Good { until } = subscription.standing(now, past_due_grace) else {
            return None;
        };
        let mut names: Vec<&Entitlement> = subscription
            .items
            .iter()
            .filter_map(|item| by_price.get(&item.price))
            .filter(|plan| !(skip_seats && plan.spec.seats))
            .flat_map(|plan| &plan.spec.entitlements)
            .collect();
        names.sort();
        names.dedup();
        Some((names, until))
    };
    for subscription in subscriptions {
        let ceded = teams.ceded.contains(&subscription.id);
        let Some((names, until)) = granted(subscription, ceded) else {
            continue;
        };
        for name in names {
            sources.entry(name).or_default().push(Source {
                kind: SourceKind::Subscription,
                id: subscription.id.clone(),
                lapses_at: until,
            });
        }
    }
    for seat in &teams.seats {
        let seats = seat_count(&seat.subscription, &by_price);
        if is_over(seat.role, seat.rank, seats) {
            continue;
        }
        let Some((names, until)) = granted(&seat.subscription, false) else {
            continue;
        };
        // Only what the plans sold by the seat grant: another item of the owner's subscription
        // is the owner's alone.
        let seated: Vec<&Entitlement> = seat
            .subscription
            .items
            .iter()
            .filter_map(|item| by_price.get(&item.price))
            .filter(|plan| plan.spec.seats)
            .flat_map(|plan| &plan.spec.entitlements)
            .collect();
        // The owner a team was moved to holds it as its subscriber; a member holds a seat.
        let kind = match seat.role {
            SeatRole::Owner => SourceKind::Subscription,
            SeatRole::Member => SourceKind::Seat,
        };
        for name in names.into_iter().filter(|name| seated.contains(name)) {
            sources.entry(name).or_default().push(Source {
                kind,
                id: seat.subscription.id.clone(),
                lapses_at: until,
            });
        }
    }
    for grant in grants.iter().filter(|grant| grant.is_active(now)) {
        for name in &grant.entitlements {
            sources.entry(name).or_default().push(Source {
                kind: if grant.gift_subscription.is_some() {
                    SourceKind::Gift
                } else {
                    SourceKind::Grant
                },
                id: grant.id.to_string(),
                lapses_at: Some(grant.expires_at),
            });
        }
    }
    for licence in licences.iter().filter(|licence| licence.is_active(now)) {
        for name in &licence.spec.entitlements {
            sources.entry(name).or_default().push(Source {
                kind: SourceKind::Licence,
                id: licence.id.to_string(),
                lapses_at: Some(licence.spec.expires_at),
            });
        }
    }
    sources
        .into_iter()
        .map(|(name, sources)| Held {
            name: name.clone(),
            lapses_at: if sources.iter().any(|s| s.lapses_at.is_none()) {
                None
            } else {
                sources.iter().filter_map(|s| s.lapses_at).max()
            },
            sources,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::domain::TeamSeat;
    use crate::domain::{
        GrantId, PlanSpec, ReaderId, SubscriptionItem, SubscriptionStatus, Version,
    };

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    fn plan(id: &str, prices: &[&str], ents: &[&str], archived: bool) -> Plan {
        Plan {
            id: PlanId::parse(id).unwrap(),
            spec: PlanSpec::new(
                id.into(),
                prices
                    .iter()
                    .map(|p| StripePriceId::parse(p).unwrap())
                    .collect(),
                ents.iter()
                    .map(|e| Entitlement::parse(e).unwrap())
                    .collect(),
                0,
                false,
            )
            .unwrap(),
            created_at: at(0),
            updated_at: at(0),
            archived_at: archived.then(|| at(1)),
        }
    }

    fn subscription(id: &str, status: SubscriptionStatus, prices: &[&str]) -> Subscription {
        Subscription {
            id: id.into(),
            customer_id: "cus_1".into(),
            status,
            items: prices
                .iter()
                .enumerate()
                .map(|(i, p)| SubscriptionItem {
                    id: format!("si_{i}"),
                    price: StripePriceId::parse(p).unwrap(),
                    quantity: 1,
                })
                .collect(),
            currency: None,
            current_period_start: Some(at(0)),
            current_period_end: Some(at(10_000)),
            cancel_at_period_end: false,
            cancel_at: None,
            canceled_at: None,
            ended_at: None,
            trial_end: None,
            past_due_since: None,
            version: Version {
                created: 1,
                source: "evt_1".into(),
            },
        }
    }

    fn grant(ents: &[&str], expires: i64) -> Grant {
        Grant {
            id: GrantId::generate(),
            reader_id: ReaderId::parse("r").unwrap(),
            entitlements: ents
                .iter()
                .map(|e| Entitlement::parse(e).unwrap())
                .collect(),
            expires_at: at(expires),
            reason: "gift".into(),
            created_at: at(0),
            created_by: None,
            gift_subscription: None,
        }
    }

    fn names(held: &[Held]) -> Vec<&str> {
        held.iter().map(|h| h.name.as_str()).collect()
    }

    #[test]
    fn a_base_plan_and_an_add_on_give_the_union_of_their_entitlements() {
        let plans = [
            plan(
                "all-access",
                &["price_base"],
                &["articles", "ad_free"],
                false,
            ),
            plan(
                "regional",
                &["price_addon"],
                &["newsletters:regional"],
                true,
            ),
        ];
        let subs = [subscription(
            "sub_1",
            SubscriptionStatus::Active,
            &["price_base", "price_addon", "price_foreign"],
        )];
        let held = held(
            &subs,
            &plans,
            &[],
            &[],
            &Teams::default(),
            at(5_000),
            PastDueGrace::new(TimeDelta::days(7)),
        );
        assert_eq!(
            names(&held),
            ["ad_free", "articles", "newsletters:regional"]
        );
        assert_eq!(held[1].sources[0].id, "sub_1");
        assert_eq!(held[1].lapses_at, None);
    }

    #[test]
    fn a_foreign_price_or_a_lapsed_subscription_gives_nothing() {
        let plans = [plan("all-access", &["price_base"], &["articles"], false)];
        let subs = [
            subscription("sub_1", SubscriptionStatus::Active, &["price_foreign"]),
            subscription("sub_2", SubscriptionStatus::Canceled, &["price_base"]),
            subscription("sub_3", SubscriptionStatus::Paused, &["price_base"]),
        ];
        assert!(
            held(
                &subs,
                &plans,
                &[],
                &[],
                &Teams::default(),
                at(5_000),
                PastDueGrace::new(TimeDelta::days(7))
            )
            .is_empty()
        );
    }

    #[test]
    fn grants_add_to_subscriptions_until_they_expire() {
        let plans = [plan("all-access", &["price_base"], &["articles"], false)];
        let mut sub = subscription("sub_1", SubscriptionStatus::Active, &["price_base"]);
        sub.cancel_at_period_end = true;
        let grants = [
            grant(&["articles", "reports"], 20_000),
            grant(&["ad_free"], 4_000),
        ];
        let held = held(
            &[sub],
            &plans,
            &grants,
            &[],
            &Teams::default(),
            at(5_000),
            PastDueGrace::new(TimeDelta::days(7)),
        );
        assert_eq!(names(&held), ["articles", "reports"]);
        assert_eq!(held[0].sources.len(), 2);
        // The later of the subscription's period end and the grant's expiry.
        assert_eq!(held[0].lapses_at, Some(at(20_000)));
        assert_eq!(held[1].sources[0].kind, SourceKind::Grant);
    }

    #[test]
    fn a_seat_gives_the_licences_entitlements_while_it_is_in_force() {
        use crate::domain::{IpRange, Licence, LicenceId, LicenceSpec};
        let licence = |from: i64, to: i64| Licence {
            id: LicenceId::generate(),
            spec: LicenceSpec {
                name: "University of Example".into(),
                entitlements: vec![Entitlement::parse("articles").unwrap()],
                ip_ranges: vec![IpRange::parse("10.0.0.0/8").unwrap()],
                email_domains: Vec::new(),
                seats: None,
                starts_at: at(from),
                expires_at: at(to),
            },
            members: 1,
            created_at: at(0),
        };
        let grace = PastDueGrace::new(TimeDelta::days(7));
        let current = [licence(1_000, 9_000)];
        let held_now = held(&[], &[], &[], &current, &Teams::default(), at(5_000), grace);
        assert_eq!(names(&held_now), ["articles"]);
        assert_eq!(held_now[0].sources[0].kind, SourceKind::Licence);
        assert_eq!(held_now[0].sources[0].id, current[0].id.as_str());
        assert_eq!(held_now[0].lapses_at, Some(at(9_000)));
        // Not yet in force, or over: nothing.
        assert!(
            held(
                &[],
                &[],
                &[],
                &[licence(6_000, 9_000)],
                &Teams::default(),
                at(5_000),
                grace
            )
            .is_empty()
        );
        assert!(held(&[], &[], &[], &current, &Teams::default(), at(9_000), grace).is_empty());
    }

    #[test]
    fn members_hold_what_a_seat_plan_grants_while_the_subscription_stands_and_a_seat_is_theirs() {
        let mut seated = plan("team", &["price_team"], &["articles"], false);
        seated.spec.seats = true;
        let plans = [
            seated,
            plan("extras", &["price_extra"], &["reports"], false),
        ];
        let grace = PastDueGrace::new(TimeDelta::days(7));
        let mut team = subscription(
            "sub_team",
            SubscriptionStatus::Active,
            &["price_team", "price_extra"],
        );
        team.items[0].quantity = 3;
        let seat = |role, rank, sub: &Subscription| TeamSeat {
            subscription: sub.clone(),
            owner_id: ReaderId::parse("owner").unwrap(),
            role,
            rank,
        };
        let holding = |seats: Vec<TeamSeat>| {
            held(
                &[],
                &plans,
                &[],
                &[],
                &Teams {
                    seats,
                    ceded: Vec::new(),
                },
                at(5_000),
                grace,
            )
        };
        // The second member has the third seat; only the seat plan's entitlement, as a seat.
        let member = holding(vec![seat(SeatRole::Member, 1, &team)]);
        assert_eq!(names(&member), ["articles"]);
        assert_eq!(member[0].sources[0].kind, SourceKind::Seat);
        assert_eq!(member[0].sources[0].id, "sub_team");
        // The third would need a fourth seat.
        assert!(holding(vec![seat(SeatRole::Member, 2, &team)]).is_empty());
        // An owner the team was moved to holds it as its subscriber.
        let owner = holding(vec![seat(SeatRole::Owner, 0, &team)]);
        assert_eq!(owner[0].sources[0].kind, SourceKind::Subscription);
        // A canceled subscription seats nobody.
        let mut canceled = team.clone();
        canceled.status = SubscriptionStatus::Canceled;
        assert!(holding(vec![seat(SeatRole::Member, 0, &canceled)]).is_empty());
        // The payer whose team moved away keeps the other items, not the seats.
        let payer = held(
            std::slice::from_ref(&team),
            &plans,
            &[],
            &[],
            &Teams {
                seats: Vec::new(),
                ceded: vec!["sub_team".into()],
            },
            at(5_000),
            grace,
        );
        assert_eq!(names(&payer), ["reports"]);
    }
}
