//! Recognising DNSBL lookups: `<reversed-ip>.<zone>` for IP lists, `<name>.<zone>` for domain
//! lists. The zone list is compiled in (`data/dnsbl-zones.txt`).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

const ZONES_TXT: &str = include_str!("../data/dnsbl-zones.txt");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZoneKind {
    Ip,
    Domain,
}

/// What a query under a DNSBL zone asks about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsblLookup<'a> {
    pub zone: &'a str,
    /// The address looked up, for IP zones (when the prefix parses as one).
    pub ip: Option<IpAddr>,
    /// The prefix as written (reversed address or domain).
    pub prefix: &'a str,
}

/// FNV-1a: the pre-filter runs on every query; SipHash is needlessly slow for short names.
#[derive(Default)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// The compiled-in zone set, with a cheap pre-filter on the last two labels.
pub struct DnsblZones {
    zones: HashMap<String, ZoneKind>,
    /// Last two labels of every zone (`spamhaus.org`): one hash lookup rejects almost every name.
    bases: HashSet<String, BuildHasherDefault<Fnv>>,
}

fn last_two_labels(name: &str) -> Option<&str> {
    let last_dot = name.rfind('.')?;
    match name[..last_dot].rfind('.') {
        Some(p) => Some(&name[p + 1..]),
        None => Some(name),
    }
}

impl DnsblZones {
    /// The built-in list.
    pub fn builtin() -> &'static DnsblZones {
        static Z: OnceLock<DnsblZones> = OnceLock::new();
        Z.get_or_init(|| DnsblZones::parse(ZONES_TXT))
    }

    pub fn parse(text: &str) -> DnsblZones {
        let mut zones = HashMap::new();
        let mut bases = HashSet::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut it = line.split_whitespace();
            let Some(zone) = it.next() else { continue };
            let kind = match it.next() {
                Some("domain") => ZoneKind::Domain,
                _ => ZoneKind::Ip,
            };
            let zone = zone.trim_end_matches('.').to_ascii_lowercase();
            if let Some(b) = last_two_labels(&zone) {
                bases.insert(b.to_string());
            }
            zones.insert(zone, kind);
        }
        DnsblZones { zones, bases }
    }

    pub fn len(&self) -> usize {
        self.zones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// Cheap test (one hash lookup) used on the DNS path: could `qname` be under a zone?
    pub fn maybe_under(&self, qname: &str) -> bool {
        match last_two_labels(qname) {
            Some(b) => self.bases.contains(b),
            None => false,
        }
    }

    /// Split `qname` (lowercase, no trailing dot) into a lookup, if it is under a known zone with
    /// a non-empty prefix.
    pub fn parse_lookup<'a>(&'a self, qname: &'a str) -> Option<(DnsblLookup<'a>, ZoneKind)> {
        if !self.maybe_under(qname) {
            return None;
        }
        // Try every suffix starting after a dot, longest prefix first.
        let mut start = 0;
        while let Some(dot) = qname[start..].find('.') {
            let cut = start + dot;
            let suffix = &qname[cut + 1..];
            if let Some((zone, kind)) = self.zones.get_key_value(suffix) {
                let prefix = &qname[..cut];
                let ip = match kind {
                    ZoneKind::Ip => parse_reversed_ip(prefix),
                    ZoneKind::Domain => None,
                };
                return Some((
                    DnsblLookup {
                        zone: zone.as_str(),
                        ip,
                        prefix,
                    },
                    *kind,
                ));
            }
            start = cut + 1;
        }
        None
    }
}

/// `4.3.2.1` → 1.2.3.4; 32 nibbles → the IPv6 address.
pub fn parse_reversed_ip(prefix: &str) -> Option<IpAddr> {
    let labels: Vec<&str> = prefix.split('.').collect();
    if labels.len() == 4 {
        let mut o = [0u8; 4];
        for (i, l) in labels.iter().rev().enumerate() {
            if l.is_empty() || l.len() > 3 || !l.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            o[i] = l.parse().ok()?;
        }
        return Some(IpAddr::V4(Ipv4Addr::from(o)));
    }
    if labels.len() == 32 {
        let mut v: u128 = 0;
        for l in labels.iter().rev() {
            if l.len() != 1 {
                return None;
            }
            let d = u128::from(char::from(l.as_bytes()[0]).to_digit(16)?);
            v = (v << 4) | d;
        }
        return Some(IpAddr::V6(Ipv6Addr::from(v)));
    }
    None
}

/// The address as a client would see itself (IPv4-mapped IPv6 → IPv4).
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_list_has_the_usual_zones() {
        let z = DnsblZones::builtin();
        assert!(z.len() > 100);
        assert!(z.maybe_under("4.3.2.1.zen.spamhaus.org"));
        assert!(!z.maybe_under("www.example.com"));
        let (l, k) = z.parse_lookup("4.3.2.1.zen.spamhaus.org").unwrap();
        assert_eq!(k, ZoneKind::Ip);
        assert_eq!(l.zone, "zen.spamhaus.org");
        assert_eq!(l.ip, Some("1.2.3.4".parse().unwrap()));
        let (l, k) = z.parse_lookup("evil.example.dbl.spamhaus.org").unwrap();
        assert_eq!(k, ZoneKind::Domain);
        assert_eq!(l.prefix, "evil.example");
        assert!(z.parse_lookup("zen.spamhaus.org").is_none());
        assert!(z.parse_lookup("www.spamhaus.org").is_none());
    }

    #[test]
    fn ipv6_nibbles() {
        let ip: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let nibbles: String = ip
            .octets()
            .iter()
            .rev()
            .flat_map(|b| [b & 0xf, b >> 4])
            .map(|n| format!("{n:x}."))
            .collect();
        let prefix = nibbles.trim_end_matches('.');
        assert_eq!(parse_reversed_ip(prefix), Some(IpAddr::V6(ip)));
        assert_eq!(parse_reversed_ip("1.2.3"), None);
        assert_eq!(parse_reversed_ip("1.2.3.999"), None);
    }
}
