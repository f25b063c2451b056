use super::*;
use crate::geo::fixtures::{asn_db, country_db, write_tmp};
use std::sync::Arc;

const CCS: [&str; 10] = ["DE", "FR", "US", "BR", "IN", "RU", "CN", "VN", "TR", "PL"];

/// Fixture world: 240.N.0.0/16 residential AS6500N in varied countries, 241.N.0.0/16 in
/// AS16509 (hosting list), 242.0.0.0/16 in AS53667 (listed in the IOC fixture).
fn fixture_cfg(tag: &str) -> IntelConfig {
    let mut asn = Vec::new();
    let mut cc = Vec::new();
    let nets: Vec<String> = (1..=40).map(|n| format!("240.{n}.0.0/16")).collect();
    let hnets: Vec<String> = (1..=40).map(|n| format!("241.{n}.0.0/16")).collect();
    for (i, n) in nets.iter().enumerate() {
        asn.push((n.as_str(), 65001 + i as u32, "Example Broadband"));
        cc.push((n.as_str(), CCS[i % CCS.len()]));
    }
    for (i, n) in hnets.iter().enumerate() {
        asn.push((n.as_str(), 16509, "AMAZON-02"));
        cc.push((n.as_str(), CCS[i % 3]));
    }
    let unets: Vec<String> = (1..=10).map(|n| format!("243.{n}.0.0/16")).collect();
    for (i, n) in unets.iter().enumerate() {
        asn.push((n.as_str(), 66001 + i as u32, "Example State University"));
        cc.push((n.as_str(), CCS[i % CCS.len()]));
    }
    asn.push(("242.0.0.0/16", 53667, "FranTech Solutions"));
    cc.push(("242.0.0.0/16", "US"));
    let a = write_tmp(&format!("{tag}-asn.mmdb"), &asn_db(&asn));
    let c = write_tmp(
        &format!("{tag}-cc.mmdb"),
        &country_db(&cc, tag.ends_with("nested")),
    );
    IntelConfig {
        asn_mmdb: Some(a),
        country_mmdb: Some(c),
        ..Default::default()
    }
}

const IOCS: &str = "# test list\nip 198.51.100.7 c2\ncidr 203.0.113.0/24 bad range\nasn AS53667 bulletproof\ndomain evil.example phishing\nip 185.53.177.10 parking ip someone listed\n";

fn analyzer(tag: &str) -> AnswerAnalyzer {
    AnswerAnalyzer::with_iocs(
        &fixture_cfg(tag),
        IocSet::parse(IOCS, "fixture-iocs.txt").unwrap(),
    )
    .unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn obs<'a>(q: &'a str, addrs: &'a [(IpAddr, u32)]) -> Observation<'a> {
    Observation {
        qname: q,
        addrs,
        cnames: &[],
        ns: &[],
        ns_addrs: &[],
    }
}

fn residential(i: u32, host: u32) -> IpAddr {
    ip(&format!(
        "240.{}.{}.{}",
        (i % 40) + 1,
        host % 250,
        1 + host % 200
    ))
}

#[test]
fn analyzer_is_send_sync() {
    fn ok<T: Send + Sync>() {}
    ok::<AnswerAnalyzer>();
    ok::<Assessment>();
}

#[test]
fn flux_flagged_on_first_lookup() {
    for tag in ["flux-flat", "flux-nested"] {
        let a = analyzer(tag);
        let addrs: Vec<(IpAddr, u32)> = (0..6).map(|i| (residential(i * 7, i), 150)).collect();
        let r = a.observe(&obs("bad-flux.example", &addrs), 1_000_000);
        let f = r.finding.as_ref().expect("flux flagged");
        assert_eq!(f.kind, FindingKind::FastFlux, "{r:?}");
        assert_eq!(r.features.distinct_asns, 6);
        assert!(r.features.distinct_countries >= 4, "{r:?}");
        assert!((r.features.residential_share - 1.0).abs() < 1e-9);
        assert!(r.features.flux_score > 1.0);
        assert!(r.holz_score < 0.0, "Holz misses a 6-IP first lookup");
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["finding"]["kind"], "fast_flux");
    }
}

#[test]
fn flux_grows_over_lookups() {
    let a = analyzer("grow");
    // one IP per lookup, new ASN each time: flagged by the third lookup
    let mut flagged_at = None;
    for l in 0..5u32 {
        let addrs = [(residential(l * 3, l), 300)];
        let r = a.observe(
            &obs("slow-flux.example", &addrs),
            1_000_000 + l as u64 * 300,
        );
        if r.finding.is_some() && flagged_at.is_none() {
            flagged_at = Some(l + 1);
        }
        if l == 1 {
            assert!(r.features.growth > 0.99);
        }
    }
    assert_eq!(flagged_at, Some(3));
}

#[test]
fn stable_and_hosting_answers_not_flagged() {
    let a = analyzer("benign");
    // one residential IP, many lookups
    for l in 0..10 {
        let r = a.observe(
            &obs("home.example", &[(ip("240.3.3.3"), 60)]),
            1_000_000 + l * 60,
        );
        assert!(r.finding.is_none());
    }
    // multi-cloud round robin on hosting ASN
    let addrs: Vec<(IpAddr, u32)> = (1..=8).map(|n| (ip(&format!("241.{n}.1.1")), 60)).collect();
    let r = a.observe(&obs("api.service.example", &addrs), 1_000_000);
    assert!(r.finding.is_none(), "{r:?}");
    assert!(r.features.hosting_share > 0.99);
}

#[test]
fn university_mirror_pool_not_residential() {
    let a = analyzer("uni");
    let addrs: Vec<(IpAddr, u32)> = (1..=6)
        .map(|n| (ip(&format!("243.{n}.7.7")), 300))
        .collect();
    let r = a.observe(&obs("mirrors.example.org", &addrs), 1);
    assert!(r.finding.is_none(), "{r:?}");
    assert!((r.features.institutional_share - 1.0).abs() < 1e-9);
    assert_eq!(r.features.residential_share, 0.0);
}

#[test]
fn cdn_and_ntp_pool_not_flagged() {
    let a = analyzer("cdn");
    // CNAME into a CDN, many residential-looking IPs (worst case): still exempt
    let addrs: Vec<(IpAddr, u32)> = (0..8).map(|i| (residential(i * 5, i), 20)).collect();
    let cn = [("d111111abcdef8.cloudfront.net", 60)];
    let r = a.observe(
        &Observation {
            qname: "www.shop.example",
            addrs: &addrs,
            cnames: &cn,
            ns: &[],
            ns_addrs: &[],
        },
        1_000_000,
    );
    assert!(r.finding.is_none(), "{r:?}");
    assert_eq!(r.features.cdn.as_deref(), Some("amazon"));
    // Cloudflare anycast addresses without CNAME
    let addrs = [(ip("104.16.132.229"), 300), (ip("104.16.133.229"), 300)];
    let r = a.observe(&obs("proxied.example", &addrs), 1_000_000);
    assert_eq!(r.features.cdn.as_deref(), Some("cloudflare"));
    assert!(r.finding.is_none());
    // NTP pool: many ASNs and countries by design
    for l in 0..5u32 {
        let addrs: Vec<(IpAddr, u32)> = (0..4).map(|i| (residential(l * 4 + i, i), 150)).collect();
        let r = a.observe(&obs("2.pool.ntp.org", &addrs), 1_000_000 + l as u64 * 150);
        assert!(r.finding.is_none(), "{r:?}");
        assert!(r.features.rr_pool);
    }
}

#[test]
fn ioc_ip_cidr_asn_domain_and_cname_chain() {
    let a = analyzer("ioc");
    let r = a.observe(&obs("fresh.example", &[(ip("198.51.100.7"), 300)]), 1);
    assert_eq!(r.finding.as_ref().unwrap().kind, FindingKind::IocIp);
    assert!(
        r.finding
            .as_ref()
            .unwrap()
            .detail
            .contains("fixture-iocs.txt:2"),
        "{r:?}"
    );
    let r = a.observe(&obs("fresh2.example", &[(ip("203.0.113.200"), 300)]), 1);
    assert_eq!(r.finding.as_ref().unwrap().kind, FindingKind::IocIp);
    let r = a.observe(&obs("new-name.example", &[(ip("242.0.9.9"), 300)]), 1);
    let f = r.finding.as_ref().unwrap();
    assert_eq!(f.kind, FindingKind::IocAsn);
    assert!(
        f.detail.contains("AS53667 FranTech Solutions") && f.detail.contains("fixture-iocs.txt:4"),
        "{}",
        f.detail
    );
    // one listed-ASN address in a 4-address pool answer: not blocked, reported
    let addrs = [
        (ip("242.0.9.9"), 300),
        (ip("240.1.1.1"), 300),
        (ip("240.2.1.1"), 300),
        (ip("241.1.1.1"), 300),
    ];
    let r = a.observe(&obs("3.pool.ntp.org", &addrs), 1);
    assert!(r.finding.is_none(), "{r:?}");
    assert!(r
        .features
        .ioc_suppressed
        .as_deref()
        .unwrap()
        .contains("minority"));
    // CNAME chain to a listed IP
    let cn = [("hop1.cdn-ish.example", 60), ("hop2.other.example", 60)];
    let addrs = [(ip("240.1.1.1"), 60), (ip("198.51.100.7"), 60)];
    let r = a.observe(
        &Observation {
            qname: "innocent.example",
            addrs: &addrs,
            cnames: &cn,
            ns: &[],
            ns_addrs: &[],
        },
        1,
    );
    let f = r.finding.as_ref().unwrap();
    assert_eq!(f.kind, FindingKind::IocIp);
    assert!(
        f.detail
            .contains("innocent.example -> hop1.cdn-ish.example -> hop2.other.example"),
        "{}",
        f.detail
    );
    // CNAME target listed as a domain
    let cn = [("x.evil.example", 60)];
    let r = a.observe(
        &Observation {
            qname: "lure.example",
            addrs: &[(ip("240.1.1.1"), 60)],
            cnames: &cn,
            ns: &[],
            ns_addrs: &[],
        },
        1,
    );
    assert_eq!(r.finding.as_ref().unwrap().kind, FindingKind::IocDomain);
    // the name itself
    let r = a.assess(&obs("WWW.Evil.Example.", &[]), 1);
    assert_eq!(r.finding.as_ref().unwrap().kind, FindingKind::IocDomain);
    // action mapping
    assert_eq!(r.action(&IntelActions::default()), Action::Block);
}

#[test]
fn parked_ioc_ip_is_parked_not_blocked_then_move_flagged() {
    let a = analyzer("park");
    // 185.53.177.10 is a parking-service address (built-in list) and on the IOC list
    let r = a.observe(
        &obs("forsale.example", &[(ip("185.53.177.10"), 3600)]),
        1_000_000,
    );
    assert!(r.parked, "{r:?}");
    assert!(r.finding.is_none(), "{r:?}");
    assert!(r.features.ioc_suppressed.is_some());
    // parked via NS
    let ns = [
        ("ns1.sedoparking.com", 86400),
        ("ns2.sedoparking.com", 86400),
    ];
    let r = a.observe(
        &Observation {
            qname: "parked2.example",
            addrs: &[(ip("240.9.9.9"), 300)],
            cnames: &[],
            ns: &ns,
            ns_addrs: &[],
        },
        1_000_000,
    );
    assert!(r.parked);
    // registrar default NS alone is weak: not parked
    let ns = [("dns1.registrar-servers.com", 1800)];
    let r = a.observe(
        &Observation {
            qname: "shop.example",
            addrs: &[(ip("240.9.9.8"), 300)],
            cnames: &[],
            ns: &ns,
            ns_addrs: &[],
        },
        1_000_000,
    );
    assert!(!r.parked && r.features.parking_ns_weak);
    // leaves parking for a fresh residential IP
    let r = a.observe(
        &obs("forsale.example", &[(ip("240.5.5.5"), 300)]),
        1_000_000 + 86400 * 3,
    );
    let f = r.finding.as_ref().expect("parking move");
    assert_eq!(f.kind, FindingKind::ParkingMove);
    assert_eq!(r.action(&IntelActions::default()), Action::Log);
    // the hold expires
    let r = a.observe(
        &obs("forsale.example", &[(ip("240.5.5.5"), 300)]),
        1_000_000 + 86400 * 5,
    );
    assert!(r.finding.is_none());
}

#[test]
fn double_flux() {
    let a = analyzer("dflux");
    let addrs: Vec<(IpAddr, u32)> = (0..5).map(|i| (residential(i * 3, i), 120)).collect();
    let ns_addrs: Vec<IpAddr> = (0..4).map(|i| residential(20 + i * 4, 9 + i)).collect();
    let ns = [("ns1.dflux.example", 300), ("ns2.dflux.example", 300)];
    let r = a.observe(
        &Observation {
            qname: "dflux.example",
            addrs: &addrs,
            cnames: &[],
            ns: &ns,
            ns_addrs: &ns_addrs,
        },
        1_000_000,
    );
    assert_eq!(
        r.finding.as_ref().unwrap().kind,
        FindingKind::DoubleFlux,
        "{r:?}"
    );
    assert_eq!(r.features.ns_asns, 4);
}

#[test]
fn assess_does_not_record() {
    let a = analyzer("assess");
    let addrs = [(ip("240.1.1.1"), 60)];
    for _ in 0..3 {
        let r = a.assess(&obs("q.example", &addrs), 10);
        assert_eq!(r.features.lookups, 1);
    }
    assert_eq!(a.stats().domains, 0);
    a.observe(&obs("q.example", &addrs), 10);
    assert_eq!(a.assess(&obs("q.example", &addrs), 20).features.lookups, 2);
    assert_eq!(a.stats().domains, 1);
}

#[test]
fn window_expires_history() {
    let a = analyzer("window");
    for l in 0..3u32 {
        a.observe(
            &obs("w.example", &[(residential(l, l), 300)]),
            1_000 + l as u64,
        );
    }
    let r = a.observe(
        &obs("w.example", &[(residential(9, 9), 300)]),
        1_000 + 7 * 3600,
    );
    assert_eq!(r.features.lookups, 1);
    assert_eq!(r.features.distinct_ips, 1);
}

#[test]
fn prefix_only_mode_without_mmdb() {
    let a = AnswerAnalyzer::new(&IntelConfig::default()).unwrap();
    let addrs: Vec<(IpAddr, u32)> = (0..6)
        .map(|i| (ip(&format!("{}.{}.7.9", 81 + i * 3, 10 + i)), 60))
        .collect();
    let r = a.observe(&obs("flux.example", &addrs), 1);
    assert!(r.features.prefix_only);
    assert_eq!(r.features.distinct_asns, 0);
    assert_eq!(
        r.finding.as_ref().map(|f| f.kind),
        Some(FindingKind::FastFlux),
        "{r:?}"
    );
}

#[test]
fn bad_input_does_not_panic_and_memory_is_bounded() {
    let mut cfg = fixture_cfg("bad");
    cfg.max_domains = 100;
    cfg.max_ips_per_domain = 16;
    let a = AnswerAnalyzer::with_iocs(&cfg, IocSet::parse(IOCS, "x").unwrap()).unwrap();
    // thousands of records, absurd TTLs, one IOC hit far down the list
    let mut addrs: Vec<(IpAddr, u32)> = (0..5000u32)
        .map(|i| (residential(i, i), u32::MAX - i))
        .collect();
    addrs.insert(100, (ip("198.51.100.7"), 0));
    let r = a.observe(&obs("huge.example", &addrs), 1);
    assert!(r.features.truncated);
    assert_eq!(r.finding.as_ref().unwrap().kind, FindingKind::IocIp);
    assert_eq!(r.features.min_ttl, 0);
    let r = a.observe(&obs("huge2.example", &addrs[101..]), 1);
    assert!(r.features.distinct_ips <= 32);
    for l in 0..50u32 {
        let r = a.observe(
            &obs(
                "huge2.example",
                &addrs[(l as usize * 40)..(l as usize * 40 + 40)],
            ),
            2 + l as u64,
        );
        assert!(r.features.distinct_ips <= 16, "cap per domain");
    }
    // IPv6-only, empty, CNAME loop, junk names
    let v6 = [
        (ip("2001:db8::1"), 60),
        (ip("2001:db8:1::1"), 60),
        (ip("::ffff:240.1.1.1"), 60),
    ];
    let _ = a.observe(&obs("v6.example", &v6), 1);
    let _ = a.observe(&obs("", &[]), 1);
    let _ = a.observe(&obs(".", &[]), 1);
    let cn = [
        ("a.example", 1),
        ("b.example", 1),
        ("a.example", 1),
        ("loop.example", 1),
    ];
    let r = a.observe(
        &Observation {
            qname: "loop.example",
            addrs: &[],
            cnames: &cn,
            ns: &[],
            ns_addrs: &[],
        },
        1,
    );
    assert!(r.features.cname_loop);
    let long: String = "x".repeat(10_000);
    let _ = a.observe(&obs(&long, &[(ip("240.1.1.1"), 1)]), 1);
    // time going backwards, time zero, far future
    let _ = a.observe(&obs("t.example", &[(ip("240.1.1.1"), 1)]), u64::MAX);
    let _ = a.observe(&obs("t.example", &[(ip("240.1.1.2"), 1)]), 0);
    // LRU cap on domains
    for i in 0..10_000u32 {
        a.observe(
            &obs(&format!("d{i}.example"), &[(residential(i, i), 60)]),
            10 + i as u64,
        );
    }
    let st = a.stats();
    assert!(st.domains <= 100, "{st:?}");
    assert!(st.approx_bytes < 100 * 4096, "{st:?}");
}

#[test]
fn threads_share_one_analyzer() {
    let a = Arc::new(analyzer("threads"));
    let hs: Vec<_> = (0..4u32)
        .map(|t| {
            let a = a.clone();
            std::thread::spawn(move || {
                for i in 0..2000u32 {
                    let addrs = [(residential(i + t, i), 60)];
                    a.observe(
                        &obs(&format!("n{}.example", i % 300), &addrs),
                        1000 + i as u64,
                    );
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert!(a.stats().domains <= 300);
}

#[test]
fn mmdb_errors_and_degrade() {
    let bad = write_tmp("degrade-corrupt.mmdb", b"\x00\x01garbage");
    let cfg = IntelConfig {
        asn_mmdb: Some(bad.clone()),
        ..Default::default()
    };
    let e = AnswerAnalyzer::new(&cfg).err().unwrap().to_string();
    assert!(e.contains("degrade-corrupt.mmdb"), "{e}");
    let cfg = IntelConfig {
        asn_mmdb: Some(bad),
        degrade_on_mmdb_error: true,
        ..Default::default()
    };
    let a = AnswerAnalyzer::new(&cfg).unwrap();
    assert_eq!(a.warnings().len(), 1);
    assert!(!a.stats().asn_db);
    let cfg = IntelConfig {
        ioc_files: vec!["/nonexistent/iocs.txt".into()],
        ..Default::default()
    };
    let e = AnswerAnalyzer::new(&cfg).err().unwrap().to_string();
    assert!(e.contains("/nonexistent/iocs.txt"), "{e}");
}

#[test]
fn config_deserialises_with_defaults() {
    let c: IntelConfig = serde_json::from_str(
        r#"{"asn_mmdb": "/x/asn.mmdb", "window_secs": 600, "actions": {"parking_move": "block"}}"#,
    )
    .unwrap();
    assert_eq!(c.window_secs, 600);
    assert_eq!(c.max_domains, 100_000);
    assert_eq!(c.actions.parking_move, Action::Block);
    assert_eq!(c.actions.fast_flux, Action::Block);
    assert!(serde_json::from_str::<IntelConfig>(r#"{"bogus": 1}"#).is_err());
}

#[test]
fn packed_edge_nodes_are_not_flux_in_prefix_mode() {
    let a = AnswerAnalyzer::new(&IntelConfig::default()).unwrap();
    // an unknown CDN: each lookup 4 addresses in one /24 PoP, PoPs in different /16s
    for l in 0..6u32 {
        let addrs: Vec<(IpAddr, u32)> = (0..4)
            .map(|i| (ip(&format!("{}.{}.9.{}", 81 + l * 7, 20 + l, 10 + i)), 60))
            .collect();
        let r = a.observe(
            &obs("www.unknown-cdn-customer.example", &addrs),
            1000 + l as u64 * 60,
        );
        assert!(r.finding.is_none(), "lookup {l}: {r:?}");
    }
}

/// Two lookups of a slow-flux name (a new residential address and ASN each time), as in
/// `flux_grows_over_lookups`, which flags the name at its third lookup.
fn two_slow_flux_lookups(a: &AnswerAnalyzer, name: &str) {
    for l in 0..2u32 {
        let addrs = [(residential(l * 3, l), 300)];
        a.observe(&obs(name, &addrs), 1_000_000 + l as u64 * 300);
    }
}

fn third_slow_flux_lookup(a: &AnswerAnalyzer, name: &str) -> Assessment {
    let addrs = [(residential(6, 2), 300)];
    a.observe(&obs(name, &addrs), 1_000_600)
}

#[test]
fn a_reloaded_analyzer_continues_the_history_and_classifies_it_again() {
    // Before the reload these ASNs counted as hosting, so two lookups were not flux.
    let mut cfg = fixture_cfg("adopt");
    cfg.extra_hosting_asns = (65001..=65040).collect();
    let old = AnswerAnalyzer::with_iocs(&cfg, IocSet::parse(IOCS, "iocs").unwrap()).unwrap();
    two_slow_flux_lookups(&old, "slow-flux.example");

    // A new analyser that starts over sees a first lookup: nothing to flag.
    let fresh = analyzer("adopt");
    let r = third_slow_flux_lookup(&fresh, "slow-flux.example");
    assert_eq!(r.features.lookups, 1);
    assert!(r.finding.is_none(), "{r:?}");

    // The reloaded analyser shares the history, and classifies the old addresses with its own
    // lists: they are residential now, so the third lookup is flux, as without a reload.
    let mut new = analyzer("adopt");
    new.adopt_history(old.history());
    assert!(Arc::ptr_eq(new.history(), old.history()));
    let r = third_slow_flux_lookup(&new, "slow-flux.example");
    assert_eq!(r.features.lookups, 3);
    assert_eq!(r.features.distinct_ips, 3);
    assert!(r.features.residential_share > 0.99, "{r:?}");
    assert_eq!(r.finding.map(|f| f.kind), Some(FindingKind::FastFlux));
}

#[test]
fn a_history_of_another_size_is_copied_most_recent_first() {
    let old = analyzer("resize");
    for d in 0..30 {
        old.observe(
            &obs(&format!("d{d}.example"), &[(ip("240.3.3.3"), 60)]),
            1_000_000 + d,
        );
    }
    let mut cfg = fixture_cfg("resize");
    cfg.max_domains = 10;
    cfg.shards = 1;
    let mut small = AnswerAnalyzer::with_iocs(&cfg, IocSet::parse(IOCS, "iocs").unwrap()).unwrap();
    small.adopt_history(old.history());
    assert!(!Arc::ptr_eq(small.history(), old.history()));
    assert_eq!(old.history().len(), 30);
    assert_eq!(small.history().len(), 10);
    // The ten most recently seen domains are kept, with their lookups.
    let r = small.assess(&obs("d29.example", &[(ip("240.3.3.3"), 60)]), 1_000_100);
    assert_eq!(r.features.lookups, 2);
    let r = small.assess(&obs("d19.example", &[(ip("240.3.3.3"), 60)]), 1_000_100);
    assert_eq!(r.features.lookups, 1);
}

#[test]
fn a_history_snapshot_restores_what_is_still_in_the_window() {
    let a = analyzer("snap");
    two_slow_flux_lookups(&a, "slow-flux.example");
    // Last seen seven hours before the restore: outside the six-hour window.
    a.observe(
        &obs("stale.example", &[(ip("240.3.3.3"), 60)]),
        1_000_600 - 7 * 3600,
    );
    let bytes = a.history().snapshot();

    let b = analyzer("snap");
    let added = b
        .history()
        .restore(&bytes, 1_000_600, b.config().window_secs)
        .unwrap();
    assert_eq!(added, 1);
    assert_eq!(b.history().len(), 1);
    let r = third_slow_flux_lookup(&b, "slow-flux.example");
    assert_eq!(r.features.lookups, 3);
    assert_eq!(r.finding.map(|f| f.kind), Some(FindingKind::FastFlux));

    // An empty history's snapshot restores nothing and is no error.
    let empty = analyzer("snap").history().snapshot();
    assert_eq!(b.history().restore(&empty, 1_000_600, 3600).unwrap(), 0);
}

#[test]
fn a_damaged_history_snapshot_is_an_error_and_adds_nothing() {
    let a = analyzer("snapbad");
    two_slow_flux_lookups(&a, "slow-flux.example");
    two_slow_flux_lookups(&a, "other.example");
    let good = a.history().snapshot();
    let mut cases: Vec<(String, Vec<u8>)> = [0, 3, 4, 8, 9, good.len() / 2, good.len() - 1]
        .iter()
        .map(|&n| (format!("cut at {n}"), good[..n].to_vec()))
        .collect();
    let mut longer = good.clone();
    longer.push(0);
    cases.push(("a byte too many".into(), longer));
    let mut version = good.clone();
    version[4] = 9;
    cases.push(("unknown version".into(), version));
    let mut count = good.clone();
    count[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
    cases.push(("absurd count".into(), count));
    let mut name = good.clone();
    name[10] = b' ';
    cases.push(("space in a name".into(), name));
    for (what, bytes) in cases {
        let b = analyzer("snapbad");
        let e = b.history().restore(&bytes, 1_000_600, 3600);
        assert!(matches!(e, Err(IntelError::Snapshot(_))), "{what}: {e:?}");
        assert!(b.history().is_empty(), "{what}");
    }
    assert_eq!(
        analyzer("snapbad")
            .history()
            .restore(&good, 1_000_600, 3600)
            .unwrap(),
        2
    );
}

#[test]
fn ioc_hits_on_shared_infrastructure_are_logged_not_blocked() {
    const LIST: &str = "ip 104.16.1.1 phishing kit behind a CDN\nip 3.0.0.1 c2 on a cloud VM\n\
        ip 198.51.100.7 c2\ndomain docs.google.com payload hosted there\n\
        domain evil.blogspot.com c2 blog\ndomain github.io whole suffix\ndomain x.evil.example lure\n\
        domain news.bbc.co.uk host of a popular site\ndomain bbc.com popular site listed whole\n";
    let mut cfg = fixture_cfg("shared");
    cfg.extra_shared_domains = vec!["Partner-Portal.example.".into()];
    let a = AnswerAnalyzer::with_iocs(&cfg, IocSet::parse(LIST, "feed.txt").unwrap()).unwrap();
    let defaults = IntelActions::default();
    let check = |q: &str, addrs: &[(IpAddr, u32)], cnames: &[(&str, u32)]| {
        a.assess(
            &Observation {
                qname: q,
                addrs,
                cnames,
                ns: &[],
                ns_addrs: &[],
            },
            1,
        )
    };
    let shared = |r: &Assessment| r.finding.as_ref().and_then(|f| f.shared.clone());

    // A listed CDN edge address: every site behind that edge would be cut off.
    let r = check("www.some-shop.example", &[(ip("104.16.1.1"), 300)], &[]);
    let f = r.finding.as_ref().unwrap();
    assert_eq!(f.kind, FindingKind::IocIp);
    assert!(shared(&r).unwrap().contains("cloudflare edge"), "{f:?}");
    assert!(f.detail.contains("feed.txt:1") && f.detail.contains("on shared infrastructure"));
    assert_eq!(r.action(&defaults), Action::Log);
    // A listed address on a tenant's own cloud machine still blocks.
    let r = check("vm.example", &[(ip("3.0.0.1"), 300)], &[]);
    assert_eq!(r.finding.as_ref().unwrap().kind, FindingKind::IocIp);
    assert_eq!(shared(&r), None);
    assert_eq!(r.action(&defaults), Action::Block);
    // A popular site on a listed address, and the same address for an unknown name.
    let r = check("www.google.com", &[(ip("198.51.100.7"), 300)], &[]);
    assert!(shared(&r).unwrap().contains("google.com is a popular site"));
    assert_eq!(r.action(&defaults), Action::Log);
    let r = check("fresh.example", &[(ip("198.51.100.7"), 300)], &[]);
    assert_eq!(shared(&r), None);
    assert_eq!(r.action(&defaults), Action::Block);
    // An operator's own shared domain (normalised).
    let r = check(
        "www.partner-portal.example",
        &[(ip("198.51.100.7"), 300)],
        &[],
    );
    assert!(shared(&r).is_some());
    // Served through a CDN (its CNAME chain), the listed address is shared too.
    let r = check(
        "shop.example",
        &[(ip("198.51.100.7"), 300)],
        &[("shop.example.cdn.cloudflare.net", 300)],
    );
    assert!(shared(&r).unwrap().contains("served through cloudflare"));
    // A dedicated listed address beside a listed CDN edge decides.
    let r = check(
        "mixed.example",
        &[(ip("104.16.1.1"), 300), (ip("198.51.100.7"), 300)],
        &[],
    );
    assert_eq!(shared(&r), None);
    assert!(r.finding.as_ref().unwrap().detail.contains("198.51.100.7"));

    // Domain entries: a listed public-service host and a listed public suffix are shared; a
    // tenant's own name under a private suffix is not.
    let r = check("docs.google.com", &[], &[]);
    assert_eq!(r.finding.as_ref().unwrap().kind, FindingKind::IocDomain);
    assert!(shared(&r).unwrap().contains("part of google.com"));
    let r = check("someone.github.io", &[], &[]);
    assert!(shared(&r).unwrap().contains("public suffix"));
    let r = check("evil.blogspot.com", &[], &[]);
    assert_eq!(shared(&r), None);
    assert_eq!(r.action(&defaults), Action::Block);
    // A site that is only popular: a host of it listed is shared, the whole domain listed is
    // not (an expired popular domain registered again by an attacker looks like that).
    let r = check("news.bbc.co.uk", &[], &[]);
    assert!(shared(&r).unwrap().contains("a host of bbc.co.uk"), "{r:?}");
    let r = check("www.bbc.com", &[], &[]);
    assert_eq!(r.finding.as_ref().unwrap().kind, FindingKind::IocDomain);
    assert_eq!(shared(&r), None);
    assert_eq!(r.action(&defaults), Action::Block);
    // A listed popular name whose CNAME chain reaches a listed lure: the lure decides.
    let r = check("docs.google.com", &[], &[("x.evil.example", 60)]);
    assert_eq!(shared(&r), None);
    assert!(r
        .finding
        .as_ref()
        .unwrap()
        .detail
        .contains("x.evil.example"));

    // The operator can block shared hits too; the finding carries its reason to the API.
    let strict = IntelActions {
        ioc_shared: Action::Block,
        ..IntelActions::default()
    };
    let r = check("www.some-shop.example", &[(ip("104.16.1.1"), 300)], &[]);
    assert_eq!(r.action(&strict), Action::Block);
    let v = serde_json::to_value(&r).unwrap();
    assert!(v["finding"]["shared"].as_str().unwrap().contains("edge"));
    let r = check("fresh.example", &[(ip("198.51.100.7"), 300)], &[]);
    assert!(serde_json::to_value(&r).unwrap()["finding"]
        .get("shared")
        .is_none());
}

/// The indicators quoted in the threat reports the product is built from (`seed-iocs.txt`) and
/// the Bitsight fast-flux domains are dedicated attacker infrastructure: none of them may be
/// taken for shared infrastructure. Reads `../shared/data/intel` beside the repository.
#[test]
fn threat_report_indicators_are_not_shared_infrastructure() {
    let dir = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/intel"
    ));
    let seed = dir.join("seed-iocs.txt");
    let flux = dir.join("fastflux/bitsight-sandiflux_iocs.txt");
    if !seed.exists() || !flux.exists() {
        eprintln!("skipped: {} not present", dir.display());
        return;
    }
    let mut text = std::fs::read_to_string(&seed).unwrap();
    let mut flux_domains = 0;
    for l in std::fs::read_to_string(&flux).unwrap().lines() {
        if let Some(d) = l.strip_prefix("domain,") {
            text.push_str(&format!("domain {}\n", d.replace("[.]", ".")));
            flux_domains += 1;
        }
    }
    assert!(flux_domains >= 150, "{flux_domains}");
    let iocs = IocSet::parse(&text, "reports").unwrap();
    // The real MMDBs are not needed: the address rules read the built-in ranges.
    let a = AnswerAnalyzer::with_iocs(&IntelConfig::default(), iocs).unwrap();
    let (mut ips, mut domains) = (0, 0);
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let mut f = l.split_whitespace();
        let (Some(kind), Some(value)) = (f.next(), f.next()) else {
            continue;
        };
        let r = match kind {
            "ip" => {
                ips += 1;
                a.assess(&obs("fresh-name.example", &[(ip(value), 300)]), 1)
            }
            "domain" => {
                domains += 1;
                a.assess(&obs(value, &[]), 1)
            }
            _ => continue,
        };
        let f = r
            .finding
            .as_ref()
            .unwrap_or_else(|| panic!("{l}: no finding"));
        assert_eq!(f.shared, None, "{l}");
        assert_eq!(r.action(&IntelActions::default()), Action::Block, "{l}");
    }
    assert_eq!(
        (ips, domains),
        (18, 13 + flux_domains),
        "every indicator checked"
    );
}

#[test]
fn stale_ioc_lists_are_warned_about_and_every_list_is_reported() {
    let dir = std::env::temp_dir().join(format!("dnsward-stale-iocs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (fresh, old) = (dir.join("fresh.txt"), dir.join("old-feed.txt"));
    std::fs::write(&fresh, "198.51.100.7 c2\nevil.example\n").unwrap();
    std::fs::write(&old, "ip 203.0.113.9 reassigned long ago\n").unwrap();
    let forty_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(forty_days_ago)
        .unwrap();
    let mut cfg = IntelConfig {
        ioc_files: vec![fresh.clone(), old.clone()],
        ..Default::default()
    };
    let a = AnswerAnalyzer::new(&cfg).unwrap();
    let lists = a.ioc_lists();
    assert_eq!(
        lists
            .iter()
            .map(|l| (l.file.as_str(), l.entries))
            .collect::<Vec<_>>(),
        [("fresh.txt", 2), ("old-feed.txt", 1)]
    );
    let now = crate::unix_now();
    let age = |i: usize| now - lists[i].modified_unix.unwrap();
    assert!(age(0) < 3_600 && (40 * 86_400 - 60..40 * 86_400 + 3_600).contains(&age(1)));
    let stale: Vec<&String> = a
        .warnings()
        .iter()
        .filter(|w| w.contains("ioc list"))
        .collect();
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert!(
        stale[0].contains("old-feed.txt (1 entries) was last changed 40 days ago"),
        "{}",
        stale[0]
    );
    // A longer limit, or 0, silences it; the stale list still loads and blocks either way.
    for days in [45, 0] {
        cfg.ioc_max_age_days = days;
        let a = AnswerAnalyzer::new(&cfg).unwrap();
        assert!(
            !a.warnings().iter().any(|w| w.contains("ioc list")),
            "{days}"
        );
        let r = a.assess(&obs("x.example", &[(ip("203.0.113.9"), 60)]), 1);
        assert_eq!(r.action(&IntelActions::default()), Action::Block);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn hits_from_an_ioc_list_on_trial_are_logged_and_a_trusted_hit_decides() {
    let mut iocs = IocSet::parse("ip 198.51.100.7 trusted c2\n", "trusted.txt").unwrap();
    let mut trial = IocSet::parse(
        "ip 198.51.100.7 also on trial\n203.0.113.0/24 new feed range\nevil.example\n",
        "trial.txt",
    )
    .unwrap();
    trial.mark_trial();
    iocs.merge(trial);
    assert_eq!(
        iocs.lists()
            .iter()
            .map(|l| (l.file.as_str(), l.trial))
            .collect::<Vec<_>>(),
        [("trusted.txt", false), ("trial.txt", true)]
    );
    let a = AnswerAnalyzer::with_iocs(&fixture_cfg("trial"), iocs).unwrap();
    let strict = IntelActions {
        ioc_shared: Action::Block,
        ..IntelActions::default()
    };
    let r = a.assess(&obs("fresh.example", &[(ip("203.0.113.9"), 60)]), 1);
    let f = r.finding.as_ref().unwrap();
    assert!(
        f.trial && f.detail.ends_with("trial list: logged, not enforced"),
        "{f:?}"
    );
    assert_eq!(r.action(&strict), Action::Log, "never enforced");
    assert_eq!(
        a.assess(&obs("www.evil.example", &[]), 1).action(&strict),
        Action::Log
    );
    // A trusted list's hit in the same answer decides, and an indicator on both lists is the
    // trusted list's.
    let r = a.assess(
        &obs(
            "fresh.example",
            &[(ip("203.0.113.9"), 60), (ip("198.51.100.7"), 60)],
        ),
        1,
    );
    assert_eq!(
        (r.finding.as_ref().unwrap().trial, r.action(&strict)),
        (false, Action::Block)
    );
    let r = a.assess(&obs("other.example", &[(ip("198.51.100.7"), 60)]), 1);
    assert!(r.finding.as_ref().unwrap().detail.contains("trusted.txt:1"));
    assert_eq!(r.action(&strict), Action::Block);
    assert!(serde_json::to_value(&r).unwrap()["finding"]
        .get("trial")
        .is_none());
}
