//! Where tollgate may send events: the rules a webhook endpoint's URL and every address it
//! resolves to must follow, so that an endpoint can never point the dispatcher at the machine
//! it runs on, its network or a cloud's metadata service.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use url::{Host, Url};

/// What the operator allows of endpoint URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetRules {
    /// When not empty, the only hosts endpoints may name (lower case).
    pub allowed_hosts: Vec<String>,
    /// Whether `http` URLs are accepted (for development).
    pub allow_insecure: bool,
    /// Whether addresses that are not public (loopback, private, link-local ...) are accepted.
    pub allow_private: bool,
}

/// Why a URL cannot be an endpoint's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidWebhookUrl {
    /// Not a URL.
    #[error("url is not an absolute URL")]
    Malformed,
    /// Over 2048 characters.
    #[error("url is longer than 2048 characters")]
    TooLong,
    /// Neither `https` nor, where allowed, `http`.
    #[error("url must use https{}", if *.0 { " or http" } else { "" })]
    Scheme(bool),
    /// A user name or password in the URL.
    #[error("url must not carry a user name or password")]
    Credentials,
    /// A fragment, which HTTP never sends.
    #[error("url must not have a fragment")]
    Fragment,
    /// A host off `webhook_allowed_hosts`.
    #[error("host `{0}` is not among the allowed webhook hosts")]
    HostNotAllowed(String),
    /// An address that is not public.
    #[error("`{0}` is not a public address (loopback, private, link-local, shared or reserved)")]
    NotPublic(IpAddr),
    /// A name that resolves to nothing.
    #[error("host `{0}` does not resolve")]
    Unresolved(String),
}

impl TargetRules {
    /// Checks what can be checked of `url` without resolving its host: form, scheme, the
    /// allowed hosts and, for an IP literal, its address. The host to resolve, if it is a name.
    pub fn check(&self, url: &str) -> Result<(Url, Option<String>), InvalidWebhookUrl> {
        if url.len() > 2048 {
            return Err(InvalidWebhookUrl::TooLong);
        }
        let parsed = Url::parse(url).map_err(|_| InvalidWebhookUrl::Malformed)?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_insecure => {}
            _ => return Err(InvalidWebhookUrl::Scheme(self.allow_insecure)),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(InvalidWebhookUrl::Credentials);
        }
        if parsed.fragment().is_some() {
            return Err(InvalidWebhookUrl::Fragment);
        }
        let host = parsed.host().ok_or(InvalidWebhookUrl::Malformed)?;
        let shown = match &host {
            Host::Domain(name) => name.trim_end_matches('.').to_ascii_lowercase(),
            Host::Ipv4(ip) => ip.to_string(),
            Host::Ipv6(ip) => ip.to_string(),
        };
        if !self.allowed_hosts.is_empty() && !self.allowed_hosts.contains(&shown) {
            return Err(InvalidWebhookUrl::HostNotAllowed(shown));
        }
        let to_resolve = match host {
            Host::Domain(name) => Some(name.to_owned()),
            Host::Ipv4(ip) => {
                self.check_address(IpAddr::V4(ip))?;
                None
            }
            Host::Ipv6(ip) => {
                self.check_address(IpAddr::V6(ip))?;
                None
            }
        };
        Ok((parsed, to_resolve))
    }

    /// Refuses `ip` unless it is public or the operator allowed private targets.
    pub fn check_address(&self, ip: IpAddr) -> Result<(), InvalidWebhookUrl> {
        if self.allow_private || is_public(ip) {
            Ok(())
        } else {
            Err(InvalidWebhookUrl::NotPublic(ip))
        }
    }
}

/// IPv4 ranges that are not reachable on the public internet (RFC 6890 and its successors).
const V4_NOT_PUBLIC: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network", unspecified
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared address space (CGNAT)
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local, cloud metadata services
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // 6to4 relay anycast (deprecated)
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, broadcast
];

/// IPv6 ranges that are not reachable on the public internet, those that embed an IPv4 address
/// (checked through it) aside.
const V6_NOT_PUBLIC: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96), // unspecified, loopback, IPv4-compatible
    (Ipv6Addr::new(0x0100, 0, 0, 0, 0, 0, 0, 0), 64), // discard
    (Ipv6Addr::new(0x0064, 0xff9b, 1, 0, 0, 0, 0, 0), 48), // local-use NAT64
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23), // IETF protocol assignments, Teredo
    (Ipv6Addr::new(0x2001, 0x0db8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16), // segment routing
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7), // unique local
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10), // link-local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10), // site-local (deprecated)
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8), // multicast
];

/// Whether `ip` is a public unicast address; IPv4 addresses carried in IPv6 (mapped, NAT64,
/// 6to4) are judged as the IPv4 address they carry.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !V4_NOT_PUBLIC
            .iter()
            .any(|&(net, len)| Ipv4Net::new_assert(net, len).contains(&v4)),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return is_public(IpAddr::V4(v4));
            }
            !V6_NOT_PUBLIC
                .iter()
                .any(|&(net, len)| Ipv6Net::new_assert(net, len).contains(&v6))
        }
    }
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped (`::ffff:a.b.c.d`) and -translated
/// (`::ffff:0:a.b.c.d`), the well-known
/// NAT64 prefix (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::`).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let [_, _, _, _, _, _, hi, lo] = s;
    let tail = Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    // IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-translated (`::ffff:0:a.b.c.d`).
    if (s[..5] == [0, 0, 0, 0, 0] && s[5] == 0xffff)
        || (s[..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0)
    {
        return Some(tail);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(ip: &str) -> bool {
        is_public(ip.parse().unwrap())
    }

    #[test]
    fn loopback_private_link_local_shared_and_reserved_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "192.0.0.170",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::ffff:0:7f00:1",
            "::ffff:0:a9fe:a9fe",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2001::1",
            "::7f00:1",
        ] {
            assert!(!public(ip), "{ip} must not be public");
        }
    }

    #[test]
    fn public_addresses_are_public_also_when_carried_in_ipv6() {
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::6810:85e5",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(public(ip), "{ip} is public");
        }
    }

    #[test]
    fn urls_must_be_https_without_credentials_and_name_a_public_or_allowed_host() {
        let rules = TargetRules::default();
        assert_eq!(
            rules
                .check("https://hooks.example.com/tollgate?x=1")
                .map(|(_, h)| h),
            Ok(Some("hooks.example.com".to_owned()))
        );
        assert_eq!(
            rules.check("http://hooks.example.com/").map(|_| ()),
            Err(InvalidWebhookUrl::Scheme(false))
        );
        assert_eq!(
            rules.check("ftp://hooks.example.com/").map(|_| ()),
            Err(InvalidWebhookUrl::Scheme(false))
        );
        assert_eq!(
            rules.check("https://me:pw@hooks.example.com/").map(|_| ()),
            Err(InvalidWebhookUrl::Credentials)
        );
        assert_eq!(
            rules.check("not a url").map(|_| ()),
            Err(InvalidWebhookUrl::Malformed)
        );
        for private in [
            "https://127.0.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]:8443/",
            "https://[::ffff:7f00:1]/",
            "https://0x7f.1/",
            "https://2130706433/",
        ] {
            assert!(
                matches!(rules.check(private), Err(InvalidWebhookUrl::NotPublic(_))),
                "{private}"
            );
        }
        let local = TargetRules {
            allowed_hosts: vec!["127.0.0.1".into()],
            allow_insecure: true,
            allow_private: true,
        };
        assert_eq!(
            local.check("http://127.0.0.1:9/hooks").map(|(_, h)| h),
            Ok(None)
        );
        assert_eq!(
            local.check("https://hooks.example.com/").map(|_| ()),
            Err(InvalidWebhookUrl::HostNotAllowed(
                "hooks.example.com".into()
            ))
        );
        assert_eq!(
            local.check("http://localhost:9/").map(|_| ()),
            Err(InvalidWebhookUrl::HostNotAllowed("localhost".into()))
        );
    }
}
