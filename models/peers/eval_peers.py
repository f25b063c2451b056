#!/usr/bin/env python3
"""Side-by-side: dnsward vs dgaintel 2.3 vs dgad 4.1.1 on the same held-out names.

Input: models/train/peer_eval/heldout.tsv (written by models/train/train.py: registrable domain,
group, dnsward score). Samples up to --per-family names per DGA variant and up to --benign benign
names, scores them with both peers (batched), sets each model's thresholds at FPR 1e-3 / 1e-4 on
the sampled benign names, and prints/writes the per-group macro recall.

    bash models/peers/setup.sh
    models/peers/.venv/bin/python models/peers/eval_peers.py
"""
import argparse
import collections
import json
import math
import os
import random
import sys

import numpy as np

WORDLIST = {"suppobox_1", "suppobox_2", "suppobox_3", "gozi_gpl", "gozi_luther", "gozi_nasa",
            "gozi_rfc4343", "matsnu", "nymaim2", "ngioweb", "bigviktor_360netlab"}


def thr_at_fpr(benign, fpr):
    s = np.sort(benign)[::-1]
    k = int(math.floor(fpr * len(s)))
    return float(s[k]) if k < len(s) else 0.0


def dgaintel_scores(names):
    from dgaintel.predict import get_prob
    out = []
    for b in range(0, len(names), 2048):
        out.append(np.asarray(get_prob(list(names[b:b + 2048]), raw=True, internal=False), dtype=np.float64).reshape(-1))
    return np.concatenate(out)


def dgad_scores(names):
    # dgad's Detective scores each word with one predict() call; batch the same tokenisation instead.
    from dgad.prediction import Detective
    from dgad.schema import Word
    det = Detective()
    width = det.model_binary.data.input_shape[1]
    vecs, ok = [], []
    for n in names:
        label = n.split(".")[0]
        if len(label) > width:
            label = label[:width]
        w = Word(label, width)
        vecs.append(w.padded_token_vector)
    x = np.array(vecs)
    return det.model_binary.data.predict(x, batch_size=4096, verbose=0)[:, 0].astype(np.float64)


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--heldout", default=os.path.join(here, "..", "train", "peer_eval", "heldout.tsv"))
    ap.add_argument("--per-family", type=int, default=300)
    ap.add_argument("--benign", type=int, default=20000)
    ap.add_argument("--out", default=os.path.join(here, "..", "peer_metrics.json"))
    args = ap.parse_args()
    rng = random.Random(3)
    by = collections.defaultdict(list)
    for line in open(args.heldout):
        reg, grp, sc = line.rstrip("\n").split("\t")
        by[grp].append((reg, float(sc)))
    sample = []
    for g, items in sorted(by.items()):
        k = args.benign if g == "benign" else args.per_family
        items = sorted(items)
        rng.shuffle(items)
        sample += [(reg, g, sc) for reg, sc in items[:k]]
    names = [s[0] for s in sample]
    groups = np.array([s[1] for s in sample])
    scores = {"dnsward": np.array([s[2] for s in sample])}
    errors = {}
    for name, fn in (("dgaintel", dgaintel_scores), ("dgad", dgad_scores)):
        try:
            scores[name] = fn(names)
        except Exception as e:  # report, keep going with the other peer
            errors[name] = f"{type(e).__name__}: {e}"
            print(f"{name} failed: {errors[name]}", file=sys.stderr)
    res = {"n_benign": int(np.sum(groups == "benign")), "per_family_cap": args.per_family, "errors": errors,
           "models": {}}
    for m, sc in scores.items():
        b = sc[groups == "benign"]
        r = {}
        for fpr in ("1e-3", "1e-4"):
            t = thr_at_fpr(b, float(fpr))
            fam = {g: float(np.mean(sc[groups == g] > t)) for g in sorted(set(groups) - {"benign"})}
            r[f"thr@{fpr}"] = t
            r[f"macro@{fpr}"] = float(np.mean(list(fam.values())))
            r[f"wordlist@{fpr}"] = float(np.mean([v for g, v in fam.items() if g in WORDLIST]))
            r[f"charlevel@{fpr}"] = float(np.mean([v for g, v in fam.items() if g not in WORDLIST]))
            r[f"families@{fpr}"] = fam
        r["fpr@0.5"] = float(np.mean(b > 0.5))
        res["models"][m] = r
        print(f"{m:9s} macro@1e-3 {r['macro@1e-3']:.3f} @1e-4 {r['macro@1e-4']:.3f} "
              f"wordlist@1e-3 {r['wordlist@1e-3']:.3f} @1e-4 {r['wordlist@1e-4']:.3f} "
              f"charlevel@1e-3 {r['charlevel@1e-3']:.3f}")
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
