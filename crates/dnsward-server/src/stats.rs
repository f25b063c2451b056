//! Counters the engine keeps (lock-free), read by the admin API and metrics.

use dnsward_policy::{Action, Category};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Stats {
    pub queries_udp: AtomicU64,
    pub queries_tcp: AtomicU64,
    pub malformed: AtomicU64,
    pub refused_acl: AtomicU64,
    pub rate_limited: AtomicU64,
    pub dropped_overload: AtomicU64,
    pub upstream_failures: AtomicU64,
    pub servfail: AtomicU64,
    pub truncated: AtomicU64,
    /// Stale cached answers served because the upstreams failed (serve-stale).
    pub served_stale: AtomicU64,
    /// Clients that became escalated (`[dga.escalation]`).
    pub clients_escalated: AtomicU64,
    blocks: [AtomicU64; Category::ALL.len()],
    actions: [AtomicU64; 4],
}

fn action_index(a: Action) -> usize {
    match a {
        Action::Nxdomain => 0,
        Action::Sinkhole => 1,
        Action::Refused => 2,
        Action::Log => 3,
    }
}

impl Stats {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_block(&self, category: Category, action: Action) {
        let ci = Category::ALL
            .iter()
            .position(|c| *c == category)
            .unwrap_or(0);
        self.blocks[ci].fetch_add(1, Ordering::Relaxed);
        self.actions[action_index(action)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            queries_udp: get(&self.queries_udp),
            queries_tcp: get(&self.queries_tcp),
            malformed: get(&self.malformed),
            refused_acl: get(&self.refused_acl),
            rate_limited: get(&self.rate_limited),
            dropped_overload: get(&self.dropped_overload),
            upstream_failures: get(&self.upstream_failures),
            servfail: get(&self.servfail),
            truncated: get(&self.truncated),
            served_stale: get(&self.served_stale),
            clients_escalated: get(&self.clients_escalated),
            blocks_by_category: Category::ALL
                .iter()
                .zip(self.blocks.iter())
                .map(|(c, n)| (c.as_str(), get(n)))
                .collect(),
            blocks_by_action: [
                Action::Nxdomain,
                Action::Sinkhole,
                Action::Refused,
                Action::Log,
            ]
            .iter()
            .map(|a| (a.as_str(), get(&self.actions[action_index(*a)])))
            .collect(),
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StatsSnapshot {
    pub queries_udp: u64,
    pub queries_tcp: u64,
    pub malformed: u64,
    pub refused_acl: u64,
    pub rate_limited: u64,
    pub dropped_overload: u64,
    pub upstream_failures: u64,
    pub servfail: u64,
    pub truncated: u64,
    pub served_stale: u64,
    pub clients_escalated: u64,
    pub blocks_by_category: Vec<(&'static str, u64)>,
    pub blocks_by_action: Vec<(&'static str, u64)>,
}
