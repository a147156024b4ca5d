//! Stripe events as tollgate keeps them: an inbox that nothing verified ever leaves unrecorded.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Longest event id or type accepted, in characters; Stripe's are far shorter.
const MAX_CHARS: usize = 255;

/// The one rule for the text of Stripe's event ids and types.
fn stripe_text(s: &str) -> bool {
    !s.is_empty() && s.chars().count() <= MAX_CHARS && !s.chars().any(char::is_control)
}

validated_string!(
    /// Stripe's id of an event (`evt_...`): one event is stored once, however often it is
    /// delivered.
    StripeEventId,
    stripe_text,
    "1 to 255 characters, none of them a control character"
);

validated_string!(
    /// The type of a Stripe event, such as `invoice.paid`.
    EventType,
    stripe_text,
    "1 to 255 characters, none of them a control character"
);

named_enum! {
    /// Where an event stands.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum EventStatus ("event status") {
        /// Stored, waiting to be applied to the mirror.
        Pending = "pending",
        /// Applied to the mirror.
        Applied = "applied",
        /// Applying failed; it is kept with its error and retried.
        Failed = "failed",
        /// Stored and acknowledged, never to be applied (another Stripe mode, for one).
        Skipped = "skipped",
    }
}

/// A verified event about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhookEvent {
    /// Stripe's event id: one event is stored once, however often it is delivered.
    pub id: StripeEventId,
    /// Its type.
    pub kind: EventType,
    /// Stripe's creation time, Unix seconds.
    pub created: i64,
    /// The API version its payload is shaped by.
    pub api_version: Option<String>,
    /// Whether it comes from Stripe's live mode.
    pub livemode: bool,
    /// The exact body Stripe sent.
    pub body: String,
    /// Where it starts.
    pub status: EventStatus,
    /// Why it was skipped, when it was.
    pub note: Option<String>,
    /// When tollgate received it.
    pub received_at: DateTime<Utc>,
    /// When the retry task should apply it if nothing has by then (the process may stop between
    /// storing an event and applying it).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// A stored event, without its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// Order of receipt.
    pub seq: i64,
    /// Stripe's event id.
    pub id: StripeEventId,
    /// Its type.
    pub kind: EventType,
    /// Stripe's creation time, Unix seconds.
    pub created: i64,
    /// The API version of its payload.
    pub api_version: Option<String>,
    /// Whether it comes from Stripe's live mode.
    pub livemode: bool,
    /// Where it stands.
    pub status: EventStatus,
    /// How often applying it was tried.
    pub attempts: i64,
    /// The last error applying it met.
    pub last_error: Option<String>,
    /// Why it was skipped, when it was.
    pub note: Option<String>,
    /// When tollgate received it.
    pub received_at: DateTime<Utc>,
    /// When it was applied.
    pub applied_at: Option<DateTime<Utc>>,
    /// When it will be tried again, if it will.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The customer whose link to a reader it waits for, if it does.
    pub waiting_for: Option<String>,
    /// When the storage purge dropped its body, if it did.
    pub body_dropped_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_and_types_follow_one_rule_counted_in_characters() {
        assert!(StripeEventId::parse("evt_1TPeerEvent0002").is_some());
        assert!(EventType::parse("invoice.paid").is_some());
        for bad in ["", "evt\u{0}1", "evt\n", "evt\u{85}"] {
            assert!(StripeEventId::parse(bad).is_none(), "{bad:?}");
            assert!(EventType::parse(bad).is_none(), "{bad:?}");
        }
        // 255 characters of two bytes each: within the rule, which counts characters.
        let wide = "é".repeat(255);
        assert!(StripeEventId::parse(&wide).is_some());
        assert!(EventType::parse(&wide).is_some());
        assert!(StripeEventId::parse(&"e".repeat(256)).is_none());
    }

    #[test]
    fn statuses_read_back_what_they_write() {
        for status in EventStatus::ALL {
            assert_eq!(status.as_str().parse::<EventStatus>().unwrap(), status);
        }
        assert!("done".parse::<EventStatus>().is_err());
    }
}
