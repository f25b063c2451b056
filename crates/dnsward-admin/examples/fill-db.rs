//! Fill an event store with N blocks through the real sink and writer, then time API reads.
//!
//! ```sh
//! CARGO_TARGET_DIR=target-admin cargo run --release -p dnsward-admin --example fill-db -- /tmp/dnsward-1m.sqlite3 1000000
//! ```
//! Prints writer throughput (events committed per second), the sink's per-call cost, and the
//! latency of reading the last 1,000 blocks (plain, by client, by category).

use dnsward_admin::{AdminConfig, BlocksQuery, EventStore};
use dnsward_policy::{Action, Category, Reason, Stage, Verdict};
use dnsward_server::events::{EventSink, Outcome, QueryEvent};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "/tmp/dnsward-fill.sqlite3".into());
    let n: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let fresh = !std::path::Path::new(&path).exists();
    // Distinct clients blocks come from (uniformly): 5000 is a worst case for the client index.
    let clients: u64 = std::env::var("CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5000);
    // QUERIES=1: write answered queries with query logging on (the `queries` table) instead.
    let queries = std::env::var("QUERIES").is_ok_and(|v| v == "1");
    let cfg = AdminConfig {
        log_all_queries: queries,
        db_path: path.clone().into(),
        max_events: 0,
        retention_days: 0,
        queue_capacity: 65_536,
        ..Default::default()
    };
    let store = EventStore::open(&cfg).expect("open store");

    let mut dga = Reason::new(Stage::NameClassifier, "dga-model", "char-cnn");
    dga.score = Some(0.97);
    dga.family = Some("conficker".into());
    let dga = Verdict::block(Category::Dga, Action::Nxdomain, dga);
    let mut list = Reason::new(Stage::Denylist, "lists/deny.txt:12", "");
    list.rule = Some("||tracker.example^".into());
    let list = Verdict::block(Category::List, Action::Nxdomain, list);
    let ioc = Verdict::block(
        Category::Ioc,
        Action::Sinkhole,
        Reason::new(Stage::AnswerCheck, "ioc", "answer 203.0.113.9 in seed-iocs"),
    );

    if fresh || n > 0 {
        let start = SystemTime::now() - Duration::from_secs(n / 100 + 1);
        let t0 = Instant::now();
        let cpu0 = process_cpu_secs();
        let mut name = String::new();
        let mut i = 0u64;
        let mut calls = 0u64;
        let mut call_time = Duration::ZERO;
        while i < n {
            let client = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i % clients) as u32));
            // A realistic mix: list blocks repeat a few hundred tracker names (skewed), DGA
            // names are all distinct, IOC names are a few dozen.
            name.clear();
            use std::fmt::Write;
            let (v, rcode) = match i % 10 {
                0..=5 => {
                    let r = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % 1000;
                    let _ = write!(name, "t{}.tracker{}.example", r * r / 1000, r % 13);
                    (&list, 3)
                }
                6..=8 => {
                    let _ = write!(
                        name,
                        "x{:x}q{}.net",
                        i.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 20,
                        i % 97
                    );
                    (&dga, 3)
                }
                _ => {
                    let _ = write!(name, "c2-{}.badhost.example", i % 40);
                    (&ioc, 0)
                }
            };
            let pass = Verdict::PASS;
            let (v, outcome) = if queries {
                (&pass, Outcome::Answered)
            } else {
                (v, Outcome::Blocked)
            };
            let before = store.counters().dropped.load(Relaxed);
            let c0 = Instant::now();
            store.record(&QueryEvent {
                time: start + Duration::from_micros(i * 10),
                client,
                qname: &name,
                qtype: 1,
                verdict: v,
                rcode,
                from_cache: false,
                outcome,
            });
            call_time += c0.elapsed();
            calls += 1;
            if store.counters().dropped.load(Relaxed) > before {
                // Queue full: give the writer a moment (the DNS path would just drop).
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            i += 1;
        }
        store.flush();
        let secs = t0.elapsed().as_secs_f64();
        let cpu = process_cpu_secs() - cpu0;
        // CPU of every thread (generator loop + sink + writer): what logging costs a one-core
        // resolver, whatever else the machine is doing.
        println!(
            "CPU (all threads) {cpu:.2}s: {:.2} us per event, generator loop included",
            cpu * 1e6 / n as f64
        );
        println!(
            "wrote {n} {} in {secs:.2}s: {:.0} events/s committed; sink record() mean {:.0} ns/call over {calls} calls ({} dropped and retried)",
            if queries { "queries" } else { "blocks" },
            n as f64 / secs,
            call_time.as_nanos() as f64 / calls as f64,
            store.counters().dropped.load(Relaxed),
        );
        let h = &store.counters().batch_latency;
        println!(
            "writer: {} batches, mean commit {:.2} ms, p99 <= {:.1} ms",
            h.count(),
            h.mean_us() / 1e3,
            h.quantile_us(0.99).unwrap_or(0) as f64 / 1e3
        );
    }
    if queries {
        for (label, q) in [
            (
                "last 1000 logged queries",
                BlocksQuery {
                    limit: 1000,
                    ..Default::default()
                },
            ),
            (
                "last 1000 logged queries of one client",
                BlocksQuery {
                    limit: 1000,
                    client: Some("10.0.0.7".into()),
                    ..Default::default()
                },
            ),
        ] {
            let mut times = Vec::new();
            let mut rows = 0;
            for _ in 0..21 {
                let t = Instant::now();
                rows = store.queries(&q).unwrap().len();
                times.push(t.elapsed());
            }
            times.sort();
            println!(
                "{label}: {rows} rows of {} stored, median {:.2} ms, max {:.2} ms (21 runs)",
                store.query_count().unwrap(),
                times[10].as_secs_f64() * 1e3,
                times[20].as_secs_f64() * 1e3
            );
        }
    }
    let total = store.block_count().unwrap();
    println!("stored blocks: {total}");
    let measure = |label: &str, q: BlocksQuery| {
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..21 {
            let t = Instant::now();
            rows = store.blocks(&q).unwrap().len();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "{label}: {rows} rows, median {:.2} ms, max {:.2} ms (21 runs)",
            times[10].as_secs_f64() * 1e3,
            times[20].as_secs_f64() * 1e3
        );
    };
    measure(
        "last 1000 blocks",
        BlocksQuery {
            limit: 1000,
            ..Default::default()
        },
    );
    measure(
        "last 1000 blocks of one client",
        BlocksQuery {
            limit: 1000,
            client: Some("10.0.0.7".into()),
            ..Default::default()
        },
    );
    measure(
        "last 1000 dga blocks",
        BlocksQuery {
            limit: 1000,
            category: Some("dga".into()),
            ..Default::default()
        },
    );
    measure(
        "last 10000 blocks (the cap)",
        BlocksQuery {
            limit: 10_000,
            ..Default::default()
        },
    );
    let t = Instant::now();
    let top = store.top(0, 20).unwrap();
    println!(
        "top 20 names over all {total} blocks: {:.1} ms (hourly aggregates; the API also caches it for 5 s)",
        t.elapsed().as_secs_f64() * 1e3
    );
    let _ = top;

    // End to end through the HTTP API (JSON included).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut acfg = cfg.clone();
        acfg.listen = "127.0.0.1:0".parse().unwrap();
        let admin = dnsward_admin::serve(&acfg, store.clone(), std::sync::Arc::new(NoBackend))
            .await
            .unwrap();
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..21 {
            let t = Instant::now();
            bytes = get(admin.addr, "/api/v1/blocks?limit=1000").await;
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "HTTP GET /api/v1/blocks?limit=1000: {bytes} bytes, median {:.2} ms, max {:.2} ms (21 runs)",
            times[10].as_secs_f64() * 1e3,
            times[20].as_secs_f64() * 1e3
        );
        admin.shutdown().await;
    });
}

struct NoBackend;

impl dnsward_admin::AdminBackend for NoBackend {
    fn explain(&self, _: &str, _: Option<std::net::IpAddr>) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn reload(&self) -> Result<(), String> {
        Ok(())
    }
    fn stats(&self) -> dnsward_admin::AdminStats {
        Default::default()
    }
}

async fn get(addr: std::net::SocketAddr, path: &str) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    assert!(buf.starts_with(b"HTTP/1.1 200"));
    buf.len()
}

/// User + system CPU of this process (all threads), from /proc/self/stat (clock ticks, 100 Hz).
fn process_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
