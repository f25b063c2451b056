//! `RecentBlocks`: which names the resolver recently sinkholed for which client.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{BlockInfo, BlockLookup};

type PerClient = VecDeque<(Instant, BlockInfo)>;

/// Bounded in-memory map client IP -> the last few names sinkholed for it (newest last).
///
/// Bounded two ways: at most `per_client` entries per client, and about `max_clients` clients
/// (two generations of `max_clients / 2`: when the current one fills up, the previous one is
/// dropped; a client seen again is moved into the current one). Entries older than `max_age`
/// are ignored by lookups.
pub struct RecentBlocks {
    inner: Mutex<Generations>,
    half: usize,
    per_client: usize,
    max_age: Duration,
}

#[derive(Default)]
struct Generations {
    current: HashMap<IpAddr, PerClient>,
    previous: HashMap<IpAddr, PerClient>,
}

impl Default for RecentBlocks {
    fn default() -> Self {
        Self::new(8192, 8, Duration::from_secs(3600))
    }
}

impl RecentBlocks {
    pub fn new(max_clients: usize, per_client: usize, max_age: Duration) -> Self {
        RecentBlocks {
            inner: Mutex::new(Generations::default()),
            half: (max_clients / 2).max(1),
            per_client: per_client.max(1),
            max_age,
        }
    }

    /// Remember that `info.name` was just sinkholed for `client`.
    pub fn record(&self, client: IpAddr, info: BlockInfo) {
        self.record_at(client, info, Instant::now());
    }

    fn record_at(&self, client: IpAddr, mut info: BlockInfo, at: Instant) {
        let client = client.to_canonical();
        info.name = normalize_name(&info.name);
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let list = if g.current.contains_key(&client) {
            g.current.get_mut(&client)
        } else {
            let moved = g.previous.remove(&client).unwrap_or_default();
            if g.current.len() >= self.half {
                g.previous = std::mem::take(&mut g.current);
            }
            g.current.insert(client, moved);
            g.current.get_mut(&client)
        }
        .expect("just inserted");
        // The same name again: move it to the back instead of storing it twice.
        list.retain(|(_, b)| b.name != info.name);
        list.push_back((at, info));
        while list.len() > self.per_client {
            list.pop_front();
        }
    }

    /// Number of clients currently remembered (both generations).
    pub fn len(&self) -> usize {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.current.len() + g.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lookup_at(&self, client: IpAddr, host: Option<&str>, now: Instant) -> Option<BlockInfo> {
        let client = client.to_canonical();
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let list = g.current.get(&client).or_else(|| g.previous.get(&client))?;
        let fresh = |t: &Instant| now.saturating_duration_since(*t) <= self.max_age;
        if let Some(host) = host.map(normalize_name).filter(|h| !h.is_empty()) {
            // Exact name first, then the Host being under a blocked name (or the reverse), newest first.
            if let Some((_, b)) = list.iter().rev().find(|(t, b)| fresh(t) && b.name == host) {
                return Some(b.clone());
            }
            if let Some((_, b)) = list
                .iter()
                .rev()
                .find(|(t, b)| fresh(t) && (is_under(&host, &b.name) || is_under(&b.name, &host)))
            {
                return Some(b.clone());
            }
        }
        list.iter()
            .rev()
            .find(|(t, _)| fresh(t))
            .map(|(_, b)| b.clone())
    }
}

impl BlockLookup for RecentBlocks {
    fn lookup(&self, client: IpAddr, host: Option<&str>) -> Option<BlockInfo> {
        self.lookup_at(client, host, Instant::now())
    }
}

/// Lower case, no trailing dot.
pub(crate) fn normalize_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// `child` is a proper subdomain of `parent`.
fn is_under(child: &str, parent: &str) -> bool {
    !parent.is_empty()
        && child.len() > parent.len() + 1
        && child.ends_with(parent)
        && child.as_bytes()[child.len() - parent.len() - 1] == b'.'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str) -> BlockInfo {
        BlockInfo {
            name: name.into(),
            category: "dga".into(),
            reason: format!("because {name}"),
        }
    }

    #[test]
    fn prefers_host_match_else_newest() {
        let r = RecentBlocks::default();
        let c: IpAddr = "10.0.0.5".parse().unwrap();
        r.record(c, info("a.evil.example"));
        r.record(c, info("B.Evil.Example."));
        assert_eq!(r.lookup(c, None).unwrap().name, "b.evil.example");
        assert_eq!(
            r.lookup(c, Some("A.evil.example.")).unwrap().name,
            "a.evil.example"
        );
        assert_eq!(
            r.lookup(c, Some("www.a.evil.example")).unwrap().name,
            "a.evil.example"
        );
        assert_eq!(
            r.lookup(c, Some("unrelated.example")).unwrap().name,
            "b.evil.example"
        );
        assert!(r.lookup("10.0.0.6".parse().unwrap(), None).is_none());
        // IPv4-mapped IPv6 is the same client.
        assert!(r.lookup("::ffff:10.0.0.5".parse().unwrap(), None).is_some());
    }

    #[test]
    fn bounded_and_expiring() {
        let r = RecentBlocks::new(4, 2, Duration::from_secs(10));
        let c: IpAddr = "10.0.0.1".parse().unwrap();
        for n in ["x.example", "y.example", "z.example"] {
            r.record(c, info(n));
        }
        assert!(r.lookup(c, Some("x.example")).unwrap().name != "x.example");
        for i in 0..100u8 {
            r.record(IpAddr::from([10, 1, 0, i]), info("q.example"));
        }
        assert!(r.len() <= 4);
        let now = Instant::now();
        r.record_at(c, info("old.example"), now - Duration::from_secs(60));
        assert!(r.lookup_at(c, Some("old.example"), now).is_none());
    }
}
