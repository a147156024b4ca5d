//! Fields read tolerantly from a Stripe object: a missing field, `null` or a value of another kind
//! reads as nothing.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// A non-empty string at `pointer`.
pub(super) fn text(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// An expandable reference at `pointer`: an id, or an expanded object with an `id`.
pub(super) fn id(value: &Value, pointer: &str) -> Option<String> {
    let found = value.pointer(pointer)?;
    match found {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(_) => text(found, "/id"),
        _ => None,
    }
}

pub(super) fn int(value: &Value, pointer: &str) -> Option<i64> {
    value.pointer(pointer).and_then(Value::as_i64)
}

/// Unix seconds at `pointer`, as an instant.
pub(super) fn time(value: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    int(value, pointer).and_then(|secs| DateTime::from_timestamp(secs, 0))
}

/// The array at `pointer`; empty when there is none.
pub(super) fn list<'v>(value: &'v Value, pointer: &str) -> &'v [Value] {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}
