//! Plans: what is sold (one or more Stripe prices) and the entitlements it grants.

use chrono::{DateTime, Utc};

/// Whether `s` is a slug: `[a-z0-9][a-z0-9_:-]{0,63}`. Plan ids and entitlement names are slugs,
/// so they are safe in URLs, logs, tokens and CSV cells alike.
fn is_slug(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && s.len() <= 64
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b':' | b'-'))
}

validated_string!(
    /// A plan's id, chosen by the publisher: `all-access`, `digital:yearly`.
    PlanId,
    is_slug,
    "1 to 64 characters from a-z, 0-9, `_`, `:` and `-`, starting with a letter or digit"
);

validated_string!(
    /// A named right: `articles`, `reports`, `newsletters:regional`.
    Entitlement,
    is_slug,
    "1 to 64 characters from a-z, 0-9, `_`, `:` and `-`, starting with a letter or digit"
);

validated_string!(
    /// A Stripe price id (`price_...`), or a legacy plan id (`plan_...`), which older Stripe API
    /// versions use to name the price of a subscription item.
    StripePriceId,
    |s| {
        let rest = s.strip_prefix("price_").or_else(|| s.strip_prefix("plan_"));
        rest.is_some_and(|r| !r.is_empty() && s.len() <= 255 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    },
    "`price_` or `plan_` followed by letters, digits and `_`, 255 characters at most"
);

/// Longest trial Stripe allows, in days.
pub const MAX_TRIAL_DAYS: u32 = 730;
/// Most prices one plan may have.
pub const MAX_PRICES: usize = 20;
/// Most entitlements one plan may grant.
pub const MAX_ENTITLEMENTS: usize = 32;
/// Most months one gift subscription may buy.
pub const MAX_GIFT_MONTHS: u32 = 60;

/// What giving a plan costs and buys: a one-off Stripe price, paid once through Checkout, and
/// the months of the plan's entitlements its code gives whoever redeems it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiftOffer {
    /// The one-off price.
    pub price: StripePriceId,
    /// Months of the plan it buys.
    pub months: u32,
}

/// What a publisher says a plan is; everything in it has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSpec {
    /// The plan's display name.
    pub name: String,
    /// Its prices, the first being the default for checkout.
    pub stripe_prices: Vec<StripePriceId>,
    /// What it grants, sorted, without repeats.
    pub entitlements: Vec<Entitlement>,
    /// Free days before the first payment.
    pub trial_days: u32,
    /// Whether checkout accepts promotion codes.
    pub allow_promotion_codes: bool,
    /// Whether it is sold by the seat: a subscription item's quantity is its number of seats,
    /// and the subscriber shares them with a team.
    pub seats: bool,
    /// How it can be given, if it can.
    pub gift: Option<GiftOffer>,
}

/// Why a plan was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPlan {
    /// The name is empty, too long or has control characters.
    #[error(
        "name must have 1 to 200 characters, none of them control characters, and not be only spaces"
    )]
    Name,
    /// The price list is empty, too long or repeats a price.
    #[error("stripe_prices must list 1 to {MAX_PRICES} distinct prices")]
    Prices,
    /// The entitlement list is empty or too long.
    #[error("entitlements must list 1 to {MAX_ENTITLEMENTS} entitlements")]
    Entitlements,
    /// The trial is longer than Stripe allows.
    #[error("trial_days must be between 0 and {MAX_TRIAL_DAYS}")]
    TrialDays,
    /// A gift price without months, months without a price, or a gift price that is also one
    /// of the plan's subscription prices.
    #[error(
        "gift_price and gift_months go together; gift_months must be between 1 and {MAX_GIFT_MONTHS}, and gift_price must not be one of stripe_prices"
    )]
    Gift,
}

impl PlanSpec {
    /// Checks a plan as a publisher wrote it; repeated entitlements are merged.
    pub fn new(
        name: String,
        stripe_prices: Vec<StripePriceId>,
        mut entitlements: Vec<Entitlement>,
        trial_days: u32,
        allow_promotion_codes: bool,
    ) -> Result<Self, InvalidPlan> {
        let chars = name.chars().count();
        if chars == 0 || chars > 200 || name.trim().is_empty() || name.chars().any(char::is_control)
        {
            return Err(InvalidPlan::Name);
        }
        let mut distinct = stripe_prices.clone();
        distinct.sort();
        distinct.dedup();
        if stripe_prices.is_empty()
            || stripe_prices.len() > MAX_PRICES
            || distinct.len() != stripe_prices.len()
        {
            return Err(InvalidPlan::Prices);
        }
        entitlements.sort();
        entitlements.dedup();
        if entitlements.is_empty() || entitlements.len() > MAX_ENTITLEMENTS {
            return Err(InvalidPlan::Entitlements);
        }
        if trial_days > MAX_TRIAL_DAYS {
            return Err(InvalidPlan::TrialDays);
        }
        Ok(Self {
            name,
            stripe_prices,
            entitlements,
            trial_days,
            allow_promotion_codes,
            seats: false,
            gift: None,
        })
    }

    /// The plan sold by the seat, or not.
    pub fn with_seats(self, seats: bool) -> Self {
        Self { seats, ..self }
    }

    /// The plan with a gift offer, checked: both halves or neither.
    pub fn with_gift(
        self,
        price: Option<StripePriceId>,
        months: Option<u32>,
    ) -> Result<Self, InvalidPlan> {
        let gift = match (price, months) {
            (None, None) => None,
            (Some(price), Some(months))
                if (1..=MAX_GIFT_MONTHS).contains(&months)
                    && !self.stripe_prices.contains(&price) =>
            {
                Some(GiftOffer { price, months })
            }
            _ => return Err(InvalidPlan::Gift),
        };
        Ok(Self { gift, ..self })
    }
}

/// A stored plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Its id.
    pub id: PlanId,
    /// What it is.
    pub spec: PlanSpec,
    /// When it was first stored.
    pub created_at: DateTime<Utc>,
    /// When it was last replaced.
    pub updated_at: DateTime<Utc>,
    /// When it was archived: existing subscribers keep what it grants, nobody new may buy it.
    pub archived_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(s: &str) -> StripePriceId {
        StripePriceId::parse(s).unwrap()
    }

    fn ent(s: &str) -> Entitlement {
        Entitlement::parse(s).unwrap()
    }

    #[test]
    fn slugs_follow_the_documented_pattern() {
        for good in [
            "a",
            "all-access",
            "digital:yearly",
            "0",
            "x_y",
            &"a".repeat(64),
        ] {
            assert!(PlanId::parse(good).is_some(), "{good:?}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            ":a",
            "A",
            "all access",
            "é",
            &"a".repeat(65),
            "a/b",
            "a.b",
        ] {
            assert!(PlanId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn prices_and_legacy_plans_are_accepted_and_other_ids_are_not() {
        assert!(StripePriceId::parse("price_1TPeerMonthly01").is_some());
        assert!(StripePriceId::parse("plan_Gold_2019").is_some());
        for bad in [
            "price_",
            "prod_123",
            "price-123",
            "price_12 3",
            "",
            "PRICE_1",
        ] {
            assert!(StripePriceId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_plan_needs_a_name_prices_and_entitlements() {
        let ok = |name: &str, prices: Vec<StripePriceId>, ents: Vec<Entitlement>, trial| {
            PlanSpec::new(name.into(), prices, ents, trial, false)
        };
        assert!(
            ok(
                "All-Access",
                vec![price("price_1")],
                vec![ent("articles")],
                0
            )
            .is_ok()
        );
        assert_eq!(
            ok(" ", vec![price("price_1")], vec![ent("articles")], 0),
            Err(InvalidPlan::Name)
        );
        assert_eq!(
            ok("A", vec![], vec![ent("articles")], 0),
            Err(InvalidPlan::Prices)
        );
        assert_eq!(
            ok(
                "A",
                vec![price("price_1"), price("price_1")],
                vec![ent("articles")],
                0
            ),
            Err(InvalidPlan::Prices)
        );
        assert_eq!(
            ok("A", vec![price("price_1")], vec![], 0),
            Err(InvalidPlan::Entitlements)
        );
        assert_eq!(
            ok("A", vec![price("price_1")], vec![ent("articles")], 731),
            Err(InvalidPlan::TrialDays)
        );
    }

    #[test]
    fn entitlements_are_sorted_and_merged_and_prices_keep_their_order() {
        let spec = PlanSpec::new(
            "Bundle".into(),
            vec![price("price_b"), price("price_a")],
            vec![ent("reports"), ent("articles"), ent("reports")],
            14,
            true,
        )
        .unwrap();
        assert_eq!(spec.entitlements, vec![ent("articles"), ent("reports")]);
        assert_eq!(spec.stripe_prices, vec![price("price_b"), price("price_a")]);
    }

    #[test]
    fn a_gift_offer_needs_a_price_of_its_own_and_months() {
        let spec = PlanSpec::new(
            "Digital".into(),
            vec![price("price_monthly")],
            vec![ent("articles")],
            0,
            false,
        )
        .unwrap();
        assert_eq!(spec.clone().with_gift(None, None).unwrap().gift, None);
        let given = spec
            .clone()
            .with_gift(Some(price("price_gift")), Some(12))
            .unwrap();
        assert_eq!(
            given.gift,
            Some(GiftOffer {
                price: price("price_gift"),
                months: 12
            })
        );
        for (gift_price, months) in [
            (Some(price("price_gift")), None),
            (None, Some(12)),
            (Some(price("price_gift")), Some(0)),
            (Some(price("price_gift")), Some(MAX_GIFT_MONTHS + 1)),
            (Some(price("price_monthly")), Some(12)),
        ] {
            assert_eq!(
                spec.clone().with_gift(gift_price.clone(), months),
                Err(InvalidPlan::Gift),
                "{gift_price:?} {months:?}"
            );
        }
    }
}
