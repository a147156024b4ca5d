// long file: one property per hostile input kind, sharing generators and one app each
//! Hostile input, generated: arbitrary ids in paths, arbitrary query parameters and arbitrary plan
//! bodies, many cases against one app per property. Whatever arrives, the answer is a success or a
//! 4xx problem document with a code the route is known to give, never a 5xx, and a refused
//! request changes nothing (SPEC, Bad input).

use std::future::Future;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use tollgate::clock::Clock;
use tollgate::domain::{PlanId, ReaderId};

use crate::helpers::{TestApp, spawn_app};

/// One app, and the runtime it runs on, for every case of one property.
struct Harness {
    runtime: tokio::runtime::Runtime,
    app: Option<TestApp>,
}

impl Harness {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let app = runtime.block_on(spawn_app());
        Self {
            runtime,
            app: Some(app),
        }
    }

    fn app(&self) -> &TestApp {
        self.app.as_ref().unwrap()
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Runs `case` on `cases` inputs drawn from `strategy`; a failure is shrunk to a small input
    /// and reported with it. Nothing is written to disk: the report names the input.
    fn check<S: Strategy>(
        &self,
        cases: u32,
        strategy: S,
        case: impl Fn(S::Value) -> Result<(), TestCaseError>,
    ) {
        let mut runner = TestRunner::new(Config {
            cases,
            max_shrink_iters: 256,
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(failure) = runner.run(&strategy, case) {
            panic!("{failure}");
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // The app's pool and its database are dropped inside the runtime they were made in.
        let _inside = self.runtime.enter();
        drop(self.app.take());
    }
}

/// Text a hostile client might send: empty, control characters (NUL above all, which no
/// PostgreSQL text can hold), any Unicode, numbers too large for any integer type, injection
/// attempts, long runs, and near misses of the valid forms.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        2 => ".{1,32}",
        1 => "\\PC{1,16}",
        4 => "[a-z0-9_.-]{0,8}\\x00[a-z0-9_.-]{0,8}",
        1 => "[\\x00-\\x1f\\x7f]{1,4}",
        2 => prop::sample::select(vec![
            ".",
            "..",
            "%",
            "%00",
            "%zz",
            "%2F",
            "%252F",
            "../../../../etc/passwd",
            "' OR '1'='1",
            "1; DROP TABLE plans; --",
            "null",
            "-1",
            "0",
            "1e309",
            "NaN",
            "\u{0}",
            "\u{202e}evil",
            "\u{feff}",
            "😀",
            "evt_hostile_1",
            "basic",
        ])
        .prop_map(String::from),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u128>().prop_map(|n| n.to_string()),
        1 => "-?[0-9]{19,60}",
        1 => any::<f64>().prop_map(|n| n.to_string()),
        1 => (1usize..4096).prop_map(|n| "a".repeat(n)),
        1 => "[a-z0-9][a-z0-9:_-]{0,70}",
        1 => "[A-Za-z0-9._:@-]{120,135}",
        1 => "-?[0-9]{1,6}-[0-9]{1,3}(-[0-9]{1,3})?",
    ]
}

/// Percent-encodes every byte but the unreserved ones (RFC 3986).
fn encode_bytes(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A path segment or query component as sent, and the text it stands for when that is known.
#[derive(Debug, Clone)]
struct Part {
    sent: String,
    meant: Option<String>,
}

/// Hostile text percent-encoded throughout, left raw for the client and router to make what
/// they will of it (`/`, `?`, `#`, `..`), or arbitrary bytes (invalid UTF-8 among them) encoded.
fn hostile_part() -> impl Strategy<Value = Part> {
    prop_oneof![
        hostile_text().prop_map(|text| Part {
            sent: encode_bytes(text.as_bytes()),
            meant: Some(text),
        }),
        hostile_text().prop_map(|text| Part {
            sent: text,
            meant: None,
        }),
        vec(any::<u8>(), 0..48).prop_map(|bytes| Part {
            sent: encode_bytes(&bytes),
            meant: String::from_utf8(bytes).ok(),
        }),
    ]
}

/// Sends `request` and reads its answer: a success, or a 4xx problem document whose `code` is
/// one of `codes` or one the router gives any path (a hostile id can move a request to another
/// route). A success's status, content type and body come back.
async fn answer(
    app: &TestApp,
    request: RequestBuilder,
    codes: &[&str],
) -> Result<(u16, Option<String>, String), TestCaseError> {
    let request = request
        .build()
        .map_err(|e| TestCaseError::fail(format!("no request: {e}")))?;
    let what = format!("{} {}", request.method(), request.url());
    let response = app
        .client
        .execute(request)
        .await
        .map_err(|e| TestCaseError::fail(format!("{what}: no answer: {e}")))?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.text().await.unwrap_or_default();
    prop_assert!(
        (200..300).contains(&status) || (400..500).contains(&status),
        "{what} answered {status}: {body}"
    );
    if status >= 400 {
        prop_assert_eq!(
            content_type.as_deref(),
            Some("application/problem+json"),
            "{}",
            what
        );
        let problem: Value = serde_json::from_str(&body).map_err(|e| {
            TestCaseError::fail(format!("{what}: {status}, not a JSON problem: {e}"))
        })?;
        prop_assert_eq!(&problem["status"], &json!(status), "{}: {}", what, problem);
        let code = problem["code"].as_str().unwrap_or_default();
        prop_assert!(
            codes.contains(&code) || ["not_found", "method_not_allowed"].contains(&code),
            "{what}: {status} with code {code:?}, not one of {codes:?}: {problem}"
        );
        prop_assert_eq!(
            &problem["type"],
            &json!(format!("urn:tollgate:problem:{code}")),
            "{}",
            what
        );
        for member in ["title", "detail"] {
            prop_assert!(
                problem[member].as_str().is_some_and(|s| !s.is_empty()),
                "{what}: no {member}: {problem}"
            );
        }
    }
    Ok((status, content_type, body))
}

/// A request with the admin key, which may do everything: only the input can be refused.
fn request(app: &TestApp, method: Method, path: &str) -> RequestBuilder {
    app.client
        .request(method, app.url(path))
        .bearer_auth(&app.admin_key)
}

/// What the tests must not change: every key, plan and stored event, and a reader's record.
async fn snapshot(app: &TestApp) -> Value {
    let mut state = json!({});
    for path in [
        "/v1/keys?limit=500",
        "/v1/plans",
        "/v1/admin/webhook-events?limit=500",
        "/v1/readers/r-1",
    ] {
        state[path] = app.get_json(path, Some(&app.admin_key)).await;
    }
    state
}

/// A plan, a reader with a grant, a second key and a stored event, so that ids can hit something.
async fn seed(app: &TestApp) {
    app.put_plan("basic", &["price_a"], &["articles"]).await;
    app.grant("r-1", &["articles"]).await;
    app.new_key("service").await;
    let event = json!({
        "id": "evt_hostile_1",
        "object": "event",
        "type": "hostile.unknown_type",
        "created": app.clock.now().timestamp(),
        "livemode": false,
        "data": { "object": {} },
    });
    app.deliver_ok(event.to_string().as_bytes()).await;
}

/// The routes that take an id in their path, and the codes each may refuse one with.
#[derive(Debug, Clone, Copy)]
enum IdRoute {
    Reader,
    Plan,
    RevokeKey,
    RetryEvent,
    RevokeGrant,
}

impl IdRoute {
    const ALL: [Self; 5] = [
        Self::Reader,
        Self::Plan,
        Self::RevokeKey,
        Self::RetryEvent,
        Self::RevokeGrant,
    ];

    fn request(self, id: &str, other: &str) -> (Method, String, &'static [&'static str]) {
        match self {
            Self::Reader => (
                Method::GET,
                format!("/v1/readers/{id}"),
                &["invalid_reader_id"],
            ),
            Self::Plan => (Method::GET, format!("/v1/plans/{id}"), &[]),
            Self::RevokeKey => (Method::DELETE, format!("/v1/keys/{id}"), &[]),
            Self::RetryEvent => (
                Method::POST,
                format!("/v1/admin/webhook-events/{id}/retry"),
                &["event_already_applied", "event_not_applicable"],
            ),
            Self::RevokeGrant => (
                Method::DELETE,
                format!("/v1/readers/{other}/grants/{id}"),
                &["invalid_reader_id"],
            ),
        }
    }
}

#[test]
fn arbitrary_ids_in_paths_get_an_answer_or_a_problem_and_change_nothing() {
    let harness = Harness::start();
    let app = harness.app();
    harness.block_on(seed(app));
    let before = harness.block_on(snapshot(app));
    let other = prop_oneof![Just("r-1".to_owned()), hostile_part().prop_map(|p| p.sent)];
    harness.check(96, (hostile_part(), other), |(id, other)| {
        harness.block_on(async {
            for route in IdRoute::ALL {
                let (method, path, codes) = route.request(&id.sent, &other);
                let (status, _, body) = answer(app, request(app, method, &path), codes).await?;
                if status < 300 {
                    // Only a read may succeed here, and it answers for a valid id.
                    let body: Value = serde_json::from_str(&body).unwrap_or_default();
                    match route {
                        IdRoute::Reader => {
                            let shown = body["reader_id"].as_str().unwrap_or_default();
                            prop_assert!(ReaderId::parse(shown).is_some(), "{body}");
                            if let Some(meant) = &id.meant {
                                prop_assert_eq!(shown, meant.as_str());
                            }
                        }
                        IdRoute::Plan => prop_assert_eq!(&body["id"], "basic"),
                        _ => return Err(TestCaseError::fail(format!("{path} answered {status}"))),
                    }
                }
            }
            prop_assert_eq!(&snapshot(app).await, &before);
            Ok(())
        })
    });
}

/// A value for the query parameter `name`: usually of its form, sometimes hostile. Dates and
/// months are mostly near each other (so that ranges are often valid), with the edges of the
/// calendar (years 0 and 9999, the Unix epoch) and malformed ones (month 13, day 32) among them.
/// `from` and `to` are months in the MRR report and days elsewhere.
fn parameter_value(name: &'static str, months: bool) -> BoxedStrategy<Part> {
    let plain = |text: String| Part {
        meant: Some(text.clone()),
        sent: encode_bytes(text.as_bytes()),
    };
    let year = prop_oneof![
        4 => 2024u32..=2027,
        1 => prop::sample::select(vec![0u32, 1, 1969, 1970, 9998, 9999]),
    ];
    let date = prop_oneof![
        6 => (year.clone(), 1u32..=12, 1u32..=28),
        1 => (0u32..=9999, 0u32..=13, 0u32..=32),
    ]
    .prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}"));
    let month = prop_oneof![6 => (year, 1u32..=12), 1 => (0u32..=9999, 0u32..=13)]
        .prop_map(|(y, m)| format!("{y:04}-{m:02}"));
    let words =
        |words: &'static [&'static str]| prop::sample::select(words).prop_map(str::to_owned);
    let valid = match name {
        "from" | "to" if months => month.boxed(),
        "from" | "to" | "at" => date.boxed(),
        "interval" => words(&["day", "week", "month"]).boxed(),
        "group_by" => words(&["plan", "currency", "none"]).boxed(),
        "format" => words(&["json", "csv"]).boxed(),
        "limit" => prop_oneof![
            4 => 1u64..=500,
            1 => prop::sample::select(vec![0u64, 501, u64::from(u32::MAX) + 1]),
        ]
        .prop_map(|n| n.to_string())
        .boxed(),
        "before" => any::<i64>().prop_map(|n| n.to_string()).boxed(),
        "status" => words(&["pending", "failed", "applied", "skipped"]).boxed(),
        "after" => "key_[0-9a-f]{32}".boxed(),
        _ => "[a-z0-9_.]{1,40}".boxed(),
    };
    prop_oneof![5 => valid.prop_map(plain), 1 => hostile_part()].boxed()
}

/// `from=...&to=...` of days (or months) a little apart: mostly a valid range, now and again a
/// reversed one or one just over the five years a report may cover, anywhere from year 0 to 9999.
fn range(months: bool) -> impl Strategy<Value = String> {
    let year = prop_oneof![
        4 => 2024i32..=2027,
        1 => prop::sample::select(vec![0i32, 1, 1969, 1970, 9994, 9999]),
    ];
    (year, 1u32..=12, 1u32..=28, -2i64..=61).prop_map(move |(y, m, d, apart)| {
        if months {
            let end = i64::from(y) * 12 + i64::from(m) - 1 + apart;
            format!(
                "from={y:04}-{m:02}&to={:04}-{:02}",
                end.div_euclid(12),
                end.rem_euclid(12) + 1
            )
        } else {
            let from = chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
            let to = from + chrono::Duration::days(apart * 30);
            format!("from={from}&to={to}")
        }
    })
}

/// A route that reads query parameters: its path, its parameters, and the codes it may refuse
/// them with.
struct QueryRoute {
    path: &'static str,
    parameters: &'static [&'static str],
    codes: &'static [&'static str],
}

const REPORT_CODES: &[&str] = &[
    "invalid_query",
    "invalid_date",
    "invalid_range",
    "invalid_interval",
    "invalid_group_by",
    "invalid_format",
];
const LIST_CODES: &[&str] = &[
    "invalid_query",
    "invalid_limit",
    "invalid_cursor",
    "invalid_status",
    "invalid_type",
];
const QUERY_ROUTES: [QueryRoute; 6] = [
    QueryRoute {
        path: "/v1/reports/revenue",
        parameters: &["from", "to", "interval", "group_by", "format"],
        codes: REPORT_CODES,
    },
    QueryRoute {
        path: "/v1/reports/mrr",
        parameters: &["from", "to", "group_by", "format"],
        codes: REPORT_CODES,
    },
    QueryRoute {
        path: "/v1/reports/subscribers",
        parameters: &["at", "format"],
        codes: REPORT_CODES,
    },
    QueryRoute {
        path: "/v1/keys",
        parameters: &["limit", "after"],
        codes: LIST_CODES,
    },
    QueryRoute {
        path: "/v1/admin/webhook-events",
        parameters: &["status", "type", "limit", "before"],
        codes: LIST_CODES,
    },
    QueryRoute {
        path: "/v1/plans",
        parameters: &[],
        codes: &[],
    },
];

/// A query string for `route`: each of its parameters usually present, with a value of its
/// form or a hostile one, then now and again a repeat, another route's parameter, a parameter
/// without a value, or junk between them.
fn query(route: &QueryRoute) -> impl Strategy<Value = String> + use<> {
    let months = route.path.ends_with("/mrr");
    let one = move |name: &'static str| {
        prop::option::weighted(0.9, parameter_value(name, months))
            .prop_map(move |value| value.map(|v| format!("{name}={}", v.sent)))
            .boxed()
    };
    let ranged = route.parameters.contains(&"from");
    let mut parameters: Vec<_> = route
        .parameters
        .iter()
        .filter(|&&name| !(ranged && (name == "from" || name == "to")))
        .map(|&name| one(name))
        .collect();
    if ranged {
        parameters.push(
            prop_oneof![
                3 => range(months).prop_map(Some),
                1 => (one("from"), one("to"))
                    .prop_map(|(from, to)| Some(from.into_iter().chain(to).collect::<Vec<_>>().join("&"))),
            ]
            .boxed(),
        );
    }
    let everyone: Vec<&str> = QUERY_ROUTES
        .iter()
        .flat_map(|r| r.parameters)
        .copied()
        .collect();
    let extra = vec(
        prop_oneof![
            (hostile_part(), hostile_part()).prop_map(|(n, v)| format!("{}={}", n.sent, v.sent)),
            (prop::sample::select(everyone), hostile_part())
                .prop_map(|(name, value)| format!("{name}={}", value.sent)),
            prop::sample::select(vec!["", "=", "==", "&", "a=b=c", "%", "+", ";", "limit"])
                .prop_map(str::to_owned),
        ],
        0..2,
    );
    (parameters, extra).prop_map(|(parameters, extra)| {
        parameters
            .into_iter()
            .flatten()
            .chain(extra)
            .collect::<Vec<_>>()
            .join("&")
    })
}

#[test]
fn arbitrary_query_parameters_get_an_answer_or_a_problem_and_change_nothing() {
    let harness = Harness::start();
    let app = harness.app();
    harness.block_on(seed(app));
    let before = harness.block_on(snapshot(app));
    let queries: Vec<_> = QUERY_ROUTES.iter().map(query).collect();
    harness.check(128, (queries, any::<bool>()), |(queries, csv)| {
        harness.block_on(async {
            for (route, query) in QUERY_ROUTES.iter().zip(queries) {
                let mut get = request(app, Method::GET, &format!("{}?{query}", route.path));
                if csv {
                    get = get.header("accept", "text/csv");
                }
                let (status, content_type, body) = answer(app, get, route.codes).await?;
                let content_type = content_type.unwrap_or_default();
                if status < 300 && !content_type.starts_with("text/csv") {
                    prop_assert_eq!(content_type.as_str(), "application/json");
                    let body: Value = serde_json::from_str(&body)
                        .map_err(|e| TestCaseError::fail(format!("not JSON: {e}")))?;
                    prop_assert!(body.is_object(), "{body}");
                }
            }
            prop_assert_eq!(&snapshot(app).await, &before);
            Ok(())
        })
    });
}

/// Any JSON at all, nested a few levels.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        hostile_text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::from),
            btree_map(hostile_text(), inner, 0..5)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// A field that is usually right and sometimes anything at all; sometimes left out.
fn field(right: impl Strategy<Value = Value> + 'static) -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        30 => right.prop_map(Some),
        1 => arbitrary_json().prop_map(Some),
        1 => Just(None),
    ]
}

/// A list of distinct names from `valid`, or of names hostile and valid mixed, repeats and
/// all.
fn names(valid: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => prop::sample::subsequence(valid, 1..=3)
            .prop_map(|names| Value::from(names.into_iter().map(str::to_owned).collect::<Vec<_>>())),
        1 => vec(
            prop_oneof![
                prop::sample::select(valid).prop_map(str::to_owned),
                hostile_text(),
            ],
            0..5,
        )
        .prop_map(Value::from),
    ]
}

/// A `PUT /v1/plans/{id}` body: usually close to valid, or any JSON, or not JSON at all. Prices
/// come from a small pool, so plans compete for them.
fn plan_body() -> impl Strategy<Value = String> {
    let plan_like = (
        field(prop_oneof![
            10 => "[A-Za-z][A-Za-z0-9 ]{0,40}".prop_map(Value::from),
            1 => hostile_text().prop_map(Value::from),
            1 => (60_000usize..80_000).prop_map(|n| Value::from("n".repeat(n))),
        ]),
        field(names(&["price_a", "price_b", "price_c", "plan_d"])),
        field(names(&["articles", "ad_free", "news:local"])),
        field(prop_oneof![
            6 => (0u32..=730).prop_map(Value::from),
            1 => any::<i64>().prop_map(Value::from),
            1 => any::<f64>().prop_map(|f| json!(f)),
        ]),
        field(any::<bool>().prop_map(Value::from)),
        prop::option::weighted(0.05, arbitrary_json()),
    )
        .prop_map(|(name, prices, entitlements, trial, promo, extra)| {
            let mut body = serde_json::Map::new();
            for (key, value) in [
                ("name", name),
                ("stripe_prices", prices),
                ("entitlements", entitlements),
                ("trial_days", trial),
                ("allow_promotion_codes", promo),
                ("extra", extra),
            ] {
                if let Some(value) = value {
                    body.insert(key.to_owned(), value);
                }
            }
            Value::Object(body).to_string()
        });
    prop_oneof![
        8 => plan_like,
        1 => arbitrary_json().prop_map(|v| v.to_string()),
        1 => hostile_text(),
    ]
}

/// Whether `shown` is the plan `sent` asked for, as `PUT /v1/plans/{id}` stores it.
fn stored_as_sent(shown: &Value, sent: &Value) -> bool {
    let mut entitlements: Vec<&str> = sent["entitlements"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    entitlements.sort_unstable();
    entitlements.dedup();
    shown["name"] == sent["name"]
        && shown["stripe_prices"] == sent["stripe_prices"]
        && shown["entitlements"] == json!(entitlements)
        && shown["trial_days"] == *sent.get("trial_days").unwrap_or(&json!(0))
        && shown["allow_promotion_codes"]
            == *sent.get("allow_promotion_codes").unwrap_or(&json!(false))
        && shown["archived"] == false
}

#[test]
fn arbitrary_plan_writes_store_the_plan_asked_for_or_get_a_problem_and_change_nothing() {
    let harness = Harness::start();
    let app = harness.app();
    harness.block_on(seed(app));
    let id = prop_oneof![
        3 => prop::sample::select(vec!["basic", "pro", "p:1", "0"]).prop_map(|id| Part {
            sent: id.to_owned(),
            meant: Some(id.to_owned()),
        }),
        1 => hostile_part(),
    ];
    harness.check(128, (id, plan_body()), |(id, body)| {
        harness.block_on(async {
            let before = snapshot(app).await;
            let path = format!("/v1/plans/{}", id.sent);
            let put = request(app, Method::PUT, &path)
                .header("content-type", "application/json")
                .body(body.clone());
            let codes = [
                "invalid_plan_id",
                "invalid_body",
                "malformed_json",
                "price_in_use",
                "payload_too_large",
            ];
            let (status, _, shown) = answer(app, put, &codes).await?;
            let after = snapshot(app).await;
            if status >= 400 {
                prop_assert_eq!(&after, &before, "a refused PUT {} changed something", path);
                return Ok(());
            }
            let shown: Value = serde_json::from_str(&shown)
                .map_err(|e| TestCaseError::fail(format!("not JSON: {e}")))?;
            let sent: Value = serde_json::from_str(&body).unwrap_or_default();
            let plan_id = shown["id"].as_str().unwrap_or_default();
            prop_assert!(PlanId::parse(plan_id).is_some(), "{shown}");
            if let Some(meant) = &id.meant {
                prop_assert_eq!(plan_id, meant.as_str());
            }
            prop_assert!(stored_as_sent(&shown, &sent), "sent {sent}, stored {shown}");
            let existed = before["/v1/plans"]["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["id"] == plan_id);
            prop_assert_eq!(status, if existed { 200 } else { 201 });
            // The listing shows the plan as answered, and every other plan as it was.
            let others = |state: &Value| -> Vec<Value> {
                state["/v1/plans"]["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["id"] != plan_id)
                    .cloned()
                    .collect()
            };
            prop_assert_eq!(others(&after), others(&before));
            let listed = after["/v1/plans"]["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["id"] == plan_id);
            prop_assert_eq!(listed, Some(&shown));
            for unchanged in ["/v1/keys?limit=500", "/v1/admin/webhook-events?limit=500"] {
                prop_assert_eq!(&after[unchanged], &before[unchanged]);
            }
            Ok(())
        })
    });
}
