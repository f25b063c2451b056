mod common;

use common::*;
use dnsward_admin::dnstap::{control, read_control, write_control, Dnstap, CONTENT_TYPE};
use dnsward_admin::EventStore;
use prost::Message as _;
use std::io::Read;
use std::os::unix::net::UnixListener;

/// A tiny Frame Streams reader (the collector side): ACCEPT the READY, expect START, read data
/// frames until STOP, answer FINISH.
fn collect(mut s: impl Read + std::io::Write) -> Vec<Dnstap> {
    let (t, types) = read_control(&mut s).unwrap();
    assert_eq!(t, control::READY);
    assert!(types.iter().any(|c| c == CONTENT_TYPE));
    write_control(&mut s, control::ACCEPT, Some(CONTENT_TYPE)).unwrap();
    let (t, types) = read_control(&mut s).unwrap();
    assert_eq!(t, control::START);
    assert_eq!(types, vec![CONTENT_TYPE.to_vec()]);
    let mut out = Vec::new();
    loop {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            // Escape: a control frame follows.
            let mut l = [0u8; 4];
            s.read_exact(&mut l).unwrap();
            let mut body = vec![0u8; u32::from_be_bytes(l) as usize];
            s.read_exact(&mut body).unwrap();
            assert_eq!(
                u32::from_be_bytes(body[..4].try_into().unwrap()),
                control::STOP
            );
            write_control(&mut s, control::FINISH, None).unwrap();
            return out;
        }
        let mut frame = vec![0u8; len];
        s.read_exact(&mut frame).unwrap();
        out.push(Dnstap::decode(&frame[..]).expect("valid dnstap protobuf"));
    }
}

fn check(msgs: &[Dnstap]) {
    assert_eq!(msgs.len(), 23);
    let m = &msgs[0];
    assert_eq!(m.r#type, 1);
    assert_eq!(m.identity.as_deref(), Some(&b"test-box"[..]));
    let msg = m.message.as_ref().unwrap();
    assert_eq!(msg.r#type, 6, "CLIENT_RESPONSE");
    assert_eq!(msg.socket_family, Some(1));
    assert_eq!(msg.query_address.as_deref(), Some(&[10, 0, 0, 2][..]));
    assert!(msg.query_time_sec.unwrap() > 1_700_000_000);
    let wire = msg.response_message.as_ref().unwrap();
    assert_eq!(wire[3] & 0x0f, 3, "NXDOMAIN");
    assert!(wire.windows(8).any(|w| w == b"\x07tracker"));
}

#[test]
fn dnstap_over_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("dnstap.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let reader = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        collect(s)
    });
    let mut cfg = config(dir.path());
    cfg.dnstap = Some(format!("unix:{}", sock.display()));
    cfg.dnstap_identity = Some("test-box".into());
    let store = EventStore::open(&cfg).unwrap();
    seed(&store);
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(store); // STOP / FINISH
    check(&reader.join().unwrap());
}

#[test]
fn dnstap_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        collect(s)
    });
    let mut cfg = config(dir.path());
    cfg.dnstap = Some(format!("tcp:{addr}"));
    cfg.dnstap_identity = Some("test-box".into());
    let store = EventStore::open(&cfg).unwrap();
    seed(&store);
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(store);
    check(&reader.join().unwrap());
}

#[test]
fn absent_collector_does_not_hurt() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.dnstap = Some(format!("unix:{}", dir.path().join("nobody.sock").display()));
    let store = EventStore::open(&cfg).unwrap();
    seed(&store);
    assert_eq!(store.block_count().unwrap(), 23);
}
