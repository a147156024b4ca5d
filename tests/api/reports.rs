// long file: one six-month scenario and the hand-computed tables every test here reads
//! Finance reports over six months of a small publisher, built only through the signed webhook
//! endpoint from real-shaped Stripe events, delivered newest first (and some twice), with the
//! expected tables computed by hand below.
//!
//! Plans: `digital` (price_monthly_eur 10.00 EUR a month, price_yearly_eur 100.00 EUR a year,
//! price_monthly_usd 12.00 USD a month) and `premium` (price_premium_eur 20.00 EUR a month).
//! Every event happens at 12:00 UTC on its day, in 2026. Grace for past due: 7 days.
//!
//! | reader | what happens |
//! |---|---|
//! | a | monthly EUR from 01-05, 19 % tax on top (1190 a month); upgraded to premium 03-05 (2380); 500 of February's invoice refunded 02-20 |
//! | b | premium EUR from 01-10 (2380 with tax); downgraded to monthly 05-10 (1190) |
//! | c | yearly EUR from 01-15 with a 20 % coupon: subtotal 10000, discount 2000, paid 8000 |
//! | d | trial from 02-01 (a 0 invoice), converts 02-15, 1000 a month from then |
//! | e | trial from 02-01 (a 0 invoice), canceled when it ends 02-15 |
//! | f | monthly USD from 01-20; set to cancel at period end 03-25; canceled 04-20; back with a new subscription 06-02 |
//! | g | monthly USD from 01-28; the 03-28 payment fails (past due), paid 04-02 (active again) |
//! | h | monthly EUR from 01-08; the 04-08 payment fails (past due for good), canceled 05-08 |
//!
//! A refund of 300 USD on 06-10 is linked to no invoice: `unattributed`.

use serde_json::{Value, json};

use crate::helpers::{TestApp, problem, spawn_app};
use crate::stripe_events::{self, Invoice, Subscription, noon};

/// A price object as Stripe embeds it in subscription items.
fn price(id: &str) -> Value {
    let (amount, currency, interval) = match id {
        "price_monthly_eur" => (1_000, "eur", "month"),
        "price_yearly_eur" => (10_000, "eur", "year"),
        "price_monthly_usd" => (1_200, "usd", "month"),
        "price_premium_eur" => (2_000, "eur", "month"),
        other => panic!("no price {other}"),
    };
    stripe_events::price(id, amount, currency, interval)
}

/// The events of the scenario, in the order they happened. Reader `x` is customer `cus_x` and
/// reader id `reader-x`; event `id` is `evt_id`, at noon on its date.
struct Events(Vec<Vec<u8>>);

impl Events {
    fn push(&mut self, event: &Value) {
        self.0.push(serde_json::to_vec(event).unwrap());
    }

    /// A subscription snapshot: `customer.subscription.<kind>` of reader `reader`'s
    /// subscription `sub`.
    #[allow(clippy::too_many_arguments)]
    fn subscription(
        &mut self,
        kind: &str,
        id: &str,
        date: &str,
        sub: &str,
        reader: &str,
        status: &str,
        price_id: &str,
        cancel_at_period_end: bool,
    ) {
        let (customer, reader_id) = (format!("cus_{reader}"), format!("reader-{reader}"));
        self.push(&stripe_events::subscription(
            &format!("customer.subscription.{kind}"),
            &format!("evt_{id}"),
            noon(date),
            &Subscription {
                id: sub,
                customer: &customer,
                reader_id: &reader_id,
                status,
                price: price(price_id),
                cancel_at_period_end,
            },
        ));
    }

    /// An invoice of `subtotal` for `price_id`, less `discount`, plus `tax`; paid on
    /// `paid` (`invoice.paid`) or still open (`invoice.payment_failed`).
    #[allow(clippy::too_many_arguments)]
    fn invoice(
        &mut self,
        id: &str,
        date: &str,
        invoice: &str,
        sub: &str,
        reader: &str,
        price_id: &str,
        (subtotal, discount, tax): (i64, i64, i64),
        paid: bool,
    ) {
        let (customer, reader_id) = (format!("cus_{reader}"), format!("reader-{reader}"));
        let price = price(price_id);
        self.push(&stripe_events::invoice(
            &format!("evt_{id}"),
            noon(date),
            &Invoice {
                id: invoice,
                customer: &customer,
                subscription: sub,
                reader_id: &reader_id,
                price_id,
                currency: price["currency"].as_str().unwrap(),
                subtotal,
                discount,
                tax,
                paid,
            },
        ));
    }

    /// `invoice_payment.paid`: payment intent `intent` paid `invoice`.
    fn invoice_payment(&mut self, id: &str, date: &str, invoice: &str, intent: &str) {
        self.push(&stripe_events::invoice_payment(
            &format!("evt_{id}"),
            noon(date),
            id,
            invoice,
            intent,
        ));
    }

    /// `charge.refunded`: `amount` of the charge paid through `intent` refunded.
    fn refund(&mut self, id: &str, date: &str, intent: &str, currency: &str, amount: i64) {
        self.push(&stripe_events::refund(
            &format!("evt_{id}"),
            noon(date),
            id,
            intent,
            currency,
            amount,
        ));
    }
}

/// Tax at 19 % on top of a subtotal without discount.
fn taxed(subtotal: i64) -> (i64, i64, i64) {
    (subtotal, 0, subtotal * 19 / 100)
}

fn untaxed(subtotal: i64) -> (i64, i64, i64) {
    (subtotal, 0, 0)
}

fn scenario() -> Vec<Vec<u8>> {
    let mut e = Events(Vec::new());
    // a: monthly EUR, upgraded to premium on 03-05; 500 of February refunded.
    e.subscription(
        "created",
        "a1",
        "2026-01-05",
        "sub_a",
        "a",
        "active",
        "price_monthly_eur",
        false,
    );
    for (n, month) in ["01", "02"].iter().enumerate() {
        let date = format!("2026-{month}-05");
        e.invoice(
            &format!("a_in{n}"),
            &date,
            &format!("in_a{month}"),
            "sub_a",
            "a",
            "price_monthly_eur",
            taxed(1_000),
            true,
        );
    }
    e.invoice_payment("a_pay02", "2026-02-05", "in_a02", "pi_a02");
    e.refund("a_refund", "2026-02-20", "pi_a02", "eur", 500);
    e.subscription(
        "updated",
        "a2",
        "2026-03-05",
        "sub_a",
        "a",
        "active",
        "price_premium_eur",
        false,
    );
    for month in ["03", "04", "05", "06"] {
        let date = format!("2026-{month}-05");
        e.invoice(
            &format!("a_in{month}"),
            &date,
            &format!("in_a{month}"),
            "sub_a",
            "a",
            "price_premium_eur",
            taxed(2_000),
            true,
        );
    }
    // b: premium EUR, downgraded to monthly on 05-10.
    e.subscription(
        "created",
        "b1",
        "2026-01-10",
        "sub_b",
        "b",
        "active",
        "price_premium_eur",
        false,
    );
    for month in ["01", "02", "03", "04"] {
        let date = format!("2026-{month}-10");
        e.invoice(
            &format!("b_in{month}"),
            &date,
            &format!("in_b{month}"),
            "sub_b",
            "b",
            "price_premium_eur",
            taxed(2_000),
            true,
        );
    }
    e.subscription(
        "updated",
        "b2",
        "2026-05-10",
        "sub_b",
        "b",
        "active",
        "price_monthly_eur",
        false,
    );
    for month in ["05", "06"] {
        let date = format!("2026-{month}-10");
        e.invoice(
            &format!("b_in{month}"),
            &date,
            &format!("in_b{month}"),
            "sub_b",
            "b",
            "price_monthly_eur",
            taxed(1_000),
            true,
        );
    }
    // c: yearly EUR with 20 % off.
    e.subscription(
        "created",
        "c1",
        "2026-01-15",
        "sub_c",
        "c",
        "active",
        "price_yearly_eur",
        false,
    );
    e.invoice(
        "c_in",
        "2026-01-15",
        "in_c01",
        "sub_c",
        "c",
        "price_yearly_eur",
        (10_000, 2_000, 0),
        true,
    );
    // d: a trial that converts.
    e.subscription(
        "created",
        "d1",
        "2026-02-01",
        "sub_d",
        "d",
        "trialing",
        "price_monthly_eur",
        false,
    );
    e.invoice(
        "d_in0",
        "2026-02-01",
        "in_d00",
        "sub_d",
        "d",
        "price_monthly_eur",
        untaxed(0),
        true,
    );
    e.subscription(
        "updated",
        "d2",
        "2026-02-15",
        "sub_d",
        "d",
        "active",
        "price_monthly_eur",
        false,
    );
    for month in ["02", "03", "04", "05", "06"] {
        let date = format!("2026-{month}-15");
        e.invoice(
            &format!("d_in{month}"),
            &date,
            &format!("in_d{month}"),
            "sub_d",
            "d",
            "price_monthly_eur",
            untaxed(1_000),
            true,
        );
    }
    // e: a trial that does not.
    e.subscription(
        "created",
        "e1",
        "2026-02-01",
        "sub_e",
        "e",
        "trialing",
        "price_monthly_eur",
        false,
    );
    e.invoice(
        "e_in0",
        "2026-02-01",
        "in_e00",
        "sub_e",
        "e",
        "price_monthly_eur",
        untaxed(0),
        true,
    );
    e.subscription(
        "deleted",
        "e2",
        "2026-02-15",
        "sub_e",
        "e",
        "canceled",
        "price_monthly_eur",
        false,
    );
    // f: monthly USD, canceled at period end, back in June.
    e.subscription(
        "created",
        "f1",
        "2026-01-20",
        "sub_f",
        "f",
        "active",
        "price_monthly_usd",
        false,
    );
    for month in ["01", "02", "03"] {
        let date = format!("2026-{month}-20");
        e.invoice(
            &format!("f_in{month}"),
            &date,
            &format!("in_f{month}"),
            "sub_f",
            "f",
            "price_monthly_usd",
            untaxed(1_200),
            true,
        );
    }
    e.subscription(
        "updated",
        "f2",
        "2026-03-25",
        "sub_f",
        "f",
        "active",
        "price_monthly_usd",
        true,
    );
    e.subscription(
        "deleted",
        "f3",
        "2026-04-20",
        "sub_f",
        "f",
        "canceled",
        "price_monthly_usd",
        true,
    );
    e.subscription(
        "created",
        "f4",
        "2026-06-02",
        "sub_f2",
        "f",
        "active",
        "price_monthly_usd",
        false,
    );
    e.invoice(
        "f2_in06",
        "2026-06-02",
        "in_f2_06",
        "sub_f2",
        "f",
        "price_monthly_usd",
        untaxed(1_200),
        true,
    );
    // g: monthly USD; March's payment fails on 03-28 and succeeds on 04-02.
    e.subscription(
        "created",
        "g1",
        "2026-01-28",
        "sub_g",
        "g",
        "active",
        "price_monthly_usd",
        false,
    );
    for month in ["01", "02"] {
        let date = format!("2026-{month}-28");
        e.invoice(
            &format!("g_in{month}"),
            &date,
            &format!("in_g{month}"),
            "sub_g",
            "g",
            "price_monthly_usd",
            untaxed(1_200),
            true,
        );
    }
    e.invoice(
        "g_fail03",
        "2026-03-28",
        "in_g03",
        "sub_g",
        "g",
        "price_monthly_usd",
        untaxed(1_200),
        false,
    );
    e.subscription(
        "updated",
        "g2",
        "2026-03-28",
        "sub_g",
        "g",
        "past_due",
        "price_monthly_usd",
        false,
    );
    e.invoice(
        "g_in03",
        "2026-04-02",
        "in_g03",
        "sub_g",
        "g",
        "price_monthly_usd",
        untaxed(1_200),
        true,
    );
    e.subscription(
        "updated",
        "g3",
        "2026-04-02",
        "sub_g",
        "g",
        "active",
        "price_monthly_usd",
        false,
    );
    for month in ["04", "05", "06"] {
        let date = format!("2026-{month}-28");
        e.invoice(
            &format!("g_in{month}"),
            &date,
            &format!("in_g{month}"),
            "sub_g",
            "g",
            "price_monthly_usd",
            untaxed(1_200),
            true,
        );
    }
    // h: monthly EUR; April's payment fails for good.
    e.subscription(
        "created",
        "h1",
        "2026-01-08",
        "sub_h",
        "h",
        "active",
        "price_monthly_eur",
        false,
    );
    for month in ["01", "02", "03"] {
        let date = format!("2026-{month}-08");
        e.invoice(
            &format!("h_in{month}"),
            &date,
            &format!("in_h{month}"),
            "sub_h",
            "h",
            "price_monthly_eur",
            untaxed(1_000),
            true,
        );
    }
    e.invoice(
        "h_fail04",
        "2026-04-08",
        "in_h04",
        "sub_h",
        "h",
        "price_monthly_eur",
        untaxed(1_000),
        false,
    );
    e.subscription(
        "updated",
        "h2",
        "2026-04-08",
        "sub_h",
        "h",
        "past_due",
        "price_monthly_eur",
        false,
    );
    e.subscription(
        "deleted",
        "h3",
        "2026-05-08",
        "sub_h",
        "h",
        "canceled",
        "price_monthly_eur",
        false,
    );
    // A refund of a charge no invoice or payment links to.
    e.refund("stray", "2026-06-10", "pi_unknown", "usd", 300);
    e.0
}

impl TestApp {
    /// The scenario's plans, then its events newest first (the reverse of how they happened),
    /// then a few again.
    async fn six_months(&self) -> String {
        for (plan, prices) in [
            (
                "digital",
                vec!["price_monthly_eur", "price_yearly_eur", "price_monthly_usd"],
            ),
            ("premium", vec!["price_premium_eur"]),
        ] {
            self.put_plan(plan, &prices, &["articles"]).await;
        }
        let events = scenario();
        for event in events.iter().rev() {
            self.deliver_ok(event).await;
        }
        for event in events.iter().step_by(7) {
            self.deliver_ok(event).await;
        }
        self.new_key("finance").await.1
    }

    async fn report(&self, key: &str, path: &str) -> Value {
        let response = self.get(path, Some(key)).await;
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn csv(&self, key: &str, path: &str) -> (String, String) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(key)
            .header("accept", "text/csv")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "text/csv; charset=utf-8"
        );
        let disposition = response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_owned();
        (disposition, response.text().await.unwrap())
    }
}

/// The hand-computed revenue by month and plan: (month, currency, plan, gross, tax, refunds,
/// invoices). net = gross − refunds.
///
/// - EUR digital: 01 a 1190 + c 8000 + h 1000 = 10190 (tax 190, 3 invoices); 02 a 1190 + d 0 +
///   e 0 + d 1000 + h 1000 = 3190 (tax 190, 5), a's refund 500; 03 d 1000 + h 1000 = 2000 (2);
///   04 d 1000 (h failed: not paid); 05 b 1190 + d 1000 = 2190 (tax 190, 2); 06 the same.
/// - EUR premium: 01, 02 b 2380 (tax 380); 03, 04 a 2380 + b 2380 = 4760 (tax 760, 2); 05, 06
///   a 2380.
/// - USD digital: 01, 02 f 1200 + g 1200; 03 f 1200 (g failed); 04 g's March invoice, paid
///   04-02, and g 04-28 = 2400; 05 g 1200; 06 f's new subscription 1200 + g 1200.
/// - USD unattributed: the stray refund of 300 in June.
const REVENUE_BY_PLAN: [(&str, &str, &str, i64, i64, i64, i64); 24] = [
    ("2026-01", "eur", "digital", 10_190, 190, 0, 3),
    ("2026-01", "eur", "premium", 2_380, 380, 0, 1),
    ("2026-01", "usd", "digital", 2_400, 0, 0, 2),
    ("2026-01", "usd", "unattributed", 0, 0, 0, 0),
    ("2026-02", "eur", "digital", 3_190, 190, 500, 5),
    ("2026-02", "eur", "premium", 2_380, 380, 0, 1),
    ("2026-02", "usd", "digital", 2_400, 0, 0, 2),
    ("2026-02", "usd", "unattributed", 0, 0, 0, 0),
    ("2026-03", "eur", "digital", 2_000, 0, 0, 2),
    ("2026-03", "eur", "premium", 4_760, 760, 0, 2),
    ("2026-03", "usd", "digital", 1_200, 0, 0, 1),
    ("2026-03", "usd", "unattributed", 0, 0, 0, 0),
    ("2026-04", "eur", "digital", 1_000, 0, 0, 1),
    ("2026-04", "eur", "premium", 4_760, 760, 0, 2),
    ("2026-04", "usd", "digital", 2_400, 0, 0, 2),
    ("2026-04", "usd", "unattributed", 0, 0, 0, 0),
    ("2026-05", "eur", "digital", 2_190, 190, 0, 2),
    ("2026-05", "eur", "premium", 2_380, 380, 0, 1),
    ("2026-05", "usd", "digital", 1_200, 0, 0, 1),
    ("2026-05", "usd", "unattributed", 0, 0, 0, 0),
    ("2026-06", "eur", "digital", 2_190, 190, 0, 2),
    ("2026-06", "eur", "premium", 2_380, 380, 0, 1),
    ("2026-06", "usd", "digital", 2_400, 0, 0, 2),
    ("2026-06", "usd", "unattributed", 0, 0, 300, 0),
];

fn last_day(month: &str) -> &'static str {
    match month {
        "2026-01" | "2026-03" | "2026-05" => "31",
        "2026-02" => "28",
        _ => "30",
    }
}

#[tokio::test]
async fn revenue_by_month_and_plan_matches_the_hand_computed_table_in_json_and_csv() {
    let app = spawn_app().await;
    let finance = app.six_months().await;
    let path = "/v1/reports/revenue?from=2026-01-01&to=2026-06-30&interval=month&group_by=plan";

    let expected: Vec<Value> = REVENUE_BY_PLAN
        .iter()
        .map(|&(month, currency, plan, gross, tax, refunds, invoices)| {
            json!({
                "period": month, "period_start": format!("{month}-01"),
                "period_end": format!("{month}-{}", last_day(month)), "plan_id": plan,
                "currency": currency, "gross": gross, "tax": tax, "refunds": refunds,
                "net": gross - refunds, "invoices": invoices, "disputes_lost": 0,
                "net_after_disputes": gross - refunds,
            })
        })
        .collect();
    assert_eq!(
        app.report(&finance, path).await,
        json!({
            "from": "2026-01-01", "to": "2026-06-30", "interval": "month", "group_by": "plan",
            "time_zone": "UTC", "rows": expected,
        })
    );

    let (disposition, csv) = app.csv(&finance, path).await;
    assert_eq!(
        disposition,
        "attachment; filename=\"revenue-2026-01-01-2026-06-30.csv\""
    );
    let mut expected_csv = String::from(
        "period,period_start,period_end,plan_id,currency,gross,tax,refunds,net,invoices,\
         disputes_lost,net_after_disputes\r\n",
    );
    for &(month, currency, plan, gross, tax, refunds, invoices) in &REVENUE_BY_PLAN {
        expected_csv.push_str(&format!(
            "{month},{month}-01,{month}-{},{plan},{currency},{gross},{tax},{refunds},{},{invoices},0,{}\r\n",
            last_day(month),
            gross - refunds,
            gross - refunds
        ));
    }
    assert_eq!(csv, expected_csv);
    // `format=csv` answers the same, whatever `Accept` says.
    let by_parameter = app
        .get(&format!("{path}&format=csv"), Some(&finance))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(by_parameter, expected_csv);
}

#[tokio::test]
async fn revenue_by_iso_week_clips_the_first_week_to_the_range_and_sums_currencies_apart() {
    let app = spawn_app().await;
    let finance = app.six_months().await;
    // 2026-02-01 is a Sunday: week 5 has one day in the range.
    let body = app
        .report(
            &finance,
            "/v1/reports/revenue?from=2026-02-01&to=2026-02-14&interval=week",
        )
        .await;
    let row = |period: &str, start: &str, end: &str, gross: i64, tax: i64, invoices: i64| {
        json!({
            "period": period, "period_start": start, "period_end": end, "currency": "eur",
            "gross": gross, "tax": tax, "refunds": 0, "net": gross, "invoices": invoices,
            "disputes_lost": 0, "net_after_disputes": gross,
        })
    };
    assert_eq!(
        body["rows"],
        json!([
            // d's and e's trial invoices of 0.
            row("2026-W05", "2026-02-01", "2026-02-01", 0, 0, 2),
            // a 1190 (02-05) + h 1000 (02-08).
            row("2026-W06", "2026-02-02", "2026-02-08", 2_190, 190, 2),
            // b 2380 (02-10).
            row("2026-W07", "2026-02-09", "2026-02-14", 2_380, 380, 1),
        ])
    );
}

/// The hand-computed MRR: (month, currency, mrr_start, new, expansion, contraction, churned,
/// reactivated, mrr, subscribers, churn_rate, arpu).
///
/// Monthly values: monthly EUR 1000, premium 2000, c's yearly 10000 / 12 × (10000 − 2000) /
/// 10000 = 666.67 → 667, monthly USD 1200; trials 0.
/// EUR at each month's end: 01 a 1000 + b 2000 + c 667 + h 1000 = 4667 (4 customers, all new);
/// 02 + d 1000 = 5667 (new; e's trial never paid); 03 a upgraded: +1000 expansion = 6667;
/// 04 h past due since 04-08, its grace ended 04-15: churned 1000 = 5667, churn 1/5;
/// 05 b downgraded: −1000 contraction = 4667; 06 unchanged.
/// USD: 01 f 1200 + g 1200 = 2400; 02 unchanged; 03 g past due since 03-28, within its grace at
/// the month's end (until 04-04), and f only set to cancel: 2400; 04 f canceled 04-20: churned
/// 1200, churn 1/2; 05 1200; 06 f back with a new subscription: reactivated 1200 = 2400.
/// ARPU = mrr / subscribers, half to even: 4667 / 4 = 1166.75 → 1167, 5667 / 5 = 1133.4 → 1133,
/// 6667 / 5 → 1333, 5667 / 4 = 1416.75 → 1417.
#[allow(clippy::type_complexity)]
const MRR: [(&str, &str, [i64; 8], Option<f64>, Option<i64>); 12] = [
    (
        "2026-01",
        "eur",
        [0, 4_667, 0, 0, 0, 0, 4_667, 4],
        None,
        Some(1_167),
    ),
    (
        "2026-01",
        "usd",
        [0, 2_400, 0, 0, 0, 0, 2_400, 2],
        None,
        Some(1_200),
    ),
    (
        "2026-02",
        "eur",
        [4_667, 1_000, 0, 0, 0, 0, 5_667, 5],
        Some(0.0),
        Some(1_133),
    ),
    (
        "2026-02",
        "usd",
        [2_400, 0, 0, 0, 0, 0, 2_400, 2],
        Some(0.0),
        Some(1_200),
    ),
    (
        "2026-03",
        "eur",
        [5_667, 0, 1_000, 0, 0, 0, 6_667, 5],
        Some(0.0),
        Some(1_333),
    ),
    (
        "2026-03",
        "usd",
        [2_400, 0, 0, 0, 0, 0, 2_400, 2],
        Some(0.0),
        Some(1_200),
    ),
    (
        "2026-04",
        "eur",
        [6_667, 0, 0, 0, 1_000, 0, 5_667, 4],
        Some(0.2),
        Some(1_417),
    ),
    (
        "2026-04",
        "usd",
        [2_400, 0, 0, 0, 1_200, 0, 1_200, 1],
        Some(0.5),
        Some(1_200),
    ),
    (
        "2026-05",
        "eur",
        [5_667, 0, 0, 1_000, 0, 0, 4_667, 4],
        Some(0.0),
        Some(1_167),
    ),
    (
        "2026-05",
        "usd",
        [1_200, 0, 0, 0, 0, 0, 1_200, 1],
        Some(0.0),
        Some(1_200),
    ),
    (
        "2026-06",
        "eur",
        [4_667, 0, 0, 0, 0, 0, 4_667, 4],
        Some(0.0),
        Some(1_167),
    ),
    (
        "2026-06",
        "usd",
        [1_200, 0, 0, 0, 0, 1_200, 2_400, 2],
        Some(0.0),
        Some(1_200),
    ),
];

#[tokio::test]
async fn mrr_movements_match_the_hand_computed_table_and_add_up_in_json_and_csv() {
    let app = spawn_app().await;
    let finance = app.six_months().await;
    let path = "/v1/reports/mrr?from=2026-01&to=2026-06";

    let expected: Vec<Value> = MRR
        .iter()
        .map(|&(month, currency, f, churn_rate, arpu)| {
            json!({
                "month": month, "currency": currency, "mrr_start": f[0], "new": f[1],
                "expansion": f[2], "contraction": f[3], "churned": f[4], "reactivated": f[5],
                "mrr": f[6], "subscribers": f[7], "churn_rate": churn_rate, "arpu": arpu,
            })
        })
        .collect();
    for (month, figures, _, _) in MRR.iter().map(|(m, _, f, r, a)| (m, f, r, a)) {
        assert_eq!(
            figures[6],
            figures[0] + figures[1] + figures[2] + figures[5] - figures[3] - figures[4],
            "{month}"
        );
    }
    assert_eq!(
        app.report(&finance, path).await,
        json!({
            "from": "2026-01", "to": "2026-06", "group_by": "none", "time_zone": "UTC",
            "rows": expected, "notes": [],
        })
    );

    let (disposition, csv) = app.csv(&finance, path).await;
    assert_eq!(
        disposition,
        "attachment; filename=\"mrr-2026-01-2026-06.csv\""
    );
    let mut expected_csv = String::from(
        "month,currency,mrr_start,new,expansion,contraction,churned,reactivated,mrr,subscribers,churn_rate,arpu\r\n",
    );
    for &(month, currency, f, churn_rate, arpu) in &MRR {
        let figures: Vec<String> = f.iter().map(i64::to_string).collect();
        let rate = churn_rate.map_or(String::new(), |r| json!(r).to_string());
        let arpu = arpu.map_or(String::new(), |a| a.to_string());
        expected_csv.push_str(&format!(
            "{month},{currency},{},{rate},{arpu}\r\n",
            figures.join(",")
        ));
    }
    assert_eq!(csv, expected_csv);
}

#[tokio::test]
async fn mrr_by_plan_moves_upgrades_and_downgrades_between_plans() {
    let app = spawn_app().await;
    let finance = app.six_months().await;
    let body = app
        .report(
            &finance,
            "/v1/reports/mrr?from=2026-01&to=2026-06&group_by=plan",
        )
        .await;
    let eur = |plan: &str| -> Vec<[i64; 8]> {
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["currency"] == "eur" && r["plan_id"] == plan)
            .map(|r| {
                [
                    "mrr_start",
                    "new",
                    "expansion",
                    "contraction",
                    "churned",
                    "reactivated",
                    "mrr",
                    "subscribers",
                ]
                .map(|f| r[f].as_i64().unwrap())
            })
            .collect()
    };
    // digital: a leaves it for premium in March (churned from digital), h churns in April, b
    // arrives from premium in May (new to digital).
    assert_eq!(
        eur("digital"),
        [
            [0, 2_667, 0, 0, 0, 0, 2_667, 3],
            [2_667, 1_000, 0, 0, 0, 0, 3_667, 4],
            [3_667, 0, 0, 0, 1_000, 0, 2_667, 3],
            [2_667, 0, 0, 0, 1_000, 0, 1_667, 2],
            [1_667, 1_000, 0, 0, 0, 0, 2_667, 3],
            [2_667, 0, 0, 0, 0, 0, 2_667, 3],
        ]
    );
    // premium: b from January, a from March, b leaves in May.
    assert_eq!(
        eur("premium"),
        [
            [0, 2_000, 0, 0, 0, 0, 2_000, 1],
            [2_000, 0, 0, 0, 0, 0, 2_000, 1],
            [2_000, 2_000, 0, 0, 0, 0, 4_000, 2],
            [4_000, 0, 0, 0, 0, 0, 4_000, 2],
            [4_000, 0, 0, 0, 2_000, 0, 2_000, 1],
            [2_000, 0, 0, 0, 0, 0, 2_000, 1],
        ]
    );
}

#[tokio::test]
async fn subscribers_are_counted_by_plan_and_status_at_the_end_of_a_day() {
    let app = spawn_app().await;
    let finance = app.six_months().await;
    let rows = |body: Value| body["rows"].clone();
    // 02-10: a, c, f, g, h active in digital, d and e trialing; b premium.
    assert_eq!(
        rows(
            app.report(&finance, "/v1/reports/subscribers?at=2026-02-10")
                .await
        ),
        json!([
            { "plan_id": "digital", "status": "active", "subscriptions": 5 },
            { "plan_id": "digital", "status": "trialing", "subscriptions": 2 },
            { "plan_id": "premium", "status": "active", "subscriptions": 1 },
        ])
    );
    // 03-30: g past due within its grace; a moved to premium.
    assert_eq!(
        rows(
            app.report(&finance, "/v1/reports/subscribers?at=2026-03-30")
                .await
        ),
        json!([
            { "plan_id": "digital", "status": "active", "subscriptions": 4 },
            { "plan_id": "digital", "status": "past_due", "subscriptions": 1 },
            { "plan_id": "premium", "status": "active", "subscriptions": 2 },
        ])
    );
    let (disposition, csv) = app
        .csv(&finance, "/v1/reports/subscribers?at=2026-06-30")
        .await;
    assert_eq!(
        disposition,
        "attachment; filename=\"subscribers-2026-06-30.csv\""
    );
    // b, c, d, f's second subscription and g in digital; a in premium.
    assert_eq!(
        csv,
        "plan_id,status,subscriptions\r\ndigital,active,5\r\npremium,active,1\r\n"
    );
}

#[tokio::test]
async fn reports_refuse_bad_ranges_and_other_roles_with_problems() {
    let app = spawn_app().await;
    let (_, finance) = app.new_key("finance").await;
    let (_, service) = app.new_key("service").await;
    for (path, code) in [
        (
            "/v1/reports/revenue?from=2026-02-01&to=2026-01-31",
            "invalid_range",
        ),
        (
            "/v1/reports/revenue?from=2020-01-01&to=2025-01-01",
            "invalid_range",
        ),
        (
            "/v1/reports/revenue?from=2026-02-30&to=2026-03-01",
            "invalid_date",
        ),
        (
            "/v1/reports/revenue?from=01/02/2026&to=2026-03-01",
            "invalid_date",
        ),
        ("/v1/reports/revenue?to=2026-03-01", "invalid_date"),
        (
            "/v1/reports/revenue?from=2026-01-01&to=2026-03-01&interval=year",
            "invalid_interval",
        ),
        (
            "/v1/reports/revenue?from=2026-01-01&to=2026-03-01&group_by=reader",
            "invalid_group_by",
        ),
        (
            "/v1/reports/revenue?from=2026-01-01&to=2026-03-01&format=xlsx",
            "invalid_format",
        ),
        ("/v1/reports/mrr?from=2026-06&to=2026-01", "invalid_range"),
        ("/v1/reports/mrr?from=2026-13&to=2027-01", "invalid_date"),
        (
            "/v1/reports/mrr?from=2026-01&to=2026-02&group_by=currency",
            "invalid_group_by",
        ),
        ("/v1/reports/subscribers?at=tomorrow", "invalid_date"),
    ] {
        problem(app.get(path, Some(&finance)).await, 422, code).await;
    }
    let path = "/v1/reports/revenue?from=2026-01-01&to=2026-01-31";
    problem(app.get(path, Some(&service)).await, 403, "forbidden").await;
    problem(app.get(path, None).await, 401, "missing_api_key").await;
    assert_eq!(app.get(path, Some(&app.admin_key)).await.status(), 200);
    assert_eq!(app.get(path, Some(&finance)).await.status(), 200);
}

#[tokio::test]
async fn text_cells_a_spreadsheet_would_run_as_formulas_are_escaped_in_csv() {
    let app = spawn_app().await;
    app.put_plan("digital", &["price_monthly_eur"], &["articles"])
        .await;
    // Currencies come from Stripe's payloads; the CSV must not trust them either.
    let mut events = Events(Vec::new());
    events.invoice(
        "odd",
        "2026-01-05",
        "in_odd",
        "sub_odd",
        "odd",
        "price_monthly_eur",
        untaxed(1_000),
        true,
    );
    let mut event: Value = serde_json::from_slice(&events.0[0]).unwrap();
    event["data"]["object"]["currency"] = "=2+3".into();
    app.deliver_ok(&serde_json::to_vec(&event).unwrap()).await;
    let finance = app.new_key("finance").await.1;
    let path = "/v1/reports/revenue?from=2026-01-01&to=2026-01-31";
    let body = app.report(&finance, path).await;
    assert_eq!(body["rows"][0]["currency"], "=2+3");
    let (_, csv) = app.csv(&finance, path).await;
    assert_eq!(
        csv,
        "period,period_start,period_end,currency,gross,tax,refunds,net,invoices,disputes_lost,\
         net_after_disputes\r\n\
         2026-01,2026-01-01,2026-01-31,'=2+3,1000,0,0,1000,1,0,1000\r\n"
    );
}
