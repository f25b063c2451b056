//! Infected-client scoring: per client a decaying score built from pieces of evidence.
//!
//! Evidence kinds and weights (the default threshold for "suspected" is 50):
//! - `dga_burst` (60): at least `dga_burst_min_names` distinct DGA-blocked names within
//!   `dga_burst_window_secs`, most of them NXDOMAIN. Single DGA blocks add nothing by themselves.
//! - `flux_or_ioc_lookup` (15): a name blocked as flux or IOC (each name counts once an hour).
//!   IOC hits on shared infrastructure (category `shared`: a CDN edge address, a popular site
//!   or public web service) add nothing: the clients reaching a shared host are mostly its
//!   ordinary users (FireEye, "CnC false positives": shared servers and Web 2.0 sites).
//!   Matches of lists on trial (`[lists] trial`, `[intel] ioc_trial_files`) add nothing either.
//! - `dnsbl_self_check` (30): a lookup of the client's own address in a DNSBL (each zone once an
//!   hour) — what spambots do to learn whether they are listed. Two zones brand a host.
//! - `dnsbl_lookup` (4): DNSBL lookups of other addresses by a host that is not a mail server.
//! - `sinkhole_hit` (20): the client connected to the sinkhole (each port/host once per 10 min).
//!
//! Configured mail servers (`mail_servers`) and `unscored_clients` (a malware lab, a security
//! scanner) get no evidence from their lookups at all: a spam filter looks up the DNSBL entries
//! and the names in the mail it scans, a lab looks up malicious names on purpose. Sinkhole hits
//! count.
//!
//! No single lookup reaches the threshold. The score halves every `half_life`.

use crate::dnsbl::{canonical_ip, DnsblZones, ZoneKind};
use dnsward_policy::Category;
use ipnet::IpNet;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    DgaBurst,
    FluxOrIocLookup,
    DnsblSelfCheck,
    DnsblLookup,
    SinkholeHit,
}

impl EvidenceKind {
    pub const ALL: [EvidenceKind; 5] = [
        EvidenceKind::DgaBurst,
        EvidenceKind::FluxOrIocLookup,
        EvidenceKind::DnsblSelfCheck,
        EvidenceKind::DnsblLookup,
        EvidenceKind::SinkholeHit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EvidenceKind::DgaBurst => "dga_burst",
            EvidenceKind::FluxOrIocLookup => "flux_or_ioc_lookup",
            EvidenceKind::DnsblSelfCheck => "dnsbl_self_check",
            EvidenceKind::DnsblLookup => "dnsbl_lookup",
            EvidenceKind::SinkholeHit => "sinkhole_hit",
        }
    }

    pub fn parse(s: &str) -> Option<EvidenceKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn weight(self) -> f64 {
        match self {
            EvidenceKind::DgaBurst => 60.0,
            EvidenceKind::FluxOrIocLookup => 15.0,
            EvidenceKind::DnsblSelfCheck => 30.0,
            EvidenceKind::DnsblLookup => 4.0,
            EvidenceKind::SinkholeHit => 20.0,
        }
    }

    /// Seconds during which the same (kind, key) counts only once.
    fn dedup_secs(self) -> f64 {
        match self {
            EvidenceKind::DgaBurst => 0.0,
            EvidenceKind::FluxOrIocLookup | EvidenceKind::DnsblSelfCheck => 3600.0,
            EvidenceKind::DnsblLookup | EvidenceKind::SinkholeHit => 600.0,
        }
    }
}

/// One piece of evidence against a client.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Evidence {
    /// Unix time in seconds.
    #[serde(skip)]
    pub at: f64,
    /// RFC 3339 UTC.
    pub time: String,
    pub kind: EvidenceKind,
    pub weight: f64,
    /// What was seen (names, zone, port...).
    pub detail: String,
}

impl Evidence {
    pub fn new(at: f64, kind: EvidenceKind, weight: f64, detail: String) -> Self {
        Evidence {
            at,
            time: crate::time::rfc3339_us((at * 1e6) as i64),
            kind,
            weight,
            detail,
        }
    }
}

/// Scoring parameters (from [`crate::AdminConfig`]).
#[derive(Clone, Debug)]
pub struct ScoringParams {
    pub half_life_secs: f64,
    pub threshold: f64,
    pub burst_min_names: usize,
    pub burst_window_secs: f64,
    pub burst_min_nx_ratio: f64,
    pub max_clients: usize,
    /// `mail_servers` and `unscored_clients`: their lookups are no evidence.
    pub unscored: Vec<IpNet>,
}

impl ScoringParams {
    pub fn from_config(c: &crate::AdminConfig) -> Self {
        ScoringParams {
            half_life_secs: c.client_score_half_life_secs as f64,
            threshold: c.suspect_threshold,
            burst_min_names: c.dga_burst_min_names as usize,
            burst_window_secs: c.dga_burst_window_secs as f64,
            burst_min_nx_ratio: c.dga_burst_min_nxdomain_ratio,
            max_clients: c.max_tracked_clients,
            unscored: c
                .mail_servers
                .iter()
                .chain(&c.unscored_clients)
                .copied()
                .collect(),
        }
    }
}

/// What the scorer needs from one query event.
pub struct Observation<'a> {
    pub at: f64,
    pub client: IpAddr,
    pub qname: &'a str,
    /// `Some` for blocks.
    pub category: Option<Category>,
    /// The block came from a list on trial (`[lists] trial`, `[intel] ioc_trial_files`).
    pub trial: bool,
    pub rcode: u8,
}

const MAX_RECENT_EVIDENCE: usize = 20;
const MAX_DEDUP_KEYS: usize = 256;
const MAX_WINDOW: usize = 512;

#[derive(Default)]
struct ClientState {
    score: f64,
    score_at: f64,
    first_seen: f64,
    last_seen: f64,
    dga_window: VecDeque<(f64, Box<str>, bool)>,
    dedup: HashMap<(EvidenceKind, Box<str>), f64>,
    recent: VecDeque<Evidence>,
    counts: HashMap<EvidenceKind, u64>,
}

impl ClientState {
    fn score_at(&self, now: f64, half_life: f64) -> f64 {
        let dt = (now - self.score_at).max(0.0);
        self.score * 0.5f64.powf(dt / half_life)
    }
}

/// A client as reported by the API.
#[derive(Clone, Debug, Serialize)]
pub struct ClientSummary {
    pub client: IpAddr,
    /// Current (decayed) score.
    pub score: f64,
    pub suspected: bool,
    pub first_seen: String,
    pub last_seen: String,
    /// Evidence counts by kind (since this process started tracking the client).
    pub evidence_counts: HashMap<&'static str, u64>,
    /// Most recent evidence, newest first.
    pub evidence: Vec<Evidence>,
}

/// The in-memory scorer (bounded number of clients).
pub struct Scorer {
    params: ScoringParams,
    zones: &'static DnsblZones,
    clients: HashMap<IpAddr, ClientState>,
}

impl Scorer {
    pub fn new(params: ScoringParams) -> Self {
        Scorer {
            params,
            zones: DnsblZones::builtin(),
            clients: HashMap::new(),
        }
    }

    pub fn params(&self) -> &ScoringParams {
        &self.params
    }

    fn is_unscored(&self, ip: IpAddr) -> bool {
        self.params.unscored.iter().any(|n| n.contains(&ip))
    }

    fn state(&mut self, client: IpAddr, at: f64) -> &mut ClientState {
        if !self.clients.contains_key(&client) && self.clients.len() >= self.params.max_clients {
            self.evict();
        }
        let st = self.clients.entry(client).or_insert_with(|| ClientState {
            score_at: at,
            first_seen: at,
            last_seen: at,
            ..Default::default()
        });
        if at > st.last_seen {
            st.last_seen = at;
        }
        st
    }

    /// Forget the least recently seen tenth of the clients.
    fn evict(&mut self) {
        let mut seen: Vec<(f64, IpAddr)> = self
            .clients
            .iter()
            .map(|(ip, s)| (s.last_seen, *ip))
            .collect();
        seen.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n = (seen.len() / 10).max(1);
        for (_, ip) in seen.into_iter().take(n) {
            self.clients.remove(&ip);
        }
    }

    /// Add evidence (already decided) to a client: used for new evidence and when restoring
    /// from the store. Returns false when deduplicated.
    pub fn add_evidence(&mut self, client: IpAddr, ev: Evidence, key: &str) -> bool {
        let half_life = self.params.half_life_secs;
        let st = self.state(client, ev.at);
        let dedup = ev.kind.dedup_secs();
        if dedup > 0.0 {
            let k = (ev.kind, Box::<str>::from(key));
            if let Some(&t) = st.dedup.get(&k) {
                if ev.at - t < dedup {
                    return false;
                }
            }
            if st.dedup.len() >= MAX_DEDUP_KEYS {
                let horizon = ev.at - 3600.0;
                st.dedup.retain(|_, t| *t >= horizon);
                if st.dedup.len() >= MAX_DEDUP_KEYS {
                    st.dedup.clear();
                }
            }
            st.dedup.insert(k, ev.at);
        }
        let now = ev.at.max(st.score_at);
        st.score = st.score_at(now, half_life) + ev.weight * 0.5f64.powf((now - ev.at) / half_life);
        st.score_at = now;
        *st.counts.entry(ev.kind).or_insert(0) += 1;
        st.recent.push_front(ev);
        st.recent.truncate(MAX_RECENT_EVIDENCE);
        true
    }

    /// Look at one event; returns new evidence (client, evidence) to persist.
    pub fn observe(&mut self, o: &Observation<'_>) -> Vec<(IpAddr, Evidence)> {
        let client = canonical_ip(o.client);
        // A mail server's spam filter looks up the names in the mail it scans (DGA names, flux
        // and IOC names, DNSBL entries): its lookups are no evidence (FireEye, "CnC false
        // positives"). A connection to the sinkhole still is.
        if self.is_unscored(client) {
            return Vec::new();
        }
        let mut out = Vec::new();
        // Lists on trial are not trusted yet: their matches are no evidence against a client.
        match o.category.filter(|_| !o.trial) {
            Some(Category::Dga) => {
                let p = self.params.clone();
                let st = self.state(client, o.at);
                let horizon = o.at - p.burst_window_secs;
                while st.dga_window.front().is_some_and(|(t, _, _)| *t < horizon) {
                    st.dga_window.pop_front();
                }
                if !st.dga_window.iter().any(|(_, n, _)| &**n == o.qname) {
                    if st.dga_window.len() >= MAX_WINDOW {
                        st.dga_window.pop_front();
                    }
                    st.dga_window
                        .push_back((o.at, o.qname.into(), o.rcode == 3));
                }
                let n = st.dga_window.len();
                if n >= p.burst_min_names {
                    let nx = st.dga_window.iter().filter(|(_, _, nx)| *nx).count();
                    if nx as f64 >= p.burst_min_nx_ratio * n as f64 {
                        let sample: Vec<&str> =
                            st.dga_window.iter().take(5).map(|(_, n, _)| &**n).collect();
                        let detail = format!(
                            "{n} distinct DGA-like names in {}s, {nx} NXDOMAIN (e.g. {})",
                            p.burst_window_secs,
                            sample.join(", ")
                        );
                        st.dga_window.clear();
                        let ev = Evidence::new(
                            o.at,
                            EvidenceKind::DgaBurst,
                            EvidenceKind::DgaBurst.weight(),
                            detail,
                        );
                        if self.add_evidence(client, ev.clone(), "") {
                            out.push((client, ev));
                        }
                    }
                }
            }
            Some(Category::Flux) | Some(Category::Ioc) => {
                let cat = o.category.map(|c| c.as_str()).unwrap_or("");
                let ev = Evidence::new(
                    o.at,
                    EvidenceKind::FluxOrIocLookup,
                    EvidenceKind::FluxOrIocLookup.weight(),
                    format!("{cat}: {}", o.qname),
                );
                if self.add_evidence(client, ev.clone(), o.qname) {
                    out.push((client, ev));
                }
            }
            Some(Category::Shared) | Some(Category::List) | Some(Category::Parking) | None => {}
        }
        if let Some((lookup, kind)) = self.zones.parse_lookup(o.qname) {
            let own = kind == ZoneKind::Ip && lookup.ip.map(canonical_ip) == Some(client);
            let (ek, key, detail) = if own {
                (
                    EvidenceKind::DnsblSelfCheck,
                    lookup.zone.to_string(),
                    format!("looked up its own address in {} ({})", lookup.zone, o.qname),
                )
            } else {
                (
                    EvidenceKind::DnsblLookup,
                    lookup.zone.to_string(),
                    format!("DNSBL lookup {} in {}", lookup.prefix, lookup.zone),
                )
            };
            let ev = Evidence::new(o.at, ek, ek.weight(), detail);
            if self.add_evidence(client, ev.clone(), &key) {
                out.push((client, ev));
            }
        }
        out
    }

    /// A connection to the sinkhole.
    pub fn sinkhole_hit(
        &mut self,
        at: f64,
        client: IpAddr,
        port: u16,
        host: Option<&str>,
        name: Option<&str>,
    ) -> Option<(IpAddr, Evidence)> {
        let client = canonical_ip(client);
        let mut detail = format!("connected to the sinkhole on port {port}");
        if let Some(h) = host.filter(|h| !h.is_empty()) {
            detail.push_str(&format!(", host/SNI {h}"));
        }
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            detail.push_str(&format!(", for {n}"));
        }
        let key = format!("{port}/{}", host.unwrap_or(""));
        let ev = Evidence::new(
            at,
            EvidenceKind::SinkholeHit,
            EvidenceKind::SinkholeHit.weight(),
            detail,
        );
        self.add_evidence(client, ev.clone(), &key)
            .then_some((client, ev))
    }

    fn summary(&self, ip: IpAddr, st: &ClientState, now: f64) -> ClientSummary {
        let score = st.score_at(now, self.params.half_life_secs);
        ClientSummary {
            client: ip,
            score: (score * 10.0).round() / 10.0,
            suspected: score >= self.params.threshold,
            first_seen: crate::time::rfc3339_us((st.first_seen * 1e6) as i64),
            last_seen: crate::time::rfc3339_us((st.last_seen * 1e6) as i64),
            evidence_counts: st.counts.iter().map(|(k, v)| (k.as_str(), *v)).collect(),
            evidence: st.recent.iter().cloned().collect(),
        }
    }

    /// Current score of a client (0 when unknown).
    pub fn score(&self, client: IpAddr, now: f64) -> f64 {
        self.clients
            .get(&canonical_ip(client))
            .map(|s| s.score_at(now, self.params.half_life_secs))
            .unwrap_or(0.0)
    }

    pub fn is_suspected(&self, client: IpAddr, now: f64) -> bool {
        self.score(client, now) >= self.params.threshold
    }

    pub fn client(&self, client: IpAddr, now: f64) -> Option<ClientSummary> {
        let ip = canonical_ip(client);
        self.clients.get(&ip).map(|s| self.summary(ip, s, now))
    }

    /// Clients with at least `min_score`, highest first.
    pub fn clients(&self, now: f64, min_score: f64, limit: usize) -> Vec<ClientSummary> {
        let mut v: Vec<(f64, IpAddr)> = self
            .clients
            .iter()
            .filter(|(_, s)| !s.recent.is_empty())
            .map(|(ip, s)| (s.score_at(now, self.params.half_life_secs), *ip))
            .filter(|(sc, _)| *sc >= min_score)
            .collect();
        v.sort_by(|a, b| b.0.total_cmp(&a.0));
        v.truncate(limit);
        v.into_iter()
            .map(|(_, ip)| self.summary(ip, &self.clients[&ip], now))
            .collect()
    }

    /// Clients at or above the threshold now.
    pub fn suspected_count(&self, now: f64) -> usize {
        self.clients
            .values()
            .filter(|s| s.score_at(now, self.params.half_life_secs) >= self.params.threshold)
            .count()
    }

    pub fn tracked(&self) -> usize {
        self.clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scorer() -> Scorer {
        let c = crate::AdminConfig {
            mail_servers: vec!["192.0.2.25/32".parse().unwrap()],
            unscored_clients: vec!["10.66.0.0/16".parse().unwrap()],
            ..Default::default()
        };
        Scorer::new(ScoringParams::from_config(&c))
    }

    fn obs<'a>(
        at: f64,
        ip: &str,
        name: &'a str,
        cat: Option<Category>,
        rcode: u8,
    ) -> Observation<'a> {
        Observation {
            at,
            client: ip.parse().unwrap(),
            qname: name,
            category: cat,
            trial: false,
            rcode,
        }
    }

    const T0: f64 = 1_800_000_000.0;

    #[test]
    fn one_stray_lookup_does_not_brand() {
        let ip: IpAddr = "10.0.0.5".parse().unwrap();
        for (name, cat) in [
            ("xkqjzpwvhrtb.com", Some(Category::Dga)),
            ("flux.example", Some(Category::Flux)),
            ("ioc.example", Some(Category::Ioc)),
            ("5.0.0.10.zen.spamhaus.org", None),
            ("9.9.9.9.zen.spamhaus.org", None),
        ] {
            let mut s = scorer();
            s.observe(&obs(T0, "10.0.0.5", name, cat, 3));
            assert!(!s.is_suspected(ip, T0), "{name} alone branded the host");
        }
        let mut s = scorer();
        s.sinkhole_hit(T0, ip, 443, Some("evil.example"), None);
        assert!(!s.is_suspected(ip, T0));
        // The same IOC name looked up over and over is still one piece of evidence.
        for i in 0..50 {
            s.observe(&obs(
                T0 + i as f64,
                "10.0.0.5",
                "ioc.example",
                Some(Category::Ioc),
                0,
            ));
        }
        assert!(!s.is_suspected(ip, T0 + 50.0));
    }

    #[test]
    fn dga_burst_brands_and_decays() {
        let mut s = scorer();
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let mut new = Vec::new();
        for i in 0..20 {
            let name = format!("q{i}zkxwvbnmplr.net");
            let rcode = if i % 5 == 0 { 0 } else { 3 };
            new.extend(s.observe(&obs(
                T0 + i as f64,
                "10.0.0.7",
                &name,
                Some(Category::Dga),
                rcode,
            )));
        }
        assert!(!new.is_empty());
        assert_eq!(new[0].1.kind, EvidenceKind::DgaBurst);
        assert!(s.is_suspected(ip, T0 + 20.0));
        let c = s.client(ip, T0 + 20.0).unwrap();
        assert!(c.suspected && c.score >= 50.0, "{c:?}");
        // Decay: after a few half-lives it is no longer suspected.
        let hl = s.params().half_life_secs;
        assert!(!s.is_suspected(ip, T0 + 20.0 + 3.0 * hl));
        assert!(s.score(ip, T0 + 20.0 + hl) < s.score(ip, T0 + 20.0));
    }

    #[test]
    fn dga_names_that_resolve_are_not_a_burst() {
        let mut s = scorer();
        let ip: IpAddr = "10.0.0.8".parse().unwrap();
        for i in 0..30 {
            let name = format!("cdn{i}x7f3k2.example");
            s.observe(&obs(
                T0 + i as f64,
                "10.0.0.8",
                &name,
                Some(Category::Dga),
                0,
            ));
        }
        assert!(!s.is_suspected(ip, T0 + 30.0));
        // Spread out over more than the window: no burst either.
        let mut s = scorer();
        for i in 0..30 {
            let name = format!("slow{i}qzxj.example");
            s.observe(&obs(
                T0 + i as f64 * 60.0,
                "10.0.0.8",
                &name,
                Some(Category::Dga),
                3,
            ));
        }
        assert!(!s.is_suspected(ip, T0 + 1800.0));
    }

    #[test]
    fn dnsbl_self_check_and_mail_exemption() {
        let mut s = scorer();
        let ip: IpAddr = "198.51.100.23".parse().unwrap();
        let a = s.observe(&obs(
            T0,
            "198.51.100.23",
            "23.100.51.198.zen.spamhaus.org",
            None,
            3,
        ));
        assert_eq!(a[0].1.kind, EvidenceKind::DnsblSelfCheck);
        assert!(!s.is_suspected(ip, T0));
        s.observe(&obs(
            T0 + 1.0,
            "198.51.100.23",
            "23.100.51.198.b.barracudacentral.org",
            None,
            3,
        ));
        assert!(s.is_suspected(ip, T0 + 1.0));
        // IPv4-mapped client address.
        let mut s = scorer();
        let e = s.observe(&obs(
            T0,
            "::ffff:198.51.100.23",
            "23.100.51.198.zen.spamhaus.org",
            None,
            3,
        ));
        assert_eq!(e[0].1.kind, EvidenceKind::DnsblSelfCheck);
        // IPv6 nibble form.
        let mut s = scorer();
        let v6: std::net::Ipv6Addr = "2001:db8::25".parse().unwrap();
        let nibbles: Vec<String> = v6
            .octets()
            .iter()
            .rev()
            .flat_map(|b| [b & 0xf, b >> 4])
            .map(|n| format!("{n:x}"))
            .collect();
        let q = format!("{}.zen.spamhaus.org", nibbles.join("."));
        let e = s.observe(&obs(T0, "2001:db8::25", &q, None, 3));
        assert_eq!(e[0].1.kind, EvidenceKind::DnsblSelfCheck);
        // A configured mail server doing the same is exempt.
        let mut s = scorer();
        for z in [
            "zen.spamhaus.org",
            "b.barracudacentral.org",
            "bl.spamcop.net",
        ] {
            let e = s.observe(&obs(T0, "192.0.2.25", &format!("25.2.0.192.{z}"), None, 3));
            assert!(e.is_empty());
        }
        assert_eq!(s.score("192.0.2.25".parse().unwrap(), T0), 0.0);
        // ...and so are the DGA, flux and IOC names its spam filter looks up in the mail it scans.
        for i in 0..10 {
            let dga = format!("x{i}qjzkvbwplrt.net");
            assert!(s
                .observe(&obs(T0, "192.0.2.25", &dga, Some(Category::Dga), 3))
                .is_empty());
        }
        assert!(s
            .observe(&obs(T0, "192.0.2.25", "c2.example", Some(Category::Ioc), 0))
            .is_empty());
        assert_eq!(s.score("192.0.2.25".parse().unwrap(), T0), 0.0);
        // A malware lab in unscored_clients looks up DGA names on purpose: no evidence; a
        // connection of its to the sinkhole still is.
        for i in 0..10 {
            let dga = format!("x{i}qjzkvbwplrt.net");
            assert!(s
                .observe(&obs(T0, "10.66.3.4", &dga, Some(Category::Dga), 3))
                .is_empty());
        }
        assert_eq!(s.score("10.66.3.4".parse().unwrap(), T0), 0.0);
        let hit = s.sinkhole_hit(T0, "10.66.3.4".parse().unwrap(), 443, None, None);
        assert_eq!(hit.map(|(_, e)| e.kind), Some(EvidenceKind::SinkholeHit));
        // Lookups of other addresses by a workstation: weak evidence.
        let mut s = scorer();
        let e = s.observe(&obs(T0, "10.1.1.1", "4.3.2.1.zen.spamhaus.org", None, 3));
        assert_eq!(e[0].1.kind, EvidenceKind::DnsblLookup);
        assert!(!s.is_suspected("10.1.1.1".parse().unwrap(), T0));
    }

    #[test]
    fn bounded_clients() {
        let c = crate::AdminConfig {
            max_tracked_clients: 100,
            ..Default::default()
        };
        let mut s = Scorer::new(ScoringParams::from_config(&c));
        for i in 0..1000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            s.sinkhole_hit(T0 + i as f64, ip, 80, None, None);
        }
        assert!(s.tracked() <= 100);
    }
}
