//! Institutional licences: an organisation's readers hold a set of entitlements, recognised by
//! the address they read from (IP ranges) or by the e-mail domain they prove (seats), for the
//! licence's dates. Two licences in force at the same time never claim the same address or
//! domain, so a reader is never matched to one of two licences arbitrarily.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::{IpNet, Ipv4Net};

use super::Entitlement;

prefixed_id!(
    /// The identifier of a licence: `lic_` and a time-ordered UUID.
    LicenceId,
    "lic_"
);

/// An address as a 16-byte key in IPv6 space, IPv4 as its IPv4-mapped form (`::ffff:a.b.c.d`),
/// so that one byte order compares every address and range, whichever family wrote it.
pub type AddressKey = [u8; 16];

/// The key of `address`; an IPv4-mapped IPv6 address has its IPv4 address's key.
pub fn address_key(address: IpAddr) -> AddressKey {
    match address {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// A range of addresses in CIDR form, normalised: host bits cleared, a host address as a /32 or
/// /128, and an IPv4-mapped IPv6 range (`::ffff:10.0.0.0/104`) as the IPv4 range it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpRange(IpNet);

impl IpRange {
    /// Parses `10.0.0.0/8`, `2001:db8::/32`, or a single address.
    pub fn parse(s: &str) -> Option<Self> {
        let net = match s.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => IpNet::from(s.parse::<IpAddr>().ok()?),
        };
        Some(Self(unmap(net).trunc()))
    }

    /// The first and last address of the range, as keys.
    pub fn bounds(self) -> (AddressKey, AddressKey) {
        (
            address_key(self.0.network()),
            address_key(self.0.broadcast()),
        )
    }

    /// Whether the two ranges share an address.
    pub fn overlaps(self, other: Self) -> bool {
        let ((a_first, a_last), (b_first, b_last)) = (self.bounds(), other.bounds());
        a_first <= b_last && b_first <= a_last
    }

    /// Whether `address` is in the range.
    pub fn contains(self, address: IpAddr) -> bool {
        let (first, last) = self.bounds();
        let key = address_key(unmap_address(address));
        first <= key && key <= last
    }
}

impl<'de> serde::Deserialize<'de> for IpRange {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(deserializer)?;
        Self::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{}` is not an IP address or CIDR range (`10.0.0.0/8`, `2001:db8::/32`)",
                s.chars().take(64).collect::<String>()
            ))
        })
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// `address`, as IPv4 when it is an IPv4-mapped IPv6 address.
pub fn unmap_address(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// `net` as an IPv4 range when it lies within `::ffff:0:0/96`.
fn unmap(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => v6
            .network()
            .to_ipv4_mapped()
            .and_then(|v4| Ipv4Net::new(v4, v6.prefix_len() - 96).ok())
            .map_or(net, IpNet::V4),
        other => other,
    }
}

/// Whether `s` is a registrable domain (`example.edu`, `example.ac.uk`): lower-case ASCII, and
/// exactly one label more than its public suffix by Mozilla's Public Suffix List. A public
/// suffix itself (`edu`, `ac.uk`) would admit a whole country's or sector's addresses; a
/// subdomain is covered by its registrable domain already.
fn is_registrable_domain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        && psl::domain_str(s) == Some(s)
}

validated_string!(
    /// An e-mail domain a licence admits, as its registrable domain: `example.edu` admits
    /// `ana@example.edu` and `ben@dept.example.edu`.
    EmailDomain,
    is_registrable_domain,
    "a registrable domain in lower case (`example.edu`, `example.ac.uk`): not a public suffix \
     such as `edu` or `ac.uk`, and not a subdomain, which its registrable domain covers"
);

impl EmailDomain {
    /// The registrable domain of `email`'s address, lower-cased; `None` for an address with no
    /// domain, or one that is itself a public suffix.
    pub fn of_email(email: &str) -> Option<Self> {
        let (local, domain) = email.trim().rsplit_once('@')?;
        if local.is_empty() || domain.is_empty() || domain.len() > 253 {
            return None;
        }
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let registrable = psl::domain_str(&domain)?;
        Self::parse(registrable)
    }
}

/// Most entitlements, ranges and domains one licence may hold.
pub const MAX_LICENCE_ENTITLEMENTS: usize = 32;
/// Most IP ranges of one licence.
pub const MAX_IP_RANGES: usize = 256;
/// Most e-mail domains of one licence.
pub const MAX_EMAIL_DOMAINS: usize = 64;
/// Most seats of one licence.
pub const MAX_SEATS: u32 = 1_000_000;
/// Longest licence name, in characters.
pub const MAX_LICENCE_NAME_CHARS: usize = 200;

/// What a licence is: everything an admin sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenceSpec {
    /// Whose it is, for people: `University of Example`.
    pub name: String,
    /// What its readers hold, sorted and distinct.
    pub entitlements: Vec<Entitlement>,
    /// The addresses it admits, sorted and distinct.
    pub ip_ranges: Vec<IpRange>,
    /// The e-mail domains whose readers may claim a seat, sorted and distinct.
    pub email_domains: Vec<EmailDomain>,
    /// How many readers may claim a seat by e-mail domain; `None` for no limit.
    pub seats: Option<u32>,
    /// When it comes into force.
    pub starts_at: DateTime<Utc>,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

/// Why a licence cannot be made as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidLicence {
    /// The name is empty, too long or has control characters.
    #[error(
        "name must have 1 to {MAX_LICENCE_NAME_CHARS} characters, none of them control characters, and not be only spaces"
    )]
    Name,
    /// No entitlements, or too many.
    #[error("entitlements must list 1 to {MAX_LICENCE_ENTITLEMENTS} entitlements")]
    Entitlements,
    /// Too many ranges or domains.
    #[error(
        "a licence holds at most {MAX_IP_RANGES} IP ranges and {MAX_EMAIL_DOMAINS} e-mail domains"
    )]
    TooMany,
    /// Neither a range nor a domain: nobody could use it.
    #[error("a licence needs at least one IP range or e-mail domain")]
    Nobody,
    /// Seats out of range.
    #[error("seats must be from 1 to {MAX_SEATS}, or null for no limit")]
    Seats,
    /// The dates are the wrong way round, or already over.
    #[error("expires_at must be after starts_at, and in the future")]
    Dates,
}

impl LicenceSpec {
    /// Checks a licence asked for at `now`, sorting and deduplicating its lists.
    pub fn new(mut self, now: DateTime<Utc>) -> Result<Self, InvalidLicence> {
        let chars = self.name.chars().count();
        if chars == 0
            || chars > MAX_LICENCE_NAME_CHARS
            || self.name.trim().is_empty()
            || self.name.chars().any(char::is_control)
        {
            return Err(InvalidLicence::Name);
        }
        self.entitlements.sort();
        self.entitlements.dedup();
        if self.entitlements.is_empty() || self.entitlements.len() > MAX_LICENCE_ENTITLEMENTS {
            return Err(InvalidLicence::Entitlements);
        }
        self.ip_ranges.sort();
        self.ip_ranges.dedup();
        self.email_domains.sort();
        self.email_domains.dedup();
        if self.ip_ranges.len() > MAX_IP_RANGES || self.email_domains.len() > MAX_EMAIL_DOMAINS {
            return Err(InvalidLicence::TooMany);
        }
        if self.ip_ranges.is_empty() && self.email_domains.is_empty() {
            return Err(InvalidLicence::Nobody);
        }
        if self.seats.is_some_and(|s| s == 0 || s > MAX_SEATS) {
            return Err(InvalidLicence::Seats);
        }
        if self.expires_at <= self.starts_at || self.expires_at <= now {
            return Err(InvalidLicence::Dates);
        }
        Ok(self)
    }

    /// Whether the two licences are in force at some same moment.
    pub fn dates_overlap(&self, other: &Self) -> bool {
        self.starts_at < other.expires_at && other.starts_at < self.expires_at
    }

    /// The first of this licence's ranges that shares an address with one of `other`'s, with
    /// that range of `other`'s.
    pub fn overlapping_range(&self, other: &Self) -> Option<(IpRange, IpRange)> {
        self.ip_ranges.iter().find_map(|mine| {
            other
                .ip_ranges
                .iter()
                .find(|theirs| mine.overlaps(**theirs))
                .map(|theirs| (*mine, *theirs))
        })
    }

    /// The first e-mail domain both licences claim.
    pub fn shared_domain(&self, other: &Self) -> Option<EmailDomain> {
        self.email_domains
            .iter()
            .find(|d| other.email_domains.contains(d))
            .cloned()
    }
}

/// A stored licence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Licence {
    /// Its id.
    pub id: LicenceId,
    /// What it is.
    pub spec: LicenceSpec,
    /// Readers enrolled by e-mail domain now.
    pub members: u32,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

impl Licence {
    /// Whether it is in force at `now`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.spec.starts_at <= now && now < self.spec.expires_at
    }
}

/// Why a licence conflicts with another that is in force at the same time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LicenceConflict {
    /// One of its ranges shares addresses with one of the other's.
    IpRange {
        /// The other licence.
        other: LicenceId,
        /// This licence's range.
        range: IpRange,
        /// The other's range.
        theirs: IpRange,
    },
    /// The other licence claims the same e-mail domain.
    EmailDomain {
        /// The other licence.
        other: LicenceId,
        /// The domain.
        domain: EmailDomain,
    },
}

/// The first conflict of `spec` with any of `others` (the licences it must not overlap, itself
/// left out), among those that have not ended by `now`.
pub fn first_conflict<'a>(
    spec: &LicenceSpec,
    others: impl IntoIterator<Item = &'a Licence>,
    now: DateTime<Utc>,
) -> Option<LicenceConflict> {
    others
        .into_iter()
        .filter(|other| other.spec.expires_at > now && spec.dates_overlap(&other.spec))
        .find_map(|other| {
            if let Some((range, theirs)) = spec.overlapping_range(&other.spec) {
                return Some(LicenceConflict::IpRange {
                    other: other.id.clone(),
                    range,
                    theirs,
                });
            }
            spec.shared_domain(&other.spec)
                .map(|domain| LicenceConflict::EmailDomain {
                    other: other.id.clone(),
                    domain,
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str) -> IpRange {
        IpRange::parse(s).unwrap()
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    fn spec(ranges: &[&str], domains: &[&str], from: i64, to: i64) -> LicenceSpec {
        LicenceSpec {
            name: "University of Example".into(),
            entitlements: vec![Entitlement::parse("articles").unwrap()],
            ip_ranges: ranges.iter().map(|r| range(r)).collect(),
            email_domains: domains
                .iter()
                .map(|d| EmailDomain::parse(d).unwrap())
                .collect(),
            seats: None,
            starts_at: at(from),
            expires_at: at(to),
        }
    }

    fn licence(spec: LicenceSpec) -> Licence {
        Licence {
            id: LicenceId::generate(),
            spec,
            members: 0,
            created_at: at(0),
        }
    }

    #[test]
    fn ranges_are_normalised_and_host_addresses_are_single_address_ranges() {
        assert_eq!(range("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(range("10.1.2.3").to_string(), "10.1.2.3/32");
        assert_eq!(range("2001:db8::1").to_string(), "2001:db8::1/128");
        assert_eq!(range("2001:DB8:1::/48").to_string(), "2001:db8:1::/48");
        assert_eq!(range("::ffff:10.0.0.0/104").to_string(), "10.0.0.0/8");
        assert_eq!(range("::ffff:192.0.2.7").to_string(), "192.0.2.7/32");
        for bad in [
            "",
            "10.0.0.0/33",
            "2001:db8::/129",
            "example.edu",
            "10.0.0",
            "10.0.0.0/",
        ] {
            assert!(IpRange::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn overlaps_are_seen_across_prefix_lengths_and_address_forms() {
        assert!(range("10.0.0.0/8").overlaps(range("10.1.2.3/32")));
        assert!(range("10.1.2.3/32").overlaps(range("10.0.0.0/8")));
        assert!(range("2001:db8::/32").overlaps(range("2001:db8:1::/48")));
        assert!(range("10.0.0.0/8").overlaps(range("::ffff:10.9.9.9")));
        assert!(!range("10.0.0.0/8").overlaps(range("11.0.0.0/8")));
        assert!(!range("2001:db8::/32").overlaps(range("2001:db9::/32")));
        // IPv4 and native IPv6 space never meet.
        assert!(!range("0.0.0.0/0").overlaps(range("2001:db8::/32")));
        assert!(range("10.0.0.0/8").contains("10.200.1.1".parse().unwrap()));
        assert!(range("10.0.0.0/8").contains("::ffff:10.200.1.1".parse().unwrap()));
        assert!(!range("10.0.0.0/8").contains("11.0.0.1".parse().unwrap()));
    }

    #[test]
    fn email_domains_are_registrable_domains_and_match_their_subdomains() {
        for good in [
            "example.edu",
            "example.ac.uk",
            "ministry.gov.uk",
            "example.com",
        ] {
            assert!(EmailDomain::parse(good).is_some(), "{good:?}");
        }
        for bad in [
            "edu",
            "ac.uk",
            "com",
            "dept.example.edu",
            "Example.edu",
            "example..edu",
            "",
            "-a.edu",
        ] {
            assert!(EmailDomain::parse(bad).is_none(), "{bad:?}");
        }
        let of = |email: &str| EmailDomain::of_email(email).map(|d| d.as_str().to_owned());
        assert_eq!(of("ana@example.edu").as_deref(), Some("example.edu"));
        assert_eq!(of("Ben@Dept.Example.EDU").as_deref(), Some("example.edu"));
        assert_eq!(
            of("cy@mail.example.ac.uk").as_deref(),
            Some("example.ac.uk")
        );
        assert_eq!(of("dee@ac.uk"), None);
        assert_eq!(of("no-at-sign"), None);
        assert_eq!(of("@example.edu"), None);
    }

    #[test]
    fn a_licence_needs_a_name_entitlements_someone_to_admit_and_dates_ahead() {
        let now = at(1_000);
        assert!(spec(&["10.0.0.0/8"], &[], 0, 2_000).new(now).is_ok());
        assert_eq!(
            spec(&[], &[], 0, 2_000).new(now),
            Err(InvalidLicence::Nobody)
        );
        assert_eq!(
            spec(&["10.0.0.0/8"], &[], 0, 900).new(now),
            Err(InvalidLicence::Dates)
        );
        assert_eq!(
            spec(&["10.0.0.0/8"], &[], 3_000, 3_000).new(now),
            Err(InvalidLicence::Dates)
        );
        let mut nameless = spec(&["10.0.0.0/8"], &[], 0, 2_000);
        nameless.name = "  ".into();
        assert_eq!(nameless.new(now), Err(InvalidLicence::Name));
        let mut seatless = spec(&[], &["example.edu"], 0, 2_000);
        seatless.seats = Some(0);
        assert_eq!(seatless.new(now), Err(InvalidLicence::Seats));
        let mut lists = spec(
            &["10.1.0.0/16", "10.1.2.3/16"],
            &["example.edu", "example.edu"],
            0,
            2_000,
        );
        lists
            .entitlements
            .push(Entitlement::parse("articles").unwrap());
        let lists = lists.new(now).unwrap();
        assert_eq!(lists.ip_ranges.len(), 1);
        assert_eq!(lists.email_domains.len(), 1);
        assert_eq!(lists.entitlements.len(), 1);
    }

    #[test]
    fn conflicts_need_both_dates_and_addresses_or_a_domain_to_overlap() {
        let now = at(1_000);
        let campus = licence(spec(&["10.0.0.0/8"], &["example.edu"], 0, 5_000));
        // Same addresses, dates overlapping: refused, naming the other licence.
        let host = spec(&["10.1.2.3"], &[], 4_000, 9_000);
        assert_eq!(
            first_conflict(&host, [&campus], now),
            Some(LicenceConflict::IpRange {
                other: campus.id.clone(),
                range: range("10.1.2.3/32"),
                theirs: range("10.0.0.0/8"),
            })
        );
        // The same addresses after the campus licence ends: no conflict.
        assert_eq!(
            first_conflict(&spec(&["10.1.2.3"], &[], 5_000, 9_000), [&campus], now),
            None
        );
        // The same domain at the same time: refused.
        assert!(matches!(
            first_conflict(&spec(&[], &["example.edu"], 0, 2_000), [&campus], now),
            Some(LicenceConflict::EmailDomain { .. })
        ));
        // An ended licence conflicts with nothing, even over dates that overlapped it.
        let ended = licence(spec(&["10.0.0.0/8"], &[], 0, 900));
        assert_eq!(
            first_conflict(&spec(&["10.0.0.0/8"], &[], 0, 2_000), [&ended], now),
            None
        );
        assert!(campus.is_active(now));
        assert!(!campus.is_active(at(5_000)));
        assert!(!licence(spec(&["10.0.0.0/8"], &[], 2_000, 5_000)).is_active(now));
    }
}
