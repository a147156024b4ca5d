//! Pure types and rules of tollgate's domain: no I/O, no framework types.

/// A name that is none of a closed set's values.
#[derive(Debug, thiserror::Error)]
#[error("unknown {kind} `{value}`: expected one of {expected}")]
pub struct UnknownName {
    kind: &'static str,
    value: String,
    expected: String,
}

/// Declares an enum whose values have stable names, with every value (`ALL`), each name
/// (`as_str`), `Display` and `FromStr`.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($kind:literal) {
            $($(#[$variant_meta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            /// The value's name, as stored and shown.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|value| value.as_str() == s)
                    .ok_or_else(|| $crate::domain::UnknownName {
                        kind: $kind,
                        value: s.to_owned(),
                        expected: Self::ALL.map($name::as_str).join(", "),
                    })
            }
        }
    };
}

/// Declares a string newtype that only holds values `$valid` accepts.
macro_rules! validated_string {
    ($(#[$doc:meta])* $name:ident, $valid:expr, $rule:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The rule a value must follow, for error messages.
            pub const RULE: &'static str = $rule;

            /// Accepts `s` if it follows the rule.
            pub fn parse(s: &str) -> Option<Self> {
                let valid: fn(&str) -> bool = $valid;
                valid(s).then(|| Self(s.to_owned()))
            }

            /// Rebuilds a value read back from the store.
            pub fn from_stored(s: String) -> Self {
                Self(s)
            }

            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(deserializer)?;
                Self::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!("`{s}` is not valid: {}", Self::RULE))
                })
            }
        }
    };
}

/// Declares an identifier made here: a prefix and a time-ordered UUID (`grt_0199...`), parsed
/// strictly from clients and taken as stored from the database.
macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            const PREFIX: &'static str = $prefix;

            /// A fresh id.
            pub fn generate() -> Self {
                Self(format!("{}{}", Self::PREFIX, uuid::Uuid::now_v7().simple()))
            }

            /// Parses an id received from a client; `None` when it cannot be one.
            pub fn parse(s: &str) -> Option<Self> {
                let hex = s.strip_prefix(Self::PREFIX)?;
                (hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                    .then(|| Self(s.to_owned()))
            }

            /// Rebuilds an id read back from the store.
            pub fn from_stored(s: String) -> Self {
                Self(s)
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// Declares a secret code made here: a prefix and 32 hex digits (128 random bits), shown to its
/// holder and kept only as its SHA-256 (and, for some, sealed); never printed by `Debug`.
macro_rules! secret_code {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        pub struct $name(String);

        impl $name {
            /// What every code starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh code from the operating system's random source.
            pub fn generate() -> Self {
                let mut bytes = [0_u8; 16];
                rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
                Self(format!("{}{}", Self::PREFIX, hex::encode(bytes)))
            }

            /// `code`, if it has a code's form.
            pub fn parse(code: &str) -> Option<Self> {
                Self::is_well_formed(code).then(|| Self(code.to_owned()))
            }

            /// The code as given to its holder.
            pub fn expose(&self) -> &str {
                &self.0
            }

            /// The SHA-256 of `code` as presented, whatever it is: what the store looks codes up
            /// by. A code that could never have been made hashes to nothing stored.
            pub fn hash_of(code: &str) -> [u8; 32] {
                <sha2::Sha256 as sha2::Digest>::digest(code.as_bytes()).into()
            }

            /// Its hash.
            pub fn hash(&self) -> [u8; 32] {
                Self::hash_of(&self.0)
            }

            /// Whether `code` has a code's form, so that anything else is refused before any
            /// lookup.
            pub fn is_well_formed(code: &str) -> bool {
                code.strip_prefix(Self::PREFIX).is_some_and(|hex| {
                    hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                })
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}(REDACTED)", stringify!($name))
            }
        }
    };
}

pub mod api_key;
pub mod audit;
pub mod billing;
pub mod entitlements;
pub mod erasure;
pub mod gift;
pub mod gift_subscription;
pub mod grace;
pub mod idempotency;
pub mod licence;
pub mod meter;
pub mod outbound;
pub mod plan;
pub mod price;
pub mod reader;
pub mod redirect;
pub mod report_inputs;
pub mod retention;
pub mod session;
pub mod subscription;
pub mod sync_run;
pub mod team;
pub mod time;
pub mod webhook_event;
pub mod webhook_url;

pub use api_key::{ApiKey, ApiKeyId, ApiKeySecret, KeyHash, KeyName, NewApiKey, Role};
pub use audit::{Actor, ActorRole, AuditEntry, AuditId};
pub use billing::{Change, Dispute, Invoice, InvoiceLine, InvoicePayment, InvoiceStatus, Refund};
pub use entitlements::{Held, Source, SourceKind};
pub use erasure::{Pseudonymizer, Replacement};
pub use gift::{GiftCode, GiftId, GiftLink, GiftStatus};
pub use gift_subscription::{
    CodeSealer, GiftPurchase, GiftSubscription, GiftSubscriptionId, GiftSubscriptionStatus,
    IssuedCode, SubscriptionCode,
};
pub use grace::PastDueGrace;
pub use idempotency::{IdempotencyKey, KeptResponse};
pub use licence::{
    EmailDomain, InvalidLicence, IpRange, Licence, LicenceConflict, LicenceId, LicenceSpec,
};
pub use meter::{
    ArticleId, Audience, MeterPolicy, MeterState, MeterSubject, Period, Usage, Window,
};
pub use outbound::{
    ChangeCause, DeliveryBackoff, DeliveryId, DeliveryStatus, EndpointId, EndpointSecret,
    EventKind, OutboundEvent, OutboundEventId,
};
pub use plan::{Entitlement, GiftOffer, InvalidPlan, Plan, PlanId, PlanSpec, StripePriceId};
pub use price::{Interval, Price, Recurring};
pub use reader::{Grant, GrantId, InvalidGrant, NewGrant, ReaderId};
pub use redirect::{InvalidRedirect, Origin, RedirectUrl};
pub use report_inputs::{
    DisputeDay, GiftSale, History, InvoiceDay, InvoiceService, LostDispute, PaidInvoice, RefundDay,
    ServiceLine, Snapshot,
};
pub use retention::{Purge, Retention};
pub use session::{SESSION_LIFETIME, Session, SessionId, SessionToken, may_open_session};
pub use subscription::{Standing, Subscription, SubscriptionItem, SubscriptionStatus, Version};
pub use sync_run::{Listing, ListingReport, SyncOutcome, SyncReport, SyncRun, SyncRunId};
pub use team::{SeatRole, TeamSeat, Teams};
pub use webhook_event::{EventStatus, EventType, NewWebhookEvent, StripeEventId, WebhookEvent};
pub use webhook_url::{InvalidWebhookUrl, TargetRules};
