//! The answer analyser: history, features, scores and findings.
use crate::config::{Action, IntelActions, IntelConfig};
use crate::error::IntelError;
use crate::geo::{cc_str, Cc, GeoDb};
use crate::history::{AnswerHistory, DomainHistory, Seen, MAX_LOOKUPS_KEPT};
use crate::ioc::IocSet;
use crate::lists::{Lists, C_CDN, C_HOSTING, C_PARKING};
use crate::net::{ip_key, key_to_ip, net16, net24, norm_name};
use serde::Serialize;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// One upstream answer, already parsed by the server.
#[derive(Clone, Copy, Debug)]
pub struct Observation<'a> {
    /// Lowercase, no trailing dot (normalised again if not).
    pub qname: &'a str,
    /// A/AAAA answers with TTL (after following CNAMEs).
    pub addrs: &'a [(IpAddr, u32)],
    /// CNAME chain targets with TTL, in order.
    pub cnames: &'a [(&'a str, u32)],
    /// NS names from answer/authority, may be empty.
    pub ns: &'a [(&'a str, u32)],
    /// Glue / additional addresses of the NS hosts, may be empty.
    pub ns_addrs: &'a [IpAddr],
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    FastFlux,
    DoubleFlux,
    IocIp,
    IocAsn,
    IocDomain,
    ParkingMove,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::FastFlux => "fast_flux",
            FindingKind::DoubleFlux => "double_flux",
            FindingKind::IocIp => "ioc_ip",
            FindingKind::IocAsn => "ioc_asn",
            FindingKind::IocDomain => "ioc_domain",
            FindingKind::ParkingMove => "parking_move",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub score: f64,
    /// Human-readable reason, e.g. `answer 205.185.117.44 in AS53667 (ioc list seed-iocs.txt:12)`.
    pub detail: String,
    /// An IOC hit on shared infrastructure (a CDN / WAF edge address, a popular site or public
    /// web service, a listed public suffix): why the hit says little about this name. Such hits
    /// take `[intel.actions] ioc_shared` (default `log`) instead of their kind's action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<String>,
    /// The indicator is from a list on trial (`[intel] ioc_trial_files`): logged, never enforced.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub trial: bool,
}

/// A warning for each IOC list last modified more than `max_age_days` before `now` (0: none).
fn stale_lists(lists: &[crate::IocListInfo], max_age_days: u64, now: u64) -> Vec<String> {
    if max_age_days == 0 {
        return Vec::new();
    }
    lists
        .iter()
        .filter_map(|l| {
            let age = now.saturating_sub(l.modified_unix?);
            (age > max_age_days * 86_400).then(|| {
                format!(
                    "ioc list {} ({} entries) was last changed {} days ago (intel.ioc_max_age_days = {max_age_days}): \
                     listed addresses are often reassigned to innocent hosts once an operation moves on; refresh the feed",
                    l.file,
                    l.entries,
                    age / 86_400
                )
            })
        })
        .collect()
}

impl Finding {
    fn new(kind: FindingKind, score: f64, detail: String) -> Finding {
        Finding {
            kind,
            score,
            detail,
            shared: None,
            trial: false,
        }
    }

    /// Mark an IOC finding whose indicator is from a list on trial; the detail says so.
    fn on_trial(mut self, src: &crate::ioc::IocSource) -> Finding {
        if src.trial {
            self.detail.push_str("; trial list: logged, not enforced");
            self.trial = true;
        }
        self
    }

    /// Mark an IOC finding as a hit on shared infrastructure (`why`, if any); the detail says so.
    fn on_shared(mut self, why: Option<String>) -> Finding {
        if let Some(why) = why {
            self.detail = format!("{}; on shared infrastructure: {why}", self.detail);
            self.shared = Some(why);
        }
        self
    }
}

/// The numbers that drove a verdict (shown by `dnsward check` and the admin API).
/// Window counts include the current answer.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FluxFeatures {
    /// Lookups of this name seen in the window, this one included.
    pub lookups: u32,
    /// A/AAAA records in this answer (before truncation).
    pub answer_addrs: u32,
    /// The answer had more records than `max_addrs_per_answer` / `max_ioc_checks_per_answer`.
    pub truncated: bool,
    pub distinct_ips: u32,
    pub distinct_24: u32,
    pub distinct_16: u32,
    pub distinct_asns: u32,
    pub distinct_countries: u32,
    /// Shannon entropy (bits) of the ASN / country distribution over the distinct IPs.
    pub asn_entropy: f64,
    pub country_entropy: f64,
    /// Share of distinct IPs on hosting / datacenter / CDN networks.
    pub hosting_share: f64,
    /// Share of distinct IPs on university / research / government networks (by ASN organisation).
    pub institutional_share: f64,
    /// Share of distinct IPs on neither hosting / CDN nor institutional networks (flux agents live there).
    pub residential_share: f64,
    /// Minimum TTL of this answer's A/AAAA/CNAME records, and over the window.
    pub min_ttl: u32,
    pub window_min_ttl: u32,
    /// IPs of this answer not seen before in the window, and their share (0 on a first lookup).
    pub new_ips: u32,
    pub growth: f64,
    /// Lookups after the first in the window that brought new IPs.
    pub churn_lookups: u32,
    /// Distinct ASNs (/16s without an ASN database) within this answer alone.
    pub answer_asns: u32,
    /// Distinct IPs per lookup over the window.
    pub ips_per_lookup: f64,
    pub ns_names: u32,
    pub ns_new: u32,
    pub ns_ips: u32,
    pub ns_asns: u32,
    pub ns_distinct_24: u32,
    pub ns_distinct_16: u32,
    pub ns_countries: u32,
    pub ns_hosting_share: f64,
    pub ns_residential_share: f64,
    pub ns_min_ttl: u32,
    pub cname_depth: u32,
    pub cname_loop: bool,
    /// CDN / cloud provider recognised from the CNAME chain or the address ranges.
    pub cdn: Option<String>,
    /// Name under a round-robin pool suffix (NTP pool): never flagged as flux.
    pub rr_pool: bool,
    /// Why the answer counts as parked, if it does.
    pub parking: Option<String>,
    /// An NS is a registrar default that also parks (weak signal, does not set `parked`).
    pub parking_ns_weak: bool,
    /// Diversity counted on /16s because no ASN database is configured.
    pub prefix_only: bool,
    /// IOC hit ignored because the address is a parking-service address.
    pub ioc_suppressed: Option<String>,
    pub flux_score: f64,
    pub ns_flux_score: f64,
    pub holz_score: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Assessment {
    /// None = nothing suspicious.
    pub finding: Option<Finding>,
    pub parked: bool,
    pub features: FluxFeatures,
    /// Holz et al. 2008 flux score over the window (flux when > 0). Baseline, reported only.
    pub holz_score: f64,
}

impl Assessment {
    /// The configured action for this assessment (Allow when there is no finding).
    pub fn action(&self, actions: &IntelActions) -> Action {
        match &self.finding {
            None => Action::Allow,
            Some(f) if f.trial => Action::Log,
            Some(f) if f.shared.is_some() => actions.ioc_shared,
            Some(f) => match f.kind {
                FindingKind::FastFlux => actions.fast_flux,
                FindingKind::DoubleFlux => actions.double_flux,
                FindingKind::IocIp => actions.ioc_ip,
                FindingKind::IocAsn => actions.ioc_asn,
                FindingKind::IocDomain => actions.ioc_domain,
                FindingKind::ParkingMove => actions.parking_move,
            },
        }
    }

    pub fn holz_flags(&self) -> bool {
        self.holz_score > 0.0
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct AnalyzerStats {
    pub domains: usize,
    pub max_domains: usize,
    pub approx_bytes: usize,
    pub asn_db: bool,
    pub country_db: bool,
    pub iocs: usize,
}

const F_HOSTING: u8 = 1;
const F_CDN: u8 = 2;
const F_PARKING: u8 = 4;
/// University / research / government network (organisation name): not residential.
const F_INSTITUTIONAL: u8 = 8;

#[derive(Clone, Copy, Debug)]
struct IpInfo {
    key: u128,
    asn: u32,
    cc: Cc,
    flags: u8,
}

const TTL_CAP: u32 = 7 * 86400;
const MAX_CNAMES: usize = 32;
const MAX_NS: usize = 32;

/// Generation of each analyser built, so a history entry knows which analyser (which MMDBs
/// and lists) classified its addresses. 0 is never handed out: it marks "classified by none".
static NEXT_CLASS_GEN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// Shared analyser (`Send + Sync`; put it in an `Arc`).
pub struct AnswerAnalyzer {
    cfg: IntelConfig,
    geo: GeoDb,
    lists: Lists,
    iocs: IocSet,
    history: Arc<AnswerHistory>,
    /// This analyser's classification generation (see [`DomainHistory::class_gen`]).
    class_gen: u32,
    warnings: Vec<String>,
}

pub(crate) fn fx(s: &str) -> u64 {
    // FxHash-style: fast and good enough to pick a shard / fingerprint NS names.
    let mut h: u64 = 0;
    for chunk in s.as_bytes().chunks(8) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    h ^ (h >> 29)
}

/// RFC 2181 §8: TTLs with the top bit set are treated as zero; cap absurd values.
#[inline]
fn sane_ttl(t: u32) -> u32 {
    if t > i32::MAX as u32 {
        0
    } else {
        t.min(TTL_CAP)
    }
}

/// Distinct non-zero values. Sorts `v`.
fn distinct_count(v: &mut [u64]) -> u32 {
    v.sort_unstable();
    let mut n = 0;
    let mut prev = 0;
    for &x in v.iter() {
        if x != 0 && (n == 0 || x != prev) {
            n += 1;
        }
        prev = x;
    }
    n
}

/// Distinct non-zero values and their Shannon entropy (bits). Sorts `v`.
fn distinct_entropy(v: &mut [u64]) -> (u32, f64) {
    if let Some(&first) = v.first() {
        if v.iter().all(|&x| x == first) {
            return ((first != 0) as u32, 0.0);
        }
    }
    v.sort_unstable();
    let n = v.iter().filter(|&&x| x != 0).count();
    if n == 0 {
        return (0, 0.0);
    }
    let (mut distinct, mut h, mut run, mut prev) = (0u32, 0.0f64, 0usize, 0u64);
    let mut flush = |run: usize| {
        if run > 0 {
            let p = run as f64 / n as f64;
            h -= p * p.log2();
        }
    };
    for &x in v.iter().filter(|&&x| x != 0) {
        if x != prev || run == 0 {
            flush(run);
            distinct += 1;
            run = 0;
            prev = x;
        }
        run += 1;
    }
    flush(run);
    (distinct, h.max(0.0))
}

struct SideStats {
    ips: u32,
    n24: u32,
    n16: u32,
    asns: u32,
    ccs: u32,
    asn_h: f64,
    cc_h: f64,
    hosting: f64,
    institutional: f64,
    residential: f64,
}

fn side_stats(seen: &[Seen], buf: &mut Vec<u64>) -> SideStats {
    let n = seen.len();
    if n == 0 {
        return SideStats {
            ips: 0,
            n24: 0,
            n16: 0,
            asns: 0,
            ccs: 0,
            asn_h: 0.0,
            cc_h: 0.0,
            hosting: 0.0,
            institutional: 0.0,
            residential: 0.0,
        };
    }
    buf.clear();
    buf.extend(seen.iter().map(|s| s.asn as u64));
    let (asns, asn_h) = distinct_entropy(buf);
    buf.clear();
    buf.extend(seen.iter().map(|s| s.cc as u64));
    let (ccs, cc_h) = distinct_entropy(buf);
    buf.clear();
    buf.extend(seen.iter().map(|s| net24(s.key)));
    let n24 = distinct_count(buf);
    buf.clear();
    buf.extend(seen.iter().map(|s| net16(s.key)));
    let n16 = distinct_count(buf);
    let hosting = seen
        .iter()
        .filter(|s| s.flags & (F_HOSTING | F_CDN) != 0)
        .count() as f64
        / n as f64;
    let institutional = seen
        .iter()
        .filter(|s| s.flags & (F_HOSTING | F_CDN) == 0 && s.flags & F_INSTITUTIONAL != 0)
        .count() as f64
        / n as f64;
    SideStats {
        ips: n as u32,
        n24,
        n16,
        asns,
        ccs,
        asn_h,
        cc_h,
        hosting,
        institutional,
        residential: (1.0 - hosting - institutional).max(0.0),
    }
}

/// The detector's flux score. `n_asn`: distinct ASNs (or /16s in prefix-only mode).
/// `residential² · (ln nASN + ½·H_country) · (½ + ½·nASN/nIP) · ttl_factor + ½·growth·residential`.
pub(crate) fn flux_formula(
    n_ip: u32,
    n_asn: u32,
    cc_h: f64,
    residential: f64,
    min_ttl: u32,
    growth: f64,
) -> f64 {
    if n_asn <= 1 || n_ip == 0 {
        return 0.0;
    }
    let d = (n_asn as f64).ln();
    let spread = (n_asn as f64 / n_ip as f64).min(1.0);
    let t = if min_ttl <= 300 {
        1.0
    } else if min_ttl <= 1800 {
        0.6
    } else {
        0.3
    };
    residential * residential * (d + 0.5 * cc_h) * (0.5 + 0.5 * spread) * t
        + 0.5 * growth * residential
}

impl AnswerAnalyzer {
    pub fn new(cfg: &IntelConfig) -> Result<AnswerAnalyzer, IntelError> {
        if cfg.max_domains == 0 || cfg.max_ips_per_domain == 0 || cfg.window_secs == 0 {
            return Err(IntelError::Config(
                "max_domains, max_ips_per_domain and window_secs must be > 0".into(),
            ));
        }
        let mut warnings = Vec::new();
        let geo = match GeoDb::open(cfg.asn_mmdb.as_deref(), None) {
            Ok(g) => g,
            Err(e) if cfg.degrade_on_mmdb_error => {
                warnings.push(format!(
                    "{e}; continuing without ASN data (prefix-based features only)"
                ));
                GeoDb::none()
            }
            Err(e) => return Err(e),
        };
        let geo = match GeoDb::open(geo.asn_path(), cfg.country_mmdb.as_deref()) {
            Ok(g) => g,
            Err(e) if cfg.degrade_on_mmdb_error => {
                warnings.push(format!("{e}; continuing without country data"));
                geo
            }
            Err(e) => return Err(e),
        };
        let mut lists = Lists::builtin(cfg.use_builtin_lists);
        lists.add_rr_pools(&cfg.rr_pool_suffixes);
        if !cfg.extra_cdn_suffixes.is_empty() {
            lists.add_cdn_suffixes(&cfg.extra_cdn_suffixes);
        }
        lists.add_shared_domains(&cfg.extra_shared_domains);
        lists
            .hosting_asn
            .extend(cfg.extra_hosting_asns.iter().copied());
        let mut iocs = IocSet::load(&cfg.ioc_files)?;
        iocs.merge(IocSet::load_trial(&cfg.ioc_trial_files)?);
        warnings.extend(stale_lists(
            iocs.lists(),
            cfg.ioc_max_age_days,
            crate::unix_now(),
        ));
        warnings.extend(iocs.notes().iter().cloned());
        Self::build(cfg, geo, lists, iocs, warnings)
    }

    /// Construct with an IOC set already parsed (tests, embedding).
    pub fn with_iocs(cfg: &IntelConfig, iocs: IocSet) -> Result<AnswerAnalyzer, IntelError> {
        let mut c = cfg.clone();
        c.ioc_files.clear();
        let mut a = Self::new(&c)?;
        a.iocs = iocs;
        Ok(a)
    }

    fn build(
        cfg: &IntelConfig,
        geo: GeoDb,
        lists: Lists,
        iocs: IocSet,
        warnings: Vec<String>,
    ) -> Result<AnswerAnalyzer, IntelError> {
        Ok(AnswerAnalyzer {
            cfg: cfg.clone(),
            geo,
            lists,
            iocs,
            history: Arc::new(AnswerHistory::for_config(cfg)),
            class_gen: NEXT_CLASS_GEN.fetch_add(1, Ordering::Relaxed).max(1),
            warnings,
        })
    }

    /// Non-fatal problems met at start (e.g. a degraded MMDB).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn config(&self) -> &IntelConfig {
        &self.cfg
    }

    pub fn geo(&self) -> &GeoDb {
        &self.geo
    }

    pub fn lists(&self) -> &Lists {
        &self.lists
    }

    /// The answer history this analyser reads and extends.
    pub fn history(&self) -> &Arc<AnswerHistory> {
        &self.history
    }

    /// Continue the history of a previous analyser (a reload): shared as it is when its size
    /// matches this config, else copied into a history of this config's size. Addresses in it
    /// are classified again, with this analyser's MMDBs and lists, when their domain is next
    /// looked up.
    pub fn adopt_history(&mut self, previous: &Arc<AnswerHistory>) {
        self.history = if previous.fits(&self.cfg) {
            previous.clone()
        } else {
            Arc::new(previous.resized_for(&self.cfg))
        };
    }

    pub fn stats(&self) -> AnalyzerStats {
        AnalyzerStats {
            domains: self.history.len(),
            max_domains: self.cfg.max_domains,
            approx_bytes: self.history.approx_bytes(),
            asn_db: self.geo.has_asn(),
            country_db: self.geo.has_country(),
            iocs: self.iocs.len(),
        }
    }

    /// The IOC lists loaded (file, entries, modification time).
    pub fn ioc_lists(&self) -> &[crate::IocListInfo] {
        self.iocs.lists()
    }

    /// Forget all history.
    pub fn clear(&self) {
        self.history.clear();
    }

    /// Feed one upstream answer and get the assessment. `now_unix` in seconds.
    pub fn observe(&self, obs: &Observation<'_>, now_unix: u64) -> Assessment {
        self.run(obs, now_unix, true)
    }

    /// Same analysis without recording history (for `dnsward check` / admin "explain").
    pub fn assess(&self, obs: &Observation<'_>, now_unix: u64) -> Assessment {
        self.run(obs, now_unix, false)
    }

    #[inline]
    fn classify(&self, ip: IpAddr) -> IpInfo {
        let key = ip_key(ip);
        let g = self.geo.info(ip);
        let (asn, cc) = (g.asn, g.cc);
        let cls = self.lists.class_of(key);
        let mut flags = 0;
        if cls & C_CDN != 0 {
            flags |= F_CDN | F_HOSTING;
        }
        if cls & C_HOSTING != 0 || (asn != 0 && self.lists.hosting_asn.contains(&asn)) {
            flags |= F_HOSTING;
        }
        if cls & C_PARKING != 0 {
            flags |= F_PARKING;
        }
        if g.institutional {
            flags |= F_INSTITUTIONAL;
        }
        IpInfo {
            key,
            asn,
            cc,
            flags,
        }
    }

    fn run(&self, obs: &Observation<'_>, now_unix: u64, record: bool) -> Assessment {
        let now = now_unix.min(u32::MAX as u64) as u32;
        let qname = norm_name(obs.qname);
        let qname: &str = &qname;
        let mut f = FluxFeatures {
            prefix_only: !self.geo.has_asn(),
            answer_addrs: obs.addrs.len() as u32,
            ..Default::default()
        };

        // ---- CNAME chain, NS set: TTLs, loops, parking by name (no lock needed)
        let take = obs.addrs.len().min(self.cfg.max_addrs_per_answer);
        f.truncated = obs.addrs.len() > take;
        let mut min_ttl = obs.addrs[..take]
            .iter()
            .map(|&(_, t)| sane_ttl(t))
            .min()
            .unwrap_or(u32::MAX);
        let mut cname_loop = false;
        let cn = &obs.cnames[..obs.cnames.len().min(MAX_CNAMES)];
        for (i, &(c, ttl)) in cn.iter().enumerate() {
            min_ttl = min_ttl.min(sane_ttl(ttl));
            if c.eq_ignore_ascii_case(qname)
                || cn[..i].iter().any(|(p, _)| p.eq_ignore_ascii_case(c))
            {
                cname_loop = true;
            }
        }
        f.cname_depth = obs.cnames.len() as u32;
        f.cname_loop = cname_loop;
        f.min_ttl = if min_ttl == u32::MAX { 0 } else { min_ttl };

        let ns = &obs.ns[..obs.ns.len().min(MAX_NS)];
        let mut parking: Option<String> = None;
        for &(n, _) in ns {
            match self.lists.parking_ns(&norm_name(n)) {
                Some(false) => {
                    parking = Some(format!("NS {n} is a parking service"));
                    break;
                }
                Some(true) => f.parking_ns_weak = true,
                None => {}
            }
        }
        if parking.is_none() {
            if let Some((c, _)) = cn.iter().find(|(c, _)| {
                crate::net::suffix_lookup(&self.lists.parking_cname, &norm_name(c)).is_some()
            }) {
                parking = Some(format!("CNAME {c} is a parking service"));
            }
        }

        // ---- one visit to the domain's history: classify (addresses seen before keep their
        // classification, no MMDB work), parking by address, merge, window features
        let mut infos: Vec<IpInfo> = Vec::with_capacity(take);
        let classify_into = |infos: &mut Vec<IpInfo>, hist: Option<&DomainHistory>| {
            for &(ip, _) in &obs.addrs[..take] {
                let key = ip_key(ip);
                if infos.iter().any(|i| i.key == key) {
                    continue;
                }
                let known = hist.and_then(|h| h.ips.iter().find(|s| s.key == key));
                infos.push(match known {
                    Some(s) => IpInfo {
                        key,
                        asn: s.asn,
                        cc: s.cc,
                        flags: s.flags,
                    },
                    None => self.classify(ip),
                });
            }
        };
        let parking_by_ip = |infos: &[IpInfo]| -> Option<String> {
            let parked_ips = infos.iter().filter(|i| i.flags & F_PARKING != 0).count();
            (parked_ips * 2 > infos.len()).then(|| {
                let i = infos.iter().find(|i| i.flags & F_PARKING != 0).unwrap();
                format!("answer {} is a parking-service address", key_to_ip(i.key))
            })
        };
        let mut move_flag = None;
        if !obs.addrs.is_empty() || !obs.ns.is_empty() {
            let mut guard = self.history.shard(qname).lock();
            let mut scratch;
            // A domain seen for the first time has no addresses to classify yet.
            let fresh = || DomainHistory {
                class_gen: self.class_gen,
                ..Default::default()
            };
            let h: &mut DomainHistory = if record {
                if guard.get_mut(qname).is_none() {
                    guard.put(qname.into(), fresh());
                }
                guard.get_mut(qname).unwrap()
            } else {
                scratch = guard.peek(qname).cloned().unwrap_or_else(fresh);
                &mut scratch
            };
            if h.class_gen != self.class_gen {
                self.reclassify(h);
            }
            classify_into(&mut infos, Some(h));
            if parking.is_none() {
                parking = parking_by_ip(&infos);
            }
            move_flag = self.update_history(
                h,
                &infos,
                ns,
                obs.ns_addrs,
                now,
                f.min_ttl,
                parking.is_some(),
                &mut f,
            );
            drop(guard);
        }
        let parked = parking.is_some();
        f.parking = parking;
        {
            let mut v: Vec<u64> = if f.prefix_only {
                infos.iter().map(|i| net16(i.key)).collect()
            } else {
                infos.iter().map(|i| i.asn as u64).collect()
            };
            f.answer_asns = distinct_entropy(&mut v).0;
        }

        // ---- CDN / pool context
        f.rr_pool =
            self.lists.is_rr_pool(qname) || cn.iter().any(|(c, _)| self.lists.is_rr_pool(c));
        let mut cdn: Option<&str> = self.lists.cdn_by_name(qname);
        if cdn.is_none() {
            cdn = cn
                .iter()
                .find_map(|(c, _)| self.lists.cdn_by_name(&norm_name(c)));
        }
        if cdn.is_none() && !infos.is_empty() {
            let on_cdn = infos.iter().filter(|i| i.flags & F_CDN != 0).count();
            if on_cdn * 2 >= infos.len() {
                cdn = infos.iter().find_map(|i| self.lists.cdn_by_ip(i.key));
            }
        }
        f.cdn = cdn.map(str::to_string);

        // ---- IOC policy (all addresses up to the IOC cap, CNAME chain, NS names)
        let mut finding = self.ioc_check(qname, obs, cn, ns, &infos, parked, &mut f);

        // ---- scores
        let n_asn_eff = if f.prefix_only {
            f.distinct_16
        } else {
            f.distinct_asns
        };
        f.holz_score = crate::holz_score(f.distinct_ips, n_asn_eff);
        f.flux_score = flux_formula(
            f.distinct_ips,
            n_asn_eff,
            f.country_entropy,
            f.residential_share,
            f.window_min_ttl,
            f.growth,
        );
        let ns_asn_eff = f.ns_asns; // ASNs, or /16s in prefix-only mode
        f.ns_flux_score = flux_formula(
            f.ns_ips,
            ns_asn_eff,
            0.0,
            f.ns_residential_share,
            f.ns_min_ttl,
            0.0,
        ) + if f.ns_new > 0 && f.lookups > 1 {
            0.3 * ((1 + f.ns_new) as f64).ln()
        } else {
            0.0
        };

        let exempt = f.cdn.is_some() || f.rr_pool || parked;
        if finding.is_none() && !exempt {
            // diversity must be seen in one answer, or be sustained churn (not one migration)
            let sustained = f.answer_asns >= self.cfg.min_flux_asns
                || f.churn_lookups >= 2
                || (f.churn_lookups >= 1 && n_asn_eff > self.cfg.min_flux_asns);
            // CDN-like packing: edge nodes share /24s, flux agents almost never do
            let spread_out = (f.distinct_ips as f64) < 1.8 * f.distinct_24.max(1) as f64;
            let a_flux = f.flux_score >= self.cfg.flux_threshold
                && sustained
                && spread_out
                && n_asn_eff >= self.cfg.min_flux_asns
                && f.residential_share >= self.cfg.min_residential_share;
            let ns_flux = f.ns_flux_score >= self.cfg.double_flux_threshold
                && ns_asn_eff >= self.cfg.min_flux_asns
                && f.ns_residential_share >= self.cfg.min_residential_share;
            if ns_flux || (a_flux && f.ns_new >= 3) {
                finding = Some(Finding::new(FindingKind::DoubleFlux, f.flux_score.max(f.ns_flux_score), format!(
                        "double flux: NS side {} names ({} new) on {} IPs in {} {}, {:.0}% residential, NS TTL {} (ns score {:.2}); A side {} IPs in {} {} (score {:.2})",
                        f.ns_names, f.ns_new, f.ns_ips, ns_asn_eff, if f.prefix_only { "/16s" } else { "ASNs" },
                        f.ns_residential_share * 100.0, f.ns_min_ttl, f.ns_flux_score,
                        f.distinct_ips, n_asn_eff, if f.prefix_only { "/16s" } else { "ASNs" }, f.flux_score
                    )));
            } else if a_flux {
                finding = Some(Finding::new(FindingKind::FastFlux, f.flux_score, format!(
                        "fast flux: {} IPs in {} {} / {} countries over {} lookup(s), {:.0}% residential, min TTL {} (score {:.2} >= {:.2}; Holz {:.1})",
                        f.distinct_ips, n_asn_eff, if f.prefix_only { "/16s" } else { "ASNs" }, f.distinct_countries, f.lookups,
                        f.residential_share * 100.0, f.window_min_ttl, f.flux_score, self.cfg.flux_threshold, f.holz_score
                    )));
            }
        }
        if finding.is_none() {
            if let Some(detail) = move_flag {
                let onto_hosting =
                    f.cdn.is_some() || infos.iter().all(|i| i.flags & F_HOSTING != 0);
                finding = Some(Finding::new(
                    FindingKind::ParkingMove,
                    if onto_hosting { 0.4 } else { 0.7 },
                    detail,
                ));
            }
        }
        let holz = f.holz_score;
        Assessment {
            finding,
            parked,
            features: f,
            holz_score: holz,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn ioc_check(
        &self,
        qname: &str,
        obs: &Observation<'_>,
        cn: &[(&str, u32)],
        ns: &[(&str, u32)],
        infos: &[IpInfo],
        parked: bool,
        f: &mut FluxFeatures,
    ) -> Option<Finding> {
        if self.iocs.is_empty() {
            return None;
        }
        let chain = |upto: usize| -> String {
            if cn.is_empty() {
                String::new()
            } else {
                let mut s = format!(" via CNAME chain {qname}");
                for (c, _) in &cn[..upto.min(cn.len())] {
                    s.push_str(" -> ");
                    s.push_str(c);
                }
                s
            }
        };
        // A hit on shared infrastructure or from a list on trial is kept while the rest is
        // checked: a hit that is neither (a listed CNAME target behind a listed popular name, a
        // dedicated address beside a CDN edge, a trusted list's entry) decides.
        let mut weak_hit: Option<Finding> = None;
        macro_rules! hit {
            ($finding:expr) => {{
                let finding: Finding = $finding;
                if finding.shared.is_none() && !finding.trial {
                    return Some(finding);
                }
                weak_hit.get_or_insert(finding);
            }};
        }
        // A listed domain (the name, a CNAME target, a name server), shared when the entry is.
        let domain_hit = |d: &str, src: &crate::ioc::IocSource, score: f64, detail: String| {
            Finding::new(FindingKind::IocDomain, score, detail)
                .on_shared(self.shared_listing(d))
                .on_trial(src)
        };
        if let Some((d, src)) = self.iocs.domain(qname) {
            hit!(domain_hit(
                d,
                src,
                1.0,
                format!("name {qname} is listed as {d} (ioc list {src})")
            ));
        }
        for (i, (c, _)) in cn.iter().enumerate() {
            let c = norm_name(c);
            if let Some((d, src)) = self.iocs.domain(&c) {
                hit!(domain_hit(
                    d,
                    src,
                    1.0,
                    format!(
                        "CNAME target {c} is listed as {d}{} (ioc list {src})",
                        chain(i + 1)
                    )
                ));
            }
        }
        for (n, _) in ns {
            let n = norm_name(n);
            if let Some((d, src)) = self.iocs.domain(&n) {
                hit!(domain_hit(
                    d,
                    src,
                    0.9,
                    format!("name server {n} is listed as {d} (ioc list {src})")
                ));
            }
        }
        let limit = obs.addrs.len().min(self.cfg.max_ioc_checks_per_answer);
        if obs.addrs.len() > limit {
            f.truncated = true;
        }
        let is_parking_ip = |k: u128| parked && self.lists.parking_ips.contains(k);
        for &(ip, _) in &obs.addrs[..limit] {
            let k = ip_key(ip);
            if let Some((src, cidr)) = self.iocs.ip(k) {
                if is_parking_ip(k) || self.lists.parking_ips.contains(k) {
                    f.ioc_suppressed.get_or_insert_with(|| {
                        format!("{ip} listed ({src}) but is a parking-service address")
                    });
                    continue;
                }
                hit!(Finding::new(
                    FindingKind::IocIp,
                    1.0,
                    format!(
                        "answer {ip}{}{} (ioc list {src})",
                        if cidr {
                            " in a listed range"
                        } else {
                            " is listed"
                        },
                        chain(cn.len())
                    )
                )
                .on_shared(self.shared_address(qname, ip, cn))
                .on_trial(src));
            }
        }
        if self.iocs.has_asns() {
            // ASN indicators are broad (a bulletproof hoster also rents VPSs to NTP-pool
            // volunteers): they block when at least half of the answer lands in listed ASNs.
            let mut hit: Option<(&IpInfo, &crate::ioc::IocSource)> = None;
            let mut listed = 0usize;
            for i in infos {
                if i.asn == 0 {
                    continue;
                }
                if let Some(src) = self.iocs.asn(i.asn) {
                    if i.flags & F_PARKING != 0 {
                        f.ioc_suppressed.get_or_insert_with(|| {
                            format!(
                                "{} in AS{} listed ({src}) but is a parking-service address",
                                key_to_ip(i.key),
                                i.asn
                            )
                        });
                        continue;
                    }
                    listed += 1;
                    hit.get_or_insert((i, src));
                }
            }
            if let Some((i, src)) = hit {
                let ip = key_to_ip(i.key);
                if listed * 2 < infos.len() {
                    f.ioc_suppressed.get_or_insert_with(|| format!("{listed} of {} answers in listed ASNs, e.g. {ip} in AS{} ({src}): minority of a pool", infos.len(), i.asn));
                } else {
                    let org = self
                        .geo
                        .asn_org(ip)
                        .map(|o| format!(" {o}"))
                        .unwrap_or_default();
                    hit!(Finding::new(
                        FindingKind::IocAsn,
                        0.9,
                        format!(
                            "answer {ip} in AS{}{org}{} (ioc list {src})",
                            i.asn,
                            chain(cn.len())
                        )
                    )
                    .on_shared(self.shared_address(qname, ip, cn))
                    .on_trial(src));
                }
            }
        }
        weak_hit
    }

    /// Why an IOC domain entry covers shared infrastructure, if it does: a listed public suffix
    /// covers every site registered under it, a listed host of a popular site or public web
    /// service (`docs.google.com`) serves all its users, and so does a public web service
    /// listed whole (`pastebin.com`). A site that is only popular, listed whole, is not shared:
    /// a domain of the 2014/15 rankings that expired and was registered again by an attacker
    /// looks like that. A tenant's own registrable domain under a private suffix
    /// (`evil.blogspot.com`) is not shared either.
    fn shared_listing(&self, listed: &str) -> Option<String> {
        let Some(reg) = psl::domain_str(listed) else {
            return Some(format!(
                "the listed entry {listed} is a public suffix, so it covers every site registered under it"
            ));
        };
        match self.lists.shared_domains.get(reg) {
            Some(true) => Some(format!(
                "the listed entry {listed} is part of {reg}, a public web service whose users host their own content"
            )),
            Some(false) if listed != reg => Some(format!(
                "the listed entry {listed} is a host of {reg}, a popular site that serves many users"
            )),
            _ => None,
        }
    }

    /// Why an IOC address or ASN hit for `qname` lands on shared infrastructure, if it does:
    /// the name is a popular site or public web service (a listed address serving it is far
    /// likelier a shared host or a stale listing than the site itself), the address is a CDN /
    /// WAF edge, or the name is served through one (its CNAME chain). Only asked on a hit.
    fn shared_address(&self, qname: &str, ip: IpAddr, cn: &[(&str, u32)]) -> Option<String> {
        if let Some(reg) =
            psl::domain_str(qname).filter(|r| self.lists.shared_domains.contains_key(*r))
        {
            return Some(format!(
                "{reg} is a popular site or public web service, so a listed address serving it is far likelier a shared host or a stale listing"
            ));
        }
        if let Some(p) = self.lists.edge_by_ip(ip_key(ip)) {
            return Some(format!(
                "{ip} is a {p} edge address, shared by many unrelated sites"
            ));
        }
        for (c, _) in cn {
            let c = norm_name(c);
            if let Some(p) = self.lists.edge_by_name(&c) {
                return Some(format!(
                    "{qname} is served through {p} ({c}), whose edge addresses are shared by many unrelated sites"
                ));
            }
        }
        None
    }

    /// Classify a history entry's addresses with this analyser's MMDBs and lists (the entry
    /// was classified by an earlier analyser, or restored from a snapshot), and bring it within
    /// this config's caps (most recently seen kept).
    fn reclassify(&self, h: &mut DomainHistory) {
        let cap_ns = self.cfg.max_ns_per_domain.max(1);
        for (v, cap) in [
            (&mut h.ips, self.cfg.max_ips_per_domain.max(1)),
            (&mut h.ns_ips, cap_ns * 2),
        ] {
            if v.len() > cap {
                v.sort_unstable_by_key(|s| std::cmp::Reverse(s.last));
                v.truncate(cap);
            }
            for s in v.iter_mut() {
                let i = self.classify(key_to_ip(s.key));
                (s.asn, s.cc, s.flags) = (i.asn, i.cc, i.flags);
            }
        }
        if h.ns_names.len() > cap_ns {
            h.ns_names.sort_unstable_by_key(|e| std::cmp::Reverse(e.1));
            h.ns_names.truncate(cap_ns);
        }
        h.class_gen = self.class_gen;
    }

    /// Merge this answer into the history, prune the window, fill the window features.
    /// Returns the parking-move detail if the domain just left parking for fresh addresses.
    #[allow(clippy::too_many_arguments)]
    fn update_history(
        &self,
        h: &mut DomainHistory,
        infos: &[IpInfo],
        ns: &[(&str, u32)],
        ns_addrs: &[IpAddr],
        now: u32,
        min_ttl: u32,
        parked: bool,
        f: &mut FluxFeatures,
    ) -> Option<String> {
        let horizon = now.saturating_sub(self.cfg.window_secs.min(u32::MAX as u64) as u32);
        // prune
        h.lookups.retain(|&(t, _, _)| t >= horizon);
        h.ips.retain(|s| s.last >= horizon);
        h.ns_ips.retain(|s| s.last >= horizon);
        h.ns_names.retain(|&(_, t)| t >= horizon);
        let first_lookup = h.lookups.is_empty() && h.ips.is_empty();
        if !infos.is_empty() || !ns.is_empty() {
            if h.lookups.len() >= MAX_LOOKUPS_KEPT {
                h.lookups.remove(0);
            }
            h.lookups.push((now, min_ttl, false));
        }
        // addresses
        let was_parked_recently = h.parked_last != 0
            && now.saturating_sub(h.parked_last) as u64 <= self.cfg.parking_memory_secs;
        let mut new_ips = 0u32;
        for i in infos {
            match h.ips.iter_mut().find(|s| s.key == i.key) {
                Some(s) => s.last = s.last.max(now),
                None => {
                    new_ips += 1;
                    if h.ips.len() >= self.cfg.max_ips_per_domain {
                        // evict the least recently seen address
                        let (idx, _) = h
                            .ips
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, s)| s.last)
                            .unwrap();
                        h.ips.swap_remove(idx);
                    }
                    h.ips.push(Seen {
                        key: i.key,
                        last: now,
                        asn: i.asn,
                        cc: i.cc,
                        flags: i.flags,
                    });
                }
            }
        }
        if new_ips > 0 && !first_lookup {
            if let Some(l) = h.lookups.last_mut() {
                l.2 = true;
            }
        }
        // name servers
        let cap_ns = self.cfg.max_ns_per_domain.max(1);
        let mut ns_new = 0u32;
        let mut ns_ttl = u32::MAX;
        for &(n, ttl) in ns {
            ns_ttl = ns_ttl.min(sane_ttl(ttl));
            let hsh = fx(&norm_name(n));
            match h.ns_names.iter_mut().find(|(x, _)| *x == hsh) {
                Some(e) => e.1 = now,
                None => {
                    ns_new += 1;
                    if h.ns_names.len() >= cap_ns {
                        let (idx, _) = h
                            .ns_names
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, e)| e.1)
                            .unwrap();
                        h.ns_names.swap_remove(idx);
                    }
                    h.ns_names.push((hsh, now));
                }
            }
        }
        if ns_ttl != u32::MAX {
            h.ns_min_ttl = if first_lookup || h.ns_min_ttl == 0 {
                ns_ttl
            } else {
                h.ns_min_ttl.min(ns_ttl)
            };
        }
        for &ip in ns_addrs.iter().take(cap_ns * 2) {
            let key = ip_key(ip);
            match h.ns_ips.iter_mut().find(|s| s.key == key) {
                Some(s) => s.last = now,
                None => {
                    let i = self.classify(ip);
                    if h.ns_ips.len() >= cap_ns * 2 {
                        let (idx, _) = h
                            .ns_ips
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, s)| s.last)
                            .unwrap();
                        h.ns_ips.swap_remove(idx);
                    }
                    h.ns_ips.push(Seen {
                        key,
                        last: now,
                        asn: i.asn,
                        cc: i.cc,
                        flags: i.flags,
                    });
                }
            }
        }

        // features
        let mut buf = Vec::with_capacity(h.ips.len().max(h.ns_ips.len()));
        let a = side_stats(&h.ips, &mut buf);
        f.lookups = h.lookups.len() as u32;
        f.distinct_ips = a.ips;
        f.distinct_24 = a.n24;
        f.distinct_16 = a.n16;
        f.distinct_asns = a.asns;
        f.distinct_countries = a.ccs;
        f.asn_entropy = a.asn_h;
        f.country_entropy = a.cc_h;
        f.hosting_share = a.hosting;
        f.residential_share = a.residential;
        f.institutional_share = a.institutional;
        f.window_min_ttl = h
            .lookups
            .iter()
            .map(|&(_, t, _)| t)
            .min()
            .unwrap_or(f.min_ttl);
        f.churn_lookups = h.lookups.iter().skip(1).filter(|l| l.2).count() as u32;
        f.new_ips = new_ips;
        f.growth = if first_lookup || infos.is_empty() {
            0.0
        } else {
            new_ips as f64 / infos.len() as f64
        };
        f.ips_per_lookup = if f.lookups > 0 {
            a.ips as f64 / f.lookups as f64
        } else {
            0.0
        };
        let n = side_stats(&h.ns_ips, &mut buf);
        f.ns_names = h.ns_names.len() as u32;
        f.ns_new = if first_lookup { 0 } else { ns_new };
        f.ns_ips = n.ips;
        f.ns_asns = if f.prefix_only { n.n16 } else { n.asns };
        f.ns_countries = n.ccs;
        f.ns_distinct_24 = n.n24;
        f.ns_distinct_16 = n.n16;
        f.ns_hosting_share = n.hosting;
        f.ns_residential_share = n.residential;
        f.ns_min_ttl = h.ns_min_ttl;

        // parking state
        if parked {
            h.parked_last = now;
            h.left_parking_at = 0;
            None
        } else if was_parked_recently && !infos.is_empty() {
            if h.left_parking_at == 0 {
                h.left_parking_at = now;
            }
            if now.saturating_sub(h.left_parking_at) as u64 <= self.cfg.parking_move_hold_secs {
                let first = key_to_ip(infos[0].key);
                let asn = if infos[0].asn != 0 {
                    format!(" (AS{})", infos[0].asn)
                } else {
                    String::new()
                };
                Some(format!(
                    "left parking {}s ago for fresh address {first}{asn}{}",
                    now.saturating_sub(h.parked_last),
                    if infos[0].cc != 0 {
                        format!(" in {}", cc_str(infos[0].cc))
                    } else {
                        String::new()
                    }
                ))
            } else {
                None
            }
        } else {
            None
        }
    }
}

#[cfg(test)]
#[path = "analyzer_tests.rs"]
mod tests;
