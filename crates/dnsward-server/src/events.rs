//! Query events: what the engine reports for every blocked (or logged) query, to logs, the
//! admin store and metrics. The verdict travels whole, so every consumer can say why.

use dnsward_policy::Verdict;
use std::net::IpAddr;
use std::time::SystemTime;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The pipeline blocked (or in monitor mode, logged) the query.
    Blocked,
    /// Answered normally (only reported when the sink asks for all queries).
    Answered,
}

/// One query as seen by the engine.
#[derive(Debug)]
pub struct QueryEvent<'a> {
    pub time: SystemTime,
    pub client: IpAddr,
    pub qname: &'a str,
    pub qtype: u16,
    pub verdict: &'a Verdict,
    /// RCODE sent to the client.
    pub rcode: u8,
    pub from_cache: bool,
    pub outcome: Outcome,
}

/// An answered (unblocked, not monitored) query, with its name still in wire form: what the
/// engine hands to [`EventSink::record_answered`] when a sink wants it.
#[derive(Debug)]
pub struct AnsweredQuery<'a> {
    pub time: SystemTime,
    pub client: IpAddr,
    /// The question name as received (uncompressed, terminated; case as sent).
    pub qname_wire: &'a [u8],
    pub qtype: u16,
    pub verdict: &'a Verdict,
    pub rcode: u8,
    pub from_cache: bool,
}

impl AnsweredQuery<'_> {
    /// The same query as a [`QueryEvent`], given its text name.
    pub fn to_event<'b>(&'b self, qname: &'b str) -> QueryEvent<'b> {
        QueryEvent {
            time: self.time,
            client: self.client,
            qname,
            qtype: self.qtype,
            verdict: self.verdict,
            rcode: self.rcode,
            from_cache: self.from_cache,
            outcome: Outcome::Answered,
        }
    }
}

/// Where events go. Called on the query path: implementations must not block (queue and return).
pub trait EventSink: Send + Sync {
    fn record(&self, event: &QueryEvent<'_>);
    /// Whether unblocked queries may be wanted too (query logging, client scoring); read once
    /// when the engine is built.
    fn wants_all_queries(&self) -> bool {
        false
    }
    /// Whether this answered (unblocked) query is wanted, asked on the query's wire name before
    /// the engine formats the name and builds the event: a sink that only looks at some names
    /// (client scoring watches DNSBL zones) keeps the rest of the queries at no cost.
    fn wants_answered(&self, _qname_wire: &[u8]) -> bool {
        self.wants_all_queries()
    }
    /// An answered query that `wants_answered` declined: only to be counted (metrics by query
    /// type and result stay complete without an event per query).
    fn count_answered(&self, _qtype: u16, _rcode: u8) {}
    /// An answered query that `wants_answered` accepted. The default formats the name and calls
    /// `record`; a sink that stores names in its own encoding (the store's query log) overrides
    /// this and skips the `String` per query.
    fn record_answered(&self, q: &AnsweredQuery<'_>) {
        let name = crate::wire::name_to_text(q.qname_wire);
        self.record(&q.to_event(&name));
    }
}

/// Logs blocks through `tracing` (the default sink).
pub struct TracingSink;

impl EventSink for TracingSink {
    fn record(&self, e: &QueryEvent<'_>) {
        if e.outcome == Outcome::Blocked {
            let category = e.verdict.category().map(|c| c.as_str()).unwrap_or("-");
            let action = e.verdict.action().map(|a| a.as_str()).unwrap_or("-");
            let reason = e
                .verdict
                .reason
                .as_ref()
                .map(|r| r.to_string())
                .unwrap_or_default();
            tracing::info!(
                client = %e.client,
                qname = e.qname,
                qtype = e.qtype,
                category,
                action,
                cached = e.from_cache,
                %reason,
                "blocked"
            );
        }
    }
}
