#!/usr/bin/env python3
"""Does the model fit the training names of the families it misses? Recall per variant on the
training rows and on the test rows at one threshold (the validation split's benign FPR-1e-3
point), and the benign training FPR at it. When a family's training recall is as low as its test
recall, the misses are not over-fitting: the model cannot separate those names from benign
training names either.

    DNSWARD_SAVE_NET=/tmp/net.pt models/train/.venv/bin/python models/train/sweep.py --seed 1 ...
    models/train/.venv/bin/python models/train/fitcheck.py --net /tmp/net.pt --seed 1 [--set K=V ...]

Needs the feature cache sweep.py writes (models/train/.cache/ctx-fv*-seed N.pkl) and the sizes
the net was trained with (--set as for sweep.py).
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import features as fe  # noqa: E402
import sweep as S  # noqa: E402
import train as T  # noqa: E402


def net_and_ctx(description):
    """Command-line --net/--seed/--set/--threads/--lofo -> (args, ctx from sweep.py's feature cache, net)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--net", required=True, help="PyTorch state dict written by DNSWARD_SAVE_NET")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--worst", type=int, default=16)
    ap.add_argument("--lofo", action="store_true", help="the leave-family-out feature cache (sweep.py --lofo)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for kv in args.set:
        k, v = kv.split("=", 1)
        setattr(T, k, type(getattr(T, k))(v))
    fe.set_words(T.build_words())
    ctx = S.load_ctx(args.seed, args.lofo)
    net = T.Net(len(ctx["train_fams"]), len(fe._WORD_ID), dim=T.DIM, wdim=T.WDIM, tdim=T.TDIM, h1=T.H1,
                h2=T.H2)
    net.load_state_dict(torch.load(args.net, weights_only=True))
    net.eval()
    return args, ctx, net


def main():
    args, ctx, net = net_and_ctx(__doc__)
    X, sp, y, v = ctx["X"], ctx["splits"], ctx["y"], ctx["variants"]
    thr = T.thr_at_fpr(S.logits(net, X, np.where((sp == "val") & (y == 0))[0]), 1e-3)
    print(f"threshold: logit {thr:.3f} (benign validation FPR 1e-3)")
    recall = {}
    for split in ("train", "test"):
        idx = np.where((sp == split) & (y == 1))[0]
        lg = S.logits(net, X, idx)
        for var in sorted(set(v[idx])):
            m = v[idx] == var
            recall.setdefault(var, {})[split] = (100 * float(np.mean(lg[m] > thr)), int(m.sum()))
    rows = sorted((r["test"][0], var) for var, r in recall.items() if "test" in r and "train" in r)
    print("variant | train recall (n) | test recall (n)")
    for _, var in rows[:args.worst]:
        (a, na), (b, nb) = recall[var]["train"], recall[var]["test"]
        print(f"{var} | {a:.1f} ({na}) | {b:.1f} ({nb})")
    for split in ("train", "val", "test"):
        b = np.where((sp == split) & (y == 0))[0]
        print(f"benign {split} FPR at it: {float(np.mean(S.logits(net, X, b) > thr)):.2e} ({len(b)} names)")


if __name__ == "__main__":
    main()
