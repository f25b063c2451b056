//! HTTPS listener: SNI recorded even when the handshake fails, block page when it succeeds.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dnsward_sinkhole::{serve, NoLookup, SinkholeConfig, SinkholeError, SELF_SIGNED_NAME};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

fn client(roots: RootCertStore) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(cfg))
}

async fn get_page(connector: &TlsConnector, addr: SocketAddr, sni: &str, req: &[u8]) -> String {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    tls.write_all(req).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out))
        .await
        .expect("server closes");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn sni_recorded_when_client_rejects_the_certificate() {
    let (running, mut rx) = start(cfg()).await;
    let addr = running.addr("https").unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("C2.Evil.Example").unwrap();
    let err = client(RootCertStore::empty())
        .connect(name, tcp)
        .await
        .expect_err("a client that trusts nothing must fail the handshake");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    let hit = next_hit(&mut rx).await;
    assert_eq!(hit.protocol, "https");
    assert_eq!(hit.local_port, addr.port());
    assert_eq!(hit.host_or_sni.as_deref(), Some("c2.evil.example"));
    assert_eq!(hit.name.as_deref(), Some("c2.evil.example"));
    no_more_hits(&mut rx).await;
    running.shutdown();
}

#[tokio::test]
async fn trusting_client_gets_the_block_page() {
    let (running, mut rx) = start(cfg()).await;
    let addr = running.addr("https").unwrap();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(
            running.certificate_der.clone().unwrap(),
        ))
        .unwrap();
    let connector = client(roots);
    let resp = get_page(
        &connector,
        addr,
        SELF_SIGNED_NAME,
        b"GET / HTTP/1.1\r\nHost: c2.evil.example\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(resp.contains("dnsward blocked c2.evil.example"), "{resp}");
    assert!(resp.contains("ioc"));
    let hit = next_hit(&mut rx).await;
    assert_eq!(hit.protocol, "https");
    assert_eq!(hit.host_or_sni.as_deref(), Some(SELF_SIGNED_NAME));
    no_more_hits(&mut rx).await;
    running.shutdown();
}

#[tokio::test]
async fn garbage_and_silence_on_https_still_hit() {
    let (running, mut rx) = start(cfg()).await;
    let addr = running.addr("https").unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s
        .write_all(b"GET / HTTP/1.1\r\nHost: plain.example\r\n\r\n")
        .await;
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink)).await;
    let hit = next_hit(&mut rx).await;
    assert_eq!((hit.protocol, hit.host_or_sni), ("https", None));
    // Truncated ClientHello, then silence until the read timeout.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0x01, 0x00, 0x01])
        .await
        .unwrap();
    let hit = next_hit(&mut rx).await;
    assert_eq!(hit.host_or_sni, None);
    no_more_hits(&mut rx).await;
    running.shutdown();
}

#[tokio::test]
async fn configured_certificate_files() {
    let dir = std::env::temp_dir().join(format!("dnsward-sinkhole-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["block.example.net".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();

    let mut c = cfg();
    c.cert_file = Some(cert.clone());
    c.key_file = Some(key.clone());
    let (running, mut rx) = start(c.clone()).await;
    assert_eq!(
        running.certificate_der.as_deref(),
        Some(ck.cert.der().as_ref())
    );
    let mut roots = RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let resp = get_page(
        &client(roots),
        running.addr("https").unwrap(),
        "block.example.net",
        b"GET / HTTP/1.1\r\n\r\n",
    )
    .await;
    // No Host: the SNI names the page; no block for it, so the newest block for the client.
    assert!(resp.contains("dnsward blocked xjw3kqpz0a.net"), "{resp}");
    assert!(resp.contains("Requested host: block.example.net"), "{resp}");
    next_hit(&mut rx).await;
    running.shutdown();

    // Unreadable / wrong files are errors naming the key.
    c.key_file = Some(dir.join("missing.pem"));
    let err = serve(
        &c,
        Arc::new(NoLookup),
        Arc::new(ChanSink(tokio::sync::mpsc::unbounded_channel().0)),
    )
    .await
    .err()
    .unwrap();
    assert!(
        matches!(
            err,
            SinkholeError::CertFile {
                key: "key_file",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().starts_with("sinkhole_server.key_file"));
    c.key_file = Some(cert.clone());
    let err = serve(
        &c,
        Arc::new(NoLookup),
        Arc::new(ChanSink(tokio::sync::mpsc::unbounded_channel().0)),
    )
    .await
    .err()
    .unwrap();
    assert!(
        err.to_string().starts_with("sinkhole_server.key_file"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn bind_conflict_is_an_error() {
    let (running, _rx) = start(cfg()).await;
    let taken = running.addr("http").unwrap();
    let c = SinkholeConfig {
        http: vec![],
        https: vec![],
        tcp: vec![taken],
        ..cfg()
    };
    let err = serve(
        &c,
        Arc::new(NoLookup),
        Arc::new(ChanSink(tokio::sync::mpsc::unbounded_channel().0)),
    )
    .await
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .starts_with("sinkhole_server.tcp: cannot listen on"),
        "{err}"
    );
    running.shutdown();
}
