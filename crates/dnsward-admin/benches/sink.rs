//! Cost of `EventStore::record` on the DNS path: a block, an unblocked query with query logging
//! on, and an unblocked query with only client scoring on (suffix pre-filter, nothing queued).

use criterion::{criterion_group, criterion_main, Criterion};
use dnsward_admin::{AdminConfig, EventStore};
use dnsward_policy::{Action, Category, Reason, Stage, Verdict};
use dnsward_server::events::{EventSink, Outcome, QueryEvent};
use std::hint::black_box;
use std::time::SystemTime;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mk = |log_all: bool| {
        EventStore::open(&AdminConfig {
            db_path: dir.path().join(format!("b{log_all}.sqlite3")),
            log_all_queries: log_all,
            ..Default::default()
        })
        .unwrap()
    };
    let logging = mk(true);
    let scoring_only = mk(false);
    let mut r = Reason::new(Stage::NameClassifier, "dga-model", "char-cnn");
    r.score = Some(0.97);
    let block = Verdict::block(Category::Dga, Action::Nxdomain, r);
    let block: &'static Verdict = Box::leak(Box::new(block));
    let pass: &'static Verdict = Box::leak(Box::new(Verdict::PASS));
    let client = "10.1.2.3".parse().unwrap();
    let now = SystemTime::now();
    let ev = |v: &'static Verdict, outcome| QueryEvent {
        time: now,
        client,
        qname: "www.example.com",
        qtype: 1,
        verdict: v,
        rcode: 0,
        from_cache: false,
        outcome,
    };
    let blocked = ev(block, Outcome::Blocked);
    let answered = ev(pass, Outcome::Answered);
    let mut g = c.benchmark_group("sink_record");
    g.bench_function("block", |b| b.iter(|| logging.record(black_box(&blocked))));
    g.bench_function("query_logging_on", |b| {
        b.iter(|| logging.record(black_box(&answered)))
    });
    g.bench_function("scoring_only_unblocked", |b| {
        b.iter(|| scoring_only.record(black_box(&answered)))
    });
    g.finish();
    println!(
        "dropped while benchmarking (queue full, writer slower than the bench loop): {}",
        logging
            .counters()
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
