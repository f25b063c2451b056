//! Time and memory of loading a large deny list, as a plain one-name-per-line list and as the
//! same names in a Response Policy Zone (`name CNAME .` and `*.name CNAME .`, the layout of the
//! abuse.ch feeds). Names are generated (deterministic), one million by default.
//!
//! ```text
//! cargo run --release -p dnsward-policy --example list-load -- plain|rpz [NAMES]
//! ```
//! One format a run, so the resident-memory growth is that set's alone.
use dnsward_policy::DomainSet;
use std::fmt::Write as _;
use std::time::Instant;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let format = std::env::args().nth(1).unwrap_or_else(|| "plain".into());
    let n: usize = std::env::args()
        .nth(2)
        .map(|a| a.parse().expect("NAMES is a number"))
        .unwrap_or(1_000_000);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let names: Vec<String> = (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let tld = ["com", "net", "org", "xyz", "top", "ru"][(x % 6) as usize];
            format!("{:x}-{i}.example-{}.{tld}", x >> 40, x % 997)
        })
        .collect();
    let mut plain = String::new();
    let mut zone = String::from(
        "$TTL 30\n@ SOA rpz.local. hostmaster.rpz.local. ( 2026120101 300 1800 604800 30 )\n  NS localhost.\n",
    );
    for name in &names {
        plain.push_str(name);
        plain.push('\n');
        let _ = writeln!(zone, "{name} CNAME .\n*.{name} CNAME .");
    }
    let runs = [("plain list", &plain), ("RPZ (2 rules a name)", &zone)];
    for (what, text) in runs
        .into_iter()
        .filter(|(w, _)| w.starts_with(if format == "rpz" { "RPZ" } else { "plain" }))
    {
        let before = rss_kib();
        let t = Instant::now();
        let mut set = DomainSet::new();
        let warnings = set.load_str("bench", text);
        let secs = t.elapsed().as_secs_f64();
        let grown = rss_kib().saturating_sub(before);
        assert!(warnings.is_empty(), "{:?}", &warnings[..1]);
        let t = Instant::now();
        let hits = names.iter().filter(|n| set.lookup(n).is_some()).count();
        let lookup_ns = t.elapsed().as_nanos() as f64 / names.len() as f64;
        println!(
            "{what}: {} lines, {} rules loaded in {secs:.2} s, RSS +{:.0} MiB, lookup {lookup_ns:.0} ns ({hits} hits)",
            text.lines().count(),
            set.len(),
            grown as f64 / 1024.0
        );
        drop(set);
    }
}
