#![allow(dead_code)]

use dnsward_admin::{AdminBackend, AdminConfig, AdminStats, EventStore, Histogram, IocListStat};
use dnsward_policy::{Action, Category, Reason, Stage, Verdict};
use dnsward_server::events::{EventSink, Outcome, QueryEvent};
use dnsward_server::stats::StatsSnapshot;
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const TOKEN: &str = "test-token-0123456789abcdef";

pub fn config(dir: &std::path::Path) -> AdminConfig {
    AdminConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        db_path: dir.join("events.sqlite3"),
        ..Default::default()
    }
}

pub fn dga_verdict(score: f32) -> Verdict {
    let mut r = Reason::new(Stage::NameClassifier, "dga-model", "char-cnn");
    r.score = Some(score);
    r.family = Some("conficker".into());
    Verdict::block(Category::Dga, Action::Nxdomain, r)
}

pub fn list_verdict(rule: &str) -> Verdict {
    let mut r = Reason::new(Stage::Denylist, "lists/deny.txt:12", "");
    r.rule = Some(rule.into());
    Verdict::block(Category::List, Action::Nxdomain, r)
}

pub fn escalated_verdict(name: &str) -> Verdict {
    let mut r = Reason::new(
        Stage::ClientEscalation,
        "dga-model",
        format!("{name}: DGA probability 0.9440 >= escalated threshold 0.8958"),
    );
    r.score = Some(0.944);
    r.family = Some("conficker".into());
    Verdict::block(Category::Dga, Action::Nxdomain, r)
}

pub fn ioc_verdict() -> Verdict {
    let r = Reason::new(
        Stage::AnswerCheck,
        "ioc",
        "answer 203.0.113.9 in feed seed-iocs",
    );
    Verdict::block(Category::Ioc, Action::Sinkhole, r)
}

pub fn record(
    sink: &dyn EventSink,
    at: SystemTime,
    client: &str,
    name: &str,
    verdict: &Verdict,
    rcode: u8,
) {
    let outcome = if verdict.is_block() {
        Outcome::Blocked
    } else {
        Outcome::Answered
    };
    sink.record(&QueryEvent {
        time: at,
        client: client.parse::<IpAddr>().unwrap(),
        qname: name,
        qtype: 1,
        verdict,
        rcode,
        from_cache: false,
        outcome,
    });
}

pub struct FakeBackend {
    pub reloads: AtomicU64,
    pub fail_reload: std::sync::atomic::AtomicBool,
    pub upstream: Histogram,
    pub classifier: Histogram,
}

impl FakeBackend {
    pub fn new() -> Arc<FakeBackend> {
        let b = FakeBackend {
            reloads: AtomicU64::new(0),
            fail_reload: Default::default(),
            upstream: Histogram::new(),
            classifier: Histogram::new(),
        };
        for us in [800, 1200, 15_000, 40_000] {
            b.upstream.observe_us(us);
        }
        b.classifier.observe_us(90);
        Arc::new(b)
    }
}

impl AdminBackend for FakeBackend {
    fn explain(&self, name: &str, client: Option<std::net::IpAddr>) -> Value {
        if name.contains("evil") {
            let mut v = list_verdict("||evil.example^");
            // 10.9.0.0/16 stands for a monitored client group, as `Policy::for_client` gives it.
            if client.is_some_and(|c| c.to_string().starts_with("10.9.")) {
                v.kind = dnsward_policy::VerdictKind::Block {
                    category: Category::List,
                    action: Action::Log,
                };
                v.reason.as_mut().unwrap().client_group = Some("lab".into());
            }
            let mut j = serde_json::to_value(&v).unwrap();
            j["blocked"] = Value::from(v.is_enforced());
            j
        } else if name.contains("xjw3kqpz0a") {
            // Passes for most clients; blocked for an escalated one (as the server reports it).
            let mut v = serde_json::to_value(Verdict::PASS).unwrap();
            v["if_escalated"] = serde_json::to_value(escalated_verdict(name)).unwrap();
            v
        } else {
            serde_json::to_value(Verdict::PASS).unwrap()
        }
    }
    fn reload(&self) -> Result<(), String> {
        self.reloads.fetch_add(1, Ordering::SeqCst);
        if self.fail_reload.load(Ordering::SeqCst) {
            Err("lists/deny.txt: permission denied".into())
        } else {
            Ok(())
        }
    }
    fn stats(&self) -> AdminStats {
        AdminStats {
            engine: Some(StatsSnapshot {
                queries_udp: 1000,
                queries_tcp: 20,
                malformed: 1,
                refused_acl: 2,
                rate_limited: 3,
                dropped_overload: 0,
                upstream_failures: 4,
                servfail: 5,
                truncated: 6,
                served_stale: 0,
                clients_escalated: 2,
                blocks_by_category: vec![
                    ("list", 7),
                    ("dga", 30),
                    ("flux", 0),
                    ("ioc", 1),
                    ("parking", 0),
                ],
                blocks_by_action: vec![
                    ("nxdomain", 37),
                    ("sinkhole", 1),
                    ("refused", 0),
                    ("log", 0),
                ],
            }),
            cache_entries: 321,
            cache_bytes: 65536,
            cache_hits: 750,
            cache_misses: 250,
            escalated_clients: vec![("10.0.0.7".parse().unwrap(), 21000)],
            answer_history_domains: Some(4321),
            ioc_lists: vec![
                IocListStat {
                    file: "feodo \"ips\".txt".into(),
                    entries: 250,
                    modified_unix: Some(1_000_000_000),
                    max_age_secs: Some(30 * 86_400),
                    trial: false,
                },
                IocListStat {
                    file: "inline".into(),
                    entries: 3,
                    modified_unix: None,
                    max_age_secs: Some(30 * 86_400),
                    trial: true,
                },
            ],
            reloads_ok: 3,
            reloads_failed: 1,
            last_reload_error: Some("lists/deny.txt: permission denied".into()),
            monitor: true,
            client_groups: vec![dnsward_policy::ClientGroup {
                name: "pilot".into(),
                clients: vec!["10.1.2.0/24".parse().unwrap()],
                monitor: false,
            }],
        }
    }
    fn upstream_latency(&self) -> Option<&Histogram> {
        Some(&self.upstream)
    }
    fn classifier_latency(&self) -> Option<&Histogram> {
        Some(&self.classifier)
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Minimal HTTP/1.1 client (Connection: close).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Resp {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Store a realistic mix: list blocks, a DGA burst from one client, an IOC lookup.
pub fn seed(store: &EventStore) {
    let now = SystemTime::now();
    let t = |s: u64| now - Duration::from_secs(s);
    record(
        store,
        t(50),
        "10.0.0.2",
        "ads.tracker.example",
        &list_verdict("||tracker.example^"),
        3,
    );
    record(
        store,
        t(40),
        "10.0.0.3",
        "ads.tracker.example",
        &list_verdict("||tracker.example^"),
        3,
    );
    record(
        store,
        t(30),
        "10.0.0.3",
        "c2.badhost.example",
        &ioc_verdict(),
        0,
    );
    for i in 0..20u64 {
        let name = format!("x{i}qjzkvbwplrt.net");
        let rcode = if i % 4 == 0 { 0 } else { 3 };
        record(
            store,
            t(20 - i),
            "10.0.0.66",
            &name,
            &dga_verdict(0.97),
            rcode,
        );
    }
    store.flush();
}
