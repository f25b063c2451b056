//! Convert the ip-location-db ASN CSV files (`ip_range_start,ip_range_end,asn,organisation`,
//! as in npm `@ip-location-db/asn`: `asn-ipv4.csv`, `asn-ipv6.csv`) into a GeoLite2-ASN
//! layout MMDB (`autonomous_system_number`, `autonomous_system_organization`).
//!
//! ```text
//! cargo run -p dnsward-intel --release --example asn-csv-to-mmdb -- OUT.mmdb asn-ipv4.csv [asn-ipv6.csv ...]
//! ```
//! Used by `tools/geo/fetch.sh`. Data licence: CC BY 4.0 (RouteViews, NRO, DB-IP); the
//! attribution is written into the database description.
use mmdb_writer::{Value, Writer};
use std::collections::HashMap;
use std::io::BufRead;
use std::net::IpAddr;

/// Split one CSV line (RFC 4180 quoting).
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut q = false;
    let mut it = line.chars().peekable();
    while let Some(c) = it.next() {
        match (c, q) {
            ('"', true) if it.peek() == Some(&'"') => {
                cur.push('"');
                it.next();
            }
            ('"', _) => q = !q,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: asn-csv-to-mmdb OUT.mmdb IN.csv [IN.csv ...]");
        std::process::exit(2);
    }
    let mut w = Writer::builder("GeoLite2-ASN")
        .description(&[(
            "en",
            "dnsward ASN database built from ip-location-db asn CSV (RouteViews, NRO, DB-IP ASN Lite); CC BY 4.0: routeviews.org, nro.net, db-ip.com",
        )])
        .build();
    let mut values: HashMap<(u32, String), Value> = HashMap::new();
    let mut rows = 0usize;
    let mut skipped = 0usize;
    for path in &args[1..] {
        let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line.unwrap_or_else(|e| panic!("{path}:{}: {e}", i + 1));
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let f = fields(&line);
            let bad = |what: &str| -> ! {
                eprintln!("{path}:{}: {what}: {line}", i + 1);
                std::process::exit(1)
            };
            if f.len() < 3 {
                bad("expected start,end,asn[,organisation]");
            }
            let (Ok(start), Ok(end)) =
                (f[0].trim().parse::<IpAddr>(), f[1].trim().parse::<IpAddr>())
            else {
                // header or numeric (-num.csv) variant
                if i == 0 {
                    continue;
                }
                bad("bad address");
            };
            let Ok(asn) = f[2].trim().parse::<u32>() else {
                bad("bad ASN")
            };
            let org = f.get(3).map(|s| s.trim().to_string()).unwrap_or_default();
            let v = values
                .entry((asn, org.clone()))
                .or_insert_with(|| {
                    Value::map([
                        ("autonomous_system_number", Value::from(asn)),
                        ("autonomous_system_organization", Value::from(org.as_str())),
                    ])
                })
                .clone();
            match w.insert_range(start, end, &v) {
                Ok(()) => rows += 1,
                // Teredo / 6to4 space is an alias of IPv4 in an IPv6 tree: skip it
                Err(e) if e.to_string().contains("aliased") => skipped += 1,
                Err(e) => bad(&e.to_string()),
            }
        }
    }
    let bytes = w.to_bytes().expect("serialise MMDB");
    std::fs::write(&args[0], &bytes).unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    eprintln!(
        "wrote {} ({} bytes) from {rows} ranges ({skipped} in IPv4-aliased IPv6 space skipped)",
        args[0],
        bytes.len()
    );
}
