//! Dashboard sessions: a person signs in to the finance dashboard with a `finance` or `admin` key
//! once and gets a short-lived token in exchange, which reads reports and nothing else. The page
//! keeps the token, never the key; the store keeps only the token's hash.

use chrono::{DateTime, TimeDelta, Utc};

use super::{ApiKey, Role};

prefixed_id!(
    /// The identifier of a dashboard session: `ses_` and a time-ordered UUID.
    SessionId,
    "ses_"
);

secret_code!(
    /// A session's bearer token: `tgs_` and 32 hex digits (128 random bits).
    SessionToken,
    "tgs_"
);

/// How long a session lasts.
pub const SESSION_LIFETIME: TimeDelta = TimeDelta::hours(8);

/// The roles that may open a session: those that read reports.
pub fn may_open_session(role: Role) -> bool {
    matches!(role, Role::Finance | Role::Admin)
}

/// A live session, with the key it was opened with.
#[derive(Debug, Clone)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// The key it came from (active: a revoked key ends its sessions).
    pub key: ApiKey,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_has_its_prefix_and_128_random_bits_and_only_its_hash_is_compared() {
        let token = SessionToken::generate();
        assert!(token.expose().starts_with("tgs_"));
        assert_eq!(token.expose().len(), 4 + 32);
        assert!(SessionToken::is_well_formed(token.expose()));
        assert_ne!(token.expose(), SessionToken::generate().expose());
        assert_eq!(token.hash(), SessionToken::hash_of(token.expose()));
        assert!(!SessionToken::is_well_formed(
            "tgk_0123456789abcdef0123456789abcdef"
        ));
        assert!(format!("{token:?}").contains("REDACTED"));
    }

    #[test]
    fn only_roles_that_read_reports_open_sessions() {
        assert!(may_open_session(Role::Finance));
        assert!(may_open_session(Role::Admin));
        assert!(!may_open_session(Role::Service));
    }
}
