//! HTTP and raw TCP listeners on loopback.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use dnsward_sinkhole::SinkholeConfig;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn exchange(addr: SocketAddr, req: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(req).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("server closes");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn http_page_names_the_blocked_host() {
    let (running, mut rx) = start(cfg()).await;
    let addr = running.addr("http").unwrap();
    let resp = exchange(
        addr,
        b"GET /favicon.ico HTTP/1.1\r\nHost: C2.evil.example:80\r\nUser-Agent: t\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(resp.contains("Connection: close"));
    assert!(resp.contains("dnsward blocked c2.evil.example"), "{resp}");
    assert!(
        resp.contains("ioc") && resp.contains("feeds/c2.txt:12 &lt;b&gt;"),
        "{resp}"
    );
    assert!(resp.contains("127.0.0.1"));
    let hit = next_hit(&mut rx).await;
    assert_eq!(hit.protocol, "http");
    assert_eq!(hit.local_port, addr.port());
    assert_eq!(hit.client.ip().to_string(), "127.0.0.1");
    assert_eq!(hit.host_or_sni.as_deref(), Some("c2.evil.example"));
    assert_eq!(hit.name.as_deref(), Some("c2.evil.example"));
    no_more_hits(&mut rx).await;

    // Unknown Host: the newest block for this client.
    let resp = exchange(addr, b"HEAD / HTTP/1.0\r\nHost: other.example\r\n\r\n").await;
    assert!(
        resp.starts_with("HTTP/1.1 200 OK\r\n") && resp.ends_with("\r\n\r\n"),
        "{resp}"
    );
    let hit = next_hit(&mut rx).await;
    assert_eq!(hit.host_or_sni.as_deref(), Some("other.example"));
    assert_eq!(hit.name.as_deref(), Some("xjw3kqpz0a.net"));
    running.shutdown();
}

#[tokio::test]
async fn garbage_oversized_and_silent_clients_still_hit() {
    let (running, mut rx) = start(cfg()).await;
    let addr = running.addr("http").unwrap();

    let resp = exchange(addr, b"\x16\x03\x01\x02\x00\x01\xff\xfe garbage\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    let hit = next_hit(&mut rx).await;
    assert_eq!((hit.protocol, hit.host_or_sni.clone()), ("http", None));

    let mut big = b"GET / HTTP/1.1\r\nHost: big.example\r\n".to_vec();
    while big.len() < 64 * 1024 {
        big.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let resp = exchange(addr, &big).await;
    assert!(resp.starts_with("HTTP/1.1 431"), "{resp}");
    let hit = next_hit(&mut rx).await;
    assert_eq!(hit.host_or_sni.as_deref(), Some("big.example"));

    // Connect and say nothing: the read times out, the hit is still recorded.
    let s = TcpStream::connect(addr).await.unwrap();
    let hit = next_hit(&mut rx).await;
    assert_eq!(hit.host_or_sni, None);
    drop(s);

    // Connect and close at once.
    drop(TcpStream::connect(addr).await.unwrap());
    next_hit(&mut rx).await;

    // Non-UTF-8 bytes, NULs, header without colon, very long single line.
    for req in [
        &b"GET / HTTP/1.1\r\nHost: \xff\xfe\x00\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"\n\n",
        b"GET  HTTP/1.1\r\n\r\n",
        &[b'A'; 9000][..],
    ] {
        let _ = exchange(addr, req).await;
        next_hit(&mut rx).await;
    }
    no_more_hits(&mut rx).await;
    running.shutdown();
}

#[tokio::test]
async fn tcp_catch_all_records_the_port() {
    let (running, mut rx) = start(cfg()).await;
    let tcp: Vec<SocketAddr> = running
        .addrs
        .iter()
        .filter(|(p, _)| *p == "tcp")
        .map(|(_, a)| *a)
        .collect();
    assert_eq!(tcp.len(), 2);
    for addr in &tcp {
        let out = exchange(*addr, b"EHLO x\r\n").await;
        assert!(out.is_empty());
        let hit = next_hit(&mut rx).await;
        assert_eq!(hit.protocol, "tcp");
        assert_eq!(hit.local_port, addr.port());
        assert_eq!(hit.host_or_sni, None);
        assert_eq!(hit.name.as_deref(), Some("xjw3kqpz0a.net"));
    }
    no_more_hits(&mut rx).await;
    running.shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(TcpStream::connect(tcp[0]).await.is_err());
}

#[tokio::test]
async fn bounded_concurrency_handles_every_connection() {
    let mut c = cfg();
    c.max_connections = 2;
    let (running, mut rx) = start(c).await;
    let addr = running.addr("http").unwrap();
    // Two silent clients hold both slots; a third connection waits, then is served.
    let a = TcpStream::connect(addr).await.unwrap();
    let b = TcpStream::connect(addr).await.unwrap();
    let third = tokio::spawn(exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: c2.evil.example\r\n\r\n",
    ));
    let resp = third.await.unwrap();
    assert!(resp.contains("dnsward blocked c2.evil.example"));
    for _ in 0..3 {
        next_hit(&mut rx).await;
    }
    drop((a, b));
    running.shutdown();
}

#[test]
fn config_defaults_and_validation() {
    let d: SinkholeConfig = toml::from_str("").unwrap();
    assert_eq!(d, SinkholeConfig::default());
    assert!(!d.enabled);
    assert_eq!(d.http, vec!["127.0.0.1:8080".parse().unwrap()]);
    assert_eq!(d.https, vec!["127.0.0.1:8443".parse().unwrap()]);
    assert!(d.tcp.is_empty());
    d.validate().unwrap();
    assert!(toml::from_str::<SinkholeConfig>("nope = 1").is_err());
    let c: SinkholeConfig = toml::from_str("enabled = true\nhttp = []\nhttps = []\n").unwrap();
    assert!(c
        .validate()
        .unwrap_err()
        .starts_with("sinkhole_server.enabled"));
    let c: SinkholeConfig = toml::from_str("cert_file = \"/x.pem\"").unwrap();
    assert!(c
        .validate()
        .unwrap_err()
        .starts_with("sinkhole_server.key_file"));
    let c: SinkholeConfig = toml::from_str("max_connections = 0").unwrap();
    assert!(c
        .validate()
        .unwrap_err()
        .starts_with("sinkhole_server.max_connections"));
    let c: SinkholeConfig = toml::from_str("read_timeout_ms = 0").unwrap();
    assert!(c
        .validate()
        .unwrap_err()
        .starts_with("sinkhole_server.read_timeout_ms"));
    let c: SinkholeConfig = toml::from_str("tcp = [\"127.0.0.1:8080\"]").unwrap();
    assert!(c.validate().unwrap_err().starts_with("sinkhole_server.tcp"));
}
