//! Upstream client: a few long-lived UDP sockets per upstream, queries multiplexed by random ID,
//! TCP when the answer is truncated, failover across upstreams inside one timeout budget.
//! DNS over TLS and DNS over HTTPS upstreams are options ([`crate::encrypted`]).
//!
//! Why not hickory-resolver here: it opens a UDP socket per query and builds record objects for
//! every answer; a forwarder needs neither (see the benchmark figures in the README).

use crate::encrypted::{EncryptedKind, EncryptedUpstream};
use crate::wire;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;

/// `[upstream]` settings.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// Upstream resolvers: `IP` or `IP:port` (UDP, TCP on truncation), `tls://IP[:port][#name]`
    /// (DNS over TLS, port 853), `https://IP[:port][/path][#name]` (DNS over HTTPS, port 443,
    /// path /dns-query). `#name` is the TLS server name (default: the IP).
    /// Empty: the nameservers of /etc/resolv.conf.
    pub servers: Vec<String>,
    /// Extra CA certificates (PEM) trusted for DoT/DoH upstreams, besides the built-in Mozilla roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// Total time budget for one client query, all retries and failovers included (ms).
    /// When it runs out the client gets SERVFAIL.
    pub timeout_ms: u64,
    /// Time to wait for one upstream before trying the next (ms).
    pub attempt_timeout_ms: u64,
    /// UDP sockets kept open per upstream (source ports queries are spread over).
    pub udp_sockets: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            servers: Vec::new(),
            ca_file: None,
            timeout_ms: 2_000,
            attempt_timeout_ms: 800,
            udp_sockets: 4,
        }
    }
}

impl UpstreamConfig {
    /// Resolves the configured server list (or /etc/resolv.conf) into upstream specs.
    pub fn specs(&self) -> Result<Vec<UpstreamSpec>, String> {
        if self.servers.is_empty() {
            let text = std::fs::read_to_string("/etc/resolv.conf").map_err(|e| {
                format!("upstream.servers is empty and /etc/resolv.conf is unreadable ({e}); set upstream.servers or --upstream")
            })?;
            let addrs = resolv_conf_nameservers(&text);
            if addrs.is_empty() {
                return Err("upstream.servers is empty and /etc/resolv.conf has no nameserver; set upstream.servers or --upstream".into());
            }
            return Ok(addrs.into_iter().map(UpstreamSpec::plain).collect());
        }
        self.servers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                parse_server(s).map_err(|e| format!("upstream.servers[{i}] = {s:?}: {e}"))
            })
            .collect()
    }

    pub fn validate(&self) -> Result<(), String> {
        for (i, s) in self.servers.iter().enumerate() {
            parse_server(s).map_err(|e| format!("upstream.servers[{i}] = {s:?}: {e}"))?;
        }
        if self.timeout_ms == 0 || self.timeout_ms > 30_000 {
            return Err(format!(
                "upstream.timeout_ms: {} must be between 1 and 30000",
                self.timeout_ms
            ));
        }
        if self.attempt_timeout_ms == 0 || self.attempt_timeout_ms > self.timeout_ms {
            return Err(format!(
                "upstream.attempt_timeout_ms: {} must be between 1 and upstream.timeout_ms ({})",
                self.attempt_timeout_ms, self.timeout_ms
            ));
        }
        if self.udp_sockets == 0 || self.udp_sockets > 256 {
            return Err(format!(
                "upstream.udp_sockets: {} must be between 1 and 256",
                self.udp_sockets
            ));
        }
        Ok(())
    }
}

/// How to reach one upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamSpec {
    pub addr: SocketAddr,
    /// None: plain DNS (UDP, TCP on truncation).
    pub encrypted: Option<(EncryptedKind, String)>,
}

impl UpstreamSpec {
    pub fn plain(addr: SocketAddr) -> Self {
        UpstreamSpec {
            addr,
            encrypted: None,
        }
    }
}

impl std::fmt::Display for UpstreamSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.encrypted {
            None => write!(f, "{}", self.addr),
            Some((EncryptedKind::Tls, name)) => write!(f, "tls://{}#{name}", self.addr),
            Some((EncryptedKind::Https { path }, name)) => {
                write!(f, "https://{}{path}#{name}", self.addr)
            }
        }
    }
}

fn parse_addr(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bare = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, default_port))
        .map_err(|_| format!("expected an IP address with optional port, like 192.0.2.53 or [2001:db8::53]:{default_port} (names cannot be used: dnsward would need DNS to find its DNS)"))
}

/// Parses one `upstream.servers` entry.
pub fn parse_server(s: &str) -> Result<UpstreamSpec, String> {
    let (rest, name) = match s.split_once('#') {
        Some((r, n)) if !n.is_empty() => (r, Some(n.to_string())),
        Some(_) => return Err("empty TLS server name after #".into()),
        None => (s, None),
    };
    if let Some(host) = rest.strip_prefix("tls://") {
        let addr = parse_addr(host, 853)?;
        let name = name.unwrap_or_else(|| addr.ip().to_string());
        return Ok(UpstreamSpec {
            addr,
            encrypted: Some((EncryptedKind::Tls, name)),
        });
    }
    if let Some(url) = rest.strip_prefix("https://") {
        let (host, path) = match url.find('/') {
            Some(i) => (&url[..i], url[i..].to_string()),
            None => (url, "/dns-query".to_string()),
        };
        let addr = parse_addr(host, 443)?;
        let name = name.unwrap_or_else(|| addr.ip().to_string());
        return Ok(UpstreamSpec {
            addr,
            encrypted: Some((EncryptedKind::Https { path }, name)),
        });
    }
    if rest.contains("://") {
        return Err("unknown scheme: use IP[:port], tls://IP[:port][#name] or https://IP[:port][/path][#name]".into());
    }
    if name.is_some() {
        return Err("a #server-name only applies to tls:// and https:// upstreams".into());
    }
    Ok(UpstreamSpec::plain(parse_addr(rest, 53)?))
}

/// The `nameserver` lines of a resolv.conf, port 53.
pub fn resolv_conf_nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next()? == "nameserver").then_some(())?;
            // Link-local IPv6 with a zone (fe80::1%eth0) is not usable through std's parser.
            let ip: std::net::IpAddr = f.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    #[error("no upstream answered within {0} ms")]
    Timeout(u64),
    #[error("upstream {0}: {1}")]
    Failed(SocketAddr, String),
}

struct Waiter {
    tx: oneshot::Sender<Vec<u8>>,
    /// The question we asked (lowercase), to reject answers to anything else.
    question: Box<[u8]>,
}

struct UdpChannel {
    socket: Arc<UdpSocket>,
    pending: Mutex<HashMap<u16, Waiter>>,
}

struct Upstream {
    addr: SocketAddr,
    label: String,
    /// Set for DoT/DoH upstreams; plain upstreams use the UDP channels.
    encrypted: Option<EncryptedUpstream>,
    channels: Vec<Arc<UdpChannel>>,
    next_channel: AtomicUsize,
    failures: AtomicU64,
    answers: AtomicU64,
}

/// The set of upstreams with failover. Create inside a tokio runtime.
pub struct Upstreams {
    servers: Vec<Upstream>,
    preferred: AtomicUsize,
    timeout: Duration,
    attempt_timeout: Duration,
    latency_us_total: AtomicU64,
    latency_count: AtomicU64,
}

/// What to ask: the question (lowercase name + type + class) and the DO/CD bits.
#[derive(Clone, Debug)]
pub struct UpstreamRequest {
    pub question: Box<[u8]>,
    pub dnssec_ok: bool,
    pub checking_disabled: bool,
}

impl Upstreams {
    pub async fn new(specs: &[UpstreamSpec], cfg: &UpstreamConfig) -> std::io::Result<Arc<Self>> {
        let mut servers = Vec::with_capacity(specs.len());
        let needs_tls = specs.iter().any(|s| s.encrypted.is_some());
        let tls = if needs_tls {
            Some(
                crate::encrypted::client_config(cfg.ca_file.as_deref())
                    .map_err(std::io::Error::other)?,
            )
        } else {
            None
        };
        for spec in specs {
            let addr = spec.addr;
            let encrypted = match (&spec.encrypted, &tls) {
                (Some((kind, name)), Some(tls)) => Some(EncryptedUpstream::new(
                    addr,
                    name.clone(),
                    kind.clone(),
                    tls.clone(),
                )),
                _ => None,
            };
            let sockets = if encrypted.is_some() {
                0
            } else {
                cfg.udp_sockets
            };
            let mut channels = Vec::with_capacity(sockets);
            for _ in 0..sockets {
                let bind: SocketAddr = if addr.is_ipv4() {
                    "0.0.0.0:0".parse().expect("literal")
                } else {
                    "[::]:0".parse().expect("literal")
                };
                let socket = UdpSocket::bind(bind).await?;
                socket.connect(addr).await?;
                let channel = Arc::new(UdpChannel {
                    socket: Arc::new(socket),
                    pending: Mutex::new(HashMap::new()),
                });
                tokio::spawn(receive_loop(
                    Arc::downgrade(&channel),
                    channel.socket.clone(),
                ));
                channels.push(channel);
            }
            servers.push(Upstream {
                addr,
                label: spec.to_string(),
                encrypted,
                channels,
                next_channel: AtomicUsize::new(0),
                failures: AtomicU64::new(0),
                answers: AtomicU64::new(0),
            });
        }
        Ok(Arc::new(Upstreams {
            servers,
            preferred: AtomicUsize::new(0),
            timeout: Duration::from_millis(cfg.timeout_ms),
            attempt_timeout: Duration::from_millis(cfg.attempt_timeout_ms),
            latency_us_total: AtomicU64::new(0),
            latency_count: AtomicU64::new(0),
        }))
    }

    /// The upstreams as configured (`192.0.2.1:53`, `tls://...`), for logs and the admin API.
    pub fn labels(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.label.clone()).collect()
    }

    /// Mean upstream latency in microseconds over all answered queries so far.
    pub fn mean_latency_us(&self) -> Option<u64> {
        let n = self.latency_count.load(Ordering::Relaxed);
        (n > 0).then(|| self.latency_us_total.load(Ordering::Relaxed) / n)
    }

    /// Asks the upstreams, failing over inside the time budget. The first UDP packet is sent on
    /// the first poll, so a caller can poll once and then do other work while it is in flight.
    pub async fn resolve(&self, req: &UpstreamRequest) -> Result<Vec<u8>, UpstreamError> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let n = self.servers.len();
        let first = self.preferred.load(Ordering::Relaxed) % n.max(1);
        let mut last_err = UpstreamError::Timeout(self.timeout.as_millis() as u64);
        // Each upstream gets a try in turn; with time left, a second round.
        for attempt in 0..(2 * n) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let idx = (first + attempt) % n;
            let server = &self.servers[idx];
            let budget = self.attempt_timeout.min(deadline - now);
            match self.exchange(server, req, budget, deadline).await {
                Ok(resp) => {
                    server.answers.fetch_add(1, Ordering::Relaxed);
                    let us = started.elapsed().as_micros() as u64;
                    self.latency_us_total.fetch_add(us, Ordering::Relaxed);
                    self.latency_count.fetch_add(1, Ordering::Relaxed);
                    if idx != first {
                        // Fail over: later queries start with the upstream that answered.
                        self.preferred.store(idx, Ordering::Relaxed);
                    }
                    return Ok(resp);
                }
                Err(e) => {
                    server.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(upstream = %server.addr, error = %e, "upstream attempt failed");
                    last_err = e;
                }
            }
        }
        Err(match last_err {
            UpstreamError::Timeout(_) => UpstreamError::Timeout(self.timeout.as_millis() as u64),
            e => e,
        })
    }

    async fn exchange(
        &self,
        server: &Upstream,
        req: &UpstreamRequest,
        budget: Duration,
        deadline: Instant,
    ) -> Result<Vec<u8>, UpstreamError> {
        // The TLS / HTTPS and TCP exchanges are boxed: their futures are large (several KB),
        // and inline they would make every query's task that much larger, moved by value into
        // each spawned task even on the plain UDP path.
        if let Some(enc) = &server.encrypted {
            let resp =
                Box::pin(enc.exchange(&req.question, req.dnssec_ok, req.checking_disabled, budget))
                    .await?;
            if !answers_question(&resp, &req.question) {
                return Err(UpstreamError::Failed(
                    server.addr,
                    "answer does not match the query".into(),
                ));
            }
            return Ok(resp);
        }
        let resp = udp_exchange(server, req, budget).await?;
        let truncated = resp.get(2).map(|f| f & 0x02 != 0).unwrap_or(false);
        if !truncated {
            return Ok(resp);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        Box::pin(tcp_exchange(server.addr, req, left)).await
    }
}

async fn udp_exchange(
    server: &Upstream,
    req: &UpstreamRequest,
    budget: Duration,
) -> Result<Vec<u8>, UpstreamError> {
    let ch = &server.channels
        [server.next_channel.fetch_add(1, Ordering::Relaxed) % server.channels.len()];
    let (tx, rx) = oneshot::channel();
    let id = {
        let mut pending = ch.pending.lock();
        let mut id = rand::random::<u16>();
        let mut tries = 0;
        while pending.contains_key(&id) {
            id = rand::random::<u16>();
            tries += 1;
            if tries > 64 {
                return Err(UpstreamError::Failed(
                    server.addr,
                    "too many queries in flight".into(),
                ));
            }
        }
        pending.insert(
            id,
            Waiter {
                tx,
                question: req.question.clone(),
            },
        );
        id
    };
    // Removes the waiter however this future ends (answer, timeout or cancellation).
    struct Cleanup<'a>(&'a UdpChannel, u16);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            self.0.pending.lock().remove(&self.1);
        }
    }
    let _cleanup = Cleanup(ch, id);
    let mut pkt = Vec::with_capacity(req.question.len() + 24);
    wire::upstream_query(
        id,
        &req.question,
        req.dnssec_ok,
        req.checking_disabled,
        &mut pkt,
    );
    if let Err(e) = ch.socket.send(&pkt).await {
        return Err(UpstreamError::Failed(server.addr, format!("send: {e}")));
    }
    match tokio::time::timeout(budget, rx).await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(_)) => Err(UpstreamError::Failed(server.addr, "receiver closed".into())),
        Err(_) => Err(UpstreamError::Timeout(budget.as_millis() as u64)),
    }
}

/// Reads answers from one upstream socket and hands each to the query waiting for its ID,
/// if the question matches. Anything else (late, spoofed, garbage) is dropped.
async fn receive_loop(channel: std::sync::Weak<UdpChannel>, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let n = match socket.recv(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                // ICMP port unreachable surfaces as ECONNREFUSED on a connected socket: the
                // waiting query times out and fails over; keep reading.
                tracing::trace!(error = %e, "upstream socket receive error");
                if channel.strong_count() == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let Some(channel) = channel.upgrade() else {
            return;
        };
        let pkt = &buf[..n];
        if n < wire::HEADER_LEN || pkt[2] & 0x80 == 0 {
            continue;
        }
        let id = u16::from_be_bytes([pkt[0], pkt[1]]);
        let mut pending = channel.pending.lock();
        let Some(waiter) = pending.get(&id) else {
            continue;
        };
        if !answers_question(pkt, &waiter.question) {
            continue;
        }
        if let Some(waiter) = pending.remove(&id) {
            drop(pending);
            let _ = waiter.tx.send(pkt.to_vec());
        }
    }
}

/// Whether `pkt` is an answer to `question`: a header with QR set and opcode QUERY, exactly one
/// question, and that question equal to ours (name case-insensitive). dnsward only asks with
/// opcode QUERY; a reply with another opcode is not an answer, and its records may follow that
/// opcode's rules (UPDATE allows empty RDATA, which a client's QUERY answer must not carry).
/// The fuzzing harness applies the same filter.
pub(crate) fn answers_question(pkt: &[u8], question: &[u8]) -> bool {
    if pkt.len() < wire::HEADER_LEN || pkt[2] & 0x80 == 0 || (pkt[2] >> 3) & 0x0f != 0 {
        return false;
    }
    if u16::from_be_bytes([pkt[4], pkt[5]]) != 1 {
        return false;
    }
    match pkt.get(wire::HEADER_LEN..wire::HEADER_LEN + question.len()) {
        Some(q) => q.eq_ignore_ascii_case(question),
        None => false,
    }
}

async fn tcp_exchange(
    addr: SocketAddr,
    req: &UpstreamRequest,
    budget: Duration,
) -> Result<Vec<u8>, UpstreamError> {
    let work = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| UpstreamError::Failed(addr, format!("tcp connect: {e}")))?;
        let id = rand::random::<u16>();
        let mut pkt = Vec::with_capacity(req.question.len() + 26);
        pkt.extend_from_slice(&[0, 0]);
        let mut body = Vec::new();
        wire::upstream_query(
            id,
            &req.question,
            req.dnssec_ok,
            req.checking_disabled,
            &mut body,
        );
        pkt[..2].copy_from_slice(&(body.len() as u16).to_be_bytes());
        pkt.extend_from_slice(&body);
        let io = |e: std::io::Error| UpstreamError::Failed(addr, format!("tcp: {e}"));
        stream.write_all(&pkt).await.map_err(io)?;
        let len = stream.read_u16().await.map_err(io)? as usize;
        let mut resp = vec![0u8; len];
        stream.read_exact(&mut resp).await.map_err(io)?;
        if len < wire::HEADER_LEN
            || u16::from_be_bytes([resp[0], resp[1]]) != id
            || !answers_question(&resp, &req.question)
        {
            return Err(UpstreamError::Failed(
                addr,
                "tcp answer does not match the query".into(),
            ));
        }
        Ok(resp)
    };
    match tokio::time::timeout(budget, work).await {
        Ok(r) => r,
        Err(_) => Err(UpstreamError::Timeout(budget.as_millis() as u64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_query_answers_to_our_question_are_accepted() {
        let question = b"\x07example\x00\x00\x01\x00\x01";
        let answer = |flags: u16, qdcount: u16, q: &[u8]| {
            let mut p = vec![0x12, 0x34];
            p.extend_from_slice(&flags.to_be_bytes());
            p.extend_from_slice(&qdcount.to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
            p.extend_from_slice(q);
            p
        };
        assert!(answers_question(&answer(0x8180, 1, question), question));
        assert!(answers_question(
            &answer(0x8180, 1, b"\x07ExAmPlE\x00\x00\x01\x00\x01"),
            question
        ));
        // Not a response (QR clear), a reply with opcode UPDATE (5) or NOTIFY (4) (found by the
        // fuzzer: an UPDATE reply's empty NS RDATA went to the client), no or two questions,
        // another name, a short packet.
        assert!(!answers_question(&answer(0x0180, 1, question), question));
        assert!(!answers_question(
            &answer(0x8180 | (5 << 11), 1, question),
            question
        ));
        assert!(!answers_question(
            &answer(0x8180 | (4 << 11), 1, question),
            question
        ));
        assert!(!answers_question(&answer(0x8180, 0, question), question));
        assert!(!answers_question(&answer(0x8180, 2, question), question));
        assert!(!answers_question(
            &answer(0x8180, 1, b"\x07exampld\x00\x00\x01\x00\x01"),
            question
        ));
        assert!(!answers_question(
            &answer(0x8180, 1, question)[..11],
            question
        ));
    }

    /// Every miss moves this future (inside its task) by value; the TLS / HTTPS and TCP
    /// exchanges are boxed so that the common UDP path stays small (it was ~7 KB inline).
    #[tokio::test]
    async fn resolve_future_stays_small() {
        let specs = [UpstreamSpec::plain("127.0.0.1:9".parse().unwrap())];
        let ups = Upstreams::new(&specs, &UpstreamConfig::default())
            .await
            .unwrap();
        let req = UpstreamRequest {
            question: b"\x07example\x00\x00\x01\x00".to_vec().into(),
            dnssec_ok: false,
            checking_disabled: false,
        };
        let fut = ups.resolve(&req);
        // Measured 632 bytes in a debug build, ~7,000 before the boxing.
        assert!(
            std::mem::size_of_val(&fut) < 2048,
            "{}",
            std::mem::size_of_val(&fut)
        );
    }

    #[test]
    fn resolv_conf_parsing() {
        let text = "# c\nnameserver 192.0.2.1\nnameserver 2001:db8::1\nnameserver fe80::1%eth0\nsearch x\n";
        let addrs = resolv_conf_nameservers(text);
        assert_eq!(
            addrs,
            vec![
                "192.0.2.1:53".parse().unwrap(),
                "[2001:db8::1]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn config_errors_name_the_key() {
        let cfg = UpstreamConfig {
            servers: vec!["127.0.0.1:53".into(), "not an address".into()],
            ..Default::default()
        };
        let err = cfg.validate().unwrap_err();
        assert!(err.starts_with("upstream.servers[1]"), "{err}");
        let cfg = UpstreamConfig {
            attempt_timeout_ms: 5_000,
            ..Default::default()
        };
        assert!(cfg
            .validate()
            .unwrap_err()
            .starts_with("upstream.attempt_timeout_ms"));
        assert_eq!(
            parse_server("192.0.2.9").unwrap(),
            UpstreamSpec::plain("192.0.2.9:53".parse().unwrap())
        );
        let dot = parse_server("tls://192.0.2.9#dns.example").unwrap();
        assert_eq!(dot.addr, "192.0.2.9:853".parse().unwrap());
        assert_eq!(
            dot.encrypted,
            Some((EncryptedKind::Tls, "dns.example".into()))
        );
        let doh = parse_server("https://[2001:db8::1]:8443/q").unwrap();
        assert_eq!(doh.addr, "[2001:db8::1]:8443".parse().unwrap());
        assert_eq!(
            doh.encrypted,
            Some((
                EncryptedKind::Https { path: "/q".into() },
                "2001:db8::1".into()
            ))
        );
        assert_eq!(
            parse_server("https://192.0.2.1").unwrap().to_string(),
            "https://192.0.2.1:443/dns-query#192.0.2.1"
        );
        assert!(parse_server("quic://192.0.2.1")
            .unwrap_err()
            .contains("unknown scheme"));
        assert!(parse_server("dns.google")
            .unwrap_err()
            .contains("names cannot be used"));
        assert!(parse_server("192.0.2.1#x").is_err());
    }
}
