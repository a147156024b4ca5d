//! Which reader a Stripe customer belongs to: a completed checkout links the two, and metadata
//! may name the reader.

use serde_json::Value;

use super::fields::{id, text};
use crate::domain::{Change, ReaderId};

/// A completed subscription checkout links its customer to the reader named by
/// `client_reference_id` or `metadata.reader_id`.
pub(super) fn checkout_link(session: &Value) -> Option<Change> {
    let customer_id = id(session, "/customer")?;
    let reader_id = text(session, "/client_reference_id")
        .and_then(|r| ReaderId::parse(&r))
        .or_else(|| reader_in_metadata(session))?;
    Some(Change::LinkCustomer {
        customer_id,
        reader_id,
    })
}

pub(super) fn reader_in_metadata(object: &Value) -> Option<ReaderId> {
    text(object, "/metadata/reader_id").and_then(|r| ReaderId::parse(&r))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::domain::Change;
    use crate::stripe::objects::changes;
    use crate::stripe::objects::fixtures::{fixture, only};

    #[test]
    fn a_checkout_links_by_client_reference_id_or_metadata() {
        let mut event = fixture("checkout");
        let Change::LinkCustomer {
            reader_id,
            customer_id,
        } = only(changes("checkout.session.completed", &event).unwrap())
        else {
            panic!("not a link");
        };
        assert_eq!(
            (reader_id.as_str(), customer_id.as_str()),
            ("reader-42", "cus_TPeer0Reader01")
        );
        event["data"]["object"]["client_reference_id"] = Value::Null;
        assert_eq!(
            changes("checkout.session.completed", &event).unwrap().len(),
            1
        );
        event["data"]["object"]["metadata"] = serde_json::json!({});
        assert!(
            changes("checkout.session.completed", &event)
                .unwrap()
                .is_empty()
        );
    }
}
