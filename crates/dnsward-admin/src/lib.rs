//! dnsward-admin: the operator side of dnsward.
//!
//! - [`EventStore`]: an [`dnsward_server::EventSink`] that copies events off the DNS path into a
//!   bounded queue; a writer thread batches them into SQLite (WAL, one transaction per batch),
//!   applies retention, scores clients and feeds the JSON-lines and dnstap streams.
//! - [`serve`]: the admin HTTP server (axum) — JSON API, `/metrics`, OpenAPI, web page.
//! - [`Histogram`]: lock-free latency histogram for the engine to fill.
//! - Client scoring ([`scoring`]) with DNSBL self-check detection ([`dnsbl`]).

pub mod api;
pub mod config;
pub mod dnsbl;
mod dnsnames;
pub mod dnstap;
mod error;
/// The latency histogram lives in dnsward-server (the engine fills it).
pub mod hist {
    pub use dnsward_server::hist::*;
}
mod listener;
pub mod metrics;
pub mod qlog;
pub mod scoring;
pub mod store;
pub mod stream;
pub mod time;

pub use api::{
    router, serve, AdminBackend, AdminStats, AdminToken, IocListStat, RunningAdmin, MAX_LIMIT,
};
pub use config::{AdminConfig, DnstapTarget};
pub use error::AdminError;
pub use hist::Histogram;
pub use scoring::{ClientSummary, Evidence, EvidenceKind};
pub use store::{BlockRow, BlocksQuery, EventStore, ListKind, QueryRow, RuleRow, TeeSink};
