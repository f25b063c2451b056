//! Quick per-name timing of the embedded model on one thread (no criterion):
//! `CARGO_TARGET_DIR=target-classify cargo run --release -p dnsward-classify --example time_judge`
//! (pin to one core with `taskset -c 0`). Prints µs per uncached `judge()` (featurisation +
//! tract inference of one row), per name in `judge_batch()`, and per cached `judge()`.

use std::time::Instant;

use dnsward_classify::DgaModel;

fn names(n: usize, seed: u64) -> Vec<String> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let words = [
        "pretty", "school", "market", "garden", "blue", "river", "stone", "fire",
    ];
    (0..n)
        .map(|i| {
            let mut s = String::from("www.");
            if i % 2 == 0 {
                let len = 8 + (next() % 12) as usize;
                for _ in 0..len {
                    s.push((b'a' + (next() % 26) as u8) as char);
                }
            } else {
                s.push_str(words[(next() % 8) as usize]);
                s.push_str(words[(next() % 8) as usize]);
                s.push_str(&format!("{}", next() % 100000));
            }
            s.push_str([".com", ".net", ".org", ".info", ".co.uk"][(next() >> 40) as usize % 5]);
            s
        })
        .collect()
}

fn main() {
    // Optional argument: a model file to time instead of the embedded one.
    let load = || match std::env::args().nth(1) {
        Some(p) => DgaModel::from_path(std::path::Path::new(&p)).expect("model"),
        None => DgaModel::embedded().expect("model"),
    };
    let model = load().with_cache_capacity(1);
    let pool = names(20_000, 1);
    for q in pool.iter().take(500) {
        model.judge(q);
    }
    let t = Instant::now();
    let mut flagged = 0usize;
    for q in &pool {
        model.clear_cache();
        flagged += model.judge(q).is_dga(model.default_threshold()) as usize;
    }
    let single = t.elapsed().as_secs_f64() * 1e6 / pool.len() as f64;

    let t = Instant::now();
    let mut sink = 0usize;
    for q in &pool {
        let reg = dnsward_classify::registrable_domain(q).unwrap();
        let (label, suffix) = reg.split_once('.').unwrap();
        sink += model.features(label, suffix).ids.len();
    }
    let feat = t.elapsed().as_secs_f64() * 1e6 / pool.len() as f64;
    std::hint::black_box(sink);

    let batch_names = names(20_480, 2);
    let refs: Vec<&str> = batch_names.iter().map(String::as_str).collect();
    let t = Instant::now();
    for chunk in refs.chunks(1024) {
        model.clear_cache();
        model.judge_batch(chunk);
    }
    let batched = t.elapsed().as_secs_f64() * 1e6 / refs.len() as f64;

    let cached = load();
    let hot = names(1000, 7);
    for q in &hot {
        cached.judge(q);
    }
    let t = Instant::now();
    let reps = 200;
    for _ in 0..reps {
        for q in &hot {
            std::hint::black_box(cached.judge(q));
        }
    }
    let hit = t.elapsed().as_secs_f64() * 1e6 / (reps * hot.len()) as f64;
    println!(
        "features only: {feat:.2} µs/name; uncached judge(): {single:.2} µs/name; judge_batch(): {batched:.2} µs/name; cached judge(): {hit:.3} µs/name ({flagged} of {} flagged)",
        pool.len()
    );
}
