//! Stripe webhook signatures: the `Stripe-Signature` header, and checking a raw body against it.
//!
//! Stripe signs `"<t>.<raw body>"` with HMAC-SHA256 under the endpoint's secret and sends
//! `t=<unix seconds>,v1=<hex>[,v1=<hex>…]`. The body must be checked byte for byte as received,
//! before any parsing, or a re-serialised body will never match.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Longest header accepted; real ones are a few hundred bytes, so anything bigger is hostile.
const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Most `key=value` items accepted, which also bounds the HMAC comparisons per secret.
const MAX_ITEMS: usize = 64;
/// A `v1` signature is a SHA-256 output in hex.
const V1_HEX_LEN: usize = 64;

/// Why a signature was refused. Display messages are safe to show to a client (no secret, no
/// expected signature).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// The request has no `Stripe-Signature` header.
    #[error("missing Stripe-Signature header")]
    Missing,
    /// The header is not of the form Stripe sends.
    #[error("malformed Stripe-Signature header")]
    Malformed,
    /// The header has no well-formed `v1` signature.
    #[error("no v1 signature in Stripe-Signature header")]
    NoV1Signature,
    /// The signed timestamp is too far from now: a replay, or a badly wrong clock.
    #[error("Stripe-Signature timestamp outside the tolerance")]
    OutsideTolerance,
    /// No `v1` signature matches the payload under any configured secret.
    #[error("no signature matches the payload")]
    NoMatch,
}

/// A parsed `Stripe-Signature` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    /// The signing time, in Unix seconds.
    pub timestamp: i64,
    /// The decoded `v1` signatures (32 bytes each); several appear while Stripe rolls a secret.
    pub v1: Vec<Vec<u8>>,
}

impl SignatureHeader {
    /// Parses a header value. Unknown keys (`v0` among them) are ignored, and so are malformed
    /// `v1` values, so that one bad entry cannot hide a good one.
    pub fn parse(header: &str) -> Result<Self, SignatureError> {
        if header.len() > MAX_HEADER_BYTES || header.trim_matches(' ').is_empty() {
            return Err(SignatureError::Malformed);
        }
        let mut timestamp = None;
        let mut v1 = Vec::new();
        for (index, item) in header.split(',').enumerate() {
            if index >= MAX_ITEMS {
                return Err(SignatureError::Malformed);
            }
            let (key, value) = item.split_once('=').ok_or(SignatureError::Malformed)?;
            let value = value.trim_matches(' ');
            match key.trim_matches(' ') {
                "t" => {
                    let t = value.parse().map_err(|_| SignatureError::Malformed)?;
                    // Two timestamps leave it ambiguous which one was signed.
                    if timestamp.replace(t).is_some() {
                        return Err(SignatureError::Malformed);
                    }
                }
                "v1" => v1.extend(decode_v1(value)),
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
        if v1.is_empty() {
            return Err(SignatureError::NoV1Signature);
        }
        Ok(Self { timestamp, v1 })
    }
}

fn decode_v1(value: &str) -> Option<Vec<u8>> {
    if value.len() != V1_HEX_LEN {
        return None;
    }
    hex::decode(value).ok()
}

/// Verifies `payload` (the exact raw body bytes) against the header value (None when the header
/// is absent).
pub fn verify(
    header: Option<&str>,
    payload: &[u8],
    secrets: &[SecretString],
    tolerance: Duration,
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let header = SignatureHeader::parse(header.ok_or(SignatureError::Missing)?)?;
    // Checked before any HMAC work, so replays of old events cost next to nothing.
    if !within_tolerance(header.timestamp, now.timestamp(), tolerance) {
        return Err(SignatureError::OutsideTolerance);
    }
    for secret in secrets {
        let Some(mac) = signed_payload_mac(secret.expose_secret(), header.timestamp, payload)
        else {
            continue;
        };
        // `verify_slice` compares in constant time, so timing reveals nothing of the expected
        // signature.
        if header
            .v1
            .iter()
            .any(|candidate| mac.clone().verify_slice(candidate).is_ok())
        {
            return Ok(());
        }
    }
    Err(SignatureError::NoMatch)
}

/// The header value Stripe would send for `payload` signed with `secret` at `timestamp`: for tests
/// and local tools.
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    match signed_payload_mac(secret, timestamp, payload) {
        Some(mac) => format!(
            "t={timestamp},v1={}",
            hex::encode(mac.finalize().into_bytes())
        ),
        // Unreachable (HMAC takes keys of any length); a header without `v1` fails closed.
        None => format!("t={timestamp}"),
    }
}

/// Both sides of `now` count: a timestamp from the future is as suspect as a stale one. An
/// overflowing difference is out of range by definition.
fn within_tolerance(timestamp: i64, now: i64, tolerance: Duration) -> bool {
    now.checked_sub(timestamp)
        .is_some_and(|distance| Duration::from_secs(distance.unsigned_abs()) <= tolerance)
}

/// The MAC over `"<timestamp>.<payload>"`, ready to finalise or verify. `None` only if HMAC
/// refused the key, which it never does; this keeps that impossible case off the panic path.
fn signed_payload_mac(secret: &str, timestamp: i64, payload: &[u8]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    Some(mac)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SECRET: &str = "whsec_test";
    const T: i64 = 1_700_000_000;
    const TOLERANCE: Duration = Duration::from_secs(300);
    const BODY: &[u8] = br#"{"id":"evt_1"}"#;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    fn secrets(values: &[&str]) -> Vec<SecretString> {
        values.iter().map(|s| SecretString::from(*s)).collect()
    }

    fn v1_hex(header: &str) -> &str {
        header.split_once(",v1=").unwrap().1
    }

    fn check(header: &str, body: &[u8], configured: &[&str]) -> Result<(), SignatureError> {
        verify(Some(header), body, &secrets(configured), TOLERANCE, at(T))
    }

    #[test]
    fn a_signature_made_by_sign_verifies() {
        assert_eq!(check(&sign(BODY, SECRET, T), BODY, &[SECRET]), Ok(()));
    }

    #[test]
    fn a_tampered_body_fails() {
        let header = sign(BODY, SECRET, T);
        assert_eq!(
            check(&header, br#"{"id":"evt_2"}"#, &[SECRET]),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn a_wrong_secret_fails() {
        let header = sign(BODY, "whsec_other", T);
        assert_eq!(
            check(&header, BODY, &[SECRET]),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn the_second_of_two_configured_secrets_verifies_during_rotation() {
        let header = sign(BODY, "whsec_new", T);
        assert_eq!(check(&header, BODY, &["whsec_old", "whsec_new"]), Ok(()));
    }

    #[test]
    fn no_configured_secrets_means_no_match() {
        assert_eq!(
            check(&sign(BODY, SECRET, T), BODY, &[]),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn several_v1_entries_verify_when_only_the_last_matches() {
        let good = sign(BODY, SECRET, T);
        let other = sign(BODY, "whsec_other", T);
        let header = format!(
            "t={T},v1={},v1={},v1={}",
            v1_hex(&other),
            "0".repeat(64),
            v1_hex(&good)
        );
        assert_eq!(check(&header, BODY, &[SECRET]), Ok(()));
    }

    #[test]
    fn v0_entries_and_unknown_keys_are_ignored() {
        let good = sign(BODY, SECRET, T);
        let header = format!(
            "v0={}, foo=bar ,t={T}, v1 = {} ,scheme=,v0=zz",
            "a".repeat(64),
            v1_hex(&good)
        );
        assert_eq!(check(&header, BODY, &[SECRET]), Ok(()));
    }

    #[test]
    fn a_malformed_v1_next_to_a_good_one_is_skipped() {
        let good = sign(BODY, SECRET, T);
        let header = format!("t={T},v1=nothex,v1={},v1=", v1_hex(&good));
        assert_eq!(check(&header, BODY, &[SECRET]), Ok(()));
    }

    #[test]
    fn a_timestamp_301_seconds_old_or_ahead_fails_and_299_passes() {
        let header = sign(BODY, SECRET, T);
        let verify_at = |now| verify(Some(&header), BODY, &secrets(&[SECRET]), TOLERANCE, at(now));
        assert_eq!(verify_at(T + 301), Err(SignatureError::OutsideTolerance));
        assert_eq!(verify_at(T - 301), Err(SignatureError::OutsideTolerance));
        assert_eq!(verify_at(T + 299), Ok(()));
        assert_eq!(verify_at(T - 299), Ok(()));
        assert_eq!(verify_at(T + 300), Ok(()));
    }

    #[test]
    fn a_missing_header_is_missing() {
        assert_eq!(
            verify(None, BODY, &secrets(&[SECRET]), TOLERANCE, at(T)),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn garbage_headers_are_malformed() {
        let v1 = "a".repeat(64);
        let cases = [
            String::new(),
            "   ".to_owned(),
            "garbage".to_owned(),
            format!("v1={v1}"),
            format!("t={T},v1={v1},"),
            format!("t={T},t={T},v1={v1}"),
            format!("t=soon,v1={v1}"),
            format!("t=99999999999999999999,v1={v1}"),
            format!("t={T};v1={v1}"),
            format!("t={T},v1={v1}{}", ",x=y".repeat(MAX_ITEMS)),
            format!("t={T},v1={v1},x={}", "y".repeat(MAX_HEADER_BYTES)),
        ];
        for header in &cases {
            assert_eq!(
                SignatureHeader::parse(header),
                Err(SignatureError::Malformed),
                "{header:.80}"
            );
            assert_eq!(
                check(header, BODY, &[SECRET]),
                Err(SignatureError::Malformed)
            );
        }
    }

    #[test]
    fn sixty_four_items_are_still_accepted() {
        let good = sign(BODY, SECRET, T);
        let header = format!("{good}{}", ",x=y".repeat(MAX_ITEMS - 2));
        assert_eq!(check(&header, BODY, &[SECRET]), Ok(()));
    }

    #[test]
    fn a_header_with_only_v0_has_no_v1_signature() {
        let header = format!("t={T},v0={}", "a".repeat(64));
        assert_eq!(
            check(&header, BODY, &[SECRET]),
            Err(SignatureError::NoV1Signature)
        );
    }

    #[test]
    fn extreme_timestamps_do_not_panic_and_fail() {
        for t in [i64::MIN, i64::MAX, i64::MIN + 1, -1, 0] {
            let header = sign(BODY, SECRET, t);
            assert_eq!(
                check(&header, BODY, &[SECRET]),
                Err(SignatureError::OutsideTolerance)
            );
            let max_tolerance = verify(
                Some(&header),
                BODY,
                &secrets(&[SECRET]),
                Duration::MAX,
                DateTime::<Utc>::MAX_UTC,
            );
            assert!(
                max_tolerance.is_ok() || max_tolerance == Err(SignatureError::OutsideTolerance)
            );
        }
    }

    #[test]
    fn sign_matches_an_independently_computed_known_vector() {
        let mut mac = HmacSha256::new_from_slice(b"whsec_test").unwrap();
        mac.update(br#"1700000000.{"id":"evt_1"}"#);
        let expected = hex::encode(mac.finalize().into_bytes());
        // Also computed with `openssl dgst -sha256 -hmac whsec_test`.
        assert_eq!(
            expected,
            "c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925"
        );
        assert_eq!(
            sign(br#"{"id":"evt_1"}"#, "whsec_test", 1_700_000_000),
            format!("t=1700000000,v1={expected}")
        );
    }

    #[test]
    fn error_messages_name_no_secret_or_signature() {
        let header = sign(BODY, SECRET, T);
        let error = check(&header, b"tampered", &[SECRET]).unwrap_err();
        let message = error.to_string();
        assert!(!message.contains(SECRET));
        assert!(!message.contains(v1_hex(&header)));
    }

    /// A string shaped like a header, to reach further into the parser than random text does.
    fn header_like() -> impl Strategy<Value = String> {
        "[tv01= ,a-f0-9-]{0,200}"
    }

    proptest! {
        #[test]
        fn parse_never_panics_on_arbitrary_strings(header in any::<String>(), shaped in header_like()) {
            let _ = SignatureHeader::parse(&header);
            let _ = SignatureHeader::parse(&shaped);
        }

        #[test]
        fn verify_never_panics_on_arbitrary_strings_and_bytes(
            header in prop_oneof![any::<String>(), header_like()],
            timestamp in any::<i64>(),
            payload in proptest::collection::vec(any::<u8>(), 0..256),
            secret in any::<String>(),
            tolerance in any::<u64>(),
            now in DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp(),
        ) {
            let configured = secrets(&[&secret]);
            let now = at(now);
            let tolerance = Duration::from_secs(tolerance);
            let _ = verify(Some(&header), &payload, &configured, tolerance, now);
            let signed = sign(&payload, &secret, timestamp);
            let _ = verify(Some(&signed), &payload, &configured, tolerance, now);
        }

        #[test]
        fn any_payload_signed_with_a_random_secret_verifies_and_one_flipped_byte_fails(
            secret in any::<String>(),
            payload in proptest::collection::vec(any::<u8>(), 1..512),
            index in any::<prop::sample::Index>(),
            flip in 1u8..=255,
            timestamp in 0i64..=4_102_444_800,
        ) {
            let configured = secrets(&[&secret]);
            let header = sign(&payload, &secret, timestamp);
            let now = at(timestamp);
            prop_assert_eq!(verify(Some(&header), &payload, &configured, TOLERANCE, now), Ok(()));

            let mut tampered = payload.clone();
            tampered[index.index(payload.len())] ^= flip;
            prop_assert_eq!(
                verify(Some(&header), &tampered, &configured, TOLERANCE, now),
                Err(SignatureError::NoMatch)
            );
        }
    }
}
