//! Event streams beside the database: JSON lines (file or stdout) and dnstap.

use crate::config::AdminConfig;
use crate::dnsnames::{qtype_name, rcode_name};
use crate::dnstap::DnstapOutput;
use crate::error::AdminError;
use crate::store::OwnedEvent;
use crate::time::rfc3339_us;
use serde::Serialize;
use std::io::{BufWriter, Write};
use std::net::IpAddr;

/// One event as written to the JSON-lines stream (one object per line). Field names are stable.
#[derive(Debug, Serialize)]
pub struct StreamEvent<'a> {
    /// RFC 3339 UTC, millisecond precision.
    pub time: String,
    /// Unix time in microseconds.
    pub ts_us: i64,
    pub client: IpAddr,
    pub name: &'a str,
    pub qtype: String,
    pub qtype_num: u16,
    /// `blocked` or `answered`.
    pub outcome: &'static str,
    /// `pass`, `allow` or `block`.
    pub verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    pub rcode: String,
    pub rcode_num: u8,
    pub cached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a dnsward_policy::Reason>,
    #[serde(skip)]
    pub src: &'a OwnedEvent,
}

impl<'a> From<&'a OwnedEvent> for StreamEvent<'a> {
    fn from(e: &'a OwnedEvent) -> Self {
        use dnsward_policy::VerdictKind;
        StreamEvent {
            time: rfc3339_us(e.ts_us),
            ts_us: e.ts_us,
            client: crate::dnsbl::canonical_ip(e.client),
            name: &e.qname,
            qtype: qtype_name(e.qtype),
            qtype_num: e.qtype,
            outcome: if e.blocked { "blocked" } else { "answered" },
            verdict: match e.verdict.kind {
                VerdictKind::Pass => "pass",
                VerdictKind::Allow => "allow",
                VerdictKind::Block { .. } => "block",
            },
            category: e.verdict.category().map(|c| c.as_str()),
            action: e.verdict.action().map(|a| a.as_str()),
            rcode: rcode_name(e.rcode),
            rcode_num: e.rcode,
            cached: e.cached,
            reason: e.verdict.reason.as_ref(),
            src: e,
        }
    }
}

enum Jsonl {
    File(BufWriter<std::fs::File>),
    Stdout(BufWriter<std::io::Stdout>),
}

/// The configured streams (run on the store's writer thread; dnstap has its own thread).
pub struct EventStreams {
    jsonl: Option<Jsonl>,
    jsonl_failed: bool,
    dnstap: Option<DnstapOutput>,
}

impl EventStreams {
    pub fn open(cfg: &AdminConfig) -> Result<Self, AdminError> {
        let jsonl = match cfg.jsonl.as_deref() {
            None => None,
            Some("-") => Some(Jsonl::Stdout(BufWriter::new(std::io::stdout()))),
            Some(path) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| AdminError::Output {
                        what: format!("admin.jsonl: {path}"),
                        source,
                    })?;
                Some(Jsonl::File(BufWriter::with_capacity(64 * 1024, f)))
            }
        };
        let dnstap = cfg.dnstap_target().map_err(AdminError::Config)?.map(|t| {
            DnstapOutput::start(
                t,
                cfg.dnstap_identity.clone().unwrap_or_else(default_identity),
            )
        });
        Ok(EventStreams {
            jsonl,
            jsonl_failed: false,
            dnstap,
        })
    }

    /// Whether any stream is configured (building a [`StreamEvent`] formats the time).
    pub fn is_active(&self) -> bool {
        self.jsonl.is_some() || self.dnstap.is_some()
    }

    pub fn send(&mut self, e: &StreamEvent<'_>) {
        if let Some(j) = &mut self.jsonl {
            let w: &mut dyn Write = match j {
                Jsonl::File(f) => f,
                Jsonl::Stdout(s) => s,
            };
            let r = serde_json::to_writer(&mut *w, e)
                .map_err(std::io::Error::from)
                .and_then(|_| w.write_all(b"\n"));
            if let Err(err) = r {
                if !self.jsonl_failed {
                    tracing::error!(error = %err, "admin.jsonl: cannot write the event stream");
                    self.jsonl_failed = true;
                }
            } else {
                self.jsonl_failed = false;
            }
        }
        if let Some(d) = &self.dnstap {
            d.send(e.src);
        }
    }

    pub fn flush(&mut self) {
        if let Some(j) = &mut self.jsonl {
            let _ = match j {
                Jsonl::File(f) => f.flush(),
                Jsonl::Stdout(s) => s.flush(),
            };
        }
    }
}

fn default_identity() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "dnsward".to_string())
}
