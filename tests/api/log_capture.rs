//! Every log line of every app in this test process, captured as production writes it and
//! checked for secrets: API keys, Stripe secret keys, webhook signing secrets and private signing
//! keys. Error bodies are checked through their log line (the service logs each problem it
//! answers, at debug level). A [`TestApp`](crate::helpers::TestApp) runs the check, metrics
//! included, when it is dropped, so every test is checked without calling anything.
//!
//! Lines are scanned for the shapes of secrets, and for the secrets apps were configured with, as
//! they are written. A test's window (the text written while its app ran) is kept until the test
//! ends, then searched for that app's own signing keys and dropped: memory holds only what running
//! tests still need.

use std::ops::Range;
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;

/// Debug for tollgate and the web stack, as an operator chasing a problem would set it; info
/// for the rest.
const FILTER: &str = "info,tollgate=debug,actix_web=debug,actix_http=debug,actix_server=debug,\
                      tracing_actix_web=debug";

/// A word that starts a secret, and how much of a secret must follow it for it to count.
struct Word {
    word: &'static str,
    what: &'static str,
    min: usize,
    tail: fn(u8) -> bool,
}

/// Words matched case-insensitively where no letter or digit precedes them. A key hint (four
/// characters, no prefix), a key id (`key_...`) or Stripe's own masking (`sk_test_****`) never
/// matches; most of a key (16 hex digits or more) does.
const WORDS: [Word; 6] = [
    Word {
        word: "tgk_",
        what: "an API key",
        min: 16,
        tail: is_hex,
    },
    Word {
        word: "sk_live_",
        what: "a Stripe secret key",
        min: 4,
        tail: is_word,
    },
    Word {
        word: "sk_test_",
        what: "a Stripe secret key",
        min: 4,
        tail: is_word,
    },
    Word {
        word: "rk_live_",
        what: "a Stripe restricted key",
        min: 4,
        tail: is_word,
    },
    Word {
        word: "rk_test_",
        what: "a Stripe restricted key",
        min: 4,
        tail: is_word,
    },
    Word {
        word: "whsec_",
        what: "a webhook signing secret",
        min: 3,
        tail: is_word,
    },
];

/// Marks and openings of private keys in PEM, matched exactly: the PEM boundary, and the base64
/// openings of the PKCS#8 keys tollgate makes and reads (Ed25519 v1 and v2, P-256 with and
/// without its public key). What follows them, as far as it may be PEM, counts as the secret.
const PEM_MARKS: [(&str, &str); 5] = [
    ("PRIVATE KEY-----", "a PEM private key"),
    ("MC4CAQAwBQYDK2VwBCIEI", "an Ed25519 private key"),
    ("MFMCAQEwBQYDK2VwBCIEI", "an Ed25519 private key"),
    (
        "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg",
        "a P-256 private key",
    ),
    (
        "MEECAQAwEwYHKoZIzj0CAQYIKoZIzj0DAQcEJzAlAgEBBCA",
        "a P-256 private key",
    ),
];

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Base64, PEM boundaries and line breaks, raw or escaped as JSON and Rust's `Debug` escape them.
fn is_pem(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"+/=- \\\n\r".contains(&b)
}

/// A secret in some text: where, and what it looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub range: Range<usize>,
    pub what: &'static str,
}

/// Every secret in `text`: anything shaped like one, and any of the `exact` values.
pub fn secrets_in(text: &str, exact: &[String]) -> Vec<Found> {
    let mut found = shaped_secrets_in(text);
    found.extend(exact_secrets_in(text, exact));
    found
}

/// The lines of `text` that show anything shaped like a secret, redacted.
pub fn leaks_in(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let found = shaped_secrets_in(line);
            (!found.is_empty()).then(|| redact(line, &found))
        })
        .collect()
}

/// Everything in `text` shaped like a secret.
fn shaped_secrets_in(text: &str) -> Vec<Found> {
    let mut found = Vec::new();
    let lower = text.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    for Word {
        word,
        what,
        min,
        tail,
    } in WORDS
    {
        for (at, _) in lower.match_indices(word) {
            if at > 0 && bytes[at - 1].is_ascii_alphanumeric() {
                continue;
            }
            let start = at + word.len();
            let len = bytes[start..].iter().take_while(|b| tail(**b)).count();
            if len >= min {
                found.push(Found {
                    range: at..start + len,
                    what,
                });
            }
        }
    }
    for (mark, what) in PEM_MARKS {
        for (at, _) in text.match_indices(mark) {
            let start = at + mark.len();
            let len = text.as_bytes()[start..]
                .iter()
                .take_while(|b| is_pem(**b))
                .count();
            found.push(Found {
                range: at..start + len,
                what,
            });
        }
    }
    found
}

/// Every occurrence of the `exact` values in `text`.
fn exact_secrets_in(text: &str, exact: &[String]) -> Vec<Found> {
    exact
        .iter()
        .flat_map(|value| {
            text.match_indices(value.as_str()).map(|(at, _)| Found {
                range: at..at + value.len(),
                what: "a known secret",
            })
        })
        .collect()
}

/// The line of `text` around `range`.
fn line_around(text: &str, range: &Range<usize>) -> Range<usize> {
    let start = text[..range.start].rfind('\n').map_or(0, |at| at + 1);
    let end = text[range.end..]
        .find('\n')
        .map_or(text.len(), |at| range.end + at);
    start..end
}

/// `text` with every secret `found` in it replaced, fit to quote in a failure message.
pub fn redact(text: &str, found: &[Found]) -> String {
    let mut hidden = vec![false; text.len()];
    for f in found {
        hidden[f.range.clone()].fill(true);
    }
    let mut out = String::new();
    for (at, c) in text.char_indices() {
        match (hidden[at], at > 0 && hidden[at - 1]) {
            (false, _) => out.push(c),
            (true, false) => out.push_str("[SECRET]"),
            (true, true) => {}
        }
    }
    const MAX_CHARS: usize = 2000;
    match out.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{} ...", &out[..cut]),
        None => out,
    }
}

/// The forms in which a private signing key (PKCS#8 PEM) could appear in a line: each line of
/// its PEM body, and its private scalar in hex, base64, base64url (a JWK's `d`) and as Rust
/// prints a byte slice.
pub fn signing_key_material(pem: &str) -> Vec<String> {
    let mut material: Vec<String> = pem
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with("-----") && line.len() >= 16)
        .map(str::to_owned)
        .collect();
    if let Some(scalar) = pem::parse(pem)
        .ok()
        .and_then(|p| private_scalar(p.contents()))
    {
        let debug = format!("{scalar:?}");
        material.extend([
            hex::encode(scalar),
            STANDARD_NO_PAD.encode(scalar),
            URL_SAFE_NO_PAD.encode(scalar),
            debug.trim_matches(['[', ']']).to_owned(),
        ]);
    }
    material.sort();
    material.dedup();
    material
}

/// The 32-byte private key inside a PKCS#8 Ed25519 (`04 22 04 20 ..`) or P-256 key
/// (`02 01 01 04 20 ..`).
fn private_scalar(der: &[u8]) -> Option<[u8; 32]> {
    let markers: [&[u8]; 2] = [&[0x04, 0x22, 0x04, 0x20], &[0x02, 0x01, 0x01, 0x04, 0x20]];
    markers.iter().find_map(|marker| {
        let at = der.windows(marker.len()).position(|w| w == *marker)? + marker.len();
        der.get(at..at + 32)?.try_into().ok()
    })
}

/// A secret seen in a line as it was written.
struct Finding {
    /// The offset of its line in everything captured.
    at: usize,
    /// The line, redacted.
    line: String,
    what: Vec<&'static str>,
    reported: bool,
}

/// Everything captured so far.
struct Capture {
    /// What was written from offset `base` on; the text before is no longer needed.
    text: String,
    base: usize,
    /// Secrets some app was configured with, looked for verbatim in every line.
    configured: Vec<String>,
    findings: Vec<Finding>,
    /// Open windows: id and start offset.
    windows: Vec<(u64, usize)>,
    next_window: u64,
}

static CAPTURE: Mutex<Capture> = Mutex::new(Capture {
    text: String::new(),
    base: 0,
    configured: Vec::new(),
    findings: Vec::new(),
    windows: Vec::new(),
    next_window: 0,
});

fn capture() -> MutexGuard<'static, Capture> {
    // A failed check panics only after letting go of the lock, but be safe.
    CAPTURE.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Capture {
    fn end(&self) -> usize {
        self.base + self.text.len()
    }

    fn record(&mut self, line: &str) {
        let found = secrets_in(line, &self.configured);
        if !found.is_empty() {
            let mut what: Vec<_> = found.iter().map(|f| f.what).collect();
            what.sort_unstable();
            what.dedup();
            self.findings.push(Finding {
                at: self.end(),
                line: redact(line, &found),
                what,
                reported: false,
            });
        }
        if self.windows.is_empty() {
            self.base += line.len();
        } else {
            self.text.push_str(line);
        }
    }

    /// Drops the text no open window needs.
    fn trim(&mut self) {
        let keep_from = self
            .windows
            .iter()
            .map(|(_, start)| *start)
            .min()
            .unwrap_or_else(|| self.end());
        let cut = keep_from - self.base;
        self.text.drain(..cut);
        self.base = keep_from;
    }
}

/// Installs the subscriber that captures every line, once per process: production's JSON
/// format (see `src/telemetry.rs`), except that every enclosing span is listed (`spans`) where
/// production shows the innermost (`span`), so that the fields of every span are seen, as the
/// pretty format prints them.
pub fn install() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(FILTER))
            .with_writer(Lines)
            .with_span_events(FmtSpan::NONE)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init()
            .expect("another log subscriber was installed before the capture");
    });
}

/// Hands the formatter a buffer per line and records the line when it is done.
struct Lines;

impl MakeWriter<'_> for Lines {
    type Writer = Line;

    fn make_writer(&self) -> Line {
        Line(Vec::new())
    }
}

struct Line(Vec<u8>);

impl std::io::Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            capture().record(&String::from_utf8_lossy(&self.0));
        }
    }
}

/// The lines written while one app ran, checked when it ends.
#[derive(Debug)]
pub struct Window {
    id: u64,
    start: usize,
}

/// Starts a window and looks for `secrets` (what the app is configured with) in every line
/// from now on. Secrets shorter than 8 characters cannot be told from ordinary text and are
/// left to the shape checks.
pub fn open_window(secrets: impl IntoIterator<Item = String>) -> Window {
    install();
    let mut capture = capture();
    for secret in secrets {
        if secret.len() >= 8 && !capture.configured.contains(&secret) {
            capture.configured.push(secret);
        }
    }
    let window = Window {
        id: capture.next_window,
        start: capture.end(),
    };
    capture.next_window += 1;
    capture.windows.push((window.id, window.start));
    window
}

impl Window {
    /// Every line written since the window opened.
    pub fn text(&self) -> String {
        let capture = capture();
        capture.text[self.start - capture.base..].to_owned()
    }

    /// Closes the window. The error lists every secret seen: in a line written since it opened
    /// (or before, not yet reported), anywhere in the window's text for this app's own signing
    /// keys (`private_keys`, PEM), and in `metrics` (the app's metrics as Prometheus text).
    pub fn check(&self, private_keys: &[String], metrics: &[String]) -> Result<(), String> {
        let material: Vec<String> = private_keys
            .iter()
            .flat_map(|pem| signing_key_material(pem))
            .collect();
        let mut capture = capture();
        let mut failures = Vec::new();
        for finding in &mut capture.findings {
            if finding.at >= self.start || !finding.reported {
                finding.reported = true;
                failures.push(format!(
                    "{} in a log line: {}",
                    finding.what.join(", "),
                    finding.line
                ));
            }
        }
        let own = &capture.text[self.start - capture.base..];
        for found in exact_secrets_in(own, &material) {
            let line = &own[line_around(own, &found.range)];
            let failure = format!(
                "this app's private signing key in a log line: {}",
                redact(line, &secrets_in(line, &material))
            );
            if !failures.contains(&failure) {
                failures.push(failure);
            }
        }
        let known = [capture.configured.as_slice(), material.as_slice()].concat();
        for line in metrics.iter().flat_map(|text| text.lines()) {
            let found = secrets_in(line, &known);
            if !found.is_empty() {
                failures.push(format!("a secret in a metric: {}", redact(line, &found)));
            }
        }
        capture.windows.retain(|(id, _)| *id != self.id);
        capture.trim();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("\n"))
        }
    }

    /// Closes the window without checking it, for a test that failed already.
    pub fn close(&self) {
        let mut capture = capture();
        capture.windows.retain(|(id, _)| *id != self.id);
        capture.trim();
    }
}
