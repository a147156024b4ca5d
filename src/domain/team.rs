//! Team seats: a subscription to a plan sold by the seat (its item's quantity is the number of
//! seats), owned by one reader, who holds the first seat and gives the others to members.
//!
//! When Stripe lowers the quantity below the members, nobody is removed: the members added last
//! are "over" and hold nothing until seats come back or others leave. Being over is computed
//! when it is read, from the order members were added in, so a quantity change needs no write.

use std::collections::HashMap;

use super::{Plan, ReaderId, StripePriceId, Subscription};

named_enum! {
    /// What a reader is in a team.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum SeatRole ("seat role") {
        /// Holds the first seat and gives the others.
        Owner = "owner",
        /// Was given a seat.
        Member = "member",
    }
}

/// A reader's place in a team whose subscription is not billed to them: a member's seat, or the
/// ownership of a team that was moved to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamSeat {
    /// The team's subscription.
    pub subscription: Subscription,
    /// Who owns the team now.
    pub owner_id: ReaderId,
    /// Owner or member.
    pub role: SeatRole,
    /// How many members were added before this one (0 for the owner).
    pub rank: u32,
}

/// A reader's teams, as [`held`](super::entitlements::held) needs them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Teams {
    /// Seats in teams billed to others.
    pub seats: Vec<TeamSeat>,
    /// The reader's own subscriptions whose team was moved to another owner: they give the
    /// reader nothing by themselves any more (a member's seat may).
    pub ceded: Vec<String>,
}

/// How many seats `subscription` has: the quantity of its items whose price belongs to a plan
/// sold by the seat; 0 when none does.
pub fn seat_count(subscription: &Subscription, by_price: &HashMap<&StripePriceId, &Plan>) -> i64 {
    subscription
        .items
        .iter()
        .filter(|item| {
            by_price
                .get(&item.price)
                .is_some_and(|plan| plan.spec.seats)
        })
        .map(|item| item.quantity.max(0))
        .sum()
}

/// Whether the member added after `rank` others has no seat among `seats`: the owner holds the
/// first one, members the others in the order they were added.
pub fn is_over(role: SeatRole, rank: u32, seats: i64) -> bool {
    match role {
        SeatRole::Owner => false,
        SeatRole::Member => i64::from(rank) + 2 > seats,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_holds_the_first_seat_and_members_the_rest_in_order() {
        // Three seats: the owner and the first two members.
        assert!(!is_over(SeatRole::Owner, 0, 3));
        assert!(!is_over(SeatRole::Member, 0, 3));
        assert!(!is_over(SeatRole::Member, 1, 3));
        assert!(is_over(SeatRole::Member, 2, 3));
        // Stripe lowered the quantity to one: only the owner.
        assert!(!is_over(SeatRole::Owner, 0, 1));
        assert!(is_over(SeatRole::Member, 0, 1));
        // Even with no seats at all, the owner is never "over": their subscription decides.
        assert!(!is_over(SeatRole::Owner, 0, 0));
    }
}
