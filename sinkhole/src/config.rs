//! `[sinkhole_server]` configuration.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Configuration of the sinkhole server (`[sinkhole_server]` in dnsward.toml).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkholeConfig {
    /// Start the sinkhole listeners with `dnsward serve`.
    pub enabled: bool,
    /// Plain HTTP listeners (block page).
    pub http: Vec<SocketAddr>,
    /// HTTPS listeners (SNI logged, block page after a successful handshake).
    pub https: Vec<SocketAddr>,
    /// Raw TCP catch-all listeners: log and close.
    pub tcp: Vec<SocketAddr>,
    /// PEM certificate chain for HTTPS; without it a self-signed certificate is generated at start.
    pub cert_file: Option<PathBuf>,
    /// PEM private key for `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Connections handled at once over all listeners; further ones wait in the accept backlog.
    pub max_connections: usize,
    /// Time allowed for reading a request head / TLS ClientHello / handshake, and for writing the answer.
    pub read_timeout_ms: u64,
}

impl Default for SinkholeConfig {
    fn default() -> Self {
        SinkholeConfig {
            enabled: false,
            http: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            https: vec![SocketAddr::from(([127, 0, 0, 1], 8443))],
            tcp: Vec::new(),
            cert_file: None,
            key_file: None,
            max_connections: 256,
            read_timeout_ms: 5000,
        }
    }
}

impl SinkholeConfig {
    /// Check the values; errors name the key (`sinkhole_server.<key>: ...`).
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 || self.max_connections > 1_000_000 {
            return Err(format!(
                "sinkhole_server.max_connections: must be 1..=1000000, got {}",
                self.max_connections
            ));
        }
        if self.read_timeout_ms == 0 || self.read_timeout_ms > 600_000 {
            return Err(format!(
                "sinkhole_server.read_timeout_ms: must be 1..=600000, got {}",
                self.read_timeout_ms
            ));
        }
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => {
                return Err("sinkhole_server.key_file: required when cert_file is set".into())
            }
            (None, Some(_)) => {
                return Err("sinkhole_server.cert_file: required when key_file is set".into())
            }
            _ => {}
        }
        if self.enabled && self.http.is_empty() && self.https.is_empty() && self.tcp.is_empty() {
            return Err(
                "sinkhole_server.enabled: no listen addresses (set http, https or tcp)".into(),
            );
        }
        let mut seen: HashSet<SocketAddr> = HashSet::new();
        for (key, addrs) in [
            ("http", &self.http),
            ("https", &self.https),
            ("tcp", &self.tcp),
        ] {
            for a in addrs {
                // Port 0 (ephemeral) may repeat.
                if a.port() != 0 && !seen.insert(*a) {
                    return Err(format!(
                        "sinkhole_server.{key}: address {a} is listed more than once"
                    ));
                }
            }
        }
        Ok(())
    }
}
