//! Subscriptions, with the prices their items carry.

use serde_json::Value;

use super::ObjectError;
use super::customers::reader_in_metadata;
use super::fields::{id, int, list, text, time};
use super::prices::price;
use crate::domain::{
    Price, ReaderId, StripePriceId, Subscription, SubscriptionItem, SubscriptionStatus, Version,
};

/// A subscription snapshot, and the reader its metadata (or its expanded customer's) names.
pub fn subscription(
    object: &Value,
    version: Version,
) -> Result<(Subscription, Option<ReaderId>), ObjectError> {
    let status = text(object, "/status").ok_or(ObjectError::Missing("status"))?;
    let status = status
        .parse::<SubscriptionStatus>()
        .map_err(|_| ObjectError::UnknownStatus {
            kind: "subscription status",
            value: status,
        })?;
    let entries = list(object, "/items/data");
    let mut items = Vec::with_capacity(entries.len());
    for entry in entries {
        // An item priced with something that is no price id grants nothing; keep it out.
        let Some(price) = id(entry, "/price")
            .or_else(|| id(entry, "/plan"))
            .and_then(|p| StripePriceId::parse(&p))
        else {
            continue;
        };
        items.push(SubscriptionItem {
            id: text(entry, "/id").ok_or(ObjectError::Missing("items.data[].id"))?,
            price,
            quantity: int(entry, "/quantity").unwrap_or(1),
        });
    }
    // Basil moved the period onto each item; before it, the subscription had one.
    let current_period_start = time(object, "/current_period_start").or_else(|| {
        entries
            .iter()
            .filter_map(|e| time(e, "/current_period_start"))
            .min()
    });
    let current_period_end = time(object, "/current_period_end").or_else(|| {
        entries
            .iter()
            .filter_map(|e| time(e, "/current_period_end"))
            .max()
    });
    let subscription = Subscription {
        id: text(object, "/id").ok_or(ObjectError::Missing("id"))?,
        customer_id: id(object, "/customer").ok_or(ObjectError::Missing("customer"))?,
        status,
        items,
        currency: text(object, "/currency"),
        current_period_start,
        current_period_end,
        cancel_at_period_end: object
            .get("cancel_at_period_end")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        cancel_at: time(object, "/cancel_at"),
        canceled_at: time(object, "/canceled_at"),
        ended_at: time(object, "/ended_at"),
        trial_end: time(object, "/trial_end"),
        past_due_since: None,
        version,
    };
    // A reconcile expands the customer, whose metadata may name the reader instead.
    let reader_id = reader_in_metadata(object).or_else(|| {
        object
            .get("customer")
            .filter(|c| c.is_object())
            .and_then(reader_in_metadata)
    });
    Ok((subscription, reader_id))
}

/// The prices a subscription's items carry as objects; unreadable ones are left out, since the
/// subscription itself does not depend on them.
pub(super) fn item_prices<'a>(
    subscription: &'a Value,
    version: &'a Version,
) -> impl Iterator<Item = Price> + 'a {
    list(subscription, "/items/data").iter().filter_map(|item| {
        item.get("price")
            .filter(|p| p.is_object())
            .and_then(|p| price(p, version.clone()).ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Change, Interval, Recurring};
    use crate::stripe::objects::changes;
    use crate::stripe::objects::fixtures::fixture;

    #[test]
    fn a_subscription_event_carries_its_items_prices_at_the_events_version() {
        let event = fixture("created");
        let price = match changes("customer.subscription.created", &event)
            .unwrap()
            .pop()
        {
            Some(Change::Price(price)) => price,
            other => panic!("not a price: {other:?}"),
        };
        assert_eq!(price.id.as_str(), "price_1TPeerMonthly01");
        assert_eq!(price.currency, "eur");
        assert_eq!(price.unit_amount, Some(999));
        assert_eq!(
            price.recurring,
            Some(Recurring {
                interval: Interval::Month,
                interval_count: 1
            })
        );
        assert_eq!(price.product.as_deref(), Some("prod_TPeerDigital01"));
        assert!(price.active);
        assert_eq!(price.version.source, "evt_1TPeerEvent0002");
    }

    #[test]
    fn a_basil_subscription_takes_its_period_from_its_items() {
        let event = fixture("created");
        let mut all = changes("customer.subscription.created", &event).unwrap();
        assert_eq!(
            all.len(),
            2,
            "the subscription, then its item's price: {all:?}"
        );
        let Change::Subscription {
            subscription,
            reader_id,
        } = all.remove(0)
        else {
            panic!("not a subscription");
        };
        assert_eq!(subscription.id, "sub_1TPeerSubscr0001");
        assert_eq!(subscription.customer_id, "cus_TPeer0Reader01");
        assert_eq!(subscription.status, SubscriptionStatus::Active);
        assert_eq!(
            subscription.items[0].price.as_str(),
            "price_1TPeerMonthly01"
        );
        assert_eq!(
            subscription.current_period_end.unwrap().timestamp(),
            1_765_592_000
        );
        assert_eq!(subscription.version.source, "evt_1TPeerEvent0002");
        assert_eq!(reader_id.unwrap().as_str(), "reader-42");
    }

    #[test]
    fn an_older_subscription_takes_its_period_from_the_top_and_its_price_from_the_plan() {
        let event = fixture("legacy_created");
        let Change::Subscription {
            subscription,
            reader_id,
        } = changes("customer.subscription.created", &event)
            .unwrap()
            .remove(0)
        else {
            panic!("not a subscription");
        };
        assert_eq!(subscription.items[0].price.as_str(), "plan_LegacyYearly07");
        assert_eq!(
            subscription.current_period_end.unwrap().timestamp(),
            1_752_580_800
        );
        assert_eq!(reader_id, None);
    }

    #[test]
    fn an_expanded_customer_may_name_the_reader_instead_of_the_subscription() {
        let mut object = fixture("legacy_created")["data"]["object"].clone();
        object["customer"] = serde_json::json!({
            "id": "cus_Legacy0Reader07",
            "object": "customer",
            "metadata": { "reader_id": "reader-7" },
        });
        let (subscription, reader_id) =
            subscription(&object, Version::sync(chrono::Utc::now())).unwrap();
        assert_eq!(subscription.customer_id, "cus_Legacy0Reader07");
        assert_eq!(reader_id.unwrap().as_str(), "reader-7");
    }
}
