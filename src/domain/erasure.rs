//! Erasing a reader: the keyed pseudonym that stands in for their id in the records that must be
//! kept for the books, and the rewriting of stored text and JSON that names them.
//!
//! A plain hash of a reader id is no pseudonym: ids are often e-mail addresses or sequential
//! numbers, and hashing every guess finds them. An HMAC under a key the database never holds
//! cannot be reversed by guessing without that key.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::ReaderId;

/// What every pseudonym starts with.
const PREFIX: &str = "erased:";
/// The length of a pseudonym's HMAC part: base64url of 32 bytes, unpadded.
const MAC_CHARS: usize = 43;

/// Makes the pseudonyms of erased readers. Never printed by `Debug`.
#[derive(Clone)]
pub struct Pseudonymizer(Hmac<Sha256>);

impl Pseudonymizer {
    /// The pseudonymizer of a key written as base64 of 32 bytes; `None` for anything else.
    pub fn from_base64(key: &str) -> Option<Self> {
        let bytes = STANDARD.decode(key.trim()).ok()?;
        if bytes.len() != 32 {
            return None;
        }
        Hmac::<Sha256>::new_from_slice(&bytes).ok().map(Self)
    }

    /// `reader`'s pseudonym: `erased:` and the base64url of HMAC-SHA256(key, reader id). The
    /// same reader always gets the same one, so the records of one reader stay together and a
    /// later event naming them finds their tombstone.
    pub fn pseudonym(&self, reader: &ReaderId) -> ReaderId {
        let mut mac = self.0.clone();
        mac.update(reader.as_str().as_bytes());
        let digest = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        ReaderId::from_stored(format!("{PREFIX}{digest}"))
    }
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer(REDACTED)")
    }
}

/// Whether `id` is a pseudonym this module made (a reader id that happens to start with
/// `erased:` is one only if the rest has an HMAC's exact form).
pub fn is_pseudonym(id: &str) -> bool {
    id.strip_prefix(PREFIX).is_some_and(|mac| {
        mac.len() == MAC_CHARS
            && mac
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// What one erasure removed, and what it rewrote to the pseudonym, by kind of record.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ErasedCounts {
    /// Meter unlocks (with the device links merged into them) deleted.
    pub meter_unlocks: u64,
    /// Grants deleted.
    pub grants: u64,
    /// Team seats given up.
    pub team_seats: u64,
    /// Licence seats ended (the seat's history keeps the pseudonym).
    pub licence_seats: u64,
    /// Rows kept for the books whose reader id became the pseudonym: Stripe customer links,
    /// licence seat history and usage, teams owned, gift links, redemptions and purchases.
    pub pseudonymized: u64,
    /// Raw bodies of applied or skipped Stripe events that named the reader or their
    /// customers, dropped (the events' ids, types and status stay).
    pub stripe_bodies_dropped: u64,
    /// Stored texts rewritten to the pseudonym: Stripe events still to be applied, their notes
    /// and errors, audit entries, outbound events, reconcile reports.
    pub texts_rewritten: u64,
    /// Kept answers to idempotent requests that named the reader, deleted.
    pub idempotency_records: u64,
}

/// A reader's erasure as recorded: their tombstone, and what this erasure did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erasure {
    /// What stands for the reader from now on.
    pub pseudonym: ReaderId,
    /// When the reader was first erased (an erasure asked again keeps it).
    pub first_erased_at: DateTime<Utc>,
    /// Whether this request found the reader erased already.
    pub repeated: bool,
    /// The Stripe customers that were linked to the reader, now linked to the pseudonym.
    /// tollgate leaves them at Stripe as they are.
    pub stripe_customers: Vec<String>,
    /// What this erasure removed and rewrote.
    pub counts: ErasedCounts,
}

/// One reader's id and what replaces it.
#[derive(Debug, Clone, Copy)]
pub struct Replacement<'a> {
    /// The reader id being erased.
    pub id: &'a str,
    /// Its pseudonym.
    pub pseudonym: &'a str,
}

impl Replacement<'_> {
    /// `value` with every string that is the reader id, or names the reader's meter
    /// (`registered:<id>`), rewritten to the pseudonym; whether anything changed. Keys are left
    /// alone: tollgate never keys JSON by reader id.
    pub fn in_json(&self, value: &mut Value) -> bool {
        match value {
            Value::String(s) => match self.replaced_whole(s) {
                Some(new) => {
                    *s = new;
                    true
                }
                None => false,
            },
            // Every item is visited: `|=` does not stop at the first change.
            Value::Array(items) => {
                let mut changed = false;
                for item in items {
                    changed |= self.in_json(item);
                }
                changed
            }
            Value::Object(map) => {
                let mut changed = false;
                for item in map.values_mut() {
                    changed |= self.in_json(item);
                }
                changed
            }
            _ => false,
        }
    }

    /// `text` (JSON or not) with the reader id rewritten wherever it stands as a whole id:
    /// not as part of a longer one (erasing `ana` leaves `anabel` alone). JSON whose strings
    /// hold the id is rewritten as JSON; other text by occurrence. `None` when the id does not
    /// appear.
    pub fn in_text(&self, text: &str) -> Option<String> {
        if !text.contains(self.id) {
            return None;
        }
        if let Ok(mut json) = serde_json::from_str::<Value>(text)
            && (json.is_object() || json.is_array())
        {
            return self.in_json(&mut json).then(|| json.to_string());
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        let mut changed = false;
        while let Some(at) = rest.find(self.id) {
            let head = &rest[..at];
            let after = rest[at + self.id.len()..].chars().next();
            out.push_str(head);
            if starts_an_id(head) && after.is_none_or(|c| !is_id_char(c)) {
                out.push_str(self.pseudonym);
                changed = true;
            } else {
                out.push_str(self.id);
            }
            rest = &rest[at + self.id.len()..];
        }
        out.push_str(rest);
        changed.then_some(out)
    }

    /// The pseudonym's form of `s` when `s` is the id or a meter subject naming it.
    fn replaced_whole(&self, s: &str) -> Option<String> {
        if s == self.id {
            return Some(self.pseudonym.to_owned());
        }
        let (audience, id) = s.split_once(':')?;
        (audience == "registered" && id == self.id)
            .then(|| format!("registered:{}", self.pseudonym))
    }
}

/// Whether `c` can be part of a reader id, so that an id inside a longer one is told apart.
fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-')
}

/// Whether an id may begin right after `head`: at the start, after a character no id has, or
/// after the prefix of a meter subject (`registered:`) or an audit target (`reader:`).
fn starts_an_id(head: &str) -> bool {
    head.chars().next_back().is_none_or(|c| !is_id_char(c))
        || ["registered:", "reader:"].iter().any(|prefix| {
            head.strip_suffix(prefix)
                .is_some_and(|rest| rest.chars().next_back().is_none_or(|c| !is_id_char(c)))
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    fn reader(id: &str) -> ReaderId {
        ReaderId::parse(id).unwrap()
    }

    #[test]
    fn a_pseudonym_is_stable_per_reader_and_key_and_reveals_nothing_of_the_id() {
        let one = Pseudonymizer::from_base64(KEY).unwrap();
        let other = Pseudonymizer::from_base64(&STANDARD.encode([7_u8; 32])).unwrap();
        let ana = one.pseudonym(&reader("ana@example.org"));
        assert_eq!(ana, one.pseudonym(&reader("ana@example.org")));
        assert_ne!(ana, one.pseudonym(&reader("ana@example.com")));
        assert_ne!(ana, other.pseudonym(&reader("ana@example.org")));
        assert!(!ana.as_str().contains("ana"));
        assert!(is_pseudonym(ana.as_str()), "{ana}");
        assert!(
            ReaderId::parse(ana.as_str()).is_some(),
            "a pseudonym is a valid reader id"
        );
    }

    #[test]
    fn a_key_must_be_base64_of_32_bytes() {
        assert!(Pseudonymizer::from_base64("c2hvcnQ=").is_none());
        assert!(Pseudonymizer::from_base64("not base64!").is_none());
        assert!(format!("{:?}", Pseudonymizer::from_base64(KEY).unwrap()).contains("REDACTED"));
    }

    #[test]
    fn only_the_exact_form_is_a_pseudonym() {
        assert!(!is_pseudonym("erased:someone"));
        assert!(!is_pseudonym("reader-42"));
        assert!(is_pseudonym(&format!("erased:{}", "a".repeat(43))));
        assert!(!is_pseudonym(&format!("erased:{}", "a".repeat(44))));
    }

    #[test]
    fn json_strings_naming_the_reader_are_rewritten_and_nothing_else() {
        let swap = Replacement {
            id: "ana",
            pseudonym: "erased:X",
        };
        let mut body = json!({
            "data": { "object": { "metadata": { "reader_id": "ana" }, "client_reference_id": "ana",
                "description": "ana's plan", "customer": "cus_1" } },
            "recipients": ["registered:ana", "anonymous:ana", "anabel"],
        });
        assert!(swap.in_json(&mut body));
        assert_eq!(body["data"]["object"]["metadata"]["reader_id"], "erased:X");
        assert_eq!(body["data"]["object"]["client_reference_id"], "erased:X");
        assert_eq!(body["data"]["object"]["description"], "ana's plan");
        assert_eq!(
            body["recipients"],
            json!(["registered:erased:X", "anonymous:ana", "anabel"])
        );
        assert!(!swap.in_json(&mut json!({ "reader_id": "bob" })));
    }

    #[test]
    fn text_is_rewritten_where_the_whole_id_stands() {
        let swap = Replacement {
            id: "ana",
            pseudonym: "erased:X",
        };
        assert_eq!(
            swap.in_text("customer cus_1 stays linked to reader ana, not anabel")
                .unwrap(),
            "customer cus_1 stays linked to reader erased:X, not anabel"
        );
        assert_eq!(swap.in_text("reader:ana").unwrap(), "reader:erased:X");
        assert_eq!(swap.in_text("anabel and banana and u:ana"), None);
        assert_eq!(swap.in_text("bob"), None);
        let json: Value =
            serde_json::from_str(&swap.in_text(r#"{"reader_id":"ana","n":1}"#).unwrap()).unwrap();
        assert_eq!(json, json!({ "reader_id": "erased:X", "n": 1 }));
    }
}
