#!/usr/bin/env python3
"""Per-client escalation (`[dga.escalation]` in the resolver): what it buys and what it costs,
measured on held-out names with the shipped model; `--patch` writes the escalated threshold into
an existing model's metadata (train.py writes it for new models).

    models/train/.venv/bin/python models/train/escalation.py --data ../shared/data [--patch] [--json out.json]

The resolver judges every name at the default threshold (FPR 1e-4). A client that has had
`after` distinct names blocked by the DGA model within the window is escalated: its later names
are judged at the looser threshold (FPR 1e-3 on the benign validation split,
`dnsward.escalated_threshold`). This script:

* scores the test split (registrable domains never trained on) with the ONNX model;
* per DGA variant, simulates one infected client that looks up that variant's held-out names in
  a random order, all within the window (the escalation rule as the resolver applies it: only
  names blocked at the default threshold count, each name once), and reports the share of its
  lookups that are blocked, against judging every name at the default;
* on the benign side reports the FPR at both thresholds (test split; Tranco names of
  `chrmor_test_known`) and how many distinct benign names a clean client looks up, on average,
  before its third false block escalates it.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sweep  # noqa: E402
import train as T  # noqa: E402


def model_meta(path):
    import onnx
    m = onnx.load(path, load_external_data=False)
    return {p.key: p.value for p in m.metadata_props}


def patch(path, meta_update):
    """Sets metadata entries of an ONNX file in place (the graph and weights are untouched)."""
    import onnx
    m = onnx.load(path)
    props = {p.key: p.value for p in m.metadata_props}
    props.update(meta_update)
    del m.metadata_props[:]
    for k, v in props.items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, path)


def simulate_client(blocked_default, blocked_escalated, after, rng):
    """Share of one client's lookups blocked, the client looking the names up in a random order."""
    order = rng.permutation(len(blocked_default))
    strikes, blocked = 0, 0
    for i in order:
        if strikes >= after:
            hit = blocked_escalated[i]
        else:
            hit = blocked_default[i]
            strikes += int(hit)  # only default-threshold blocks count towards escalation
        blocked += int(hit)
    return blocked / max(len(order), 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
    ap.add_argument("--model", default=os.path.join(os.path.dirname(__file__), "..", "dga.onnx"))
    ap.add_argument("--seed", type=int, default=1, help="the shipped model's training seed (its split)")
    ap.add_argument("--after", type=int, default=3)
    ap.add_argument("--patch", action="store_true", help="write dnsward.escalated_threshold(_logit) into --model")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()

    T.fe.set_words(T.build_words())
    data = T.load(args.data)
    if os.path.exists(sweep.cache_path(args.seed)):
        ctx = sweep.load_ctx(args.seed)
    else:
        ctx = T.build_and_train(data, set(), True, T.EPOCHS, args.seed, print, train=False)
    meta = model_meta(args.model)
    temperature = float(meta["dnsward.score_temperature"])
    scorer = T.OnnxScorer(args.model)
    if args.patch:
        upd = T.escalated_meta(scorer, ctx, temperature)
        patch(args.model, upd)
        meta.update(upd)
        print(f"patched {args.model}: {upd}")
    if "dnsward.escalated_threshold_logit" not in meta:
        sys.exit(f"{args.model} has no dnsward.escalated_threshold_logit (run with --patch)")
    thr_d = float(meta["dnsward.default_threshold_logit"])
    thr_e = float(meta["dnsward.escalated_threshold_logit"])

    X, splits, y, variants = ctx["X"], ctx["splits"], ctx["y"], ctx["variants"]
    ben = np.where((splits == "test") & (y == 0))[0]
    dga = np.where((splits == "test") & (y == 1))[0]
    sb = scorer.score(X, ben)[0]
    sd = scorer.score(X, dga)[0]
    out = {"threshold_logit": {"default": thr_d, "escalated": thr_e}, "after": args.after,
           "benign_test": {"n": int(len(sb)), "fpr_default": float(np.mean(sb > thr_d)),
                           "fpr_escalated": float(np.mean(sb > thr_e))}}
    # Tranco names never trained on (test-only file), as the resolver would see them.
    tranco = [p for p, fam in data[4]["chrmor_test_known"] if fam is None]
    if tranco:
        Xt = T.Featurized([p[1] for p in tranco], [p[2] for p in tranco])
        st = scorer.score(Xt)[0]
        out["tranco"] = {"n": len(st), "fpr_default": float(np.mean(st > thr_d)),
                         "fpr_escalated": float(np.mean(st > thr_e))}
    rng = np.random.default_rng(args.seed)
    per = {}
    for v in sorted(set(variants[dga])):
        m = variants[dga] == v
        bd, be = sd[m] > thr_d, sd[m] > thr_e
        per[v] = {"n": int(m.sum()), "default": float(bd.mean()), "escalated": float(be.mean()),
                  "client": float(np.mean([simulate_client(bd, be, args.after, rng) for _ in range(20)]))}
    out["per_variant"] = per
    wl = [v for v in per if v in T.WORDLIST_VARIANTS]
    for key in ("default", "escalated", "client"):
        out[f"macro_{key}"] = float(np.mean([per[v][key] for v in per]))
        out[f"wordlist_{key}"] = float(np.mean([per[v][key] for v in wl]))

    print(f"thresholds (logit): default {thr_d:.3f}, escalated {thr_e:.3f}; after {args.after} distinct blocked names")
    b = out["benign_test"]
    print(f"benign test split ({b['n']}): FPR at default {b['fpr_default']:.2e}, escalated {b['fpr_escalated']:.2e}")
    if "tranco" in out:
        t = out["tranco"]
        print(f"Tranco benign of chrmor_test_known ({t['n']}): FPR at default {t['fpr_default']:.2e}, "
              f"escalated {t['fpr_escalated']:.2e}; a clean client escalates after ~{args.after / max(t['fpr_default'], 1e-9):,.0f} "
              f"distinct non-allowlisted names of that mix")
    print("| variant | n | blocked at default | at escalated | infected client (simulated) |")
    print("|---|---|---|---|---|")
    for v, r in per.items():
        print(f"| {v} | {r['n']} | {100 * r['default']:.1f} | {100 * r['escalated']:.1f} | {100 * r['client']:.1f} |")
    print(f"| **macro** | | {100 * out['macro_default']:.1f} | {100 * out['macro_escalated']:.1f} | {100 * out['macro_client']:.1f} |")
    print(f"| word-list macro | | {100 * out['wordlist_default']:.1f} | {100 * out['wordlist_escalated']:.1f} | {100 * out['wordlist_client']:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
