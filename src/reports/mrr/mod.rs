//! Monthly recurring revenue from the subscription history: what each subscription was worth per
//! month at each month's end, and how each customer's MRR moved from one month's end to the next.
//!
//! - A subscription's state at an instant is its newest snapshot before it (by the event's
//!   creation time, then id); a final status (`canceled`, `incomplete_expired`) is never left,
//!   whatever comes after it.
//! - It is worth something while `active`, or `past_due` within the grace period counted from the
//!   first snapshot of that past-due run; `trialing` and every other status are worth 0.
//! - Its worth is the sum of its items whose price belongs to a plan: unit amount × quantity,
//!   normalised to a month, times (subtotal − discount) / subtotal of its latest paid invoice,
//!   rounded half to even once (per subscription and plan when grouped by plan).
//! - Movements compare each customer's MRR (per currency, and plan when grouped) at the start and
//!   end of the month: from 0 it is `new`, or `reactivated` when the customer had MRR at an
//!   earlier month's end; to 0 it is `churned`; otherwise `expansion` or `contraction`. So
//!   MRR(end) = MRR(start) + new + expansion + reactivated − contraction − churned, exactly.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::money::{Fraction, per_month, rate};
use super::periods::{DateRange, Interval, Period, periods};
use crate::domain::{
    History, PaidInvoice, PastDueGrace, PlanId, Price, Snapshot, StripePriceId, SubscriptionStatus,
};

/// What MRR is computed from.
pub struct Inputs<'a> {
    /// Every subscription's history.
    pub histories: &'a [History],
    /// Paid invoices of the subscriptions that ever had a discount, by subscription, oldest first.
    pub discounted: &'a HashMap<String, Vec<PaidInvoice>>,
    /// The prices of plans.
    pub prices: &'a HashMap<StripePriceId, Price>,
    /// Which plan owns each price.
    pub plans: &'a HashMap<StripePriceId, PlanId>,
    /// How long `past_due` keeps its worth.
    pub grace: PastDueGrace,
}

/// A figure's group: its currency, and its plan when grouped by plan.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Group {
    /// Three-letter code.
    pub currency: String,
    /// The plan, when grouped by plan.
    pub plan_id: Option<String>,
}

/// One month's MRR figures for one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MrrRow {
    /// `2026-01`.
    pub month: String,
    /// The plan, when grouped by plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
    /// Three-letter code.
    pub currency: String,
    /// At the previous month's end.
    pub mrr_start: i64,
    /// From customers who never had MRR before.
    pub new: i64,
    /// Increases of customers who had MRR at both ends.
    pub expansion: i64,
    /// Decreases of customers who had MRR at both ends.
    pub contraction: i64,
    /// MRR of customers who had it at the start and none at the end.
    pub churned: i64,
    /// From customers who had MRR at an earlier month's end, none at this month's start.
    pub reactivated: i64,
    /// At this month's end.
    pub mrr: i64,
    /// Customers with MRR at this month's end.
    pub subscribers: u64,
    /// Customers lost ÷ customers at the start, to four places; `None` without customers at the
    /// start.
    pub churn_rate: Option<f64>,
    /// MRR ÷ subscribers, rounded half to even; `None` without subscribers.
    pub arpu: Option<i64>,
}

impl History {
    /// Its state just before `boundary` (Unix seconds), and since when it has been past due
    /// when it is.
    fn state_before(&self, boundary: i64) -> Option<(&Snapshot, Option<i64>)> {
        self.state_index_before(boundary)
            .map(|(index, since)| (&self.snapshots[index], since))
    }

    /// As [`History::state_before`], with the snapshot's place in the history.
    fn state_index_before(&self, boundary: i64) -> Option<(usize, Option<i64>)> {
        let mut state: Option<usize> = None;
        let mut past_due_since = None;
        for (index, snapshot) in self.snapshots.iter().enumerate() {
            if snapshot.at >= boundary
                || state.is_some_and(|i| self.snapshots[i].status.is_terminal())
            {
                break;
            }
            if snapshot.status == SubscriptionStatus::PastDue {
                past_due_since = past_due_since.or(Some(snapshot.at));
            } else {
                past_due_since = None;
            }
            state = Some(index);
        }
        state.map(|i| (i, past_due_since))
    }
}

/// Why some subscriptions were worth less than they might be.
#[derive(Debug, Default)]
pub struct Gaps {
    /// Prices in plans that the mirror does not know (no amount or cycle).
    pub unknown_prices: BTreeSet<String>,
}

/// A subscription's snapshot, with what each group's items are worth before discounts.
struct Priced {
    status: SubscriptionStatus,
    values: Vec<(u32, Fraction)>,
}

/// A subscription ready to be valued at any instant.
struct Valued<'a> {
    customer: u32,
    history: &'a History,
    snapshots: Vec<Priced>,
    discounts: &'a [PaidInvoice],
}

/// Every subscription ready to be valued, with groups and customers numbered.
struct Book<'a> {
    groups: Vec<Group>,
    subscriptions: Vec<Valued<'a>>,
    grace: PastDueGrace,
}

/// A customer in a group, as one number: customer × 2³² + group.
type Key = u64;

fn key(customer: u32, group: u32) -> Key {
    (u64::from(customer) << 32) | u64::from(group)
}

fn group_of(key: Key) -> u32 {
    (key & 0xffff_ffff) as u32
}

impl<'a> Inputs<'a> {
    /// Numbers groups and customers, and prices every snapshot's items once.
    fn book(&self, by_plan: bool, gaps: &mut Gaps) -> Book<'a> {
        let mut groups: Vec<Group> = Vec::new();
        let mut group_index: HashMap<Group, u32> = HashMap::new();
        let mut customers: HashMap<&'a str, u32> = HashMap::new();
        let mut subscriptions = Vec::with_capacity(self.histories.len());
        let histories: &'a [History] = self.histories;
        for history in histories {
            let next = u32::try_from(customers.len()).unwrap_or(u32::MAX);
            let customer = *customers
                .entry(history.customer_id.as_str())
                .or_insert(next);
            let snapshots = history
                .snapshots
                .iter()
                .map(|snapshot| {
                    let mut sums: BTreeMap<u32, Fraction> = BTreeMap::new();
                    for (price_id, quantity) in &snapshot.items {
                        let Some(plan) = self.plans.get(price_id) else {
                            continue;
                        };
                        let Some(price) = self.prices.get(price_id) else {
                            gaps.unknown_prices.insert(price_id.as_str().to_owned());
                            continue;
                        };
                        let (Some(amount), Some(recurring)) = (price.unit_amount, price.recurring)
                        else {
                            continue;
                        };
                        let group = Group {
                            currency: price.currency.clone(),
                            plan_id: by_plan.then(|| plan.as_str().to_owned()),
                        };
                        let index = *group_index.entry(group.clone()).or_insert_with(|| {
                            groups.push(group);
                            u32::try_from(groups.len() - 1).unwrap_or(u32::MAX)
                        });
                        let value = Fraction::new(i128::from(amount) * i128::from(*quantity), 1)
                            * per_month(recurring);
                        let sum = sums.entry(index).or_insert(Fraction::ZERO);
                        *sum = *sum + value;
                    }
                    Priced {
                        status: snapshot.status,
                        values: sums.into_iter().collect(),
                    }
                })
                .collect();
            subscriptions.push(Valued {
                customer,
                history,
                snapshots,
                discounts: self
                    .discounted
                    .get(&history.subscription_id)
                    .map_or(&[], Vec::as_slice),
            });
        }
        Book {
            groups,
            subscriptions,
            grace: self.grace,
        }
    }
}

impl Valued<'_> {
    /// How many of its paid invoices were paid before `boundary`.
    fn paid_before(&self, boundary: i64) -> usize {
        self.discounts.partition_point(|p| p.paid_at < boundary)
    }

    /// The share of the price paid after discounts, as the latest of its first `paid` paid
    /// invoices shows it; 1 without one.
    fn discount(&self, paid: usize) -> Fraction {
        match paid.checked_sub(1).map(|i| self.discounts[i]) {
            Some(paid) if paid.subtotal > 0 && paid.discount > 0 => Fraction::new(
                i128::from(paid.subtotal - paid.discount.min(paid.subtotal)),
                i128::from(paid.subtotal),
            ),
            _ => Fraction::new(1, 1),
        }
    }
}

/// What a subscription was last found to be worth: for which snapshot and paid invoice, and
/// the rounded values per group. Months in which neither changed reuse it.
type Memo = Option<(usize, usize, Vec<(u32, i64)>)>;

impl Book<'_> {
    /// Each customer's MRR per group just before `boundary`, sorted by key, without zeros.
    fn customers_at(&self, boundary: i64, memos: &mut [Memo]) -> Vec<(Key, i64)> {
        let mut out: Vec<(Key, i64)> = Vec::with_capacity(self.subscriptions.len());
        for (subscription, memo) in self.subscriptions.iter().zip(memos.iter_mut()) {
            let Some((index, past_due_since)) = subscription.history.state_index_before(boundary)
            else {
                continue;
            };
            let priced = &subscription.snapshots[index];
            let paying = match priced.status {
                SubscriptionStatus::Active => true,
                SubscriptionStatus::PastDue => {
                    past_due_since.is_some_and(|since| self.grace.covers_unix(since, boundary))
                }
                _ => false,
            };
            if !paying {
                continue;
            }
            let paid = subscription.paid_before(boundary);
            let fresh = memo
                .as_ref()
                .is_some_and(|(i, p, _)| *i == index && *p == paid);
            if !fresh {
                let discount = subscription.discount(paid);
                let values = priced
                    .values
                    .iter()
                    .map(|(group, value)| (*group, (*value * discount).round_half_even()))
                    .collect();
                *memo = Some((index, paid, values));
            }
            if let Some((_, _, values)) = memo {
                out.extend(
                    values
                        .iter()
                        .map(|(group, value)| (key(subscription.customer, *group), *value)),
                );
            }
        }
        out.sort_unstable_by_key(|(key, _)| *key);
        // One entry per key: a customer's subscriptions in one group add up.
        let mut merged: Vec<(Key, i64)> = Vec::with_capacity(out.len());
        for (key, value) in out {
            match merged.last_mut() {
                Some((last, sum)) if *last == key => *sum += value,
                _ => merged.push((key, value)),
            }
        }
        merged.retain(|(_, value)| *value != 0);
        merged
    }
}

/// The MRR report for `months` (consecutive, in order).
pub fn report(
    inputs: &Inputs<'_>,
    months: &[Period],
    by_plan: bool,
    tz: Tz,
) -> (Vec<MrrRow>, Gaps) {
    let mut gaps = Gaps::default();
    let book = inputs.book(by_plan, &mut gaps);
    let Some(first) = months.first() else {
        return (Vec::new(), gaps);
    };
    let mut memos: Vec<Memo> = vec![None; book.subscriptions.len()];
    // Whether a customer had MRR at an earlier month's end needs every month's end since the
    // oldest snapshot, not only those in the range.
    let earliest = inputs
        .histories
        .iter()
        .filter_map(|h| h.snapshots.first().map(|s| s.at))
        .min();
    let mut had: HashSet<Key> = HashSet::new();
    if let Some(earliest) = earliest.and_then(|at| DateTime::<Utc>::from_timestamp(at, 0)) {
        let from = earliest.with_timezone(&tz).date_naive();
        if let Some(to) = first.first_day.pred_opt().filter(|to| from <= *to) {
            for earlier in periods(DateRange { from, to }, Interval::Month, tz) {
                let values = book.customers_at(earlier.ends.timestamp(), &mut memos);
                had.extend(values.into_iter().map(|(key, _)| key));
            }
        }
    }

    let mut start = book.customers_at(first.starts.timestamp(), &mut memos);
    had.extend(start.iter().map(|(key, _)| *key));
    let mut figures: BTreeMap<(usize, u32), Movements> = BTreeMap::new();
    for (index, month) in months.iter().enumerate() {
        let end = book.customers_at(month.ends.timestamp(), &mut memos);
        // Both lists are sorted by key: walk them together.
        let (mut i, mut j) = (0, 0);
        while i < start.len() || j < end.len() {
            let (key, before, after) = match (start.get(i), end.get(j)) {
                (Some(&(a, before)), Some(&(b, after))) if a == b => {
                    i += 1;
                    j += 1;
                    (a, before, after)
                }
                (Some(&(a, before)), Some(&(b, _))) if a < b => {
                    i += 1;
                    (a, before, 0)
                }
                (Some(&(a, before)), None) => {
                    i += 1;
                    (a, before, 0)
                }
                (_, Some(&(b, after))) => {
                    j += 1;
                    (b, 0, after)
                }
                (None, None) => break,
            };
            let returning = before > 0 || had.contains(&key);
            figures
                .entry((index, group_of(key)))
                .or_default()
                .add(before, after, returning);
            if before == 0 {
                had.insert(key);
            }
        }
        start = end;
    }
    let seen_groups: BTreeSet<u32> = figures.keys().map(|(_, group)| *group).collect();
    // Dense: every month for every group seen in the range, groups in order.
    let mut ordered: Vec<u32> = seen_groups.into_iter().collect();
    ordered.sort_by(|a, b| book.groups[*a as usize].cmp(&book.groups[*b as usize]));
    let mut out = Vec::with_capacity(months.len() * ordered.len());
    for (index, month) in months.iter().enumerate() {
        for group in &ordered {
            let movements = figures.remove(&(index, *group)).unwrap_or_default();
            out.push(movements.row(&month.label, &book.groups[*group as usize]));
        }
    }
    (out, gaps)
}

/// The movements of one group over one month.
#[derive(Debug, Default)]
struct Movements {
    mrr_start: i64,
    new: i64,
    expansion: i64,
    contraction: i64,
    churned: i64,
    reactivated: i64,
    mrr: i64,
    customers_start: u64,
    customers_lost: u64,
    subscribers: u64,
}

impl Movements {
    /// One customer going from `before` to `after`; `returning` if they had MRR at an earlier
    /// month's end.
    fn add(&mut self, before: i64, after: i64, returning: bool) {
        self.mrr_start += before;
        self.mrr += after;
        if before > 0 {
            self.customers_start += 1;
        }
        if after > 0 {
            self.subscribers += 1;
        }
        match (before > 0, after > 0) {
            (false, true) if returning => self.reactivated += after,
            (false, true) => self.new += after,
            (true, false) => {
                self.churned += before;
                self.customers_lost += 1;
            }
            (true, true) if after > before => self.expansion += after - before,
            (true, true) => self.contraction += before - after,
            (false, false) => {}
        }
    }

    fn row(&self, month: &str, group: &Group) -> MrrRow {
        MrrRow {
            month: month.to_owned(),
            plan_id: group.plan_id.clone(),
            currency: group.currency.clone(),
            mrr_start: self.mrr_start,
            new: self.new,
            expansion: self.expansion,
            contraction: self.contraction,
            churned: self.churned,
            reactivated: self.reactivated,
            mrr: self.mrr,
            subscribers: self.subscribers,
            churn_rate: rate(self.customers_lost, self.customers_start, 4),
            arpu: (self.subscribers > 0).then(|| {
                Fraction::new(i128::from(self.mrr), i128::from(self.subscribers)).round_half_even()
            }),
        }
    }
}

/// Subscriptions in good standing just before `boundary`, by plan and status.
pub fn subscribers(inputs: &Inputs<'_>, boundary: i64) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for history in inputs.histories {
        let Some((state, past_due_since)) = history.state_before(boundary) else {
            continue;
        };
        let good = match state.status {
            SubscriptionStatus::Active | SubscriptionStatus::Trialing => true,
            SubscriptionStatus::PastDue => {
                past_due_since.is_some_and(|since| inputs.grace.covers_unix(since, boundary))
            }
            _ => false,
        };
        if !good {
            continue;
        }
        let plans: BTreeSet<&PlanId> = state
            .items
            .iter()
            .filter_map(|(price, _)| inputs.plans.get(price))
            .collect();
        for plan in plans {
            *out.entry((plan.as_str().to_owned(), state.status.as_str().to_owned()))
                .or_insert(0) += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests;
