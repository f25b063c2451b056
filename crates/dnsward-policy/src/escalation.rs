//! Per-client escalation: a client that has just had several distinct names blocked by a name
//! classifier is probably infected, and its other generated names are the ones worth catching,
//! so for a while its names are judged at the classifier's looser *escalated* threshold.
//!
//! Why: the DGA model's default threshold is set for a false-positive rate of 1e-4 on benign
//! names, where it blocks about 59 % of held-out DGA lookups; at FPR 1e-3 it blocks about 84 %.
//! Judging every client at 1e-3 would cost ten times the false blocks; judging only the clients
//! that have already shown DGA lookups costs them little (a clean client needs thousands of
//! distinct names to collect three false blocks) and catches most of an infected host's lookups
//! (models/README.md, "Per-client escalation").
//!
//! Only blocks at the default threshold count as strikes (escalated blocks never extend the
//! escalation), each distinct name once, within a sliding window. The table of clients is
//! bounded; when it is full, new clients are not tracked until old entries expire.
//!
//! Every query asks [`ClientEscalation::is_escalated`], so that read is lock-free: the escalated
//! clients are published as an immutable map (swapped on the rare writes: a client escalated or
//! its hold extended); strikes are counted under a mutex, only when a name is blocked.

use arc_swap::ArcSwap;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The escalation rule.
#[derive(Clone, Debug, PartialEq)]
pub struct EscalationParams {
    /// Distinct names blocked by a name classifier (at its default threshold) that escalate a client…
    pub after: usize,
    /// …within this window.
    pub window: Duration,
    /// How long a client stays escalated after its latest strike.
    pub hold: Duration,
    /// Clients never escalated (NAT gateways, resolvers forwarding for many hosts).
    pub exempt: Vec<IpNet>,
    /// Most clients tracked at once.
    pub max_clients: usize,
}

#[derive(Default)]
struct ClientState {
    /// (blocked name, when it was blocked), oldest first; at most `after` entries.
    strikes: VecDeque<(Box<str>, Instant)>,
    escalated_until: Option<Instant>,
}

/// What [`ClientEscalation::record_strike`] changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strike {
    /// Counted (or already counted for this name); the client is not escalated.
    Counted,
    /// This strike escalated the client.
    Escalated,
    /// The client was already escalated; the hold was extended.
    Extended,
    /// Not tracked: exempt client, or the table is full.
    Ignored,
}

const SNAPSHOT_VERSION: u32 = 1;

/// [`ClientEscalation::snapshot`]'s JSON: per client, the seconds of escalation left and its
/// strikes with their age in seconds.
#[derive(Debug, Serialize, Deserialize)]
pub struct EscalationSnapshot {
    pub version: u32,
    pub clients: Vec<SavedClient>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SavedClient {
    pub client: IpAddr,
    pub escalated_secs_left: u64,
    pub strikes: Vec<SavedStrike>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SavedStrike {
    pub name: String,
    pub secs_ago: u64,
}

/// Escalation state of every client seen blocking, shared by all workers and kept across reloads.
pub struct ClientEscalation {
    params: EscalationParams,
    clients: Mutex<HashMap<IpAddr, ClientState>>,
    /// Escalated clients and until when, published for the lock-free read path. May still hold
    /// expired entries until the next write; readers compare the time.
    escalated: ArcSwap<HashMap<IpAddr, Instant>>,
    /// Entries in `escalated`: while 0 (the normal case) a query costs one relaxed load.
    published: AtomicUsize,
}

impl ClientEscalation {
    pub fn new(params: EscalationParams) -> Self {
        ClientEscalation {
            params,
            clients: Mutex::new(HashMap::new()),
            escalated: ArcSwap::from_pointee(HashMap::new()),
            published: AtomicUsize::new(0),
        }
    }

    pub fn params(&self) -> &EscalationParams {
        &self.params
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, ClientState>> {
        // A panic while holding the lock cannot leave the map inconsistent in a harmful way.
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `name` was blocked for `client` by a name classifier at its default threshold.
    pub fn record_strike(&self, client: IpAddr, name: &str, now: Instant) -> Strike {
        if self.params.exempt.iter().any(|n| n.contains(&client)) {
            return Strike::Ignored;
        }
        let mut clients = self.lock();
        if !clients.contains_key(&client) && clients.len() >= self.params.max_clients {
            self.sweep(&mut clients, now);
            if clients.len() >= self.params.max_clients {
                return Strike::Ignored;
            }
        }
        let state = clients.entry(client).or_default();
        let window = self.params.window;
        while state
            .strikes
            .front()
            .is_some_and(|(_, t)| now.saturating_duration_since(*t) > window)
        {
            state.strikes.pop_front();
        }
        if state.strikes.iter().any(|(n, _)| &**n == name) {
            return Strike::Counted;
        }
        if state.strikes.len() >= self.params.after.max(1) {
            state.strikes.pop_front();
        }
        state.strikes.push_back((name.into(), now));
        let strike = if state.escalated_until.is_some_and(|t| t > now) {
            Strike::Extended
        } else if state.strikes.len() >= self.params.after {
            Strike::Escalated
        } else {
            return Strike::Counted;
        };
        state.escalated_until = Some(now + self.params.hold);
        self.publish(&clients, now);
        strike
    }

    /// Whether any client may be escalated (one relaxed load): lets callers skip reading the clock.
    pub fn any_escalated(&self) -> bool {
        self.published.load(Ordering::Relaxed) != 0
    }

    /// Whether `client`'s names are judged at the escalated thresholds now. Lock-free.
    pub fn is_escalated(&self, client: IpAddr, now: Instant) -> bool {
        if self.published.load(Ordering::Relaxed) == 0 {
            return false;
        }
        self.escalated.load().get(&client).is_some_and(|&t| t > now)
    }

    fn publish(&self, clients: &HashMap<IpAddr, ClientState>, now: Instant) {
        let map: HashMap<IpAddr, Instant> = clients
            .iter()
            .filter_map(|(ip, s)| s.escalated_until.filter(|&t| t > now).map(|t| (*ip, t)))
            .collect();
        self.published.store(map.len(), Ordering::Relaxed);
        self.escalated.store(Arc::new(map));
    }

    /// Clients escalated now, with the time left.
    pub fn escalated_clients(&self, now: Instant) -> Vec<(IpAddr, Duration)> {
        let clients = self.lock();
        let mut out: Vec<_> = clients
            .iter()
            .filter_map(|(ip, s)| {
                s.escalated_until
                    .filter(|&t| t > now)
                    .map(|t| (*ip, t - now))
            })
            .collect();
        out.sort();
        out
    }

    /// The tracked clients as JSON (format [`EscalationSnapshot`]), times relative to `now`, so
    /// a restarted resolver can take them up with [`Self::restore`].
    pub fn snapshot(&self, now: Instant) -> Vec<u8> {
        let clients = self.lock();
        let mut out = EscalationSnapshot {
            version: SNAPSHOT_VERSION,
            clients: clients
                .iter()
                .map(|(ip, s)| SavedClient {
                    client: *ip,
                    escalated_secs_left: s
                        .escalated_until
                        .map_or(0, |t| t.saturating_duration_since(now).as_secs()),
                    strikes: s
                        .strikes
                        .iter()
                        .map(|(name, t)| SavedStrike {
                            name: name.to_string(),
                            secs_ago: now.saturating_duration_since(*t).as_secs(),
                        })
                        .collect(),
                })
                .filter(|c| c.escalated_secs_left > 0 || !c.strikes.is_empty())
                .collect(),
        };
        out.clients.sort_by_key(|c| c.client);
        serde_json::to_vec(&out).unwrap_or_default()
    }

    /// Takes up the clients of a [`Self::snapshot`] taken `downtime` before `now` (the time the
    /// resolver was down counts against the hold and the window). Clients now exempt, expired,
    /// or beyond `max_clients` are left out. Returns the clients now escalated. A snapshot that
    /// does not parse is an error and changes nothing.
    pub fn restore(&self, bytes: &[u8], now: Instant, downtime: Duration) -> Result<usize, String> {
        let snap: EscalationSnapshot =
            serde_json::from_slice(bytes).map_err(|e| format!("escalation snapshot: {e}"))?;
        if snap.version != SNAPSHOT_VERSION {
            return Err(format!(
                "escalation snapshot: version {} (this build reads version {SNAPSHOT_VERSION})",
                snap.version
            ));
        }
        let mut clients = self.lock();
        for c in snap.clients {
            if self.params.exempt.iter().any(|n| n.contains(&c.client))
                || (!clients.contains_key(&c.client) && clients.len() >= self.params.max_clients)
            {
                continue;
            }
            let left = Duration::from_secs(c.escalated_secs_left).saturating_sub(downtime);
            let mut strikes: VecDeque<(Box<str>, Instant)> = c
                .strikes
                .into_iter()
                .filter_map(|s| {
                    let ago = Duration::from_secs(s.secs_ago).saturating_add(downtime);
                    (ago <= self.params.window)
                        .then(|| now.checked_sub(ago))
                        .flatten()
                        .map(|t| (s.name.into_boxed_str(), t))
                })
                .collect();
            strikes.make_contiguous().sort_by_key(|s| s.1);
            while strikes.len() > self.params.after.max(1) {
                strikes.pop_front();
            }
            let escalated_until = (!left.is_zero()).then(|| now + left.min(self.params.hold));
            if escalated_until.is_none() && strikes.is_empty() {
                continue;
            }
            clients.insert(
                c.client,
                ClientState {
                    strikes,
                    escalated_until,
                },
            );
        }
        self.publish(&clients, now);
        Ok(self.published.load(Ordering::Relaxed))
    }

    /// Drops clients with no live strike and no live escalation.
    fn sweep(&self, clients: &mut HashMap<IpAddr, ClientState>, now: Instant) {
        let window = self.params.window;
        clients.retain(|_, s| {
            s.escalated_until.is_some_and(|t| t > now)
                || s.strikes
                    .back()
                    .is_some_and(|(_, t)| now.saturating_duration_since(*t) <= window)
        });
        self.publish(clients, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(after: usize, max_clients: usize) -> ClientEscalation {
        ClientEscalation::new(EscalationParams {
            after,
            window: Duration::from_secs(60),
            hold: Duration::from_secs(600),
            exempt: vec!["192.0.2.0/24".parse().unwrap()],
            max_clients,
        })
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn three_distinct_names_escalate_only_that_client() {
        let e = esc(3, 100);
        let t = Instant::now();
        assert!(!e.is_escalated(A, t));
        assert_eq!(e.record_strike(A, "a.example", t), Strike::Counted);
        // The same name again is not a second strike.
        assert_eq!(e.record_strike(A, "a.example", t), Strike::Counted);
        assert_eq!(e.record_strike(A, "b.example", t), Strike::Counted);
        assert!(!e.is_escalated(A, t));
        assert_eq!(e.record_strike(A, "c.example", t), Strike::Escalated);
        assert!(e.is_escalated(A, t));
        assert!(!e.is_escalated(B, t));
        assert_eq!(e.escalated_clients(t).len(), 1);
    }

    #[test]
    fn strikes_outside_the_window_do_not_count() {
        let e = esc(3, 100);
        let t = Instant::now();
        e.record_strike(A, "a.example", t);
        e.record_strike(A, "b.example", t + Duration::from_secs(30));
        assert_eq!(
            e.record_strike(A, "c.example", t + Duration::from_secs(61)),
            Strike::Counted,
            "the first strike fell out of the 60 s window"
        );
        assert_eq!(
            e.record_strike(A, "d.example", t + Duration::from_secs(62)),
            Strike::Escalated
        );
    }

    #[test]
    fn escalation_expires_after_the_hold_and_strikes_extend_it() {
        let e = esc(2, 100);
        let t = Instant::now();
        e.record_strike(A, "a.example", t);
        assert_eq!(e.record_strike(A, "b.example", t), Strike::Escalated);
        let later = t + Duration::from_secs(500);
        assert_eq!(e.record_strike(A, "c.example", later), Strike::Extended);
        assert!(e.is_escalated(A, t + Duration::from_secs(1000)));
        assert!(!e.is_escalated(A, later + Duration::from_secs(601)));
        assert!(e
            .escalated_clients(later + Duration::from_secs(601))
            .is_empty());
    }

    #[test]
    fn exempt_clients_and_a_full_table_are_not_tracked() {
        let e = esc(1, 1);
        let t = Instant::now();
        let nat: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(e.record_strike(nat, "a.example", t), Strike::Ignored);
        assert!(!e.is_escalated(nat, t));
        assert_eq!(e.record_strike(A, "a.example", t), Strike::Escalated);
        // Full (one client, still escalated): B is not tracked.
        assert_eq!(e.record_strike(B, "a.example", t), Strike::Ignored);
        // Once A's escalation and strikes have expired, the sweep makes room.
        let later = t + Duration::from_secs(700);
        assert_eq!(e.record_strike(B, "a.example", later), Strike::Escalated);
        assert!(!e.is_escalated(A, later));
        assert!(e.is_escalated(B, later));
    }

    #[test]
    fn a_snapshot_carries_escalations_and_strikes_minus_the_downtime() {
        let before = esc(2, 100);
        let t = Instant::now();
        before.record_strike(A, "a.example", t);
        assert_eq!(before.record_strike(A, "b.example", t), Strike::Escalated);
        before.record_strike(B, "c.example", t);
        let bytes = before.snapshot(t + Duration::from_secs(10));

        // Back up 100 s later: A has 600 - 10 - 100 s left, B's strike is 110 s old, outside
        // the 60 s window.
        let after = esc(2, 100);
        let now = Instant::now();
        assert_eq!(after.restore(&bytes, now, Duration::from_secs(100)), Ok(1));
        assert!(after.is_escalated(A, now));
        let left = after.escalated_clients(now)[0].1.as_secs();
        assert!((489..=490).contains(&left), "{left}");
        assert!(!after.is_escalated(A, now + Duration::from_secs(491)));
        assert!(!after.is_escalated(B, now));
        assert_eq!(after.record_strike(B, "d.example", now), Strike::Counted);

        // Within the window, B's strike still counts toward escalation.
        let soon = esc(2, 100);
        assert_eq!(soon.restore(&bytes, now, Duration::from_secs(5)), Ok(1));
        assert_eq!(soon.record_strike(B, "d.example", now), Strike::Escalated);

        // Down longer than the hold: nothing left.
        let late = esc(2, 100);
        assert_eq!(late.restore(&bytes, now, Duration::from_secs(700)), Ok(0));
        assert!(late.escalated_clients(now).is_empty());
        assert_eq!(late.record_strike(A, "e.example", now), Strike::Counted);
    }

    #[test]
    fn a_bad_or_exempt_snapshot_changes_nothing() {
        let e = esc(2, 100);
        let now = Instant::now();
        for bad in [&b""[..], b"{", b"[]", br#"{"version":2,"clients":[]}"#] {
            assert!(e.restore(bad, now, Duration::ZERO).is_err(), "{bad:?}");
        }
        let nat = br#"{"version":1,"clients":[{"client":"192.0.2.7","escalated_secs_left":300,"strikes":[]}]}"#;
        assert_eq!(e.restore(nat, now, Duration::ZERO), Ok(0));
        assert!(e.escalated_clients(now).is_empty());
        assert!(!e.any_escalated());
    }
}
