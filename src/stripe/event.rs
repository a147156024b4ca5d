//! The envelope every Stripe event shares, read tolerantly: only `id` and `type` are required, so
//! a new API version, an unknown field or a `null` where an object was expected never fails a
//! delivery. What is inside `data.object` is read by the code that applies each type.

use serde_json::Value;

use crate::domain::{EventType, StripeEventId};

/// Longest API version accepted, in characters; Stripe's are far shorter.
const MAX_LEN: usize = 255;

/// The fields of an event that every type has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `evt_...`.
    pub id: StripeEventId,
    /// Such as `customer.subscription.updated`.
    pub kind: EventType,
    /// Unix seconds; 0 when absent or not an integer.
    pub created: i64,
    /// Whether the event comes from live mode; false when absent.
    pub livemode: bool,
    /// The API version the payload is shaped by, when stated.
    pub api_version: Option<String>,
}

/// Why a body is not a Stripe event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The body is not JSON, or not UTF-8.
    #[error("the body is not a JSON document")]
    NotJson,
    /// The body is JSON but not an object with a string `id` and `type`.
    #[error(
        "the body is not a Stripe event: it needs a string `id` and `type` of {}",
        StripeEventId::RULE
    )]
    NotAnEvent,
}

impl Envelope {
    /// Reads the envelope of a raw event body.
    pub fn parse(body: &[u8]) -> Result<Self, EnvelopeError> {
        let value: Value = serde_json::from_slice(body).map_err(|_| EnvelopeError::NotJson)?;
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| {
                    !s.is_empty()
                        && s.chars().count() <= MAX_LEN
                        && !s.chars().any(char::is_control)
                })
                .map(str::to_owned)
        };
        let field = |key: &str| value.get(key).and_then(Value::as_str);
        let id = field("id")
            .and_then(StripeEventId::parse)
            .ok_or(EnvelopeError::NotAnEvent)?;
        let kind = field("type")
            .and_then(EventType::parse)
            .ok_or(EnvelopeError::NotAnEvent)?;
        Ok(Self {
            id,
            kind,
            created: value.get("created").and_then(Value::as_i64).unwrap_or(0),
            livemode: value
                .get("livemode")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            api_version: text("api_version"),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_current_event_envelope_is_read() {
        let body = br#"{"id":"evt_1","object":"event","api_version":"2025-09-30.clover","created":1763000000,
            "data":{"object":{}},"livemode":false,"pending_webhooks":1,"type":"invoice.paid"}"#;
        assert_eq!(
            Envelope::parse(body),
            Ok(Envelope {
                id: StripeEventId::from_stored("evt_1".into()),
                kind: EventType::from_stored("invoice.paid".into()),
                created: 1_763_000_000,
                livemode: false,
                api_version: Some("2025-09-30.clover".into()),
            })
        );
    }

    #[test]
    fn missing_optional_fields_and_nulls_are_normal() {
        let parsed =
            Envelope::parse(br#"{"id":"evt_2","type":"x.y","api_version":null,"livemode":"yes"}"#)
                .unwrap();
        assert_eq!(parsed.created, 0);
        assert!(!parsed.livemode);
        assert_eq!(parsed.api_version, None);
    }

    #[test]
    fn bodies_without_an_id_or_type_are_not_events() {
        assert_eq!(Envelope::parse(b"not json"), Err(EnvelopeError::NotJson));
        assert_eq!(Envelope::parse(&[0xff, 0xfe]), Err(EnvelopeError::NotJson));
        for body in [
            &br#"[]"#[..],
            br#"{"type":"x"}"#,
            br#"{"id":"evt_1"}"#,
            br#"{"id":"","type":"x"}"#,
            br#"{"id":7,"type":"x"}"#,
            br#"{"id":"evt_1","type":{"nested":true}}"#,
        ] {
            assert_eq!(
                Envelope::parse(body),
                Err(EnvelopeError::NotAnEvent),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let long = format!(r#"{{"id":"{}","type":"x"}}"#, "e".repeat(256));
        assert_eq!(
            Envelope::parse(long.as_bytes()),
            Err(EnvelopeError::NotAnEvent)
        );
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            ".{0,20}".prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::hash_map(
                    "(id|type|created|livemode|api_version|data|.{0,8})",
                    inner,
                    0..8
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_json_is_an_event_or_a_clean_refusal(value in any_json()) {
            let body = serde_json::to_vec(&value).unwrap();
            match Envelope::parse(&body) {
                Ok(envelope) => {
                    prop_assert_eq!(Some(envelope.id.as_str()), value.get("id").and_then(Value::as_str));
                    prop_assert_eq!(Some(envelope.kind.as_str()), value.get("type").and_then(Value::as_str));
                }
                Err(err) => prop_assert_eq!(err, EnvelopeError::NotAnEvent),
            }
        }

        #[test]
        fn any_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Envelope::parse(&body);
        }
    }
}
