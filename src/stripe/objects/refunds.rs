//! Refunds: one by one, or as a refunded charge lists or totals them.

use serde_json::Value;

use super::ObjectError;
use super::fields::{id, int, list, text, time};
use crate::domain::Refund;

/// The refunds of a refunded charge: each listed refund, or, when the charge does not list
/// them (API versions from 2022-11-15 leave the list out), what it says was refunded in all.
pub fn charge_refunds(charge: &Value) -> Result<Vec<Refund>, ObjectError> {
    let charge_id = text(charge, "/id").ok_or(ObjectError::Missing("id"))?;
    let invoice_id = id(charge, "/invoice");
    let listed = list(charge, "/refunds/data");
    if !listed.is_empty() {
        return listed
            .iter()
            .map(|r| {
                let mut refund = refund(r, invoice_id.clone())?;
                refund.charge_id.get_or_insert_with(|| charge_id.clone());
                if refund.payment_intent_id.is_none() {
                    refund.payment_intent_id = id(charge, "/payment_intent");
                }
                Ok(refund)
            })
            .collect();
    }
    let amount = int(charge, "/amount_refunded").unwrap_or(0);
    if amount <= 0 {
        return Ok(Vec::new());
    }
    Ok(vec![Refund {
        id: Refund::aggregate_id(&charge_id),
        payment_intent_id: id(charge, "/payment_intent"),
        invoice_id,
        amount,
        currency: text(charge, "/currency").ok_or(ObjectError::Missing("currency"))?,
        status: Some("succeeded".into()),
        reason: None,
        created: time(charge, "/created").ok_or(ObjectError::Missing("created"))?,
        charge_id: Some(charge_id),
    }])
}

/// One refund object; `invoice_id` is what the charge said, when it said.
pub fn refund(object: &Value, invoice_id: Option<String>) -> Result<Refund, ObjectError> {
    Ok(Refund {
        id: text(object, "/id").ok_or(ObjectError::Missing("refunds.data[].id"))?,
        charge_id: id(object, "/charge"),
        payment_intent_id: id(object, "/payment_intent"),
        invoice_id,
        amount: int(object, "/amount").ok_or(ObjectError::Missing("refund amount"))?,
        currency: text(object, "/currency").ok_or(ObjectError::Missing("refund currency"))?,
        status: text(object, "/status"),
        reason: text(object, "/reason"),
        created: time(object, "/created").ok_or(ObjectError::Missing("refund created"))?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::domain::Change;
    use crate::stripe::objects::changes;
    use crate::stripe::objects::fixtures::{fixture, only};

    #[test]
    fn refunds_are_read_one_by_one_with_the_charges_invoice_when_it_names_one() {
        let Change::Refunds(current) =
            only(changes("charge.refunded", &fixture("refunded")).unwrap())
        else {
            panic!("not refunds");
        };
        assert_eq!(current[0].id, "re_3TPeerRefund0001");
        assert_eq!(current[0].invoice_id, None);
        assert_eq!(
            current[0].payment_intent_id.as_deref(),
            Some("pi_3TPeerPayment001")
        );

        let Change::Refunds(legacy) =
            only(changes("charge.refunded", &fixture("legacy_refunded")).unwrap())
        else {
            panic!("not refunds");
        };
        assert_eq!(legacy[0].amount, 4950);
        assert_eq!(
            legacy[0].invoice_id.as_deref(),
            Some("in_1LegacyInvoice007")
        );
    }

    #[test]
    fn a_charge_without_its_refund_list_stands_for_everything_refunded_on_it() {
        let mut event = fixture("refunded");
        event["data"]["object"]["refunds"] = Value::Null;
        let Change::Refunds(refunds) = only(changes("charge.refunded", &event).unwrap()) else {
            panic!("not refunds");
        };
        assert_eq!(refunds[0].id, "ch_3TPeerCharge0001:refunded");
        assert_eq!(refunds[0].amount, 999);
    }
}
