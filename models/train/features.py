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
"""
import math

import numpy as np

FEATURE_VERSION = 1
BUCKETS = 1 << 17
TLD_BUCKETS = 4096
NGRAM_MIN = 1
NGRAM_MAX = 5
MAX_LABEL = 63
MAX_IDS = sum(MAX_LABEL + 2 - n + 1 for n in range(NGRAM_MIN, NGRAM_MAX + 1))  # 315
N_DENSE = 10

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


def ngram_ids(label: str) -> list:
    s = b"<" + label_bytes(label) + b">"
    out = []
    for n in range(NGRAM_MIN, NGRAM_MAX + 1):
        for i in range(0, len(s) - n + 1):
            out.append(1 + fnv1a64(s[i:i + n]) % (BUCKETS - 1))
    return out


def ngram_ids_batch(labels):
    """Vectorised ngram_ids for many labels: returns (flat ids int64, counts int64)."""
    bs = [b"<" + label_bytes(l) + b">" for l in labels]
    n_rows = len(bs)
    lens = np.array([len(b) for b in bs], dtype=np.int64)
    width = int(lens.max())
    arr = np.zeros((n_rows, width), dtype=np.uint64)
    for r, b in enumerate(bs):
        arr[r, : len(b)] = np.frombuffer(b, dtype=np.uint8)
    per_n = []
    prime = np.uint64(FNV_PRIME)
    for n in range(NGRAM_MIN, NGRAM_MAX + 1):
        npos = width - n + 1
        if npos <= 0:
            per_n.append((np.zeros((n_rows, 0), np.int64), np.zeros((n_rows, 0), bool)))
            continue
        h = np.full((n_rows, npos), FNV_OFFSET, dtype=np.uint64)
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


def dense_features(label: str, suffix: str) -> list:
    b = label_bytes(label)
    n = len(b)
    if n == 0:
        return [0.0] * N_DENSE
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
