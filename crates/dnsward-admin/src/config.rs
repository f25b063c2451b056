//! `[admin]` configuration: the admin HTTP server, the event store, streaming outputs and client
//! scoring. Unknown keys are rejected; `validate` names the offending key in its message.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Operator side of dnsward: admin API, event store, client scoring, event streams.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Run the admin side at all (event store, API, client scoring). When false the resolver
    /// keeps its default sink (block log lines only) and nothing is written to disk.
    pub enabled: bool,
    /// Address of the admin HTTP server (API, metrics, web page). Loopback by default.
    pub listen: SocketAddr,
    /// Bearer token required on every API and metrics request when set. Required when `listen`
    /// is not a loopback address. At least 16 characters.
    pub token: Option<String>,
    /// Read the token from this file instead (its first line; surrounding whitespace is ignored),
    /// so it can live outside the config file with tighter permissions (e.g. a container or
    /// systemd secret). Relative to the config file. Set `token` or `token_file`, not both.
    /// Both are read again on every reload, and a changed token applies at once.
    pub token_file: Option<PathBuf>,
    /// SQLite event store, relative to the working directory. Created (with its directory) when
    /// missing.
    pub db_path: PathBuf,
    /// Blocks (and logged queries) older than this many days are deleted. 0 keeps them forever.
    pub retention_days: u32,
    /// At most this many blocks are kept (the oldest are deleted first); the same bound applies
    /// separately to logged queries. 0 means no bound.
    pub max_events: u64,
    /// When the database holds more than this many MiB of data, the oldest fifth of the events
    /// is deleted (checked every minute; freed pages are reused). 0 means no bound.
    pub max_db_mib: u64,
    /// Store every query, not only blocks (query logging). Costs one queue push per query.
    pub log_all_queries: bool,
    /// Also write every stored event as one JSON object per line to this file (appended), or to
    /// stdout with `-`.
    pub jsonl: Option<String>,
    /// Also send events as dnstap (Frame Streams) to `unix:/path/to/socket` or `tcp:HOST:PORT`.
    pub dnstap: Option<String>,
    /// Identity sent in dnstap messages (default: the host name when known, else "dnsward").
    pub dnstap_identity: Option<String>,
    /// Score clients (suspected infected hosts). Needs queries under DNSBL zones, so the sink asks
    /// the engine for all queries and keeps only those cheaply.
    pub client_scoring: bool,
    /// Mail servers (CIDRs): their DNSBL lookups, and the DGA / flux / IOC names their spam
    /// filters look up, are expected and never count as evidence (sinkhole hits do).
    pub mail_servers: Vec<IpNet>,
    /// Other clients whose lookups are no evidence of infection (a malware lab, a security
    /// scanner, a sandbox): they look up malicious names on purpose. Sinkhole hits still count.
    pub unscored_clients: Vec<IpNet>,
    /// A client's score halves every this many seconds without new evidence.
    pub client_score_half_life_secs: u64,
    /// Score from which a client is reported as suspected.
    pub suspect_threshold: f64,
    /// DGA burst: this many distinct DGA-blocked names from one client ...
    pub dga_burst_min_names: u32,
    /// ... within this many seconds ...
    pub dga_burst_window_secs: u64,
    /// ... of which at least this fraction got NXDOMAIN make one `dga_burst` piece of evidence.
    pub dga_burst_min_nxdomain_ratio: f64,
    /// Clients tracked in memory (least recently seen are forgotten first; evidence stays in the
    /// store).
    pub max_tracked_clients: usize,
    /// Save the resolver's in-memory detection state (the answer history behind the flux
    /// features, per-client escalations) into the store this often, in seconds, and at shutdown;
    /// it is restored at start, so a restart does not start flux evidence over or release
    /// escalated clients. 0 = never saved (the state then lives as long as the process; it is
    /// kept across reloads either way).
    pub save_state_secs: u64,
    /// Capacity of the queue between the DNS path and the store writer; events beyond it are
    /// dropped (and counted) rather than slowing DNS.
    pub queue_capacity: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8053)),
            token: None,
            token_file: None,
            db_path: PathBuf::from("dnsward-data/events.sqlite3"),
            save_state_secs: 300,
            retention_days: 30,
            max_events: 2_000_000,
            max_db_mib: 2048,
            log_all_queries: false,
            jsonl: None,
            dnstap: None,
            dnstap_identity: None,
            client_scoring: true,
            mail_servers: Vec::new(),
            unscored_clients: Vec::new(),
            client_score_half_life_secs: 6 * 3600,
            suspect_threshold: 50.0,
            dga_burst_min_names: 10,
            dga_burst_window_secs: 300,
            dga_burst_min_nxdomain_ratio: 0.5,
            max_tracked_clients: 10_000,
            queue_capacity: 65_536,
        }
    }
}

/// Where dnstap frames go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnstapTarget {
    Unix(PathBuf),
    Tcp(String),
}

impl AdminConfig {
    /// Reads `token_file` into `token` (the config loader calls this before `validate`). The
    /// message starts with the key. A file readable by group or others is accepted with a
    /// warning: refusing to start would turn a permissions slip into an outage.
    pub fn load_token_file(&mut self) -> Result<(), String> {
        let Some(path) = &self.token_file else {
            return Ok(());
        };
        if self.token.is_some() {
            return Err("admin.token_file: set admin.token or admin.token_file, not both".into());
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("admin.token_file: cannot read {}: {e}", path.display()))?;
        let token = text.lines().next().unwrap_or("").trim();
        if token.is_empty() {
            return Err(format!(
                "admin.token_file: {} is empty (expected the token on its first line)",
                path.display()
            ));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path) {
                if meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(
                        path = %path.display(),
                        "admin.token_file is readable by group or others; chmod 600 it"
                    );
                }
            }
        }
        self.token = Some(token.to_string());
        Ok(())
    }

    /// Check the configuration; the message starts with the offending key (`admin.token: ...`).
    pub fn validate(&self) -> Result<(), String> {
        if self.token_file.is_some() && self.token.is_none() {
            return Err(
                "admin.token_file: not read yet (load the config with Config::load)".into(),
            );
        }
        if let Some(token) = &self.token {
            if token.len() < 16 {
                return Err("admin.token: must be at least 16 characters".into());
            }
            if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(
                    "admin.token: must not contain whitespace or control characters".into(),
                );
            }
        } else if !self.listen.ip().is_loopback() {
            return Err(format!(
                "admin.token: required when admin.listen ({}) is not a loopback address",
                self.listen
            ));
        }
        if self.db_path.as_os_str().is_empty() {
            return Err("admin.db_path: must not be empty".into());
        }
        if let Some(j) = &self.jsonl {
            if j.is_empty() {
                return Err("admin.jsonl: must be a file path or `-` for stdout".into());
            }
        }
        if self.dnstap.is_some() {
            self.dnstap_target()?;
        }
        if self.client_score_half_life_secs == 0 {
            return Err("admin.client_score_half_life_secs: must be at least 1".into());
        }
        if !(self.suspect_threshold.is_finite() && self.suspect_threshold > 0.0) {
            return Err("admin.suspect_threshold: must be a positive number".into());
        }
        if self.dga_burst_min_names < 2 {
            return Err("admin.dga_burst_min_names: must be at least 2".into());
        }
        if self.dga_burst_window_secs == 0 {
            return Err("admin.dga_burst_window_secs: must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.dga_burst_min_nxdomain_ratio) {
            return Err("admin.dga_burst_min_nxdomain_ratio: must be between 0 and 1".into());
        }
        if self.max_tracked_clients == 0 {
            return Err("admin.max_tracked_clients: must be at least 1".into());
        }
        if self.queue_capacity < 16 {
            return Err("admin.queue_capacity: must be at least 16".into());
        }
        Ok(())
    }

    /// The parsed `dnstap` target, if configured.
    pub fn dnstap_target(&self) -> Result<Option<DnstapTarget>, String> {
        let Some(t) = &self.dnstap else {
            return Ok(None);
        };
        if let Some(p) = t.strip_prefix("unix:") {
            if p.is_empty() {
                return Err("admin.dnstap: `unix:` needs a socket path".into());
            }
            Ok(Some(DnstapTarget::Unix(PathBuf::from(p))))
        } else if let Some(a) = t.strip_prefix("tcp:") {
            if !a.contains(':') {
                return Err("admin.dnstap: `tcp:` needs HOST:PORT".into());
            }
            Ok(Some(DnstapTarget::Tcp(a.to_string())))
        } else {
            Err(format!(
                "admin.dnstap: expected `unix:/path` or `tcp:HOST:PORT`, got `{t}`"
            ))
        }
    }

    /// Whether the engine must report every query to the sink.
    pub fn wants_all_queries(&self) -> bool {
        self.log_all_queries || self.client_scoring
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        AdminConfig::default().validate().unwrap();
    }

    #[test]
    fn example_file_matches_defaults() {
        let text = include_str!("../admin.example.toml");
        let parsed: AdminConfig = toml::from_str(text).expect("admin.example.toml parses");
        assert_eq!(parsed, AdminConfig::default());
        // Every field is mentioned (commented out when it has no default value).
        let v = toml::Value::try_from(AdminConfig {
            token: Some("x".into()),
            jsonl: Some("x".into()),
            dnstap: Some("x".into()),
            dnstap_identity: Some("x".into()),
            ..Default::default()
        })
        .unwrap();
        for key in v.as_table().unwrap().keys() {
            assert!(
                text.contains(&format!("{key} = ")),
                "{key} missing from admin.example.toml"
            );
        }
    }

    #[test]
    fn token_file_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        std::fs::write(&path, "  0123456789abcdef0123\nsecond line ignored\n").unwrap();
        let mut c = AdminConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8053)),
            token_file: Some(path.clone()),
            ..AdminConfig::default()
        };
        assert!(c.validate().unwrap_err().starts_with("admin.token_file:"));
        c.load_token_file().unwrap();
        assert_eq!(c.token.as_deref(), Some("0123456789abcdef0123"));
        c.validate().unwrap();
        // Both set: refused, whichever came first.
        let e = c.load_token_file().unwrap_err();
        assert!(e.contains("not both"), "{e}");
        // The token rules apply to the file's content too.
        std::fs::write(&path, "short\n").unwrap();
        c.token = None;
        c.load_token_file().unwrap();
        assert!(c.validate().unwrap_err().starts_with("admin.token:"));
        std::fs::write(&path, "\n\n").unwrap();
        c.token = None;
        let e = c.load_token_file().unwrap_err();
        assert!(
            e.starts_with("admin.token_file:") && e.contains("empty"),
            "{e}"
        );
        c.token_file = Some(dir.path().join("missing"));
        let e = c.load_token_file().unwrap_err();
        assert!(
            e.starts_with("admin.token_file:") && e.contains("missing"),
            "{e}"
        );
    }

    #[test]
    fn token_required_off_loopback() {
        let mut c = AdminConfig {
            listen: "0.0.0.0:8053".parse().unwrap(),
            ..Default::default()
        };
        let e = c.validate().unwrap_err();
        assert!(e.starts_with("admin.token:"), "{e}");
        c.token = Some("short".into());
        assert!(c.validate().unwrap_err().starts_with("admin.token:"));
        c.token = Some("0123456789abcdef0123".into());
        c.validate().unwrap();
    }

    #[test]
    fn unknown_keys_rejected_and_dnstap_parsed() {
        let e = toml::from_str::<AdminConfig>("bogus = 1").unwrap_err();
        assert!(e.to_string().contains("bogus"));
        let c: AdminConfig =
            toml::from_str("dnstap = \"tcp:127.0.0.1:6000\"\nmail_servers = [\"192.0.2.0/24\"]")
                .unwrap();
        assert_eq!(
            c.dnstap_target().unwrap(),
            Some(DnstapTarget::Tcp("127.0.0.1:6000".into()))
        );
        let c = AdminConfig {
            dnstap: Some("udp:x".into()),
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().starts_with("admin.dnstap:"));
    }
}
