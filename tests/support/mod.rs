//! Test support: a real authoritative upstream (hickory-server serving fixture zones on
//! loopback), dnsward started in-process on an ephemeral port, and a wire-level DNS client.
#![allow(dead_code)]

use dnsward::{App, Config};
use dnsward_policy::Verdict;
use dnsward_server::{EventSink, QueryEvent};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// Fixture zones: `test.` (ordinary names), a registered DGA-looking domain under a real TLD
/// that the model blocks at its default threshold, and one it scores between the escalated and
/// the default threshold (the brief's own example name), and a public web service (on the
/// built-in shared-domain list) whose fixture address is also `www.test`'s.
pub const ZONES: [&str; 4] = [
    include_str!("../fixtures/test.zone"),
    include_str!("../fixtures/kqvwxjzrtplmnbvcxqwe.net.zone"),
    include_str!("../fixtures/xjw3kqpz0a.net.zone"),
    include_str!("../fixtures/pastebin.com.zone"),
];

/// An authoritative server for the fixture zone on 127.0.0.1 (UDP + TCP, same port).
pub struct Upstream {
    pub addr: SocketAddr,
    _server: hickory_server::Server<Catalog>,
}

fn fixture_catalog() -> Catalog {
    let mut catalog = Catalog::new();
    for zone in ZONES {
        let (origin, records) = hickory_proto::serialize::txt::Parser::new(zone, None, None)
            .parse()
            .expect("fixture zone parses");
        let handler =
            InMemoryZoneHandler::<hickory_server::net::runtime::TokioRuntimeProvider>::new(
                origin.clone(),
                records,
                ZoneType::Primary,
                AxfrPolicy::Deny,
            )
            .expect("zone loads");
        catalog.upsert(origin.into(), vec![Arc::new(handler)]);
    }
    catalog
}

pub async fn start_upstream() -> Upstream {
    let mut server = hickory_server::Server::new(fixture_catalog());
    // Same port for UDP and TCP; retry if the TCP port is taken.
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        if let Ok(tcp) = TcpListener::bind(addr).await {
            server.register_socket(udp);
            server.register_listener(tcp, Duration::from_secs(5), 4096);
            return Upstream {
                addr,
                _server: server,
            };
        }
    }
    panic!("no free port for the test upstream");
}

/// A UDP socket that never answers: a dead upstream.
pub async fn silent_upstream() -> (SocketAddr, UdpSocket) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    (s.local_addr().unwrap(), s)
}

/// Collects every event the engine reports.
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<(String, Verdict, bool)>>,
}

impl EventSink for Recorder {
    fn record(&self, e: &QueryEvent<'_>) {
        self.events
            .lock()
            .unwrap()
            .push((e.qname.to_string(), e.verdict.clone(), e.from_cache));
    }
}

pub fn test_config(upstreams: &[SocketAddr]) -> Config {
    let mut cfg = Config::default();
    cfg.server.listen = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.server.workers = 2;
    cfg.upstream.servers = upstreams.iter().map(|a| a.to_string()).collect();
    cfg.upstream.timeout_ms = 1_000;
    cfg.upstream.attempt_timeout_ms = 400;
    // Tests that want the admin server and event store turn it on with their own paths.
    cfg.admin.enabled = false;
    cfg
}

/// Turns the admin side on: its server on an ephemeral loopback port, its event store in `dir`.
pub fn with_admin(cfg: &mut Config, dir: &std::path::Path) {
    cfg.admin.enabled = true;
    cfg.admin.listen = "127.0.0.1:0".parse().unwrap();
    cfg.admin.db_path = dir.join("events.sqlite3");
}

pub struct Dnsward {
    pub app: App,
    pub addr: SocketAddr,
    pub events: Arc<Recorder>,
}

pub async fn start_dnsward(cfg: Config) -> Dnsward {
    start_dnsward_with_path(cfg, None).await
}

pub async fn start_dnsward_with_path(cfg: Config, path: Option<std::path::PathBuf>) -> Dnsward {
    // RUST_LOG=debug cargo test ... shows the server's logs.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let events = Arc::new(Recorder::default());
    let app = App::start(
        cfg,
        path,
        Arc::new(|_: &mut Config| {}),
        Some(events.clone()),
    )
    .await
    .expect("dnsward starts");
    let addr = app.server.addrs[0];
    Dnsward { app, addr, events }
}

pub fn query(name: &str, rtype: RecordType, edns_payload: Option<u16>) -> Message {
    let mut msg = Message::query();
    msg.metadata.id = rand_id();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_str(name).unwrap(), rtype));
    if let Some(size) = edns_payload {
        let mut edns = Edns::new();
        edns.set_max_payload(size);
        msg.set_edns(edns);
    }
    msg
}

fn rand_id() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0x4a11);
    NEXT.fetch_add(7919, Ordering::Relaxed)
}

/// Sends raw bytes over UDP and waits up to `wait` for one answer.
pub async fn udp_raw(server: SocketAddr, pkt: &[u8], wait: Duration) -> Option<Vec<u8>> {
    udp_raw_from("127.0.0.1".parse().unwrap(), server, pkt, wait).await
}

/// `udp` from a given loopback source address (a second client: `127.0.0.2`).
pub async fn udp_from(client: std::net::IpAddr, server: SocketAddr, msg: &Message) -> Message {
    let bytes = udp_raw_from(
        client,
        server,
        &msg.to_vec().unwrap(),
        Duration::from_secs(3),
    )
    .await
    .expect("an answer over UDP");
    Message::from_vec(&bytes).expect("answer parses")
}

pub async fn udp_raw_from(
    client: std::net::IpAddr,
    server: SocketAddr,
    pkt: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind(SocketAddr::new(client, 0)).await.unwrap();
    sock.send_to(pkt, server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

pub async fn udp(server: SocketAddr, msg: &Message) -> Message {
    udp_from("127.0.0.1".parse().unwrap(), server, msg).await
}

pub async fn tcp(server: SocketAddr, msg: &Message) -> Message {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(server).await.unwrap();
    let body = msg.to_vec().unwrap();
    let mut framed = (body.len() as u16).to_be_bytes().to_vec();
    framed.extend(body);
    s.write_all(&framed).await.unwrap();
    let len = tokio::time::timeout(Duration::from_secs(3), s.read_u16())
        .await
        .unwrap()
        .unwrap();
    let mut buf = vec![0u8; len as usize];
    s.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

/// (owner, type, rdata text) of a section, sorted, TTLs left out.
pub fn rrs(records: &[hickory_proto::rr::Record]) -> Vec<(String, RecordType, String)> {
    let mut v: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.name.to_ascii().to_lowercase(),
                r.record_type(),
                r.data.to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The fixture zone served over DNS-over-TLS and DNS-over-HTTPS on loopback, with a certificate
/// for `dns.test` issued by a throwaway CA (written to `ca.pem` in `dir`).
pub struct EncryptedUpstream {
    pub dot: SocketAddr,
    pub doh: SocketAddr,
    pub ca_file: std::path::PathBuf,
    _server: hickory_server::Server<Catalog>,
}

pub async fn start_encrypted_upstream(dir: &std::path::Path) -> EncryptedUpstream {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["dns.test".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls_config = |alpn: &[u8]| {
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        cfg.alpn_protocols = vec![alpn.to_vec()];
        Arc::new(cfg)
    };
    let mut server = hickory_server::Server::new(fixture_catalog());
    let dot_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let doh_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dot = dot_listener.local_addr().unwrap();
    let doh = doh_listener.local_addr().unwrap();
    server
        .register_tls_listener_with_tls_config(
            dot_listener,
            Duration::from_secs(5),
            tls_config(b"dot"),
        )
        .unwrap();
    server
        .register_https_listener_with_tls_config(
            doh_listener,
            Duration::from_secs(5),
            tls_config(b"h2"),
            Some("dns.test".to_string()),
            "/dns-query".to_string(),
        )
        .unwrap();
    EncryptedUpstream {
        dot,
        doh,
        ca_file,
        _server: server,
    }
}

/// A loopback port free for both UDP and TCP (for a server started as a separate process).
pub fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// End of the question of a query (names in dnsward's upstream queries are never compressed).
pub fn question_end(q: &[u8]) -> Option<usize> {
    let mut pos = 12;
    loop {
        let len = *q.get(pos)? as usize;
        if len == 0 {
            break;
        }
        pos += 1 + len;
    }
    (pos + 5 <= q.len()).then_some(pos + 5)
}

/// A NOERROR reply to the query `q` (QR, RD and RA set) carrying one A record `addr` with
/// TTL `ttl` for the question's name, or no answer record when `addr` is None.
pub fn a_reply(q: &[u8], ttl: u32, addr: Option<[u8; 4]>) -> Option<Vec<u8>> {
    let end = question_end(q)?;
    let mut r = q[..end].to_vec();
    r[2] = 0x81; // QR, RD
    r[3] = 0x80; // RA, NOERROR
    r[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    if let Some(addr) = addr {
        r[7] = 1; // ANCOUNT
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        r.extend_from_slice(&ttl.to_be_bytes());
        r.extend_from_slice(&[0, 4]);
        r.extend_from_slice(&addr);
    }
    Some(r)
}

/// A fast-flux upstream on 127.0.0.1 (UDP): every A query for a name is answered with one
/// address, TTL 0, in a new /16 each time that name is asked (100.64.7.9, 100.65.7.9, ...), as a
/// flux domain rotating over compromised hosts. Other types get an empty NOERROR answer.
/// The addresses are answer data only; nothing is ever sent to them.
pub async fn start_flux_upstream() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut asked: std::collections::HashMap<Vec<u8>, u8> = Default::default();
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let q = &buf[..n];
            let Some(end) = question_end(q) else {
                continue;
            };
            let qname = q[12..end - 4].to_ascii_lowercase();
            let qtype = u16::from_be_bytes([q[end - 4], q[end - 3]]);
            let addr = (qtype == 1).then(|| {
                let k = asked.entry(qname).or_default();
                let addr = [100, 64 + *k, 7, 9];
                *k = k.wrapping_add(1) % 64;
                addr
            });
            let Some(reply) = a_reply(q, 0, addr) else {
                continue;
            };
            let _ = sock.send_to(&reply, from).await;
        }
    });
    (addr, task)
}
