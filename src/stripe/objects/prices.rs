//! Prices: `price.*` events, a reconcile's list, or a subscription item's `price`.

use serde_json::Value;

use super::ObjectError;
use super::fields::{id, int, text};
use crate::domain::{Interval, Price, Recurring, StripePriceId, Version};

/// A price object (`price.*` events, a reconcile, or a subscription item's `price`).
pub fn price(object: &Value, version: Version) -> Result<Price, ObjectError> {
    let price_id = text(object, "/id")
        .and_then(|p| StripePriceId::parse(&p))
        .ok_or(ObjectError::Missing("id"))?;
    let recurring = match object.get("recurring").filter(|r| r.is_object()) {
        None => None,
        Some(recurring) => {
            let interval =
                text(recurring, "/interval").ok_or(ObjectError::Missing("recurring.interval"))?;
            let interval =
                interval
                    .parse::<Interval>()
                    .map_err(|_| ObjectError::UnknownStatus {
                        kind: "price interval",
                        value: interval,
                    })?;
            Some(Recurring {
                interval,
                interval_count: int(recurring, "/interval_count")
                    .filter(|n| *n >= 1)
                    .unwrap_or(1),
            })
        }
    };
    Ok(Price {
        id: price_id,
        product: id(object, "/product"),
        active: object
            .get("active")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        currency: text(object, "/currency")
            .map(|c| c.to_ascii_lowercase())
            .ok_or(ObjectError::Missing("currency"))?,
        unit_amount: int(object, "/unit_amount"),
        recurring,
        nickname: text(object, "/nickname"),
        version,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::domain::{Change, Interval, Price};
    use crate::stripe::objects::fixtures::{fixture, only};
    use crate::stripe::objects::{ObjectError, changes};

    fn price_of(changes: Vec<Change>) -> Price {
        let Change::Price(price) = only(changes) else {
            panic!("not a price");
        };
        price
    }

    #[test]
    fn price_events_read_amount_interval_and_state_and_a_deleted_price_is_inactive() {
        let created = price_of(changes("price.created", &fixture("price_created")).unwrap());
        assert_eq!(created.id.as_str(), "price_1TPeerYearly002");
        assert_eq!(created.unit_amount, Some(9900));
        assert_eq!(created.recurring.unwrap().interval, Interval::Year);
        assert_eq!(created.nickname.as_deref(), Some("Digital, yearly"));
        assert!(created.active);
        let updated = price_of(changes("price.updated", &fixture("price_updated")).unwrap());
        assert!(!updated.active);
        assert_eq!(updated.version.source, "evt_1TPeerPriceUpd01");
        let deleted = price_of(changes("price.deleted", &fixture("price_created")).unwrap());
        assert!(!deleted.active);
    }

    #[test]
    fn a_one_off_price_has_no_cycle_and_an_unknown_interval_is_refused() {
        let mut event = fixture("price_created");
        event["data"]["object"]["recurring"] = Value::Null;
        assert_eq!(
            price_of(changes("price.created", &event).unwrap()).recurring,
            None
        );
        event["data"]["object"]["recurring"] = serde_json::json!({"interval": "fortnight"});
        assert_eq!(
            changes("price.created", &event),
            Err(ObjectError::UnknownStatus {
                kind: "price interval",
                value: "fortnight".into()
            })
        );
    }
}
