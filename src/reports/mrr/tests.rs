//! MRR's tests: worth, movements, grace and discounts over small histories.

use chrono::{NaiveDate, TimeDelta};

use super::*;
use crate::domain::{Interval as PriceInterval, Recurring, Version};
use crate::reports::periods::months;

fn price(id: &str, currency: &str, amount: i64, interval: PriceInterval) -> Price {
    Price {
        id: StripePriceId::parse(id).unwrap(),
        product: None,
        active: true,
        currency: currency.into(),
        unit_amount: Some(amount),
        recurring: Some(Recurring {
            interval,
            interval_count: 1,
        }),
        nickname: None,
        version: Version {
            created: 0,
            source: "sync".into(),
        },
    }
}

fn secs(date: &str) -> i64 {
    NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp()
}

fn snap(date: &str, status: SubscriptionStatus, price: &str) -> Snapshot {
    Snapshot {
        at: secs(date),
        status,
        items: vec![(StripePriceId::parse(price).unwrap(), 1)],
    }
}

fn history(id: &str, customer: &str, snapshots: Vec<Snapshot>) -> History {
    History {
        subscription_id: id.into(),
        customer_id: customer.into(),
        snapshots,
    }
}

struct World {
    prices: HashMap<StripePriceId, Price>,
    plans: HashMap<StripePriceId, PlanId>,
    discounted: HashMap<String, Vec<PaidInvoice>>,
}

fn world() -> World {
    let prices = [
        price("price_monthly", "eur", 1_000, PriceInterval::Month),
        price("price_premium", "eur", 2_000, PriceInterval::Month),
        price("price_yearly", "eur", 10_000, PriceInterval::Year),
    ];
    World {
        plans: prices
            .iter()
            .map(|p| (p.id.clone(), PlanId::parse("digital").unwrap()))
            .collect(),
        prices: prices.into_iter().map(|p| (p.id.clone(), p)).collect(),
        discounted: HashMap::new(),
    }
}

fn run(world: &World, histories: &[History], from: &str, to: &str) -> Vec<MrrRow> {
    let inputs = Inputs {
        histories,
        discounted: &world.discounted,
        prices: &world.prices,
        plans: &world.plans,
        grace: PastDueGrace::new(TimeDelta::days(7)),
    };
    let day = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
    let months = months(day(from), day(to), Tz::UTC).unwrap();
    report(&inputs, &months, false, Tz::UTC).0
}

fn movements(row: &MrrRow) -> [i64; 8] {
    [
        row.mrr_start,
        row.new,
        row.expansion,
        row.contraction,
        row.churned,
        row.reactivated,
        row.mrr,
        i64::try_from(row.subscribers).unwrap(),
    ]
}

use SubscriptionStatus::{Active, Canceled, PastDue, Trialing};

#[test]
fn new_expansion_contraction_churn_and_reactivation_add_up() {
    let world = world();
    let histories = [
        // a: new in January, upgraded in February, downgraded in March, churned in April.
        history(
            "sub_a",
            "cus_a",
            vec![
                snap("2026-01-10", Active, "price_monthly"),
                snap("2026-02-10", Active, "price_premium"),
                snap("2026-03-10", Active, "price_monthly"),
                snap("2026-04-10", Canceled, "price_monthly"),
            ],
        ),
        // b: yearly from January (10000 / 12 = 833.33 → 833), canceled in February, back
        // with a new subscription in April: reactivated.
        history(
            "sub_b1",
            "cus_b",
            vec![
                snap("2026-01-05", Active, "price_yearly"),
                snap("2026-02-05", Canceled, "price_yearly"),
            ],
        ),
        history(
            "sub_b2",
            "cus_b",
            vec![snap("2026-04-05", Active, "price_monthly")],
        ),
    ];
    let rows = run(&world, &histories, "2026-01-01", "2026-04-01");
    let table: Vec<_> = rows.iter().map(movements).collect();
    assert_eq!(
        table,
        [
            // start, new, exp, contr, churned, react, mrr, subscribers
            [0, 1_833, 0, 0, 0, 0, 1_833, 2],
            [1_833, 0, 1_000, 0, 833, 0, 2_000, 1],
            [2_000, 0, 0, 1_000, 0, 0, 1_000, 1],
            [1_000, 0, 0, 0, 1_000, 1_000, 1_000, 1],
        ]
    );
    for row in &rows {
        assert_eq!(
            row.mrr,
            row.mrr_start + row.new + row.expansion + row.reactivated
                - row.contraction
                - row.churned
        );
    }
    assert_eq!(rows[1].churn_rate, Some(0.5));
    // 1833 / 2 = 916.5: half to even.
    assert_eq!(rows[0].arpu, Some(916));
}

#[test]
fn a_trial_is_worth_nothing_and_past_due_churns_when_its_grace_ends() {
    let world = world();
    let histories = [
        history(
            "sub_t",
            "cus_t",
            vec![
                snap("2026-01-03", Trialing, "price_monthly"),
                snap("2026-02-03", Active, "price_monthly"),
            ],
        ),
        // Past due from 2026-02-27: still within seven days of grace at February's end,
        // past it at March's.
        history(
            "sub_p",
            "cus_p",
            vec![
                snap("2026-01-02", Active, "price_monthly"),
                snap("2026-02-27", PastDue, "price_monthly"),
                snap("2026-03-02", PastDue, "price_monthly"),
            ],
        ),
    ];
    let rows = run(&world, &histories, "2026-01-01", "2026-03-01");
    let mrr: Vec<_> = rows.iter().map(|r| (r.mrr, r.churned)).collect();
    assert_eq!(mrr, [(1_000, 0), (2_000, 0), (1_000, 1_000)]);
}

#[test]
fn a_final_state_is_never_left_and_discounts_come_from_the_latest_paid_invoice() {
    let mut world = world();
    world.discounted.insert(
        "sub_d".into(),
        vec![
            PaidInvoice {
                paid_at: secs("2026-01-02"),
                subtotal: 1_000,
                discount: 200,
            },
            PaidInvoice {
                paid_at: secs("2026-03-02"),
                subtotal: 1_000,
                discount: 0,
            },
        ],
    );
    let histories = [
        history(
            "sub_d",
            "cus_d",
            vec![snap("2026-01-02", Active, "price_monthly")],
        ),
        // Stripe's deletion can carry an older time than an update: canceled stays.
        history(
            "sub_x",
            "cus_x",
            vec![
                snap("2026-01-02", Active, "price_monthly"),
                snap("2026-01-20", Canceled, "price_monthly"),
                snap("2026-01-21", Active, "price_monthly"),
            ],
        ),
    ];
    let rows = run(&world, &histories, "2026-01-01", "2026-03-01");
    let mrr: Vec<_> = rows.iter().map(|r| r.mrr).collect();
    assert_eq!(mrr, [800, 800, 1_000]);
}

#[test]
fn a_past_due_start_out_of_the_calendar_is_not_read_as_1970() {
    let world = world();
    let subscribed = |since: i64, boundary: i64| {
        let histories = [History {
            subscription_id: "sub_o".into(),
            customer_id: "cus_o".into(),
            snapshots: vec![Snapshot {
                at: since,
                status: SubscriptionStatus::PastDue,
                items: vec![(StripePriceId::parse("price_monthly").unwrap(), 1)],
            }],
        }];
        let inputs = Inputs {
            histories: &histories,
            discounted: &world.discounted,
            prices: &world.prices,
            plans: &world.plans,
            grace: PastDueGrace::new(TimeDelta::days(7)),
        };
        subscribers(&inputs, boundary).into_values().sum::<u64>()
    };
    let three_days = 3 * 86_400;
    // Past due since the epoch: three days later it is within a week's grace.
    assert_eq!(subscribed(0, three_days), 1);
    // Past due since before any calendar date: its grace ended long before the epoch.
    assert_eq!(subscribed(i64::MIN / 2, three_days), 0);
    assert_eq!(subscribed(i64::MIN, i64::MAX), 0);
}
