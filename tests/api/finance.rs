//! Recognised and deferred revenue, and disputes, through the signed webhook endpoint: a yearly
//! subscriber paying 119.00 EUR (19.00 tax) on 2026-01-15 for a year, half of it refunded on
//! 2026-07-15, and a monthly one paying 10.00 on the 10th of January, February and March, with
//! 3.00 of February refunded on 02-15 and a chargeback of February's payment lost on 03-05.
//! Every event is at 12:00 UTC.
//!
//! Recognised per month, computed by hand (per day, rounded half to even once per line and
//! month, the remainder carried):
//!
//! - yearly: 10000 net over the 365 days from 01-15; 5000 net refunded on 07-15 (5950 less its
//!   tax share of 950) first lowers what is deferred (5049.32 then): 466, 767, 849, 822, 849,
//!   822, 388, 7, 6, 7, 7, 7, 3 from January 2026 to January 2027 (5000 in all);
//! - January's 1000 over 01-10..02-10 (31 days): 710, 290;
//! - February's 1000 over 02-10..03-10 (28 days), 300 refunded on 02-15 after 5 days were
//!   earned (178.57): 496 in February, 204 in March (700 in all);
//! - March's 1000 over 03-10..04-10: 710, 290.

use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, spawn_app, spawn_app_with};
use crate::stripe_events::{self, Invoice, noon};

/// The invoice event of `id`, paid on `paid` for the service `start..end`.
fn paid_invoice(
    id: &str,
    price_id: &str,
    (subtotal, tax): (i64, i64),
    paid: &str,
    (start, end): (&str, &str),
) -> Value {
    let event = stripe_events::invoice(
        &format!("evt_{id}"),
        noon(paid),
        &Invoice {
            id,
            customer: "cus_fin",
            subscription: "sub_fin",
            reader_id: "reader-fin",
            price_id,
            currency: "eur",
            subtotal,
            discount: 0,
            tax,
            paid: true,
        },
    );
    stripe_events::with_period(event, noon(start), noon(end))
}

async fn deliver(app: &TestApp, event: &Value) {
    app.deliver_ok(&serde_json::to_vec(event).unwrap()).await;
}

/// The story above; answers a finance key.
async fn story(app: &TestApp) -> String {
    app.put_plan(
        "digital",
        &["price_monthly_eur", "price_yearly_eur"],
        &["articles"],
    )
    .await;
    let events = [
        paid_invoice(
            "in_year",
            "price_yearly_eur",
            (10_000, 1_900),
            "2026-01-15",
            ("2026-01-15", "2027-01-15"),
        ),
        paid_invoice(
            "in_m01",
            "price_monthly_eur",
            (1_000, 0),
            "2026-01-10",
            ("2026-01-10", "2026-02-10"),
        ),
        paid_invoice(
            "in_m02",
            "price_monthly_eur",
            (1_000, 0),
            "2026-02-10",
            ("2026-02-10", "2026-03-10"),
        ),
        paid_invoice(
            "in_m03",
            "price_monthly_eur",
            (1_000, 0),
            "2026-03-10",
            ("2026-03-10", "2026-04-10"),
        ),
        stripe_events::invoice_payment(
            "evt_pay_year",
            noon("2026-01-15"),
            "year",
            "in_year",
            "pi_year",
        ),
        stripe_events::invoice_payment(
            "evt_pay_m02",
            noon("2026-02-10"),
            "m02",
            "in_m02",
            "pi_m02",
        ),
        stripe_events::refund(
            "evt_refund_m02",
            noon("2026-02-15"),
            "m02",
            "pi_m02",
            "eur",
            300,
        ),
        stripe_events::refund(
            "evt_refund_year",
            noon("2026-07-15"),
            "year",
            "pi_year",
            "eur",
            5_950,
        ),
        // The chargeback of February's payment: opened, then lost.
        stripe_events::dispute(
            "created",
            "evt_dp1",
            noon("2026-02-20"),
            ("m02", "pi_m02", noon("2026-02-20")),
            ("eur", 1_000, "needs_response"),
        ),
        stripe_events::dispute(
            "closed",
            "evt_dp2",
            noon("2026-03-05"),
            ("m02", "pi_m02", noon("2026-02-20")),
            ("eur", 1_000, "lost"),
        ),
        // Another, won in April, and one still open in May, on payments tollgate does not know.
        stripe_events::dispute(
            "closed",
            "evt_dp3",
            noon("2026-04-20"),
            ("won", "pi_other", noon("2026-04-02")),
            ("eur", 2_500, "won"),
        ),
        stripe_events::dispute(
            "created",
            "evt_dp4",
            noon("2026-05-03"),
            ("open", "pi_other2", noon("2026-05-03")),
            ("eur", 700, "needs_response"),
        ),
    ];
    // Newest first: the order events arrive in changes nothing.
    for event in events.iter().rev() {
        deliver(app, event).await;
    }
    app.new_key("finance").await.1
}

const MONTHS: [&str; 13] = [
    "2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06", "2026-07", "2026-08",
    "2026-09", "2026-10", "2026-11", "2026-12", "2027-01",
];
const BILLED: [i64; 13] = [11_000, 1_000, 1_000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
const REFUNDS: [i64; 13] = [0, 300, 0, 0, 0, 0, 5_000, 0, 0, 0, 0, 0, 0];
const RECOGNIZED: [i64; 13] = [
    466 + 710,
    767 + 290 + 496,
    849 + 204 + 710,
    822 + 290,
    849,
    822,
    388,
    7,
    6,
    7,
    7,
    7,
    3,
];

async fn get(app: &TestApp, key: &str, path: &str) -> (u16, String) {
    let response = app.get(path, Some(key)).await;
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn recognised_revenue_matches_the_hand_computed_months_and_reconciles_to_the_unit() {
    let app = spawn_app().await;
    let finance = story(&app).await;
    let path = "/v1/reports/recognized-revenue?from=2026-01&to=2027-01";
    let (status, body) = get(&app, &finance, path).await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    let mut deferred = 0;
    let mut expected = Vec::new();
    for (index, month) in MONTHS.iter().enumerate() {
        let start = deferred;
        deferred = start + BILLED[index] - REFUNDS[index] - RECOGNIZED[index];
        expected.push(json!({
            "month": month, "currency": "eur", "deferred_start": start,
            "billed": BILLED[index], "refunds": REFUNDS[index],
            "recognized": RECOGNIZED[index], "deferred_end": deferred,
        }));
    }
    assert_eq!(
        body,
        json!({
            "from": "2026-01", "to": "2027-01", "group_by": "none", "time_zone": "UTC",
            "rows": expected,
        })
    );
    // Read again once the database has statistics (PostgreSQL then reads the invoices in
    // parts side by side, cut at its histogram's middle id): the same answer.
    app.db.analyze().await;
    let (_, again) = get(&app, &finance, path).await;
    assert_eq!(serde_json::from_str::<Value>(&again).unwrap(), body);
    // Everything billed is recognised or refunded by the end.
    assert_eq!(deferred, 0);
    assert_eq!(
        RECOGNIZED.iter().sum::<i64>(),
        BILLED.iter().sum::<i64>() - REFUNDS.iter().sum::<i64>()
    );

    // A later range starts from what the earlier months left deferred.
    let (_, later) = get(
        &app,
        &finance,
        "/v1/reports/recognized-revenue?from=2026-07&to=2026-08&group_by=plan",
    )
    .await;
    let later: Value = serde_json::from_str(&later).unwrap();
    assert_eq!(later["rows"][0]["plan_id"], "digital");
    assert_eq!(
        later["rows"][0]["deferred_start"],
        expected[5]["deferred_end"]
    );
    assert_eq!(
        later["rows"][1]["deferred_end"],
        expected[7]["deferred_end"]
    );

    // The CSV is the rows, column for column.
    let (status, csv) = get(&app, &finance, &format!("{path}&format=csv")).await;
    assert_eq!(status, 200);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("month,currency,deferred_start,billed,refunds,recognized,deferred_end")
    );
    for (line, row) in lines.zip(&expected) {
        let cells = [
            "month",
            "currency",
            "deferred_start",
            "billed",
            "refunds",
            "recognized",
            "deferred_end",
        ]
        .map(|c| match &row[c] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        assert_eq!(line, cells.join(","));
    }
}

#[tokio::test]
async fn a_lost_dispute_costs_revenue_at_its_close_less_what_was_refunded_and_disputes_are_listed()
{
    let app = spawn_app().await;
    let finance = story(&app).await;
    let (status, body) = get(
        &app,
        &finance,
        "/v1/reports/revenue?from=2026-01-01&to=2026-04-30&interval=month",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    let columns: Vec<_> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["period"].as_str().unwrap().to_owned(),
                r["net"].as_i64().unwrap(),
                r["disputes_lost"].as_i64().unwrap(),
                r["net_after_disputes"].as_i64().unwrap(),
            )
        })
        .collect();
    // The lost dispute of 1000 closes in March: 300 of that payment had been refunded, so it
    // costs 700. The won one and the open one cost nothing.
    assert_eq!(
        columns,
        [
            ("2026-01".to_owned(), 12_900, 0, 12_900),
            ("2026-02".to_owned(), 700, 0, 700),
            ("2026-03".to_owned(), 1_000, 700, 300),
            ("2026-04".to_owned(), 0, 0, 0),
        ]
    );

    let (status, body) = get(
        &app,
        &finance,
        "/v1/reports/disputes?from=2026-01&to=2026-06",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["rows"],
        json!([
            { "month": "2026-02", "currency": "eur", "status": "lost", "disputes": 1, "amount": 1_000 },
            { "month": "2026-04", "currency": "eur", "status": "won", "disputes": 1, "amount": 2_500 },
            { "month": "2026-05", "currency": "eur", "status": "needs_response", "disputes": 1, "amount": 700 },
        ])
    );
    let (_, csv) = get(
        &app,
        &finance,
        "/v1/reports/disputes?from=2026-01&to=2026-06&format=csv",
    )
    .await;
    assert_eq!(
        csv,
        "month,currency,status,disputes,amount\r\n2026-02,eur,lost,1,1000\r\n\
         2026-04,eur,won,1,2500\r\n2026-05,eur,needs_response,1,700\r\n"
    );
}

#[tokio::test]
async fn a_closed_dispute_stays_closed_when_an_older_update_arrives_late() {
    let app = spawn_app().await;
    let finance = story(&app).await;
    // An update from before the close, delivered after it.
    deliver(
        &app,
        &stripe_events::dispute(
            "updated",
            "evt_dp_late",
            noon("2026-02-25"),
            ("m02", "pi_m02", noon("2026-02-20")),
            ("eur", 1_000, "under_review"),
        ),
    )
    .await;
    let (_, body) = get(
        &app,
        &finance,
        "/v1/reports/disputes?from=2026-02&to=2026-02",
    )
    .await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["rows"][0]["status"], "lost");
}

#[tokio::test]
async fn the_new_reports_refuse_bad_ranges_and_keys_of_other_roles() {
    let app = spawn_app().await;
    let finance = app.new_key("finance").await.1;
    let service = app.new_key("service").await.1;
    for path in [
        "/v1/reports/recognized-revenue?from=2026-13&to=2026-14",
        "/v1/reports/recognized-revenue?from=2026-03&to=2026-01",
        "/v1/reports/recognized-revenue?from=2026-01&to=2026-02&group_by=currency",
        "/v1/reports/disputes?from=2026-01",
        "/v1/reports/disputes?from=2026-01&to=2026-02&format=xml",
    ] {
        let (status, body) = get(&app, &finance, path).await;
        assert_eq!(status, 422, "{path}: {body}");
    }
    for path in [
        "/v1/reports/recognized-revenue?from=2026-01&to=2026-02",
        "/v1/reports/disputes?from=2026-01&to=2026-02",
    ] {
        assert_eq!(get(&app, &service, path).await.0, 403, "{path}");
    }
}

#[tokio::test]
async fn days_and_months_are_the_reporting_time_zones_in_summer_and_in_winter() {
    let app = spawn_app_with(Options {
        configure: Some(|s| s.reporting_time_zone = chrono_tz::Europe::Berlin),
        ..Options::default()
    })
    .await;
    app.put_plan("digital", &["price_monthly_eur"], &["articles"])
        .await;
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp();
    // 23:30 UTC is already the next day in Berlin, in winter (+1) as in summer (+2): both lines
    // are paid, and start, on the first of the month there, and end on the first of the next.
    for (id, start, end) in [
        ("in_winter", "2026-01-31T23:30:00Z", "2026-02-28T23:30:00Z"),
        ("in_summer", "2026-03-31T23:30:00Z", "2026-04-30T23:30:00Z"),
    ] {
        let mut event = stripe_events::invoice(
            &format!("evt_{id}"),
            at(start),
            &Invoice {
                id,
                customer: "cus_fin",
                subscription: "sub_fin",
                reader_id: "reader-fin",
                price_id: "price_monthly_eur",
                currency: "eur",
                subtotal: 2_800,
                discount: 0,
                tax: 0,
                paid: true,
            },
        );
        event = stripe_events::with_period(event, at(start), at(end));
        deliver(&app, &event).await;
    }
    let finance = app.new_key("finance").await.1;
    let (status, body) = get(
        &app,
        &finance,
        "/v1/reports/recognized-revenue?from=2026-01&to=2026-04",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["time_zone"], "Europe/Berlin");
    let months: Vec<(i64, i64)> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["billed"].as_i64().unwrap(),
                r["recognized"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(months, [(0, 0), (2_800, 2_800), (0, 0), (2_800, 2_800)]);
}

#[tokio::test]
async fn an_mrr_answer_kept_from_before_is_never_served_after_the_data_changed() {
    let app = spawn_app().await;
    app.put_plan("digital", &["price_monthly_eur"], &["articles"])
        .await;
    let finance = app.new_key("finance").await.1;
    let subscribe = |n: u32| {
        let reader = format!("reader-mrr{n}");
        stripe_events::subscription(
            "customer.subscription.created",
            &format!("evt_mrr{n}"),
            noon("2026-02-01"),
            &stripe_events::Subscription {
                id: &format!("sub_mrr{n}"),
                customer: &format!("cus_mrr{n}"),
                reader_id: &reader,
                status: "active",
                price: stripe_events::price("price_monthly_eur", 1_000, "eur", "month"),
                cancel_at_period_end: false,
            },
        )
    };
    let path = "/v1/reports/mrr?from=2026-02&to=2026-02";
    let mrr = |body: String| {
        let body: Value = serde_json::from_str(&body).unwrap();
        body["rows"][0]["mrr"].as_i64().unwrap_or(0)
    };
    deliver(&app, &subscribe(1)).await;
    assert_eq!(mrr(get(&app, &finance, path).await.1), 1_000);
    // Asked again: the same answer (kept, or computed again from the same data).
    assert_eq!(mrr(get(&app, &finance, path).await.1), 1_000);
    // A new subscription moves the report generation on: the answer is computed again.
    deliver(&app, &subscribe(2)).await;
    assert_eq!(mrr(get(&app, &finance, path).await.1), 2_000);
    // So does a plan change: the price no longer belongs to a plan, so it counts for nothing.
    app.put_plan("digital", &["price_other"], &["articles"])
        .await;
    assert_eq!(mrr(get(&app, &finance, path).await.1), 0);
}

#[tokio::test]
async fn an_invoice_of_two_lines_is_shared_between_their_plans_with_its_tax_and_refund() {
    let app = spawn_app().await;
    app.put_plan("digital", &["price_monthly_eur"], &["articles"])
        .await;
    app.put_plan("print", &["price_print_eur"], &["print"])
        .await;
    // 10.00 of digital and 30.00 of print for March, 19 % tax on top: 47.60 paid.
    let mut event = paid_invoice(
        "in_two",
        "price_monthly_eur",
        (4_000, 760),
        "2026-03-01",
        ("2026-03-01", "2026-04-01"),
    );
    let lines = &mut event["data"]["object"]["lines"]["data"];
    let mut print = lines[0].clone();
    print["id"] = "il_in_two_print".into();
    print["pricing"]["price_details"]["price"] = "price_print_eur".into();
    print["amount"] = 3_000.into();
    lines[0]["amount"] = 1_000.into();
    lines.as_array_mut().unwrap().push(print);
    deliver(&app, &event).await;
    deliver(
        &app,
        &stripe_events::invoice_payment(
            "evt_pay_two",
            noon("2026-03-01"),
            "two",
            "in_two",
            "pi_two",
        ),
    )
    .await;
    // 23.80 back on 1 March, before a day was earned: 20.00 net, 5.00 and 15.00.
    deliver(
        &app,
        &stripe_events::refund(
            "evt_refund_two",
            noon("2026-03-01"),
            "two",
            "pi_two",
            "eur",
            2_380,
        ),
    )
    .await;
    let finance = app.new_key("finance").await.1;
    let (status, body) = get(
        &app,
        &finance,
        "/v1/reports/recognized-revenue?from=2026-03&to=2026-04&group_by=plan",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    let rows: Vec<(&str, &str, i64, i64, i64, i64)> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["month"].as_str().unwrap(),
                r["plan_id"].as_str().unwrap(),
                r["billed"].as_i64().unwrap(),
                r["refunds"].as_i64().unwrap(),
                r["recognized"].as_i64().unwrap(),
                r["deferred_end"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("2026-03", "digital", 1_000, 500, 500, 0),
            ("2026-03", "print", 3_000, 1_500, 1_500, 0),
            ("2026-04", "digital", 0, 0, 0, 0),
            ("2026-04", "print", 0, 0, 0, 0),
        ]
    );
}
