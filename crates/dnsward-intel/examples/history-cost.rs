//! What keeping the answer history across reloads and restarts costs, on a full history:
//! `max_domains` (default 100 000) domains with the generated stream's address mix.
//!
//! ```sh
//! cargo run --release -p dnsward-intel --example history-cost [-- ASN.mmdb COUNTRY.mmdb]
//! ```
//! (default MMDBs: `../shared/data/geo/{asn,country}.mmdb`, prefix-only when missing). Prints the
//! snapshot's size and the time to take and restore it, the time to resize it (a reload that
//! changes `max_domains`), and the CPU cost of an `observe` on a
//! domain whose addresses an earlier analyser classified (the first lookup after a reload)
//! against one this analyser classified.
use dnsward_intel::{gen, AnswerAnalyzer, IntelConfig, Observation};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Instant;

fn existing(p: Option<String>, default: &str) -> Option<PathBuf> {
    let p = PathBuf::from(p.unwrap_or_else(|| default.into()));
    p.exists().then_some(p)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let cfg = IntelConfig {
        asn_mmdb: existing(args.next(), "../shared/data/geo/asn.mmdb"),
        country_mmdb: existing(args.next(), "../shared/data/geo/country.mmdb"),
        ..Default::default()
    };
    let a = AnswerAnalyzer::new(&cfg).expect("analyser");
    // The generated stream's answers (real ASN mix when the MMDB is there), spread over
    // max_domains names so the history is full.
    let (recs, _) =
        gen::generate_records(a.geo(), a.lists(), &gen::GenConfig::default()).expect("generate");
    let n = cfg.max_domains;
    let addrs_of = |i: usize| -> Vec<(IpAddr, u32)> {
        recs[i % recs.len()]
            .answers
            .iter()
            .map(|x| (x.ip, x.ttl))
            .collect()
    };
    let observe = |an: &AnswerAnalyzer, i: usize, t: u64| {
        let addrs = addrs_of(i);
        let name = format!("d{i}.example");
        an.observe(
            &Observation {
                qname: &name,
                addrs: &addrs,
                cnames: &[],
                ns: &[],
                ns_addrs: &[],
            },
            t,
        );
    };
    let now = 1_700_000_000u64;
    for i in 0..n {
        observe(&a, i, now);
    }
    let addrs: usize = (0..n).map(|i| addrs_of(i).len()).sum();
    println!(
        "history: {} domains, {addrs} addresses, ~{} MiB (mmdb: {})",
        a.history().len(),
        a.history().approx_bytes() >> 20,
        a.geo().has_asn()
    );

    let t = Instant::now();
    let snap = a.history().snapshot();
    let snap_ms = t.elapsed().as_secs_f64() * 1e3;
    println!("snapshot: {} bytes in {snap_ms:.1} ms", snap.len());

    let mut b = AnswerAnalyzer::new(&cfg).expect("analyser");
    let t = Instant::now();
    let restored = b
        .history()
        .restore(&snap, now + 60, cfg.window_secs)
        .expect("restore");
    println!(
        "restore: {restored} domains in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );

    // A reload that changes max_domains: the history is copied into one of the new size.
    let half = IntelConfig {
        max_domains: cfg.max_domains / 2,
        ..cfg.clone()
    };
    let t = Instant::now();
    let resized = a.history().resized_for(&half);
    println!(
        "resize to max_domains {}: {} domains kept in {:.1} ms",
        half.max_domains,
        resized.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    drop(resized);

    // First lookup after a reload: the new analyser classifies the domain's addresses again.
    b.adopt_history(a.history());
    let cpu = || dnsward_intel::eval::thread_cpu_ns().expect("thread CPU clock") as f64;
    let k = 20_000usize;
    let t0 = cpu();
    for i in 0..k {
        observe(&b, i, now + 120);
    }
    let first = (cpu() - t0) / k as f64;
    let t0 = cpu();
    for i in 0..k {
        observe(&b, i, now + 180);
    }
    let again = (cpu() - t0) / k as f64;
    println!(
        "observe, first lookup after a reload: {:.2} µs CPU; next lookup: {:.2} µs CPU ({k} domains each)",
        first / 1e3,
        again / 1e3
    );
}
