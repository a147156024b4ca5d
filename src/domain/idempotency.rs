//! Idempotent POSTs: a client names an attempt with an `Idempotency-Key`; the first answer to it
//! is kept (secrets blanked) for a day and replayed to the same key and body, so a retried POST
//! never does its work twice.

use sha2::{Digest, Sha256};

/// Longest key, as Stripe allows.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

validated_string!(
    /// A client's name for one attempt at a POST: 1 to 255 visible ASCII characters.
    IdempotencyKey,
    |s| (1..=MAX_IDEMPOTENCY_KEY).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic()),
    "1 to 255 visible ASCII characters"
);

impl IdempotencyKey {
    /// The key to send Stripe for this client's key: a hash of the caller's API key id and
    /// their key, so that two callers' keys can never name the same attempt at Stripe.
    pub fn for_stripe(&self, api_key_id: &str) -> String {
        let mut hash = Sha256::new();
        hash.update(api_key_id.as_bytes());
        hash.update([0]);
        hash.update(self.as_str().as_bytes());
        format!("tollgate-{}", hex::encode(hash.finalize()))
    }
}

/// What identifies a request's content: the SHA-256 of its method, path, query and body.
pub fn fingerprint(method: &str, path_and_query: &str, body: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in [method.as_bytes(), path_and_query.as_bytes()] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.update(body);
    hash.finalize().into()
}

/// An answer kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptResponse {
    /// Its status code.
    pub status: u16,
    /// Its `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Its `Location`, if any.
    pub location: Option<String>,
    /// Its body, secrets blanked.
    pub body: Vec<u8>,
}

/// `body` with the top-level fields named in `secrets` set to `null`, when it is a JSON object;
/// anything else is kept as it is (problem bodies and lists carry no secrets).
pub fn without_secrets(body: &[u8], secrets: &[&str]) -> Vec<u8> {
    if secrets.is_empty() {
        return body.to_vec();
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut object)) => {
            for name in secrets {
                if let Some(value) = object.get_mut(*name) {
                    *value = serde_json::Value::Null;
                }
            }
            serde_json::to_vec(&object).unwrap_or_default()
        }
        _ => body.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_and_stripe_sees_a_hash_per_caller() {
        assert!(IdempotencyKey::parse("checkout-7-attempt-1").is_some());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_some());
        for bad in ["", "a b", "é", "a\tb", &"k".repeat(256)] {
            assert!(IdempotencyKey::parse(bad).is_none(), "{bad:?}");
        }
        let key = IdempotencyKey::parse("attempt-1").unwrap();
        let (a, b) = (key.for_stripe("key_a"), key.for_stripe("key_b"));
        assert_ne!(a, b);
        assert_eq!(a, key.for_stripe("key_a"));
        assert!(a.len() <= 255 && !a.contains("attempt-1"));
    }

    #[test]
    fn fingerprints_tell_paths_and_bodies_apart() {
        let one = fingerprint("POST", "/v1/keys", b"{}");
        assert_eq!(one, fingerprint("POST", "/v1/keys", b"{}"));
        assert_ne!(one, fingerprint("POST", "/v1/keys", b"{ }"));
        assert_ne!(one, fingerprint("POST", "/v1/key", b"s{}"));
    }

    #[test]
    fn secrets_are_blanked_and_other_fields_kept() {
        let kept = without_secrets(
            br#"{"id":"k1","key":"tgk_secret","role":"admin"}"#,
            &["key"],
        );
        let kept: serde_json::Value = serde_json::from_slice(&kept).unwrap();
        assert_eq!(
            kept,
            serde_json::json!({"id":"k1","key":null,"role":"admin"})
        );
        assert_eq!(without_secrets(b"[1]", &["key"]), b"[1]");
        assert_eq!(without_secrets(b"not json", &["key"]), b"not json");
    }
}
