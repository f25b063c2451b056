//! CPU cost of the engine's synchronous half: parsing a query and answering it from the cache
//! (the path every cache hit takes), and the miss path's query parsing + name text.
//!
//!   cargo bench -p dnsward-server --bench hot_path

use criterion::{criterion_group, criterion_main, Criterion};
use dnsward_policy::{ClientEscalation, DomainSet, EscalationParams, Policy, SinkholeConfig};
use dnsward_server::cache::CacheConfig;
use dnsward_server::engine::{EngineParts, Fast};
use dnsward_server::upstream::{UpstreamConfig, UpstreamSpec, Upstreams};
use dnsward_server::{wire, Engine, ServerConfig, TracingSink, Transport};
use std::hint::black_box;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn query(name: &str) -> Vec<u8> {
    let mut pkt = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    pkt.extend(wire::text_to_wire(name).unwrap());
    pkt.extend([0, 1, 0, 1]);
    // OPT: payload 1232
    pkt.extend([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    pkt
}

/// A tiny upstream: answers every query with one A record.
fn spawn_responder() -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let q = &buf[..n];
            let qend = wire::skip_name(q, 12).unwrap() + 4;
            let mut r = q[..qend].to_vec();
            r[2] = 0x81;
            r[3] = 0x80;
            r[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
            r.extend([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 1]);
            let _ = sock.send_to(&r, peer);
        }
    });
    addr
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let up = spawn_responder();
    let mut deny = DomainSet::new();
    deny.load_str("deny", "ads.example\n*.tracker.example\n");
    let engine = rt.block_on(async {
        let upstreams = Upstreams::new(&[UpstreamSpec::plain(up)], &UpstreamConfig::default())
            .await
            .unwrap();
        Engine::new(EngineParts {
            server: ServerConfig::default(),
            cache: CacheConfig::default(),
            sinkhole: SinkholeConfig::default(),
            policy: Policy::builder().deny(deny).build(),
            upstreams,
            events: Arc::new(TracingSink),
        })
    });
    let engine = Arc::new(engine);
    let client: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let pkt = query("www.example.com");
    let mut out = Vec::with_capacity(4096);
    rt.block_on(engine.answer(&pkt, client, Transport::Udp, &mut out));
    assert!(matches!(
        engine.answer_fast(&pkt, client, Transport::Udp, &mut out),
        Fast::Respond
    ));

    c.bench_function("parse_query", |b| {
        b.iter(|| black_box(wire::parse_query(black_box(&pkt)).unwrap()))
    });
    c.bench_function("cache_hit_answer_fast", |b| {
        b.iter(|| {
            let r = engine.answer_fast(black_box(&pkt), client, Transport::Udp, &mut out);
            black_box(matches!(r, Fast::Respond));
        })
    });
    let policy = engine.policy();
    c.bench_function("judge_name_lists", |b| {
        b.iter(|| black_box(policy.judge_name(black_box("a.b.www.example.com"))))
    });

    // Per-client escalation on: with no client escalated, with another client escalated (a
    // lock-free map lookup that misses), then with this client escalated (the name checks' escalated pass runs;
    // this policy has none, so it is the lookup and the name text).
    let escalation = Arc::new(ClientEscalation::new(EscalationParams {
        after: 1,
        window: Duration::from_secs(3600),
        hold: Duration::from_secs(3600),
        exempt: vec![],
        max_clients: 65536,
    }));
    let mut deny = DomainSet::new();
    deny.load_str("deny", "ads.example\n*.tracker.example\n");
    engine.set_policy(
        Policy::builder()
            .deny(deny)
            .escalation(escalation.clone())
            .build(),
    );
    rt.block_on(engine.answer(&pkt, client, Transport::Udp, &mut out));
    c.bench_function("cache_hit_answer_fast_escalation_on_none_escalated", |b| {
        b.iter(|| {
            let r = engine.answer_fast(black_box(&pkt), client, Transport::Udp, &mut out);
            black_box(matches!(r, Fast::Respond));
        })
    });
    let now = Instant::now();
    escalation.record_strike("10.9.9.9".parse().unwrap(), "dga.example", now);
    c.bench_function("cache_hit_answer_fast_escalation_other_client", |b| {
        b.iter(|| {
            let r = engine.answer_fast(black_box(&pkt), client, Transport::Udp, &mut out);
            black_box(matches!(r, Fast::Respond));
        })
    });
    escalation.record_strike(client.ip(), "dga.example", now);
    assert!(escalation.is_escalated(client.ip(), Instant::now()));
    c.bench_function("cache_hit_answer_fast_escalated_client", |b| {
        b.iter(|| {
            let r = engine.answer_fast(black_box(&pkt), client, Transport::Udp, &mut out);
            black_box(matches!(r, Fast::Respond));
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
