//! Recognised and deferred revenue per month, by currency and optionally by plan: revenue is
//! billed when an invoice is paid and earned evenly per local day over the service it pays for.
//!
//! - An invoice's paid amount less its tax is shared over its lines pro rata to their amounts
//!   after discounts; each share is earned over its line's period (`first..end`, whole local
//!   days, the end's day not included), or on the day it is paid when the line has none.
//!   Nothing is recognised before the month it is paid: a late payment catches up in its month.
//! - A gift subscription's payment (what was paid less its tax) stays deferred until it is
//!   redeemed, then is earned over the gift's months from redemption; a code that expires
//!   unredeemed is recognised at expiry. The gift's invoice line is not booked a second time,
//!   and a refund of it is left out (no gift subscription changes with it).
//! - A refund, less its share of the invoice's tax, is shared over the invoice's lines pro rata
//!   to their shares. On each line it first reduces what is still deferred (what is left is
//!   earned evenly over the days left); any excess reverses revenue already recognised, as a
//!   negative part of `recognized` in the refund's month. A refund counts from the start of its
//!   local day.
//! - Amounts are exact fractions until each line's cumulative recognised revenue is rounded half
//!   to even at each month's end; a month's figure is the difference, so the remainder carries
//!   and a line's months add up to its billed amount less its refunds, to the unit.
//!
//! Every row satisfies `deferred_start + billed - refunds - recognized = deferred_end`.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::money::{Fraction, allocate, round_ratio};
use super::periods::Period;
use crate::domain::{GiftSale, InvoiceService, PlanId, StripePriceId};

/// One month's recognised revenue for one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecognizedRow {
    /// `2026-01`.
    pub month: String,
    /// The plan, when grouped by plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
    /// Three-letter code.
    pub currency: String,
    /// Deferred at the start of the month.
    pub deferred_start: i64,
    /// Paid in the month, net of discounts and tax.
    pub billed: i64,
    /// Refunded in the month, net of tax.
    pub refunds: i64,
    /// Earned in the month (negative when refunds reverse revenue already recognised).
    pub recognized: i64,
    /// Deferred at the end of the month.
    pub deferred_end: i64,
}

/// When an amount is earned, in local days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Evenly per day over `first..end` (`end > first`).
    Days {
        /// The first day.
        first: i64,
        /// The day after the last.
        end: i64,
    },
    /// Not yet known: it stays deferred (a gift that is neither redeemed nor expired).
    Deferred,
}

impl Service {
    /// Over `first..end`, or on `first` alone when `end` is not after it.
    fn days(first: i64, end: i64) -> Self {
        Self::Days {
            first,
            end: end.max(first + 1),
        }
    }
}

/// How the inputs' instants become local days and which plan a price belongs to.
pub struct Context<'a> {
    /// The local day (since 1970-01-01) of a Unix second.
    pub local_day: &'a (dyn Fn(i64) -> i64 + Sync),
    /// Which plan owns each price.
    pub plans: &'a HashMap<StripePriceId, PlanId>,
    /// The plans' gift prices: an invoice line of one is a gift's payment, which the gift
    /// subscription it bought books (deferred until redeemed), not the line.
    pub gift_prices: &'a HashSet<StripePriceId>,
    /// Now (Unix seconds): gifts expired by now are recognised at their expiry.
    pub now: i64,
    /// Whether rows are per plan.
    pub by_plan: bool,
}

/// The running sums of one group: what was deferred before the first month, and each month's
/// billed, refunded and recognised amounts.
#[derive(Debug, Clone)]
struct Sums {
    opening: i64,
    months: Vec<[i64; 3]>,
}

/// The report under construction over the months' boundaries (local days: each month's first
/// day, then the day after the last month).
struct Ledger {
    boundaries: Vec<i64>,
    groups: Vec<((String, String), Sums)>,
}

/// Where a day falls: before the first month, in month `i`, or after the last.
enum Slot {
    Before,
    In(usize),
    After,
}

/// Where `day` falls among months starting on `boundaries` (and ending before the last).
fn slot(boundaries: &[i64], day: i64) -> Slot {
    if day < boundaries[0] {
        Slot::Before
    } else if day >= boundaries[boundaries.len() - 1] {
        Slot::After
    } else {
        Slot::In(boundaries.partition_point(|start| *start <= day) - 1)
    }
}

impl Ledger {
    /// The index of the group of `currency` and `plan`, made on first use.
    fn group(&mut self, currency: &str, plan: &str) -> usize {
        if let Some(index) = self
            .groups
            .iter()
            .position(|((c, p), _)| c == currency && p == plan)
        {
            return index;
        }
        let months = self.boundaries.len() - 1;
        self.groups.push((
            (currency.to_owned(), plan.to_owned()),
            Sums {
                opening: 0,
                months: vec![[0; 3]; months],
            },
        ));
        self.groups.len() - 1
    }

    /// Books `amount`, billed on `billed_day`, earned over `service`, less `refunds` (local
    /// day, amount; in day order).
    fn book(
        &mut self,
        (currency, plan): (&str, &str),
        billed_day: i64,
        amount: i64,
        service: Service,
        refunds: &[(i64, i64)],
    ) {
        let billed_slot = slot(&self.boundaries, billed_day);
        // Nothing is recognised before the start of the month it is billed in.
        let not_before = match billed_slot {
            Slot::Before => i64::MIN,
            Slot::In(month) => self.boundaries[month],
            Slot::After => return,
        };
        let earned = Earned::new(amount, service, refunds);
        let cumulative = |day: i64| {
            if day <= not_before {
                0
            } else {
                earned.before(day)
            }
        };
        let index = self.group(currency, plan);
        let (boundaries, sums) = (&self.boundaries, &mut self.groups[index].1);
        match billed_slot {
            Slot::Before => sums.opening += amount,
            Slot::In(month) => sums.months[month][0] += amount,
            Slot::After => {}
        }
        for &(day, refund) in refunds {
            match slot(boundaries, day) {
                Slot::Before => sums.opening -= refund,
                Slot::In(month) => sums.months[month][1] += refund,
                Slot::After => {}
            }
        }
        let mut previous = cumulative(boundaries[0]);
        sums.opening -= previous;
        for (month, &day) in boundaries[1..].iter().enumerate() {
            let now = cumulative(day);
            sums.months[month][2] += now - previous;
            previous = now;
        }
    }
}

/// How an amount is earned over time: evenly per day over what is left of its service, cut at
/// each refund, which lowers what is left (and reverses what was earned beyond it).
struct Earned {
    amount: i64,
    service: Service,
    /// `(first, end, per day)`: earned evenly at that rate on each day of `first..end`.
    segments: Vec<(i64, i64, Fraction)>,
    /// `(day, amount)`: revenue reversed at the start of `day`.
    reversals: Vec<(i64, Fraction)>,
}

impl Earned {
    fn new(amount: i64, service: Service, refunds: &[(i64, i64)]) -> Self {
        let mut earned = Self {
            amount,
            service,
            segments: Vec::new(),
            reversals: Vec::new(),
        };
        let Service::Days { first, end } = service else {
            return earned;
        };
        if refunds.is_empty() {
            return earned;
        }
        let mut deferred = Fraction::new(i128::from(amount), 1);
        let mut from = first;
        for &(day, refund) in refunds {
            let at = day.clamp(first, end);
            if at > from {
                let rate = deferred * Fraction::new(1, i128::from(end - from));
                earned.segments.push((from, at, rate));
                deferred = deferred - rate * Fraction::new(i128::from(at - from), 1);
                from = at;
            }
            let refund = Fraction::new(i128::from(refund), 1);
            let lowered = refund.min(deferred);
            deferred = deferred - lowered;
            let beyond = refund - lowered;
            if beyond > Fraction::ZERO {
                earned.reversals.push((day, beyond));
            }
        }
        if end > from {
            let rate = deferred * Fraction::new(1, i128::from(end - from));
            earned.segments.push((from, end, rate));
        }
        earned
    }

    /// What was earned on the days before `day`, rounded half to even.
    fn before(&self, day: i64) -> i64 {
        let Service::Days { first, end } = self.service else {
            return 0;
        };
        if self.segments.is_empty() && self.reversals.is_empty() {
            // Without refunds: nothing before the first day, all of it from the end on, and a
            // share of the days in between.
            if day <= first {
                return 0;
            }
            if day >= end {
                return self.amount;
            }
            return round_ratio(
                i128::from(self.amount) * i128::from(day - first),
                i128::from(end - first),
            );
        }
        let mut total = Fraction::ZERO;
        for &(from, to, rate) in &self.segments {
            let days = day.clamp(from, to) - from;
            if days > 0 {
                total = total + rate * Fraction::new(i128::from(days), 1);
            }
        }
        for &(at, reversed) in &self.reversals {
            if at < day {
                total = total - reversed;
            }
        }
        total.round_half_even()
    }
}

/// The report under construction, invoice by invoice, so that a million of them need not be
/// held at once: [`Recognizer::add_invoice`] each, then [`Recognizer::finish`] with the gifts.
pub struct Recognizer<'a> {
    months: &'a [Period],
    context: &'a Context<'a>,
    ledger: Ledger,
    owners: Owners<'a>,
}

impl<'a> Recognizer<'a> {
    /// A report over `months` (consecutive, in order) with nothing booked yet.
    pub fn new(months: &'a [Period], context: &'a Context<'a>) -> Self {
        let epoch_day = |date: chrono::NaiveDate| {
            date.signed_duration_since(chrono::NaiveDate::default())
                .num_days()
        };
        let mut boundaries: Vec<i64> = months.iter().map(|m| epoch_day(m.first_day)).collect();
        if let Some(last) = months.last() {
            boundaries.push(epoch_day(last.last_day) + 1);
        }
        Self {
            months,
            context,
            ledger: Ledger {
                boundaries,
                groups: Vec::new(),
            },
            owners: Owners {
                context,
                known: HashMap::new(),
            },
        }
    }

    /// Books each line of a paid invoice, with its shares of the invoice's refunds.
    pub fn add_invoice(&mut self, invoice: &InvoiceService) {
        if !self.months.is_empty() {
            book_invoice(&mut self.ledger, invoice, self.context, &mut self.owners);
        }
    }

    /// Books the gift subscriptions sold and returns the report.
    pub fn finish(mut self, gifts: &[GiftSale]) -> Vec<RecognizedRow> {
        if self.months.is_empty() {
            return Vec::new();
        }
        let context = self.context;
        let local = context.local_day;
        for gift in gifts {
            let service = match gift.redeemed_at {
                Some(redeemed) => {
                    let ends = chrono::DateTime::from_timestamp(redeemed, 0)
                        .and_then(|at| at.checked_add_months(chrono::Months::new(gift.months)))
                        .map_or(redeemed, |at| at.timestamp());
                    Service::days(local(redeemed), local(ends))
                }
                None if gift.expires_at <= context.now => {
                    let day = local(gift.expires_at);
                    Service::days(day, day + 1)
                }
                None => Service::Deferred,
            };
            let group = if context.by_plan { &gift.plan_id } else { "" };
            self.ledger.book(
                (&gift.currency, group),
                local(gift.purchased_at),
                gift.amount,
                service,
                &[],
            );
        }
        rows(self.months, self.ledger, context.by_plan)
    }
}

/// Who a price belongs to, for recognised revenue.
#[derive(Debug, Clone, Copy)]
enum Owner<'a> {
    /// A plan's gift price: its gift subscription books the payment, not the line.
    Gift,
    /// A plan.
    Plan(&'a str),
    /// No plan.
    Nobody,
}

/// The owner of each price, found once per price.
struct Owners<'a> {
    context: &'a Context<'a>,
    known: HashMap<String, Owner<'a>>,
}

impl<'a> Owners<'a> {
    fn of(&mut self, price: &str) -> Owner<'a> {
        if let Some(owner) = self.known.get(price) {
            return *owner;
        }
        let context = self.context;
        let owner = match StripePriceId::parse(price) {
            None => Owner::Nobody,
            Some(id) if context.gift_prices.contains(&id) => Owner::Gift,
            Some(id) => context
                .plans
                .get(&id)
                .map_or(Owner::Nobody, |plan| Owner::Plan(plan.as_str())),
        };
        self.known.insert(price.to_owned(), owner);
        owner
    }

    /// The group a line's revenue goes to: its price's plan, else its invoice's main price's;
    /// `None` to leave it out (no plan, or a gift's price).
    fn group_of(&mut self, price: Option<&str>, main_price: Option<&str>) -> Option<&'a str> {
        let plan = match price.map(|p| self.of(p)) {
            Some(Owner::Gift) => None,
            Some(Owner::Plan(plan)) => Some(plan),
            Some(Owner::Nobody) | None => match main_price.map(|p| self.of(p)) {
                Some(Owner::Plan(plan)) => Some(plan),
                _ => None,
            },
        }?;
        Some(if self.context.by_plan { plan } else { "" })
    }
}

/// Books each line of a paid invoice, with its shares of the invoice's refunds.
fn book_invoice(
    ledger: &mut Ledger,
    invoice: &InvoiceService,
    context: &Context<'_>,
    owners: &mut Owners<'_>,
) {
    let local = context.local_day;
    let paid_day = local(invoice.paid_at);
    let net = (invoice.amount_paid - invoice.tax).max(0);
    let main_price = invoice.price_id.as_deref();
    let service_of = |period: Option<(i64, i64)>| match period {
        Some((start, end)) => Service::days(local(start), local(end)),
        None => Service::days(paid_day, paid_day + 1),
    };
    // Most invoices have one line and no refund: all of it goes to that line.
    if invoice.lines.len() <= 1 && invoice.refunds.is_empty() {
        let line = invoice.lines.first();
        let price = line.map_or(main_price, |l| l.price_id.as_deref());
        if let Some(group) = owners.group_of(price, main_price) {
            let service = service_of(line.and_then(|l| l.period));
            ledger.book((&invoice.currency, group), paid_day, net, service, &[]);
        }
        return;
    }
    let whole_invoice;
    let lines = if invoice.lines.is_empty() {
        whole_invoice = [crate::domain::ServiceLine {
            price_id: invoice.price_id.clone(),
            amount: net,
            period: None,
        }];
        &whole_invoice[..]
    } else {
        &invoice.lines[..]
    };
    let weights: Vec<i64> = lines.iter().map(|line| line.amount).collect();
    let shares = allocate(net, &weights);
    // Each refund, less its share of the tax, shared over the lines as the invoice was.
    let mut line_refunds: Vec<Vec<(i64, i64)>> = vec![Vec::new(); lines.len()];
    for &(at, amount) in &invoice.refunds {
        let tax = if invoice.amount_paid > 0 {
            round_ratio(
                i128::from(amount) * i128::from(invoice.tax),
                i128::from(invoice.amount_paid),
            )
        } else {
            0
        };
        let day = local(at);
        for (index, share) in allocate(amount - tax, &shares).into_iter().enumerate() {
            if share != 0 {
                line_refunds[index].push((day, share));
            }
        }
    }
    for (index, (share, refunds)) in shares.into_iter().zip(&line_refunds).enumerate() {
        let price = match &invoice.lines[..] {
            [] => main_price,
            listed => listed[index].price_id.as_deref(),
        };
        let Some(group) = owners.group_of(price, main_price) else {
            continue;
        };
        ledger.book(
            (&invoice.currency, group),
            paid_day,
            share,
            service_of(lines[index].period),
            refunds,
        );
    }
}

/// Each month's row for each group that has anything, months first.
fn rows(months: &[Period], ledger: Ledger, by_plan: bool) -> Vec<RecognizedRow> {
    let mut groups: Vec<_> = ledger
        .groups
        .into_iter()
        .filter(|(_, sums)| sums.opening != 0 || sums.months.iter().any(|m| *m != [0; 3]))
        .collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    let mut deferred: Vec<i64> = groups.iter().map(|(_, sums)| sums.opening).collect();
    let mut out = Vec::with_capacity(months.len() * groups.len());
    for (index, month) in months.iter().enumerate() {
        for (group, ((currency, plan), sums)) in groups.iter().enumerate() {
            let [billed, refunds, recognized] = sums.months[index];
            let deferred_start = deferred[group];
            let deferred_end = deferred_start + billed - refunds - recognized;
            deferred[group] = deferred_end;
            out.push(RecognizedRow {
                month: month.label.clone(),
                plan_id: by_plan.then(|| plan.clone()),
                currency: currency.clone(),
                deferred_start,
                billed,
                refunds,
                recognized,
                deferred_end,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
