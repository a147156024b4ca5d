//! API keys: what they look like on the wire, how they are stored and who may do what.

use std::fmt;

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Every key starts with this, so that secret scanners and people recognise one on sight.
pub const KEY_PREFIX: &str = "tgk_";
/// Random bytes in a key: 256 bits.
const KEY_BYTES: usize = 32;
/// Length of a well-formed key: the prefix and the random bytes in lower-case hex.
const KEY_LEN: usize = KEY_PREFIX.len() + 2 * KEY_BYTES;
/// How many trailing characters of a key are kept to help people tell keys apart.
const HINT_LEN: usize = 4;

/// Whether every byte of `s` is a digit or a lower-case hex letter.
fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

named_enum! {
    /// What a key's holder may do; see the role table in the README.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Role ("role") {
        /// Everything.
        Admin = "admin",
        /// Access decisions, tokens, readers, plans, checkout and portal: what a publisher's
        /// site needs.
        Service = "service",
        /// Reports, read only.
        Finance = "finance",
    }
}

/// The identifier of an API key: `key_` and a time-ordered UUID, so ids sort by creation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ApiKeyId(String);

impl ApiKeyId {
    const PREFIX: &'static str = "key_";

    /// A fresh id whose order follows `at`.
    pub fn generate(at: DateTime<Utc>) -> Self {
        let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            millis / 1000,
            (millis % 1000) as u32 * 1_000_000,
        );
        Self(format!(
            "{}{}",
            Self::PREFIX,
            uuid::Uuid::new_v7(ts).simple()
        ))
    }

    /// Parses an id received from a client; `None` when it cannot be an API key id.
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix(Self::PREFIX)?;
        (hex.len() == 32 && is_lower_hex(hex)).then(|| Self(s.to_owned()))
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

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A human label for a key ("frontend", "ops"): 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct KeyName(String);

/// Why a key name was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "a key name has 1 to 100 characters, none of them control characters, and is not only spaces"
)]
pub struct InvalidKeyName;

impl KeyName {
    const MAX_CHARS: usize = 100;

    /// Parses a name given by a person.
    pub fn parse(s: &str) -> Result<Self, InvalidKeyName> {
        let chars = s.chars().count();
        if chars == 0
            || chars > Self::MAX_CHARS
            || s.trim().is_empty()
            || s.chars().any(char::is_control)
        {
            return Err(InvalidKeyName);
        }
        Ok(Self(s.to_owned()))
    }

    /// Rebuilds a name read back from the store.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for KeyName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        KeyName::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The secret a client presents. Shown once at creation, never stored, never logged.
pub struct ApiKeySecret(String);

impl ApiKeySecret {
    /// 256 fresh random bits from a cryptographically secure generator seeded by the OS.
    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let mut key = String::with_capacity(KEY_LEN);
        key.push_str(KEY_PREFIX);
        for byte in bytes {
            key.push_str(&format!("{byte:02x}"));
        }
        Self(key)
    }

    /// Accepts a presented key only if it has the shape of one, so garbage never reaches the store.
    pub fn parse(presented: &str) -> Option<Self> {
        let hex = presented.strip_prefix(KEY_PREFIX)?;
        (presented.len() == KEY_LEN && is_lower_hex(hex)).then(|| Self(presented.to_owned()))
    }

    /// The SHA-256 of the key: what the store keeps and looks keys up by.
    pub fn hash(&self) -> KeyHash {
        KeyHash(Sha256::digest(self.0.as_bytes()).into())
    }

    /// The last few characters, kept beside the hash so people can tell their keys apart.
    pub fn hint(&self) -> String {
        self.0[self.0.len() - HINT_LEN..].to_owned()
    }

    /// The key itself, for the one response that shows it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeySecret([REDACTED])")
    }
}

/// SHA-256 of an API key. A key has 256 bits of entropy, so an unsalted fast hash is safe here
/// and lets the store find a key with one indexed lookup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

/// A key about to be stored.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// Its label.
    pub name: KeyName,
    /// What it may do.
    pub role: Role,
    /// The hash of its secret.
    pub hash: KeyHash,
    /// The end of its secret.
    pub hint: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// The key that made it; `None` when made from the command line.
    pub created_by: Option<ApiKeyId>,
    /// Whether it may tell tollgate a reader's address (`ip`), which can admit them under a
    /// licence.
    pub may_assert_ip: bool,
}

/// A stored key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// Its label.
    pub name: KeyName,
    /// What it may do.
    pub role: Role,
    /// The end of its secret.
    pub hint: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// The key that made it; `None` when made from the command line.
    pub created_by: Option<ApiKeyId>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Whether it may tell tollgate a reader's address (`ip`), which can admit them under a
    /// licence.
    pub may_assert_ip: bool,
}

impl ApiKey {
    /// Whether the key still opens the API.
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }

    /// Whether the key's role may do what `allowed` lists; `admin` may do everything.
    pub fn may(&self, allowed: &[Role]) -> bool {
        self.role == Role::Admin || allowed.contains(&self.role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_has_the_prefix_and_256_bits_in_hex() {
        let key = ApiKeySecret::generate();
        assert!(key.expose().starts_with(KEY_PREFIX));
        assert_eq!(key.expose().len(), KEY_PREFIX.len() + 64);
        assert!(ApiKeySecret::parse(key.expose()).is_some());
    }

    #[test]
    fn two_generated_keys_differ() {
        assert_ne!(
            ApiKeySecret::generate().expose(),
            ApiKeySecret::generate().expose()
        );
    }

    #[test]
    fn malformed_keys_are_refused_before_any_lookup() {
        let good = ApiKeySecret::generate();
        for bad in [
            "",
            "tgk_",
            &good.expose()[..good.expose().len() - 1],
            &format!("{}0", good.expose()),
            &good.expose().to_uppercase(),
            &good.expose().replacen(KEY_PREFIX, "sk_", 1),
        ] {
            assert!(ApiKeySecret::parse(bad).is_none(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn the_hash_is_the_sha256_of_the_key_text() {
        let key =
            ApiKeySecret::parse(&format!("{KEY_PREFIX}{}", "ab".repeat(32))).map(|k| k.hash());
        let expected: [u8; 32] = Sha256::digest(format!("{KEY_PREFIX}{}", "ab".repeat(32))).into();
        assert_eq!(key, Some(KeyHash(expected)));
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let key = ApiKeySecret::generate();
        assert!(!format!("{key:?}").contains(&key.expose()[KEY_PREFIX.len()..]));
    }

    #[test]
    fn key_names_must_be_printable_and_not_empty() {
        assert!(KeyName::parse("frontend").is_ok());
        assert!(KeyName::parse(&"x".repeat(100)).is_ok());
        for bad in ["", "   ", "a\nb", "tab\there", &"x".repeat(101)] {
            assert!(KeyName::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let early =
            ApiKeyId::generate(DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default());
        let late =
            ApiKeyId::generate(DateTime::from_timestamp(1_700_000_001, 0).unwrap_or_default());
        assert!(early.as_str() < late.as_str());
        assert!(ApiKeyId::parse(early.as_str()).is_some());
        assert!(ApiKeyId::parse("key_../../etc").is_none());
    }

    #[test]
    fn admin_may_do_everything_and_others_only_what_is_listed() {
        let key = |role| ApiKey {
            id: ApiKeyId::from_stored("key_x".into()),
            name: KeyName::from_stored("k".into()),
            role,
            hint: "abcd".into(),
            created_at: Utc::now(),
            created_by: None,
            revoked_at: None,
            may_assert_ip: false,
        };
        assert!(key(Role::Admin).may(&[]));
        assert!(key(Role::Service).may(&[Role::Service]));
        assert!(!key(Role::Finance).may(&[Role::Service]));
    }
}
