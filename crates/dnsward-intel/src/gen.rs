//! Realistic answer-stream generator (JSON lines, the [`crate::eval`] replay format).
//!
//! Addresses are drawn from the real ASN database: flux agents from residential / ISP
//! networks (organisation names of access providers, not on the hosting lists), spread over
//! countries with a per-botnet country focus, a share of them on compromised hosting; CDNs
//! from the CDN ranges with their CNAME suffixes; NTP-pool and multi-cloud round-robin pools;
//! volunteer mirror pools on university networks; parked domains on parking NS/IPs (some move
//! to a fresh address); benign stable sites. Deterministic for a seed.
use crate::eval::{AnswerRec, NameRec, Record};
use crate::geo::{cc_str, GeoDb};
use crate::lists::Lists;
use crate::net::{key_is_v4, key_to_ip, V4_BASE};
use maxminddb::WithinOptions;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};

#[derive(Clone, Debug)]
pub struct GenConfig {
    pub seed: u64,
    pub flux: usize,
    pub double_flux: usize,
    pub cdn: usize,
    pub round_robin: usize,
    pub volunteer_pool: usize,
    pub parked: usize,
    pub benign: usize,
    /// Fresh names answering into listed addresses / AS53667 (needs the IOC list in `GenSummary::ioc_list`).
    pub ioc: usize,
    /// Lookups of every domain in the stream.
    pub lookups_per_domain: usize,
    pub start_t: u64,
    /// Lookups of one domain are spread over this many seconds (max).
    pub span_secs: u64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 7,
            flux: 300,
            double_flux: 150,
            cdn: 300,
            round_robin: 200,
            volunteer_pool: 50,
            parked: 150,
            benign: 500,
            ioc: 60,
            lookups_per_domain: 6,
            start_t: 1_790_000_000,
            span_secs: 4 * 3600,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct GenSummary {
    pub records: usize,
    pub domains: BTreeMap<String, usize>,
    pub residential_networks: usize,
    pub residential_asns: usize,
    pub hosting_networks: usize,
    pub university_networks: usize,
    pub countries: usize,
    /// IOC list matching the stream (`ip`/`asn` lines): the `ioc` set's targets plus some
    /// parking-service addresses of parked domains (which must stay `parked`, not blocked).
    #[serde(skip)]
    pub ioc_list: String,
}

#[derive(Clone, Copy)]
struct Net {
    start: u32,
    size: u32,
    asn: u32,
    cc: u16,
}

struct Pool {
    nets: Vec<Net>,
    cum: Vec<f64>,
}

impl Pool {
    fn new(nets: Vec<Net>) -> Pool {
        let mut cum = Vec::with_capacity(nets.len());
        let mut acc = 0.0;
        for n in &nets {
            // weight by sqrt(size): big ISPs host more bots, small ones still appear
            acc += (n.size as f64).sqrt();
            cum.push(acc);
        }
        Pool { nets, cum }
    }

    fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    fn pick_net(&self, rng: &mut StdRng) -> &Net {
        let x = rng.gen::<f64>() * self.cum.last().copied().unwrap_or(0.0);
        let i = self
            .cum
            .partition_point(|&c| c < x)
            .min(self.nets.len() - 1);
        &self.nets[i]
    }

    fn ip_in(n: &Net, rng: &mut StdRng) -> IpAddr {
        let off = if n.size > 2 {
            rng.gen_range(1..n.size - 1)
        } else {
            0
        };
        IpAddr::V4(Ipv4Addr::from(n.start.wrapping_add(off)))
    }

    fn pick(&self, rng: &mut StdRng) -> IpAddr {
        Self::ip_in(self.pick_net(rng), rng)
    }
}

const ISP_WORDS: &[&str] = &[
    "telecom",
    "telekom",
    "telecommunic",
    "broadband",
    "cable",
    "communications",
    "comunica",
    "mobile",
    "wireless",
    "fiber",
    "fibre",
    "isp",
    "telefonica",
    "vodafone",
    "orange",
    "comcast",
    "charter",
    "verizon",
    "at&t",
    "kabel",
    "dsl",
    "telenet",
    "internet service",
    "telkom",
    "viettel",
    "vnpt",
    "chinanet",
    "china unicom",
    "china mobile",
    "bharti",
    "reliance jio",
    "turk telekom",
    "rostelecom",
    "claro",
    "vivo",
    "tim ",
    "telmex",
    "movistar",
    "spectrum",
    "cox ",
    "frontier",
    "windstream",
];
const HOSTING_WORDS: &[&str] = &[
    "host",
    "cloud",
    "server",
    "data center",
    "datacenter",
    "data centre",
    "vps",
    "colo",
    "dedicated",
    "amazon",
    "google",
    "microsoft",
    "digitalocean",
    "ovh",
    "hetzner",
    "linode",
    "akamai",
    "cdn",
    "leaseweb",
    "choopa",
    "vultr",
    "contabo",
    "alibaba",
    "tencent",
    "oracle",
    "ionos",
    "scaleway",
];
const UNI_WORDS: &[&str] = &[
    "universit",
    "college",
    "research",
    "education",
    "institute of tech",
    "academic",
];
const CLOUD_ASNS: &[u32] = &[
    16509, 14618, 15169, 396982, 8075, 14061, 24940, 16276, 63949, 20473, 45102, 31898,
];

/// (provider, its ranges, its CNAME suffixes)
type CdnProvider = (String, Vec<(u128, u128)>, Vec<String>);
type ProviderLists = (Vec<(u128, u128)>, Vec<String>);

struct World {
    residential: Pool,
    res_by_cc: HashMap<u16, Vec<usize>>,
    hosting: Pool,
    cloud: HashMap<u32, Pool>,
    uni: Pool,
    ccs: Vec<u16>,
    cdn: Vec<CdnProvider>,
    parking_ips: Vec<(u128, u128)>,
    parking_ns: Vec<String>,
    bulletproof: Vec<Net>,
}

fn lc_contains(org: &str, words: &[&str]) -> bool {
    let o = org.to_ascii_lowercase();
    words.iter().any(|w| o.contains(w))
}

fn build_world(geo: &GeoDb, lists: &Lists) -> Result<World, String> {
    let r = geo
        .asn_reader()
        .ok_or("the generator needs an ASN MMDB (--asn-mmdb)")?;
    #[derive(serde::Deserialize)]
    struct Rec<'a> {
        autonomous_system_number: Option<u32>,
        #[serde(borrow)]
        autonomous_system_organization: Option<&'a str>,
    }
    let (mut res, mut host, mut uni, mut bulletproof) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut cloud: HashMap<u32, Vec<Net>> = HashMap::new();
    for item in r
        .networks(WithinOptions::default())
        .map_err(|e| e.to_string())?
    {
        let Ok(item) = item else { continue };
        let Ok(net) = item.network() else { continue };
        let (start, prefix) = match net.ip() {
            IpAddr::V4(v4) => (u32::from(v4), net.prefix() as u32),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => (u32::from(v4), (net.prefix() as u32).saturating_sub(96)),
                None => continue,
            },
        };
        if !(8..=30).contains(&prefix) {
            continue;
        }
        let Ok(Some(rec)) = item.decode::<Rec>() else {
            continue;
        };
        let (Some(asn), Some(org)) = (
            rec.autonomous_system_number,
            rec.autonomous_system_organization,
        ) else {
            continue;
        };
        let key = V4_BASE | start as u128;
        if lists.cdn_ranges.contains(key) {
            continue;
        }
        let size = 1u32 << (32 - prefix);
        let ip = IpAddr::V4(Ipv4Addr::from(start));
        let n = Net {
            start,
            size,
            asn,
            cc: geo.country(ip),
        };
        let listed_hosting = lists.hosting_asn.contains(&asn) || lists.hosting_ranges.contains(key);
        if asn == 53667 {
            bulletproof.push(n);
        }
        if CLOUD_ASNS.contains(&asn) {
            cloud.entry(asn).or_default().push(n);
        }
        if listed_hosting || lc_contains(org, HOSTING_WORDS) {
            host.push(n);
        } else if lc_contains(org, UNI_WORDS) {
            uni.push(n);
        } else if lc_contains(org, ISP_WORDS) && !lists.parking_ips.contains(key) {
            res.push(n);
        }
    }
    if res.is_empty() || host.is_empty() {
        return Err("ASN database has no residential or hosting networks".into());
    }
    let mut res_by_cc: HashMap<u16, Vec<usize>> = HashMap::new();
    for (i, n) in res.iter().enumerate() {
        if n.cc != 0 {
            res_by_cc.entry(n.cc).or_default().push(i);
        }
    }
    let mut ccs: Vec<u16> = res_by_cc
        .iter()
        .filter(|(_, v)| v.len() >= 20)
        .map(|(&c, _)| c)
        .collect();
    ccs.sort_unstable();
    // CDN providers: ranges + their CNAME suffixes
    let mut by_prov: BTreeMap<String, ProviderLists> = BTreeMap::new();
    for (s, e, &p) in lists.cdn_ranges.iter() {
        let name = lists.providers[p as usize].to_string();
        if key_is_v4(s) && e - s >= 255 {
            by_prov.entry(name).or_default().0.push((s, e));
        }
    }
    for (suf, &p) in &lists.cdn_suffix {
        let name = lists.providers[p as usize].to_string();
        if let Some(v) = by_prov.get_mut(&name) {
            v.1.push(suf.to_string());
        }
    }
    let cdn: Vec<_> = by_prov
        .into_iter()
        .filter(|(_, (r, _))| !r.is_empty())
        .map(|(p, (r, mut s))| {
            s.sort();
            (p, r, s)
        })
        .collect();
    let parking_ips: Vec<(u128, u128)> = lists
        .parking_ips
        .iter()
        .filter(|(s, _, _)| key_is_v4(*s))
        .map(|(s, e, _)| (s, e))
        .collect();
    let mut parking_ns: Vec<String> = lists
        .parking_ns
        .iter()
        .filter(|(_, &w)| !w)
        .map(|(k, _)| k.to_string())
        .collect();
    parking_ns.sort();
    Ok(World {
        residential: Pool::new(res),
        res_by_cc,
        hosting: Pool::new(host),
        cloud: cloud.into_iter().map(|(a, v)| (a, Pool::new(v))).collect(),
        uni: Pool::new(uni),
        ccs,
        cdn,
        parking_ips,
        parking_ns,
        bulletproof,
    })
}

const TLDS_BAD: &[&str] = &[
    "ru", "top", "xyz", "monster", "com", "net", "su", "cn", "info", "online", "site",
];
const TLDS_OK: &[&str] = &[
    "com", "net", "org", "de", "fr", "co.uk", "io", "nl", "it", "es",
];
const WORDS: &[&str] = &[
    "blue", "river", "market", "cloud", "north", "pixel", "garden", "stone", "bright", "media",
    "shop", "travel", "green", "data", "smart", "home", "city", "mountain", "sun", "ocean",
    "craft", "book", "coffee", "studio", "health", "auto", "sport", "music", "photo", "labs",
    "news", "bank", "school", "food", "design", "tech",
];

fn rand_label(rng: &mut StdRng, min: usize, max: usize) -> String {
    let n = rng.gen_range(min..=max);
    (0..n)
        .map(|_| (b'a' + rng.gen_range(0..26)) as char)
        .collect()
}

fn word_name(rng: &mut StdRng, i: usize) -> String {
    format!(
        "{}{}{i}.{}",
        WORDS.choose(rng).unwrap(),
        WORDS.choose(rng).unwrap(),
        TLDS_OK.choose(rng).unwrap()
    )
}

fn times(rng: &mut StdRng, cfg: &GenConfig) -> Vec<u64> {
    let base = cfg.start_t + rng.gen_range(0..cfg.span_secs.max(1));
    let mut t = base;
    (0..cfg.lookups_per_domain)
        .map(|_| {
            let cur = t;
            t += rng.gen_range(30..=cfg.span_secs.max(60) / cfg.lookups_per_domain.max(1) as u64);
            cur
        })
        .collect()
}

struct Botnet {
    agents: Vec<IpAddr>,
}

fn make_botnet(w: &World, rng: &mut StdRng) -> Botnet {
    let n_agents = rng.gen_range(150..1500);
    // a few focus countries carry most of the bots
    let focus: Vec<u16> = (0..rng.gen_range(2..6))
        .filter_map(|_| w.ccs.choose(rng).copied())
        .collect();
    let hosting_share = if rng.gen_bool(0.25) {
        rng.gen_range(0.1..0.4)
    } else {
        0.0
    };
    let mut agents = Vec::with_capacity(n_agents);
    for _ in 0..n_agents {
        let ip = if rng.gen_bool(hosting_share) {
            w.hosting.pick(rng)
        } else if !focus.is_empty() && rng.gen_bool(0.7) {
            let cc = focus.choose(rng).unwrap();
            let idx = w.res_by_cc[cc].choose(rng).unwrap();
            Pool::ip_in(&w.residential.nets[*idx], rng)
        } else {
            w.residential.pick(rng)
        };
        agents.push(ip);
    }
    Botnet { agents }
}

fn flux_k(rng: &mut StdRng) -> usize {
    let x: f64 = rng.gen();
    if x < 0.08 {
        1
    } else if x < 0.18 {
        2
    } else if x < 0.55 {
        rng.gen_range(3..=5)
    } else {
        rng.gen_range(6..=10)
    }
}

fn next_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) ^ 1)),
        v6 => v6,
    }
}

/// A random /24 inside `range` (the range itself when narrower).
fn pop24(range: (u128, u128), rng: &mut StdRng) -> (u128, u128) {
    let (s, e) = range;
    if e - s < 256 {
        return range;
    }
    let blocks = ((e - s + 1) / 256).min(u32::MAX as u128) as u64;
    let b = s + 256 * rng.gen_range(0..blocks) as u128;
    (b, b + 255)
}

fn ip_in_range(s: u128, e: u128, rng: &mut StdRng) -> IpAddr {
    let span = (e - s).min(u32::MAX as u128) as u64;
    key_to_ip(s + rng.gen_range(0..=span) as u128)
}

/// Generate a labelled stream into `out` (JSON lines, sorted by time).
pub fn generate(
    geo: &GeoDb,
    lists: &Lists,
    cfg: &GenConfig,
    out: &mut dyn Write,
) -> Result<GenSummary, String> {
    let (recs, sum) = generate_records(geo, lists, cfg)?;
    for r in &recs {
        serde_json::to_writer(&mut *out, r).map_err(|e| e.to_string())?;
        out.write_all(b"\n").map_err(|e| e.to_string())?;
    }
    Ok(sum)
}

/// The labelled stream of [`generate`] as records, sorted by time (benchmarks and examples that
/// replay it in process).
pub fn generate_records(
    geo: &GeoDb,
    lists: &Lists,
    cfg: &GenConfig,
) -> Result<(Vec<Record>, GenSummary), String> {
    let w = build_world(geo, lists)?;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut recs: Vec<Record> = Vec::new();
    let mut sum = GenSummary {
        residential_networks: w.residential.nets.len(),
        residential_asns: {
            let mut a: Vec<u32> = w.residential.nets.iter().map(|n| n.asn).collect();
            a.sort_unstable();
            a.dedup();
            a.len()
        },
        hosting_networks: w.hosting.nets.len(),
        university_networks: w.uni.nets.len(),
        countries: w.ccs.len(),
        ..Default::default()
    };
    let botnets: Vec<Botnet> = (0..8).map(|_| make_botnet(&w, &mut rng)).collect();
    let ttl_flux = [0u32, 30, 60, 120, 150, 180, 300, 300, 600];
    let rec = |t: u64, name: &str, ips: Vec<(IpAddr, u32)>, label: &str| Record {
        t,
        name: name.to_string(),
        answers: ips
            .into_iter()
            .map(|(ip, ttl)| AnswerRec { ip, ttl })
            .collect(),
        cnames: Vec::new(),
        ns: Vec::new(),
        ns_addrs: Vec::new(),
        label: Some(label.to_string()),
    };

    // ---- flux and double flux
    for (label, count) in [("flux", cfg.flux), ("double_flux", cfg.double_flux)] {
        for i in 0..count {
            let name = format!(
                "{}{}.{}",
                rand_label(&mut rng, 5, 12),
                if i % 3 == 0 {
                    format!("{i}")
                } else {
                    String::new()
                },
                TLDS_BAD.choose(&mut rng).unwrap()
            );
            let bn = &botnets[rng.gen_range(0..botnets.len())];
            // each domain uses a slice of the botnet that is "online"
            let n_online = rng.gen_range(20..120).min(bn.agents.len());
            let online: Vec<IpAddr> = bn
                .agents
                .choose_multiple(&mut rng, n_online)
                .copied()
                .collect();
            let ttl = *ttl_flux.choose(&mut rng).unwrap();
            let k = flux_k(&mut rng);
            let own_ns = rng.gen_bool(0.6);
            for t in times(&mut rng, cfg) {
                let ips: Vec<(IpAddr, u32)> = online
                    .choose_multiple(&mut rng, k)
                    .map(|&ip| (ip, ttl))
                    .collect();
                let mut r = rec(t, &name, ips, label);
                if label == "double_flux" {
                    let nns = rng.gen_range(2..=4);
                    let ns_ttl = *[0u32, 60, 120, 300, 600].choose(&mut rng).unwrap();
                    for j in 0..nns {
                        let nsname = if own_ns {
                            format!("ns{}.{name}", j + 1)
                        } else {
                            format!(
                                "ns{}.{}.{}",
                                rng.gen_range(1..5),
                                rand_label(&mut rng, 6, 9),
                                TLDS_BAD.choose(&mut rng).unwrap()
                            )
                        };
                        r.ns.push(NameRec {
                            name: nsname,
                            ttl: ns_ttl,
                        });
                        r.ns_addrs.push(*online.choose(&mut rng).unwrap());
                    }
                } else if rng.gen_bool(0.5) {
                    // single flux: stable NS at a cheap DNS host
                    let h = w.hosting.pick(&mut rng);
                    r.ns.push(NameRec {
                        name: format!(
                            "ns1.{}.net",
                            ["dnspod", "freedns", "njalla", "1984hosting"][i % 4]
                        ),
                        ttl: 86400,
                    });
                    r.ns_addrs.push(h);
                }
                recs.push(r);
            }
            *sum.domains.entry(label.into()).or_default() += 1;
        }
    }

    // ---- CDN
    let big = [
        "cloudfront",
        "amazon",
        "akamai",
        "cloudflare",
        "fastly",
        "google",
        "azure",
        "gcore",
        "bunny",
        "stackpath",
    ];
    let weighted: Vec<usize> = (0..w.cdn.len())
        .flat_map(|i| {
            std::iter::repeat_n(
                i,
                if big.contains(&w.cdn[i].0.as_str()) {
                    6
                } else {
                    1
                },
            )
        })
        .collect();
    for i in 0..cfg.cdn {
        let name = if rng.gen_bool(0.5) {
            format!("www.{}", word_name(&mut rng, i))
        } else {
            format!(
                "{}.{}",
                ["static", "img", "cdn", "assets", "media", "api"]
                    .choose(&mut rng)
                    .unwrap(),
                word_name(&mut rng, i)
            )
        };
        let (prov, ranges, suffixes) = &w.cdn[*weighted.choose(&mut rng).unwrap()];
        let use_cname = !suffixes.is_empty() && rng.gen_bool(0.7);
        let cname = use_cname.then(|| {
            format!(
                "{}.{}",
                rand_label(&mut rng, 6, 14),
                suffixes.choose(&mut rng).unwrap()
            )
        });
        // edge "regions": a few prefixes of the provider; the resolver sees one region per lookup
        // a PoP is a /24 (or the whole range when smaller) inside one of the provider's ranges
        let regions: Vec<(u128, u128)> = (0..rng.gen_range(2..8))
            .map(|_| pop24(*ranges.choose(&mut rng).unwrap(), &mut rng))
            .collect();
        let ttl = rng.gen_range(20..=300);
        let k = rng.gen_range(1..=8);
        let mut region = regions[0];
        for t in times(&mut rng, cfg) {
            if rng.gen_bool(0.4) {
                region = *regions.choose(&mut rng).unwrap();
            }
            let ips: Vec<(IpAddr, u32)> = (0..k)
                .map(|_| (ip_in_range(region.0, region.1, &mut rng), ttl))
                .collect();
            let mut r = rec(t, &name, ips, "cdn");
            if let Some(c) = &cname {
                r.cnames.push(NameRec {
                    name: c.clone(),
                    ttl: rng.gen_range(60..=3600),
                });
            }
            let _ = prov;
            recs.push(r);
        }
        *sum.domains.entry("cdn".into()).or_default() += 1;
    }

    // ---- CDNs the lists do not know: one hosting ASN, many edge addresses, a CNAME into a
    // provider domain that is not a known CDN suffix (a fifth of the CDN count)
    let mut by_asn: BTreeMap<u32, Vec<Net>> = BTreeMap::new();
    for n in &w.hosting.nets {
        by_asn.entry(n.asn).or_default().push(*n);
    }
    let big_hosters: Vec<Vec<Net>> = by_asn.into_values().filter(|v| v.len() >= 8).collect();
    for i in 0..cfg.cdn / 5 {
        if big_hosters.is_empty() {
            break;
        }
        let name = format!("www.{}", word_name(&mut rng, i + 30_000));
        let nets = big_hosters.choose(&mut rng).unwrap();
        let regions: Vec<(u128, u128)> = nets
            .choose_multiple(&mut rng, 6)
            .map(|n| {
                pop24(
                    (
                        V4_BASE | n.start as u128,
                        V4_BASE | (n.start as u128 + n.size as u128 - 1),
                    ),
                    &mut rng,
                )
            })
            .collect();
        let cname = format!(
            "{}.edge.{}cdn.net",
            rand_label(&mut rng, 6, 10),
            rand_label(&mut rng, 4, 7)
        );
        let ttl = rng.gen_range(20..=300);
        let k = rng.gen_range(2..=8);
        for t in times(&mut rng, cfg) {
            let region = *regions.choose(&mut rng).unwrap();
            let ips: Vec<(IpAddr, u32)> = (0..k)
                .map(|_| (ip_in_range(region.0, region.1, &mut rng), ttl))
                .collect();
            let mut r = rec(t, &name, ips, "cdn_unlisted");
            r.cnames.push(NameRec {
                name: cname.clone(),
                ttl: 300,
            });
            recs.push(r);
        }
        *sum.domains.entry("cdn_unlisted".into()).or_default() += 1;
    }

    // ---- round robin: NTP pool zones + multi-cloud service pools
    let cloud_asns: Vec<u32> = {
        let mut v: Vec<u32> = w.cloud.keys().copied().collect();
        v.sort_unstable();
        v
    };
    for i in 0..cfg.round_robin {
        let ntp = i % 2 == 0;
        let name = if ntp {
            let cc = cc_str(*w.ccs.choose(&mut rng).unwrap_or(&0)).to_ascii_lowercase();
            match i % 6 {
                0 => format!("{}.pool.ntp.org", i % 4),
                2 => format!("{}.{cc}.pool.ntp.org", i % 4),
                _ => format!(
                    "{}.{}.pool.ntp.org",
                    i % 4,
                    ["debian", "android", "ubuntu", "centos", "openwrt", "fedora"][i % 6]
                ),
            }
        } else {
            format!(
                "{}.{}",
                ["api", "edge", "lb", "svc", "gw"].choose(&mut rng).unwrap(),
                word_name(&mut rng, i)
            )
        };
        // the pool behind the name
        let pool: Vec<IpAddr> = if ntp {
            (0..rng.gen_range(30..200))
                .map(|_| {
                    if rng.gen_bool(0.7) {
                        w.hosting.pick(&mut rng)
                    } else {
                        w.residential.pick(&mut rng)
                    }
                })
                .collect()
        } else {
            let n_provs = rng.gen_range(2..=5);
            let provs: Vec<u32> = cloud_asns
                .choose_multiple(&mut rng, n_provs)
                .copied()
                .collect();
            (0..rng.gen_range(8..24))
                .map(|j| w.cloud[&provs[j % provs.len()]].pick(&mut rng))
                .collect()
        };
        let k = if ntp { 4 } else { rng.gen_range(2..=8) };
        let ttl = if ntp {
            rng.gen_range(130..=150)
        } else {
            *[30u32, 60, 60, 300].choose(&mut rng).unwrap()
        };
        for t in times(&mut rng, cfg) {
            let ips: Vec<(IpAddr, u32)> = pool
                .choose_multiple(&mut rng, k)
                .map(|&ip| (ip, ttl))
                .collect();
            recs.push(rec(t, &name, ips, "round_robin"));
        }
        *sum.domains.entry("round_robin".into()).or_default() += 1;
    }

    // ---- volunteer mirror pools on university / research networks (no allowlist)
    if !w.uni.is_empty() {
        for i in 0..cfg.volunteer_pool {
            let name = format!(
                "{}.{}.org",
                ["mirrors", "pool", "keys", "ftp"][i % 4],
                rand_label(&mut rng, 5, 9)
            );
            let pool: Vec<IpAddr> = (0..rng.gen_range(6..30))
                .map(|_| {
                    if rng.gen_bool(0.6) {
                        w.uni.pick(&mut rng)
                    } else {
                        w.hosting.pick(&mut rng)
                    }
                })
                .collect();
            let ttl = *[300u32, 600, 3600].choose(&mut rng).unwrap();
            for t in times(&mut rng, cfg) {
                let n = rng.gen_range(1..=4);
                let ips: Vec<(IpAddr, u32)> = pool
                    .choose_multiple(&mut rng, n)
                    .map(|&ip| (ip, ttl))
                    .collect();
                recs.push(rec(t, &name, ips, "volunteer_pool"));
            }
            *sum.domains.entry("volunteer_pool".into()).or_default() += 1;
        }
    }

    // ---- parked (20% move to a fresh address half-way)
    for i in 0..cfg.parked {
        let name = word_name(&mut rng, i + 10_000);
        let via_ns = rng.gen_bool(0.6) && !w.parking_ns.is_empty();
        let ns_sfx = w.parking_ns.choose(&mut rng).cloned().unwrap_or_default();
        let (s, e) = *w.parking_ips.choose(&mut rng).unwrap();
        let park_ip = ip_in_range(s, e, &mut rng);
        let moves = i % 5 == 0;
        let fresh = if rng.gen_bool(0.5) {
            w.residential.pick(&mut rng)
        } else {
            w.hosting.pick(&mut rng)
        };
        let label = if moves { "parking_move" } else { "parked" };
        if i % 3 == 1 {
            sum.ioc_list.push_str(&format!(
                "ip {park_ip} generated: parking-service address that also sits on an IOC feed\n"
            ));
        }
        let ts = times(&mut rng, cfg);
        let half = ts.len() / 2;
        for (j, t) in ts.into_iter().enumerate() {
            let moved = moves && j >= half;
            let ip = if moved {
                fresh
            } else if via_ns {
                w.hosting.pick(&mut rng)
            } else {
                park_ip
            };
            let mut r = rec(t, &name, vec![(ip, 3600)], label);
            if via_ns && !moved {
                r.answers[0].ip = park_ip;
                r.ns = vec![
                    NameRec {
                        name: format!("ns1.{ns_sfx}"),
                        ttl: 86400,
                    },
                    NameRec {
                        name: format!("ns2.{ns_sfx}"),
                        ttl: 86400,
                    },
                ];
            }
            recs.push(r);
        }
        *sum.domains.entry(label.into()).or_default() += 1;
    }

    // ---- benign stable sites (some on ISP/business lines, some dual-A, one migration)
    for i in 0..cfg.benign {
        let name = if rng.gen_bool(0.5) {
            format!("www.{}", word_name(&mut rng, i + 20_000))
        } else {
            word_name(&mut rng, i + 20_000)
        };
        let on_isp = rng.gen_bool(0.3);
        let pick = |rng: &mut StdRng| {
            if on_isp {
                w.residential.pick(rng)
            } else {
                w.hosting.pick(rng)
            }
        };
        let mut ips: Vec<IpAddr> = vec![pick(&mut rng)];
        if rng.gen_bool(0.4) {
            // second address: usually next to the first (same block), sometimes a second provider
            ips.push(if rng.gen_bool(0.8) {
                next_ip(ips[0])
            } else {
                pick(&mut rng)
            });
        }
        let ttl = *[300u32, 600, 1800, 3600, 14400, 86400]
            .choose(&mut rng)
            .unwrap();
        let migrate = rng.gen_bool(0.1);
        let ns_host = w.hosting.pick(&mut rng);
        for (j, t) in times(&mut rng, cfg).into_iter().enumerate() {
            if migrate && j == 3 {
                ips = vec![pick(&mut rng)];
            }
            let mut r = rec(
                t,
                &name,
                ips.iter().map(|&ip| (ip, ttl)).collect(),
                "benign",
            );
            r.ns = vec![
                NameRec {
                    name: "ns1.dnsprovider.example".into(),
                    ttl: 172800,
                },
                NameRec {
                    name: "ns2.dnsprovider.example".into(),
                    ttl: 172800,
                },
            ];
            r.ns_addrs = vec![ns_host];
            recs.push(r);
        }
        *sum.domains.entry("benign".into()).or_default() += 1;
    }

    // ---- IOC: fresh names landing on listed addresses or in AS53667, half via a CNAME chain
    sum.ioc_list
        .push_str("asn 53667 generated: bulletproof hoster\n");
    for i in 0..cfg.ioc {
        let name = format!(
            "{}-{}.{}",
            rand_label(&mut rng, 4, 8),
            WORDS.choose(&mut rng).unwrap(),
            TLDS_BAD.choose(&mut rng).unwrap()
        );
        let ip = if i % 2 == 0 && !w.bulletproof.is_empty() {
            Pool::ip_in(w.bulletproof.choose(&mut rng).unwrap(), &mut rng)
        } else {
            let ip = w.hosting.pick(&mut rng);
            sum.ioc_list
                .push_str(&format!("ip {ip} generated: malware distribution\n"));
            ip
        };
        let chain = i % 4 >= 2;
        for t in times(&mut rng, cfg) {
            let mut r = rec(t, &name, vec![(ip, 300)], "ioc");
            if chain {
                r.cnames = vec![
                    NameRec {
                        name: format!("go.{}.xyz", rand_label(&mut rng, 5, 7)),
                        ttl: 60,
                    },
                    NameRec {
                        name: format!("edge-{i}.{}.top", rand_label(&mut rng, 4, 6)),
                        ttl: 60,
                    },
                ];
            }
            recs.push(r);
        }
        *sum.domains.entry("ioc".into()).or_default() += 1;
    }

    recs.sort_by(|a, b| a.t.cmp(&b.t).then_with(|| a.name.cmp(&b.name)));
    sum.records = recs.len();
    Ok((recs, sum))
}
