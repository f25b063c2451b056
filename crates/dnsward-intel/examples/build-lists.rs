//! Regenerates the compact built-in lists in `crates/dnsward-intel/data/` from the public
//! source lists in `../shared/data/intel/` (MIT / CC0; origins in `data/README.md`).
//!
//! ```text
//! cargo run -p dnsward-intel --example build-lists -- [/work/shared/data/intel] [crates/dnsward-intel/data] [ASN.mmdb]
//! ```
//! With an ASN MMDB (default `/work/shared/data/geo/asn.mmdb` when present) it also writes
//! `hosting-prefixes.txt`: the merged IPv4 ranges announced by the hosting ASNs, so that
//! hosting vs residential works without an ASN database at run time.
//! The output is committed; the product never reads `../shared` at run time.
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn read_json(p: &Path) -> Value {
    let s = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn misp_list(p: &Path) -> Vec<String> {
    read_json(p)["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str().map(|s| s.trim().to_string()))
        .collect()
}

fn norm_cidr(s: &str) -> Option<String> {
    let s = s.trim();
    let (ip, len) = match s.split_once('/') {
        Some((a, b)) => (a, b.parse::<u8>().ok()?),
        None => (s, if s.contains(':') { 128 } else { 32 }),
    };
    let ip: std::net::IpAddr = ip.parse().ok()?;
    Some(format!("{ip}/{len}"))
}

/// Registrar / DNS-hosting defaults that appear in the MISP parking-NS list but serve many
/// live sites too: only a weak parking signal (never sets `parked` on their own).
const WEAK_PARKING_NS: &[&str] = &[
    "registrar-servers.com",
    "domaincntrol.com",
    "name.com",
    "one.com",
    "markmonitor.com",
    "wordpress.com",
    "rzone.de",
    "mijndomein.nl",
    "directnic.com",
    "freenom.com",
    "gname.net",
    "sav.com",
    "dnsowl.com",
    "bookmyname.com",
    "onlydomains.com",
    "domainorderdns.nl",
    "domainprofi.de",
    "dnslink.com",
    "namedynamics.net",
    "hostresolver.com",
    "thednscloud.com",
    "dnsspark.com",
    "nameprovider.net",
    "trustednam.es",
    "commonmx.com",
    "domainmx.com",
    "milesmx.com",
    "emailverification.info",
    "brainydns.com",
    "hastydns.com",
    "eftydns.com",
    "kirklanddc.com",
    "redmonddc.com",
    "rentondc.com",
    "tacomadc.com",
    "koaladns.com",
    "wombatdns.com",
    "quokkadns.com",
    "dingodns.com",
    "magpiedns.com",
    "taipandns.com",
    "chookdns.com",
    "emu-dns.com",
    "torresdns.com",
    "panamans.com",
    "smtmdns.com",
    "alter.com",
    "day.biz",
    "dne.com",
    "cnomy.com",
    "malkm.com",
    "weaponizedcow.com",
];

/// Cloud load-balancer / CDN CNAME suffixes not in cdncheck's common list (project-authored).
const EXTRA_CDN_SUFFIXES: &[(&str, &str)] = &[
    ("akamaized.net", "akamai"),
    ("akamai.net", "akamai"),
    ("akadns.net", "akamai"),
    ("akamaiedge-staging.net", "akamai"),
    ("cdn.cloudflare.net", "cloudflare"),
    ("fastlylb.net", "fastly"),
    ("azureedge.net", "azure"),
    ("azurefd.net", "azure"),
    ("trafficmanager.net", "azure"),
    ("cloudapp.azure.com", "azure"),
    ("cloudapp.net", "azure"),
    ("azurewebsites.net", "azure"),
    ("msedge.net", "azure"),
    ("googleusercontent.com", "google"),
    ("googlehosted.com", "google"),
    ("l.google.com", "google"),
    ("gvt1.com", "google"),
    ("b-cdn.net", "bunny"),
    ("cdn77.org", "cdn77"),
    ("stackpathdns.com", "stackpath"),
    ("edgecastdns.net", "edgecast"),
    ("llnwd.net", "limelight"),
    ("vercel-dns.com", "vercel"),
    ("herokudns.com", "heroku"),
    ("elb.amazonaws.com", "amazon"),
    ("awsglobalaccelerator.com", "amazon"),
    ("gcdn.co", "gcore"),
    ("footprint.net", "lumen"),
    ("incapdns.net", "incapsula"),
    ("sucuridns.com", "sucuri"),
    ("kxcdn.com", "keycdn"),
    ("cdnetworks.net", "cdnetworks"),
    ("ghs.googlehosted.com", "google"),
    ("github.io", "github"),
    ("githubusercontent.com", "github"),
];

/// Ranked web-traffic lists whose top [`SHARED_TOP_N`] give the shared-service domains.
const SHARED_TOP_LISTS: &[&str] = &["alexa_top100k_2015.txt", "alexa_100k_2014.txt"];
const SHARED_TOP_N: usize = 10_000;

/// Public web services where users host their own content (storage, paste, code, chat, social,
/// site builders), some newer than the 2014/15 rankings (project-authored). The FireEye
/// "CnC false positives" report's examples (Twitter, Rapidshare, Lycos members' pages,
/// multimania, Amazon's cloud) are of this kind.
const EXTRA_SHARED_DOMAINS: &[&str] = &[
    "1drv.ms",
    "4shared.com",
    "amazonaws.com",
    "archive.org",
    "bitbucket.org",
    "blogger.com",
    "blogspot.com",
    "box.com",
    "cloudfront.net",
    "discord.com",
    "discordapp.com",
    "discordapp.net",
    "dropbox.com",
    "dropboxusercontent.com",
    "facebook.com",
    "fbcdn.net",
    "github.com",
    "githubusercontent.com",
    "gitlab.com",
    "google.com",
    "googleapis.com",
    "googleusercontent.com",
    "icloud.com",
    "imgur.com",
    "instagram.com",
    "linkedin.com",
    "live.com",
    "lycos.co.uk",
    "medium.com",
    "mediafire.com",
    "mega.io",
    "mega.nz",
    "multimania.co.uk",
    "notion.site",
    "notion.so",
    "office.com",
    "onedrive.com",
    "outlook.com",
    "paste.ee",
    "pastebin.com",
    "rapidshare.com",
    "reddit.com",
    "sharepoint.com",
    "slack.com",
    "sourceforge.net",
    "squarespace.com",
    "steamcommunity.com",
    "substack.com",
    "t.me",
    "telegra.ph",
    "telegram.org",
    "tumblr.com",
    "twimg.com",
    "twitter.com",
    "vk.com",
    "we.tl",
    "weebly.com",
    "wetransfer.com",
    "wix.com",
    "wordpress.com",
    "x.com",
    "yadi.sk",
    "yandex.ru",
    "youtube.com",
    "zoom.us",
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let src = PathBuf::from(
        args.get(1)
            .map(String::as_str)
            .unwrap_or("/work/shared/data/intel"),
    );
    let out = PathBuf::from(
        args.get(2)
            .map(String::as_str)
            .unwrap_or(concat!(env!("CARGO_MANIFEST_DIR"), "/data")),
    );
    std::fs::create_dir_all(&out).unwrap();

    // ---- CDN / cloud CNAME suffixes
    let mut suffixes: BTreeMap<String, String> = BTreeMap::new();
    if let Value::Object(m) = read_json(&src.join("cdn/cdncheck-common-cname-suffixes.json")) {
        for (prov, list) in m {
            let prov: String = prov.split_whitespace().collect::<Vec<_>>().join("_");
            for s in list.as_array().unwrap() {
                let s = s
                    .as_str()
                    .unwrap()
                    .trim()
                    .trim_matches('.')
                    .to_ascii_lowercase();
                suffixes.entry(s).or_insert_with(|| prov.clone());
            }
        }
    }
    for (s, p) in EXTRA_CDN_SUFFIXES {
        suffixes
            .entry(s.to_string())
            .or_insert_with(|| p.to_string());
    }
    let mut txt = String::from(
        "# suffix provider  (cdncheck common CNAME suffixes, MIT; + project supplement)\n",
    );
    for (s, p) in &suffixes {
        writeln!(txt, "{s} {p}").unwrap();
    }
    std::fs::write(out.join("cdn-cname-suffixes.txt"), txt).unwrap();

    // ---- CDN / cloud ranges
    let mut ranges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let cdncheck = read_json(&src.join("cdn/cdncheck-cdn-waf-cidrs.json"));
    for kind in ["cdn", "waf"] {
        if let Some(Value::Object(m)) = cdncheck.get(kind) {
            for (prov, list) in m {
                let prov: String = prov.chars().filter(|c| !c.is_whitespace()).collect();
                for c in list.as_array().unwrap() {
                    if let Some(c) = c.as_str().and_then(norm_cidr) {
                        ranges.entry(prov.clone()).or_default().insert(c);
                    }
                }
            }
        }
    }
    for (file, prov) in [
        ("akamai", "akamai"),
        ("amazon-aws", "amazon"),
        ("bunny-net", "bunny"),
        ("cloudflare", "cloudflare"),
        ("fastly", "fastly"),
        ("google-gcp", "google"),
        ("microsoft-azure", "azure"),
        ("oracle-oci", "oracle"),
        ("stackpath", "stackpath"),
        ("zscaler", "zscaler"),
        ("ovh-cluster", "ovh"),
    ] {
        for c in misp_list(&src.join(format!("misp/{file}.json"))) {
            if let Some(c) = norm_cidr(&c) {
                ranges.entry(prov.to_string()).or_default().insert(c);
            }
        }
    }
    let mut txt =
        String::from("# @provider, then one CIDR a line (cdncheck MIT; MISP warninglists CC0)\n");
    for (p, set) in &ranges {
        writeln!(txt, "@{p}").unwrap();
        for c in set {
            writeln!(txt, "{c}").unwrap();
        }
    }
    std::fs::write(out.join("cdn-ranges.txt"), txt).unwrap();

    // ---- hosting ASNs
    let mut asns: BTreeSet<u32> = BTreeSet::new();
    for f in ["x4bnet-datacenter-ASN.txt", "x4bnet-vpn-ASN.txt"] {
        for line in std::fs::read_to_string(src.join("asn-class").join(f))
            .unwrap()
            .lines()
        {
            let t = line
                .split('#')
                .next()
                .unwrap()
                .trim()
                .trim_start_matches("AS");
            if let Ok(n) = t.parse() {
                asns.insert(n);
            }
        }
    }
    for line in std::fs::read_to_string(src.join("asn-class/brianhama-bad-asn-list.csv"))
        .unwrap()
        .lines()
        .skip(1)
    {
        if let Some(Ok(n)) = line.split(',').next().map(|s| s.trim().parse()) {
            asns.insert(n);
        }
    }
    // CDN / cloud-edge ASNs missing from the lists above (project supplement).
    for a in [
        13335u32, 209242, 54113, 20940, 16625, 12222, 32787, 15133, 22822, 60068, 199524, 19551,
        30148, 12989, 33438, 36183, 35994, 8068, 8075, 16509, 14618, 15169, 396982, 31898, 32934,
        2906, 36351, 63949, 14061, 24940, 16276,
    ] {
        asns.insert(a);
    }
    let mut txt = String::from(
        "# hosting / datacenter / VPN ASNs (X4BNet lists_vpn MIT, brianhama bad-asn-list MIT)\n",
    );
    for a in &asns {
        writeln!(txt, "{a}").unwrap();
    }
    std::fs::write(out.join("hosting-asn.txt"), txt).unwrap();

    // ---- hosting prefixes from the ASN database (optional)
    let mmdb = PathBuf::from(
        args.get(3)
            .map(String::as_str)
            .unwrap_or("/work/shared/data/geo/asn.mmdb"),
    );
    if mmdb.exists() {
        let r = maxminddb::Reader::open_readfile(&mmdb)
            .unwrap_or_else(|e| panic!("{}: {e}", mmdb.display()));
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        for item in r.networks(Default::default()).unwrap() {
            let Ok(item) = item else { continue };
            let Ok(net) = item.network() else { continue };
            let (start, prefix) = match net.ip() {
                std::net::IpAddr::V4(v4) => (u32::from(v4), net.prefix() as u32),
                std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => (u32::from(v4), (net.prefix() as u32).saturating_sub(96)),
                    None => continue,
                },
            };
            let Ok(Some(asn)) =
                item.decode_path::<u32>(&[maxminddb::PathElement::Key("autonomous_system_number")])
            else {
                continue;
            };
            if asns.contains(&asn) && prefix <= 32 {
                let end = if prefix == 0 {
                    u32::MAX
                } else {
                    start | (u32::MAX >> prefix)
                };
                ranges.push((start, end));
            }
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::new();
        for (s0, e0) in ranges {
            match merged.last_mut() {
                Some(last) if s0 <= last.1.saturating_add(1) => last.1 = last.1.max(e0),
                _ => merged.push((s0, e0)),
            }
        }
        let mut txt = format!(
            "# first last  IPv4 ranges of the ASNs in hosting-asn.txt, merged; derived from {} (ip-location-db asn: RouteViews, NRO, DB-IP; CC BY 4.0)\n",
            mmdb.file_name().unwrap().to_string_lossy()
        );
        for (a, b) in &merged {
            writeln!(
                txt,
                "{} {}",
                std::net::Ipv4Addr::from(*a),
                std::net::Ipv4Addr::from(*b)
            )
            .unwrap();
        }
        std::fs::write(out.join("hosting-prefixes.txt"), txt).unwrap();
    }

    // ---- hosting ranges (client9/ipcat)
    let mut txt = String::from("# first last  datacenter IPv4 ranges (client9/ipcat, MIT)\n");
    for line in std::fs::read_to_string(src.join("asn-class/client9-ipcat-datacenters.csv"))
        .unwrap()
        .lines()
    {
        let mut it = line.split(',');
        if let (Some(a), Some(b)) = (it.next(), it.next()) {
            if a.parse::<std::net::Ipv4Addr>().is_ok() && b.parse::<std::net::Ipv4Addr>().is_ok() {
                writeln!(txt, "{a} {b}").unwrap();
            }
        }
    }
    std::fs::write(out.join("hosting-ranges.txt"), txt).unwrap();

    // ---- parking
    let mut txt = String::from("# kind value [weak]  (MISP warninglists parking lists CC0; Vissers et al. NDSS 2015 Table I)\n");
    let mut seen = BTreeSet::new();
    for ns in misp_list(&src.join("parking/parking-domain-ns.json")) {
        let ns = ns.trim_end_matches('.').to_ascii_lowercase();
        if ns.contains("----") || !seen.insert(ns.clone()) {
            continue;
        }
        let weak = WEAK_PARKING_NS.contains(&ns.as_str());
        writeln!(txt, "ns {ns}{}", if weak { " weak" } else { "" }).unwrap();
    }
    for c in misp_list(&src.join("parking/parking-domain.json")) {
        if let Some(c) = norm_cidr(&c) {
            writeln!(txt, "ip {c}").unwrap();
        }
    }
    for line in
        std::fs::read_to_string(src.join("parking/vissers-ndss2015-tableI-parking-services.tsv"))
            .unwrap()
            .lines()
    {
        if line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 3 {
            continue;
        }
        let v = f[2].trim().to_ascii_lowercase();
        match f[1] {
            "NS" if seen.insert(v.clone()) => writeln!(txt, "ns {v}").unwrap(),
            "A" => writeln!(txt, "ip {}", norm_cidr(&v).unwrap()).unwrap(),
            "CNAME" => writeln!(txt, "cname {v}").unwrap(),
            _ => {}
        }
    }
    std::fs::write(out.join("parking.txt"), txt).unwrap();

    // ---- shared-service domains: the most visited sites, where an IOC hit is far likelier a
    // shared host, a public service abused by one user or a stale listing than the site itself
    let benign = src.join("../dga/benign");
    let families = src.join("../dga/families");
    let mut dga_names: BTreeSet<String> = BTreeSet::new();
    for e in std::fs::read_dir(&families).unwrap_or_else(|e| panic!("{}: {e}", families.display()))
    {
        let p = e.unwrap().path();
        for l in std::fs::read_to_string(&p).unwrap().lines() {
            if let Some(d) = psl::domain_str(&l.trim().to_ascii_lowercase()) {
                dga_names.insert(d.to_string());
            }
        }
    }
    let mut shared: BTreeSet<String> = BTreeSet::new();
    let mut dropped = 0usize;
    for f in SHARED_TOP_LISTS {
        let p = benign.join(f);
        for l in std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .lines()
            .take(SHARED_TOP_N)
        {
            let Some(d) = psl::domain_str(&l.trim().trim_end_matches('.').to_ascii_lowercase())
                .map(str::to_string)
            else {
                continue;
            };
            if dga_names.contains(&d) {
                dropped += 1;
            } else {
                shared.insert(d);
            }
        }
    }
    shared.extend(EXTRA_SHARED_DOMAINS.iter().map(|s| s.to_string()));
    let mut txt = format!(
        "# registrable domains of shared sites and public web services: the top {SHARED_TOP_N} of {} (dga/benign; Alexa),\n\
         # registrable part by the Public Suffix List, minus names of the DGA family files; + project supplement\n\
         # of public web services, marked `service` (where users host their own content)\n",
        SHARED_TOP_LISTS.join(", ")
    );
    for d in &shared {
        if EXTRA_SHARED_DOMAINS.contains(&d.as_str()) {
            writeln!(txt, "{d} service").unwrap();
        } else {
            writeln!(txt, "{d}").unwrap();
        }
    }
    std::fs::write(out.join("shared-domains.txt"), txt).unwrap();
    eprintln!(
        "shared-domains.txt: {} names ({dropped} dropped as DGA names)",
        shared.len()
    );
    eprintln!("wrote lists to {}", out.display());
}
