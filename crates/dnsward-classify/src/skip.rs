//! Names that are never judged as DGA: local and single-label names, reverse DNS, DNSBL query
//! zones, CDN and dynamic-DNS suffixes. The lists are derived from `shared/data/intel` by the
//! training pipeline and compiled in from `models/*.txt`.

use std::collections::HashSet;
use std::sync::OnceLock;

static DNSBL_TXT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../models/dnsbl-zones.txt"
));
static CDN_TXT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../models/cdn-suffixes.txt"
));
static DYNDNS_TXT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../models/dyndns-suffixes.txt"
));

/// Top-level names that only exist inside private networks (RFC 6761/6762/8375 and common practice).
const LOCAL_TLDS: &[&str] = &[
    "local",
    "localhost",
    "localdomain",
    "lan",
    "home",
    "internal",
    "intranet",
    "corp",
    "private",
    "test",
    "invalid",
    "example",
    "onion",
];

pub(crate) fn parse_list(txt: &'static str) -> HashSet<&'static str> {
    txt.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

fn dnsbl_zones() -> &'static HashSet<&'static str> {
    static S: OnceLock<HashSet<&'static str>> = OnceLock::new();
    S.get_or_init(|| parse_list(DNSBL_TXT))
}

pub(crate) fn cdn_suffixes() -> &'static HashSet<&'static str> {
    static S: OnceLock<HashSet<&'static str>> = OnceLock::new();
    S.get_or_init(|| parse_list(CDN_TXT))
}

pub(crate) fn dyndns_suffixes() -> &'static HashSet<&'static str> {
    static S: OnceLock<HashSet<&'static str>> = OnceLock::new();
    S.get_or_init(|| parse_list(DYNDNS_TXT))
}

/// Forces the lazily built sets (so the first query does not pay for it).
pub(crate) fn warm_up() {
    let _ = (
        dnsbl_zones().len(),
        cdn_suffixes().len(),
        dyndns_suffixes().len(),
    );
}

/// Iterates over `name` and each of its parent domains: "a.b.c" -> "a.b.c", "b.c", "c".
pub(crate) fn suffixes(name: &str) -> impl Iterator<Item = &str> {
    std::iter::once(name).chain(name.match_indices('.').map(move |(i, _)| &name[i + 1..]))
}

/// The matching set entry for the longest suffix of `name` (at a label boundary) in `set`.
pub(crate) fn matching_suffix(name: &str, set: &HashSet<&'static str>) -> Option<&'static str> {
    suffixes(name).find_map(|s| set.get(s).copied())
}

/// The DNSBL zone a query name is a lookup in, for names strictly below a known zone:
/// `"1.2.0.192.zen.spamhaus.org"` -> `Some("zen.spamhaus.org")`. Any case, trailing dot allowed.
pub fn dnsbl_zone_of(qname: &str) -> Option<&'static str> {
    let q = qname.trim().trim_end_matches('.');
    let zones = dnsbl_zones();
    let lower;
    let q = if q.bytes().any(|b| b.is_ascii_uppercase()) {
        lower = q.to_ascii_lowercase();
        lower.as_str()
    } else {
        q
    };
    // strictly below the zone: skip the full name itself
    q.match_indices('.')
        .find_map(|(i, _)| zones.get(&q[i + 1..]).copied())
}

pub(crate) fn is_local(name: &str) -> bool {
    let tld = name.rsplit('.').next().unwrap_or(name);
    LOCAL_TLDS.contains(&tld) || name == "home.arpa" || name.ends_with(".home.arpa")
}

pub(crate) fn is_reverse(name: &str) -> bool {
    name == "arpa" || name.ends_with(".arpa")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnsbl() {
        assert_eq!(
            dnsbl_zone_of("1.2.0.192.zen.spamhaus.org"),
            Some("zen.spamhaus.org")
        );
        assert_eq!(
            dnsbl_zone_of("1.2.0.192.ZEN.spamhaus.org."),
            Some("zen.spamhaus.org")
        );
        assert_eq!(dnsbl_zone_of("zen.spamhaus.org"), None);
        assert_eq!(dnsbl_zone_of("www.example.com"), None);
    }

    #[test]
    fn suffix_iteration() {
        let v: Vec<_> = suffixes("a.b.c").collect();
        assert_eq!(v, ["a.b.c", "b.c", "c"]);
    }

    #[test]
    fn lists_loaded() {
        assert!(cdn_suffixes().contains("cloudfront.net"));
        assert!(dyndns_suffixes().contains("ddns.net"));
        assert!(dnsbl_zones().len() > 50);
    }
}
