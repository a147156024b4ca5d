//! Stripe's objects as serde_json values: async-stripe reads a response with miniserde, whose JSON
//! value is converted here without loss.

use super::error::StripeError;

/// Deepest JSON nesting accepted in an object; Stripe's objects are far shallower.
const MAX_DEPTH: usize = 128;

/// Converts miniserde's JSON value to serde_json's, the same numbers, strings and key order
/// aside (serde_json's map is sorted, like miniserde's).
pub(super) fn to_serde_json(
    value: miniserde::json::Value,
    depth: usize,
) -> Result<serde_json::Value, StripeError> {
    use miniserde::json::{Number, Value};
    if depth > MAX_DEPTH {
        return Err(StripeError::Unexpected(format!(
            "an object nested more than {MAX_DEPTH} levels deep"
        )));
    }
    Ok(match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(b),
        Value::Number(Number::U64(n)) => n.into(),
        Value::Number(Number::I64(n)) => n.into(),
        Value::Number(Number::F64(n)) => serde_json::Number::from_f64(n)
            .map(serde_json::Value::Number)
            .ok_or_else(|| StripeError::Unexpected(format!("a non-finite number {n}")))?,
        Value::String(s) => serde_json::Value::String(s),
        Value::Array(items) => serde_json::Value::Array(
            items
                .into_iter()
                .map(|item| to_serde_json(item, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(entries) => serde_json::Value::Object(
            entries
                .into_iter()
                .map(|(key, item)| Ok((key, to_serde_json(item, depth + 1)?)))
                .collect::<Result<_, StripeError>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::stripe::client::fake_stripe::subscription;

    #[test]
    fn miniserde_json_converts_to_the_same_serde_json() {
        let mut object = subscription("sub_1QxYzA2eZvKYlo2C8nT0aB3d", "past_due");
        object["discounts"] = json!([{ "coupon": { "percent_off": 12.5, "amount_off": null } }]);
        object["metadata"]["balance"] = json!(-4_200);
        object["metadata"]["big"] = json!(u64::MAX);
        object["metadata"]["unicode"] = json!("Zeitung für \"alle\" \u{1F4F0}");
        let text = serde_json::to_string(&object).unwrap();
        let mini: miniserde::json::Value = miniserde::json::from_str(&text).unwrap();

        assert_eq!(to_serde_json(mini, 0).unwrap(), object);
    }

    #[test]
    fn json_nested_beyond_the_limit_is_unexpected() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 2), "]".repeat(MAX_DEPTH + 2));
        let mini: miniserde::json::Value = miniserde::json::from_str(&deep).unwrap();

        let error = to_serde_json(mini, 0).unwrap_err();

        assert!(matches!(error, StripeError::Unexpected(_)), "{error:?}");
    }
}
