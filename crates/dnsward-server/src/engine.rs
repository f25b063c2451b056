//! The request engine: one query from bytes in to bytes out.
//!
//! ```text
//! packet ─ ACL ─ rate limit ─ parse ─┬─ cache hit ─ cached verdict ───────────────┐
//!                                    └─ miss ─ send upstream ─┐                   │
//!                                              judge name ◄───┘ (while in flight) │
//!                                              enforced? ─ yes ─ block answer ────┤
//!                                              no: await answer ─ answer checks ──┴─ response
//! ```
//! The fast half ([`Engine::answer_fast`]) never awaits; only cache misses go to the async half.

use crate::access::{Acl, RateLimiter};
use crate::answer::judge_answer_wire;
use crate::cache::{AnswerCache, CacheConfig, CachedAnswer};
use crate::config::{AnyQueries, ServerConfig};
use crate::events::{AnsweredQuery, EventSink, Outcome, QueryEvent};
use crate::hist::Histogram;
use crate::stats::Stats;
use crate::upstream::{UpstreamRequest, Upstreams};
use crate::wire::{self, BlockAnswer, Query};
use arc_swap::ArcSwap;
use dnsward_policy::{
    Action, Category, EdeText, Policy, SinkholeConfig, Strike, Verdict, VerdictKind,
};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Instant, SystemTime};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Result of the synchronous half.
pub enum Fast {
    /// `out` holds the response.
    Respond,
    /// Send nothing (malformed beyond answering, a response packet, rate limited).
    Drop,
    /// Cache miss: continue with [`Engine::answer_slow`].
    Upstream(Box<Query>),
}

/// Everything the engine is built from.
pub struct EngineParts {
    pub server: ServerConfig,
    pub cache: CacheConfig,
    pub sinkhole: SinkholeConfig,
    pub policy: Policy,
    pub upstreams: Arc<Upstreams>,
    pub events: Arc<dyn EventSink>,
}

pub struct Engine {
    policy: ArcSwap<Policy>,
    cache: AnswerCache,
    cache_cfg: CacheConfig,
    upstreams: Arc<Upstreams>,
    acl: Acl,
    limiter: RateLimiter,
    sinkhole: SinkholeConfig,
    any_queries: AnyQueries,
    events: Arc<dyn EventSink>,
    log_all: bool,
    pub stats: Stats,
    /// Time from sending a query upstream to its answer (misses only).
    pub upstream_latency: Histogram,
    /// Time spent in the name stages (lists + classifiers) per uncached query.
    pub name_stage_latency: Histogram,
}

impl Engine {
    pub fn new(parts: EngineParts) -> Self {
        let rl = &parts.server.rate_limit;
        Engine {
            policy: ArcSwap::from_pointee(parts.policy),
            cache: AnswerCache::new(&parts.cache),
            cache_cfg: parts.cache,
            upstreams: parts.upstreams,
            acl: Acl::new(parts.server.allow_clients.clone()),
            limiter: RateLimiter::new(
                rl.per_client_qps,
                rl.burst,
                rl.exempt.clone(),
                rl.max_clients,
            ),
            sinkhole: parts.sinkhole,
            any_queries: parts.server.any_queries,
            log_all: parts.events.wants_all_queries(),
            events: parts.events,
            stats: Stats::default(),
            upstream_latency: Histogram::new(),
            name_stage_latency: Histogram::new(),
        }
    }

    /// Swaps in a new policy (reload). Cached answers are re-judged lazily on their next hit.
    pub fn set_policy(&self, policy: Policy) {
        self.policy.store(Arc::new(policy));
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    pub fn cache(&self) -> &AnswerCache {
        &self.cache
    }

    pub fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    /// The synchronous half: access control, parsing, special types and cache hits.
    pub fn answer_fast(
        &self,
        pkt: &[u8],
        client: SocketAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Fast {
        match transport {
            Transport::Udp => Stats::bump(&self.stats.queries_udp),
            Transport::Tcp => Stats::bump(&self.stats.queries_tcp),
        }
        if !self.limiter.admit(client.ip()) {
            Stats::bump(&self.stats.rate_limited);
            return Fast::Drop;
        }
        let q = match wire::parse_query(pkt) {
            Ok(q) => q,
            Err(err) => {
                Stats::bump(&self.stats.malformed);
                if !self.acl.allows(client.ip()) {
                    return Fast::Drop;
                }
                return if wire::error_response(&err, out) {
                    Fast::Respond
                } else {
                    Fast::Drop
                };
            }
        };
        if !self.acl.allows(client.ip()) {
            Stats::bump(&self.stats.refused_acl);
            wire::rcode_response(&q, wire::RCODE_REFUSED, out);
            return Fast::Respond;
        }
        if q.qclass != wire::CLASS_IN {
            // CHAOS, HESIOD and friends: nothing to forward for a filtering resolver.
            wire::rcode_response(&q, wire::RCODE_REFUSED, out);
            return Fast::Respond;
        }
        match q.qtype {
            wire::TYPE_AXFR | wire::TYPE_IXFR => {
                wire::rcode_response(&q, wire::RCODE_NOTIMP, out);
                return Fast::Respond;
            }
            wire::TYPE_OPT => {
                wire::rcode_response(&q, wire::RCODE_FORMERR, out);
                return Fast::Respond;
            }
            wire::TYPE_ANY => match self.any_queries {
                AnyQueries::Hinfo => {
                    wire::any_hinfo_response(&q, out);
                    return Fast::Respond;
                }
                AnyQueries::Refuse => {
                    wire::rcode_response(&q, wire::RCODE_REFUSED, out);
                    return Fast::Respond;
                }
                AnyQueries::Forward => {}
            },
            _ => {}
        }
        let mut key_buf = [0u8; 260];
        let key = q.cache_key(&mut key_buf);
        let now = Instant::now();
        if let Some(mut entry) = self.cache.get(key, now) {
            let policy = self.policy.load();
            if entry.generation != policy.generation() {
                entry = self.rejudge(&policy, &q, &entry);
                self.cache.insert(key, entry.clone());
            }
            let escalated = (entry.verdict.kind == VerdictKind::Pass
                && self.client_escalated(&policy, client))
            .then(|| {
                let name = q.name_text();
                let v = policy.escalated_check(&name, &entry.verdict)?;
                let v = policy.for_client(&v, Some(client.ip())).into_owned();
                Some((name, v))
            })
            .flatten();
            if let Some((name, v)) = &escalated {
                if v.is_enforced() {
                    self.respond_blocked(&q, name, v, client, true, out);
                    return Fast::Respond;
                }
            }
            self.respond_with(&policy, &q, &entry, client, transport, now, true, out);
            if let Some((name, v)) = escalated {
                self.report_monitor_escalation(&q, &name, &entry, &v, client, true);
            }
            return Fast::Respond;
        }
        Fast::Upstream(Box::new(q))
    }

    /// The asynchronous half for cache misses: the upstream query and the name checks run
    /// concurrently; the answer checks run when the answer arrives. Returns false to send nothing.
    pub async fn answer_slow(
        &self,
        q: Query,
        client: SocketAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> bool {
        let mut key_buf = [0u8; 260];
        let key = q.cache_key(&mut key_buf);
        let req = UpstreamRequest {
            question: key[..key.len() - 1].into(),
            dnssec_ok: q.dnssec_ok(),
            checking_disabled: q.cd,
        };
        let upstream = self.upstreams.resolve(&req);
        self.answer_miss(&q, key, client, transport, upstream, out)
            .await
    }

    /// The miss path with the upstream exchange given as a future: `answer_slow` passes the
    /// upstream client's; the fuzzing entry point ([`crate::fuzzing`]) passes an answer taken
    /// from its input, so the fuzzer runs this very code. `key` is `q`'s cache key.
    #[doc(hidden)]
    pub async fn answer_miss<E: std::fmt::Display>(
        &self,
        q: &Query,
        key: &[u8],
        client: SocketAddr,
        transport: Transport,
        upstream: impl Future<Output = Result<Vec<u8>, E>>,
        out: &mut Vec<u8>,
    ) -> bool {
        let policy = self.policy.load_full();
        let name = q.name_text();

        let sent = Instant::now();
        let mut upstream = pin!(upstream);
        // Poll once: this sends the upstream query. Then judge the name while it is in flight.
        let early = std::future::poll_fn(|cx| Poll::Ready(upstream.as_mut().poll(cx))).await;
        let judging = Instant::now();
        // For an escalated client also the classifiers' escalated verdict: client-specific,
        // never cached.
        let (name_verdict, escalated) = if self.client_escalated(&policy, client) {
            policy.judge_name_escalated(&name)
        } else {
            (policy.judge_name(&name), None)
        };
        self.name_stage_latency.observe(judging.elapsed());
        // A monitored client still gets the real answer: the block is recorded with it.
        let seen = policy.for_client(&name_verdict, Some(client.ip()));
        if seen.is_enforced() {
            self.respond_blocked(q, &name, &seen, client, false, out);
            return true;
        }
        let escalated = escalated.map(|v| policy.for_client(&v, Some(client.ip())).into_owned());
        if let Some(v) = escalated.as_ref().filter(|v| v.is_enforced()) {
            self.respond_blocked(q, &name, v, client, false, out);
            return true;
        }
        let result = match early {
            Poll::Ready(r) => r,
            Poll::Pending => upstream.await,
        };
        self.upstream_latency.observe(sent.elapsed());
        let resp = match result {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(qname = %name, error = %e, "upstream failed");
                Stats::bump(&self.stats.upstream_failures);
                if !self.serve_stale(q, key, client, transport, out) {
                    Stats::bump(&self.stats.servfail);
                    wire::rcode_response(q, wire::RCODE_SERVFAIL, out);
                }
                return true;
            }
        };
        let Some(layout) = wire::walk_response(&resp) else {
            tracing::debug!(qname = %name, "malformed upstream answer");
            Stats::bump(&self.stats.upstream_failures);
            if !self.serve_stale(q, key, client, transport, out) {
                Stats::bump(&self.stats.servfail);
                wire::rcode_response(q, wire::RCODE_SERVFAIL, out);
            }
            return true;
        };
        // An upstream that answers SERVFAIL or REFUSED failed too (RFC 8767 §5): a stale answer,
        // when configured and held, is better than passing the failure on.
        if matches!(layout.rcode, wire::RCODE_SERVFAIL | wire::RCODE_REFUSED)
            && self.serve_stale(q, key, client, transport, out)
        {
            return true;
        }
        let verdict = judge_answer_wire(&policy, &name, name_verdict, &resp, true);
        let now = Instant::now();
        let (entry, lifetime) = CachedAnswer::from_upstream(
            &resp,
            &layout,
            &self.cache_cfg,
            Arc::new(verdict),
            policy.generation(),
            now,
        );
        let entry = Arc::new(entry);
        if lifetime.is_some_and(|t| t > 0) {
            self.cache.insert(key, entry.clone());
        }
        self.respond_with(&policy, q, &entry, client, transport, now, false, out);
        if let Some(v) = escalated {
            self.report_monitor_escalation(q, &name, &entry, &v, client, false);
        }
        true
    }

    /// Whether `client` is escalated, so its names also get the escalated checks
    /// ([`Policy::escalated_check`] on a hit, [`Policy::judge_name_escalated`] on a miss). While
    /// no client is escalated it costs one relaxed load: no clock read, no lock, no allocation.
    fn client_escalated(&self, policy: &Policy, client: SocketAddr) -> bool {
        policy
            .client_escalation()
            .is_some_and(|e| e.any_escalated() && e.is_escalated(client.ip(), Instant::now()))
    }

    /// Monitor mode: an escalated block that was answered normally is still recorded, unless the
    /// answer's own verdict was already reported as a block.
    fn report_monitor_escalation(
        &self,
        q: &Query,
        name: &str,
        entry: &CachedAnswer,
        verdict: &Verdict,
        client: SocketAddr,
        from_cache: bool,
    ) {
        if !entry.verdict.is_block() {
            self.report(q, name, verdict, client, entry.rcode, from_cache);
        }
    }

    /// Serve-stale (RFC 8767): answer from an expired cache entry after the upstreams failed.
    /// False when it is off or nothing servable is cached.
    fn serve_stale(
        &self,
        q: &Query,
        key: &[u8],
        client: SocketAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> bool {
        let max_stale = self.cache_cfg.serve_stale_secs;
        if max_stale == 0 {
            return false;
        }
        let Some(mut entry) = self.cache.get_stale(key, Instant::now(), max_stale) else {
            return false;
        };
        let policy = self.policy.load();
        if entry.generation != policy.generation() {
            entry = self.rejudge(&policy, q, &entry);
        }
        let verdict = policy.for_client(&entry.verdict, Some(client.ip()));
        if verdict.is_enforced() {
            self.respond_blocked(q, &q.name_text(), &verdict, client, true, out);
            return true;
        }
        let max = match transport {
            Transport::Udp => q.max_udp_response(),
            Transport::Tcp => u16::MAX as usize,
        };
        if !entry.render_stale(q, max, out) {
            return false;
        }
        Stats::bump(&self.stats.served_stale);
        if verdict.is_block() || self.log_all {
            self.report(q, &q.name_text(), &verdict, client, entry.rcode, true);
        }
        true
    }

    /// Answers from a (cached or fresh) upstream answer, applying its verdict as `client` sees
    /// it ([`Policy::for_client`]).
    #[allow(clippy::too_many_arguments)]
    fn respond_with(
        &self,
        policy: &Policy,
        q: &Query,
        entry: &CachedAnswer,
        client: SocketAddr,
        transport: Transport,
        now: Instant,
        from_cache: bool,
        out: &mut Vec<u8>,
    ) {
        let verdict = policy.for_client(&entry.verdict, Some(client.ip()));
        if verdict.is_enforced() {
            self.respond_blocked(q, &q.name_text(), &verdict, client, from_cache, out);
            return;
        }
        let max = match transport {
            Transport::Udp => q.max_udp_response(),
            Transport::Tcp => u16::MAX as usize,
        };
        if !entry.render(q, now, max, out) {
            // Cannot happen for entries found under this query's key; answer safely anyway.
            wire::rcode_response(q, wire::RCODE_SERVFAIL, out);
            Stats::bump(&self.stats.servfail);
            return;
        }
        if out.get(2).is_some_and(|f| f & 0x02 != 0) {
            Stats::bump(&self.stats.truncated);
        }
        if verdict.is_block() {
            // Monitor mode: answered normally, verdict recorded.
            self.report(q, &q.name_text(), &verdict, client, entry.rcode, from_cache);
        } else if self.log_all {
            let qname_wire = q.question.name_wire();
            if self.events.wants_answered(qname_wire) {
                self.events.record_answered(&AnsweredQuery {
                    time: SystemTime::now(),
                    client: client.ip(),
                    qname_wire,
                    qtype: q.qtype,
                    verdict: &verdict,
                    rcode: entry.rcode,
                    from_cache,
                });
            } else {
                self.events.count_answered(q.qtype, entry.rcode);
            }
        }
    }

    fn respond_blocked(
        &self,
        q: &Query,
        name: &str,
        verdict: &Verdict,
        client: SocketAddr,
        from_cache: bool,
        out: &mut Vec<u8>,
    ) {
        let ttl = self.sinkhole.ttl;
        let ede = match (verdict.action(), self.policy.load().actions().ede) {
            (Some(Action::Sinkhole), _) | (_, EdeText::Off) => None,
            (_, EdeText::Category) => verdict
                .category()
                .map(|c| format!("blocked by policy: {c}")),
            (_, EdeText::Reason) => verdict.category().map(|c| match &verdict.reason {
                Some(r) => format!("blocked by policy: {c}: {r}"),
                None => format!("blocked by policy: {c}"),
            }),
        };
        let answer = match verdict.action() {
            Some(Action::Sinkhole) => BlockAnswer::Sinkhole {
                v4: &self.sinkhole.ipv4,
                v6: &self.sinkhole.ipv6,
                ttl,
            },
            Some(Action::Refused) => BlockAnswer::Refused,
            _ => BlockAnswer::Nxdomain { ttl },
        };
        wire::block_response(q, answer, ede.as_deref(), out);
        let rcode = out.get(3).map(|b| b & 0xf).unwrap_or(0);
        self.report(q, name, verdict, client, rcode, from_cache);
    }

    fn report(
        &self,
        q: &Query,
        name: &str,
        verdict: &Verdict,
        client: SocketAddr,
        rcode: u8,
        from_cache: bool,
    ) {
        let outcome = if let (Some(c), Some(a)) = (verdict.category(), verdict.action()) {
            self.stats.record_block(c, a);
            if c == Category::Dga {
                let policy = self.policy.load();
                if policy.record_block(name, verdict, client.ip(), Instant::now())
                    == Strike::Escalated
                {
                    Stats::bump(&self.stats.clients_escalated);
                }
            }
            Outcome::Blocked
        } else {
            Outcome::Answered
        };
        self.events.record(&QueryEvent {
            time: SystemTime::now(),
            client: client.ip(),
            qname: name,
            qtype: q.qtype,
            verdict,
            rcode,
            from_cache,
            outcome,
        });
    }

    /// Re-runs the pipeline for a cached answer after a policy reload.
    fn rejudge(&self, policy: &Policy, q: &Query, entry: &CachedAnswer) -> Arc<CachedAnswer> {
        let name = q.name_text();
        let name_verdict = policy.judge_name(&name);
        // Not recorded: this answer was already counted when it arrived.
        let verdict = judge_answer_wire(policy, &name, name_verdict, entry.wire(), false);
        Arc::new(entry.with_verdict(Arc::new(verdict), policy.generation()))
    }

    /// Both halves in one call (TCP and tests).
    pub async fn answer(
        &self,
        pkt: &[u8],
        client: SocketAddr,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> bool {
        match self.answer_fast(pkt, client, transport, out) {
            Fast::Respond => true,
            Fast::Drop => false,
            Fast::Upstream(q) => self.answer_slow(*q, client, transport, out).await,
        }
    }
}
