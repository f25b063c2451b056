//! Generate a realistic answer stream and/or replay one through the answer analyser.
//!
//! ```text
//! cargo run -p dnsward-intel --release --example flux-eval -- \
//!     --asn-mmdb /work/shared/data/geo/asn.mmdb --country-mmdb /work/shared/data/geo/country.mmdb \
//!     [--gen stream.jsonl] [--gen-iocs iocs.txt] [--seed 7] [--scale 1.0] [--lookups 6]
//!     [--replay stream.jsonl] [--ioc FILE]... [--detections out.jsonl] [--replay-prefix-only]
//!     [--no-rr-allowlist] [--json]
//! ```
//! With `--gen` only: write the stream. With `--replay` only: evaluate a stream. With both
//! (same path): generate then evaluate. Without either: generate into memory and evaluate.
use dnsward_intel::{eval, gen, AnswerAnalyzer, IntelConfig};
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;

fn main() {
    let mut cfg = IntelConfig::default();
    let mut gcfg = gen::GenConfig::default();
    let (mut gen_out, mut replay_in, mut det_out, mut json) =
        (None::<PathBuf>, None::<PathBuf>, None::<PathBuf>, false);
    let (mut prefix_only, mut gen_iocs) = (false, None::<PathBuf>);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| die(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--asn-mmdb" => cfg.asn_mmdb = Some(val().into()),
            "--country-mmdb" => cfg.country_mmdb = Some(val().into()),
            "--ioc" => cfg.ioc_files.push(val().into()),
            "--gen" => gen_out = Some(val().into()),
            "--replay" => replay_in = Some(val().into()),
            "--detections" => det_out = Some(val().into()),
            "--seed" => gcfg.seed = val().parse().unwrap_or_else(|_| die("bad --seed")),
            "--lookups" => {
                gcfg.lookups_per_domain = val().parse().unwrap_or_else(|_| die("bad --lookups"))
            }
            "--scale" => {
                let f: f64 = val().parse().unwrap_or_else(|_| die("bad --scale"));
                for n in [
                    &mut gcfg.flux,
                    &mut gcfg.double_flux,
                    &mut gcfg.cdn,
                    &mut gcfg.round_robin,
                    &mut gcfg.volunteer_pool,
                    &mut gcfg.parked,
                    &mut gcfg.benign,
                ] {
                    *n = ((*n as f64) * f).round() as usize;
                }
            }
            "--no-rr-allowlist" => cfg.rr_pool_suffixes.clear(),
            "--replay-prefix-only" => prefix_only = true,
            "--gen-iocs" => gen_iocs = Some(PathBuf::from(val())),
            "--json" => json = true,
            "-h" | "--help" => {
                eprintln!("see the doc comment of examples/flux-eval.rs");
                return;
            }
            other => die(&format!("unknown argument {other}")),
        }
    }
    let analyzer = AnswerAnalyzer::new(&cfg).unwrap_or_else(|e| die(&e.to_string()));
    for w in analyzer.warnings() {
        eprintln!("warning: {w}");
    }
    let mut mem = Vec::new();
    if gen_out.is_some() || replay_in.is_none() {
        let t0 = std::time::Instant::now();
        let sum = match &gen_out {
            Some(p) => {
                let f = std::fs::File::create(p)
                    .unwrap_or_else(|e| die(&format!("{}: {e}", p.display())));
                gen::generate(
                    analyzer.geo(),
                    analyzer.lists(),
                    &gcfg,
                    &mut BufWriter::new(f),
                )
            }
            None => gen::generate(analyzer.geo(), analyzer.lists(), &gcfg, &mut mem),
        }
        .unwrap_or_else(|e| die(&e));
        eprintln!(
            "generated in {:.1}s: {}",
            t0.elapsed().as_secs_f64(),
            serde_json::to_string(&sum).unwrap()
        );
        if let Some(p) = &gen_iocs {
            std::fs::write(p, &sum.ioc_list)
                .unwrap_or_else(|e| die(&format!("{}: {e}", p.display())));
        }
        if replay_in.is_none() && gen_out.is_some() {
            return;
        }
    }
    let replay_analyzer;
    let analyzer = if prefix_only {
        let c = IntelConfig {
            asn_mmdb: None,
            country_mmdb: None,
            ..cfg.clone()
        };
        replay_analyzer = AnswerAnalyzer::new(&c).unwrap_or_else(|e| die(&e.to_string()));
        &replay_analyzer
    } else {
        &analyzer
    };
    let mut det_file = det_out.map(|p| {
        BufWriter::new(
            std::fs::File::create(&p).unwrap_or_else(|e| die(&format!("{}: {e}", p.display()))),
        )
    });
    let det: Option<&mut dyn std::io::Write> =
        det_file.as_mut().map(|f| f as &mut dyn std::io::Write);
    let rep = match &replay_in {
        Some(p) => {
            let f =
                std::fs::File::open(p).unwrap_or_else(|e| die(&format!("{}: {e}", p.display())));
            eval::replay(analyzer, BufReader::new(f), det)
        }
        None => eval::replay(analyzer, &mem[..], det),
    }
    .unwrap_or_else(|e| die(&e.to_string()));
    if json {
        println!("{}", serde_json::to_string_pretty(&rep).unwrap());
    } else {
        print!("{}", rep.to_text());
    }
}

fn die(msg: &str) -> ! {
    eprintln!("flux-eval: {msg}");
    std::process::exit(2)
}
