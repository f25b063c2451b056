//! Address keys and range tables.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One 128-bit key for both families: IPv4 lives at `::ffff:a.b.c.d` (IPv4-mapped).
#[inline]
pub fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => V4_BASE | u32::from(v4) as u128,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => V4_BASE | u32::from(v4) as u128,
            None => u128::from(v6),
        },
    }
}

pub const V4_BASE: u128 = 0xffff_0000_0000;

#[inline]
pub fn key_is_v4(k: u128) -> bool {
    k >> 32 == 0xffff
}

pub fn key_to_ip(k: u128) -> IpAddr {
    if key_is_v4(k) {
        IpAddr::V4(Ipv4Addr::from(k as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(k))
    }
}

/// The "/24" of an address: /24 for IPv4, /48 for IPv6 (tagged so families never collide).
#[inline]
pub fn net24(k: u128) -> u64 {
    if key_is_v4(k) {
        (1 << 63) | ((k as u32) >> 8) as u64
    } else {
        (k >> 80) as u64
    }
}

/// The "/16" of an address: /16 for IPv4, /32 for IPv6.
#[inline]
pub fn net16(k: u128) -> u64 {
    if key_is_v4(k) {
        (1 << 63) | ((k as u32) >> 16) as u64
    } else {
        (k >> 96) as u64
    }
}

/// Parse `a.b.c.d`, `a.b.c.d/n`, `v6`, `v6/n` into an inclusive key range.
pub fn parse_cidr(s: &str) -> Option<(u128, u128)> {
    let s = s.trim();
    let (ip, len) = match s.split_once('/') {
        Some((a, b)) => (a.parse::<IpAddr>().ok()?, Some(b.parse::<u8>().ok()?)),
        None => (s.parse::<IpAddr>().ok()?, None),
    };
    let (key, bits) = match ip {
        IpAddr::V4(_) => {
            let l = len.unwrap_or(32);
            if l > 32 {
                return None;
            }
            (ip_key(ip), 96 + l as u32)
        }
        IpAddr::V6(_) => {
            let l = len.unwrap_or(128);
            if l > 128 {
                return None;
            }
            (ip_key(ip), l as u32)
        }
    };
    let host = if bits >= 128 { 0 } else { u128::MAX >> bits };
    Some((key & !host, key | host))
}

/// Sorted, possibly overlapping inclusive ranges with a value each; finds the
/// most specific (narrowest) range containing a key.
#[derive(Debug, Clone)]
pub struct RangeSet<T> {
    starts: Vec<u128>,
    ends: Vec<u128>,
    max_end: Vec<u128>,
    vals: Vec<T>,
}

impl<T> Default for RangeSet<T> {
    fn default() -> Self {
        RangeSet {
            starts: Vec::new(),
            ends: Vec::new(),
            max_end: Vec::new(),
            vals: Vec::new(),
        }
    }
}

impl<T> RangeSet<T> {
    pub fn from_vec(mut v: Vec<(u128, u128, T)>) -> Self {
        v.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut rs = RangeSet::default();
        let mut m = 0u128;
        for (s, e, t) in v {
            m = m.max(e);
            rs.starts.push(s);
            rs.ends.push(e);
            rs.max_end.push(m);
            rs.vals.push(t);
        }
        rs
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    #[inline]
    pub fn get(&self, key: u128) -> Option<&T> {
        let mut i = self.starts.partition_point(|&s| s <= key);
        let mut best: Option<(u128, usize)> = None;
        while i > 0 {
            i -= 1;
            if self.max_end[i] < key {
                break;
            }
            if self.ends[i] >= key {
                let width = self.ends[i] - self.starts[i];
                if best.is_none_or(|(w, _)| width < w) {
                    best = Some((width, i));
                }
            }
        }
        best.map(|(_, i)| &self.vals[i])
    }

    /// All ranges as `(first, last, value)`, sorted by first address.
    pub fn iter(&self) -> impl Iterator<Item = (u128, u128, &T)> {
        self.starts
            .iter()
            .zip(&self.ends)
            .zip(&self.vals)
            .map(|((&s, &e), v)| (s, e, v))
    }

    pub fn contains(&self, key: u128) -> bool {
        self.get(key).is_some()
    }
}

/// Longest-suffix lookup of a DNS name in a label-suffix map (`a.b.example.com` matches
/// `example.com`). Returns the matched suffix.
pub fn suffix_lookup<'a, V, S: std::hash::BuildHasher>(
    map: &'a std::collections::HashMap<Box<str>, V, S>,
    name: &'a str,
) -> Option<(&'a str, &'a V)> {
    let name = name.trim_end_matches('.');
    let mut rest = name;
    loop {
        if let Some(v) = map.get(rest) {
            return Some((rest, v));
        }
        match rest.find('.') {
            Some(i) => rest = &rest[i + 1..],
            None => return None,
        }
    }
}

/// Small fast hasher (FxHash-like) for the hot-path maps; inputs are not attacker-chosen
/// keys of a growing table (the tables are built at start), so DoS resistance is not needed.
#[derive(Clone, Copy, Default)]
pub struct FxBuild;

pub struct FxHasher(u64);

impl std::hash::BuildHasher for FxBuild {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(b))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ i as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.0 = (self.0.rotate_left(5) ^ i as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.write_u64(i as u64);
        self.write_u64((i >> 64) as u64);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
}

pub type FxMap<K, V> = std::collections::HashMap<K, V, FxBuild>;
pub type FxSet<K> = std::collections::HashSet<K, FxBuild>;

/// Lower-case and strip the trailing dot, borrowing when nothing changes.
pub fn norm_name(s: &str) -> std::borrow::Cow<'_, str> {
    let t = s.trim_end_matches('.');
    if t.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(t.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_and_rangeset() {
        let (a, b) = parse_cidr("10.0.0.0/8").unwrap();
        assert_eq!(key_to_ip(a), "10.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(key_to_ip(b), "10.255.255.255".parse::<IpAddr>().unwrap());
        let rs = RangeSet::from_vec(vec![
            (a, b, "wide"),
            {
                let (s, e) = parse_cidr("10.1.2.0/24").unwrap();
                (s, e, "narrow")
            },
            {
                let (s, e) = parse_cidr("2001:db8::/32").unwrap();
                (s, e, "v6")
            },
        ]);
        let k = |s: &str| ip_key(s.parse().unwrap());
        assert_eq!(rs.get(k("10.1.2.3")), Some(&"narrow"));
        assert_eq!(rs.get(k("10.9.2.3")), Some(&"wide"));
        assert_eq!(rs.get(k("11.0.0.0")), None);
        assert_eq!(rs.get(k("2001:db8::1")), Some(&"v6"));
        assert_eq!(rs.get(k("::ffff:10.1.2.3")), Some(&"narrow"));
        assert!(parse_cidr("1.2.3.4/33").is_none());
        assert!(parse_cidr("garbage").is_none());
        assert_ne!(net24(k("1.2.3.4")), net24(k("1.2.4.4")));
        assert_eq!(net16(k("1.2.3.4")), net16(k("1.2.4.4")));
    }
}
