//! Feature extraction: the Rust twin of `models/train/features.py`.
//!
//! Both sides must agree exactly on n-gram ids and TLD ids and, to f32 rounding, on the dense
//! features; `tests/parity.rs` checks this against a fixture written by the training pipeline.

/// Version of the feature spec; must equal the model's `dnsward.feature_version` metadata.
pub const FEATURE_VERSION: u32 = 3;
pub const BUCKETS: u64 = 1 << 17;
pub const TLD_BUCKETS: u64 = 4096;
pub const NGRAM_MIN: usize = 1;
pub const NGRAM_MAX: usize = 5;
pub const MAX_LABEL: usize = 63;
/// Shape n-grams (feature version 3): n = SHAPE_MIN..=SHAPE_MAX over the boundary-marked shape.
pub const SHAPE_MIN: usize = 3;
pub const SHAPE_MAX: usize = 6;
/// Maximum number of n-gram ids for one label: character n-grams of the `MAX_LABEL + 2`
/// boundary-marked bytes (n = 1..=5: 315), shape n-grams (n = 3..=6: 246) and the whole shape.
pub const MAX_IDS: usize = 315 + 246 + 1;
/// Character-statistics features followed by [`N_WORD_DENSE`] word-structure features.
pub const N_DENSE: usize = N_DENSE_BASE + N_WORD_DENSE;
pub const N_DENSE_BASE: usize = 10;
pub const N_WORD_DENSE: usize = 5;
/// Dictionary words are `MIN_WORD..=MAX_WORD` bytes long.
pub const MIN_WORD: usize = 3;
pub const MAX_WORD: usize = 20;
/// Maximum number of words in one segmented label.
pub const MAX_WORDS: usize = MAX_LABEL / MIN_WORD;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

#[inline]
pub fn fnv1a64(data: &[u8]) -> u64 {
    fnv1a64_from(FNV_OFFSET, data)
}

/// Features of one registrable domain, split as `label` (left of the public suffix) and `suffix`.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    /// Hashed character n-gram ids (1..BUCKETS), in n-then-position order; never padded.
    pub ids: Vec<i64>,
    /// Dictionary ids (1-based line numbers of the model's word list) of the label's segmentation.
    pub word_ids: Vec<i64>,
    pub tld: i64,
    pub dense: [f32; N_DENSE],
}

impl Features {
    /// Empty buffers sized for the longest label (no reallocation in [`features_into`]).
    pub fn with_capacity() -> Features {
        Features {
            ids: Vec::with_capacity(MAX_IDS),
            word_ids: Vec::with_capacity(MAX_WORDS),
            tld: 0,
            dense: [0.0; N_DENSE],
        }
    }
}

#[derive(Clone, Copy, Default)]
struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The segmentation dictionary (`dnsward.words` metadata of the model): for every dictionary word
/// and every proper prefix of one, keyed by the FNV-1a 64 hash of its bytes, whether it is a
/// prefix (bit 1), a word (bit 2), and the word id.
#[derive(Clone, Debug, Default)]
pub struct Words {
    map: std::collections::HashMap<u64, (u8, u32), std::hash::BuildHasherDefault<IdentityHasher>>,
    len: usize,
}

impl Words {
    /// Builds the dictionary from one word per line (id = line number + 1). Words must be
    /// lowercase ASCII, `MIN_WORD..=MAX_WORD` bytes, unique.
    pub fn from_lines(text: &str) -> Result<Words, String> {
        let mut w = Words::default();
        for (i, word) in text.split('\n').enumerate() {
            let b = word.as_bytes();
            if b.len() < MIN_WORD || b.len() > MAX_WORD || !b.iter().all(|c| c.is_ascii_lowercase())
            {
                return Err(format!("bad dictionary word {word:?} on line {}", i + 1));
            }
            let mut h = FNV_OFFSET;
            for (k, &c) in b.iter().enumerate() {
                h ^= c as u64;
                h = h.wrapping_mul(FNV_PRIME);
                let e = w.map.entry(h).or_insert((0, 0));
                if k + 1 < b.len() {
                    e.0 |= 1;
                } else {
                    if e.0 & 2 != 0 {
                        return Err(format!("duplicate dictionary word {word:?}"));
                    }
                    e.0 |= 2;
                    e.1 = (i + 1) as u32;
                }
            }
            w.len += 1;
        }
        Ok(w)
    }

    /// Number of words.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Best cover of the label by dictionary words (see `segment()` in features.py): most covered
    /// bytes, then fewest words; ties go to the first candidate found. Appends the word ids in
    /// label order to `ids` (cleared first) and returns the word-structure features.
    pub fn segment_into(&self, label: &str, ids: &mut Vec<i64>) -> [f32; N_WORD_DENSE] {
        ids.clear();
        let s = label_bytes(label);
        let n = s.len();
        if n == 0 {
            return [0.0; N_WORD_DENSE];
        }
        // starts[i][..cnt[i]]: starts j (ascending) of dictionary words s[j..i]; word id alongside.
        let mut starts = [[(0u8, 0u32); MAX_WORD]; MAX_LABEL + 1];
        let mut cnt = [0u8; MAX_LABEL + 1];
        for j in 0..n {
            let mut h = FNV_OFFSET;
            for i in j + 1..=n.min(j + MAX_WORD) {
                h ^= s[i - 1] as u64;
                h = h.wrapping_mul(FNV_PRIME);
                let Some(&(flags, id)) = self.map.get(&h) else {
                    break;
                };
                if flags & 2 != 0 && i - j >= MIN_WORD {
                    starts[i][cnt[i] as usize] = (j as u8, id);
                    cnt[i] += 1;
                }
                if flags & 1 == 0 {
                    break;
                }
            }
        }
        let mut cov = [0u16; MAX_LABEL + 1];
        let mut nw = [0u16; MAX_LABEL + 1];
        // back[i] = (start + 1, id) of the word ending at i, or (0, 0) for a gap byte.
        let mut back = [(0u8, 0u32); MAX_LABEL + 1];
        for i in 1..=n {
            let (mut bc, mut bn, mut bb) = (cov[i - 1], nw[i - 1], (0u8, 0u32));
            for &(j, id) in &starts[i][..cnt[i] as usize] {
                let j = j as usize;
                let c = cov[j] + (i - j) as u16;
                let k = nw[j] + 1;
                if c > bc || (c == bc && k < bn) {
                    bc = c;
                    bn = k;
                    bb = (j as u8 + 1, id);
                }
            }
            cov[i] = bc;
            nw[i] = bn;
            back[i] = bb;
        }
        let mut longest = 0usize;
        let mut i = n;
        while i > 0 {
            let (j1, id) = back[i];
            if j1 == 0 {
                i -= 1;
            } else {
                let j = j1 as usize - 1;
                ids.push(id as i64);
                longest = longest.max(i - j);
                i = j;
            }
        }
        ids.reverse();
        let nf = n as f64;
        let c = cov[n] as f64;
        let k = ids.len();
        [
            (c / nf) as f32,
            (k as f64 / 4.0) as f32,
            (longest as f64 / nf) as f32,
            if k > 0 {
                (c / k as f64 / 10.0) as f32
            } else {
                0.0
            },
            if cov[n] as usize == n { 1.0 } else { 0.0 },
        ]
    }
}

fn label_bytes(label: &str) -> &[u8] {
    let b = label.as_bytes();
    &b[..b.len().min(MAX_LABEL)]
}

/// Letter class of each byte for the shape n-grams: vowels `v`, `y` itself, other letters `c`,
/// digits `d`, hyphen `h` (anything else `c`, as in features.py).
const fn shape_table() -> [u8; 256] {
    let mut t = [b'c'; 256];
    let mut c = b'0';
    while c <= b'9' {
        t[c as usize] = b'd';
        c += 1;
    }
    t[b'a' as usize] = b'v';
    t[b'e' as usize] = b'v';
    t[b'i' as usize] = b'v';
    t[b'o' as usize] = b'v';
    t[b'u' as usize] = b'v';
    t[b'y' as usize] = b'y';
    t[b'-' as usize] = b'h';
    t
}
static SHAPE: [u8; 256] = shape_table();

#[inline]
fn bucket(h: u64) -> i64 {
    1 + (h % (BUCKETS - 1)) as i64
}

/// FNV-1a continued from state `h`.
#[inline]
const fn fnv1a64_from(mut h: u64, data: &[u8]) -> u64 {
    let mut i = 0;
    while i < data.len() {
        h ^= data[i] as u64;
        h = h.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    h
}

/// FNV-1a states after the one-byte prefixes that keep shape n-grams (`\x01`) and the whole
/// shape (`\x02`) apart from character n-grams in the shared table.
const SHAPE_GRAM_SEED: u64 = fnv1a64_from(FNV_OFFSET, b"\x01");
const WHOLE_SHAPE_SEED: u64 = fnv1a64_from(FNV_OFFSET, b"\x02");

/// Appends the bucketed FNV-1a hashes (continued from `seed`) of every `n`-byte window of `s`,
/// `n = nmin..=nmax` (`nmax <= 6`), in n-then-position order. The window hashes are built as
/// prefix chains, one per start position (FNV-1a of `s[j..j+n]` continues that of
/// `s[j..j+n-1]`), so each byte is hashed once per start instead of once per window.
fn push_window_hashes(s: &[u8], seed: u64, nmin: usize, nmax: usize, out: &mut Vec<i64>) {
    let len = s.len();
    // chains[n - 1][j]: hash of s[j..j + n]
    let mut chains = [[0u64; MAX_LABEL + 2]; 6];
    for j in 0..len {
        let mut h = seed;
        for (n, &b) in s[j..len.min(j + nmax)].iter().enumerate() {
            h ^= b as u64;
            h = h.wrapping_mul(FNV_PRIME);
            chains[n][j] = h;
        }
    }
    for n in nmin..=nmax.min(len) {
        out.extend(chains[n - 1][..=len - n].iter().map(|&h| bucket(h)));
    }
}

/// Appends the n-gram ids of `label` to `out` (cleared first): character n-grams, then (feature
/// version 3) shape n-grams and the whole shape, as `ngram_ids` in features.py.
pub fn ngram_ids_into(label: &str, out: &mut Vec<i64>) {
    out.clear();
    let lb = label_bytes(label);
    let mut s = [0u8; MAX_LABEL + 2];
    s[0] = b'<';
    s[1..=lb.len()].copy_from_slice(lb);
    s[lb.len() + 1] = b'>';
    let s = &s[..lb.len() + 2];
    push_window_hashes(s, FNV_OFFSET, NGRAM_MIN, NGRAM_MAX, out);
    // Shape: the boundary marks stay, every label byte becomes its class.
    let mut t = [0u8; MAX_LABEL + 2];
    t[..s.len()].copy_from_slice(s);
    for c in &mut t[1..=lb.len()] {
        *c = SHAPE[*c as usize];
    }
    let t = &t[..s.len()];
    push_window_hashes(t, SHAPE_GRAM_SEED, SHAPE_MIN, SHAPE_MAX, out);
    out.push(bucket(fnv1a64_from(WHOLE_SHAPE_SEED, &t[1..t.len() - 1])));
}

pub fn tld_id(suffix: &str) -> i64 {
    (fnv1a64(suffix.as_bytes()) % TLD_BUCKETS) as i64
}

#[inline]
fn is_vowel(c: u8) -> bool {
    matches!(c, b'a' | b'e' | b'i' | b'o' | b'u')
}

/// The ten character-statistics features (the first part of `Features::dense`).
pub fn base_dense_features(label: &str, suffix: &str) -> [f32; N_DENSE_BASE] {
    let b = label_bytes(label);
    let n = b.len();
    if n == 0 {
        return [0.0; N_DENSE_BASE];
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

/// All features of a registrable domain (`label` left of the public suffix `suffix`).
pub fn features(label: &str, suffix: &str, words: &Words) -> Features {
    let mut f = Features::with_capacity();
    features_into(label, suffix, words, &mut f);
    f
}

/// [`features`] written into `out`, reusing its buffers: the per-name path keeps one
/// `Features` per thread instead of allocating ~4.5 KB of id vectors for every name.
pub fn features_into(label: &str, suffix: &str, words: &Words, out: &mut Features) {
    ngram_ids_into(label, &mut out.ids);
    let wd = words.segment_into(label, &mut out.word_ids);
    let base = base_dense_features(label, suffix);
    out.dense[..N_DENSE_BASE].copy_from_slice(&base);
    out.dense[N_DENSE_BASE..].copy_from_slice(&wd);
    out.tld = tld_id(suffix);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }

    /// The prefix-chain hashing gives the same ids, in the same order, as hashing every
    /// window on its own (the definition features.py follows).
    #[test]
    fn window_hashes_match_per_window_hashing() {
        for label in [
            "",
            "a",
            "ab",
            "xjw3kqpz0a",
            "pretty-school",
            &"q9".repeat(40),
        ] {
            let lb = label_bytes(label);
            let mut s = vec![b'<'];
            s.extend_from_slice(lb);
            s.push(b'>');
            for (seed, nmin, nmax) in [(FNV_OFFSET, 1, 5), (SHAPE_GRAM_SEED, 3, 6)] {
                let mut fast = Vec::new();
                push_window_hashes(&s, seed, nmin, nmax, &mut fast);
                let mut slow = Vec::new();
                for n in nmin..=nmax {
                    if n <= s.len() {
                        slow.extend(s.windows(n).map(|w| bucket(fnv1a64_from(seed, w))));
                    }
                }
                assert_eq!(fast, slow, "{label:?} {nmin}..={nmax}");
            }
        }
    }

    #[test]
    fn id_counts() {
        let words = Words::from_lines("pretty\nschool\nabc").unwrap();
        let f = features("abc", "com", &words);
        assert_eq!(f.word_ids, vec![3]);
        let mut ids = Vec::new();
        let d = words.segment_into("prettyschool", &mut ids);
        assert_eq!(ids, vec![1, 2]);
        assert_eq!(d, [1.0, 0.5, 0.5, 0.6, 1.0]);
        words.segment_into("xprettyq", &mut ids);
        assert_eq!(ids, vec![1]);
        // s = "<abc>" (5 bytes): 5 + 4 + 3 + 2 + 1 n-grams; shape "<vcc>": 3 + 2 + 1 + 1 whole
        assert_eq!(f.ids.len(), 15 + 7);
        assert!(f.ids.iter().all(|&i| i >= 1 && (i as u64) < BUCKETS));
        let long = "a".repeat(100);
        assert_eq!(features(&long, "com", &words).ids.len(), MAX_IDS);
    }
}
