//! Loading what finance reports are computed from, and computing them: the mirror's invoices,
//! refunds and subscription history, with the plan catalogue, handed to `reports`.
//!
//! MRR, which reads every subscription's whole history, is kept computed: an answer is kept with
//! the report generation it was computed at (which every change to the mirror or the plans moves
//! on, in its own transaction) and served again while the generation stays, and a background task
//! computes the dashboard's first view again whenever the generation moves, so that the page
//! opens without waiting for it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{Datelike, Months};
use chrono_tz::Tz;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::domain::{PastDueGrace, PlanId, Price, StripePriceId};
use crate::reports::{disputes, gifts, licences, mrr, periods, recognized, revenue};
use crate::store::{Store, StoreError};

/// What the reports read: the mirror, the plans, the time zone and the grace period.
pub struct Reports<'a> {
    /// The mirror.
    pub store: &'a dyn Store,
    /// The zone days and months are cut in.
    pub time_zone: Tz,
    /// How long a `past_due` subscription keeps its worth.
    pub grace: PastDueGrace,
    /// MRR answers already computed.
    pub cache: &'a ReportCache,
}

/// An MRR answer: its rows, and why some subscriptions were worth less than they might be.
pub type MrrAnswer = (Vec<mrr::MrrRow>, mrr::Gaps);

/// What an MRR answer is kept by: its first and last month, and whether it is by plan.
type MrrQuestion = (String, String, bool);

/// An MRR answer and the report generation it was computed at.
type Kept = (i64, Arc<MrrAnswer>);

/// MRR answers by question, each with the report generation it was computed at.
#[derive(Clone, Default)]
pub struct ReportCache(Arc<Mutex<HashMap<MrrQuestion, Kept>>>);

impl ReportCache {
    /// Most answers kept; past it, all are dropped (they are recomputed on demand).
    const CAPACITY: usize = 64;

    fn get(&self, key: &MrrQuestion, generation: i64) -> Option<Arc<MrrAnswer>> {
        let entries = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(at, _)| *at == generation)
            .map(|(_, answer)| Arc::clone(answer))
    }

    fn put(&self, key: MrrQuestion, generation: i64, answer: Arc<MrrAnswer>) {
        let mut entries = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= Self::CAPACITY && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, (generation, answer));
    }
}

/// How often the background task looks whether the dashboard's first view needs computing.
const WARM_EVERY: Duration = Duration::from_secs(5);
/// The months the dashboard opens on: this one and the five before.
const DASHBOARD_MONTHS: u32 = 6;

/// Keeps the MRR of the dashboard's first view (the last six months, whole and by plan)
/// computed at the current report generation.
pub fn spawn_warmer(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    (time_zone, grace): (Tz, PastDueGrace),
    cache: ReportCache,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(WARM_EVERY);
        loop {
            ticks.tick().await;
            let today = clock.now().with_timezone(&time_zone).date_naive();
            let Some(to) = today.with_day(1) else {
                continue;
            };
            let Some(months) = to
                .checked_sub_months(Months::new(DASHBOARD_MONTHS - 1))
                .and_then(|from| periods::months(from, to, time_zone).ok())
            else {
                continue;
            };
            let reports = Reports {
                store: store.as_ref(),
                time_zone,
                grace,
                cache: &cache,
            };
            for by_plan in [false, true] {
                if let Err(e) = reports.mrr(&months, by_plan).await {
                    tracing::debug!(error = %e, "computing the dashboard's MRR ahead failed");
                }
            }
        }
    })
}

/// Which plan owns each price, and what the mirror knows of plan prices.
struct Catalogue {
    plans: HashMap<StripePriceId, PlanId>,
    gift_prices: HashSet<StripePriceId>,
    prices: HashMap<StripePriceId, Price>,
}

impl Reports<'_> {
    async fn catalogue(&self) -> Result<Catalogue, StoreError> {
        let listed = self.store.list_plans().await?;
        let gift_prices = listed
            .iter()
            .filter_map(|plan| plan.spec.gift.as_ref().map(|gift| gift.price.clone()))
            .collect();
        let plans = listed
            .into_iter()
            // A gift's one-off price is revenue of the plan given (never MRR: no subscription
            // carries it).
            .flat_map(|plan| {
                let id = plan.id;
                plan.spec
                    .stripe_prices
                    .into_iter()
                    .chain(plan.spec.gift.map(|gift| gift.price))
                    .map(move |price| (price, id.clone()))
            })
            .collect();
        let prices = self
            .store
            .plan_prices(None)
            .await?
            .into_iter()
            .map(|price| (price.id.clone(), price))
            .collect();
        Ok(Catalogue {
            plans,
            gift_prices,
            prices,
        })
    }

    /// Revenue over `range`, cut by `interval`.
    pub async fn revenue(
        &self,
        range: periods::DateRange,
        interval: periods::Interval,
        by_plan: bool,
    ) -> Result<Vec<revenue::RevenueRow>, StoreError> {
        let cut = periods::periods(range, interval, self.time_zone);
        let (Some(first), Some(last)) = (cut.first(), cut.last()) else {
            return Ok(Vec::new());
        };
        let (from, to) = (first.starts.timestamp(), last.ends.timestamp());
        let catalogue = self.catalogue().await?;
        let (mut invoices, mut refunds, mut disputes) = (Vec::new(), Vec::new(), Vec::new());
        for stretch in revenue::offset_stretches(self.time_zone, from, to) {
            let (start, end, offset) = (stretch.start, stretch.end, stretch.offset);
            invoices.extend(self.store.invoice_days(start, end, offset).await?);
            refunds.extend(self.store.refund_days(start, end, offset).await?);
            disputes.extend(self.store.lost_disputes(start, end, offset).await?);
        }
        Ok(revenue::report(
            &cut,
            &invoices,
            &refunds,
            &disputes,
            &catalogue.plans,
            by_plan,
        ))
    }

    /// Recognised and deferred revenue for each month of `months`, as of `now`.
    pub async fn recognized(
        &self,
        months: &[periods::Period],
        by_plan: bool,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<recognized::RecognizedRow>, StoreError> {
        let (Some(first), Some(last)) = (months.first(), months.last()) else {
            return Ok(Vec::new());
        };
        let before = last.ends.timestamp();
        let catalogue = self.catalogue().await?;
        // Services reach years beyond the months asked for; the zone's offsets are read
        // once for a generous span around them, and asked of the zone beyond it.
        const SPAN: i64 = 6 * 366 * 86_400;
        let stretches = revenue::offset_stretches(
            self.time_zone,
            first.starts.timestamp() - SPAN,
            before + SPAN,
        );
        let gifts = self.store.gift_sales(before).await?;
        let time_zone = self.time_zone;
        let local_day = move |at: i64| -> i64 {
            let index = stretches.partition_point(|s| s.start <= at);
            let offset = match index.checked_sub(1).map(|i| &stretches[i]) {
                Some(stretch) if at < stretch.end => stretch.offset,
                _ => revenue::offset_at(time_zone, at),
            };
            (at + offset).div_euclid(86_400)
        };
        let context = recognized::Context {
            local_day: &local_day,
            plans: &catalogue.plans,
            gift_prices: &catalogue.gift_prices,
            now: now.timestamp(),
            by_plan,
        };
        // A million invoices are booked as they are read, never all held at once.
        let mut recognizer = recognized::Recognizer::new(months, &context);
        self.store
            .each_invoice_service(before, &mut |invoice| recognizer.add_invoice(invoice))
            .await?;
        Ok(recognizer.finish(&gifts))
    }

    /// Disputes opened in each month of `months`, by currency and status now.
    pub async fn disputes(
        &self,
        months: &[periods::Period],
    ) -> Result<Vec<disputes::DisputeRow>, StoreError> {
        let (Some(first), Some(last)) = (months.first(), months.last()) else {
            return Ok(Vec::new());
        };
        let mut days = Vec::new();
        let (from, to) = (first.starts.timestamp(), last.ends.timestamp());
        for stretch in revenue::offset_stretches(self.time_zone, from, to) {
            days.extend(
                self.store
                    .dispute_days(stretch.start, stretch.end, stretch.offset)
                    .await?,
            );
        }
        Ok(disputes::report(months, &days))
    }

    /// MRR for each month of `months`: as computed before while nothing it is computed from
    /// changed, else computed now.
    pub async fn mrr(
        &self,
        months: &[periods::Period],
        by_plan: bool,
    ) -> Result<Arc<MrrAnswer>, StoreError> {
        let (Some(first), Some(last)) = (months.first(), months.last()) else {
            return Ok(Arc::new((Vec::new(), mrr::Gaps::default())));
        };
        let key = (first.label.clone(), last.label.clone(), by_plan);
        let generation = self.store.report_generation().await?;
        if let Some(answer) = self.cache.get(&key, generation) {
            return Ok(answer);
        }
        let answer = Arc::new(self.compute_mrr(months, by_plan).await?);
        self.cache.put(key, generation, Arc::clone(&answer));
        Ok(answer)
    }

    async fn compute_mrr(
        &self,
        months: &[periods::Period],
        by_plan: bool,
    ) -> Result<MrrAnswer, StoreError> {
        let Some(last) = months.last() else {
            return Ok((Vec::new(), mrr::Gaps::default()));
        };
        let before = last.ends.timestamp();
        let catalogue = self.catalogue().await?;
        let histories = self.store.subscription_histories(before).await?;
        let discounted = self.store.discounted_invoices(before).await?;
        let inputs = mrr::Inputs {
            histories: &histories,
            discounted: &discounted,
            prices: &catalogue.prices,
            plans: &catalogue.plans,
            grace: self.grace,
        };
        Ok(mrr::report(&inputs, months, by_plan, self.time_zone))
    }

    /// Gifting per month: links made, redemptions, recipients, and recipients who subscribed.
    pub async fn gifts(
        &self,
        months: &[periods::Period],
    ) -> Result<Vec<gifts::GiftRow>, StoreError> {
        let (Some(first), Some(last)) = (months.first(), months.last()) else {
            return Ok(Vec::new());
        };
        let activity = self.store.gift_activity(first.starts, last.ends).await?;
        Ok(gifts::report(&activity, months))
    }

    /// Licence usage per month: members, readers and articles opened.
    pub async fn licences(
        &self,
        months: &[periods::Period],
    ) -> Result<Vec<licences::LicenceUsageRow>, StoreError> {
        let (Some(first), Some(last)) = (months.first(), months.last()) else {
            return Ok(Vec::new());
        };
        let mut inputs = licences::Inputs {
            licences: self.store.licence_entries().await?,
            ..licences::Inputs::default()
        };
        for month in months {
            for (licence, count) in self
                .store
                .licence_members_between(month.starts, month.ends)
                .await?
            {
                inputs.members.insert((month.label.clone(), licence), count);
            }
        }
        for (month, licence, openings) in self
            .store
            .licence_openings(&first.label, &last.label)
            .await?
        {
            inputs.openings.insert((month, licence), openings);
        }
        Ok(licences::report(&inputs, months))
    }

    /// Subscriptions in good standing at the end of `day`, by plan and status.
    pub async fn subscribers(
        &self,
        day: chrono::NaiveDate,
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        let next = day.succ_opt().unwrap_or(day);
        let boundary = crate::domain::meter::local_midnight(self.time_zone, next).timestamp();
        let catalogue = self.catalogue().await?;
        let histories = self.store.subscription_histories(boundary).await?;
        let discounted = HashMap::new();
        let inputs = mrr::Inputs {
            histories: &histories,
            discounted: &discounted,
            prices: &catalogue.prices,
            plans: &catalogue.plans,
            grace: self.grace,
        };
        Ok(mrr::subscribers(&inputs, boundary)
            .into_iter()
            .map(|((plan, status), count)| (plan, status, count))
            .collect())
    }
}
