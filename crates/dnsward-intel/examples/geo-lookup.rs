//! Look addresses up in the configured MMDBs (ASN, organisation, country, built-in classes).
//!
//! ```text
//! cargo run -p dnsward-intel --example geo-lookup -- --asn-mmdb asn.mmdb [--country-mmdb country.mmdb] IP...
//! ```
use dnsward_intel::geo::cc_str;
use dnsward_intel::net::ip_key;
use dnsward_intel::{AnswerAnalyzer, IntelConfig};

fn main() {
    let mut cfg = IntelConfig::default();
    let mut ips = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--asn-mmdb" => cfg.asn_mmdb = args.next().map(Into::into),
            "--country-mmdb" => cfg.country_mmdb = args.next().map(Into::into),
            ip => ips.push(ip.parse::<std::net::IpAddr>().unwrap_or_else(|_| {
                eprintln!("not an IP address: {ip}");
                std::process::exit(2)
            })),
        }
    }
    let a = AnswerAnalyzer::new(&cfg).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    for ip in ips {
        let g = a.geo().info(ip);
        let (asn, cc) = (g.asn, g.cc);
        let k = ip_key(ip);
        let l = a.lists();
        println!(
            "{ip}\tAS{asn}\t{}\t{}\thosting={}\tinstitutional={}\tcdn={}\tparking={}",
            a.geo().asn_org(ip).unwrap_or_default(),
            cc_str(cc),
            l.hosting_asn.contains(&asn) || l.hosting_ranges.contains(k),
            g.institutional,
            l.cdn_by_ip(k).unwrap_or("-"),
            l.parking_ips.contains(k)
        );
    }
}
