//! The per-domain answer history behind the flux features (addresses, name servers and lookups
//! seen within the window), kept apart from the analyser so that it outlives it.
//!
//! Fast flux shows over time: a flux name's address set grows lookup after lookup. If every
//! reload (new IOC lists, new MMDBs) or restart started the history over, a flux domain looked up
//! a few times an hour would never build up the evidence. So a reload builds a new
//! [`crate::AnswerAnalyzer`] around the running [`AnswerHistory`], and [`AnswerHistory::snapshot`]
//! / [`AnswerHistory::restore`] carry it across restarts (the `dnsward` binary keeps the snapshot
//! in its event store).
//!
//! What an address *is* (ASN, country, hosting / parking / CDN flags) is not part of the history
//! that survives: it depends on the MMDBs and lists of the analyser that looked it up. Each entry
//! records which analyser classified its addresses ([`DomainHistory::class_gen`]); an analyser
//! that meets an entry classified by another one classifies its addresses again on that visit.
use crate::config::IntelConfig;
use crate::error::IntelError;
use crate::geo::Cc;
use lru::LruCache;
use parking_lot::Mutex;
use std::num::NonZeroUsize;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Seen {
    pub key: u128,
    pub last: u32,
    pub asn: u32,
    pub cc: Cc,
    pub flags: u8,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct DomainHistory {
    /// (time, min TTL, brought new IPs) of the lookups in the window, oldest first.
    pub lookups: Vec<(u32, u32, bool)>,
    pub ips: Vec<Seen>,
    pub ns_names: Vec<(u64, u32)>,
    pub ns_ips: Vec<Seen>,
    pub ns_min_ttl: u32,
    pub parked_last: u32,
    pub left_parking_at: u32,
    /// The analyser generation that classified `ips` and `ns_ips` (0: none, e.g. restored from a
    /// snapshot).
    pub class_gen: u32,
}

pub(crate) const MAX_LOOKUPS_KEPT: usize = 32;

impl DomainHistory {
    pub fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.lookups.capacity() * 12
            + (self.ips.capacity() + self.ns_ips.capacity()) * std::mem::size_of::<Seen>()
            + self.ns_names.capacity() * 16
    }

    /// Last time anything of this domain was seen.
    fn last_seen(&self) -> u32 {
        let l = self.lookups.last().map_or(0, |l| l.0);
        let i = self.ips.iter().map(|s| s.last).max().unwrap_or(0);
        let n = self.ns_ips.iter().map(|s| s.last).max().unwrap_or(0);
        let m = self.ns_names.iter().map(|s| s.1).max().unwrap_or(0);
        l.max(i).max(n).max(m).max(self.parked_last)
    }
}

pub(crate) type HistoryShard = LruCache<Box<str>, DomainHistory, crate::net::FxBuild>;

/// The answer history: sharded LRU of domain → [`DomainHistory`]. Shared (`Arc`) between the
/// analysers of successive reloads.
pub struct AnswerHistory {
    shards: Box<[Mutex<HistoryShard>]>,
    max_domains: usize,
}

/// Shard count for a config (at least one, at most 256, never more than domains).
fn shard_count(cfg: &IntelConfig) -> usize {
    cfg.shards.clamp(1, 256).min(cfg.max_domains.max(1))
}

impl AnswerHistory {
    /// An empty history sized by `max_domains` and `shards` of the config.
    pub fn for_config(cfg: &IntelConfig) -> AnswerHistory {
        let n = shard_count(cfg);
        let per = NonZeroUsize::new((cfg.max_domains / n).max(1)).unwrap();
        AnswerHistory {
            shards: (0..n)
                .map(|_| Mutex::new(LruCache::with_hasher(per, crate::net::FxBuild)))
                .collect(),
            max_domains: cfg.max_domains,
        }
    }

    /// Whether this history has the size `cfg` asks for (then a new analyser can share it).
    pub fn fits(&self, cfg: &IntelConfig) -> bool {
        self.max_domains == cfg.max_domains && self.shards.len() == shard_count(cfg)
    }

    /// A history sized for `cfg` holding this one's entries (the most recently used ones, when
    /// it is smaller).
    pub fn resized_for(&self, cfg: &IntelConfig) -> AnswerHistory {
        let out = AnswerHistory::for_config(cfg);
        let mut all: Vec<(Box<str>, DomainHistory)> = Vec::with_capacity(self.len());
        for shard in self.shards.iter() {
            let g = shard.lock();
            all.extend(g.iter().rev().map(|(n, h)| (n.clone(), h.clone())));
        }
        out.put_oldest_first(all);
        out
    }

    /// Inserts entries oldest first across all shards (each shard's LRU order only ranks its
    /// own entries), so when this history is smaller than what comes in, or sharded otherwise,
    /// the most recently seen domains are the ones kept.
    fn put_oldest_first(&self, mut entries: Vec<(Box<str>, DomainHistory)>) {
        entries.sort_by_key(|(_, h)| h.last_seen());
        for (name, h) in entries {
            self.shard(&name).lock().put(name, h);
        }
    }

    pub(crate) fn shard(&self, name: &str) -> &Mutex<HistoryShard> {
        &self.shards[(crate::analyzer::fx(name) % self.shards.len() as u64) as usize]
    }

    /// Domains held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate heap held by the entries.
    pub fn approx_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .iter()
                    .map(|(k, v)| k.len() + 48 + v.approx_bytes())
                    .sum::<usize>()
            })
            .sum()
    }

    pub fn max_domains(&self) -> usize {
        self.max_domains
    }

    /// Forget everything.
    pub fn clear(&self) {
        for s in self.shards.iter() {
            s.lock().clear();
        }
    }

    /// The whole history as bytes (format below), least recently used domains first. Address
    /// classifications are left out (see the module docs). Each shard is locked only while its
    /// own entries are written.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.len() * 96);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.push(SNAPSHOT_VERSION);
        let count_at = out.len();
        out.extend_from_slice(&0u32.to_le_bytes());
        let mut count = 0u32;
        for shard in self.shards.iter() {
            let g = shard.lock();
            for (name, h) in g.iter().rev() {
                encode_entry(&mut out, name, h);
                count += 1;
            }
        }
        out[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
        out
    }

    /// Adds the entries of a [`snapshot`](Self::snapshot) that still have something within
    /// `window_secs` of `now_unix`; returns how many were added. Entries already present are
    /// replaced. The bytes are checked whole before anything is added, so a damaged snapshot
    /// changes nothing.
    pub fn restore(
        &self,
        bytes: &[u8],
        now_unix: u64,
        window_secs: u64,
    ) -> Result<usize, IntelError> {
        let mut entries = decode(bytes)?;
        let now = now_unix.min(u32::MAX as u64) as u32;
        let horizon = now.saturating_sub(window_secs.min(u32::MAX as u64) as u32);
        entries.retain(|(_, h)| h.last_seen() >= horizon);
        let added = entries.len();
        self.put_oldest_first(entries);
        Ok(added)
    }
}

const SNAPSHOT_MAGIC: &[u8; 4] = b"DWAH";
const SNAPSHOT_VERSION: u8 = 1;

// Snapshot format, version 1, little-endian throughout:
//   "DWAH" version:u8 count:u32, then `count` entries of
//   name_len:u8 name:[u8] (lower-case, no trailing dot)
//   n:u8 lookups × (time:u32 min_ttl:u32 new_ips:u8)
//   n:u16 ips × (key:u128 last:u32)
//   n:u16 ns_names × (hash:u64 last:u32)
//   n:u16 ns_ips × (key:u128 last:u32)
//   ns_min_ttl:u32 parked_last:u32 left_parking_at:u32
fn encode_entry(out: &mut Vec<u8>, name: &str, h: &DomainHistory) {
    let name = &name.as_bytes()[..name.len().min(255)];
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    let lookups = &h.lookups[h.lookups.len().saturating_sub(MAX_LOOKUPS_KEPT)..];
    out.push(lookups.len() as u8);
    for &(t, ttl, new) in lookups {
        out.extend_from_slice(&t.to_le_bytes());
        out.extend_from_slice(&ttl.to_le_bytes());
        out.push(new as u8);
    }
    let seen = |out: &mut Vec<u8>, v: &[Seen]| {
        let v = &v[..v.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(v.len() as u16).to_le_bytes());
        for s in v {
            out.extend_from_slice(&s.key.to_le_bytes());
            out.extend_from_slice(&s.last.to_le_bytes());
        }
    };
    seen(out, &h.ips);
    let ns = &h.ns_names[..h.ns_names.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(ns.len() as u16).to_le_bytes());
    for &(hash, t) in ns {
        out.extend_from_slice(&hash.to_le_bytes());
        out.extend_from_slice(&t.to_le_bytes());
    }
    seen(out, &h.ns_ips);
    for v in [h.ns_min_ttl, h.parked_last, h.left_parking_at] {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], IntelError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(snapshot_error(format!(
                "truncated at byte {} of {} (wanted {n} more)",
                self.at,
                self.bytes.len()
            )));
        };
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], IntelError> {
        Ok(self.take(N)?.try_into().expect("take returned N bytes"))
    }

    fn u8(&mut self) -> Result<u8, IntelError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, IntelError> {
        self.array().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Result<u32, IntelError> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, IntelError> {
        self.array().map(u64::from_le_bytes)
    }

    fn u128(&mut self) -> Result<u128, IntelError> {
        self.array().map(u128::from_le_bytes)
    }

    fn seen(&mut self) -> Result<Vec<Seen>, IntelError> {
        let n = self.u16()? as usize;
        (0..n)
            .map(|_| {
                Ok(Seen {
                    key: self.u128()?,
                    last: self.u32()?,
                    asn: 0,
                    cc: 0,
                    flags: 0,
                })
            })
            .collect()
    }
}

fn snapshot_error(msg: String) -> IntelError {
    IntelError::Snapshot(msg)
}

fn decode(bytes: &[u8]) -> Result<Vec<(Box<str>, DomainHistory)>, IntelError> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(4).ok() != Some(SNAPSHOT_MAGIC.as_slice()) {
        return Err(snapshot_error("not an answer-history snapshot".into()));
    }
    let version = r.u8()?;
    if version != SNAPSHOT_VERSION {
        return Err(snapshot_error(format!(
            "version {version} (this build reads version {SNAPSHOT_VERSION})"
        )));
    }
    let count = r.u32()? as usize;
    // Every entry takes at least 22 bytes: a count this large cannot be real.
    if count > bytes.len() / 22 {
        return Err(snapshot_error(format!(
            "{count} entries cannot fit in {} bytes",
            bytes.len()
        )));
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let len = r.u8()? as usize;
        let name = std::str::from_utf8(r.take(len)?)
            .ok()
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| snapshot_error(format!("entry {i}: bad domain name")))?;
        let n = r.u8()? as usize;
        if n > MAX_LOOKUPS_KEPT {
            return Err(snapshot_error(format!(
                "entry {i} ({name}): {n} lookups (at most {MAX_LOOKUPS_KEPT})"
            )));
        }
        let lookups = (0..n)
            .map(|_| Ok((r.u32()?, r.u32()?, r.u8()? != 0)))
            .collect::<Result<_, IntelError>>()?;
        let ips = r.seen()?;
        let n = r.u16()? as usize;
        let ns_names = (0..n)
            .map(|_| Ok((r.u64()?, r.u32()?)))
            .collect::<Result<_, IntelError>>()?;
        let ns_ips = r.seen()?;
        let h = DomainHistory {
            lookups,
            ips,
            ns_names,
            ns_ips,
            ns_min_ttl: r.u32()?,
            parked_last: r.u32()?,
            left_parking_at: r.u32()?,
            class_gen: 0,
        };
        out.push((name.into(), h));
    }
    if r.at != bytes.len() {
        return Err(snapshot_error(format!(
            "{} bytes after the last entry",
            bytes.len() - r.at
        )));
    }
    Ok(out)
}
