//! Per-answer cost of the answer stage (`observe`). Uses the real MMDBs when
//! `/work/shared/data/geo/{asn,country}.mmdb` exist (or DNSWARD_ASN_MMDB / DNSWARD_COUNTRY_MMDB),
//! replaying a generated realistic stream; otherwise prefix-only mode on synthetic answers.
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dnsward_intel::eval::Record;
use dnsward_intel::{gen, AnswerAnalyzer, IntelConfig, Observation};
use std::net::IpAddr;
use std::path::PathBuf;

fn env_path(var: &str, default: &str) -> Option<PathBuf> {
    let p = std::env::var(var)
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(default));
    p.exists().then_some(p)
}

struct Owned {
    name: String,
    addrs: Vec<(IpAddr, u32)>,
    cnames: Vec<(String, u32)>,
    ns: Vec<(String, u32)>,
    ns_addrs: Vec<IpAddr>,
    t: u64,
}

fn load(cfg: &IntelConfig) -> Vec<Owned> {
    let a = AnswerAnalyzer::new(cfg).unwrap();
    let recs: Vec<Record> = if a.geo().has_asn() {
        gen::generate_records(a.geo(), a.lists(), &gen::GenConfig::default())
            .unwrap()
            .0
    } else {
        (0..5000u32)
            .map(|i| {
                let n = if i % 10 == 0 { 6 } else { 1 + i % 3 };
                let line = serde_json::json!({"t": 1000 + i as u64, "name": format!("d{}.example", i % 700),
                    "answers": (0..n).map(|j| serde_json::json!({"ip": format!("{}.{}.{}.{}", 11 + (i * 7 + j * 13) % 200, (i + j) % 250, j, 1 + i % 250), "ttl": 300})).collect::<Vec<_>>()});
                serde_json::from_value(line).unwrap()
            })
            .collect()
    };
    recs.into_iter()
        .map(|r| Owned {
            name: r.name,
            addrs: r.answers.iter().map(|a| (a.ip, a.ttl)).collect(),
            cnames: r.cnames.into_iter().map(|c| (c.name, c.ttl)).collect(),
            ns: r.ns.into_iter().map(|c| (c.name, c.ttl)).collect(),
            ns_addrs: r.ns_addrs,
            t: r.t,
        })
        .collect()
}

/// Thread CPU time as a criterion measurement: the machine is shared (other builds run next
/// to the bench), and on-CPU time is what the answer stage costs the server.
struct ThreadCpu;

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = std::time::Duration;
    fn start(&self) -> u64 {
        dnsward_intel::eval::thread_cpu_ns().unwrap_or(0)
    }
    fn end(&self, i: u64) -> std::time::Duration {
        std::time::Duration::from_nanos(
            dnsward_intel::eval::thread_cpu_ns()
                .unwrap_or(0)
                .saturating_sub(i),
        )
    }
    fn add(&self, a: &std::time::Duration, b: &std::time::Duration) -> std::time::Duration {
        *a + *b
    }
    fn zero(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
    fn to_f64(&self, v: &std::time::Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WallTime.formatter()
    }
}

fn bench_cpu(c: &mut Criterion<ThreadCpu>) {
    run_bench(c, "observe_cpu")
}

fn bench(c: &mut Criterion) {
    run_bench(c, "observe_wall")
}

fn run_bench<M: Measurement>(c: &mut Criterion<M>, group: &str) {
    let cfg = IntelConfig {
        asn_mmdb: env_path("DNSWARD_ASN_MMDB", "/work/shared/data/geo/asn.mmdb"),
        country_mmdb: env_path("DNSWARD_COUNTRY_MMDB", "/work/shared/data/geo/country.mmdb"),
        ..Default::default()
    };
    let recs = load(&cfg);
    let a = AnswerAnalyzer::new(&cfg).unwrap();
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    let mut tick = 0u64;
    g.bench_function(
        if cfg.asn_mmdb.is_some() {
            "generated_stream_mmdb"
        } else {
            "synthetic_prefix_only"
        },
        |b| {
            b.iter(|| {
                let r = &recs[i % recs.len()];
                i += 1;
                if i.is_multiple_of(recs.len()) {
                    tick += 100_000; // next pass: fresh window
                }
                let cn: Vec<(&str, u32)> = r.cnames.iter().map(|(n, t)| (n.as_str(), *t)).collect();
                let ns: Vec<(&str, u32)> = r.ns.iter().map(|(n, t)| (n.as_str(), *t)).collect();
                let o = Observation {
                    qname: &r.name,
                    addrs: &r.addrs,
                    cnames: &cn,
                    ns: &ns,
                    ns_addrs: &r.ns_addrs,
                };
                a.observe(&o, r.t + tick)
            })
        },
    );
    let flux: Vec<(IpAddr, u32)> = recs
        .iter()
        .max_by_key(|r| r.addrs.len())
        .unwrap()
        .addrs
        .clone();
    g.bench_function("assess_largest_answer", |b| {
        b.iter(|| {
            a.assess(
                &Observation {
                    qname: "x.example",
                    addrs: &flux,
                    cnames: &[],
                    ns: &[],
                    ns_addrs: &[],
                },
                1,
            )
        })
    });
    g.finish();
}

criterion_group! {
    name = wall;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(4)).warm_up_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(ThreadCpu).sample_size(30).measurement_time(std::time::Duration::from_secs(4)).warm_up_time(std::time::Duration::from_secs(1));
    targets = bench_cpu
}
criterion_main!(wall, cpu);
