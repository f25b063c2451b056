//! Names that are never judged as DGA: local and single-label names, reverse DNS, DNSBL query
//! zones, CDN and dynamic-DNS suffixes. The lists are derived from `shared/data/intel` by the
//! training pipeline and compiled in from `models/*.txt`.

use std::collections::HashSet;
use std::sync::OnceLock;

/// Hash set with foldhash instead of SipHash: these sets are looked up once per suffix of every
/// query name, and SipHash was ~10 % of an uncached verdict. The tables are built once from
/// compiled-in or operator-supplied lists (not from query names), and foldhash's per-process seed
/// still keeps collision chains out of a remote party's reach.
pub(crate) type FastSet<T> = HashSet<T, foldhash::fast::RandomState>;

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

/// Top-level domains whose registrants are vetted by the registry (US government and military,
/// accredited US post-secondary institutions, treaty organisations).
const RESTRICTED_TLDS: &[&str] = &["gov", "mil", "edu", "int"];

/// Labels that ccTLD registries use for zones only vetted registrants can register in
/// (government, military, academic): `gov.uk`, `nsw.gov.au`, `gob.mx`, `gouv.fr`, `govt.nz`,
/// `go.jp`, `gv.at`, `gc.ca`, `mil.br`, `edu.cn`, `ac.uk`.
const RESTRICTED_LABELS: &[&str] = &[
    "gov", "gob", "gouv", "govt", "go", "gv", "gc", "mil", "edu", "ac",
];

/// ICANN suffixes that match [`RESTRICTED_LABELS`] but are open: Italian and Swedish
/// geographic codes (Gorizia, Västerbotten) and Palau's second-level zones.
const OPEN_LOOKALIKES: &[&str] = &["go.it", "ac.se", "go.pw"];

/// Whether a public suffix (as the PSL gives it for a registrable domain, e.g. `gov.uk`) is one
/// where names cannot be registered at will. A DGA needs to register the names it generates, so
/// names there are not judged: none of the 873k DGA names in the training and evaluation data is
/// under one, against 2.4-5.1 % of the web-traffic benign-list names
/// (`models/train/restricted_check.py`; `models/README.md`, "Never judged").
/// Only ICANN-section suffixes count: a private-section suffix with such a label is run by
/// whoever registered it, not by a registry that vets.
pub(crate) fn is_restricted_suffix(suffix: &str) -> bool {
    let restricted = match suffix.rsplit_once('.') {
        None => RESTRICTED_TLDS.contains(&suffix),
        Some((below_tld, _)) => below_tld.split('.').any(|l| RESTRICTED_LABELS.contains(&l)),
    };
    restricted
        && !OPEN_LOOKALIKES.contains(&suffix)
        && psl::suffix(suffix.as_bytes()).and_then(|s| s.typ()) == Some(psl::Type::Icann)
}

pub(crate) fn parse_list(txt: &'static str) -> FastSet<&'static str> {
    txt.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

fn dnsbl_zones() -> &'static FastSet<&'static str> {
    static S: OnceLock<FastSet<&'static str>> = OnceLock::new();
    S.get_or_init(|| parse_list(DNSBL_TXT))
}

pub(crate) fn cdn_suffixes() -> &'static FastSet<&'static str> {
    static S: OnceLock<FastSet<&'static str>> = OnceLock::new();
    S.get_or_init(|| parse_list(CDN_TXT))
}

pub(crate) fn dyndns_suffixes() -> &'static FastSet<&'static str> {
    static S: OnceLock<FastSet<&'static str>> = OnceLock::new();
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
#[cfg(test)]
pub(crate) fn matching_suffix(name: &str, set: &FastSet<&'static str>) -> Option<&'static str> {
    suffixes(name).find_map(|s| set.get(s).copied())
}

/// Which suffix list puts a (normalised) name out of the classifier's reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListedSuffix {
    /// Strictly below a DNSBL query zone.
    Dnsbl,
    /// At or below a CDN suffix.
    Cdn,
    /// At or below a dynamic-DNS suffix.
    DynDns,
}

/// One walk over the suffixes of a lower-case name without trailing dot (each hashed once per
/// list) instead of one walk per list. Precedence is that of the skip rules: a DNSBL zone at any
/// level first, then the longest CDN suffix, then the longest dynamic-DNS suffix.
pub(crate) fn listed_suffix(name: &str) -> Option<ListedSuffix> {
    let (dnsbl, cdn, dyn_) = (dnsbl_zones(), cdn_suffixes(), dyndns_suffixes());
    let mut found = None;
    for (k, s) in suffixes(name).enumerate() {
        // strictly below the zone: the full name itself is not a lookup in it
        if k > 0 && dnsbl.contains(s) {
            return Some(ListedSuffix::Dnsbl);
        }
        if found.is_none() {
            if cdn.contains(s) {
                found = Some(ListedSuffix::Cdn);
            } else if dyn_.contains(s) {
                found = Some(ListedSuffix::DynDns);
            }
        }
    }
    found
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
    fn restricted_suffixes() {
        for s in [
            "gov", "edu", "mil", "int", "gov.uk", "ac.uk", "gob.mx", "gouv.fr", "go.jp", "gv.at",
            "edu.cn", "gov.cy", "gov.au", "govt.nz", "gc.ca",
        ] {
            assert!(is_restricted_suffix(s), "{s}");
        }
        // open registries, a TLD that only looks like a label, and a private-section suffix
        for s in [
            "com",
            "co.uk",
            "ac",
            "go",
            "com.br",
            "org",
            "github.io",
            "blogspot.com",
            "xyz",
            "go.it",
            "ac.se",
            "go.dyndns.org",
            "edu.eu.org",
            "gov.nl",
        ] {
            assert!(!is_restricted_suffix(s), "{s}");
        }
    }

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

    /// The one-walk lookup agrees with the three separate rules it replaced, on every list
    /// entry itself, one and two labels below it, and names under no list.
    #[test]
    fn listed_suffix_matches_separate_rules() {
        let reference = |name: &str| {
            if dnsbl_zone_of(name).is_some() {
                Some(ListedSuffix::Dnsbl)
            } else if matching_suffix(name, cdn_suffixes()).is_some() {
                Some(ListedSuffix::Cdn)
            } else if matching_suffix(name, dyndns_suffixes()).is_some() {
                Some(ListedSuffix::DynDns)
            } else {
                None
            }
        };
        let mut n = 0;
        let mut hits = [0usize; 3];
        for set in [dnsbl_zones(), cdn_suffixes(), dyndns_suffixes()] {
            for e in set.iter() {
                for name in [e.to_string(), format!("x.{e}"), format!("1.2.0.192.{e}")] {
                    let got = listed_suffix(&name);
                    assert_eq!(got, reference(&name), "{name}");
                    match got {
                        Some(ListedSuffix::Dnsbl) => hits[0] += 1,
                        Some(ListedSuffix::Cdn) => hits[1] += 1,
                        Some(ListedSuffix::DynDns) => hits[2] += 1,
                        None => {}
                    }
                    n += 1;
                }
            }
        }
        for name in ["www.example.com", "com", "a.b.c.d.e", "xjw3kqpz0a.net"] {
            assert_eq!(listed_suffix(name), None, "{name}");
        }
        assert!(n > 1000, "{n}");
        assert!(hits.iter().all(|&h| h > 50), "{hits:?}");
    }

    #[test]
    fn lists_loaded() {
        assert!(cdn_suffixes().contains("cloudfront.net"));
        assert!(dyndns_suffixes().contains("ddns.net"));
        assert!(dnsbl_zones().len() > 50);
    }
}
