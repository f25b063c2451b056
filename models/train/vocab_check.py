#!/usr/bin/env python3
"""Offline check: are word-list families' vocabularies discriminative? For each word-list variant,
the set of dictionary words in its fully segmented training names; then, on the validation and test
splits, how many benign names have all their words (>= 2) inside some family's set, and how many of
each family's own held-out names do (models/README.md, "Known gaps").

    models/train/.venv/bin/python models/train/vocab_check.py [--seed 1]   # needs sweep.py's feature cache
"""
import argparse
import collections
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import features as fe  # noqa: E402
import sweep as S  # noqa: E402
import train as T  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    ctx = S.load_ctx(args.seed)
    X, sp, y, v = ctx["X"], ctx["splits"], ctx["y"], ctx["variants"]
    cov = X.dense[:, fe.N_DENSE_BASE]
    def words(i):
        s, n = X.wstarts[i], X.wcounts[i]
        return X.wflat[s:s+n]
    WL = sorted(T.WORDLIST_VARIANTS) + ["wordlist_dga_train"]
    vocab = {f: set() for f in WL}
    for i in np.where(sp == "train")[0]:
        if v[i] in vocab and cov[i] >= 0.999:
            vocab[v[i]].update(words(i).tolist())
    print({f: len(s) for f, s in vocab.items()})
    def all_in(i):
        w = words(i)
        if cov[i] < 0.999 or len(w) < 2: return []
        ws = set(w.tolist())
        return [f for f in WL if f != "wordlist_dga_train" and ws <= vocab[f]]
    for split in ("val", "test"):
        idx = np.where(sp == split)[0]
        ben = idx[y[idx] == 0]
        hits = collections.Counter()
        ex = collections.defaultdict(list)
        for i in ben:
            for f in all_in(i):
                hits[f] += 1
                if len(ex[f]) < 4: ex[f].append(ctx["rows"][i][0])
        print(split, "benign", len(ben), "any", sum(1 for i in ben if all_in(i)), dict(hits))
        print("  ", dict(ex))
        for f in WL[:-1]:
            d = idx[v[idx] == f]
            if len(d): print("  ", f, len(d), "own-vocab", round(np.mean([f in all_in(i) for i in d]), 3))


if __name__ == "__main__":
    main()
