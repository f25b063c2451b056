//! Answer-side detection for dnsward.
//!
//! After the upstream answer arrives, [`AnswerAnalyzer::observe`] looks at the A/AAAA
//! addresses, the CNAME chain and the NS set and returns an [`Assessment`]:
//!
//! * IP intelligence (ASN, organisation, country) from MMDB files ([`geo`]),
//! * a per-domain sliding-window answer history (LRU, memory-capped; [`AnswerHistory`], kept
//!   across reloads and, as a snapshot, across restarts),
//! * a fast-flux / double-flux score (with the Holz et al. 2008 flux score as a baseline),
//! * response-IP policy from IOC list files ([`ioc`]), CNAME chains included,
//! * parking detection (parked answers are labelled, not blocked; leaving parking for a
//!   fresh IP is flagged).
//!
//! [`eval`] replays JSON-lines answer streams through the same code; [`gen`] writes
//! realistic streams from a real ASN database. The library does no networking.
mod analyzer;
mod config;
pub mod error;
pub mod eval;
pub mod gen;
pub mod geo;
mod history;
pub mod ioc;
pub mod lists;
pub mod net;

pub use analyzer::{
    AnalyzerStats, AnswerAnalyzer, Assessment, Finding, FindingKind, FluxFeatures, Observation,
};
pub use config::{Action, IntelActions, IntelConfig};
pub use error::IntelError;
pub use history::AnswerHistory;
pub use ioc::IocListInfo;

/// The classic flux score of Holz et al., "Measuring and Detecting Fast-Flux Service
/// Networks" (NDSS 2008): `1.32·nA + 18.54·nASN − 142.38`, flux when `> 0`. Reported as a
/// baseline only.
pub fn holz_score(n_a: u32, n_asn: u32) -> f64 {
    1.32 * n_a as f64 + 18.54 * n_asn as f64 - 142.38
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
