use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What the pipeline does with a finding of a given kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Pass the answer, record nothing special.
    Allow,
    /// Pass the answer, log the finding.
    Log,
    /// Replace the answer (block / sinkhole, as the server's block action says).
    Block,
}

/// Per-finding actions of the answer stage (`[intel.actions]` in the server config).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntelActions {
    pub fast_flux: Action,
    pub double_flux: Action,
    pub ioc_ip: Action,
    pub ioc_asn: Action,
    pub ioc_domain: Action,
    /// An IOC hit on shared infrastructure (CDN / WAF edge address, popular site or public web
    /// service, a listed public suffix), whatever its kind. `log` by default: the hit is
    /// recorded with its reason but the name answers, since blocking it would cut off every
    /// other site or user of that infrastructure (and clients are not scored for it).
    pub ioc_shared: Action,
    pub parking_move: Action,
}

impl Default for IntelActions {
    fn default() -> Self {
        IntelActions {
            fast_flux: Action::Block,
            double_flux: Action::Block,
            ioc_ip: Action::Block,
            ioc_asn: Action::Block,
            ioc_domain: Action::Block,
            ioc_shared: Action::Log,
            parking_move: Action::Log,
        }
    }
}

/// Configuration of the answer-side stage. Every field has a default; see README.md.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntelConfig {
    /// Run the answer-side checks at all (the `dnsward` binary skips the stage when false).
    pub enabled: bool,
    /// MMDB with `autonomous_system_number` / `autonomous_system_organization`
    /// (GeoLite2-ASN layout). None = prefix-based features only.
    pub asn_mmdb: Option<PathBuf>,
    /// MMDB with `country.iso_code` (GeoIP2/GeoLite2 Country/City) or flat `country_code`.
    pub country_mmdb: Option<PathBuf>,
    /// When an MMDB is missing or corrupt: false = error at start (default); true = log-free
    /// degrade to prefix-only features (the error is kept in [`crate::AnswerAnalyzer::warnings`]).
    pub degrade_on_mmdb_error: bool,
    /// IOC list files (`ip|cidr|asn|domain value context` lines).
    pub ioc_files: Vec<PathBuf>,
    /// IOC lists on trial (a feed not trusted yet): their hits are recorded with the reason and
    /// the name is answered; clients are not scored for them. An indicator also in `ioc_files`
    /// takes that list's action.
    pub ioc_trial_files: Vec<PathBuf>,
    /// An IOC file last modified longer ago than this (days) is warned about at start and on
    /// every reload: a feed that stopped updating keeps listing addresses that have since been
    /// reassigned to innocent hosts. 0 = never warn. `/metrics` shows each list's age.
    pub ioc_max_age_days: u64,
    /// LRU capacity: domains with an answer history.
    pub max_domains: usize,
    /// Sliding window of the answer history, seconds.
    pub window_secs: u64,
    /// Cap on remembered addresses per domain (oldest evicted first).
    pub max_ips_per_domain: usize,
    /// Cap on remembered NS names / NS addresses per domain.
    pub max_ns_per_domain: usize,
    /// Addresses of one answer that enter history and features (the rest are only IOC-checked).
    pub max_addrs_per_answer: usize,
    /// Addresses of one answer that are IOC-checked at all (answers beyond are truncated).
    pub max_ioc_checks_per_answer: usize,
    /// Fast-flux score threshold (see README for the formula).
    pub flux_threshold: f64,
    /// Minimum distinct ASNs (distinct /16s without an ASN database) before flux is flagged.
    pub min_flux_asns: u32,
    /// Minimum share of non-hosting addresses before flux is flagged.
    pub min_residential_share: f64,
    /// Name-server side score threshold for double flux.
    pub double_flux_threshold: f64,
    /// Use the built-in CDN / hosting / parking lists compiled into the crate.
    pub use_builtin_lists: bool,
    /// Extra CDN / load-balancer CNAME suffixes (never flagged as flux; their addresses count
    /// as shared edges for IOC hits).
    pub extra_cdn_suffixes: Vec<String>,
    /// Extra registrable domains of shared sites and public web services (beside the built-in
    /// `shared-domains.txt`): IOC address hits for their names, and IOC entries inside them,
    /// take `actions.ioc_shared`.
    pub extra_shared_domains: Vec<String>,
    /// Round-robin pool suffixes never flagged as flux (default: NTP pool).
    pub rr_pool_suffixes: Vec<String>,
    /// Extra ASNs to treat as hosting (not residential).
    pub extra_hosting_asns: Vec<u32>,
    /// How long a domain is remembered as parked.
    pub parking_memory_secs: u64,
    /// How long after leaving parking a domain is still flagged `parking_move`.
    pub parking_move_hold_secs: u64,
    /// History shards (each a mutex-protected LRU).
    pub shards: usize,
    pub actions: IntelActions,
}

impl Default for IntelConfig {
    fn default() -> Self {
        IntelConfig {
            enabled: true,
            asn_mmdb: None,
            country_mmdb: None,
            degrade_on_mmdb_error: false,
            ioc_files: Vec::new(),
            ioc_trial_files: Vec::new(),
            ioc_max_age_days: 30,
            max_domains: 100_000,
            window_secs: 6 * 3600,
            max_ips_per_domain: 48,
            max_ns_per_domain: 16,
            max_addrs_per_answer: 32,
            max_ioc_checks_per_answer: 4096,
            flux_threshold: 1.0,
            min_flux_asns: 3,
            min_residential_share: 0.5,
            double_flux_threshold: 1.0,
            use_builtin_lists: true,
            extra_cdn_suffixes: Vec::new(),
            extra_shared_domains: Vec::new(),
            rr_pool_suffixes: crate::lists::DEFAULT_RR_POOL_SUFFIXES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            extra_hosting_asns: Vec::new(),
            parking_memory_secs: 30 * 86400,
            parking_move_hold_secs: 86400,
            shards: 16,
            actions: IntelActions::default(),
        }
    }
}
