//! Fuzzing and corpus-replay entry point: one packet through the request path with an
//! in-process upstream (no sockets, no runtime).
//!
//! [`RequestPath::run`] takes one fuzz input (see [`Input`]) and runs the query packet through the
//! server's own code: rate limiter, parse, ACL, special types and cache hits (all of
//! [`Engine::answer_fast`]), then, on a miss, the steps of [`Engine::answer_slow`] with the
//! upstream exchange replaced by an answer taken from the fuzz input: the name stages
//! (allowlist, denylist, classifiers), the receive-loop filter (QR set, one question, the same
//! question), [`wire::walk_response`], the answer checks ([`crate::answer::judge_answer_wire`]), the cache
//! entry ([`crate::cache::CachedAnswer::from_upstream`]) and response rendering or the block answer. A second
//! ask then takes the real cache-hit path, optionally after a policy swap (re-judging).
//!
//! The miss half is the engine's own (`Engine::answer_miss`, which `answer_slow` runs with the
//! upstream client's future); here the future is the input's answer, ready at once.
//!
//! Used by `fuzz/fuzz_targets/request_path.rs` and by the corpus replay test in `tests/faults.rs`.
#![doc(hidden)]

use crate::cache::CacheConfig;
use crate::config::ServerConfig;
use crate::engine::{Engine, EngineParts, Fast, Transport};
use crate::events::{EventSink, QueryEvent};
use crate::upstream::{UpstreamConfig, Upstreams};
use crate::wire::{self, Query};
use dnsward_policy::{Policy, SinkholeConfig};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// Flag bits of the first input byte.
pub mod flags {
    /// Ask over TCP (no UDP size limit) instead of UDP.
    pub const TCP: u8 = 0x01;
    /// The client is 10.9.8.7, outside the default (loopback-only) ACL.
    pub const OUTSIDE_ACL: u8 = 0x02;
    /// The upstream does not answer (timeout: SERVFAIL).
    pub const UPSTREAM_FAILS: u8 = 0x04;
    /// Use the upstream bytes as they are; otherwise they become the records after a header
    /// (from the first 12 bytes) and the question that was asked, so most inputs get past the
    /// receive filter.
    pub const RAW_UPSTREAM: u8 = 0x08;
    /// Ask the same packet a second time (the cache-hit path).
    pub const ASK_TWICE: u8 = 0x10;
    /// Swap in a fresh policy generation before the second ask (re-judging a cached answer).
    pub const RELOAD: u8 = 0x20;
    /// The client is on IPv6 loopback.
    pub const IPV6: u8 = 0x40;
    /// The client is [`super::ESCALATED_CLIENT`], which a harness policy with per-client
    /// escalation keeps escalated: its names also get the looser escalated checks (cache hit and
    /// miss), and its blocks are client-specific, never cached. Ignored with `OUTSIDE_ACL`.
    pub const ESCALATED: u8 = 0x80;
}

/// The client address [`flags::ESCALATED`] asks from (inside the default loopback ACL).
pub const ESCALATED_CLIENT: std::net::IpAddr =
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 9));

/// One fuzz input: `flags (1) | query length (2, big endian) | query | upstream bytes`.
/// Short inputs are padded with zeros; a length past the end takes what is there.
pub struct Input<'a> {
    pub flags: u8,
    pub query: &'a [u8],
    pub upstream: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn parse(data: &'a [u8]) -> Input<'a> {
        let flags = data.first().copied().unwrap_or(0);
        let qlen = match data.get(1..3) {
            Some(b) => u16::from_be_bytes([b[0], b[1]]) as usize,
            None => 0,
        };
        let rest = data.get(3..).unwrap_or(&[]);
        let qlen = qlen.min(rest.len());
        Input {
            flags,
            query: &rest[..qlen],
            upstream: &rest[qlen..],
        }
    }

    /// The inverse of [`Input::parse`] (for corpus generators and tests).
    pub fn encode(flags: u8, query: &[u8], upstream: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(3 + query.len() + upstream.len());
        v.push(flags);
        v.extend_from_slice(&(query.len().min(u16::MAX as usize) as u16).to_be_bytes());
        v.extend_from_slice(query);
        v.extend_from_slice(upstream);
        v
    }
}

/// What one ask produced.
#[derive(Debug, Clone)]
pub struct Reply {
    /// None: deliberately silent (dropped).
    pub response: Option<Vec<u8>>,
    /// The largest response the transport allows for this query (UDP: the client's size).
    pub max_len: usize,
    /// The (in-process) upstream was asked.
    pub went_upstream: bool,
}

/// What [`RequestPath::run`] produced: the first ask and, with [`flags::ASK_TWICE`], the second.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub first: Reply,
    pub second: Option<Reply>,
}

/// Counts events (the engine reports blocks and, with `log_all`, every answer).
#[derive(Default)]
struct CountingSink(std::sync::atomic::AtomicU64);

impl EventSink for CountingSink {
    fn record(&self, e: &QueryEvent<'_>) {
        // Touch every field the real sinks read, so a bad event shows up here too.
        let _ = (e.qname.len(), e.verdict.category(), e.rcode, e.client);
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn wants_all_queries(&self) -> bool {
        true
    }
}

/// The engine plus what the miss half needs.
pub struct RequestPath {
    engine: Engine,
    make_policy: Box<dyn Fn() -> Policy + Send + Sync>,
    events: Arc<CountingSink>,
}

impl RequestPath {
    /// `make_policy` builds the policy (called once now and again for each [`flags::RELOAD`];
    /// each call should give a new generation).
    pub fn new(
        server: ServerConfig,
        cache: CacheConfig,
        sinkhole: SinkholeConfig,
        make_policy: Box<dyn Fn() -> Policy + Send + Sync>,
    ) -> RequestPath {
        // No upstream servers: no sockets are opened and the future completes on its first poll.
        let upstreams = {
            let cfg = UpstreamConfig::default();
            let fut = Upstreams::new(&[], &cfg);
            let mut fut = std::pin::pin!(fut);
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            match fut.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(r) => r.expect("no upstreams, nothing to fail"),
                std::task::Poll::Pending => unreachable!("Upstreams::new(&[]) does not wait"),
            }
        };
        let events = Arc::new(CountingSink::default());
        let engine = Engine::new(EngineParts {
            server,
            cache,
            sinkhole,
            policy: make_policy(),
            upstreams,
            events: events.clone(),
        });
        RequestPath {
            engine,
            make_policy,
            events,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn events_reported(&self) -> u64 {
        self.events.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Runs one fuzz input (see [`Input`]).
    pub fn run(&self, data: &[u8]) -> Outcome {
        // Each input starts with an empty answer cache, so a result depends on that input alone
        // (reproducible crashes; no answer cached by an earlier input served to a later one).
        self.engine.cache().clear();
        let input = Input::parse(data);
        let client: SocketAddr = if input.flags & flags::OUTSIDE_ACL != 0 {
            "10.9.8.7:40000".parse().expect("literal")
        } else if input.flags & flags::ESCALATED != 0 {
            SocketAddr::new(ESCALATED_CLIENT, 40000)
        } else if input.flags & flags::IPV6 != 0 {
            "[::1]:40000".parse().expect("literal")
        } else {
            "127.0.0.1:40000".parse().expect("literal")
        };
        let transport = if input.flags & flags::TCP != 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let first = self.ask(&input, client, transport);
        let second = (input.flags & flags::ASK_TWICE != 0).then(|| {
            if input.flags & flags::RELOAD != 0 {
                self.engine.set_policy((self.make_policy)());
            }
            self.ask(&input, client, transport)
        });
        Outcome { first, second }
    }

    fn ask(&self, input: &Input<'_>, client: SocketAddr, transport: Transport) -> Reply {
        let mut out = Vec::new();
        match self
            .engine
            .answer_fast(input.query, client, transport, &mut out)
        {
            Fast::Respond => Reply {
                max_len: max_len(wire::parse_query(input.query).ok().as_ref(), transport),
                response: Some(out),
                went_upstream: false,
            },
            Fast::Drop => Reply {
                response: None,
                max_len: 0,
                went_upstream: false,
            },
            Fast::Upstream(q) => {
                let max = max_len(Some(&q), transport);
                self.answer_miss(&q, input, client, transport, &mut out);
                Reply {
                    response: Some(out),
                    max_len: max,
                    went_upstream: true,
                }
            }
        }
    }

    /// The engine's miss path (`Engine::answer_miss`, what `answer_slow` runs) with the upstream
    /// exchange replaced by the input's bytes; the future is ready at once, so one poll runs it.
    fn answer_miss(
        &self,
        q: &Query,
        input: &Input<'_>,
        client: SocketAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) {
        let mut key_buf = [0u8; 260];
        let key = q.cache_key(&mut key_buf);
        let answer = if input.flags & flags::UPSTREAM_FAILS != 0 {
            None
        } else {
            upstream_answer(input, &key[..key.len() - 1])
        };
        let upstream = std::future::ready(answer.ok_or("no usable upstream answer"));
        let fut = self
            .engine
            .answer_miss(q, key, client, transport, upstream, out);
        let mut fut = std::pin::pin!(fut);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(_) => {}
            std::task::Poll::Pending => unreachable!("the upstream future is ready at once"),
        }
    }
}

fn max_len(q: Option<&Query>, transport: Transport) -> usize {
    match (transport, q) {
        (Transport::Tcp, _) => u16::MAX as usize,
        (Transport::Udp, Some(q)) => q.max_udp_response(),
        (Transport::Udp, None) => 512,
    }
}

/// What the upstream client would hand the engine, or None (the query times out).
/// With [`flags::RAW_UPSTREAM`] the bytes go through the receive loop's filter as they are;
/// otherwise they are dressed as an answer to `question`. A truncated answer stands for the
/// TCP retry's answer (TC cleared), as the upstream client fetches that over TCP.
fn upstream_answer(input: &Input<'_>, question: &[u8]) -> Option<Vec<u8>> {
    let mut resp = if input.flags & flags::RAW_UPSTREAM != 0 {
        input.upstream.to_vec()
    } else {
        let mut header = [0u8; wire::HEADER_LEN];
        let n = input.upstream.len().min(wire::HEADER_LEN);
        header[..n].copy_from_slice(&input.upstream[..n]);
        header[2] |= 0x80;
        header[4] = 0;
        header[5] = 1;
        let mut v = Vec::with_capacity(input.upstream.len() + question.len());
        v.extend_from_slice(&header);
        v.extend_from_slice(question);
        v.extend_from_slice(&input.upstream[n..]);
        v
    };
    // The upstream client's receive filter (the ID is the harness's own).
    if !crate::upstream::answers_question(&resp, question) {
        return None;
    }
    resp[2] &= !0x02;
    Some(resp)
}

/// Structural checks on a response to `query` (the corpus replay and the fuzz target assert
/// these): a header, QR set, the client's ID and opcode, the question echoed byte for byte when
/// there is one, within the transport's size, and every section walkable. Returns what is wrong.
pub fn check_response(query: &[u8], reply: &Reply) -> Result<(), String> {
    let Some(resp) = &reply.response else {
        return Ok(());
    };
    if resp.len() < wire::HEADER_LEN {
        return Err(format!(
            "response shorter than a header ({} bytes)",
            resp.len()
        ));
    }
    if resp.len() > reply.max_len {
        return Err(format!(
            "response of {} bytes over the limit of {}",
            resp.len(),
            reply.max_len
        ));
    }
    if resp[2] & 0x80 == 0 {
        return Err("QR not set".into());
    }
    if query.len() >= 2 && resp[0..2] != query[0..2] {
        return Err("ID differs from the query's".into());
    }
    if query.len() >= 3 && (resp[2] >> 3) & 0xf != (query[2] >> 3) & 0xf {
        return Err("opcode differs from the query's".into());
    }
    let qd = u16::from_be_bytes([resp[4], resp[5]]);
    if qd > 1 {
        return Err(format!("QDCOUNT {qd}"));
    }
    if qd == 1 {
        // Query names are never compressed, so the echoed question sits at the same offsets.
        let end = wire::skip_name(resp, wire::HEADER_LEN).map(|e| e + 4);
        match end {
            Some(end)
                if resp.get(wire::HEADER_LEN..end).is_some()
                    && resp.get(wire::HEADER_LEN..end) == query.get(wire::HEADER_LEN..end) => {}
            _ => return Err("question not echoed exactly".into()),
        }
    }
    if wire::walk_response(resp).is_none() {
        return Err("response sections do not walk".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> RequestPath {
        RequestPath::new(
            ServerConfig::default(),
            CacheConfig::default(),
            SinkholeConfig::default(),
            Box::new(|| {
                let mut deny = dnsward_policy::DomainSet::new();
                deny.add_rule("test", "bad.test").unwrap();
                Policy::builder().deny(deny).build()
            }),
        )
    }

    fn query(name: &[u8], qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(name);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        q
    }

    #[test]
    fn answer_and_cache_hit() {
        let p = path();
        let q = query(b"\x03www\x04test\x00", 1);
        // Header (flags: QR RD RA, ANCOUNT 1) then one A record pointing at the question name.
        let mut up = vec![0, 0, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        up.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 10]);
        let out = p.run(&Input::encode(flags::ASK_TWICE, &q, &up));
        check_response(&q, &out.first).unwrap();
        assert!(out.first.went_upstream);
        let second = out.second.unwrap();
        check_response(&q, &second).unwrap();
        assert!(!second.went_upstream, "cache hit");
        assert_eq!(second.response.as_ref().unwrap()[7], 1, "one answer");
    }

    #[test]
    fn blocked_and_failed() {
        let p = path();
        let q = query(b"\x03bad\x04test\x00", 1);
        let out = p.run(&Input::encode(0, &q, &[]));
        assert_eq!(out.first.response.as_ref().unwrap()[3] & 0xf, 3);
        let q = query(b"\x04good\x04test\x00", 1);
        let out = p.run(&Input::encode(flags::UPSTREAM_FAILS, &q, &[]));
        assert_eq!(out.first.response.as_ref().unwrap()[3] & 0xf, 2);
        // Garbage as is: not an answer to this question, so SERVFAIL.
        let out = p.run(&Input::encode(flags::RAW_UPSTREAM, &q, &[0xff; 40]));
        assert_eq!(out.first.response.as_ref().unwrap()[3] & 0xf, 2);
    }
}
