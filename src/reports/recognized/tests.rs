use chrono::NaiveDate;
use proptest::prelude::*;

use super::*;
use crate::domain::ServiceLine;
use crate::reports::periods::months as cut_months;

fn at(date: &str) -> i64 {
    NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp()
}

fn months(from: &str, to: &str) -> Vec<Period> {
    let day = |d: &str| NaiveDate::parse_from_str(&format!("{d}-01"), "%Y-%m-%d").unwrap();
    cut_months(day(from), day(to), chrono_tz::UTC).unwrap()
}

fn plans() -> HashMap<StripePriceId, PlanId> {
    [
        ("price_yearly", "digital"),
        ("price_monthly", "digital"),
        ("price_print", "print"),
        ("price_gift", "digital"),
    ]
    .into_iter()
    .map(|(price, plan)| {
        (
            StripePriceId::parse(price).unwrap(),
            PlanId::parse(plan).unwrap(),
        )
    })
    .collect()
}

fn utc_day(at: i64) -> i64 {
    at.div_euclid(86_400)
}

fn run(
    range: (&str, &str),
    invoices: &[InvoiceService],
    gifts: &[GiftSale],
    by_plan: bool,
) -> Vec<RecognizedRow> {
    let plans = plans();
    let gift_prices = [StripePriceId::parse("price_gift").unwrap()].into();
    let context = Context {
        local_day: &utc_day,
        plans: &plans,
        gift_prices: &gift_prices,
        now: at("2030-01-01"),
        by_plan,
    };
    let months = months(range.0, range.1);
    let mut recognizer = Recognizer::new(&months, &context);
    for invoice in invoices {
        recognizer.add_invoice(invoice);
    }
    let rows = recognizer.finish(gifts);
    assert_identities(&rows);
    rows
}

/// Every row's identity, and each group's months chained.
fn assert_identities(rows: &[RecognizedRow]) {
    let mut last: HashMap<(String, Option<String>), i64> = HashMap::new();
    for row in rows {
        assert_eq!(
            row.deferred_start + row.billed - row.refunds - row.recognized,
            row.deferred_end,
            "{row:?}"
        );
        let key = (row.currency.clone(), row.plan_id.clone());
        if let Some(previous) = last.insert(key, row.deferred_end) {
            assert_eq!(previous, row.deferred_start, "{row:?}");
        }
    }
}

fn yearly(paid: &str, start: &str, end: &str, paid_amount: i64, tax: i64) -> InvoiceService {
    InvoiceService {
        currency: "eur".into(),
        paid_at: at(paid),
        amount_paid: paid_amount,
        tax,
        price_id: Some("price_yearly".into()),
        lines: vec![ServiceLine {
            price_id: Some("price_yearly".into()),
            amount: paid_amount - tax,
            period: Some((at(start), at(end))),
        }],
        refunds: Vec::new(),
    }
}

fn recognized(rows: &[RecognizedRow]) -> Vec<i64> {
    rows.iter().map(|row| row.recognized).collect()
}

#[test]
fn a_yearly_line_is_earned_per_day_and_a_refund_first_lowers_what_is_deferred() {
    // 144.00 paid with 24.00 tax: 120.00 to earn over 365 days; 72.00 refunded on 15 July, of
    // which 12.00 is tax: 60.00 comes off what is still deferred (60.49).
    let mut invoice = yearly("2026-01-15", "2026-01-15", "2027-01-15", 14_400, 2_400);
    invoice.refunds.push((at("2026-07-15"), 7_200));
    let rows = run(("2026-01", "2027-01"), &[invoice], &[], false);
    assert_eq!(
        recognized(&rows),
        [559, 920, 1_020, 986, 1_019, 986, 465, 9, 8, 8, 8, 8, 4]
    );
    assert_eq!(rows[0].billed, 12_000);
    assert_eq!(rows[6].refunds, 6_000);
    assert_eq!(rows.iter().map(|r| r.recognized).sum::<i64>(), 6_000);
    assert_eq!(rows[12].deferred_end, 0);
}

#[test]
fn a_refund_beyond_what_is_deferred_reverses_revenue_in_its_month() {
    let mut invoice = yearly("2026-01-01", "2026-01-01", "2026-02-01", 1_000, 0);
    invoice.refunds.push((at("2026-03-10"), 1_000));
    let rows = run(("2026-01", "2026-03"), &[invoice], &[], false);
    assert_eq!(recognized(&rows), [1_000, 0, -1_000]);
    assert_eq!(rows[2].refunds, 1_000);
    assert_eq!(rows[2].deferred_end, 0);
}

#[test]
fn a_late_payment_catches_up_in_its_month_and_a_line_without_a_period_is_earned_when_paid() {
    let late = yearly("2026-02-10", "2026-01-01", "2026-02-01", 3_100, 0);
    let mut one_off = yearly("2026-01-20", "2026-01-01", "2026-01-01", 500, 0);
    one_off.lines[0].period = None;
    let rows = run(("2026-01", "2026-02"), &[late, one_off], &[], false);
    assert_eq!(recognized(&rows), [500, 3_100]);
    assert_eq!(rows[0].deferred_end, 0);
}

#[test]
fn tax_and_refunds_are_shared_over_lines_pro_rata_and_lines_go_to_their_plans() {
    let invoice = InvoiceService {
        currency: "eur".into(),
        paid_at: at("2026-03-01"),
        amount_paid: 1_200,
        tax: 200,
        price_id: Some("price_monthly".into()),
        lines: vec![
            ServiceLine {
                price_id: Some("price_monthly".into()),
                amount: 750,
                period: Some((at("2026-03-01"), at("2026-04-01"))),
            },
            ServiceLine {
                price_id: Some("price_print".into()),
                amount: 250,
                period: Some((at("2026-03-01"), at("2026-04-01"))),
            },
            // A price in no plan goes to the invoice's plan.
            ServiceLine {
                price_id: Some("price_unknown".into()),
                amount: 0,
                period: None,
            },
        ],
        refunds: vec![(at("2026-03-01"), 600)],
    };
    let rows = run(("2026-03", "2026-03"), &[invoice], &[], true);
    let by_plan: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.plan_id.as_deref().unwrap(),
                r.billed,
                r.refunds,
                r.recognized,
            )
        })
        .collect();
    // 1,000 net; the refund's tax share is 100, so 500 comes back, 375 and 125.
    assert_eq!(
        by_plan,
        [("digital", 750, 375, 375), ("print", 250, 125, 125)]
    );
}

#[test]
fn a_gift_is_deferred_until_redeemed_and_an_unredeemed_one_is_recognised_at_expiry() {
    let gift = |redeemed: Option<&str>, expires: &str| GiftSale {
        plan_id: "digital".into(),
        currency: "eur".into(),
        amount: 3_000,
        purchased_at: at("2026-01-10"),
        months: 3,
        redeemed_at: redeemed.map(at),
        expires_at: at(expires),
    };
    let redeemed = run(
        ("2026-01", "2026-06"),
        &[],
        &[gift(Some("2026-03-01"), "2027-01-10")],
        false,
    );
    // Redeemed on 1 March: 92 days (March, April, May) at 3,000 / 92.
    assert_eq!(recognized(&redeemed), [0, 0, 1_011, 978, 1_011, 0]);
    assert_eq!(redeemed[1].deferred_end, 3_000);
    let expired = run(
        ("2026-01", "2026-06"),
        &[],
        &[gift(None, "2026-05-10")],
        false,
    );
    assert_eq!(recognized(&expired), [0, 0, 0, 0, 3_000, 0]);
    let waiting = run(
        ("2026-01", "2026-02"),
        &[],
        &[gift(None, "2031-01-01")],
        false,
    );
    assert_eq!(recognized(&waiting), [0, 0]);
    assert_eq!(waiting[1].deferred_end, 3_000);
    // The invoice that paid for it is not booked a second time.
    let mut paid = yearly("2026-01-10", "2026-01-10", "2026-01-10", 3_000, 0);
    paid.lines[0].price_id = Some("price_gift".into());
    paid.lines[0].period = None;
    let once = run(
        ("2026-01", "2026-02"),
        &[paid],
        &[gift(None, "2031-01-01")],
        false,
    );
    assert_eq!(once[0].billed, 3_000);
    assert_eq!(recognized(&once), [0, 0]);
}

#[test]
fn a_later_range_starts_from_what_an_earlier_one_left_deferred() {
    let mut invoice = yearly("2026-01-15", "2026-01-15", "2027-01-15", 14_400, 2_400);
    invoice.refunds.push((at("2026-07-15"), 7_200));
    let whole = run(("2026-01", "2026-12"), &[invoice.clone()], &[], false);
    let later = run(("2026-05", "2026-12"), &[invoice], &[], false);
    assert_eq!(later, whole[4..]);
}

fn any_invoice() -> impl Strategy<Value = InvoiceService> {
    let line = (
        prop_oneof![
            Just("price_monthly"),
            Just("price_print"),
            Just("price_none")
        ],
        0_i64..50_000,
        prop::option::of((0_i64..400, 1_i64..400)),
    );
    (
        0_i64..400,
        prop::collection::vec(line, 0..4),
        0_i64..5_000,
        prop::collection::vec((0_i64..800, 1_i64..20_000), 0..3),
    )
        .prop_map(|(paid, lines, tax, refunds)| {
            let base = at("2026-01-01");
            let lines: Vec<ServiceLine> = lines
                .into_iter()
                .map(|(price, amount, period)| ServiceLine {
                    price_id: Some(price.into()),
                    amount,
                    period: period.map(|(start, length)| {
                        (base + start * 86_400, base + (start + length) * 86_400)
                    }),
                })
                .collect();
            let net: i64 = lines.iter().map(|l| l.amount).sum();
            let mut refunds: Vec<(i64, i64)> = refunds
                .into_iter()
                .map(|(day, amount)| (base + (paid + day) * 86_400, amount))
                .collect();
            refunds.sort_unstable();
            InvoiceService {
                currency: "eur".into(),
                paid_at: base + paid * 86_400,
                amount_paid: net + tax,
                tax,
                price_id: Some("price_monthly".into()),
                lines,
                refunds,
            }
        })
}

proptest! {
    #[test]
    fn over_a_whole_life_every_unit_billed_is_recognised_or_refunded(
        invoices in prop::collection::vec(any_invoice(), 1..6),
        by_plan in any::<bool>(),
    ) {
        // From before any payment to after every service and refund has ended.
        let rows = run(("2025-12", "2029-12"), &invoices, &[], by_plan);
        let mut totals: HashMap<Option<String>, [i64; 3]> = HashMap::new();
        for row in &rows {
            let total = totals.entry(row.plan_id.clone()).or_default();
            total[0] += row.billed;
            total[1] += row.refunds;
            total[2] += row.recognized;
        }
        for (plan, [billed, refunds, recognized]) in totals {
            prop_assert_eq!(billed - refunds, recognized, "plan {:?}", plan);
        }
        let billed: i64 = invoices.iter().map(|i| i.amount_paid - i.tax).sum();
        prop_assert_eq!(rows.iter().map(|r| r.billed).sum::<i64>(), billed);
        if let Some(last) = rows.last() {
            prop_assert_eq!(rows.first().unwrap().deferred_start, 0);
            prop_assert!(rows.iter().rev().take_while(|r| r.month == last.month).all(|r| r.deferred_end == 0));
        }
    }
}
