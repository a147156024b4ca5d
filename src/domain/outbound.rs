//! Events tollgate sends to the publisher's other services: their types, their bodies, the
//! endpoints that receive them, and how a delivery is signed (Standard Webhooks) and retried.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::time::rfc3339;
use super::{Grant, GrantId, Invoice, ReaderId, Refund, Subscription};

prefixed_id!(
    /// The identifier of a webhook endpoint: `we_` and a time-ordered UUID.
    EndpointId,
    "we_"
);

prefixed_id!(
    /// The identifier of one event sent out: `msg_` and a time-ordered UUID. It is the
    /// `webhook-id` of every attempt and replay of the event, so receivers deduplicate on it.
    OutboundEventId,
    "msg_"
);

prefixed_id!(
    /// The identifier of one event's delivery to one endpoint: `dlv_` and a time-ordered UUID.
    DeliveryId,
    "dlv_"
);

named_enum! {
    /// What happened.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
    pub enum EventKind ("event type") {
        /// What a reader holds changed (by a write or by time).
        EntitlementsChanged = "reader.entitlements.changed",
        /// A subscription appeared in the mirror.
        SubscriptionCreated = "subscription.created",
        /// A subscription changed.
        SubscriptionUpdated = "subscription.updated",
        /// A subscription was canceled.
        SubscriptionCanceled = "subscription.canceled",
        /// An invoice was paid.
        InvoicePaid = "invoice.paid",
        /// Collecting an invoice failed.
        InvoicePaymentFailed = "invoice.payment_failed",
        /// Money went back to a customer.
        RefundCreated = "refund.created",
        /// An admin gave a reader a grant (or a gift subscription was redeemed).
        GrantCreated = "grant.created",
        /// An admin revoked a grant.
        GrantRevoked = "grant.revoked",
        /// An admin erased a reader: the publisher's other services erase them too.
        ReaderErased = "reader.erased",
    }
}

/// What an endpoint subscribes to with `"*"`: every type, also those added later.
pub const EVERY_TYPE: &str = "*";

named_enum! {
    /// Why a reader's entitlements changed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum ChangeCause ("change cause") {
        /// A subscription (or a plan's entitlements) changed.
        Subscription = "subscription",
        /// A grant was given or revoked.
        Grant = "grant",
        /// A licence or a seat in one changed.
        Licence = "licence",
        /// A team seat was given, taken back or handed on.
        Seat = "seat",
        /// A gift subscription was redeemed.
        Gift = "gift",
        /// Time passed: a grant, a licence or a subscription reached its end.
        Expiry = "expiry",
        /// What a reader held when announcements began: recorded, never announced.
        Baseline = "baseline",
    }
}

named_enum! {
    /// Where one delivery stands.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum DeliveryStatus ("delivery status") {
        /// Not delivered yet; attempted again at its next attempt.
        Pending = "pending",
        /// An attempt was answered 2xx.
        Delivered = "delivered",
        /// Given up: retried for the whole window, or its endpoint answered 410 Gone.
        Failed = "failed",
    }
}

/// Why a list of event types is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEventTypes {
    /// Nothing to subscribe to.
    #[error("event_types must name between 1 and 16 event types, or be [\"*\"]")]
    Count,
    /// A name given twice.
    #[error("event_types names an event type twice")]
    Repeated,
    /// A name that is no event type.
    #[error("`{0}` is not an event type (see the `WebhookEventType` schema), nor `*`")]
    Unknown(String),
}

/// Checks an endpoint's `event_types`, sorted and without repeats.
pub fn event_types(types: &[String]) -> Result<Vec<String>, InvalidEventTypes> {
    if types.is_empty() || types.len() > 16 {
        return Err(InvalidEventTypes::Count);
    }
    let mut checked = Vec::with_capacity(types.len());
    for name in types {
        if name != EVERY_TYPE && name.parse::<EventKind>().is_err() {
            return Err(InvalidEventTypes::Unknown(name.clone()));
        }
        checked.push(name.clone());
    }
    checked.sort();
    checked.dedup();
    if checked.len() != types.len() {
        return Err(InvalidEventTypes::Repeated);
    }
    Ok(checked)
}

/// An endpoint's signing secret: `whsec_` and the base64 of 32 random bytes, the HMAC key.
/// Never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct EndpointSecret(String);

impl EndpointSecret {
    const PREFIX: &'static str = "whsec_";

    /// A fresh secret from the operating system's random source.
    pub fn generate() -> Self {
        let mut key = [0_u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
        Self(format!("{}{}", Self::PREFIX, BASE64.encode(key)))
    }

    /// Rebuilds a secret read back from the store.
    pub fn from_stored(secret: String) -> Self {
        Self(secret)
    }

    /// The secret as shown to the endpoint's owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The HMAC key: the base64-decoded part after `whsec_`.
    fn key(&self) -> Vec<u8> {
        let encoded = self.0.strip_prefix(Self::PREFIX).unwrap_or(&self.0);
        BASE64
            .decode(encoded)
            .unwrap_or_else(|_| encoded.as_bytes().to_vec())
    }

    /// The Standard Webhooks signature of one attempt: `v1,` and the base64 of the HMAC-SHA256
    /// of `{id}.{timestamp}.{body}`.
    pub fn sign(&self, id: &OutboundEventId, timestamp: i64, body: &str) -> String {
        // HMAC takes keys of any length.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key()) else {
            return String::new();
        };
        mac.update(id.as_str().as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

impl std::fmt::Debug for EndpointSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndpointSecret(REDACTED)")
    }
}

/// The `webhook-signature` header of one attempt: a signature per secret in force (the current
/// one and, while a rotation's overlap lasts, the one before), separated by spaces.
pub fn signature_header(
    secrets: &[&EndpointSecret],
    id: &OutboundEventId,
    timestamp: i64,
    body: &str,
) -> String {
    secrets
        .iter()
        .map(|secret| secret.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An event to send: made in the transaction of the change it announces.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundEvent {
    /// Its id.
    pub id: OutboundEventId,
    /// What happened.
    pub kind: EventKind,
    /// When.
    pub at: DateTime<Utc>,
    /// What it is about.
    pub data: Value,
}

impl OutboundEvent {
    /// A fresh event.
    pub fn new(kind: EventKind, at: DateTime<Utc>, data: Value) -> Self {
        Self {
            id: OutboundEventId::generate(),
            kind,
            at,
            data,
        }
    }

    /// The body every delivery of it carries, byte for byte.
    pub fn body(&self) -> String {
        json!({
            "id": self.id,
            "type": self.kind.as_str(),
            "timestamp": rfc3339(self.at),
            "data": self.data,
        })
        .to_string()
    }

    /// `reader` was erased: from now on `pseudonym` stands for them in tollgate's records. The
    /// only record that names the reader after their erasure; it is deleted, with its
    /// deliveries, once none of them is pending (see [`super::Purge::ErasureNotices`]).
    pub fn reader_erased(
        reader: &ReaderId,
        pseudonym: &ReaderId,
        stripe_customers: &[String],
        at: DateTime<Utc>,
    ) -> Self {
        Self::new(
            EventKind::ReaderErased,
            at,
            json!({
                "reader_id": reader, "pseudonym": pseudonym,
                "stripe_customers": stripe_customers,
            }),
        )
    }

    /// `reader`'s entitlements went from `before` to `after` (both sorted), the `sequence`th
    /// change announced for them.
    pub fn entitlements_changed(
        reader: &ReaderId,
        before: &[String],
        after: &[String],
        cause: ChangeCause,
        sequence: i64,
        at: DateTime<Utc>,
    ) -> Self {
        Self::new(
            EventKind::EntitlementsChanged,
            at,
            json!({
                "reader_id": reader, "before": before, "after": after,
                "cause": cause.as_str(), "sequence": sequence,
            }),
        )
    }

    /// A subscription of `reader` (when its customer is linked to one) as the mirror now holds it.
    pub fn subscription(
        kind: EventKind,
        subscription: &Subscription,
        reader: Option<&str>,
        at: DateTime<Utc>,
    ) -> Self {
        let items: Vec<Value> = subscription
            .items
            .iter()
            .map(|item| json!({ "price": item.price, "quantity": item.quantity }))
            .collect();
        Self::new(
            kind,
            at,
            json!({
                "subscription_id": subscription.id,
                "customer_id": subscription.customer_id,
                "reader_id": reader,
                "status": subscription.status.as_str(),
                "items": items,
                "current_period_end": subscription.current_period_end.map(rfc3339),
                "cancel_at_period_end": subscription.cancel_at_period_end,
                "canceled_at": subscription.canceled_at.map(rfc3339),
            }),
        )
    }

    /// An invoice was paid, or collecting it failed.
    pub fn invoice(
        kind: EventKind,
        invoice: &Invoice,
        reader: Option<&str>,
        at: DateTime<Utc>,
    ) -> Self {
        Self::new(
            kind,
            at,
            json!({
                "invoice_id": invoice.id,
                "customer_id": invoice.customer_id,
                "reader_id": reader,
                "subscription_id": invoice.subscription_id,
                "status": invoice.status.as_str(),
                "currency": invoice.currency,
                "total": invoice.total,
                "amount_paid": invoice.amount_paid,
                "amount_due": invoice.amount_due,
            }),
        )
    }

    /// A refund, attributed to `invoice` when one is known.
    pub fn refund(refund: &Refund, invoice: Option<&str>, at: DateTime<Utc>) -> Self {
        Self::new(
            EventKind::RefundCreated,
            at,
            json!({
                "refund_id": refund.id,
                "charge_id": refund.charge_id,
                "invoice_id": invoice,
                "amount": refund.amount,
                "currency": refund.currency,
                "status": refund.status,
            }),
        )
    }

    /// A grant was given.
    pub fn grant_created(grant: &Grant) -> Self {
        Self::new(
            EventKind::GrantCreated,
            grant.created_at,
            json!({
                "grant_id": grant.id,
                "reader_id": grant.reader_id,
                "entitlements": grant.entitlements,
                "expires_at": rfc3339(grant.expires_at),
                "reason": grant.reason,
            }),
        )
    }

    /// A grant was revoked.
    pub fn grant_revoked(reader: &ReaderId, grant: &GrantId, at: DateTime<Utc>) -> Self {
        Self::new(
            EventKind::GrantRevoked,
            at,
            json!({ "grant_id": grant, "reader_id": reader }),
        )
    }
}

/// When a failed delivery is attempted again: `backoff` doubling with each attempt up to an
/// hour, each wait shortened by up to a fifth at random (so that endpoints coming back are not
/// all hit at once), for `retry_for` after the delivery was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryBackoff {
    /// The wait after the first failed attempt.
    pub backoff: TimeDelta,
    /// How long a delivery is retried.
    pub retry_for: TimeDelta,
}

impl DeliveryBackoff {
    /// The longest wait between two attempts.
    pub const CAP: TimeDelta = TimeDelta::hours(1);

    /// The next attempt after the `attempts`th failed at `now`, with `jitter` in `0.0..=1.0`;
    /// `None` when the delivery made at `created` is to be given up.
    pub fn next_attempt(
        &self,
        attempts: i64,
        created: DateTime<Utc>,
        now: DateTime<Utc>,
        jitter: f64,
    ) -> Option<DateTime<Utc>> {
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let wait = self
            .backoff
            .checked_mul(1_i32 << doublings.min(30))
            .unwrap_or(Self::CAP)
            .min(Self::CAP);
        let shortened = wait.num_milliseconds() as f64 * (1.0 - jitter.clamp(0.0, 1.0) / 5.0);
        let next = now + TimeDelta::milliseconds(shortened as i64);
        (next < created + self.retry_for).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_the_hmac_of_id_timestamp_and_body_under_the_decoded_secret() {
        // The example of the Standard Webhooks specification.
        let secret = EndpointSecret::from_stored("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        let id = OutboundEventId::from_stored("msg_p5jXN8AQM9LWM0D4loKWxJek".into());
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign(&id, 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn during_a_rotation_both_secrets_sign() {
        let (new, old) = (EndpointSecret::generate(), EndpointSecret::generate());
        let id = OutboundEventId::generate();
        let header = signature_header(&[&new, &old], &id, 1_700_000_000, "{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts,
            [
                new.sign(&id, 1_700_000_000, "{}"),
                old.sign(&id, 1_700_000_000, "{}")
            ]
        );
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn secrets_are_whsec_and_32_random_bytes_and_never_debug_printed() {
        let secret = EndpointSecret::generate();
        let key = BASE64
            .decode(secret.expose().strip_prefix("whsec_").unwrap())
            .unwrap();
        assert_eq!(key.len(), 32);
        assert_ne!(secret, EndpointSecret::generate());
        assert!(!format!("{secret:?}").contains(secret.expose()));
    }

    #[test]
    fn event_types_are_known_names_or_every_type() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            event_types(&names(&["grant.revoked", "grant.created"])),
            Ok(names(&["grant.created", "grant.revoked"]))
        );
        assert_eq!(
            event_types(&names(&["grant.created", "grant.created"])),
            Err(InvalidEventTypes::Repeated)
        );
        assert_eq!(event_types(&names(&["*"])), Ok(names(&["*"])));
        assert_eq!(event_types(&[]), Err(InvalidEventTypes::Count));
        assert_eq!(
            event_types(&names(&["grant.created", "charge.succeeded"])),
            Err(InvalidEventTypes::Unknown("charge.succeeded".into()))
        );
    }

    #[test]
    fn deliveries_back_off_doubling_to_an_hour_with_jitter_and_stop_after_the_window() {
        let policy = DeliveryBackoff {
            backoff: TimeDelta::seconds(10),
            retry_for: TimeDelta::days(3),
        };
        let created = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let now = created + TimeDelta::minutes(1);
        let wait = |attempts, jitter| {
            policy
                .next_attempt(attempts, created, now, jitter)
                .map(|t| t - now)
        };
        assert_eq!(wait(1, 0.0), Some(TimeDelta::seconds(10)));
        assert_eq!(wait(2, 0.0), Some(TimeDelta::seconds(20)));
        assert_eq!(wait(4, 0.0), Some(TimeDelta::seconds(80)));
        assert_eq!(wait(4, 1.0), Some(TimeDelta::seconds(64)));
        assert_eq!(wait(20, 0.0), Some(TimeDelta::hours(1)));
        assert_eq!(wait(i64::MAX, 0.5), Some(TimeDelta::minutes(54)));
        let late = created + TimeDelta::days(3) - TimeDelta::minutes(30);
        assert_eq!(policy.next_attempt(30, created, late, 0.0), None);
    }
}
