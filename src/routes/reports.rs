//! `/v1/reports/*`: revenue (cash and recognised), MRR, subscribers, disputes, licences and
//! gifts for finance, as JSON or CSV.

use actix_web::http::header::{ACCEPT, CONTENT_DISPOSITION, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::reports::periods::{self, DateRange, Interval, InvalidRange, Period};
use crate::reports::revenue::RevenueRow;
use crate::reports::table::to_csv;

/// The columns of each report's CSV, in order: the fields of its JSON rows.
const REVENUE_COLUMNS: [&str; 12] = [
    "period",
    "period_start",
    "period_end",
    "plan_id",
    "currency",
    "gross",
    "tax",
    "refunds",
    "net",
    "invoices",
    "disputes_lost",
    "net_after_disputes",
];
const RECOGNIZED_COLUMNS: [&str; 8] = [
    "month",
    "plan_id",
    "currency",
    "deferred_start",
    "billed",
    "refunds",
    "recognized",
    "deferred_end",
];
const DISPUTE_COLUMNS: [&str; 5] = ["month", "currency", "status", "disputes", "amount"];
const MRR_COLUMNS: [&str; 13] = [
    "month",
    "plan_id",
    "currency",
    "mrr_start",
    "new",
    "expansion",
    "contraction",
    "churned",
    "reactivated",
    "mrr",
    "subscribers",
    "churn_rate",
    "arpu",
];
const SUBSCRIBER_COLUMNS: [&str; 3] = ["plan_id", "status", "subscriptions"];
const GIFT_COLUMNS: [&str; 5] = [
    "month",
    "links_created",
    "redemptions",
    "recipients",
    "subscribed_within_30_days",
];
const LICENCE_COLUMNS: [&str; 6] = [
    "month",
    "licence_id",
    "name",
    "members",
    "readers",
    "articles_opened",
];

/// `?from=&to=&interval=&group_by=&format=`
#[derive(Debug, Deserialize)]
pub struct RevenueQuery {
    from: Option<String>,
    to: Option<String>,
    interval: Option<String>,
    group_by: Option<String>,
    format: Option<String>,
}

/// `?from=&to=&group_by=&format=`, for the monthly reports grouped by plan or not (MRR,
/// recognised revenue).
#[derive(Debug, Deserialize)]
pub struct MrrQuery {
    from: Option<String>,
    to: Option<String>,
    group_by: Option<String>,
    format: Option<String>,
}

/// `?from=&to=&format=`, for the monthly reports without grouping (licences, gifts).
#[derive(Debug, Deserialize)]
pub struct MonthsQuery {
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

/// `?at=&format=`
#[derive(Debug, Deserialize)]
pub struct SubscribersQuery {
    at: Option<String>,
    format: Option<String>,
}

/// How an answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
}

/// `format=` wins; otherwise CSV when the `Accept` header asks for `text/csv`.
fn format(req: &HttpRequest, asked: Option<&str>) -> Result<Format, ApiError> {
    match asked {
        Some("json") => Ok(Format::Json),
        Some("csv") => Ok(Format::Csv),
        Some(other) => Err(ApiError::invalid(
            "invalid_format",
            format!(
                "format is `json` or `csv`, not `{}`",
                other.chars().take(32).collect::<String>()
            ),
        )),
        None => {
            let accepts_csv = req
                .headers()
                .get_all(ACCEPT)
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|v| v.split(';').next().is_some_and(|m| m.trim() == "text/csv"));
            Ok(if accepts_csv {
                Format::Csv
            } else {
                Format::Json
            })
        }
    }
}

fn range_problem(err: InvalidRange) -> ApiError {
    let code = match err {
        InvalidRange::Malformed { .. } => "invalid_date",
        InvalidRange::Reversed { .. } | InvalidRange::TooLong { .. } => "invalid_range",
    };
    ApiError::invalid(code, err.to_string())
}

fn required<'q>(field: &'static str, value: Option<&'q String>) -> Result<&'q str, ApiError> {
    value
        .map(String::as_str)
        .ok_or_else(|| ApiError::invalid("invalid_date", format!("`{field}` is required")))
}

/// The months `from` and `to` (both `YYYY-MM`, both required), and the months from one to the
/// other as cut in `time_zone`.
fn month_range(
    from: Option<&String>,
    to: Option<&String>,
    time_zone: Tz,
) -> Result<(NaiveDate, NaiveDate, Vec<Period>), ApiError> {
    let from = periods::parse_month("from", required("from", from)?).map_err(range_problem)?;
    let to = periods::parse_month("to", required("to", to)?).map_err(range_problem)?;
    let months = periods::months(from, to, time_zone).map_err(range_problem)?;
    Ok((from, to, months))
}

/// Whether a `group_by` value groups by plan; `allowed` lists the values the report takes.
fn by_plan(group_by: Option<&str>, allowed: &[&str]) -> Result<bool, ApiError> {
    let value = group_by.unwrap_or("none");
    if !allowed.contains(&value) {
        return Err(ApiError::invalid(
            "invalid_group_by",
            format!(
                "group_by is one of {}, not `{}`",
                allowed.join(", "),
                value.chars().take(32).collect::<String>()
            ),
        ));
    }
    Ok(value == "plan")
}

/// A grouped report's columns: `plan_id` only when grouped by plan.
fn grouped(columns: &[&'static str], by_plan: bool) -> Vec<&'static str> {
    columns
        .iter()
        .copied()
        .filter(|c| by_plan || *c != "plan_id")
        .collect()
}

/// The answer: the JSON `body`, or its `rows` as CSV named `filename`.
fn answer<B: Serialize, R: Serialize>(
    format: Format,
    body: &B,
    columns: &[&str],
    rows: &[R],
    filename: &str,
) -> Result<HttpResponse, ApiError> {
    match format {
        Format::Json => Ok(HttpResponse::Ok().json(body)),
        Format::Csv => {
            let csv = to_csv(columns, rows).map_err(|e| ApiError::Internal(e.into()))?;
            Ok(HttpResponse::Ok()
                .insert_header((CONTENT_TYPE, "text/csv; charset=utf-8"))
                .insert_header((
                    CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{filename}\""),
                ))
                .body(csv))
        }
    }
}

/// The revenue report as JSON.
#[derive(Debug, Serialize)]
struct RevenueReport<'a> {
    from: String,
    to: String,
    interval: &'static str,
    group_by: &'a str,
    time_zone: &'static str,
    rows: &'a [RevenueRow],
}

/// The subscribers report as JSON.
#[derive(Debug, Serialize)]
struct SubscribersReport<'a> {
    at: String,
    time_zone: &'static str,
    rows: &'a [SubscriberRow],
}

/// Revenue per day, ISO week or month, per currency (and plan).
#[tracing::instrument(skip_all)]
pub async fn revenue(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<RevenueQuery>,
) -> Result<HttpResponse, ApiError> {
    let format = format(&req, query.format.as_deref())?;
    let from = periods::parse_date("from", required("from", query.from.as_ref())?)
        .map_err(range_problem)?;
    let to =
        periods::parse_date("to", required("to", query.to.as_ref())?).map_err(range_problem)?;
    let range = DateRange::new(from, to).map_err(range_problem)?;
    let interval_name = query.interval.as_deref().unwrap_or("month");
    let interval = Interval::parse(interval_name).ok_or_else(|| {
        ApiError::invalid(
            "invalid_interval",
            format!(
                "interval is one of day, week, month, not `{}`",
                interval_name.chars().take(32).collect::<String>()
            ),
        )
    })?;
    let group_by = query.group_by.as_deref().unwrap_or("none");
    let plan = by_plan(Some(group_by), &["plan", "currency", "none"])?;
    let rows = state.reports().revenue(range, interval, plan).await?;
    let body = RevenueReport {
        from: from.to_string(),
        to: to.to_string(),
        interval: interval.as_str(),
        group_by,
        time_zone: state.settings.billing().reporting_time_zone.name(),
        rows: &rows,
    };
    answer(
        format,
        &body,
        &grouped(&REVENUE_COLUMNS, plan),
        &rows,
        &format!("revenue-{from}-{to}.csv"),
    )
}

/// A month-by-month report grouped by currency and optionally plan (MRR, recognised revenue)
/// as JSON.
#[derive(Debug, Serialize)]
struct GroupedReport<'a, R> {
    from: &'a str,
    to: &'a str,
    group_by: &'a str,
    time_zone: &'static str,
    rows: &'a [R],
    /// What the figures could not take into account (MRR only).
    #[serde(skip_serializing_if = "Option::is_none")]
    notes: Option<Vec<String>>,
}

/// What a grouped month-by-month report was asked for.
struct GroupedRequest<'q> {
    monthly: MonthlyRequest,
    group_by: &'q str,
    by_plan: bool,
}

impl<'q> GroupedRequest<'q> {
    fn parse(state: &AppState, req: &HttpRequest, query: &'q MrrQuery) -> Result<Self, ApiError> {
        let monthly = MonthlyRequest::parse(
            state,
            req,
            &MonthsQuery {
                from: query.from.clone(),
                to: query.to.clone(),
                format: query.format.clone(),
            },
        )?;
        let group_by = query.group_by.as_deref().unwrap_or("none");
        let by_plan = by_plan(Some(group_by), &["plan", "none"])?;
        Ok(Self {
            monthly,
            group_by,
            by_plan,
        })
    }

    /// The answer with `rows` (and `notes`), as JSON or as CSV named `NAME-FROM-TO.csv`.
    fn answer<R: Serialize>(
        &self,
        rows: &[R],
        notes: Option<Vec<String>>,
        columns: &[&'static str],
        name: &str,
    ) -> Result<HttpResponse, ApiError> {
        let request = &self.monthly;
        let body = GroupedReport {
            from: &request.from,
            to: &request.to,
            group_by: self.group_by,
            time_zone: request.time_zone.name(),
            rows,
            notes,
        };
        answer(
            request.format,
            &body,
            &grouped(columns, self.by_plan),
            rows,
            &format!("{name}-{}-{}.csv", request.from, request.to),
        )
    }
}

/// MRR and its movements per month, per currency (and plan).
#[tracing::instrument(skip_all)]
pub async fn mrr(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<MrrQuery>,
) -> Result<HttpResponse, ApiError> {
    let request = GroupedRequest::parse(&state, &req, &query)?;
    let computed = state
        .reports()
        .mrr(&request.monthly.months, request.by_plan)
        .await?;
    let (rows, gaps) = &*computed;
    let notes: Vec<String> = gaps
        .unknown_prices
        .iter()
        .map(|price| {
            format!(
                "price {price} belongs to a plan but its amount and cycle are unknown: its items \
                 count as 0 (a reconcile or a price.* event fills it in)"
            )
        })
        .collect();
    request.answer(rows, Some(notes), &MRR_COLUMNS, "mrr")
}

/// A row of the subscribers report.
#[derive(Debug, Serialize)]
struct SubscriberRow {
    plan_id: String,
    status: String,
    subscriptions: u64,
}

/// Subscriptions in good standing at the end of a day, per plan and status.
#[tracing::instrument(skip_all)]
pub async fn subscribers(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<SubscribersQuery>,
) -> Result<HttpResponse, ApiError> {
    let format = format(&req, query.format.as_deref())?;
    let at: NaiveDate =
        periods::parse_date("at", required("at", query.at.as_ref())?).map_err(range_problem)?;
    let rows: Vec<SubscriberRow> = state
        .reports()
        .subscribers(at)
        .await?
        .into_iter()
        .map(|(plan_id, status, subscriptions)| SubscriberRow {
            plan_id,
            status,
            subscriptions,
        })
        .collect();
    let body = SubscribersReport {
        at: at.to_string(),
        time_zone: state.settings.billing().reporting_time_zone.name(),
        rows: &rows,
    };
    answer(
        format,
        &body,
        &SUBSCRIBER_COLUMNS,
        &rows,
        &format!("subscribers-{at}.csv"),
    )
}

/// A month-by-month report without grouping (licences, gifts) as JSON.
#[derive(Debug, Serialize)]
struct MonthlyReport<'a, R> {
    from: &'a str,
    to: &'a str,
    time_zone: &'static str,
    rows: &'a [R],
}

/// What a month-by-month report was asked for: how to answer, and which months.
struct MonthlyRequest {
    format: Format,
    months: Vec<Period>,
    from: String,
    to: String,
    time_zone: Tz,
}

impl MonthlyRequest {
    fn parse(state: &AppState, req: &HttpRequest, query: &MonthsQuery) -> Result<Self, ApiError> {
        let format = format(req, query.format.as_deref())?;
        let time_zone = state.settings.billing().reporting_time_zone;
        let (from, to, months) = month_range(query.from.as_ref(), query.to.as_ref(), time_zone)?;
        Ok(Self {
            format,
            months,
            from: from.format("%Y-%m").to_string(),
            to: to.format("%Y-%m").to_string(),
            time_zone,
        })
    }

    /// The answer with `rows`, as JSON or as CSV named `NAME-FROM-TO.csv`.
    fn answer<R: Serialize>(
        &self,
        rows: &[R],
        columns: &[&str],
        name: &str,
    ) -> Result<HttpResponse, ApiError> {
        let body = MonthlyReport {
            from: &self.from,
            to: &self.to,
            time_zone: self.time_zone.name(),
            rows,
        };
        answer(
            self.format,
            &body,
            columns,
            rows,
            &format!("{name}-{}-{}.csv", self.from, self.to),
        )
    }
}

/// Licence usage per month: members, readers who opened articles, articles opened.
#[tracing::instrument(skip_all)]
pub async fn licences(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<MonthsQuery>,
) -> Result<HttpResponse, ApiError> {
    let request = MonthlyRequest::parse(&state, &req, &query)?;
    let rows = state.reports().licences(&request.months).await?;
    request.answer(&rows, &LICENCE_COLUMNS, "licences")
}

/// Gifting per month: links made, redemptions, recipients, and recipients who subscribed.
#[tracing::instrument(skip_all)]
pub async fn gifts(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<MonthsQuery>,
) -> Result<HttpResponse, ApiError> {
    let request = MonthlyRequest::parse(&state, &req, &query)?;
    let rows = state.reports().gifts(&request.months).await?;
    request.answer(&rows, &GIFT_COLUMNS, "gifts")
}

/// Recognised and deferred revenue per month, per currency (and plan).
#[tracing::instrument(skip_all)]
pub async fn recognized_revenue(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<MrrQuery>,
) -> Result<HttpResponse, ApiError> {
    let request = GroupedRequest::parse(&state, &req, &query)?;
    let rows = state
        .reports()
        .recognized(&request.monthly.months, request.by_plan, state.clock.now())
        .await?;
    request.answer(&rows, None, &RECOGNIZED_COLUMNS, "recognized-revenue")
}

/// Disputes opened per month, by currency and status.
#[tracing::instrument(skip_all)]
pub async fn disputes(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<MonthsQuery>,
) -> Result<HttpResponse, ApiError> {
    let request = MonthlyRequest::parse(&state, &req, &query)?;
    let rows = state.reports().disputes(&request.months).await?;
    request.answer(&rows, &DISPUTE_COLUMNS, "disputes")
}
