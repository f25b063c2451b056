//! End-to-end: the real dnsward server on an ephemeral port in front of a real authoritative
//! upstream on loopback, checked on the wire.

mod support;

use dnsward_policy::{Action, Category, Stage, VerdictKind};
use hickory_proto::op::{MessageType, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use std::time::{Duration, Instant};
use support::*;

fn write_list(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_answers_pass_unchanged() {
    let up = start_upstream().await;
    let dw = start_dnsward(test_config(&[up.addr])).await;
    let cases = [
        ("www.test.", RecordType::A),
        ("www.test.", RecordType::AAAA),
        ("multi.test.", RecordType::A),
        ("alias.test.", RecordType::A),
        ("mail.test.", RecordType::MX),
        ("txt.test.", RecordType::TXT),
        ("test.", RecordType::NS),
        ("test.", RecordType::SOA),
        ("nothere.test.", RecordType::A),
        ("www.test.", RecordType::MX),
        ("www.test.", RecordType::CAA),
    ];
    for (name, rtype) in cases {
        for edns in [None, Some(1232)] {
            let q = query(name, rtype, edns);
            let direct = udp(up.addr, &q).await;
            let got = udp(dw.addr, &q).await;
            let what = format!("{name} {rtype} edns={edns:?}");
            assert_eq!(got.metadata.id, q.metadata.id, "{what}: ID");
            assert_eq!(got.metadata.message_type, MessageType::Response, "{what}");
            assert!(
                got.metadata.recursion_desired && got.metadata.recursion_available,
                "{what}: RD/RA"
            );
            assert!(!got.metadata.truncation, "{what}: TC");
            assert_eq!(
                got.metadata.response_code, direct.metadata.response_code,
                "{what}: RCODE"
            );
            assert_eq!(rrs(&got.answers), rrs(&direct.answers), "{what}: answers");
            assert_eq!(
                rrs(&got.authorities),
                rrs(&direct.authorities),
                "{what}: authority"
            );
            assert_eq!(
                got.edns.is_some(),
                edns.is_some(),
                "{what}: OPT only if the client sent one"
            );
        }
    }
    // All six addresses of a round-robin name.
    let got = udp(dw.addr, &query("multi.test.", RecordType::A, None)).await;
    assert_eq!(got.answers.len(), 6);
    // NXDOMAIN keeps its SOA (clients need it for negative caching).
    let got = udp(dw.addr, &query("nothere.test.", RecordType::A, None)).await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
    assert!(matches!(got.authorities[0].data, RData::SOA(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn question_case_is_echoed_and_ttls_count_down_from_cache() {
    let up = start_upstream().await;
    let dw = start_dnsward(test_config(&[up.addr])).await;
    let first = udp(dw.addr, &query("www.test.", RecordType::A, None)).await;
    let ttl1 = first.answers[0].ttl;
    assert_eq!(ttl1, 300);
    let hits_before = dw.app.engine().cache().hits();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Mixed case (0x20, written into the raw packet): served from the same cache entry and
    // echoed exactly as asked.
    let mut pkt = query("www.test.", RecordType::A, None).to_vec().unwrap();
    pkt[13] = b'W';
    pkt[17] = b'T';
    let raw = udp_raw(dw.addr, &pkt, Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(&raw[12..22], b"\x03Www\x04Test\x00");
    let second = hickory_proto::op::Message::from_vec(&raw).unwrap();
    assert_eq!(
        dw.app.engine().cache().hits(),
        hits_before + 1,
        "second query is a cache hit"
    );
    let ttl2 = second.answers[0].ttl;
    assert!(
        ttl2 <= ttl1 - 2 && ttl2 >= ttl1 - 3,
        "TTL counted down: {ttl1} -> {ttl2}"
    );
    assert_eq!(rrs(&first.answers), rrs(&second.answers));
    // Negative answers are cached too (RFC 2308), with the SOA minimum (30 s in the fixture).
    let _ = udp(dw.addr, &query("nothere.test.", RecordType::A, None)).await;
    let hits = dw.app.engine().cache().hits();
    let neg = udp(dw.addr, &query("nothere.test.", RecordType::A, None)).await;
    assert_eq!(neg.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(dw.app.engine().cache().hits(), hits + 1);
    assert!(neg.authorities[0].ttl <= 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denylist_actions_on_the_wire() {
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let deny = write_list(&dir, "deny.txt", "# test\nbad.test\n");

    // nxdomain (default for lists), with a reason pointing at the list line.
    let mut cfg = test_config(&[up.addr]);
    cfg.lists.deny = vec![deny.clone()];
    let dw = start_dnsward(cfg).await;
    let got = udp(dw.addr, &query("bad.test.", RecordType::A, Some(1232))).await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
    assert!(got.answers.is_empty());
    assert!(matches!(got.authorities[0].data, RData::SOA(_)));
    let events = dw.events.events.lock().unwrap().clone();
    let (name, verdict, _) = &events[0];
    assert_eq!(name, "bad.test");
    assert_eq!(verdict.category(), Some(Category::List));
    let reason = verdict.reason.as_ref().unwrap();
    assert!(reason.source.ends_with("deny.txt:2"), "{reason}");
    // The client is told why, in an Extended DNS Error (RFC 8914, 15 "Blocked"): only the
    // category by default, the whole reason when configured.
    assert_eq!(ede(&got), vec![(15, "blocked by policy: list".to_string())]);
    let mut cfg = test_config(&[up.addr]);
    cfg.lists.deny = vec![deny.clone()];
    cfg.actions.ede = dnsward_policy::EdeText::Reason;
    let dw = start_dnsward(cfg).await;
    let got = udp(dw.addr, &query("bad.test.", RecordType::A, Some(1232))).await;
    let (code, text) = ede(&got).pop().unwrap();
    assert!(
        code == 15
            && text.starts_with("blocked by policy: list: denylist ")
            && text.contains("deny.txt:2"),
        "{text}"
    );

    // sinkhole: A and AAAA point at the sinkhole, other types get NODATA.
    let mut cfg = test_config(&[up.addr]);
    cfg.lists.deny = vec![deny.clone()];
    cfg.actions.list = Action::Sinkhole;
    cfg.sinkhole.ipv4 = vec!["10.99.0.1".parse().unwrap()];
    cfg.sinkhole.ipv6 = vec!["fd00::99".parse().unwrap()];
    cfg.sinkhole.ttl = 42;
    let dw = start_dnsward(cfg).await;
    let a = udp(dw.addr, &query("bad.test.", RecordType::A, Some(1232))).await;
    assert!(ede(&a).is_empty(), "a sinkhole answer must look real");
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a.answers.len(), 1);
    assert_eq!(a.answers[0].data.to_string(), "10.99.0.1");
    assert_eq!(a.answers[0].ttl, 42);
    let aaaa = udp(dw.addr, &query("bad.test.", RecordType::AAAA, None)).await;
    assert_eq!(aaaa.answers[0].data.to_string(), "fd00::99");
    let mx = udp(dw.addr, &query("bad.test.", RecordType::MX, None)).await;
    assert_eq!(mx.metadata.response_code, ResponseCode::NoError);
    assert!(mx.answers.is_empty(), "NODATA for other types");

    // refused
    let mut cfg = test_config(&[up.addr]);
    cfg.lists.deny = vec![deny.clone()];
    cfg.actions.list = Action::Refused;
    let dw = start_dnsward(cfg).await;
    let got = udp(dw.addr, &query("bad.test.", RecordType::A, None)).await;
    assert_eq!(got.metadata.response_code, ResponseCode::Refused);

    // monitor: the real answer, the verdict recorded as `log`.
    let mut cfg = test_config(&[up.addr]);
    cfg.lists.deny = vec![deny];
    cfg.actions.monitor = true;
    let dw = start_dnsward(cfg).await;
    let got = udp(dw.addr, &query("bad.test.", RecordType::A, None)).await;
    assert_eq!(got.answers[0].data.to_string(), "192.0.2.66");
    let events = dw.events.events.lock().unwrap().clone();
    assert_eq!(
        events[0].1.kind,
        VerdictKind::Block {
            category: Category::List,
            action: Action::Log
        }
    );
    // Cached hits of a monitored name are still reported.
    let _ = udp(dw.addr, &query("bad.test.", RecordType::A, None)).await;
    let events = dw.events.events.lock().unwrap().clone();
    assert_eq!(events.len(), 2);
    assert!(events[1].2, "second report comes from the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowlist_beats_denylist() {
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(&[up.addr]);
    cfg.lists.deny = vec![write_list(&dir, "deny.txt", "good.test\n")];
    cfg.lists.allow = vec![write_list(&dir, "allow.txt", "0.0.0.0 ads.good.test\n")];
    let dw = start_dnsward(cfg).await;
    let blocked = udp(dw.addr, &query("good.test.", RecordType::A, None)).await;
    assert_eq!(blocked.metadata.response_code, ResponseCode::NXDomain);
    let allowed = udp(dw.addr, &query("ads.good.test.", RecordType::A, None)).await;
    assert_eq!(allowed.metadata.response_code, ResponseCode::NoError);
    assert_eq!(allowed.answers[0].data.to_string(), "192.0.2.78");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_and_tcp_fallback() {
    let up = start_upstream().await;
    let dw = start_dnsward(test_config(&[up.addr])).await;
    // The TXT set is about 2 KB: larger than dnsward's 1232-byte EDNS size towards the upstream,
    // so dnsward itself has to fall back to TCP to fetch it.
    let direct = tcp(up.addr, &query("big.test.", RecordType::TXT, None)).await;
    assert_eq!(direct.answers.len(), 10);

    // Plain DNS client (512 bytes): TC set, no partial answer.
    let small = udp(dw.addr, &query("big.test.", RecordType::TXT, None)).await;
    assert!(small.metadata.truncation);
    assert!(small.answers.is_empty());
    // EDNS 1232: still too big.
    let mid = udp(dw.addr, &query("big.test.", RecordType::TXT, Some(1232))).await;
    assert!(mid.metadata.truncation);
    assert!(mid.edns.is_some());
    // EDNS 4096: the client's size is honoured, full answer over UDP.
    let large = udp(dw.addr, &query("big.test.", RecordType::TXT, Some(4096))).await;
    assert!(!large.metadata.truncation);
    assert_eq!(rrs(&large.answers), rrs(&direct.answers));
    // The client's retry over TCP gets everything.
    let over_tcp = tcp(dw.addr, &query("big.test.", RecordType::TXT, None)).await;
    assert!(!over_tcp.metadata.truncation);
    assert_eq!(rrs(&over_tcp.answers), rrs(&direct.answers));
    assert!(dw.app.engine().stats.snapshot().truncated >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servfail_within_budget_when_upstream_is_dead() {
    let (dead, _sock) = silent_upstream().await;
    let mut cfg = test_config(&[dead]);
    cfg.upstream.timeout_ms = 600;
    cfg.upstream.attempt_timeout_ms = 300;
    let dw = start_dnsward(cfg).await;
    let started = Instant::now();
    let got = udp(dw.addr, &query("www.test.", RecordType::A, None)).await;
    let took = started.elapsed();
    assert_eq!(got.metadata.response_code, ResponseCode::ServFail);
    assert!(
        took >= Duration::from_millis(550),
        "waited for the budget: {took:?}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "no hang beyond the budget: {took:?}"
    );
    assert_eq!(dw.app.engine().stats.snapshot().upstream_failures, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_to_the_next_upstream() {
    let (dead, _sock) = silent_upstream().await;
    let up = start_upstream().await;
    let dw = start_dnsward(test_config(&[dead, up.addr])).await;
    let got = udp(dw.addr, &query("www.test.", RecordType::A, None)).await;
    assert_eq!(got.answers[0].data.to_string(), "192.0.2.10");
    // After failing over, the live upstream is tried first: no second wait.
    let started = Instant::now();
    let got = udp(dw.addr, &query("multi.test.", RecordType::A, None)).await;
    assert_eq!(got.answers.len(), 6);
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_are_survived() {
    let up = start_upstream().await;
    let dw = start_dnsward(test_config(&[up.addr])).await;
    let valid = query("www.test.", RecordType::A, Some(1232))
        .to_vec()
        .unwrap();
    let mut corpus: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x12],
        vec![0; 11],
        vec![0; 12],
        // QDCOUNT 1 but no question.
        vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0],
        // A compression pointer loop as the question name.
        vec![0, 2, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1],
        // A label running past the end.
        vec![0, 3, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 63, b'a', b'b'],
        // ARCOUNT claims records that are not there.
        {
            let mut p = valid.clone();
            p[11] = 9;
            p
        },
        vec![0xff; 600],
    ];
    // Every truncation and some byte flips of a valid query.
    for n in 0..valid.len() {
        corpus.push(valid[..n].to_vec());
        let mut p = valid.clone();
        p[n] ^= 0xa5;
        corpus.push(p);
    }
    let mut formerr = 0;
    for pkt in &corpus {
        if let Some(resp) = udp_raw(dw.addr, pkt, Duration::from_millis(150)).await {
            assert!(resp.len() >= 12, "any answer is a DNS message");
            if resp[3] & 0x0f == 1 {
                formerr += 1;
            }
        }
    }
    assert!(
        formerr >= 3,
        "malformed queries with a header get FORMERR ({formerr})"
    );
    // A response packet (QR set) is never answered: no reflection loops.
    let mut resp_pkt = valid.clone();
    resp_pkt[2] |= 0x80;
    assert!(udp_raw(dw.addr, &resp_pkt, Duration::from_millis(200))
        .await
        .is_none());
    // Oversized name: 4 x 63-byte labels + more = over 255 bytes.
    let mut long = vec![0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for _ in 0..5 {
        long.push(63);
        long.extend([b'x'; 63]);
    }
    long.extend([0, 0, 1, 0, 1]);
    let r = udp_raw(dw.addr, &long, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(r[3] & 0x0f, 1, "FORMERR for a name over 255 bytes");
    // Same over TCP: garbage frames, then a valid query on a fresh connection.
    {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(dw.addr).await.unwrap();
        let _ = s.write_all(&[0, 5, 1, 2, 3, 4, 5, 0xff, 0xff, 1]).await;
    }
    // The server still answers normally.
    let ok = udp(dw.addr, &query("www.test.", RecordType::A, None)).await;
    assert_eq!(ok.answers[0].data.to_string(), "192.0.2.10");
    let ok = tcp(dw.addr, &query("www.test.", RecordType::A, None)).await;
    assert_eq!(ok.answers[0].data.to_string(), "192.0.2.10");
    assert!(dw.app.engine().stats.snapshot().malformed > 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_outside_the_acl_are_refused() {
    let up = start_upstream().await;
    let mut cfg = test_config(&[up.addr]);
    cfg.server.allow_clients = vec!["192.0.2.0/24".parse().unwrap()];
    let dw = start_dnsward(cfg).await;
    let got = udp(dw.addr, &query("www.test.", RecordType::A, None)).await;
    assert_eq!(got.metadata.response_code, ResponseCode::Refused);
    assert!(got.answers.is_empty());
    let got = tcp(dw.addr, &query("www.test.", RecordType::A, None)).await;
    assert_eq!(got.metadata.response_code, ResponseCode::Refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_client_rate_limit_drops_silently() {
    let up = start_upstream().await;
    let mut cfg = test_config(&[up.addr]);
    cfg.server.rate_limit.per_client_qps = 1;
    cfg.server.rate_limit.burst = 3;
    cfg.server.rate_limit.exempt = vec![];
    let dw = start_dnsward(cfg).await;
    let pkt = query("www.test.", RecordType::A, None).to_vec().unwrap();
    let mut answered = 0;
    for _ in 0..8 {
        if udp_raw(dw.addr, &pkt, Duration::from_millis(200))
            .await
            .is_some()
        {
            answered += 1;
        }
    }
    assert!(
        (3..=4).contains(&answered),
        "burst of 3 (+1 refill at most): {answered}"
    );
    assert!(dw.app.engine().stats.snapshot().rate_limited >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_queries_get_a_minimal_answer() {
    let up = start_upstream().await;
    let dw = start_dnsward(test_config(&[up.addr])).await;
    let got = udp(dw.addr, &query("www.test.", RecordType::ANY, None)).await;
    assert_eq!(got.metadata.response_code, ResponseCode::NoError);
    assert_eq!(got.answers.len(), 1);
    assert_eq!(got.answers[0].record_type(), RecordType::HINFO);
    // Non-IN classes are refused, zone transfers not implemented.
    let mut chaos = query("version.bind.", RecordType::TXT, None);
    chaos.queries[0].set_query_class(hickory_proto::rr::DNSClass::CH);
    assert_eq!(
        udp(dw.addr, &chaos).await.metadata.response_code,
        ResponseCode::Refused
    );
    let axfr = query("test.", RecordType::AXFR, None);
    assert_eq!(
        udp(dw.addr, &axfr).await.metadata.response_code,
        ResponseCode::NotImp
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_lists_and_rejudges_cached_answers() {
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let deny = write_list(&dir, "deny.txt", "bad.test\n");
    let cfg_path = dir.path().join("dnsward.toml");
    std::fs::write(&cfg_path, "[lists]\ndeny = [\"deny.txt\"]\n").unwrap();
    let mut cfg = dnsward::Config::load(&cfg_path).unwrap();
    cfg.admin.enabled = false;
    cfg.server.listen = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.upstream.servers = vec![up.addr.to_string()];
    // Reload re-reads the file: keep the test upstream and port in it.
    std::fs::write(
        &cfg_path,
        format!(
            "[lists]\ndeny = [\"deny.txt\"]\n[upstream]\nservers = [\"{}\"]\n",
            up.addr
        ),
    )
    .unwrap();
    let dw = start_dnsward_with_path(cfg, Some(cfg_path.clone())).await;
    // later.test is answered and cached.
    let got = udp(dw.addr, &query("later.test.", RecordType::A, None)).await;
    assert_eq!(got.answers[0].data.to_string(), "192.0.2.90");
    // Add it to the denylist and reload: the cached answer is re-judged.
    std::fs::write(&deny, "bad.test\nlater.test\n").unwrap();
    dw.app.reload().unwrap();
    let got = udp(dw.addr, &query("later.test.", RecordType::A, None)).await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
    // A broken reload keeps the running policy.
    std::fs::remove_file(&deny).unwrap();
    let err = dw.app.reload().unwrap_err();
    assert!(format!("{err:#}").contains("deny.txt"), "{err:#}");
    std::fs::write(&cfg_path, "[lists]\ndeny = [\"deny.txt\"]\nbogus = 1\n").unwrap();
    assert!(dw.app.reload().is_err());
    let got = udp(dw.addr, &query("later.test.", RecordType::A, None)).await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
    let got = udp(dw.addr, &query("www.test.", RecordType::A, None)).await;
    assert_eq!(got.metadata.response_code, ResponseCode::NoError);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_listener_answers() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("SKIP: no IPv6 loopback in this environment");
        return;
    }
    let up = start_upstream().await;
    let mut cfg = test_config(&[up.addr]);
    cfg.server.listen = vec!["[::1]:0".parse().unwrap(), "127.0.0.1:0".parse().unwrap()];
    let dw = start_dnsward(cfg).await;
    let v6 = dw.app.server.addrs[0];
    assert!(v6.is_ipv6());
    let sock = tokio::net::UdpSocket::bind("[::1]:0").await.unwrap();
    sock.send_to(
        &query("www.test.", RecordType::AAAA, None).to_vec().unwrap(),
        v6,
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let msg = hickory_proto::op::Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(msg.answers[0].data.to_string(), "2001:db8::10");
    let got = tcp(v6, &query("www.test.", RecordType::A, None)).await;
    assert_eq!(got.answers[0].data.to_string(), "192.0.2.10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_over_tls_and_https_upstreams() {
    let dir = tempfile::tempdir().unwrap();
    let enc = start_encrypted_upstream(dir.path()).await;
    for server in [
        format!("tls://{}#dns.test", enc.dot),
        format!("https://{}/dns-query#dns.test", enc.doh),
    ] {
        let mut cfg = test_config(&[]);
        cfg.upstream.servers = vec![server.clone()];
        cfg.upstream.ca_file = Some(enc.ca_file.clone());
        let dw = start_dnsward(cfg).await;
        let got = udp(dw.addr, &query("multi.test.", RecordType::A, None)).await;
        assert_eq!(
            got.metadata.response_code,
            ResponseCode::NoError,
            "{server}"
        );
        assert_eq!(got.answers.len(), 6, "{server}");
        let got = udp(dw.addr, &query("nothere.test.", RecordType::A, None)).await;
        assert_eq!(
            got.metadata.response_code,
            ResponseCode::NXDomain,
            "{server}"
        );
        // Large answers need no TCP fallback over a stream transport.
        let got = udp(dw.addr, &query("big.test.", RecordType::TXT, Some(4096))).await;
        assert_eq!(got.answers.len(), 10, "{server}");
    }
    // A certificate that does not match the configured name is refused: SERVFAIL, not an answer.
    let mut cfg = test_config(&[]);
    cfg.upstream.servers = vec![format!("tls://{}#other.test", enc.dot)];
    cfg.upstream.ca_file = Some(enc.ca_file.clone());
    let dw = start_dnsward(cfg).await;
    let got = udp(dw.addr, &query("www.test.", RecordType::A, None)).await;
    assert_eq!(got.metadata.response_code, ResponseCode::ServFail);
    // Without the CA the certificate is not trusted either.
    let mut cfg = test_config(&[]);
    cfg.upstream.servers = vec![format!("tls://{}#dns.test", enc.dot)];
    let dw = start_dnsward(cfg).await;
    let got = udp(dw.addr, &query("www.test.", RecordType::A, None)).await;
    assert_eq!(got.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dga_names_are_blocked_with_score_and_family() {
    let up = start_upstream().await;
    let dw = start_dnsward(test_config(&[up.addr])).await;
    // The upstream has an address for it; the model blocks it anyway.
    let direct = udp(
        up.addr,
        &query("kqvwxjzrtplmnbvcxqwe.net.", RecordType::A, None),
    )
    .await;
    assert_eq!(direct.answers.len(), 1);
    let got = udp(
        dw.addr,
        &query("kqvwxjzrtplmnbvcxqwe.net.", RecordType::A, None),
    )
    .await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
    match &got.authorities[0].data {
        RData::SOA(soa) => assert_eq!(soa.mname.to_ascii(), "dnsward.invalid."),
        other => panic!("expected dnsward's SOA, got {other:?}"),
    }
    let events = dw.events.events.lock().unwrap().clone();
    let (_, verdict, _) = events
        .iter()
        .find(|(n, _, _)| n == "kqvwxjzrtplmnbvcxqwe.net")
        .expect("event");
    assert_eq!(verdict.category(), Some(Category::Dga));
    let reason = verdict.reason.as_ref().unwrap();
    assert!(reason.score.unwrap() > 0.9, "{reason}");
    assert!(reason.family.is_some(), "{reason}");
    // Ordinary names of the fixture are not judged DGA.
    for name in ["www.test.", "multi.test.", "mail.test.", "later.test."] {
        let got = udp(dw.addr, &query(name, RecordType::A, None)).await;
        assert_eq!(got.metadata.response_code, ResponseCode::NoError, "{name}");
    }
    // Monitor mode: the real answer, the verdict logged.
    let mut cfg = test_config(&[up.addr]);
    cfg.actions.monitor = true;
    let dw = start_dnsward(cfg).await;
    let got = udp(
        dw.addr,
        &query("kqvwxjzrtplmnbvcxqwe.net.", RecordType::A, None),
    )
    .await;
    assert_eq!(got.answers[0].data.to_string(), "192.0.2.99");
    let events = dw.events.events.lock().unwrap().clone();
    assert_eq!(events[0].1.action(), Some(Action::Log));
    // DGA can be switched off.
    let mut cfg = test_config(&[up.addr]);
    cfg.dga.enabled = false;
    let dw = start_dnsward(cfg).await;
    let got = udp(
        dw.addr,
        &query("kqvwxjzrtplmnbvcxqwe.net.", RecordType::A, None),
    )
    .await;
    assert_eq!(got.answers[0].data.to_string(), "192.0.2.99");
}

/// Three distinct registrable domains the model blocks at its default threshold, looked up by
/// `client`: the strikes that escalate it under the default `[dga.escalation]`.
async fn three_dga_strikes(client: std::net::IpAddr, server: std::net::SocketAddr) {
    for name in [
        "kqvwxjzrtplmnbvcxqwe.net.",
        "zxkqwvbnmtr.org.",
        "alreadyafraid.net.",
    ] {
        udp_from(client, server, &query(name, RecordType::A, None)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_with_repeated_dga_blocks_are_judged_at_the_escalated_threshold() {
    const BAND: &str = "xjw3kqpz0a.net."; // between the escalated and the default threshold
    let up = start_upstream().await;
    let mut cfg = test_config(&[up.addr]);
    cfg.dga.escalation.after = 3;
    let dw = start_dnsward(cfg).await;
    let infected: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let clean: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let real = |m: &hickory_proto::op::Message| {
        m.metadata.response_code == ResponseCode::NoError
            && m.answers.first().map(|r| r.data.to_string()) == Some("192.0.2.98".into())
    };
    // Before any block, the band name resolves for everyone (and lands in the cache).
    assert!(real(
        &udp_from(infected, dw.addr, &query(BAND, RecordType::A, None)).await
    ));
    // Two names of one registrable domain are one strike, not two.
    for name in [
        "kqvwxjzrtplmnbvcxqwe.net.",
        "www.kqvwxjzrtplmnbvcxqwe.net.",
        "zxkqwvbnmtr.org.",
    ] {
        let got = udp_from(infected, dw.addr, &query(name, RecordType::A, None)).await;
        assert_eq!(got.metadata.response_code, ResponseCode::NXDomain, "{name}");
    }
    assert_eq!(dw.app.engine().stats.snapshot().clients_escalated, 0);
    assert!(real(
        &udp_from(infected, dw.addr, &query(BAND, RecordType::A, None)).await
    ));
    let got = udp_from(
        infected,
        dw.addr,
        &query("alreadyafraid.net.", RecordType::A, None),
    )
    .await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(dw.app.engine().stats.snapshot().clients_escalated, 1);
    // Now escalated: the cached band name is blocked for this client only, over UDP and TCP
    // (the same source address), and a fresh query type (a cache miss) too.
    let got = udp_from(infected, dw.addr, &query(BAND, RecordType::A, None)).await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
    let got = udp_from(infected, dw.addr, &query(BAND, RecordType::AAAA, None)).await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
    assert!(real(
        &udp_from(clean, dw.addr, &query(BAND, RecordType::A, None)).await
    ));
    // Ordinary names still resolve for the escalated client.
    let got = udp_from(infected, dw.addr, &query("www.test.", RecordType::A, None)).await;
    assert_eq!(got.metadata.response_code, ResponseCode::NoError);
    // The reason says why: the escalated stage and threshold, the registrable domain judged.
    let events = dw.events.events.lock().unwrap().clone();
    let (_, verdict, from_cache) = events
        .iter()
        .find(|(n, v, _)| {
            n == "xjw3kqpz0a.net"
                && v.reason
                    .as_ref()
                    .is_some_and(|r| r.stage == Stage::ClientEscalation)
        })
        .expect("an escalated block event");
    assert!(*from_cache, "the first escalated block was a cache hit");
    let reason = verdict.reason.as_ref().unwrap();
    assert_eq!(verdict.category(), Some(Category::Dga));
    assert!(reason.detail.contains("escalated threshold"), "{reason}");
    assert_eq!(reason.judged.as_deref(), Some("xjw3kqpz0a.net"));
    let score = reason.score.unwrap();
    let model = dnsward_classify::DgaModel::embedded().unwrap();
    assert!(score < model.default_threshold(), "{score}");
    assert!(score >= model.escalated_threshold().unwrap(), "{score}");

    // Switched off: the same sequence never blocks the band name.
    let mut cfg = test_config(&[up.addr]);
    cfg.dga.escalation.enabled = false;
    let dw = start_dnsward(cfg).await;
    three_dga_strikes(infected, dw.addr).await;
    assert!(real(
        &udp_from(infected, dw.addr, &query(BAND, RecordType::A, None)).await
    ));
    // Exempt clients are never escalated.
    let mut cfg = test_config(&[up.addr]);
    cfg.dga.escalation.exempt = vec!["127.0.0.2/32".parse().unwrap()];
    let dw = start_dnsward(cfg).await;
    three_dga_strikes(infected, dw.addr).await;
    assert!(real(
        &udp_from(infected, dw.addr, &query(BAND, RecordType::A, None)).await
    ));
    assert_eq!(dw.app.engine().stats.snapshot().clients_escalated, 0);
}

/// A test config whose answer checks read the IOC list `iocs` (written to `dir/iocs.txt`) and
/// whose sinkhole answers point at 10.99.0.1.
fn ioc_config(
    upstream: std::net::SocketAddr,
    dir: &tempfile::TempDir,
    iocs: &str,
) -> dnsward::Config {
    let mut cfg = test_config(&[upstream]);
    cfg.intel.ioc_files = vec![write_list(dir, "iocs.txt", iocs)];
    cfg.sinkhole.ipv4 = vec!["10.99.0.1".parse().unwrap()];
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_landing_on_ioc_addresses_are_sinkholed_cname_chains_included() {
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = ioc_config(
        up.addr,
        &dir,
        "# type value context\nip 192.0.2.10 test C2 server\n",
    );
    let dw = start_dnsward(cfg).await;
    // www.test resolves to the IOC address; alias.test is a CNAME to it.
    for name in ["www.test.", "alias.test."] {
        let got = udp(dw.addr, &query(name, RecordType::A, None)).await;
        assert_eq!(got.answers.len(), 1, "{name}: {got:?}");
        assert_eq!(
            got.answers[0].data.to_string(),
            "10.99.0.1",
            "{name} sinkholed"
        );
    }
    let events = dw.events.events.lock().unwrap().clone();
    let (_, verdict, _) = events.iter().find(|(n, _, _)| n == "alias.test").unwrap();
    assert_eq!(verdict.category(), Some(Category::Ioc));
    let reason = verdict.reason.as_ref().unwrap();
    assert!(reason.detail.contains("192.0.2.10"), "{reason}");
    assert!(
        reason.features.is_some(),
        "the features that drove it are attached"
    );
    // Other names pass.
    let got = udp(dw.addr, &query("multi.test.", RecordType::A, None)).await;
    assert_eq!(got.answers.len(), 6);
    // A cached hit keeps the verdict.
    let got = udp(dw.addr, &query("www.test.", RecordType::A, None)).await;
    assert_eq!(got.answers[0].data.to_string(), "10.99.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ioc_hits_on_shared_infrastructure_are_logged_and_do_not_score_the_client() {
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ioc_config(
        up.addr,
        &dir,
        "ip 192.0.2.10 test C2 server\nip 104.16.1.1 phishing page behind a CDN\n",
    );
    with_admin(&mut cfg, dir.path());
    let dw = start_dnsward(cfg.clone()).await;
    // A CDN edge address and a public web service on a listed address: answered, recorded.
    for (name, addr) in [
        ("edge.test.", "104.16.1.1"),
        ("pastebin.com.", "192.0.2.10"),
    ] {
        let got = udp(dw.addr, &query(name, RecordType::A, None)).await;
        assert_eq!(got.metadata.response_code, ResponseCode::NoError, "{name}");
        assert_eq!(got.answers[0].data.to_string(), addr, "{name} answered");
    }
    let events = dw.events.events.lock().unwrap().clone();
    for (name, why) in [
        ("edge.test", "cloudflare edge"),
        ("pastebin.com", "popular site"),
    ] {
        let (_, verdict, _) = events.iter().find(|(n, _, _)| n == name).unwrap();
        assert_eq!(verdict.category(), Some(Category::Shared), "{name}");
        assert_eq!(verdict.action(), Some(Action::Log), "{name}");
        let reason = verdict.reason.as_ref().unwrap();
        assert!(
            reason.detail.contains("on shared infrastructure"),
            "{reason}"
        );
        assert!(reason.detail.contains(why), "{reason}");
    }
    let admin = dw.app.admin.as_ref().unwrap().addr;
    let client_ioc_evidence = || async {
        let store = dw.app.store.as_ref().unwrap();
        store.flush();
        let (_, body) = http(admin, "GET", "/api/v1/clients/127.0.0.1", None, "").await;
        body.contains("flux_or_ioc_lookup")
    };
    assert!(
        !client_ioc_evidence().await,
        "reaching shared infrastructure is no evidence against the client"
    );
    let (status, body) = http(admin, "GET", "/api/v1/blocks?category=shared", None, "").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("edge.test") && body.contains("pastebin.com"),
        "{body}"
    );
    // The same listed address for a name of its own is sinkholed and counts against the client.
    let got = udp(dw.addr, &query("www.test.", RecordType::A, None)).await;
    assert_eq!(got.answers[0].data.to_string(), "10.99.0.1");
    assert!(client_ioc_evidence().await);
    drop(dw);

    // An operator who wants shared hits blocked gets NXDOMAIN ([actions] shared), not the sinkhole.
    let mut strict = cfg;
    strict.intel.actions.ioc_shared = dnsward_intel::Action::Block;
    strict.admin.enabled = false;
    let dw = start_dnsward(strict).await;
    let got = udp(dw.addr, &query("edge.test.", RecordType::A, None)).await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_ioc_list_shows_its_age_until_a_reload_loads_a_fresh_one() {
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let iocs = write_list(&dir, "feed.txt", "192.0.2.10 test C2\n");
    let forty_days = Duration::from_secs(40 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&iocs)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - forty_days)
        .unwrap();
    let path = write_list(
        &dir,
        "dnsward.toml",
        &format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n[upstream]\nservers = [\"{}\"]\n\
             [intel]\nioc_files = [\"feed.txt\"]\n\
             [admin]\nlisten = \"127.0.0.1:0\"\ndb_path = \"events.sqlite3\"\n",
            up.addr
        ),
    );
    let cfg = dnsward::Config::load(&path).unwrap();
    let dw = start_dnsward_with_path(cfg, Some(path)).await;
    let list = |v: &serde_json::Value| {
        (
            v["ioc_lists"][0]["file"].clone(),
            v["ioc_lists"][0]["entries"].clone(),
        )
    };
    let stats = admin_stats(&dw).await;
    assert_eq!(list(&stats), ("feed.txt".into(), 1.into()), "{stats}");
    let age = stats["ioc_lists"][0]["age_secs"].as_u64().unwrap();
    assert!(
        age >= forty_days.as_secs() && age < forty_days.as_secs() + 600,
        "{age}"
    );
    let admin = dw.app.admin.as_ref().unwrap().addr;
    let (_, metrics) = http(admin, "GET", "/metrics", None, "").await;
    assert!(
        metrics.contains("dnsward_ioc_list_age_seconds{list=\"feed.txt\"} 34"),
        "{metrics}"
    );
    // The feed is refreshed on disk: still old until a reload loads it.
    std::fs::write(&iocs, "192.0.2.10 test C2\n192.0.2.66 another\n").unwrap();
    assert!(
        admin_stats(&dw).await["ioc_lists"][0]["age_secs"]
            .as_u64()
            .unwrap()
            >= age
    );
    let (code, body) = http(admin, "POST", "/api/v1/reload", None, "").await;
    assert_eq!(code, 200, "{body}");
    let stats = admin_stats(&dw).await;
    assert_eq!(stats["ioc_lists"][0]["entries"], 2);
    assert!(
        stats["ioc_lists"][0]["age_secs"].as_u64().unwrap() < 600,
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_policy_zone_feeds_the_deny_list_and_the_answer_checks() {
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    // The layout of the abuse.ch RPZ feeds: name triggers, one response-IP trigger.
    let rpz = "$TTL 60\n$ORIGIN rpz.feed.test.\n\
        @ SOA localhost. root.localhost. ( 2026120101 3600 600 86400 60 )\n\
          NS localhost.\n\
        bad.test CNAME . ; malware download\n\
        *.good.test CNAME .\n\
        32.90.2.0.192.rpz-ip CNAME .\n";
    let mut cfg = ioc_config(up.addr, &dir, rpz);
    cfg.lists.deny = cfg.intel.ioc_files.clone();
    let dw = start_dnsward(cfg).await;
    let rcode_and_a = |name: &'static str| async move {
        let got = udp(dw.addr, &query(name, RecordType::A, None)).await;
        let a = got.answers.first().map(|r| r.data.to_string());
        (got.metadata.response_code, a)
    };
    assert_eq!(
        rcode_and_a("bad.test.").await,
        (ResponseCode::NXDomain, None)
    );
    assert_eq!(
        rcode_and_a("ads.good.test.").await,
        (ResponseCode::NXDomain, None)
    );
    // RPZ name triggers are exact: good.test itself is not covered by *.good.test.
    assert_eq!(
        rcode_and_a("good.test.").await,
        (ResponseCode::NoError, Some("192.0.2.77".into()))
    );
    // later.test answers with the rpz-ip address: the answer checks sinkhole it.
    assert_eq!(
        rcode_and_a("later.test.").await,
        (ResponseCode::NoError, Some("10.99.0.1".into()))
    );
    assert_eq!(
        rcode_and_a("www.test.").await,
        (ResponseCode::NoError, Some("192.0.2.10".into()))
    );
    let events = dw.events.events.lock().unwrap().clone();
    let reason = |n: &str| {
        let (_, v, _) = events.iter().find(|(q, _, _)| q == n).unwrap();
        (v.category(), v.reason.as_ref().unwrap().to_string())
    };
    let (cat, why) = reason("bad.test");
    assert_eq!(cat, Some(Category::List));
    assert!(
        why.contains("iocs.txt:5") && why.contains("bad.test"),
        "{why}"
    );
    let (cat, why) = reason("later.test");
    assert_eq!(cat, Some(Category::Ioc));
    assert!(
        why.contains("192.0.2.90") && why.contains("iocs.txt:7"),
        "{why}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_list_logs_its_matches_and_answers_them() {
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(&[up.addr]);
    cfg.lists.trial = vec![write_list(
        &dir,
        "new-feed.txt",
        "good.test\nkqvwxjzrtplmnbvcxqwe.net\n",
    )];
    let dw = start_dnsward(cfg).await;
    let got = udp(dw.addr, &query("good.test.", RecordType::A, None)).await;
    assert_eq!(got.answers[0].data.to_string(), "192.0.2.77", "answered");
    // The DGA model still blocks a name that is also on the trial list.
    let got = udp(
        dw.addr,
        &query("kqvwxjzrtplmnbvcxqwe.net.", RecordType::A, None),
    )
    .await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
    let events = dw.events.events.lock().unwrap().clone();
    let verdict = |n: &str| events.iter().find(|(q, _, _)| q == n).unwrap().1.clone();
    let v = verdict("good.test");
    assert_eq!(
        (v.category(), v.action()),
        (Some(Category::List), Some(Action::Log))
    );
    let r = v.reason.unwrap();
    assert_eq!(
        (r.stage, r.source.ends_with("new-feed.txt:1")),
        (Stage::TrialList, true),
        "{r}"
    );
    assert_eq!(
        verdict("kqvwxjzrtplmnbvcxqwe.net").category(),
        Some(Category::Dga)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ioc_list_on_trial_logs_its_hits_without_scoring_the_client() {
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ioc_config(up.addr, &dir, "192.0.2.10 trusted C2\n");
    cfg.intel.ioc_trial_files = vec![write_list(&dir, "trial-feed.txt", "192.0.2.90 new feed\n")];
    with_admin(&mut cfg, dir.path());
    let dw = start_dnsward(cfg).await;
    let got = udp(dw.addr, &query("later.test.", RecordType::A, None)).await;
    assert_eq!(got.answers[0].data.to_string(), "192.0.2.90", "answered");
    let events = dw.events.events.lock().unwrap().clone();
    let (_, v, _) = events.iter().find(|(q, _, _)| q == "later.test").unwrap();
    assert_eq!(
        (v.category(), v.action()),
        (Some(Category::Ioc), Some(Action::Log))
    );
    let r = v.reason.as_ref().unwrap();
    assert_eq!(r.stage, Stage::TrialList);
    assert!(
        r.detail.contains("trial-feed.txt:1") && r.detail.contains("trial list"),
        "{r}"
    );
    let admin = dw.app.admin.as_ref().unwrap().addr;
    let evidence = || async {
        dw.app.store.as_ref().unwrap().flush();
        http(admin, "GET", "/api/v1/clients/127.0.0.1", None, "")
            .await
            .1
            .contains("flux_or_ioc_lookup")
    };
    assert!(
        !evidence().await,
        "a trial hit is no evidence against the client"
    );
    let (_, body) = http(admin, "GET", "/api/v1/blocks?stage=trial_list", None, "").await;
    let caught = json_body(&body);
    assert_eq!(caught["count"], 1, "{caught}");
    assert_eq!(caught["blocks"][0]["name"], "later.test");
    let stats = admin_stats(&dw).await;
    assert_eq!(stats["ioc_lists"][1]["trial"], true, "{stats}");
    // The trusted list still sinkholes and scores.
    let got = udp(dw.addr, &query("www.test.", RecordType::A, None)).await;
    assert_eq!(got.answers[0].data.to_string(), "10.99.0.1");
    assert!(evidence().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_groups_decide_per_client_whether_a_block_is_enforced() {
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    write_list(&dir, "deny.txt", "bad.test\n");
    let config = |actions: &str| {
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n\
             [upstream]\nservers = [\"{}\"]\n[lists]\ndeny = [\"deny.txt\"]\n\
             [admin]\nlisten = \"127.0.0.1:0\"\ndb_path = \"events.sqlite3\"\n{actions}",
            up.addr
        )
    };
    // A monitored roll-out with one pilot client enforced.
    let path = write_list(
        &dir,
        "dnsward.toml",
        &config(
            "[actions]\nmonitor = true\n\
             [[actions.groups]]\nname = \"pilot\"\nclients = [\"127.0.0.2\"]\nmonitor = false\n",
        ),
    );
    let cfg = dnsward::Config::load(&path).unwrap();
    let dw = start_dnsward_with_path(cfg, Some(path.clone())).await;
    let (plain, pilot, lab) = (
        "127.0.0.1".parse().unwrap(),
        "127.0.0.2".parse().unwrap(),
        "127.0.0.3".parse().unwrap(),
    );
    let ask = |client, name: &'static str| {
        let addr = dw.addr;
        async move { udp_from(client, addr, &query(name, RecordType::A, None)).await }
    };
    let answered = |m: &hickory_proto::op::Message| {
        m.metadata.response_code == ResponseCode::NoError
            && m.answers.first().map(|a| a.data.to_string()) == Some("192.0.2.66".into())
    };
    // Miss path for the monitored client: it gets the upstream's answer, which is cached.
    assert!(answered(&ask(plain, "bad.test.").await));
    // The pilot client is blocked from that cached entry, and on its own miss.
    let got = ask(pilot, "bad.test.").await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
    let got = ask(pilot, "www.bad.test.").await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
    assert!(
        answered(&ask(plain, "bad.test.").await),
        "cache hit, monitored"
    );
    let seen: Vec<(String, Option<Action>, Option<String>, bool)> = dw
        .events
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|(n, v, cached)| {
            let group = v.reason.as_ref().and_then(|r| r.client_group.clone());
            (n.clone(), v.action(), group.map(|g| g.to_string()), *cached)
        })
        .collect();
    let pilot_group = Some("pilot".to_string());
    assert_eq!(
        seen,
        vec![
            ("bad.test".into(), Some(Action::Log), None, false),
            (
                "bad.test".into(),
                Some(Action::Nxdomain),
                pilot_group.clone(),
                true
            ),
            (
                "www.bad.test".into(),
                Some(Action::Nxdomain),
                pilot_group,
                false
            ),
            ("bad.test".into(), Some(Action::Log), None, true),
        ]
    );

    // The roll-out is over: enforce everywhere except a lab that must reach what it studies.
    // A reload applies to cached answers at once: the group is looked up when answering.
    std::fs::write(
        &path,
        config(
            "[[actions.groups]]\nname = \"lab\"\nclients = [\"127.0.0.3/32\"]\nmonitor = true\n",
        ),
    )
    .unwrap();
    let admin = dw.app.admin.as_ref().unwrap().addr;
    let (code, body) = http(admin, "POST", "/api/v1/reload", None, "").await;
    assert_eq!(code, 200, "{body}");
    let got = ask(plain, "bad.test.").await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
    assert!(answered(&ask(lab, "bad.test.").await));
    dw.app.store.as_ref().unwrap().flush();
    let (code, body) = http(
        admin,
        "GET",
        "/api/v1/blocks?client_group=lab&action=log",
        None,
        "",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let rows = json_body(&body);
    assert_eq!(rows["count"], 1, "{rows}");
    assert_eq!(rows["blocks"][0]["client"], "127.0.0.3");
    assert_eq!(rows["blocks"][0]["reason"]["client_group"], "lab");
    let (_, body) = http(admin, "GET", "/api/v1/blocks?action=log", None, "").await;
    assert_eq!(json_body(&body)["count"], 3, "{body}");
    let (code, body) = http(admin, "GET", "/api/v1/blocks?action=drop", None, "").await;
    assert!(code == 400 && body.contains("action"), "{code} {body}");
    // "Why": the same name, as each client gets it.
    let why = |q: &'static str| async move {
        json_body(&http(admin, "GET", q, None, "").await.1)["verdict"].clone()
    };
    let v = why("/api/v1/verdict?name=bad.test&client=127.0.0.3").await;
    assert_eq!(
        (v["blocked"].clone(), v["action"].clone()),
        (false.into(), "log".into()),
        "{v}"
    );
    assert_eq!(v["reason"]["client_group"], "lab", "{v}");
    let v = why("/api/v1/verdict?name=bad.test").await;
    assert_eq!(v["blocked"], true, "{v}");
    assert!(v["reason"].get("client_group").is_none(), "{v}");
    let (code, body) = http(
        admin,
        "GET",
        "/api/v1/verdict?name=bad.test&client=lab",
        None,
        "",
    )
    .await;
    assert!(code == 400 && body.contains("client"), "{code} {body}");

    // Two groups claiming one client would make the answer depend on the file's order.
    std::fs::write(
        &path,
        config(
            "[[actions.groups]]\nname = \"lab\"\nclients = [\"127.0.0.0/8\"]\nmonitor = true\n\
             [[actions.groups]]\nname = \"ops\"\nclients = [\"127.1.2.3/8\"]\nmonitor = false\n",
        ),
    )
    .unwrap();
    let err = format!("{:#}", dw.app.reload().unwrap_err());
    assert!(err.contains("actions.groups[1].clients"), "{err}");
    assert!(
        answered(&ask(lab, "bad.test.").await),
        "the running groups are kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_list_or_config_file_is_reloaded_without_a_signal() {
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let deny = write_list(&dir, "deny.txt", "bad.test\n");
    let config = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n\
         [upstream]\nservers = [\"{}\"]\n[lists]\ndeny = [\"deny.txt\"]\nauto_reload_secs = 1\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ndb_path = \"events.sqlite3\"\n",
        up.addr
    );
    let path = write_list(&dir, "dnsward.toml", &config);
    let cfg = dnsward::Config::load(&path).unwrap();
    let dw = start_dnsward_with_path(cfg, Some(path.clone())).await;
    let rcode = |name: &'static str| {
        let addr = dw.addr;
        async move {
            udp(addr, &query(name, RecordType::A, None))
                .await
                .metadata
                .response_code
        }
    };
    let wait_for = |name: &'static str, want: ResponseCode| async move {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(15) {
            if rcode(name).await == want {
                return t0.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{name} never got {want:?}");
    };
    assert_eq!(rcode("later.test.").await, ResponseCode::NoError, "cached");
    // A cron job rewrites the feed: picked up (cached answer re-judged) with no SIGHUP.
    std::fs::write(&deny, "bad.test\nlater.test\n").unwrap();
    let took = wait_for("later.test.", ResponseCode::NXDomain).await;
    assert!(
        took >= Duration::from_millis(900),
        "waited for the file to settle: {took:?}"
    );
    let admin = dw.app.admin.as_ref().unwrap().addr;
    let reloads = || async move {
        json_body(&http(admin, "GET", "/api/v1/stats", None, "").await.1)["reloads"].clone()
    };
    assert_eq!(reloads().await["ok"], 1);

    // A broken config keeps the running policy and says so; it is not retried every second.
    std::fs::write(&path, format!("{config}[lists.oops]\n")).unwrap();
    let t0 = Instant::now();
    while reloads().await["failed"] != 1 {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "{}",
            reloads().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reloads().await["last_error"]
            .as_str()
            .unwrap()
            .contains("dnsward.toml"),
        "{}",
        reloads().await
    );
    assert_eq!(rcode("later.test.").await, ResponseCode::NXDomain);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(reloads().await["failed"], 1, "not retried while unchanged");

    // Fixed, and a list the config now names for the first time is read too.
    write_list(&dir, "more.txt", "www.test\n");
    std::fs::write(
        &path,
        config.replace(
            "deny = [\"deny.txt\"]",
            "deny = [\"deny.txt\", \"more.txt\"]",
        ),
    )
    .unwrap();
    wait_for("www.test.", ResponseCode::NXDomain).await;
    let r = reloads().await;
    assert_eq!(
        (r["ok"].clone(), r["last_error"].clone()),
        (2.into(), serde_json::Value::Null),
        "{r}"
    );
}

/// The Extended DNS Errors (RFC 8914) of an answer: (info code, text).
fn ede(m: &hickory_proto::op::Message) -> Vec<(u16, String)> {
    use hickory_proto::rr::rdata::opt::EdnsOption;
    let Some(edns) = &m.edns else { return vec![] };
    edns.options()
        .as_ref()
        .iter()
        .filter_map(|(_, o)| match o {
            EdnsOption::Unknown(15, raw) if raw.len() >= 2 => Some((
                u16::from_be_bytes([raw[0], raw[1]]),
                String::from_utf8_lossy(&raw[2..]).into_owned(),
            )),
            _ => None,
        })
        .collect()
}

/// A plain HTTP/1.1 request to the admin server; returns (status, body).
async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut resp))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&resp).to_string();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn json_body(body: &str) -> serde_json::Value {
    // Chunked encoding: take the JSON between the first '{' or '[' and the last '}' or ']'.
    let start = body.find(['{', '[']).unwrap();
    let end = body.rfind(['}', ']']).unwrap();
    serde_json::from_str(&body[start..=end]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_reports_blocks_explains_and_persists_rules() {
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(&[up.addr]);
    cfg.lists.deny = vec![write_list(&dir, "deny.txt", "bad.test\n")];
    with_admin(&mut cfg, dir.path());
    cfg.admin.token = Some("0123456789abcdef-test-token".into());
    let token = Some("0123456789abcdef-test-token");
    let dw = start_dnsward(cfg.clone()).await;
    let admin = dw.app.admin.as_ref().unwrap().addr;

    let got = udp(dw.addr, &query("bad.test.", RecordType::A, None)).await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
    let got = udp(
        dw.addr,
        &query("kqvwxjzrtplmnbvcxqwe.net.", RecordType::A, None),
    )
    .await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
    dw.app.store.as_ref().unwrap().flush();

    // Without the token: 401, nothing else.
    let (status, body) = http(admin, "GET", "/api/v1/blocks", None, "").await;
    assert_eq!(status, 401);
    assert!(!body.contains("bad.test"));
    let (status, body) = http(admin, "GET", "/api/v1/blocks?limit=10", token, "").await;
    assert_eq!(status, 200, "{body}");
    let blocks = json_body(&body);
    let text = blocks.to_string();
    assert!(
        text.contains("bad.test") && text.contains("deny.txt:1"),
        "{text}"
    );
    assert!(
        text.contains("kqvwxjzrtplmnbvcxqwe.net") && text.contains("\"dga\""),
        "{text}"
    );
    let (status, body) = http(admin, "GET", "/api/v1/blocks?limit=abc", token, "").await;
    assert_eq!(status, 400, "{body}");

    // Explain: the same pipeline, without serving.
    let (status, body) = http(admin, "GET", "/api/v1/verdict?name=bad.test", token, "").await;
    assert_eq!(status, 200);
    assert_eq!(json_body(&body)["verdict"]["category"], "list");

    // A name between the escalated and the default DGA threshold: passes, and says what an
    // escalated client would get.
    let (_, body) = http(
        admin,
        "GET",
        "/api/v1/verdict?name=xjw3kqpz0a.net",
        token,
        "",
    )
    .await;
    let v = json_body(&body);
    assert_eq!(v["verdict"]["kind"], "pass", "{v}");
    assert_eq!(
        v["verdict"]["if_escalated"]["reason"]["stage"], "client_escalation",
        "{v}"
    );

    // Stats and metrics come from the engine; escalated clients are listed.
    let infected: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    three_dga_strikes(infected, dw.addr).await;
    let (_, body) = http(admin, "GET", "/api/v1/stats", token, "").await;
    assert!(body.contains("queries_udp"), "{body}");
    let stats = json_body(&body);
    assert_eq!(
        stats["clients"]["escalated"][0]["client"], "127.0.0.2",
        "{stats}"
    );
    assert!(
        stats["clients"]["escalated"][0]["remaining_secs"]
            .as_u64()
            .unwrap()
            > 21000
    );
    let (status, body) = http(admin, "GET", "/metrics", token, "").await;
    assert_eq!(status, 200);
    assert!(body.contains("dnsward_"), "{body}");

    // A denylist rule added through the API blocks at once and survives a restart.
    let (status, body) = http(
        admin,
        "POST",
        "/api/v1/rules",
        token,
        r#"{"list":"deny","rule":"later.test"}"#,
    )
    .await;
    assert!(status == 200 || status == 201, "{status} {body}");
    let got = udp(dw.addr, &query("later.test.", RecordType::A, None)).await;
    assert_eq!(got.metadata.response_code, ResponseCode::NXDomain);
    dw.app.shutdown().await;
    let dw = start_dnsward(cfg).await;
    let got = udp(dw.addr, &query("later.test.", RecordType::A, None)).await;
    assert_eq!(
        got.metadata.response_code,
        ResponseCode::NXDomain,
        "rule persisted"
    );
    let admin = dw.app.admin.as_ref().unwrap().addr;
    let (_, body) = http(admin, "GET", "/api/v1/blocks?limit=100", token, "").await;
    assert!(
        body.contains("bad.test"),
        "blocks persisted across restart: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinkhole_server_names_the_block_and_scores_the_client() {
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(&[up.addr]);
    cfg.lists.deny = vec![write_list(&dir, "deny.txt", "bad.test\n")];
    cfg.actions.list = Action::Sinkhole;
    cfg.sinkhole.ipv4 = vec!["127.0.0.1".parse().unwrap()];
    cfg.sinkhole_server.enabled = true;
    cfg.sinkhole_server.http = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.sinkhole_server.https = vec![];
    with_admin(&mut cfg, dir.path());
    let dw = start_dnsward(cfg).await;
    // The infected host resolves the C2 name and gets the sinkhole address...
    let got = udp(dw.addr, &query("bad.test.", RecordType::A, None)).await;
    assert_eq!(got.answers[0].data.to_string(), "127.0.0.1");
    // ...then connects to it.
    let sinkhole = dw.app.sinkhole.as_ref().unwrap().addr("http").unwrap();
    let (status, page) = http(sinkhole, "GET", "/gate.php", None, "").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("bad.test"),
        "the page names the blocked name: {page}"
    );
    assert!(page.contains("deny.txt"), "and why: {page}");
    let store = dw.app.store.as_ref().unwrap();
    store.flush();
    let admin = dw.app.admin.as_ref().unwrap().addr;
    let (status, body) = http(admin, "GET", "/api/v1/clients/127.0.0.1", None, "").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("sinkhole_hit"),
        "the connection is evidence against the client: {body}"
    );
}

/// `GET /api/v1/stats` of a dnsward whose admin server is on without a token.
async fn admin_stats(dw: &Dnsward) -> serde_json::Value {
    let addr = dw.app.admin.as_ref().expect("admin server on").addr;
    let (status, body) = http(addr, "GET", "/api/v1/stats", None, "").await;
    assert_eq!(status, 200, "{body}");
    json_body(&body)
}

/// Looks `name` up (A) and says whether dnsward answered with the upstream's address.
async fn answered_by_upstream(server: std::net::SocketAddr, name: &str) -> bool {
    let got = udp(server, &query(name, RecordType::A, None)).await;
    got.metadata.response_code == ResponseCode::NoError
        && got
            .answers
            .iter()
            .any(|r| r.data.to_string().starts_with("100."))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flux_evidence_survives_a_reload_and_a_restart() {
    // A flux domain moves to a new /16 on every lookup; without an ASN database dnsward counts
    // /16s, and the third lookup is flux. A reload or a restart between the second and the
    // third lookup must not start its history over.
    let (up, _task) = start_flux_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(&[up]);
    with_admin(&mut cfg, dir.path());
    let dw = start_dnsward(cfg.clone()).await;

    // Without a break: two lookups answered, the third blocked.
    for (i, want) in [true, true, false].into_iter().enumerate() {
        let got = answered_by_upstream(dw.addr, "steady.flux.example.").await;
        assert_eq!(got, want, "lookup {} of steady.flux.example", i + 1);
    }

    // A reload between the second and third lookup.
    assert!(answered_by_upstream(dw.addr, "reload.flux.example.").await);
    assert!(answered_by_upstream(dw.addr, "reload.flux.example.").await);
    dw.app.reload().unwrap();
    assert!(
        !answered_by_upstream(dw.addr, "reload.flux.example.").await,
        "the third lookup after a reload is still the third"
    );
    let stats = admin_stats(&dw).await;
    assert_eq!(stats["answer_history"]["domains"], 2, "{stats}");

    // A restart between the second and third lookup: the history is saved at shutdown and
    // restored at start.
    assert!(answered_by_upstream(dw.addr, "restart.flux.example.").await);
    assert!(answered_by_upstream(dw.addr, "restart.flux.example.").await);
    dw.app.shutdown().await;
    let dw = start_dnsward(cfg.clone()).await;
    let stats = admin_stats(&dw).await;
    assert_eq!(stats["answer_history"]["domains"], 3, "{stats}");
    assert!(
        !answered_by_upstream(dw.addr, "restart.flux.example.").await,
        "the third lookup after a restart is still the third"
    );
    // A name first seen now is judged on its own first lookup.
    assert!(answered_by_upstream(dw.addr, "new.flux.example.").await);
    dw.app.shutdown().await;

    // With snapshots off, a restart starts over.
    cfg.admin.save_state_secs = 0;
    let dw = start_dnsward(cfg).await;
    let stats = admin_stats(&dw).await;
    assert_eq!(stats["answer_history"]["domains"], 0, "{stats}");
    dw.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_a_rotated_admin_token() {
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let old = "old-token-0123456789abcdef";
    let new = "new-token-fedcba9876543210";
    let token_file = write_list(&dir, "admin-token", &format!("{old}\n"));
    let path = write_list(
        &dir,
        "dnsward.toml",
        &format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nworkers = 1\n\
             [upstream]\nservers = [\"{}\"]\n\
             [admin]\nlisten = \"127.0.0.1:0\"\ndb_path = \"events.sqlite3\"\ntoken_file = \"admin-token\"\n",
            up.addr
        ),
    );
    let cfg = dnsward::Config::load(&path).unwrap();
    let dw = start_dnsward_with_path(cfg, Some(path)).await;
    let admin = dw.app.admin.as_ref().unwrap().addr;
    let status = |token: Option<&'static str>| async move {
        http(admin, "GET", "/api/v1/stats", token, "").await.0
    };
    assert_eq!(status(Some(old)).await, 200);
    assert_eq!(status(Some(new)).await, 401);

    // Rotate the file and reload through the API (with the old token, which is still valid).
    std::fs::write(&token_file, format!("{new}\n")).unwrap();
    let (code, body) = http(admin, "POST", "/api/v1/reload", Some(old), "").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(status(Some(old)).await, 401);
    assert_eq!(status(Some(new)).await, 200);
    assert_eq!(status(None).await, 401);

    // A reload that cannot read the token file fails and keeps the token.
    std::fs::remove_file(&token_file).unwrap();
    let err = dw.app.reload().unwrap_err();
    assert!(format!("{err:#}").contains("admin-token"), "{err:#}");
    assert_eq!(status(Some(new)).await, 200);
    dw.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalated_clients_stay_escalated_across_a_restart() {
    const BAND: &str = "xjw3kqpz0a.net."; // between the escalated and the default threshold
    let up = start_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(&[up.addr]);
    with_admin(&mut cfg, dir.path());
    let infected: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let clean: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    async fn band_rcode(client: std::net::IpAddr, server: std::net::SocketAddr) -> ResponseCode {
        udp_from(client, server, &query(BAND, RecordType::A, None))
            .await
            .metadata
            .response_code
    }

    let dw = start_dnsward(cfg.clone()).await;
    three_dga_strikes(infected, dw.addr).await;
    assert_eq!(band_rcode(infected, dw.addr).await, ResponseCode::NXDomain);
    dw.app.shutdown().await;

    // After a restart the client is still escalated (its hold goes on), the others are not.
    let dw = start_dnsward(cfg.clone()).await;
    assert_eq!(band_rcode(infected, dw.addr).await, ResponseCode::NXDomain);
    assert_eq!(band_rcode(clean, dw.addr).await, ResponseCode::NoError);
    let stats = admin_stats(&dw).await;
    assert_eq!(
        stats["clients"]["escalated"][0]["client"], "127.0.0.2",
        "{stats}"
    );
    dw.app.shutdown().await;

    // With saving off, a restart releases it.
    cfg.admin.save_state_secs = 0;
    let dw = start_dnsward(cfg).await;
    assert_eq!(band_rcode(infected, dw.addr).await, ResponseCode::NoError);
    dw.app.shutdown().await;
}
