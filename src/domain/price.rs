//! Stripe prices as the mirror knows them: what a plan's offers cost and how often they bill.
//! A price's amount, currency and interval never change in Stripe; its `active` flag and
//! nickname do, so the newest snapshot wins.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::{StripePriceId, Version};

/// How often a recurring price bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    /// Daily.
    Day,
    /// Weekly.
    Week,
    /// Monthly.
    Month,
    /// Yearly.
    Year,
}

impl Interval {
    /// Stripe's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Year => "year",
        }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name Stripe does not use for an interval.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown price interval `{0}`")]
pub struct UnknownInterval(pub String);

impl FromStr for Interval {
    type Err = UnknownInterval;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "day" => Ok(Self::Day),
            "week" => Ok(Self::Week),
            "month" => Ok(Self::Month),
            "year" => Ok(Self::Year),
            other => Err(UnknownInterval(other.to_owned())),
        }
    }
}

/// The billing cycle of a recurring price: every `interval_count` `interval`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Recurring {
    /// The unit.
    pub interval: Interval,
    /// How many units one cycle lasts (at least 1).
    pub interval_count: i64,
}

/// A Stripe price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Price {
    /// `price_...` (or a legacy `plan_...`).
    pub id: StripePriceId,
    /// Its product (`prod_...`), when known.
    pub product: Option<String>,
    /// Whether new purchases may use it; a deleted price is inactive.
    pub active: bool,
    /// Three-letter currency code, lower case.
    pub currency: String,
    /// Amount per unit in minor units; `None` for tiered or custom-amount prices.
    pub unit_amount: Option<i64>,
    /// The billing cycle; `None` for a one-off price.
    pub recurring: Option<Recurring>,
    /// The nickname shown in Stripe's dashboard.
    pub nickname: Option<String>,
    /// Which snapshot this is.
    pub version: Version,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_interval_reads_back_from_its_name_and_others_are_refused() {
        for interval in [
            Interval::Day,
            Interval::Week,
            Interval::Month,
            Interval::Year,
        ] {
            assert_eq!(interval.as_str().parse::<Interval>(), Ok(interval));
        }
        assert_eq!(
            "fortnight".parse::<Interval>(),
            Err(UnknownInterval("fortnight".into()))
        );
    }
}
