//! Readers, the publisher's accounts as tollgate knows them, and grants: entitlements given
//! without Stripe (complimentary, gift, institutional), each with an expiry.

use chrono::{DateTime, Utc};

use super::Entitlement;

/// Whether `s` is a reader or device id: 1 to 128 characters from `[A-Za-z0-9._:@-]`, not made
/// of dots alone (so that `.` and `..` never become path segments).
fn is_reader_id(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-'))
        && !s.bytes().all(|b| b == b'.')
}

validated_string!(
    /// A reader, by the publisher's own account id: `reader-42`, `u:1093`, `ana@example.org`.
    ReaderId,
    is_reader_id,
    "1 to 128 characters from A-Z, a-z, 0-9, `.`, `_`, `:`, `@` and `-`, not only dots"
);

prefixed_id!(
    /// The identifier of a grant: `grt_` and a time-ordered UUID.
    GrantId,
    "grt_"
);

/// Most entitlements one grant may carry.
pub const MAX_GRANT_ENTITLEMENTS: usize = 32;
/// Longest reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// Why a grant cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidGrant {
    /// No entitlements, or too many.
    #[error("entitlements must list 1 to {MAX_GRANT_ENTITLEMENTS} entitlements")]
    Entitlements,
    /// The expiry is not in the future.
    #[error("expires_at must be in the future")]
    Expiry,
    /// The reason is empty, too long or has control characters.
    #[error(
        "reason must have 1 to {MAX_REASON_CHARS} characters, none of them control characters, and not be only spaces"
    )]
    Reason,
}

/// A grant about to be stored; everything in it has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGrant {
    /// Its id.
    pub id: GrantId,
    /// Whom it is for.
    pub reader_id: ReaderId,
    /// What it gives, sorted and distinct.
    pub entitlements: Vec<Entitlement>,
    /// When it stops giving it.
    pub expires_at: DateTime<Utc>,
    /// Why it was given, for the people who read it later.
    pub reason: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// The API key that made it.
    pub created_by: Option<String>,
    /// The gift subscription it redeems, if it does.
    pub gift_subscription: Option<String>,
}

impl NewGrant {
    /// Checks a grant made at `now`.
    pub fn new(
        reader_id: ReaderId,
        mut entitlements: Vec<Entitlement>,
        expires_at: DateTime<Utc>,
        reason: String,
        now: DateTime<Utc>,
        created_by: Option<String>,
    ) -> Result<Self, InvalidGrant> {
        entitlements.sort();
        entitlements.dedup();
        if entitlements.is_empty() || entitlements.len() > MAX_GRANT_ENTITLEMENTS {
            return Err(InvalidGrant::Entitlements);
        }
        if expires_at <= now {
            return Err(InvalidGrant::Expiry);
        }
        let chars = reason.chars().count();
        if chars == 0
            || chars > MAX_REASON_CHARS
            || reason.trim().is_empty()
            || reason.chars().any(char::is_control)
        {
            return Err(InvalidGrant::Reason);
        }
        Ok(Self {
            id: GrantId::generate(),
            reader_id,
            entitlements,
            expires_at,
            reason,
            created_at: now,
            created_by,
            gift_subscription: None,
        })
    }
}

/// A stored grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Its id.
    pub id: GrantId,
    /// Whom it is for.
    pub reader_id: ReaderId,
    /// What it gives.
    pub entitlements: Vec<Entitlement>,
    /// When it stops giving it.
    pub expires_at: DateTime<Utc>,
    /// Why it was given.
    pub reason: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// The API key that made it.
    pub created_by: Option<String>,
    /// The gift subscription it redeems, if it does.
    pub gift_subscription: Option<String>,
}

impl Grant {
    /// Whether it still gives its entitlements at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn reader_ids_follow_the_spec() {
        for good in [
            "reader-42",
            "a",
            "u:1093",
            "ana@example.org",
            "x.y_z",
            ".a",
            &"r".repeat(128),
        ] {
            assert!(ReaderId::parse(good).is_some(), "{good:?}");
        }
        for bad in [
            "",
            ".",
            "..",
            "...",
            "a b",
            "a/b",
            "é",
            "a\n",
            &"r".repeat(129),
        ] {
            assert!(ReaderId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_grant_needs_entitlements_a_future_expiry_and_a_reason() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let reader = ReaderId::parse("reader-1").unwrap();
        let ents = vec![
            Entitlement::parse("reports").unwrap(),
            Entitlement::parse("articles").unwrap(),
            Entitlement::parse("articles").unwrap(),
        ];
        let later = now + TimeDelta::days(30);
        let grant = NewGrant::new(
            reader.clone(),
            ents.clone(),
            later,
            "gift".into(),
            now,
            None,
        )
        .unwrap();
        assert_eq!(
            grant.entitlements,
            [
                Entitlement::parse("articles").unwrap(),
                Entitlement::parse("reports").unwrap()
            ]
        );
        assert!(grant.id.as_str().starts_with("grt_"));
        assert_eq!(GrantId::parse(grant.id.as_str()), Some(grant.id.clone()));

        let make = |ents: Vec<Entitlement>, expires, reason: &str| {
            NewGrant::new(reader.clone(), ents, expires, reason.into(), now, None)
        };
        assert_eq!(make(vec![], later, "gift"), Err(InvalidGrant::Entitlements));
        assert_eq!(make(ents.clone(), now, "gift"), Err(InvalidGrant::Expiry));
        for reason in ["", "  ", "a\u{7}b", &"r".repeat(501)] {
            assert_eq!(
                make(ents.clone(), later, reason),
                Err(InvalidGrant::Reason),
                "{reason:?}"
            );
        }
    }

    #[test]
    fn a_grant_gives_until_it_expires_and_not_at_its_expiry() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let grant = Grant {
            id: GrantId::generate(),
            reader_id: ReaderId::parse("r").unwrap(),
            entitlements: vec![],
            expires_at: now,
            reason: "x".into(),
            created_at: now - TimeDelta::days(1),
            created_by: None,
            gift_subscription: None,
        };
        assert!(grant.is_active(now - TimeDelta::milliseconds(1)));
        assert!(!grant.is_active(now));
    }
}
