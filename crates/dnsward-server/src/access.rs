//! Who may ask: the client ACL and the per-client token-bucket rate limit.

use ipnet::IpNet;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::Instant;

/// Client networks allowed to query. Default: loopback only, so dnsward is never an open resolver.
#[derive(Clone, Debug)]
pub struct Acl {
    allow: Vec<IpNet>,
}

impl Acl {
    pub fn new(allow: Vec<IpNet>) -> Self {
        Acl { allow }
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allow.iter().any(|n| n.contains(&ip))
    }
}

/// IPv4-mapped IPv6 clients (on a dual-stack socket) are matched as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f32,
    last_ms: u64,
}

const SHARDS: usize = 16;

/// Per-client token buckets. Over-limit queries are dropped silently (no reflection).
pub struct RateLimiter {
    per_sec: f32,
    burst: f32,
    exempt: Vec<IpNet>,
    max_clients_per_shard: usize,
    epoch: Instant,
    hasher: std::collections::hash_map::RandomState,
    shards: Vec<Mutex<HashMap<IpAddr, Bucket>>>,
}

impl RateLimiter {
    /// `per_sec` 0 disables the limit. `max_clients` bounds the memory of the bucket table.
    pub fn new(per_sec: u32, burst: u32, exempt: Vec<IpNet>, max_clients: usize) -> Self {
        RateLimiter {
            per_sec: per_sec as f32,
            burst: burst.max(1) as f32,
            exempt,
            max_clients_per_shard: (max_clients / SHARDS).max(16),
            epoch: Instant::now(),
            hasher: Default::default(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// True if the query may proceed.
    pub fn admit(&self, ip: IpAddr) -> bool {
        if self.per_sec <= 0.0 {
            return true;
        }
        let ip = canonical(ip);
        if self.exempt.iter().any(|n| n.contains(&ip)) {
            return true;
        }
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        let mut shard = self.shards[self.hasher.hash_one(ip) as usize % SHARDS].lock();
        if shard.len() >= self.max_clients_per_shard && !shard.contains_key(&ip) {
            // Forget clients whose bucket has refilled: they are idle and lose nothing.
            let (rate, burst) = (self.per_sec, self.burst);
            shard.retain(|_, b| b.tokens + (now_ms - b.last_ms) as f32 * rate / 1000.0 < burst);
            if shard.len() >= self.max_clients_per_shard {
                // Still full of active clients: a spoofed-source flood. Fail closed for newcomers.
                return false;
            }
        }
        let bucket = shard.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            last_ms: now_ms,
        });
        let refill = (now_ms - bucket.last_ms) as f32 * self.per_sec / 1000.0;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.last_ms = now_ms;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_matches_networks_and_mapped_v4() {
        let acl = Acl::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]);
        assert!(acl.allows("127.0.0.9".parse().unwrap()));
        assert!(acl.allows("::1".parse().unwrap()));
        assert!(acl.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!acl.allows("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn bucket_allows_burst_then_drops() {
        let rl = RateLimiter::new(1, 5, vec![], 1000);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let admitted = (0..20).filter(|_| rl.admit(ip)).count();
        assert_eq!(admitted, 5);
        // Another client has its own bucket.
        assert!(rl.admit("192.0.2.2".parse().unwrap()));
        let off = RateLimiter::new(0, 5, vec![], 1000);
        assert!((0..100).all(|_| off.admit(ip)));
        let exempt = RateLimiter::new(1, 1, vec!["192.0.2.0/24".parse().unwrap()], 1000);
        assert!((0..100).all(|_| exempt.admit(ip)));
    }

    #[test]
    fn bucket_table_is_bounded() {
        let rl = RateLimiter::new(1, 1, vec![], 16 * 16);
        for i in 0..10_000u32 {
            rl.admit(IpAddr::V4(i.into()));
        }
        let total: usize = rl.shards.iter().map(|s| s.lock().len()).sum();
        assert!(total <= 16 * 16, "{total}");
    }
}
