//! Team seats: the owner of a subscription to a plan sold by the seat gives its other seats to
//! members, takes them back, and hands the team on. Each write empties the cached entitlements
//! of the readers it touches.

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::domain::entitlements::plans_by_price;
use crate::domain::team::{is_over, seat_count};
use crate::domain::{ReaderId, SeatRole, Standing, Subscription};
use crate::services::ServiceError;
use crate::services::access::{AccessService, Holdings};
use crate::store::{Seating, Store};

/// A seat as the owner sees it.
#[derive(Debug, Clone)]
pub struct SeatView {
    /// Who holds it.
    pub reader_id: ReaderId,
    /// Owner or member.
    pub role: SeatRole,
    /// When a member was seated; `None` for the owner.
    pub added_at: Option<DateTime<Utc>>,
    /// Whether the seats ran out before this member: they hold nothing until seats free up.
    pub over: bool,
}

/// A team: its subscription, its seats and who holds them, the owner first.
#[derive(Debug, Clone)]
pub struct Team {
    /// The subscription sold by the seat.
    pub subscription_id: String,
    /// Its standing now: members hold the plan's entitlements only while it is good.
    pub in_good_standing: bool,
    /// How many seats it has (the item's quantity).
    pub seats: i64,
    /// Everyone seated, owner first, members in the order they were added.
    pub members: Vec<SeatView>,
}

/// What adding a member came to.
#[derive(Debug, Clone)]
pub struct Added {
    /// The team afterwards.
    pub team: Team,
    /// Whether the reader was seated now, rather than before.
    pub new: bool,
}

/// The team operations.
pub struct Teams<'a> {
    /// Where teams are kept.
    pub store: &'a dyn Store,
    /// What time it is.
    pub clock: &'a dyn Clock,
    /// What readers hold.
    pub access: &'a AccessService,
}

/// The subscription an owner's team is for, and its seats.
struct Owned {
    subscription: Subscription,
    seats: i64,
    good: bool,
}

impl Teams<'_> {
    /// The team `owner` owns.
    pub async fn team(&self, owner: &ReaderId) -> Result<Team, ServiceError> {
        let owned = self.owned(owner).await?;
        self.view(owner, &owned).await
    }

    /// Gives `reader` a seat in `owner`'s team; 409 `no_seats_left` when every seat is held.
    pub async fn add(&self, owner: &ReaderId, reader: &ReaderId) -> Result<Added, ServiceError> {
        if owner == reader {
            return Err(ServiceError::invalid(
                "owner_holds_a_seat",
                format!("reader `{owner}` owns the team and holds its first seat already"),
            ));
        }
        let owned = self.owned_in_good_standing(owner).await?;
        let seating = self
            .store
            .seat_member(
                &owned.subscription.id,
                owner,
                reader,
                owned.seats,
                self.clock.now(),
            )
            .await?;
        let new = match seating {
            Seating::Seated => true,
            Seating::AlreadyMember => false,
            Seating::NoSeatsLeft => return Err(no_seats_left(&owned)),
            Seating::NotOwner => return Err(moved(owner)),
        };
        self.access.cache().forget_reader(reader).await;
        if new {
            tracing::info!(subscription_id = %owned.subscription.id, "team member seated");
        }
        Ok(Added {
            team: self.view(owner, &owned).await?,
            new,
        })
    }

    /// Takes `reader`'s seat in `owner`'s team back.
    pub async fn remove(&self, owner: &ReaderId, reader: &ReaderId) -> Result<(), ServiceError> {
        let owned = self.owned(owner).await?;
        if !self
            .store
            .unseat_member(&owned.subscription.id, owner, reader, self.clock.now())
            .await?
        {
            return Err(ServiceError::NotFound(format!(
                "reader `{reader}` holds no seat in the team of reader `{owner}`"
            )));
        }
        // The removed reader loses the seat, and a member who was over may take it: every
        // cached reader is forgotten (removals are rare; the team's members are not known here).
        self.access.cache().forget_all();
        tracing::info!(subscription_id = %owned.subscription.id, "team member removed");
        Ok(())
    }

    /// Hands `owner`'s team to `new_owner`, who must hold a seat in it or find one free; the
    /// former owner keeps a seat as a member (the new owner may remove them).
    pub async fn transfer(
        &self,
        owner: &ReaderId,
        new_owner: &ReaderId,
    ) -> Result<Team, ServiceError> {
        if owner == new_owner {
            return Err(ServiceError::invalid(
                "already_owner",
                format!("reader `{owner}` owns the team already"),
            ));
        }
        let owned = self.owned_in_good_standing(owner).await?;
        match self
            .store
            .transfer_team(
                &owned.subscription.id,
                owner,
                new_owner,
                owned.seats,
                self.clock.now(),
            )
            .await?
        {
            Seating::Seated | Seating::AlreadyMember => {}
            Seating::NoSeatsLeft => return Err(no_seats_left(&owned)),
            Seating::NotOwner => return Err(moved(owner)),
        }
        for reader in [owner, new_owner] {
            self.access.cache().forget_reader(reader).await;
        }
        tracing::info!(subscription_id = %owned.subscription.id, "team handed on");
        self.view(new_owner, &owned).await
    }

    /// The team `owner` owns, in good standing: seats are given only while it is paid for.
    async fn owned_in_good_standing(&self, owner: &ReaderId) -> Result<Owned, ServiceError> {
        let owned = self.owned(owner).await?;
        if owned.good {
            Ok(owned)
        } else {
            Err(ServiceError::conflict(
                "team_lapsed",
                format!(
                    "the subscription of reader `{owner}`'s team ({}) is not in good standing; \
                     seats cannot be given until it is",
                    owned.subscription.id
                ),
            ))
        }
    }

    /// The subscription sold by the seat that `owner` owns: their own (unless they handed its
    /// team on) or one handed to them; one in good standing first, then the most seats.
    async fn owned(&self, owner: &ReaderId) -> Result<Owned, ServiceError> {
        let holdings = self.access.fresh_holdings(owner).await?;
        best_team(&holdings, self.access.grace()).ok_or_else(|| {
            ServiceError::NotFound(format!(
                "reader `{owner}` owns no subscription to a plan sold by the seat"
            ))
        })
    }

    async fn view(&self, owner: &ReaderId, owned: &Owned) -> Result<Team, ServiceError> {
        let members = self.store.team_members(&owned.subscription.id).await?;
        let mut seats = vec![SeatView {
            reader_id: owner.clone(),
            role: SeatRole::Owner,
            added_at: None,
            over: false,
        }];
        seats.extend((0_u32..).zip(members).map(|(rank, member)| SeatView {
            over: is_over(SeatRole::Member, rank, owned.seats),
            reader_id: member.reader_id,
            role: SeatRole::Member,
            added_at: Some(member.added_at),
        }));
        Ok(Team {
            subscription_id: owned.subscription.id.clone(),
            in_good_standing: owned.good,
            seats: owned.seats,
            members: seats,
        })
    }
}

/// Of the teams `holdings` show their reader owning, the one to act on.
fn best_team(holdings: &Holdings, grace: crate::domain::PastDueGrace) -> Option<Owned> {
    let by_price = plans_by_price(&holdings.plans);
    let record = &holdings.record;
    let own = record
        .subscriptions
        .iter()
        .filter(|sub| !record.teams.ceded.contains(&sub.id));
    let handed = record
        .teams
        .seats
        .iter()
        .filter(|seat| seat.role == SeatRole::Owner)
        .map(|seat| &seat.subscription);
    own.chain(handed)
        .filter_map(|subscription| {
            let seats = seat_count(subscription, &by_price);
            (seats > 0).then(|| Owned {
                good: matches!(
                    subscription.standing(holdings.now, grace),
                    Standing::Good { .. }
                ),
                subscription: subscription.clone(),
                seats,
            })
        })
        .max_by_key(|owned| (owned.good, owned.seats))
}

fn no_seats_left(owned: &Owned) -> ServiceError {
    ServiceError::conflict(
        "no_seats_left",
        format!(
            "every one of the {} seats of subscription {} is held; remove a member or buy more \
             seats",
            owned.seats, owned.subscription.id
        ),
    )
}

fn moved(owner: &ReaderId) -> ServiceError {
    ServiceError::conflict(
        "team_moved",
        format!("reader `{owner}` handed the team on while this request ran"),
    )
}
