//! A small lock-free latency histogram with fixed log-spaced buckets (microseconds), rendered in
//! Prometheus text format in seconds.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the buckets, in microseconds (the last bucket, +Inf, is implicit).
pub const BUCKETS_US: [u64; 18] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000,
];

/// Lock-free histogram: `observe_us` is a few relaxed atomic adds, safe on the DNS path.
pub struct Histogram {
    counts: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub const fn new() -> Self {
        #[allow(clippy::declare_interior_mutable_const)]
        const Z: AtomicU64 = AtomicU64::new(0);
        Histogram {
            counts: [Z; BUCKETS_US.len() + 1],
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Record one observation of `us` microseconds.
    pub fn observe_us(&self, us: u64) {
        let i = BUCKETS_US.partition_point(|&b| b < us);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Record a `Duration`.
    pub fn observe(&self, d: std::time::Duration) {
        self.observe_us(d.as_micros().min(u64::MAX as u128) as u64);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Mean in microseconds (0 when empty).
    pub fn mean_us(&self) -> f64 {
        let n = self.count();
        if n == 0 {
            0.0
        } else {
            self.sum_us.load(Ordering::Relaxed) as f64 / n as f64
        }
    }

    /// Approximate quantile (upper bound of the bucket holding it), in microseconds.
    pub fn quantile_us(&self, q: f64) -> Option<u64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let target = ((n as f64) * q).ceil().max(1.0) as u64;
        let mut acc = 0;
        for (i, c) in self.counts.iter().enumerate() {
            acc += c.load(Ordering::Relaxed);
            if acc >= target {
                return Some(BUCKETS_US.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        None
    }

    /// Append this histogram in Prometheus text format (`name_bucket`, `_sum`, `_count`), with
    /// `# HELP` and `# TYPE` lines. `labels` is either empty or `key="value",...` without braces.
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        self.render_series(out, name, "");
    }

    /// Only the series lines (for several label sets under one `# TYPE`).
    pub fn render_series(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut acc = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            acc += c.load(Ordering::Relaxed);
            let le = match BUCKETS_US.get(i) {
                Some(b) => format_secs(*b),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {acc}");
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{braces} {}",
            format_secs_f(self.sum_us.load(Ordering::Relaxed))
        );
        // The count is the total of the buckets (consistent with +Inf even under concurrency).
        let _ = writeln!(out, "{name}_count{braces} {acc}");
    }
}

fn format_secs(us: u64) -> String {
    format_secs_f(us)
}

fn format_secs_f(us: u64) -> String {
    let s = us as f64 / 1e6;
    let mut t = format!("{s:.6}");
    while t.ends_with('0') {
        t.pop();
    }
    if t.ends_with('.') {
        t.pop();
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_render() {
        let h = Histogram::new();
        h.observe_us(40);
        h.observe_us(50);
        h.observe_us(700);
        h.observe_us(99_000_000);
        assert_eq!(h.count(), 4);
        assert_eq!(h.quantile_us(0.5), Some(50));
        let mut s = String::new();
        h.render(&mut s, "x_seconds", "test");
        assert!(s.contains("x_seconds_bucket{le=\"0.00005\"} 2\n"), "{s}");
        assert!(s.contains("x_seconds_bucket{le=\"0.001\"} 3\n"), "{s}");
        assert!(s.contains("x_seconds_bucket{le=\"+Inf\"} 4\n"), "{s}");
        assert!(s.contains("x_seconds_count 4\n"));
        assert!(s.contains("x_seconds_sum 99.00079\n"), "{s}");
    }
}
