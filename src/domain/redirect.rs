//! Where Stripe may send a reader back to: absolute URLs on the origins the operator allows, so
//! that no request can turn tollgate into an open redirect.

use std::fmt;
use std::str::FromStr;

use url::Url;

/// Longest redirect URL accepted, in bytes (Stripe's own limit is larger).
const MAX_URL_BYTES: usize = 2048;

/// The placeholder Stripe fills with the Checkout Session's id in a success URL.
pub const CHECKOUT_SESSION_ID: &str = "{CHECKOUT_SESSION_ID}";

/// An origin a reader may be sent back to: `https://host[:port]`, or `http://` for a loopback
/// host (local development).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(url::Origin);

/// Why a configured origin was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an origin: write scheme, host and optional port only (https://www.example.com), \
     http only for localhost"
)]
pub struct InvalidOrigin(String);

impl FromStr for Origin {
    type Err = InvalidOrigin;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidOrigin(s.to_owned());
        let url = Url::parse(s).map_err(|_| invalid())?;
        let bare = url.path() == "/"
            && !s.ends_with('/')
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none();
        if !bare || !scheme_allowed(&url) {
            return Err(invalid());
        }
        Ok(Self(url.origin()))
    }
}

impl<'de> serde::Deserialize<'de> for Origin {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Origin {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.ascii_serialization())
    }
}

/// https everywhere; http only where the host is this machine.
fn scheme_allowed(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Domain(domain)) => domain == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

/// A URL a reader may be redirected to: absolute, https (http on localhost), without user
/// information, on an allowed origin. Its text is the parsed, normalised form, with
/// `{CHECKOUT_SESSION_ID}` kept as written for Stripe to fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUrl(String);

/// Why a redirect URL was refused; the messages are safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRedirect {
    /// Not an absolute URL (relative, scheme-relative, or not a URL at all).
    #[error("must be an absolute URL such as https://www.example.com/welcome")]
    NotAbsolute,
    /// Longer than [`MAX_URL_BYTES`].
    #[error("must be at most {MAX_URL_BYTES} bytes long")]
    TooLong,
    /// Has whitespace, control characters or backslashes, which browsers and parsers read
    /// differently.
    #[error("must not contain whitespace, control characters or backslashes")]
    Characters,
    /// A scheme other than https (or http on localhost).
    #[error("must use https (http only for localhost)")]
    Scheme,
    /// Has a user name or password before the host.
    #[error("must not contain a user name or password")]
    UserInfo,
    /// Its origin is not among the allowed ones.
    #[error("its origin {0} is not among the allowed redirect origins (allowed_redirect_origins)")]
    Origin(String),
}

impl RedirectUrl {
    /// Checks `raw` against the rules and the `allowed` origins.
    pub fn parse(raw: &str, allowed: &[Origin]) -> Result<Self, InvalidRedirect> {
        if raw.len() > MAX_URL_BYTES {
            return Err(InvalidRedirect::TooLong);
        }
        if raw
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
        {
            return Err(InvalidRedirect::Characters);
        }
        let url = Url::parse(raw).map_err(|_| InvalidRedirect::NotAbsolute)?;
        if url.cannot_be_a_base() && !matches!(url.scheme(), "http" | "https") {
            // `javascript:`, `data:`, `mailto:` and the like.
            return Err(InvalidRedirect::Scheme);
        }
        if !scheme_allowed(&url) {
            return Err(InvalidRedirect::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(InvalidRedirect::UserInfo);
        }
        let origin = url.origin();
        if !allowed.iter().any(|o| o.0 == origin) {
            return Err(InvalidRedirect::Origin(origin.ascii_serialization()));
        }
        // The parser percent-encodes braces in a path; Stripe needs its placeholder verbatim.
        let text = url
            .as_str()
            .replace("%7BCHECKOUT_SESSION_ID%7D", CHECKOUT_SESSION_ID);
        Ok(Self(text))
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<Origin> {
        ["https://news.example", "http://localhost:3000"]
            .iter()
            .map(|o| o.parse().unwrap())
            .collect()
    }

    fn check(raw: &str) -> Result<String, InvalidRedirect> {
        RedirectUrl::parse(raw, &allowed()).map(|u| u.as_str().to_owned())
    }

    #[test]
    fn urls_on_an_allowed_origin_are_kept_with_the_session_placeholder() {
        assert_eq!(
            check("https://news.example/welcome?session={CHECKOUT_SESSION_ID}").unwrap(),
            "https://news.example/welcome?session={CHECKOUT_SESSION_ID}"
        );
        assert_eq!(
            check("https://news.example/thanks/{CHECKOUT_SESSION_ID}").unwrap(),
            "https://news.example/thanks/{CHECKOUT_SESSION_ID}"
        );
        // Case and the default port are normalised before the origin is compared.
        assert_eq!(
            check("HTTPS://NEWS.example:443/a#top").unwrap(),
            "https://news.example/a#top"
        );
        assert!(check("http://localhost:3000/back").is_ok());
    }

    #[test]
    fn foreign_origins_and_lookalikes_are_refused() {
        for raw in [
            "https://evil.example/",
            "https://news.example.evil.example/",
            "https://evilnews.example/",
            "https://news.example:8443/",
            "http://news.example/",
            "http://localhost:4000/",
        ] {
            assert!(
                matches!(
                    check(raw),
                    Err(InvalidRedirect::Origin(_) | InvalidRedirect::Scheme)
                ),
                "{raw}"
            );
        }
    }

    #[test]
    fn user_information_tricks_are_refused() {
        assert_eq!(
            check("https://news.example@evil.example/"),
            Err(InvalidRedirect::UserInfo)
        );
        assert_eq!(
            check("https://news.example:pw@evil.example/"),
            Err(InvalidRedirect::UserInfo)
        );
        assert_eq!(
            check("https://user@news.example/"),
            Err(InvalidRedirect::UserInfo)
        );
    }

    #[test]
    fn scripts_relative_urls_and_odd_characters_are_refused() {
        assert_eq!(check("javascript:alert(1)"), Err(InvalidRedirect::Scheme));
        assert_eq!(
            check("data:text/html,<script>alert(1)</script>"),
            Err(InvalidRedirect::Scheme)
        );
        assert_eq!(check("/welcome"), Err(InvalidRedirect::NotAbsolute));
        assert_eq!(
            check("//evil.example/welcome"),
            Err(InvalidRedirect::NotAbsolute)
        );
        assert_eq!(check(""), Err(InvalidRedirect::NotAbsolute));
        assert_eq!(
            check("https://news.example\\@evil.example/"),
            Err(InvalidRedirect::Characters)
        );
        assert_eq!(
            check("https://news.example/\t@evil.example"),
            Err(InvalidRedirect::Characters)
        );
        assert_eq!(
            check(" https://news.example/"),
            Err(InvalidRedirect::Characters)
        );
        let long = format!("https://news.example/{}", "a".repeat(MAX_URL_BYTES));
        assert_eq!(check(&long), Err(InvalidRedirect::TooLong));
    }

    #[test]
    fn configured_origins_must_be_bare_origins() {
        assert!("https://news.example".parse::<Origin>().is_ok());
        assert!("http://127.0.0.1:8080".parse::<Origin>().is_ok());
        for bad in [
            "https://news.example/",
            "https://news.example/path",
            "http://news.example",
            "news.example",
            "https://user@news.example",
            "ftp://news.example",
        ] {
            assert!(bad.parse::<Origin>().is_err(), "{bad}");
        }
        assert_eq!(
            "HTTPS://News.Example:443"
                .parse::<Origin>()
                .unwrap()
                .to_string(),
            "https://news.example"
        );
    }
}
