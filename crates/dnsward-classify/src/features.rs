//! Feature extraction: the Rust twin of `models/train/features.py`.
//!
//! Both sides must agree exactly on n-gram ids and TLD ids and, to f32 rounding, on the dense
//! features; `tests/parity.rs` checks this against a fixture written by the training pipeline.

/// Version of the feature spec; must equal the model's `dnsward.feature_version` metadata.
pub const FEATURE_VERSION: u32 = 1;
pub const BUCKETS: u64 = 1 << 17;
pub const TLD_BUCKETS: u64 = 4096;
pub const NGRAM_MIN: usize = 1;
pub const NGRAM_MAX: usize = 5;
pub const MAX_LABEL: usize = 63;
/// Maximum number of n-gram ids for one label (`MAX_LABEL + 2` boundary-marked bytes, n = 1..=5).
pub const MAX_IDS: usize = 315;
pub const N_DENSE: usize = 10;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

#[inline]
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// Features of one registrable domain, split as `label` (left of the public suffix) and `suffix`.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    /// Hashed character n-gram ids (1..BUCKETS), in n-then-position order; never padded.
    pub ids: Vec<i64>,
    pub tld: i64,
    pub dense: [f32; N_DENSE],
}

fn label_bytes(label: &str) -> &[u8] {
    let b = label.as_bytes();
    &b[..b.len().min(MAX_LABEL)]
}

/// Appends the n-gram ids of `label` to `out` (cleared first).
pub fn ngram_ids_into(label: &str, out: &mut Vec<i64>) {
    out.clear();
    let lb = label_bytes(label);
    let mut s = [0u8; MAX_LABEL + 2];
    s[0] = b'<';
    s[1..=lb.len()].copy_from_slice(lb);
    s[lb.len() + 1] = b'>';
    let s = &s[..lb.len() + 2];
    for n in NGRAM_MIN..=NGRAM_MAX {
        if n > s.len() {
            break;
        }
        for w in s.windows(n) {
            out.push(1 + (fnv1a64(w) % (BUCKETS - 1)) as i64);
        }
    }
}

pub fn tld_id(suffix: &str) -> i64 {
    (fnv1a64(suffix.as_bytes()) % TLD_BUCKETS) as i64
}

#[inline]
fn is_vowel(c: u8) -> bool {
    matches!(c, b'a' | b'e' | b'i' | b'o' | b'u')
}

pub fn dense_features(label: &str, suffix: &str) -> [f32; N_DENSE] {
    let b = label_bytes(label);
    let n = b.len();
    if n == 0 {
        return [0.0; N_DENSE];
    }
    let nf = n as f64;
    let mut counts = [0u32; 256];
    let (mut digits, mut hyphens, mut letters, mut vowels) = (0usize, 0usize, 0usize, 0usize);
    let (mut max_cons, mut cur_cons, mut max_dig, mut cur_dig) = (0usize, 0usize, 0usize, 0usize);
    let mut switches = 0usize;
    let mut prev_kind: i32 = -1;
    for &c in b {
        counts[c as usize] += 1;
        let is_letter = c.is_ascii_lowercase();
        let is_digit = c.is_ascii_digit();
        digits += is_digit as usize;
        hyphens += (c == b'-') as usize;
        letters += is_letter as usize;
        vowels += is_vowel(c) as usize;
        if is_letter && !is_vowel(c) {
            cur_cons += 1;
            max_cons = max_cons.max(cur_cons);
        } else {
            cur_cons = 0;
        }
        if is_digit {
            cur_dig += 1;
            max_dig = max_dig.max(cur_dig);
        } else {
            cur_dig = 0;
        }
        let kind = if is_letter {
            0
        } else if is_digit {
            1
        } else {
            2
        };
        if prev_kind >= 0 && kind != prev_kind {
            switches += 1;
        }
        prev_kind = kind;
    }
    let mut ent = 0.0f64;
    let mut distinct = 0usize;
    for &c in counts.iter() {
        if c > 0 {
            distinct += 1;
            let p = c as f64 / nf;
            ent -= p * p.log2();
        }
    }
    [
        (nf / 20.0) as f32,
        (digits as f64 / nf) as f32,
        (hyphens as f64 / nf) as f32,
        (ent / 4.0) as f32,
        if letters > 0 {
            (vowels as f64 / letters as f64) as f32
        } else {
            0.0
        },
        (max_cons as f64 / 10.0) as f32,
        (max_dig as f64 / 10.0) as f32,
        (distinct as f64 / nf) as f32,
        (switches as f64 / nf) as f32,
        (suffix.len() as f64 / 10.0) as f32,
    ]
}

pub fn features(label: &str, suffix: &str) -> Features {
    let mut ids = Vec::with_capacity(MAX_IDS);
    ngram_ids_into(label, &mut ids);
    Features {
        ids,
        tld: tld_id(suffix),
        dense: dense_features(label, suffix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn id_counts() {
        let f = features("abc", "com");
        // s = "<abc>" (5 bytes): 5 + 4 + 3 + 2 + 1 n-grams
        assert_eq!(f.ids.len(), 15);
        assert!(f.ids.iter().all(|&i| i >= 1 && (i as u64) < BUCKETS));
        let long = "a".repeat(100);
        assert_eq!(features(&long, "com").ids.len(), MAX_IDS);
    }
}
