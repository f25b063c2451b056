//! The answer cache: upstream responses stored once as wire bytes, served with TTLs counted down.
//!
//! A hit costs a hash probe, one copy and a few byte patches: no parsing, no record objects.
//! Entries are keyed by lowercased name + type + class + DO/CD, stored without the upstream's OPT
//! record (dnsward writes its own), and bounded by total bytes (quick_cache's weighted CLOCK-Pro).
//! Negative answers are cached per RFC 2308 (min of the SOA's TTL and MINIMUM).

use crate::wire::{self, Query, ResponseLayout};
use dnsward_policy::Verdict;
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// `[cache]` settings.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Upper bound on the memory held by cached answers, in MiB (0 disables the cache).
    pub max_mib: u64,
    /// TTLs below this are raised to it for caching (seconds).
    pub min_ttl: u32,
    /// TTLs above this are capped (seconds).
    pub max_ttl: u32,
    /// Cap on the lifetime of negative answers (NXDOMAIN / NODATA), seconds.
    pub max_negative_ttl: u32,
    /// Serve-stale (RFC 8767): when every upstream fails (timeout, error, SERVFAIL/REFUSED), an
    /// expired cached answer up to this many seconds past its expiry is served, with TTLs of at
    /// most 30 s, instead of SERVFAIL. 0 turns it off (the default: a stale answer may be wrong,
    /// so serving one is the operator's choice).
    pub serve_stale_secs: u32,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_mib: 64,
            min_ttl: 0,
            max_ttl: 86_400,
            max_negative_ttl: 3_600,
            serve_stale_secs: 0,
        }
    }
}

impl CacheConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.min_ttl > self.max_ttl {
            return Err(format!(
                "cache.min_ttl ({}) is larger than cache.max_ttl ({})",
                self.min_ttl, self.max_ttl
            ));
        }
        if self.max_mib > 1 << 20 {
            return Err(format!(
                "cache.max_mib: {} MiB is not a sensible bound",
                self.max_mib
            ));
        }
        Ok(())
    }
}

/// TTL of records in a stale answer (RFC 8767 §4 recommends 30 s).
pub const STALE_TTL: u32 = 30;

/// One cached upstream response plus the verdict the pipeline gave it.
pub struct CachedAnswer {
    /// Upstream response: ID zeroed, OPT removed (ARCOUNT adjusted).
    wire: Box<[u8]>,
    ttls: Box<[(u16, u32)]>,
    question_end: usize,
    stored: Instant,
    /// How long the entry lives, seconds.
    lifetime: u32,
    pub rcode: u8,
    /// The verdict for this name and answer, and the policy generation that produced it.
    pub verdict: Arc<Verdict>,
    pub generation: u64,
}

impl CachedAnswer {
    /// Prepares an upstream response for the cache. Returns the entry and its cacheable lifetime
    /// (None: not cacheable, e.g. SERVFAIL; the entry can still be rendered once).
    pub fn from_upstream(
        pkt: &[u8],
        layout: &ResponseLayout,
        cfg: &CacheConfig,
        verdict: Arc<Verdict>,
        generation: u64,
        now: Instant,
    ) -> (CachedAnswer, Option<u32>) {
        let mut wire = Vec::with_capacity(pkt.len());
        let mut ttls = layout.ttls.clone();
        match layout.opt {
            Some((start, end)) => {
                wire.extend_from_slice(&pkt[..start]);
                wire.extend_from_slice(&pkt[end..]);
                let removed = (end - start) as u16;
                for (off, _) in ttls.iter_mut() {
                    if *off as usize > start {
                        *off -= removed;
                    }
                }
                let ar = u16::from_be_bytes([wire[10], wire[11]]).saturating_sub(1);
                wire[10..12].copy_from_slice(&ar.to_be_bytes());
            }
            None => wire.extend_from_slice(pkt),
        }
        wire[0] = 0;
        wire[1] = 0;
        let lifetime = cache_lifetime(layout, cfg);
        // Clients must not keep a record longer than we would: cap every TTL at the configured
        // maximum, and in negative answers at the negative lifetime (RFC 2308 §3: the SOA's TTL
        // in a negative answer is min(SOA TTL, MINIMUM)).
        let cap = if is_negative(layout) {
            lifetime.unwrap_or(0)
        } else {
            cfg.max_ttl
        };
        for (_, ttl) in ttls.iter_mut() {
            *ttl = (*ttl).min(cap);
        }
        let entry = CachedAnswer {
            wire: wire.into_boxed_slice(),
            ttls: ttls.into_boxed_slice(),
            question_end: layout.question_end,
            stored: now,
            lifetime: lifetime.unwrap_or(0),
            rcode: layout.rcode,
            verdict,
            generation,
        };
        (entry, lifetime)
    }

    /// The same answer with a new verdict (after a policy reload).
    pub fn with_verdict(&self, verdict: Arc<Verdict>, generation: u64) -> CachedAnswer {
        CachedAnswer {
            wire: self.wire.clone(),
            ttls: self.ttls.clone(),
            question_end: self.question_end,
            stored: self.stored,
            lifetime: self.lifetime,
            rcode: self.rcode,
            verdict,
            generation,
        }
    }

    pub fn is_fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.stored).as_secs() < self.lifetime as u64
    }

    /// Expired no longer than `max_stale` seconds ago (fresh entries count too).
    pub fn is_servable_stale(&self, now: Instant, max_stale: u32) -> bool {
        now.saturating_duration_since(self.stored).as_secs()
            < u64::from(self.lifetime) + u64::from(max_stale)
    }

    /// The stored response bytes (ID zero, no OPT), for re-parsing after a reload.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// Writes the response for `q` into `out`: the client's ID, flags and question case, TTLs
    /// counted down, our OPT if the client sent one, truncated (TC) if over `max_len`.
    /// Returns false if the entry does not fit this question (then treat it as a miss).
    pub fn render(&self, q: &Query, now: Instant, max_len: usize, out: &mut Vec<u8>) -> bool {
        let elapsed = now
            .saturating_duration_since(self.stored)
            .as_secs()
            .min(u32::MAX as u64) as u32;
        self.render_ttls(q, max_len, out, |ttl| ttl.saturating_sub(elapsed))
    }

    /// Like [`render`](Self::render) for a stale answer: every TTL at most [`STALE_TTL`]
    /// (RFC 8767 §4), so clients come back soon for a fresh one.
    pub fn render_stale(&self, q: &Query, max_len: usize, out: &mut Vec<u8>) -> bool {
        self.render_ttls(q, max_len, out, |ttl| ttl.min(STALE_TTL))
    }

    fn render_ttls(
        &self,
        q: &Query,
        max_len: usize,
        out: &mut Vec<u8>,
        ttl_of: impl Fn(u32) -> u32,
    ) -> bool {
        let question = q.question.as_bytes();
        if wire::HEADER_LEN + question.len() != self.question_end {
            return false;
        }
        out.clear();
        out.extend_from_slice(&self.wire);
        out[0..2].copy_from_slice(&q.id.to_be_bytes());
        // Flags: QR, RA and RCODE from upstream; RD and CD echo the client; AA cleared (we are
        // a cache); AD only when the client asked for it (RFC 6840 §5.8).
        let up = u16::from_be_bytes([out[2], out[3]]);
        let mut flags = (up & 0x000f) | 0x8000 | 0x0080;
        if q.rd {
            flags |= 0x0100;
        }
        if q.cd {
            flags |= 0x0010;
        }
        if up & 0x0020 != 0 && (q.ad || q.dnssec_ok()) {
            flags |= 0x0020;
        }
        out[2..4].copy_from_slice(&flags.to_be_bytes());
        out[wire::HEADER_LEN..self.question_end].copy_from_slice(question);
        for &(off, ttl) in self.ttls.iter() {
            let off = off as usize;
            out[off..off + 4].copy_from_slice(&ttl_of(ttl).to_be_bytes());
        }
        if let Some(e) = q.edns {
            wire::push_opt(out, e.dnssec_ok, 0);
            let ar = u16::from_be_bytes([out[10], out[11]]).saturating_add(1);
            out[10..12].copy_from_slice(&ar.to_be_bytes());
        }
        if out.len() > max_len {
            truncate_in_place(q, out);
        }
        true
    }
}

/// Replaces a too-large response with header + question (+ OPT), TC set: the client retries on TCP.
pub fn truncate_in_place(q: &Query, out: &mut Vec<u8>) {
    let qlen = q.question.as_bytes().len();
    out.truncate(wire::HEADER_LEN + qlen);
    out[2] |= 0x02; // TC
    out[4..6].copy_from_slice(&1u16.to_be_bytes());
    out[6..12].fill(0);
    if let Some(e) = q.edns {
        wire::push_opt(out, e.dnssec_ok, 0);
        out[10..12].copy_from_slice(&1u16.to_be_bytes());
    }
}

fn is_negative(layout: &ResponseLayout) -> bool {
    layout.rcode == wire::RCODE_NXDOMAIN
        || (layout.rcode == wire::RCODE_NOERROR && layout.ancount == 0)
}

fn cache_lifetime(layout: &ResponseLayout, cfg: &CacheConfig) -> Option<u32> {
    if layout.truncated {
        return None;
    }
    if is_negative(layout) {
        // RFC 2308 §5: without an SOA a negative answer is not cached.
        let (ttl, minimum) = layout.soa?;
        return Some(ttl.min(minimum).min(cfg.max_negative_ttl));
    }
    if layout.rcode != wire::RCODE_NOERROR {
        return None;
    }
    let min = layout.ttls.iter().map(|&(_, t)| t).min()?;
    Some(min.clamp(cfg.min_ttl, cfg.max_ttl))
}

#[derive(Clone)]
struct EntryWeight;

impl Weighter<Box<[u8]>, Arc<CachedAnswer>> for EntryWeight {
    fn weight(&self, key: &Box<[u8]>, val: &Arc<CachedAnswer>) -> u64 {
        // Bytes held plus bookkeeping (Arc, entry struct, map slot).
        (key.len() + val.wire.len() + val.ttls.len() * 8 + 160) as u64
    }
}

/// The shared answer cache.
pub struct AnswerCache {
    inner: Option<Cache<Box<[u8]>, Arc<CachedAnswer>, EntryWeight>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl AnswerCache {
    pub fn new(cfg: &CacheConfig) -> Self {
        let bytes = cfg.max_mib * 1024 * 1024;
        let inner = (bytes > 0).then(|| {
            let estimated_items = (bytes / 512).max(16) as usize;
            Cache::with_weighter(estimated_items, bytes, EntryWeight)
        });
        AnswerCache {
            inner,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// A fresh entry for `key`, if any.
    pub fn get(&self, key: &[u8], now: Instant) -> Option<Arc<CachedAnswer>> {
        let found = self
            .inner
            .as_ref()
            .and_then(|c| c.get(key))
            .filter(|e| e.is_fresh(now));
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// An entry for `key` expired at most `max_stale` seconds ago (serve-stale), if the cache
    /// still holds one. Not counted as a hit or miss (the lookup already counted as a miss).
    pub fn get_stale(&self, key: &[u8], now: Instant, max_stale: u32) -> Option<Arc<CachedAnswer>> {
        self.inner
            .as_ref()
            .and_then(|c| c.get(key))
            .filter(|e| e.is_servable_stale(now, max_stale))
    }

    pub fn insert(&self, key: &[u8], entry: Arc<CachedAnswer>) {
        if let Some(c) = &self.inner {
            c.insert(key.into(), entry);
        }
    }

    pub fn len(&self) -> usize {
        self.inner.as_ref().map(|c| c.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn weight_bytes(&self) -> u64 {
        self.inner.as_ref().map(|c| c.weight()).unwrap_or(0)
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    pub fn clear(&self) {
        if let Some(c) = &self.inner {
            c.clear();
        }
    }
}
