//! `cargo bench -p dnsward-classify`: per-name cost of judge() uncached (single), judge_batch()
//! uncached, judge() on a cached verdict, and (for comparison) one row through the tract plan,
//! the reference the native forward pass is checked against. Run on one core:
//! `CARGO_TARGET_DIR=target-classify taskset -c 1 cargo bench -p dnsward-classify --bench dga`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use dnsward_classify::DgaModel;

/// Deterministic pseudo-random DGA-like names (never repeated, so never cached).
fn names(n: usize, seed: u64) -> Vec<String> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            let mut s = String::from("www.");
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = 8 + (x % 12) as usize;
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push((b'a' + (x % 26) as u8) as char);
            }
            s.push_str([".com", ".net", ".org", ".info", ".co.uk"][(x >> 40) as usize % 5]);
            s
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let model = DgaModel::embedded().expect("model").with_cache_capacity(1);
    eprintln!("backend: {}", model.backend().as_str());
    let mut g = c.benchmark_group("dga");

    g.throughput(Throughput::Elements(1));
    let pool = names(200_000, 1);
    let mut i = 0usize;
    // The cache holds one verdict and the pool's names are distinct, so every call misses (and
    // pays for the insert, as in the server) without a cache clear in the timed loop.
    g.bench_function("judge_uncached_single", |b| {
        b.iter(|| {
            i = (i + 1) % pool.len();
            model.judge(&pool[i])
        })
    });

    const N: usize = 1024;
    g.throughput(Throughput::Elements(N as u64));
    let mut seed = 100;
    g.bench_function("judge_batch_uncached_1024", |b| {
        b.iter_batched(
            || {
                seed += 1;
                model.clear_cache();
                names(N, seed)
            },
            |v| {
                let refs: Vec<&str> = v.iter().map(String::as_str).collect();
                model.judge_batch(&refs)
            },
            BatchSize::LargeInput,
        )
    });

    let cached = DgaModel::embedded().expect("model");
    let hot = names(1000, 7);
    for q in &hot {
        cached.judge(q);
    }
    g.throughput(Throughput::Elements(1));
    let mut j = 0usize;
    g.bench_function("judge_cached", |b| {
        b.iter(|| {
            j = (j + 1) % hot.len();
            cached.judge(&hot[j])
        })
    });

    let mut k = 0usize;
    g.bench_function("tract_reference_single", |b| {
        b.iter(|| {
            k = (k + 1) % pool.len();
            let reg = dnsward_classify::registrable_domain(&pool[k]).unwrap();
            let (label, suffix) = reg.split_once('.').unwrap();
            model.reference_score_parts_logit(label, suffix).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
