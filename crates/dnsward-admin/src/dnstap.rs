//! dnstap output: Frame Streams (bidirectional: READY / ACCEPT / START, data frames, STOP /
//! FINISH) over a Unix socket or TCP, carrying `dnstap.Dnstap` protobuf messages — what
//! Unbound, Knot, CoreDNS and dnsdist emit, so existing collectors (dnstap-read, dnscollector,
//! Vector, ...) take dnsward's events unchanged.
//!
//! Encoding happens on the store's writer thread; a dedicated thread owns the socket and
//! reconnects with backoff. When the collector is away or slow, frames are dropped and counted.

use crate::config::DnstapTarget;
use crate::store::OwnedEvent;
use prost::Message as _;
use std::io::{self, BufWriter, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

/// Frame Streams control frame types.
pub mod control {
    pub const ACCEPT: u32 = 0x01;
    pub const START: u32 = 0x02;
    pub const STOP: u32 = 0x03;
    pub const READY: u32 = 0x04;
    pub const FINISH: u32 = 0x05;
    /// Control field: content type.
    pub const FIELD_CONTENT_TYPE: u32 = 0x01;
}

/// `dnstap.Dnstap` (proto2), the fields dnsward sets.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dnstap {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub identity: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub version: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub extra: Option<Vec<u8>>,
    #[prost(message, optional, tag = "14")]
    pub message: Option<Message>,
    /// `Dnstap.Type`: MESSAGE = 1.
    #[prost(int32, required, tag = "15")]
    pub r#type: i32,
}

/// `dnstap.Message`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    /// `Message.Type`: CLIENT_QUERY = 5, CLIENT_RESPONSE = 6, RESOLVER_RESPONSE = 4...
    #[prost(int32, required, tag = "1")]
    pub r#type: i32,
    /// INET = 1, INET6 = 2.
    #[prost(int32, optional, tag = "2")]
    pub socket_family: Option<i32>,
    /// UDP = 1, TCP = 2.
    #[prost(int32, optional, tag = "3")]
    pub socket_protocol: Option<i32>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub query_address: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub response_address: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "6")]
    pub query_port: Option<u32>,
    #[prost(uint32, optional, tag = "7")]
    pub response_port: Option<u32>,
    #[prost(uint64, optional, tag = "8")]
    pub query_time_sec: Option<u64>,
    #[prost(fixed32, optional, tag = "9")]
    pub query_time_nsec: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "10")]
    pub query_message: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "11")]
    pub query_zone: Option<Vec<u8>>,
    #[prost(uint64, optional, tag = "12")]
    pub response_time_sec: Option<u64>,
    #[prost(fixed32, optional, tag = "13")]
    pub response_time_nsec: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "14")]
    pub response_message: Option<Vec<u8>>,
}

pub const DNSTAP_TYPE_MESSAGE: i32 = 1;
pub const MESSAGE_CLIENT_RESPONSE: i32 = 6;

/// A minimal DNS response (header + question) for events that carry no wire bytes.
pub fn minimal_response(qname: &str, qtype: u16, rcode: u8) -> Vec<u8> {
    let mut m = Vec::with_capacity(qname.len() + 18);
    m.extend_from_slice(&0u16.to_be_bytes()); // id
    let flags: u16 = 0x8000 | 0x0100 | 0x0080 | u16::from(rcode & 0x0f); // QR RD RA rcode
    m.extend_from_slice(&flags.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QD=1 AN=NS=AR=0
    let mut total = 0usize;
    for label in qname.split('.').filter(|l| !l.is_empty()) {
        let l = &label.as_bytes()[..label.len().min(63)];
        if total + l.len() + 1 > 254 {
            break;
        }
        m.push(l.len() as u8);
        m.extend_from_slice(l);
        total += l.len() + 1;
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes()); // IN
    m
}

/// Encode one event as a `Dnstap` protobuf.
pub fn encode_event(e: &OwnedEvent, identity: &[u8]) -> Vec<u8> {
    let client = crate::dnsbl::canonical_ip(e.client);
    let (family, addr) = match client {
        IpAddr::V4(a) => (1, a.octets().to_vec()),
        IpAddr::V6(a) => (2, a.octets().to_vec()),
    };
    let secs = e.ts_us.div_euclid(1_000_000) as u64;
    let nsec = (e.ts_us.rem_euclid(1_000_000) * 1000) as u32;
    let d = Dnstap {
        identity: Some(identity.to_vec()),
        version: Some(format!("dnsward {}", env!("CARGO_PKG_VERSION")).into_bytes()),
        extra: None,
        message: Some(Message {
            r#type: MESSAGE_CLIENT_RESPONSE,
            socket_family: Some(family),
            socket_protocol: None,
            query_address: Some(addr),
            query_time_sec: Some(secs),
            query_time_nsec: Some(nsec),
            response_time_sec: Some(secs),
            response_time_nsec: Some(nsec),
            response_message: Some(minimal_response(&e.qname, e.qtype, e.rcode)),
            ..Default::default()
        }),
        r#type: DNSTAP_TYPE_MESSAGE,
    };
    d.encode_to_vec()
}

/// Write a control frame.
pub fn write_control(
    w: &mut impl Write,
    ctype: u32,
    content_type: Option<&[u8]>,
) -> io::Result<()> {
    let mut body = Vec::with_capacity(32);
    body.extend_from_slice(&ctype.to_be_bytes());
    if let Some(ct) = content_type {
        body.extend_from_slice(&control::FIELD_CONTENT_TYPE.to_be_bytes());
        body.extend_from_slice(&(ct.len() as u32).to_be_bytes());
        body.extend_from_slice(ct);
    }
    w.write_all(&0u32.to_be_bytes())?;
    w.write_all(&(body.len() as u32).to_be_bytes())?;
    w.write_all(&body)
}

/// Read a control frame: (type, content types).
pub fn read_control(r: &mut impl Read) -> io::Result<(u32, Vec<Vec<u8>>)> {
    let mut b4 = [0u8; 4];
    r.read_exact(&mut b4)?;
    if u32::from_be_bytes(b4) != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "expected a control frame",
        ));
    }
    r.read_exact(&mut b4)?;
    let len = u32::from_be_bytes(b4) as usize;
    if !(4..=512).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad control frame length",
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    let ctype = u32::from_be_bytes(body[0..4].try_into().unwrap());
    let mut fields = Vec::new();
    let mut i = 4;
    while i + 8 <= body.len() {
        let ft = u32::from_be_bytes(body[i..i + 4].try_into().unwrap());
        let fl = u32::from_be_bytes(body[i + 4..i + 8].try_into().unwrap()) as usize;
        i += 8;
        if i + fl > body.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad control field",
            ));
        }
        if ft == control::FIELD_CONTENT_TYPE {
            fields.push(body[i..i + fl].to_vec());
        }
        i += fl;
    }
    Ok((ctype, fields))
}

enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Conn {
    fn connect(t: &DnstapTarget) -> io::Result<Conn> {
        let c = match t {
            DnstapTarget::Unix(p) => Conn::Unix(UnixStream::connect(p)?),
            DnstapTarget::Tcp(a) => {
                let addr = std::net::ToSocketAddrs::to_socket_addrs(a)?
                    .next()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
                let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
                let _ = s.set_nodelay(true);
                Conn::Tcp(s)
            }
        };
        let timeout = Some(Duration::from_secs(5));
        match &c {
            Conn::Unix(s) => {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)?;
            }
            Conn::Tcp(s) => {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)?;
            }
        }
        Ok(c)
    }
}

impl Read for Conn {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(b),
            Conn::Tcp(s) => s.read(b),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(b),
            Conn::Tcp(s) => s.write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.flush(),
            Conn::Tcp(s) => s.flush(),
        }
    }
}

/// Counters of the dnstap output.
#[derive(Default)]
pub struct DnstapCounters {
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
}

/// The dnstap sender thread and its queue.
pub struct DnstapOutput {
    tx: Option<SyncSender<Vec<u8>>>,
    identity: Vec<u8>,
    pub counters: Arc<DnstapCounters>,
    thread: Option<JoinHandle<()>>,
}

impl DnstapOutput {
    pub fn start(target: DnstapTarget, identity: String) -> DnstapOutput {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(16_384);
        let counters = Arc::new(DnstapCounters::default());
        let c = counters.clone();
        let thread = std::thread::Builder::new()
            .name("dnsward-dnstap".into())
            .spawn(move || run(target, rx, c))
            .ok();
        DnstapOutput {
            tx: Some(tx),
            identity: identity.into_bytes(),
            counters,
            thread,
        }
    }

    /// Queue one event (never blocks).
    pub fn send(&self, e: &OwnedEvent) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(encode_event(e, &self.identity)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for DnstapOutput {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn handshake(c: &mut Conn) -> io::Result<()> {
    write_control(c, control::READY, Some(CONTENT_TYPE))?;
    c.flush()?;
    let (t, types) = read_control(c)?;
    if t != control::ACCEPT {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "expected ACCEPT",
        ));
    }
    if !types.is_empty() && !types.iter().any(|ct| ct == CONTENT_TYPE) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "collector does not accept dnstap",
        ));
    }
    write_control(c, control::START, Some(CONTENT_TYPE))?;
    c.flush()
}

fn run(target: DnstapTarget, rx: mpsc::Receiver<Vec<u8>>, counters: Arc<DnstapCounters>) {
    let mut backoff = Duration::from_millis(200);
    let mut warned = false;
    loop {
        let conn = Conn::connect(&target).and_then(|mut c| handshake(&mut c).map(|_| c));
        let conn = match conn {
            Ok(c) => {
                backoff = Duration::from_millis(200);
                if warned {
                    tracing::info!(target = ?target, "dnstap collector connected");
                }
                warned = false;
                c
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(target = ?target, error = %e, "dnstap: cannot reach the collector; dropping frames until it is back");
                    warned = true;
                }
                // Drop what arrives meanwhile, and stop when the store closes.
                let deadline = std::time::Instant::now() + backoff;
                loop {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match rx.recv_timeout(left) {
                        Ok(_) => {
                            counters.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        let mut w = BufWriter::with_capacity(64 * 1024, conn);
        let mut failed = false;
        loop {
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(frame) => {
                    let r = w
                        .write_all(&(frame.len() as u32).to_be_bytes())
                        .and_then(|_| w.write_all(&frame));
                    let r = r.and_then(|_| {
                        // Drain what is queued, then push it out.
                        while let Ok(f) = rx.try_recv() {
                            w.write_all(&(f.len() as u32).to_be_bytes())?;
                            w.write_all(&f)?;
                            counters.sent.fetch_add(1, Ordering::Relaxed);
                        }
                        w.flush()
                    });
                    match r {
                        Ok(()) => {
                            counters.sent.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            counters.dropped.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(error = %e, "dnstap: write failed; reconnecting");
                            failed = true;
                            break;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if failed {
            continue;
        }
        // Orderly end: STOP, then wait (briefly) for FINISH.
        let _ = write_control(&mut w, control::STOP, None).and_then(|_| w.flush());
        if let Ok(mut c) = w.into_inner() {
            let _ = read_control(&mut c);
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_response_is_a_dns_message() {
        let m = minimal_response("evil.example", 1, 3);
        assert_eq!(&m[2..4], &[0x81, 0x83]);
        assert_eq!(&m[12..], b"\x04evil\x07example\x00\x00\x01\x00\x01");
    }
}
