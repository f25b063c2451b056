//! Faults: the real dnsward server (in-process, ephemeral ports, loopback only) under load while
//! its upstream dies, stalls or answers garbage, while the policy is reloaded, and while the event
//! store's disk is full. Plus the fuzz corpus replay (hostile input through the request path).
//!
//! Every load below counts lost and malformed responses and checks each answer against the name
//! asked. The tests that generate load take a shared lock so they do not skew each other's
//! timing on a small machine.

mod support;

#[path = "../fuzz/src/lib.rs"]
mod fuzz_harness;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// One load test at a time (timing assertions on a 2-core machine).
static LOAD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------------------------
// A controllable upstream: answers every query with one A record, or misbehaves on request.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Garbage {
    /// 40 random bytes.
    RandomBytes,
    /// A correct answer with another ID.
    WrongId,
    /// A correct-looking answer (same ID) to another question, pointing at 192.0.2.66.
    WrongQuestion,
    /// The first 7 bytes of the answer.
    TruncatedHeader,
    /// The answer with QR cleared.
    NoQr,
}

const GARBAGE: [Garbage; 5] = [
    Garbage::RandomBytes,
    Garbage::WrongId,
    Garbage::WrongQuestion,
    Garbage::TruncatedHeader,
    Garbage::NoQr,
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Good,
    /// Never answers.
    Silent,
    /// Answers correctly after this many ms.
    Slow(u64),
    /// Sends the garbage packet, then (if true) the correct answer.
    Garbage(Garbage, bool),
}

struct FaultUpstream {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    ttl: Arc<AtomicU32>,
    queries: Arc<AtomicU64>,
    task: Option<JoinHandle<()>>,
}

/// The address each name resolves to: 192.0.2.x from a hash of the name (never .66).
fn addr_for(name: &str) -> [u8; 4] {
    let h = name.bytes().fold(7u32, |h, b| {
        h.wrapping_mul(31)
            .wrapping_add(b.to_ascii_lowercase() as u32)
    });
    [192, 0, 2, 1 + (h % 60) as u8]
}

fn answer_for(q: &[u8], ttl: u32) -> Option<Vec<u8>> {
    let name = dnsward_server::wire::read_name_text(q, 12)?;
    a_reply(q, ttl, Some(addr_for(&name)))
}

fn garbage_for(kind: Garbage, q: &[u8], good: &[u8]) -> Vec<u8> {
    match kind {
        Garbage::RandomBytes => (0..40).map(|_| rand_byte()).collect(),
        Garbage::WrongId => {
            let mut g = good.to_vec();
            g[0] ^= 0x5a;
            g[1] ^= 0xa5;
            g
        }
        Garbage::WrongQuestion => {
            let mut g = q[..12].to_vec();
            g[2] = 0x81;
            g[3] = 0x80;
            g[4..12].copy_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]);
            g.extend_from_slice(b"\x04evil\x04test\x00\x00\x01\x00\x01");
            g.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 66]);
            g
        }
        Garbage::TruncatedHeader => good[..7].to_vec(),
        Garbage::NoQr => {
            let mut g = good.to_vec();
            g[2] &= 0x7f;
            g
        }
    }
}

fn rand_byte() -> u8 {
    use std::sync::atomic::AtomicU32;
    static X: AtomicU32 = AtomicU32::new(0x9e37_79b9);
    let mut x = X.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    X.store(x, Ordering::Relaxed);
    (x >> 24) as u8
}

impl FaultUpstream {
    async fn start() -> FaultUpstream {
        let mut up = FaultUpstream {
            addr: "127.0.0.1:0".parse().unwrap(),
            mode: Arc::new(Mutex::new(Mode::Good)),
            ttl: Arc::new(AtomicU32::new(300)),
            queries: Arc::new(AtomicU64::new(0)),
            task: None,
        };
        up.serve().await;
        up
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Binds `self.addr` (the same port again after a kill) and answers until killed.
    async fn serve(&mut self) {
        let sock = Arc::new(
            UdpSocket::bind(self.addr)
                .await
                .expect("bind fault upstream"),
        );
        self.addr = sock.local_addr().unwrap();
        let (mode, ttl, queries) = (self.mode.clone(), self.ttl.clone(), self.queries.clone());
        self.task = Some(tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    continue;
                };
                queries.fetch_add(1, Ordering::Relaxed);
                let q = buf[..n].to_vec();
                let Some(good) = answer_for(&q, ttl.load(Ordering::Relaxed)) else {
                    continue;
                };
                let m = *mode.lock().unwrap();
                let sock = sock.clone();
                match m {
                    Mode::Good => {
                        let _ = sock.send_to(&good, from).await;
                    }
                    Mode::Silent => {}
                    Mode::Slow(ms) => {
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                            let _ = sock.send_to(&good, from).await;
                        });
                    }
                    Mode::Garbage(kind, then_good) => {
                        let _ = sock.send_to(&garbage_for(kind, &q, &good), from).await;
                        if then_good {
                            let _ = sock.send_to(&good, from).await;
                        }
                    }
                }
            }
        }));
    }

    /// Stops answering and closes the socket (the port then answers ICMP port unreachable).
    async fn kill(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    async fn restart(&mut self) {
        self.serve().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Load: clients sending queries one after another, every answer checked.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Sample {
    sent: Instant,
    latency: Duration,
    name: String,
    /// None: lost (no answer within the client's wait).
    rcode: Option<ResponseCode>,
    /// The A record in the answer, if any.
    a: Option<[u8; 4]>,
    /// Why the response is malformed (unparseable, wrong ID, wrong question).
    malformed: Option<String>,
}

async fn ask(sock: &UdpSocket, server: SocketAddr, name: &str, wait: Duration) -> Sample {
    let msg = query(name, RecordType::A, None);
    let id = msg.metadata.id;
    let pkt = msg.to_vec().unwrap();
    let sent = Instant::now();
    sock.send_to(&pkt, server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let deadline = sent + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = match tokio::time::timeout(left, sock.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => n,
            _ => {
                return Sample {
                    sent,
                    latency: sent.elapsed(),
                    name: name.into(),
                    rcode: None,
                    a: None,
                    malformed: None,
                }
            }
        };
        let latency = sent.elapsed();
        if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) != id {
            // A late answer to an earlier query of this client that timed out: not ours.
            continue;
        }
        let mut s = Sample {
            sent,
            latency,
            name: name.into(),
            rcode: None,
            a: None,
            malformed: None,
        };
        match Message::from_vec(&buf[..n]) {
            Err(e) => s.malformed = Some(format!("unparseable: {e}")),
            Ok(m) => {
                s.rcode = Some(m.metadata.response_code);
                let qname = m.queries.first().map(|q| q.name().to_ascii());
                if qname
                    .as_deref()
                    .map(|q| q.trim_end_matches('.').to_lowercase())
                    != Some(name.trim_end_matches('.').to_lowercase())
                {
                    s.malformed = Some(format!("question {qname:?} for {name}"));
                }
                s.a = m.answers.iter().find_map(|r| match &r.data {
                    RData::A(a) => Some(a.0.octets()),
                    _ => None,
                });
            }
        }
        return s;
    }
}

/// Runs `clients` clients against `server` until `stop` is set; names come from `name(i)` with
/// a counter shared by all clients.
fn start_load(
    server: SocketAddr,
    clients: usize,
    wait: Duration,
    name: Arc<dyn Fn(u64) -> String + Send + Sync>,
    stop: Arc<AtomicBool>,
) -> Vec<JoinHandle<Vec<Sample>>> {
    let counter = Arc::new(AtomicU64::new(0));
    (0..clients)
        .map(|_| {
            let (name, stop, counter) = (name.clone(), stop.clone(), counter.clone());
            tokio::spawn(async move {
                let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let mut out = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let n = name(counter.fetch_add(1, Ordering::Relaxed));
                    out.push(ask(&sock, server, &n, wait).await);
                }
                out
            })
        })
        .collect()
}

async fn collect(handles: Vec<JoinHandle<Vec<Sample>>>) -> Vec<Sample> {
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all.sort_by_key(|s| s.sent);
    all
}

fn summary(samples: &[Sample]) -> String {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for s in samples {
        let k = match (&s.malformed, s.rcode) {
            (Some(_), _) => "malformed".to_string(),
            (None, None) => "lost".to_string(),
            (None, Some(r)) => format!("{r:?}"),
        };
        *by.entry(k).or_default() += 1;
    }
    let mut lat: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or_default()
    };
    format!(
        "{} queries {by:?}, latency p50 {:?} p99 {:?} max {:?}",
        samples.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    )
}

/// No query lost, none malformed, every NOERROR carries the right address.
fn assert_clean(samples: &[Sample], what: &str) {
    for s in samples {
        assert!(
            s.malformed.is_none(),
            "{what}: malformed answer for {}: {:?}",
            s.name,
            s.malformed
        );
        assert!(
            s.rcode.is_some(),
            "{what}: lost query {} after {:?}",
            s.name,
            s.latency
        );
        if s.rcode == Some(ResponseCode::NoError) {
            assert_eq!(
                s.a,
                Some(addr_for(&s.name)),
                "{what}: wrong address for {}",
                s.name
            );
        }
    }
}

fn fault_config(upstreams: &[SocketAddr], timeout_ms: u64) -> dnsward::Config {
    let mut cfg = test_config(upstreams);
    cfg.upstream.timeout_ms = timeout_ms;
    cfg.upstream.attempt_timeout_ms = timeout_ms / 2;
    cfg
}

/// Slack over the upstream budget for a SERVFAIL to reach the client on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(400);

// ---------------------------------------------------------------------------------------------
// (a) upstream killed mid-load, then back on the same port
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_killed_mid_load_servfails_within_budget_and_recovers() {
    let _g = LOAD.lock().await;
    let mut up = FaultUpstream::start().await;
    let budget = Duration::from_millis(500);
    let dw = start_dnsward(fault_config(&[up.addr], 500)).await;
    let stop = Arc::new(AtomicBool::new(false));
    // Distinct names: every query is a cache miss and goes upstream.
    let load = start_load(
        dw.addr,
        8,
        Duration::from_secs(3),
        Arc::new(|i| format!("n{i}.killed.example.org")),
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let killed = Instant::now();
    up.kill().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let restarted = Instant::now();
    up.restart().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    stop.store(true, Ordering::Relaxed);
    let all = collect(load).await;
    eprintln!("upstream killed: {}", summary(&all));
    assert_clean(&all, "upstream killed");

    let before: Vec<_> = all.iter().filter(|s| s.sent + s.latency < killed).collect();
    let down: Vec<_> = all
        .iter()
        .filter(|s| s.sent > killed + Duration::from_millis(20) && s.sent + s.latency < restarted)
        .collect();
    let after: Vec<_> = all
        .iter()
        .filter(|s| s.sent > restarted + Duration::from_millis(20))
        .collect();
    eprintln!(
        "  before: {}\n  down: {}\n  after: {}",
        summary(&before.iter().map(|s| (*s).clone()).collect::<Vec<_>>()),
        summary(&down.iter().map(|s| (*s).clone()).collect::<Vec<_>>()),
        summary(&after.iter().map(|s| (*s).clone()).collect::<Vec<_>>()),
    );
    assert!(before.len() > 50, "load before the kill: {}", before.len());
    assert!(before
        .iter()
        .all(|s| s.rcode == Some(ResponseCode::NoError)));
    assert!(
        down.len() >= 8,
        "queries while the upstream was down: {}",
        down.len()
    );
    for s in &down {
        assert_eq!(
            s.rcode,
            Some(ResponseCode::ServFail),
            "{} while down",
            s.name
        );
        assert!(
            s.latency <= budget + SLACK,
            "SERVFAIL after {:?}, budget {budget:?}",
            s.latency
        );
    }
    // Back on the same port: the long-lived upstream sockets reach it again at once.
    assert!(after.len() > 50, "load after the restart: {}", after.len());
    for s in &after {
        assert_eq!(
            s.rcode,
            Some(ResponseCode::NoError),
            "{} after the restart",
            s.name
        );
    }
    assert!(dw.app.engine().stats.snapshot().upstream_failures >= down.len() as u64);
}

// ---------------------------------------------------------------------------------------------
// (b) upstream answering slowly; serve-stale
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_servfails_within_budget() {
    let _g = LOAD.lock().await;
    let up = FaultUpstream::start().await;
    let budget = Duration::from_millis(500);
    let dw = start_dnsward(fault_config(&[up.addr], 500)).await;
    // Slow but inside the budget: answered.
    up.set(Mode::Slow(150));
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let s = ask(&sock, dw.addr, "a.slow.example.org", Duration::from_secs(3)).await;
    assert_eq!(s.rcode, Some(ResponseCode::NoError));
    assert!(s.latency >= Duration::from_millis(150), "{:?}", s.latency);
    // Beyond the budget, under load: SERVFAIL, never later than the budget.
    up.set(Mode::Slow(1500));
    let stop = Arc::new(AtomicBool::new(false));
    let load = start_load(
        dw.addr,
        6,
        Duration::from_secs(3),
        Arc::new(|i| format!("n{i}.slow.example.org")),
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_millis(1600)).await;
    stop.store(true, Ordering::Relaxed);
    let all = collect(load).await;
    eprintln!("slow upstream: {}", summary(&all));
    assert_clean(&all, "slow upstream");
    assert!(all.len() >= 12, "{}", all.len());
    for s in &all {
        assert_eq!(s.rcode, Some(ResponseCode::ServFail), "{}", s.name);
        assert!(
            s.latency >= budget - Duration::from_millis(50),
            "waited for the budget: {:?}",
            s.latency
        );
        assert!(
            s.latency <= budget + SLACK,
            "SERVFAIL after {:?}",
            s.latency
        );
    }
    // The late answers arriving afterwards are dropped without harm.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    up.set(Mode::Good);
    let s = ask(&sock, dw.addr, "b.slow.example.org", Duration::from_secs(3)).await;
    assert_eq!(s.rcode, Some(ResponseCode::NoError));
    assert_eq!(s.a, Some(addr_for("b.slow.example.org")));
}

/// `[cache] serve_stale_secs` (RFC 8767): when the upstream fails, an answer expired at most
/// that long ago is served with TTL 30; older ones are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stale_answers_from_the_expired_cache_when_the_upstream_fails() {
    let _g = LOAD.lock().await;
    let up = FaultUpstream::start().await;
    up.ttl.store(1, Ordering::Relaxed);
    // Set through the TOML so this file builds whether or not the key exists yet.
    let mut cfg = dnsward::Config::parse("[cache]\nserve_stale_secs = 3\n")
        .expect("[cache] serve_stale_secs is a config key");
    let base = fault_config(&[up.addr], 500);
    cfg.server = base.server;
    cfg.upstream = base.upstream;
    cfg.admin.enabled = false;
    let dw = start_dnsward(cfg).await;
    let name = "stale.example.org.";
    let fresh = udp(dw.addr, &query(name, RecordType::A, None)).await;
    assert_eq!(fresh.answers[0].ttl, 1);
    // Expired (TTL 1, 1.5 s later), upstream stalls: the stale answer, TTL 30, within the budget.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    up.set(Mode::Silent);
    let started = Instant::now();
    let stale = udp(dw.addr, &query(name, RecordType::A, None)).await;
    let took = started.elapsed();
    assert_eq!(stale.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        rrs(&stale.answers),
        rrs(&fresh.answers),
        "the cached answer"
    );
    // RFC 8767 recommends 30 s for stale answers; dnsward never stretches a record's own TTL
    // beyond what the upstream gave (min(original TTL, 30)).
    assert_eq!(
        stale.answers[0].ttl,
        fresh.answers[0].ttl.min(30),
        "stale TTL"
    );
    assert!(dw.app.engine().stats.snapshot().served_stale >= 1);
    assert!(took <= Duration::from_millis(500) + SLACK, "{took:?}");
    // Names never cached still fail.
    let other = udp(dw.addr, &query("never.example.org.", RecordType::A, None)).await;
    assert_eq!(other.metadata.response_code, ResponseCode::ServFail);
    // More than serve_stale_secs past expiry: SERVFAIL.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let late = udp(dw.addr, &query(name, RecordType::A, None)).await;
    assert_eq!(late.metadata.response_code, ResponseCode::ServFail);
    // The upstream back: fresh answers again.
    up.set(Mode::Good);
    let back = udp(dw.addr, &query(name, RecordType::A, None)).await;
    assert_eq!(back.metadata.response_code, ResponseCode::NoError);
    assert_eq!(back.answers[0].ttl, 1);
}

// ---------------------------------------------------------------------------------------------
// (c) upstream answering garbage
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_garbage_is_ignored_servfailed_or_failed_over() {
    let _g = LOAD.lock().await;
    let budget = Duration::from_millis(500);
    let bad = FaultUpstream::start().await;
    let good = FaultUpstream::start().await;
    let dw = start_dnsward(fault_config(&[bad.addr], 500)).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for (i, kind) in GARBAGE.into_iter().enumerate() {
        // Garbage first, then the real answer: the garbage is ignored, the answer accepted.
        bad.set(Mode::Garbage(kind, true));
        let name = format!("g{i}.ignored.example.org");
        let s = ask(&sock, dw.addr, &name, Duration::from_secs(3)).await;
        assert_clean(std::slice::from_ref(&s), "garbage then answer");
        assert_eq!(s.rcode, Some(ResponseCode::NoError), "{kind:?}");
        assert!(
            s.latency < Duration::from_millis(200),
            "{kind:?}: {:?}",
            s.latency
        );
        // Only garbage: SERVFAIL within the budget.
        bad.set(Mode::Garbage(kind, false));
        let name = format!("g{i}.only.example.org");
        let s = ask(&sock, dw.addr, &name, Duration::from_secs(3)).await;
        assert_clean(std::slice::from_ref(&s), "garbage only");
        assert_eq!(s.rcode, Some(ResponseCode::ServFail), "{kind:?}");
        assert!(s.latency <= budget + SLACK, "{kind:?}: {:?}", s.latency);
    }
    // A garbage upstream first in the list, a good one second: the answer comes from the good
    // one within the budget, and later queries go there first.
    for (i, kind) in GARBAGE.into_iter().enumerate() {
        bad.set(Mode::Garbage(kind, false));
        // Name stages and answer checks off: they do not touch upstream handling, and loading
        // them five more times costs seconds in a debug build.
        let mut cfg = fault_config(&[bad.addr, good.addr], 500);
        cfg.dga.enabled = false;
        cfg.intel.enabled = false;
        let dw = start_dnsward(cfg).await;
        let s = ask(
            &sock,
            dw.addr,
            &format!("f{i}.failover.example.org"),
            Duration::from_secs(3),
        )
        .await;
        assert_clean(std::slice::from_ref(&s), "failover");
        assert_eq!(s.rcode, Some(ResponseCode::NoError), "{kind:?}");
        assert!(s.latency <= budget + SLACK, "{kind:?}: {:?}", s.latency);
        let s = ask(
            &sock,
            dw.addr,
            &format!("h{i}.failover.example.org"),
            Duration::from_secs(3),
        )
        .await;
        assert_eq!(s.rcode, Some(ResponseCode::NoError));
        assert!(
            s.latency < Duration::from_millis(200),
            "{kind:?}: {:?}",
            s.latency
        );
    }
    // Everything survived: the server still answers normally.
    bad.set(Mode::Good);
    let s = ask(&sock, dw.addr, "after.example.org", Duration::from_secs(3)).await;
    assert_eq!(s.rcode, Some(ResponseCode::NoError));
}

// ---------------------------------------------------------------------------------------------
// (d) reload under load (App::reload and SIGHUP to the binary)
// ---------------------------------------------------------------------------------------------

/// Rebuilding the answer checks' built-in lists dominates a reload in a debug build (about a
/// second); without them a reload takes milliseconds, so the load sees many reloads.
const INTEL_OFF: &str = "[intel]\nenabled = false\n";

/// A mix of names: cached ones, fresh ones, one always denied, one denied every other reload.
fn reload_mix(i: u64) -> String {
    match i % 10 {
        0 => "bad.example.org".into(),
        1 => "flip.example.org".into(),
        2..=5 => format!("c{}.cached.example.org", i % 50),
        _ => format!("n{i}.fresh.example.org"),
    }
}

fn check_reload_answers(all: &[Sample], what: &str) {
    assert_clean(all, what);
    for s in all {
        let r = s.rcode.unwrap();
        match s.name.as_str() {
            "bad.example.org" => assert_eq!(r, ResponseCode::NXDomain, "{what}: {}", s.name),
            "flip.example.org" => assert!(
                r == ResponseCode::NXDomain || r == ResponseCode::NoError,
                "{what}: {r:?}"
            ),
            _ => assert_eq!(r, ResponseCode::NoError, "{what}: {}", s.name),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_loses_nothing() {
    let _g = LOAD.lock().await;
    let up = FaultUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let deny = dir.path().join("deny.txt");
    std::fs::write(&deny, "bad.example.org\n").unwrap();
    let cfg_path = dir.path().join("dnsward.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[lists]\ndeny = [\"deny.txt\"]\n[upstream]\nservers = [\"{}\"]\n[admin]\nenabled = false\n{INTEL_OFF}",
            up.addr
        ),
    )
    .unwrap();
    let mut cfg = dnsward::Config::load(&cfg_path).unwrap();
    cfg.server.listen = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.server.workers = 2;
    let dw = start_dnsward_with_path(cfg, Some(cfg_path)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = start_load(
        dw.addr,
        8,
        Duration::from_secs(2),
        Arc::new(reload_mix),
        stop.clone(),
    );
    let started = Instant::now();
    let mut reloads = 0;
    while started.elapsed() < Duration::from_millis(2500) {
        let text = if reloads % 2 == 0 {
            "bad.example.org\nflip.example.org\n"
        } else {
            "bad.example.org\n"
        };
        std::fs::write(&deny, text).unwrap();
        let t = Instant::now();
        tokio::task::block_in_place(|| dw.app.reload()).expect("reload");
        if reloads == 0 {
            eprintln!("one reload: {:?}", t.elapsed());
        }
        reloads += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let all = collect(load).await;
    eprintln!("reload under load ({reloads} reloads): {}", summary(&all));
    assert!(reloads >= 20, "{reloads}");
    assert!(all.len() > 500, "{}", all.len());
    check_reload_answers(&all, "App::reload under load");
    let flips: Vec<_> = all
        .iter()
        .filter(|s| s.name == "flip.example.org")
        .collect();
    assert!(flips
        .iter()
        .any(|s| s.rcode == Some(ResponseCode::NXDomain)));
    assert!(flips.iter().any(|s| s.rcode == Some(ResponseCode::NoError)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_under_load_loses_nothing() {
    use std::process::{Command, Stdio};
    let _g = LOAD.lock().await;
    let up = FaultUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let deny = dir.path().join("deny.txt");
    std::fs::write(&deny, "bad.example.org\n").unwrap();
    let cfg_path = dir.path().join("dnsward.toml");
    std::fs::write(
        &cfg_path,
        format!("[lists]\ndeny = [\"deny.txt\"]\n{INTEL_OFF}"),
    )
    .unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dnsward"))
        .args(["serve", "--workers", "2", "--admin", "off", "--log", "info"])
        .args([
            "--listen",
            &listen,
            "--upstream",
            &up.addr.to_string(),
            "--config",
        ])
        .arg(&cfg_path)
        .current_dir(dir.path())
        .stdout(Stdio::null())
        // A file, not a pipe: a full pipe would stall the server's logging (and so the server).
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let addr: SocketAddr = listen.parse().unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut ready = false;
    for _ in 0..100 {
        if ask(&sock, addr, "ready.example.org", Duration::from_millis(100))
            .await
            .rcode
            .is_some()
        {
            ready = true;
            break;
        }
    }
    assert!(ready, "dnsward serve answers");
    let stop = Arc::new(AtomicBool::new(false));
    let load = start_load(
        addr,
        8,
        Duration::from_secs(2),
        Arc::new(reload_mix),
        stop.clone(),
    );
    let started = Instant::now();
    let mut hups = 0;
    while started.elapsed() < Duration::from_millis(2000) {
        let text = if hups % 2 == 0 {
            "bad.example.org\nflip.example.org\n"
        } else {
            "bad.example.org\n"
        };
        std::fs::write(&deny, text).unwrap();
        let st = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        hups += 1;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let all = collect(load).await;
    eprintln!("SIGHUP under load ({hups} signals): {}", summary(&all));
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(status.success(), "clean exit: {status:?}\n{log}");
    let reloaded = log.matches("reloaded lists and policy").count();
    assert!(reloaded >= 10, "reloads logged: {reloaded}");
    assert!(!log.contains("reload failed"), "{log}");
    assert!(all.len() > 300, "{}", all.len());
    check_reload_answers(&all, "SIGHUP under load");
}

// ---------------------------------------------------------------------------------------------
// (e) event store disk full
// ---------------------------------------------------------------------------------------------

async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut body))
        .await
        .unwrap()
        .unwrap();
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_store_disk_full_keeps_dns_answering_and_reports_degraded() {
    let _g = LOAD.lock().await;
    let up = FaultUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let deny = dir.path().join("deny.txt");
    std::fs::write(&deny, "bad.example.org\n").unwrap();
    let mut cfg = fault_config(&[up.addr], 1000);
    cfg.lists.deny = vec![deny];
    with_admin(&mut cfg, dir.path());
    cfg.admin.log_all_queries = true;
    let dw = start_dnsward(cfg).await;
    let store = dw.app.store.clone().unwrap();
    let admin = dw.app.admin.as_ref().unwrap().addr;
    // Some events on disk first.
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..20 {
        let _ = ask(
            &sock,
            dw.addr,
            &format!("w{i}.example.org"),
            Duration::from_secs(2),
        )
        .await;
    }
    let _ = ask(&sock, dw.addr, "bad.example.org", Duration::from_secs(2)).await;
    // The engine hands answered names over in wire form; the log holds them as lowercase text
    // (the query log lists answers; the block goes to the block list).
    let _ = ask(&sock, dw.addr, "W7.Example.ORG", Duration::from_secs(2)).await;
    store.flush();
    assert!(!store.is_degraded());
    let logged = http_get(admin, "/api/v1/queries?limit=100").await;
    assert!(logged.contains("\"count\":21"), "{logged}");
    assert_eq!(logged.matches("\"w7.example.org\"").count(), 2, "{logged}");
    assert!(logged.contains("\"w19.example.org\""), "{logged}");
    // The disk is full: the database may not grow by a single page from now on (SQLITE_FULL on
    // the next write, as ENOSPC would give; works unprivileged, unlike a full filesystem).
    let pages = std::fs::metadata(dir.path().join("events.sqlite3"))
        .unwrap()
        .len()
        / 4096;
    store
        .exec_on_writer(&format!("PRAGMA max_page_count = {}", pages.max(1)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let load = start_load(
        dw.addr,
        6,
        Duration::from_secs(2),
        Arc::new(|i| {
            if i % 5 == 0 {
                "bad.example.org".into()
            } else {
                format!("n{i}-{}.full.example.org", "x".repeat(40))
            }
        }),
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    store.flush();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let all = collect(load).await;
    eprintln!("disk full: {}", summary(&all));
    assert_clean(&all, "disk full");
    assert!(all.len() > 300, "{}", all.len());
    for s in &all {
        let want = if s.name == "bad.example.org" {
            ResponseCode::NXDomain
        } else {
            ResponseCode::NoError
        };
        assert_eq!(s.rcode, Some(want), "{}", s.name);
        assert!(s.latency < Duration::from_millis(500), "{:?}", s.latency);
    }
    store.flush();
    assert!(store.is_degraded(), "the store says it is degraded");
    let c = store.counters();
    eprintln!(
        "  store: write_errors {} lost {} dropped {}",
        c.write_errors.load(Ordering::Relaxed),
        c.lost.load(Ordering::Relaxed),
        c.dropped.load(Ordering::Relaxed)
    );
    assert!(c.write_errors.load(Ordering::Relaxed) >= 1);
    // The admin API says so too, and keeps serving blocks (from memory).
    let health = http_get(admin, "/healthz").await;
    assert!(health.contains("\"store_degraded\":true"), "{health}");
    let stats = http_get(admin, "/api/v1/stats").await;
    assert!(stats.contains("\"degraded\":true"), "{stats}");
    let metrics = http_get(admin, "/metrics").await;
    assert!(metrics.contains("dnsward_store_degraded 1"), "{metrics}");
    let blocks = http_get(admin, "/api/v1/blocks?limit=5").await;
    assert!(blocks.contains("bad.example.org"), "{blocks}");
}

// ---------------------------------------------------------------------------------------------
// Hostile input: the fuzz corpus (and committed crash reproducers) through the request path.
// ---------------------------------------------------------------------------------------------

/// The harness really exercises per-client escalation: the band name (between the escalated and
/// the default DGA threshold) is NXDOMAIN for the escalated client on the miss and on the cache
/// hit, and answered for the same query from an ordinary client.
#[test]
fn fuzz_harness_escalated_client_gets_the_looser_verdict() {
    use dnsward_server::fuzzing::flags;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let seed = std::fs::read(root.join("corpus/request_path/escalated-band-name")).unwrap();
    assert_eq!(seed[0], flags::ESCALATED | flags::ASK_TWICE);
    let path = fuzz_harness::request_path();
    let rcode = |r: &dnsward_server::fuzzing::Reply| r.response.as_ref().unwrap()[3] & 0x0f;
    let out = fuzz_harness::run_and_check(&path, &seed).unwrap();
    assert_eq!(rcode(&out.first), 3, "escalated client, miss: NXDOMAIN");
    assert_eq!(
        rcode(out.second.as_ref().unwrap()),
        3,
        "escalated client, cache hit: NXDOMAIN"
    );
    let mut ordinary = seed.clone();
    ordinary[0] = flags::ASK_TWICE;
    let out = fuzz_harness::run_and_check(&path, &ordinary).unwrap();
    assert_eq!(rcode(&out.first), 0, "ordinary client: answered");
    assert_eq!(rcode(out.second.as_ref().unwrap()), 0);
}

/// The harness really exercises the shared-infrastructure rules: its IOC list holds a CDN edge
/// range, a public-service domain and a public suffix. Those seeds get the upstream's address;
/// a listed address for a name of its own gets the sinkhole.
#[test]
fn fuzz_harness_shared_infrastructure_hits_are_answered() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let path = fuzz_harness::request_path();
    let first_a = |seed: &str| {
        let data = std::fs::read(root.join("corpus/request_path").join(seed)).unwrap();
        let out = fuzz_harness::run_and_check(&path, &data).unwrap();
        let msg =
            hickory_proto::op::Message::from_vec(out.first.response.as_ref().unwrap()).unwrap();
        msg.answers
            .iter()
            .find(|r| r.record_type() == RecordType::A)
            .map(|r| r.data.to_string())
    };
    for (seed, want) in [
        ("ioc-shared-edge", "104.16.1.1"),
        ("ioc-shared-popular", "198.51.100.7"),
        ("ioc-shared-listed-service", "192.0.2.10"),
        ("ioc-shared-listed-suffix", "192.0.2.10"),
        ("ioc-cidr", "10.99.0.1"),
    ] {
        assert_eq!(first_a(seed).as_deref(), Some(want), "{seed}");
    }
}

/// The harness's IPv6 client is in a monitored client group: what the IPv4 client gets
/// sinkholed, it gets answered, from the upstream and then from the cache.
#[test]
fn fuzz_harness_monitored_group_gets_the_real_answer() {
    use dnsward_server::fuzzing::flags;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let path = fuzz_harness::request_path();
    let seed = std::fs::read(root.join("corpus/request_path/ioc-cidr")).unwrap();
    let answers = |data: &[u8]| {
        let out = fuzz_harness::run_and_check(&path, data).unwrap();
        std::iter::once(out.first)
            .chain(out.second)
            .map(|r| {
                let msg =
                    hickory_proto::op::Message::from_vec(r.response.as_ref().unwrap()).unwrap();
                msg.answers
                    .iter()
                    .find(|r| r.record_type() == RecordType::A)
                    .map(|r| r.data.to_string())
            })
            .collect::<Vec<_>>()
    };
    let v4 = answers(&seed);
    assert_eq!(v4[0].as_deref(), Some("10.99.0.1"), "sinkholed: {v4:?}");
    let mut monitored = seed.clone();
    monitored[0] |= flags::IPV6 | flags::ASK_TWICE;
    monitored[0] &= !flags::OUTSIDE_ACL;
    let v6 = answers(&monitored);
    assert_eq!(v6.len(), 2, "{v6:?}");
    for a in &v6 {
        assert!(a.is_some() && a.as_deref() != Some("10.99.0.1"), "{v6:?}");
    }
}

#[test]
fn fuzz_corpus_replays_without_panics_or_malformed_responses() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let path = fuzz_harness::request_path();
    let mut files = Vec::new();
    for sub in ["corpus/request_path", "artifacts/request_path"] {
        if let Ok(rd) = std::fs::read_dir(root.join(sub)) {
            for e in rd {
                let p = e.unwrap().path();
                if p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.') {
                    files.push(p);
                }
            }
        }
    }
    files.sort();
    assert!(
        files.len() >= 100,
        "the seed corpus is there: {}",
        files.len()
    );
    let (mut answered, mut silent, mut upstream) = (0, 0, 0);
    for f in &files {
        let data = std::fs::read(f).unwrap();
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            fuzz_harness::run_and_check(&path, &data)
        }));
        match out {
            Err(_) => panic!("{}: panicked", f.display()),
            Ok(Err(e)) => panic!("{}: {e}", f.display()),
            Ok(Ok(o)) => {
                if o.first.response.is_some() {
                    answered += 1;
                } else {
                    silent += 1;
                }
                if o.first.went_upstream {
                    upstream += 1;
                }
            }
        }
    }
    eprintln!(
        "{} inputs: {answered} answered, {silent} deliberately silent, {upstream} through the upstream path",
        files.len()
    );
    assert!(
        upstream >= 40 && answered >= 100,
        "the corpus reaches the whole path"
    );
}
