"""Feature extraction for the dnsward DGA model.

This is the reference implementation; `crates/dnsward-classify/src/features.rs` must produce
bit-identical n-gram ids / TLD ids and (to f32 rounding) identical dense features. The parity
fixture written by train.py (`crates/dnsward-classify/tests/fixtures/parity.jsonl`) checks that.

Spec (version FEATURE_VERSION):
  * qname -> lowercase ASCII, strip surrounding whitespace and one trailing dot.
  * registrable domain by the Public Suffix List (ICANN + private sections);
    label = registrable up to its first dot, suffix = the public suffix ("co.uk").
  * label truncated to MAX_LABEL bytes; s = b"<" + label + b">".
  * n-grams of s for n in NGRAM_MIN..=NGRAM_MAX (in order n, then position);
    id = 1 + fnv1a64(gram) % (BUCKETS - 1); id 0 is padding (a zero row).
  * TLD id = fnv1a64(suffix) % TLD_BUCKETS.
  * dense features: see dense_features().
  * (version 3) shape n-grams: the label's letter-class shape (a e i o u -> v, y -> y, other
    letters -> c, digits -> d, '-' -> h, anything else -> c), t = b"<" + shape + b">", n-grams of t
    for n in SHAPE_MIN..=SHAPE_MAX hashed as fnv1a64(b"\x01" + gram), then the whole shape as
    fnv1a64(b"\x02" + shape); same id rule and table as the character n-grams, appended after them
    (so the embedding mean sees both). Simda (`vocyjet`: cvcycvc) and pitou (`ayacwaiab`) are
    defined by such patterns, which the character n-grams spread over many rare grams.
  * (version 2) word segmentation of the label against a dictionary (WORDS, stored in the model's
    `dnsward.words` metadata, one word per line, id = line number + 1): see segment(). Word ids feed
    a second embedding bag; five word-structure features are appended to the dense features.
"""
import math

import numpy as np

FEATURE_VERSION = 3
BUCKETS = 1 << 17
TLD_BUCKETS = 4096
NGRAM_MIN = 1
NGRAM_MAX = 5
MAX_LABEL = 63
SHAPE_MIN = 3
SHAPE_MAX = 6
MAX_CHAR_IDS = sum(MAX_LABEL + 2 - n + 1 for n in range(NGRAM_MIN, NGRAM_MAX + 1))  # 315
MAX_SHAPE_IDS = sum(MAX_LABEL + 2 - n + 1 for n in range(SHAPE_MIN, SHAPE_MAX + 1)) + 1  # 247
MAX_IDS = MAX_CHAR_IDS + MAX_SHAPE_IDS  # 562


def use_version(v: int):
    """Compute features of spec version `v` (2 or 3) from now on: compare.py scores models of
    either version on the same names."""
    global FEATURE_VERSION, MAX_IDS
    if v not in (2, 3):
        raise ValueError(f"feature version {v} is not supported (2, 3)")
    FEATURE_VERSION = v
    MAX_IDS = MAX_CHAR_IDS + (MAX_SHAPE_IDS if v >= 3 else 0)
N_DENSE_BASE = 10
N_WORD_DENSE = 5
N_DENSE = N_DENSE_BASE + N_WORD_DENSE
MIN_WORD = 3
MAX_WORD = 20
MAX_WORDS = MAX_LABEL // MIN_WORD  # 21

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK64 = (1 << 64) - 1

VOWELS = set(b"aeiou")


def fnv1a64(data: bytes) -> int:
    h = FNV_OFFSET
    for b in data:
        h ^= b
        h = (h * FNV_PRIME) & MASK64
    return h


def normalize(qname: str) -> str:
    q = qname.strip().lower()
    if q.endswith("."):
        q = q[:-1]
    return q


def label_bytes(label: str) -> bytes:
    b = label.encode("ascii", "replace")
    return b[:MAX_LABEL]


_SHAPE = bytes(
    ord("v") if c in b"aeiou" else ord("y") if c == ord("y") else ord("d") if 48 <= c <= 57
    else ord("h") if c == 45 else ord("c")
    for c in range(256))


def shape(label: str) -> bytes:
    return label_bytes(label).translate(_SHAPE)


def ngram_ids(label: str) -> list:
    s = b"<" + label_bytes(label) + b">"
    out = []
    for n in range(NGRAM_MIN, NGRAM_MAX + 1):
        for i in range(0, len(s) - n + 1):
            out.append(1 + fnv1a64(s[i:i + n]) % (BUCKETS - 1))
    if FEATURE_VERSION >= 3:
        sh = shape(label)
        t = b"<" + sh + b">"
        for n in range(SHAPE_MIN, SHAPE_MAX + 1):
            for i in range(0, len(t) - n + 1):
                out.append(1 + fnv1a64(b"\x01" + t[i:i + n]) % (BUCKETS - 1))
        out.append(1 + fnv1a64(b"\x02" + sh) % (BUCKETS - 1))
    return out


def ngram_ids_batch(labels):
    """Vectorised ngram_ids for many labels: returns (flat ids int64, counts int64)."""
    flat, counts = _hash_grams([b"<" + label_bytes(l) + b">" for l in labels], NGRAM_MIN, NGRAM_MAX, FNV_OFFSET)
    if FEATURE_VERSION < 3:
        return flat, counts
    shapes = [shape(l) for l in labels]
    sflat, scounts = _hash_grams([b"<" + sh + b">" for sh in shapes], SHAPE_MIN, SHAPE_MAX, fnv1a64(b"\x01"))
    whole = np.array([1 + fnv1a64(b"\x02" + sh) % (BUCKETS - 1) for sh in shapes], dtype=np.int64)
    # Per row: character n-grams, shape n-grams, whole shape (the order of ngram_ids).
    cs = np.concatenate([[0], np.cumsum(counts)])
    ss = np.concatenate([[0], np.cumsum(scounts)])
    parts = []
    for r in range(len(labels)):
        parts.append(flat[cs[r]:cs[r + 1]])
        parts.append(sflat[ss[r]:ss[r + 1]])
        parts.append(whole[r:r + 1])
    return np.concatenate(parts), counts + scounts + 1


def _hash_grams(bs, nmin, nmax, offset):
    """n-gram ids (n in nmin..=nmax, order n then position) of each byte string, FNV-1a from
    `offset` (the state after a prefix)."""
    n_rows = len(bs)
    lens = np.array([len(b) for b in bs], dtype=np.int64)
    width = int(lens.max())
    arr = np.zeros((n_rows, width), dtype=np.uint64)
    for r, b in enumerate(bs):
        arr[r, : len(b)] = np.frombuffer(b, dtype=np.uint8)
    per_n = []
    prime = np.uint64(FNV_PRIME)
    for n in range(nmin, nmax + 1):
        npos = width - n + 1
        if npos <= 0:
            per_n.append((np.zeros((n_rows, 0), np.int64), np.zeros((n_rows, 0), bool)))
            continue
        h = np.full((n_rows, npos), offset, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for k in range(n):
                h ^= arr[:, k:k + npos]
                h *= prime
        ids = (h % np.uint64(BUCKETS - 1)).astype(np.int64) + 1
        valid = (np.arange(npos)[None, :] + n) <= lens[:, None]
        per_n.append((ids, valid))
    ids_all = np.concatenate([p[0] for p in per_n], axis=1)
    valid_all = np.concatenate([p[1] for p in per_n], axis=1)
    counts = valid_all.sum(axis=1).astype(np.int64)
    flat = ids_all[valid_all]  # row-major: per row, n then position (same order as ngram_ids)
    return flat, counts


def tld_id(suffix: str) -> int:
    return fnv1a64(suffix.encode("ascii", "replace")) % TLD_BUCKETS


# ---------------------------------------------------------------------------------------------
# Word segmentation (feature version 2)
_WORD_ID = {}   # word -> id (1-based)
_PREFIX = {}    # string -> flags: 1 = proper prefix of a dictionary word, 2 = a dictionary word
_SHORT = set()  # dictionary words shorter than MIN_WORD (experiment: short function words)


def set_words(words):
    """Install the dictionary (list of lowercase ASCII words, MIN_WORD..MAX_WORD long, unique)."""
    global MAX_WORDS
    _WORD_ID.clear()
    _PREFIX.clear()
    _SHORT.clear()
    _SHORT.update(w for w in words if len(w) < MIN_WORD)
    MAX_WORDS = MAX_LABEL // min([MIN_WORD] + [len(w) for w in _SHORT])
    for i, w in enumerate(words):
        _WORD_ID[w] = i + 1
        _PREFIX[w] = _PREFIX.get(w, 0) | 2
        for k in range(1, len(w)):
            p = w[:k]
            _PREFIX[p] = _PREFIX.get(p, 0) | 1


def segment(label: str):
    """Best cover of the label by dictionary words: maximal number of covered bytes, then fewest
    words; among equals the first found scanning end positions left to right and, per end, start
    positions left to right (longest word first); a byte not covered is a gap.
    Returns (list of (start, end) in order, covered bytes)."""
    s = label_bytes(label).decode("ascii")
    n = len(s)
    ends = [[] for _ in range(n + 1)]
    pref = _PREFIX
    for j in range(n):
        for i in range(j + 1, min(n, j + MAX_WORD) + 1):
            f = pref.get(s[j:i])
            if f is None:
                break
            if f & 2 and (i - j >= MIN_WORD or s[j:i] in _SHORT):
                ends[i].append(j)
            if not f & 1:
                break
    cov = [0] * (n + 1)
    nw = [0] * (n + 1)
    back = [-1] * (n + 1)
    for i in range(1, n + 1):
        bc, bn, bj = cov[i - 1], nw[i - 1], -1
        for j in ends[i]:
            c, k = cov[j] + i - j, nw[j] + 1
            if c > bc or (c == bc and k < bn):
                bc, bn, bj = c, k, j
        cov[i], nw[i], back[i] = bc, bn, bj
    segs = []
    i = n
    while i > 0:
        j = back[i]
        if j < 0:
            i -= 1
        else:
            segs.append((j, i))
            i = j
    segs.reverse()
    return segs, cov[n]


def word_features(label: str):
    """-> (word ids, [coverage, words/4, longest/len, mean word len/10, fully covered])."""
    s = label_bytes(label).decode("ascii")
    n = len(s)
    if n == 0:
        return [], [0.0] * N_WORD_DENSE
    segs, cov = segment(label)
    ids = [_WORD_ID[s[a:b]] for a, b in segs]
    k = len(segs)
    longest = max((b - a for a, b in segs), default=0)
    return ids, [
        cov / n,
        k / 4.0,
        longest / n,
        (cov / k / 10.0) if k else 0.0,
        1.0 if cov == n else 0.0,
    ]


def dense_features(label: str, suffix: str) -> list:
    return base_dense_features(label, suffix) + word_features(label)[1]


def base_dense_features(label: str, suffix: str) -> list:
    b = label_bytes(label)
    n = len(b)
    if n == 0:
        return [0.0] * N_DENSE_BASE
    digits = sum(1 for c in b if 48 <= c <= 57)
    hyphens = sum(1 for c in b if c == 45)
    letters = sum(1 for c in b if 97 <= c <= 122)
    vowels = sum(1 for c in b if c in VOWELS)
    counts = {}
    for c in b:
        counts[c] = counts.get(c, 0) + 1
    ent = 0.0
    for k in sorted(counts):
        p = counts[k] / n
        ent -= p * math.log2(p)
    max_cons = cur_cons = 0
    max_dig = cur_dig = 0
    switches = 0
    prev_kind = -1
    for c in b:
        is_letter = 97 <= c <= 122
        is_digit = 48 <= c <= 57
        if is_letter and c not in VOWELS:
            cur_cons += 1
            max_cons = max(max_cons, cur_cons)
        else:
            cur_cons = 0
        if is_digit:
            cur_dig += 1
            max_dig = max(max_dig, cur_dig)
        else:
            cur_dig = 0
        kind = 0 if is_letter else (1 if is_digit else 2)
        if prev_kind >= 0 and kind != prev_kind:
            switches += 1
        prev_kind = kind
    return [
        n / 20.0,
        digits / n,
        hyphens / n,
        ent / 4.0,
        (vowels / letters) if letters else 0.0,
        max_cons / 10.0,
        max_dig / 10.0,
        len(counts) / n,
        switches / n,
        len(suffix) / 10.0,
    ]
