//! `dnsward-sinkhole`: run the sinkhole listeners standalone, one JSON line per hit on stdout.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use dnsward_sinkhole::{serve, HitSink, NoLookup, SinkholeConfig, SinkholeHit};

const USAGE: &str = "usage: dnsward-sinkhole [--http ADDR]... [--https ADDR]... [--tcp ADDR]...
                        [--cert FILE --key FILE] [--max-connections N] [--read-timeout-ms MS]
Without any --http/--https/--tcp: http 127.0.0.1:8080 and https 127.0.0.1:8443.
Each connection is written to stdout as one JSON line; logs go to stderr (RUST_LOG).";

struct JsonLines;

impl HitSink for JsonLines {
    fn hit(&self, hit: &SinkholeHit) {
        let ts = hit
            .time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let line = serde_json::json!({
            "ts": ts,
            "client": hit.client.ip().to_string(),
            "client_port": hit.client.port(),
            "port": hit.local_port,
            "protocol": hit.protocol,
            "host": hit.host_or_sni,
            "name": hit.name,
        });
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<SinkholeConfig, String> {
    let mut cfg = SinkholeConfig {
        enabled: true,
        http: Vec::new(),
        https: Vec::new(),
        tcp: Vec::new(),
        ..SinkholeConfig::default()
    };
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (flag, None),
        };
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let addr = |v: String| {
            v.parse::<SocketAddr>()
                .map_err(|e| format!("{flag}: {v:?}: {e}"))
        };
        match flag.as_str() {
            "--http" => cfg.http.push(addr(value()?)?),
            "--https" => cfg.https.push(addr(value()?)?),
            "--tcp" => cfg.tcp.push(addr(value()?)?),
            "--cert" => cfg.cert_file = Some(PathBuf::from(value()?)),
            "--key" => cfg.key_file = Some(PathBuf::from(value()?)),
            "--max-connections" => {
                let v = value()?;
                cfg.max_connections = v.parse().map_err(|e| format!("{flag}: {v:?}: {e}"))?
            }
            "--read-timeout-ms" => {
                let v = value()?;
                cfg.read_timeout_ms = v.parse().map_err(|e| format!("{flag}: {v:?}: {e}"))?
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if cfg.http.is_empty() && cfg.https.is_empty() && cfg.tcp.is_empty() {
        let d = SinkholeConfig::default();
        cfg.http = d.http;
        cfg.https = d.https;
    }
    Ok(cfg)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cfg = match parse_args(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dnsward-sinkhole: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let running = match serve(&cfg, Arc::new(NoLookup), Arc::new(JsonLines)).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dnsward-sinkhole: {e}");
            std::process::exit(1);
        }
    };
    let _ = tokio::signal::ctrl_c().await;
    running.shutdown();
}
