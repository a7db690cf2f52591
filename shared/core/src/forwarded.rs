//! The client's address behind proxies: taken from the `X-Forwarded-For` chain only through
//! proxies the deployment trusts (`LATCHKEY_TRUSTED_PROXIES`: CIDRs, or `cloudfront` for
//! CloudFront's origin-facing ranges).
//!
//! Why: per-address limits keyed on the peer count every shopper behind a CDN or a reverse
//! proxy as one client (one attacker then blocks them all), while trusting the header from
//! anyone lets an attacker name a fresh address per request. So the walk starts at the peer —
//! the socket address locally, API Gateway's `sourceIp` on Lambda — and, while the address in
//! hand is a trusted proxy, steps one entry left in `X-Forwarded-For` (each proxy appends the
//! address it was reached from). The first untrusted address is the client: entries left of it
//! were written by the client and are never read. An entry that is not an address ends the
//! walk at the proxy that passed it on.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use http::HeaderMap;

/// CloudFront's origin-facing ranges, as `scripts/cloudfront-ranges` last wrote them.
const CLOUDFRONT: &str = include_str!("cloudfront-ranges.txt");

/// The header proxies append the address they were reached from to.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// An address block, e.g. `10.0.0.0/8` or `2600:9000:1000::/36`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_eq(
                u128::from(u32::from(net)),
                u128::from(u32::from(ip)),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask_eq(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn mask_eq(a: u128, b: u128, bits: u32, prefix: u8) -> bool {
    let host_bits = bits.saturating_sub(u32::from(prefix));
    if host_bits >= bits {
        return true;
    }
    (a >> host_bits) == (b >> host_bits)
}

impl FromStr for Cidr {
    type Err = String;

    /// `a.b.c.d/n`, `v6/n`, or a bare address (one host).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = canonical(
            addr.parse::<IpAddr>()
                .map_err(|_| format!("`{s}` is not an address or CIDR block"))?,
        );
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("`{s}`: the prefix length must be 0 to {max}")),
            },
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The proxies whose `X-Forwarded-For` entries are believed. Empty (the default): none, so the
/// peer is the client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    blocks: Vec<Cidr>,
}

impl TrustedProxies {
    /// Parses `LATCHKEY_TRUSTED_PROXIES`: comma-separated addresses, CIDR blocks and the word
    /// `cloudfront`.
    pub fn parse(setting: &str) -> Result<Self, String> {
        let mut blocks = Vec::new();
        for entry in setting.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry.eq_ignore_ascii_case("cloudfront") {
                blocks.extend(cloudfront()?);
            } else {
                blocks.push(entry.parse()?);
            }
        }
        Ok(Self { blocks })
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.blocks.iter().any(|b| b.contains(ip))
    }

    /// The client's address for a request from `peer` carrying `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        // Every X-Forwarded-For header, in order, as one list (RFC 9110 §5.3), read from the right.
        let chain: Vec<&str> = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("").split(','))
            .collect();
        for entry in chain.iter().rev() {
            match parse_entry(entry) {
                Some(hop) => client = hop,
                None => break,
            }
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// The compiled-in CloudFront ranges.
fn cloudfront() -> Result<Vec<Cidr>, String> {
    CLOUDFRONT
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.parse().map_err(|e| format!("CloudFront ranges: {e}")))
        .collect()
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`1.2.3.4:80`,
/// `[2001:db8::1]:80`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let (v6, _) = rest.split_once(']')?;
        return v6
            .parse::<Ipv6Addr>()
            .ok()
            .map(|ip| canonical(IpAddr::V6(ip)));
    }
    let (v4, port) = entry.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    v4.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, as dual-stack sockets report IPv4 peers) as
/// IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn cidrs_parse_and_match() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.255.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.1.2.3")), "mapped IPv4 is IPv4");
        let c: Cidr = "2600:9000:1000::/36".parse().unwrap();
        assert!(c.contains(ip("2600:9000:1fff::1")));
        assert!(!c.contains(ip("2600:9000:2000::1")));
        assert!(!c.contains(ip("10.0.0.1")));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.1")));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "example.com",
            "10.0.0/8",
            "10.0.0.0/x",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_setting_parses_and_names_bad_entries() {
        let t = TrustedProxies::parse(" 10.0.0.0/8 , 127.0.0.1,cloudfront ").unwrap();
        assert!(t.trusts(ip("127.0.0.1")) && t.trusts(ip("10.2.3.4")));
        assert!(
            t.trusts(ip("130.176.0.1")),
            "CloudFront's origin-facing 130.176.0.0/18"
        );
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        let e = TrustedProxies::parse("10.0.0.0/8,nonsense").unwrap_err();
        assert!(e.contains("nonsense"), "{e}");
    }

    #[test]
    fn the_compiled_in_cloudfront_list_parses_and_is_not_empty() {
        let ranges = cloudfront().unwrap();
        assert!(ranges.len() > 10, "{}", ranges.len());
        assert!(ranges.iter().any(|c| c.addr.is_ipv6()));
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = TrustedProxies::default();
        let h = xff(&["198.51.100.1"]);
        assert_eq!(none.client(ip("203.0.113.9"), &h), ip("203.0.113.9"));
        assert_eq!(none.client(ip("::ffff:203.0.113.9"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn the_walk_stops_at_the_first_untrusted_address() {
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        // The client forged the two left entries; the proxy appended the client's real address.
        let h = xff(&["1.1.1.1, 2.2.2.2", "198.51.100.7"]);
        assert_eq!(t.client(ip("10.0.0.5"), &h), ip("198.51.100.7"));
        // Two proxies in a row.
        let h = xff(&["6.6.6.6, 198.51.100.7, 10.0.0.9"]);
        assert_eq!(t.client(ip("10.0.0.5"), &h), ip("198.51.100.7"));
        // An untrusted peer's header is never read.
        assert_eq!(t.client(ip("203.0.113.5"), &h), ip("203.0.113.5"));
        // Ports and brackets; IPv6.
        let h = xff(&["[2001:db8::1]:4711"]);
        assert_eq!(t.client(ip("10.0.0.5"), &h), ip("2001:db8::1"));
        let h = xff(&["198.51.100.7:4711"]);
        assert_eq!(t.client(ip("10.0.0.5"), &h), ip("198.51.100.7"));
        // Garbage ends the walk at the proxy that passed it on.
        let h = xff(&["198.51.100.7, unknown"]);
        assert_eq!(t.client(ip("10.0.0.5"), &h), ip("10.0.0.5"));
        // No header: the proxy itself.
        assert_eq!(t.client(ip("10.0.0.5"), &HeaderMap::new()), ip("10.0.0.5"));
        // Only trusted hops: the leftmost one.
        let h = xff(&["10.1.1.1, 10.2.2.2"]);
        assert_eq!(t.client(ip("10.0.0.5"), &h), ip("10.1.1.1"));
    }
}
