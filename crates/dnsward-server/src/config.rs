//! `[server]`: where dnsward listens and who may use it.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// How ANY queries are answered (they are the classic amplification vector).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnyQueries {
    /// RFC 8482: a single synthesised HINFO record.
    Hinfo,
    /// REFUSED.
    Refuse,
    /// Forward like any other type.
    Forward,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Queries per second per client address; 0 turns the limit off.
    pub per_client_qps: u32,
    /// Bucket size: queries a client may send in a burst.
    pub burst: u32,
    /// Networks never limited.
    pub exempt: Vec<IpNet>,
    /// Clients tracked at most (bounds memory under spoofed floods).
    pub max_clients: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_client_qps: 1_000,
            burst: 2_000,
            // The machine itself (and so the default loopback-only setup) is not limited.
            exempt: vec![
                "127.0.0.0/8".parse().expect("literal"),
                "::1/128".parse().expect("literal"),
            ],
            max_clients: 100_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Addresses to listen on, UDP and TCP each. Loopback by default: not an open resolver.
    pub listen: Vec<SocketAddr>,
    /// Client networks allowed to query; others get REFUSED.
    pub allow_clients: Vec<IpNet>,
    /// Worker threads (and UDP sockets per listen address); 0 = one per CPU.
    pub workers: usize,
    /// Upstream queries in flight at most; beyond it new cache misses are dropped.
    pub max_inflight: usize,
    /// Idle TCP connections are closed after this many milliseconds.
    pub tcp_idle_timeout_ms: u64,
    /// Concurrent TCP connections at most.
    pub tcp_max_connections: usize,
    pub any_queries: AnyQueries,
    pub rate_limit: RateLimitConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec!["127.0.0.1:5353".parse().expect("literal")],
            allow_clients: vec![
                "127.0.0.0/8".parse().expect("literal"),
                "::1/128".parse().expect("literal"),
            ],
            workers: 0,
            max_inflight: 10_000,
            tcp_idle_timeout_ms: 10_000,
            tcp_max_connections: 512,
            any_queries: AnyQueries::Hinfo,
            rate_limit: RateLimitConfig::default(),
        }
    }
}

impl ServerConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.listen.is_empty() {
            return Err("server.listen: at least one address is needed".into());
        }
        if self.max_inflight == 0 {
            return Err("server.max_inflight must be at least 1".into());
        }
        if self.tcp_max_connections == 0 {
            return Err("server.tcp_max_connections must be at least 1".into());
        }
        if self.workers > 1024 {
            return Err(format!("server.workers: {} is too many", self.workers));
        }
        if self.rate_limit.per_client_qps > 0 && self.rate_limit.burst == 0 {
            return Err(
                "server.rate_limit.burst must be at least 1 when per_client_qps is set".into(),
            );
        }
        for addr in &self.listen {
            let loopback = addr.ip().is_loopback();
            let open = self.allow_clients.iter().any(|n| n.prefix_len() == 0);
            if !loopback && open {
                tracing::warn!(listen = %addr, "server.allow_clients contains a /0: this is an open resolver");
            }
        }
        Ok(())
    }

    pub fn worker_count(&self) -> usize {
        if self.workers == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        } else {
            self.workers
        }
    }
}
