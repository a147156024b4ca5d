//! Stripe error messages made safe to show: on one line, bounded, and with anything shaped like a
//! Stripe secret replaced.

/// Longest Stripe error message kept, in characters.
const MAX_MESSAGE_CHARS: usize = 500;

/// A Stripe error message on one line (control characters become spaces), cut to
/// [`MAX_MESSAGE_CHARS`], with anything shaped like a Stripe secret replaced, so it can go into a
/// log line or an answer as it is. (Stripe masks keys it quotes, but this does not rely on it.)
pub(super) fn bounded_message(message: &str) -> String {
    let one_line: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE_CHARS)
        .collect();
    redact_secrets(&one_line)
}

/// Prefixes of Stripe's secrets: secret and restricted keys, webhook signing secrets.
const SECRET_PREFIXES: [&str; 5] = ["sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"];

/// `text` with every word that starts like a Stripe secret replaced by `[redacted]`.
fn redact_secrets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((at, prefix)) = SECRET_PREFIXES
        .iter()
        .filter_map(|p| rest.find(p).map(|at| (at, *p)))
        .min()
    {
        out.push_str(&rest[..at]);
        out.push_str("[redacted]");
        let after = &rest[at + prefix.len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '*' || c == '_'))
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Longest start of an unreadable answer's body kept, in characters.
const MAX_EXCERPT_CHARS: usize = 200;

/// The start of an answer's body, made safe to show like a message: on one line, at most
/// [`MAX_EXCERPT_CHARS`], secrets replaced; `no body` for an empty one.
pub(super) fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let safe = bounded_message(text.trim());
    if safe.is_empty() {
        "no body".to_owned()
    } else {
        safe.chars().take(MAX_EXCERPT_CHARS).collect()
    }
}
