//! Loading what finance reports are computed from, and computing them: the mirror's invoices,
//! refunds and subscription history, with the plan catalogue, handed to `reports`.

use std::collections::HashMap;

use chrono_tz::Tz;

use crate::domain::{PastDueGrace, PlanId, Price, StripePriceId};
use crate::reports::{gifts, licences, mrr, periods, revenue};
use crate::store::{Store, StoreError};

/// What the reports read: the mirror, the plans, the time zone and the grace period.
pub struct Reports<'a> {
    /// The mirror.
    pub store: &'a dyn Store,
    /// The zone days and months are cut in.
    pub time_zone: Tz,
    /// How long a `past_due` subscription keeps its worth.
    pub grace: PastDueGrace,
}

/// Which plan owns each price, and what the mirror knows of plan prices.
struct Catalogue {
    plans: HashMap<StripePriceId, PlanId>,
    prices: HashMap<StripePriceId, Price>,
}

impl Reports<'_> {
    async fn catalogue(&self) -> Result<Catalogue, StoreError> {
        let plans = self
            .store
            .list_plans()
            .await?
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
        Ok(Catalogue { plans, prices })
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
        let (mut invoices, mut refunds) = (Vec::new(), Vec::new());
        for stretch in revenue::offset_stretches(self.time_zone, from, to) {
            let (start, end, offset) = (stretch.start, stretch.end, stretch.offset);
            invoices.extend(self.store.invoice_days(start, end, offset).await?);
            refunds.extend(self.store.refund_days(start, end, offset).await?);
        }
        Ok(revenue::report(
            &cut,
            &invoices,
            &refunds,
            &catalogue.plans,
            by_plan,
        ))
    }

    /// MRR for each month of `months`.
    pub async fn mrr(
        &self,
        months: &[periods::Period],
        by_plan: bool,
    ) -> Result<(Vec<mrr::MrrRow>, mrr::Gaps), StoreError> {
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
