//! Disputes (chargebacks): `charge.dispute.created`, `.updated` and `.closed`.

use serde_json::Value;

use super::ObjectError;
use super::fields::{id, int, text, time};
use crate::domain::Dispute;

/// One dispute object.
pub fn dispute(object: &Value) -> Result<Dispute, ObjectError> {
    Ok(Dispute {
        id: text(object, "/id").ok_or(ObjectError::Missing("id"))?,
        charge_id: id(object, "/charge"),
        payment_intent_id: id(object, "/payment_intent"),
        amount: int(object, "/amount").ok_or(ObjectError::Missing("amount"))?,
        currency: text(object, "/currency").ok_or(ObjectError::Missing("currency"))?,
        reason: text(object, "/reason"),
        status: text(object, "/status").ok_or(ObjectError::Missing("status"))?,
        created: time(object, "/created").ok_or(ObjectError::Missing("created"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::changes;
    use super::super::fixtures::{fixture, only};
    use crate::domain::Change;

    #[test]
    fn a_dispute_event_names_its_charge_payment_amount_and_status() {
        let Change::Dispute(opened) =
            only(changes("charge.dispute.created", &fixture("dispute_created")).unwrap())
        else {
            panic!("a dispute change")
        };
        assert_eq!(opened.id, "dp_1TPeerDispute0001");
        assert_eq!(opened.charge_id.as_deref(), Some("ch_3TPeerCharge0001"));
        assert_eq!(
            opened.payment_intent_id.as_deref(),
            Some("pi_3TPeerPayment001")
        );
        assert_eq!((opened.amount, opened.currency.as_str()), (999, "eur"));
        assert_eq!(opened.reason.as_deref(), Some("fraudulent"));
        assert_eq!(opened.status, "needs_response");
        assert!(!opened.is_closed());
        let Change::Dispute(closed) =
            only(changes("charge.dispute.closed", &fixture("dispute_lost")).unwrap())
        else {
            panic!("a dispute change")
        };
        assert_eq!(closed.status, "lost");
        assert!(closed.is_closed());
    }
}
