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
        let h = if self.0 == 0 { FNV_OFFSET } else { self.0 };
        self.0 = fnv1a_from(h, bytes);
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a_from(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The compiled-in zone set, with a cheap pre-filter on the last two labels.
pub struct DnsblZones {
    zones: HashMap<String, ZoneKind>,
    /// Last two labels of every zone (`spamhaus.org`): the pre-filter's exact set.
    bases: HashSet<String, BuildHasherDefault<Fnv>>,
    /// Bloom filter over `bases` (two bits per entry): it rejects almost every queried name
    /// before any hash-set probe. The pre-filter runs for every answered query.
    bloom: [u64; BLOOM_WORDS],
}

const BLOOM_WORDS: usize = 32;
const BLOOM_BITS: u64 = BLOOM_WORDS as u64 * 64;

fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_from(FNV_OFFSET, bytes)
}

fn bloom_bits(h: u64) -> [u64; 2] {
    [h % BLOOM_BITS, (h >> 32) % BLOOM_BITS]
}

fn last_two_labels(name: &str) -> Option<&str> {
    let b = name.as_bytes();
    let last_dot = b.iter().rposition(|&c| c == b'.')?;
    match b[..last_dot].iter().rposition(|&c| c == b'.') {
        Some(p) => Some(&name[p + 1..]),
        None => Some(name),
    }
}

/// The last two labels of an uncompressed wire name as lowercase text (`spamhaus.org`) in `buf`;
/// None for fewer than two labels or a malformed name.
fn last_two_labels_wire<'b>(wire: &[u8], buf: &'b mut [u8; 128]) -> Option<&'b [u8]> {
    let (mut prev, mut last) = (None, None);
    let mut pos = 0;
    loop {
        let len = *wire.get(pos)? as usize;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        prev = last;
        last = Some(pos);
        pos += 1 + len;
    }
    let mut n = 0;
    for start in [prev?, last?] {
        let len = wire[start] as usize;
        let label = wire.get(start + 1..start + 1 + len)?;
        if n > 0 {
            buf[n] = b'.';
            n += 1;
        }
        for (d, c) in buf[n..n + len].iter_mut().zip(label) {
            *d = c.to_ascii_lowercase();
        }
        n += len;
    }
    Some(&buf[..n])
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
        let mut bloom = [0u64; BLOOM_WORDS];
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
                for bit in bloom_bits(fnv1a(b.as_bytes())) {
                    bloom[(bit / 64) as usize] |= 1 << (bit % 64);
                }
                bases.insert(b.to_string());
            }
            zones.insert(zone, kind);
        }
        DnsblZones {
            zones,
            bases,
            bloom,
        }
    }

    pub fn len(&self) -> usize {
        self.zones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    fn bloom_hit(&self, base: &[u8]) -> bool {
        bloom_bits(fnv1a(base))
            .iter()
            .all(|&bit| self.bloom[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }

    /// Cheap test used on the DNS path: could `qname` (lowercase text) be under a zone?
    pub fn maybe_under(&self, qname: &str) -> bool {
        match last_two_labels(qname) {
            Some(b) => self.bloom_hit(b.as_bytes()) && self.bases.contains(b),
            None => false,
        }
    }

    /// [`DnsblZones::maybe_under`] on the query's wire name (any case), before the name is ever
    /// formatted as text: the engine asks this for every answered query.
    pub fn maybe_under_wire(&self, wire: &[u8]) -> bool {
        let mut buf = [0u8; 128];
        match last_two_labels_wire(wire, &mut buf) {
            Some(b) => {
                self.bloom_hit(b) && std::str::from_utf8(b).is_ok_and(|t| self.bases.contains(t))
            }
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
    fn wire_prefilter_agrees_with_the_text_one() {
        use dnsward_server::wire::text_to_wire;
        let z = DnsblZones::builtin();
        let mut names: Vec<String> = z.zones.keys().map(|k| format!("2.0.0.127.{k}")).collect();
        names.extend(z.zones.keys().cloned());
        names.extend(
            [
                "www.example.com",
                "example.com",
                "com",
                "a.b.c.d.e",
                "spamhaus.org.evil.net",
            ]
            .map(String::from),
        );
        names.extend((0..2000).map(|i| format!("h{i:06}.bench.lab")));
        let mut hits = 0;
        for n in &names {
            let w = text_to_wire(n).unwrap();
            let expect = z.maybe_under(n);
            assert_eq!(z.maybe_under_wire(&w), expect, "{n}");
            let upper = text_to_wire(&n.to_ascii_uppercase()).unwrap();
            assert_eq!(z.maybe_under_wire(&upper), expect, "{n} in upper case");
            hits += usize::from(expect);
        }
        // Every zone name and every lookup under one passes; the 2000 bench names and the
        // others do not (the Bloom filter may pass a few, the exact set then rejects them).
        assert_eq!(hits, 2 * z.len());
        // Malformed or short wire names are simply not under a zone.
        assert!(!z.maybe_under_wire(b""));
        assert!(!z.maybe_under_wire(b"\x00"));
        assert!(!z.maybe_under_wire(b"\x03org\x00"));
        assert!(!z.maybe_under_wire(b"\x08spamhaus\x03or"));
        assert!(!z.maybe_under_wire(b"\x40spamhaus\x03org\x00"));
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
