//! IP intelligence from MMDB files: ASN + organisation and country.
//!
//! Supported layouts: GeoLite2/GeoIP2-ASN (`autonomous_system_number`,
//! `autonomous_system_organization`), GeoIP2/GeoLite2-Country and -City (`country.iso_code`,
//! falling back to `registered_country.iso_code`), and the flat `country_code` layout of the
//! ip-location-db country databases.
use crate::error::IntelError;
use maxminddb::{PathElement, Reader, WithinOptions};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

const P_ASN: &[PathElement<'static>] = &[PathElement::Key("autonomous_system_number")];
const P_ORG: &[PathElement<'static>] = &[PathElement::Key("autonomous_system_organization")];
const P_CC_NESTED: &[PathElement<'static>] =
    &[PathElement::Key("country"), PathElement::Key("iso_code")];
const P_CC_REG: &[PathElement<'static>] = &[
    PathElement::Key("registered_country"),
    PathElement::Key("iso_code"),
];
const P_CC_FLAT: &[PathElement<'static>] = &[PathElement::Key("country_code")];

#[derive(Debug)]
pub struct GeoDb {
    asn: Option<(PathBuf, Reader<Vec<u8>>)>,
    country: Option<(PathBuf, Reader<Vec<u8>>)>,
    flat_country: bool,
    cache: GeoCache,
    /// ASN -> institutional organisation, learnt lazily (bounded).
    org_class: Box<[parking_lot::Mutex<crate::net::FxMap<u32, bool>>]>,
}

const ORG_SHARDS: usize = 16;

/// Direct-mapped cache of (ASN, country) per IPv4 /24 or IPv6 /48, filled only when both
/// databases answer with a network at least that wide (so a hit is exact).
struct GeoCache {
    shards: Box<[parking_lot::Mutex<Box<[CacheEnt]>>]>,
}

#[derive(Clone, Copy, Default)]
struct CacheEnt {
    tag: u64,
    info: GeoInfo,
}

/// What the MMDBs say about one address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GeoInfo {
    /// 0 = unknown.
    pub asn: u32,
    /// Packed country code, 0 = unknown.
    pub cc: Cc,
    /// The ASN organisation is a university / research / government network.
    pub institutional: bool,
}

const INSTITUTIONAL_WORDS: &[&str] = &[
    "universit",
    "college",
    "school",
    "academ",
    "research",
    "education",
    "institut",
    "hochschule",
    "ecole",
    "école",
    "politecnic",
    "polytechn",
    "government",
    "ministry",
    "national lab",
    "scientific",
    "science",
    "kommunal",
    "library",
    "hospital",
];

/// University / research / government organisation name (not residential, not hosting).
pub fn is_institutional_org(org: &str) -> bool {
    let o = org.to_lowercase();
    INSTITUTIONAL_WORDS.iter().any(|w| o.contains(w))
}

const CACHE_SHARDS: usize = 16;
const CACHE_SLOTS: usize = 8192;

impl std::fmt::Debug for GeoCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GeoCache")
    }
}

impl GeoCache {
    fn new() -> GeoCache {
        GeoCache {
            shards: (0..CACHE_SHARDS)
                .map(|_| {
                    parking_lot::Mutex::new(
                        vec![CacheEnt::default(); CACHE_SLOTS].into_boxed_slice(),
                    )
                })
                .collect(),
        }
    }

    #[inline]
    fn slot(tag: u64) -> (usize, usize) {
        let h = tag.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (
            (h >> 60) as usize % CACHE_SHARDS,
            (h >> 20) as usize % CACHE_SLOTS,
        )
    }

    #[inline]
    fn get(&self, tag: u64) -> Option<GeoInfo> {
        let (s, i) = Self::slot(tag);
        let e = self.shards[s].lock()[i];
        (e.tag == tag).then_some(e.info)
    }

    #[inline]
    fn put(&self, tag: u64, info: GeoInfo) {
        let (s, i) = Self::slot(tag);
        self.shards[s].lock()[i] = CacheEnt { tag, info };
    }
}

/// Two-letter country code packed into a `u16` (0 = unknown).
pub type Cc = u16;

pub fn cc_pack(s: &str) -> Cc {
    let b = s.as_bytes();
    if b.len() == 2 {
        ((b[0].to_ascii_uppercase() as u16) << 8) | b[1].to_ascii_uppercase() as u16
    } else {
        0
    }
}

pub fn cc_str(c: Cc) -> String {
    if c == 0 {
        "??".into()
    } else {
        String::from_utf8_lossy(&[(c >> 8) as u8, c as u8]).into_owned()
    }
}

impl GeoDb {
    pub fn none() -> GeoDb {
        GeoDb {
            asn: None,
            country: None,
            flat_country: false,
            cache: GeoCache::new(),
            org_class: (0..ORG_SHARDS).map(|_| Default::default()).collect(),
        }
    }

    /// Open the configured databases. Errors name the file and the cause.
    pub fn open(asn: Option<&Path>, country: Option<&Path>) -> Result<GeoDb, IntelError> {
        let mut db = GeoDb::none();
        if let Some(p) = asn {
            let r = open_reader("ASN", p)?;
            probe(
                &r,
                "ASN",
                p,
                |r, ip| matches!(asn_of(r, ip), Some(n) if n > 0),
            )?;
            db.asn = Some((p.to_path_buf(), r));
        }
        if let Some(p) = country {
            let r = open_reader("country", p)?;
            let mut flat = false;
            probe(&r, "country", p, |r, ip| {
                if let Some(c) = cc_of(r, ip, false) {
                    flat = false;
                    c != 0
                } else if let Some(c) = cc_of(r, ip, true) {
                    flat = true;
                    c != 0
                } else {
                    false
                }
            })?;
            db.flat_country = flat;
            db.country = Some((p.to_path_buf(), r));
        }
        Ok(db)
    }

    pub fn has_asn(&self) -> bool {
        self.asn.is_some()
    }

    pub fn has_country(&self) -> bool {
        self.country.is_some()
    }

    pub fn asn_path(&self) -> Option<&Path> {
        self.asn.as_ref().map(|(p, _)| p.as_path())
    }

    /// ASN, country and organisation class of `ip`, through the per-network cache.
    #[inline]
    pub fn info(&self, ip: IpAddr) -> GeoInfo {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        if self.asn.is_none() && self.country.is_none() {
            return GeoInfo::default();
        }
        let (tag, width) = match ip {
            IpAddr::V4(v4) => ((1 << 63) | (u32::from(v4) >> 8) as u64, 24u8),
            IpAddr::V6(v6) => ((u128::from(v6) >> 80) as u64 & !(1 << 63), 48u8),
        };
        let tag = tag | (1 << 62); // never 0
        if let Some(hit) = self.cache.get(tag) {
            return hit;
        }
        let mut cacheable = true;
        let mut institutional = false;
        let asn = match &self.asn {
            Some((_, r)) => match r.lookup(ip) {
                Ok(res) => {
                    cacheable &= res.network().map(|n| n.prefix() <= width).unwrap_or(false);
                    let asn = res.decode_path::<u32>(P_ASN).ok().flatten().unwrap_or(0);
                    if asn != 0 {
                        let shard = &self.org_class[asn as usize % ORG_SHARDS];
                        let known = shard.lock().get(&asn).copied();
                        institutional = match known {
                            Some(v) => v,
                            None => {
                                let v = matches!(res.decode_path::<&str>(P_ORG), Ok(Some(org)) if is_institutional_org(org));
                                let mut g = shard.lock();
                                if g.len() < 1 << 16 {
                                    g.insert(asn, v);
                                }
                                v
                            }
                        };
                    }
                    asn
                }
                Err(_) => {
                    cacheable = false;
                    0
                }
            },
            None => 0,
        };
        let cc = match &self.country {
            Some((_, r)) => match r.lookup(ip) {
                Ok(res) => {
                    cacheable &= res.network().map(|n| n.prefix() <= width).unwrap_or(false);
                    let c = cc_from(&res, self.flat_country)
                        .or_else(|| cc_from(&res, !self.flat_country));
                    c.unwrap_or(0)
                }
                Err(_) => {
                    cacheable = false;
                    0
                }
            },
            None => 0,
        };
        let info = GeoInfo {
            asn,
            cc,
            institutional,
        };
        if cacheable {
            self.cache.put(tag, info);
        }
        info
    }

    /// ASN of `ip` (None when unknown or no ASN database).
    #[inline]
    pub fn asn(&self, ip: IpAddr) -> Option<u32> {
        self.asn
            .as_ref()
            .and_then(|(_, r)| asn_of(r, ip))
            .filter(|&n| n != 0)
    }

    pub fn asn_org(&self, ip: IpAddr) -> Option<String> {
        let (_, r) = self.asn.as_ref()?;
        r.lookup(ip).ok()?.decode_path::<String>(P_ORG).ok()?
    }

    /// Country code of `ip`, packed (0 = unknown).
    #[inline]
    pub fn country(&self, ip: IpAddr) -> Cc {
        match &self.country {
            Some((_, r)) => cc_of(r, ip, self.flat_country)
                .or_else(|| cc_of(r, ip, !self.flat_country))
                .unwrap_or(0),
            None => 0,
        }
    }

    /// The ASN reader, for the stream generator (iterates the networks).
    pub fn asn_reader(&self) -> Option<&Reader<Vec<u8>>> {
        self.asn.as_ref().map(|(_, r)| r)
    }
}

fn open_reader(kind: &'static str, p: &Path) -> Result<Reader<Vec<u8>>, IntelError> {
    Reader::open_readfile(p).map_err(|source| IntelError::Mmdb {
        kind,
        path: p.to_path_buf(),
        source,
    })
}

/// Checks that the first records of the database carry the fields we need, so that a
/// wrong or truncated file fails at start rather than silently yielding nothing.
fn probe(
    r: &Reader<Vec<u8>>,
    kind: &'static str,
    p: &Path,
    mut ok: impl FnMut(&Reader<Vec<u8>>, IpAddr) -> bool,
) -> Result<(), IntelError> {
    let err = |reason: String| IntelError::MmdbLayout {
        kind,
        path: p.to_path_buf(),
        reason,
    };
    let it = r
        .networks(WithinOptions::default())
        .map_err(|e| err(e.to_string()))?;
    let mut seen = 0;
    for item in it.take(64) {
        let item = item.map_err(|e| err(format!("corrupt search tree: {e}")))?;
        let net = item.network().map_err(|e| err(e.to_string()))?;
        seen += 1;
        if ok(r, net.ip()) {
            return Ok(());
        }
    }
    Err(err(if seen == 0 {
        "no records".into()
    } else {
        match kind {
            "ASN" => "records lack autonomous_system_number".into(),
            _ => "records lack country.iso_code / country_code".into(),
        }
    }))
}

#[inline]
fn asn_of(r: &Reader<Vec<u8>>, ip: IpAddr) -> Option<u32> {
    r.lookup(ip).ok()?.decode_path::<u32>(P_ASN).ok()?
}

#[inline]
fn cc_of(r: &Reader<Vec<u8>>, ip: IpAddr, flat: bool) -> Option<Cc> {
    cc_from(&r.lookup(ip).ok()?, flat)
}

#[inline]
fn cc_from(res: &maxminddb::LookupResult<'_, Vec<u8>>, flat: bool) -> Option<Cc> {
    let s: Option<&str> = if flat {
        res.decode_path(P_CC_FLAT).ok()?
    } else {
        match res.decode_path::<&str>(P_CC_NESTED).ok()? {
            Some(s) => Some(s),
            None => res.decode_path(P_CC_REG).ok()?,
        }
    };
    s.map(cc_pack)
}

/// Tiny fixture databases for tests (built in code with `mmdb-writer`).
#[cfg(test)]
pub(crate) mod fixtures {
    use ipnet::IpNet;
    use mmdb_writer::{Value, Writer};

    pub fn asn_db(entries: &[(&str, u32, &str)]) -> Vec<u8> {
        let mut w = Writer::new("GeoLite2-ASN");
        for (net, asn, org) in entries {
            w.insert_value(
                net.parse::<IpNet>().unwrap(),
                Value::map([
                    ("autonomous_system_number", Value::from(*asn)),
                    ("autonomous_system_organization", Value::from(*org)),
                ]),
            )
            .unwrap();
        }
        w.to_bytes().unwrap()
    }

    /// `nested`: GeoIP2 `country.iso_code`; otherwise flat `country_code`.
    pub fn country_db(entries: &[(&str, &str)], nested: bool) -> Vec<u8> {
        let mut w = Writer::new(if nested {
            "GeoLite2-Country"
        } else {
            "geo-whois-asn-country"
        });
        for (net, cc) in entries {
            let v = if nested {
                Value::map([("country", Value::map([("iso_code", Value::from(*cc))]))])
            } else {
                Value::map([("country_code", Value::from(*cc))])
            };
            w.insert_value(net.parse::<IpNet>().unwrap(), v).unwrap();
        }
        w.to_bytes().unwrap()
    }

    pub fn write_tmp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("dnsward-intel-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn asn_and_both_country_layouts() {
        let a = write_tmp(
            "geo-asn.mmdb",
            &asn_db(&[
                ("1.2.3.0/24", 64500, "Example Net"),
                ("2001:db8::/32", 64501, "V6 Net"),
            ]),
        );
        let c1 = write_tmp(
            "geo-c-nested.mmdb",
            &country_db(&[("1.2.3.0/24", "DE")], true),
        );
        let c2 = write_tmp(
            "geo-c-flat.mmdb",
            &country_db(&[("1.2.3.0/24", "FR"), ("2001:db8::/32", "JP")], false),
        );
        let db = GeoDb::open(Some(&a), Some(&c1)).unwrap();
        let ip: IpAddr = "1.2.3.4".parse().unwrap();
        assert_eq!(db.asn(ip), Some(64500));
        assert_eq!(db.asn_org(ip).as_deref(), Some("Example Net"));
        assert_eq!(cc_str(db.country(ip)), "DE");
        assert_eq!(db.asn("9.9.9.9".parse().unwrap()), None);
        let db = GeoDb::open(Some(&a), Some(&c2)).unwrap();
        assert_eq!(cc_str(db.country(ip)), "FR");
        assert_eq!(cc_str(db.country("2001:db8::1".parse().unwrap())), "JP");
        assert_eq!(db.asn("2001:db8::1".parse().unwrap()), Some(64501));
        assert_eq!(db.asn("::ffff:1.2.3.4".parse().unwrap()), Some(64500));
    }

    #[test]
    fn corrupt_and_missing_mmdb_are_clear_errors() {
        let bad = write_tmp("corrupt.mmdb", b"this is not an mmdb file at all");
        let e = GeoDb::open(Some(&bad), None).unwrap_err().to_string();
        assert!(e.contains("corrupt.mmdb") && e.contains("ASN"), "{e}");
        let e = GeoDb::open(Some(Path::new("/nonexistent/asn.mmdb")), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/asn.mmdb"), "{e}");
        // A country DB given as the ASN DB: wrong layout.
        let c = write_tmp(
            "wrong-kind.mmdb",
            &country_db(&[("1.2.3.0/24", "DE")], true),
        );
        let e = GeoDb::open(Some(&c), None).unwrap_err().to_string();
        assert!(e.contains("autonomous_system_number"), "{e}");
        // Truncated real-looking DB.
        let good = asn_db(&[("1.2.3.0/24", 64500, "x"), ("5.6.0.0/16", 64501, "y")]);
        let t = write_tmp("truncated.mmdb", &good[..good.len() / 2]);
        assert!(GeoDb::open(Some(&t), None).is_err());
    }
}

#[cfg(test)]
mod corrupt_tests {
    use super::fixtures::*;
    use super::*;

    /// Damaged databases either fail to open or answer "unknown": never panic.
    #[test]
    fn damaged_bytes_never_panic() {
        let nets: Vec<String> = (1..=60).map(|n| format!("{n}.{n}.0.0/16")).collect();
        let entries: Vec<(&str, u32, &str)> = nets
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), 64500 + i as u32, "Org"))
            .collect();
        let good = asn_db(&entries);
        let mut x: u64 = 0x1234_5678;
        for round in 0..120 {
            let mut b = good.clone();
            for _ in 0..(1 + round % 8) {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let i = (x >> 33) as usize % b.len();
                b[i] ^= (x >> 8) as u8 | 1;
            }
            let p = write_tmp(&format!("damaged-{round}.mmdb"), &b);
            let r = std::panic::catch_unwind(|| {
                if let Ok(db) = GeoDb::open(Some(&p), Some(&p)) {
                    for n in 0..200u32 {
                        let ip = IpAddr::V4(std::net::Ipv4Addr::from(
                            n.wrapping_mul(0x0101_0101) ^ (n << 24),
                        ));
                        let _ = db.info(ip);
                        let _ = db.asn_org(ip);
                        let _ = db.info("2001:db8::1".parse().unwrap());
                    }
                }
            });
            assert!(r.is_ok(), "panic on damaged database round {round}");
            let _ = std::fs::remove_file(p);
        }
    }
}
