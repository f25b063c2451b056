//! `dnsward health [ADDR]`: exit 0 when a DNS listener answers, 1 when it does not (container
//! health checks). Sends `version.bind. CH TXT`: dnsward answers non-IN classes itself (REFUSED)
//! without asking its upstreams, so the check says whether this process serves DNS, not whether
//! the upstream resolvers are reachable. Any well-formed response with the right ID counts.

use clap::Args;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct HealthArgs {
    /// The DNS listener to probe (UDP).
    #[arg(default_value = "127.0.0.1:53")]
    pub server: SocketAddr,
    /// How long to wait for the response, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
}

pub fn run(args: HealthArgs) -> ExitCode {
    match probe(args.server, Duration::from_millis(args.timeout_ms)) {
        Ok(rcode) => {
            println!("ok: {} answered (rcode {rcode})", args.server);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dnsward health: {}: {e}", args.server);
            ExitCode::from(1)
        }
    }
}

/// Sends one CHAOS query and waits for its response; returns the response's RCODE.
pub fn probe(server: SocketAddr, timeout: Duration) -> Result<u8, String> {
    let bind = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = UdpSocket::bind(bind).map_err(|e| format!("bind: {e}"))?;
    sock.connect(server).map_err(|e| format!("connect: {e}"))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let id = (std::process::id() as u16) ^ (nanos as u16) ^ ((nanos >> 16) as u16);
    let mut q = Vec::with_capacity(30);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(b"\x07version\x04bind\x00");
    q.extend_from_slice(&[0, 16, 0, 3]); // TXT, CHAOS
    sock.send(&q).map_err(|e| format!("send: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no answer within {} ms", timeout.as_millis()));
        }
        sock.set_read_timeout(Some(left))
            .map_err(|e| format!("socket: {e}"))?;
        match sock.recv(&mut buf) {
            Ok(n) if n >= 12 && buf[0..2] == id.to_be_bytes() && buf[2] & 0x80 != 0 => {
                return Ok(buf[3] & 0x0f);
            }
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("no answer within {} ms", timeout.as_millis()));
            }
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
}
