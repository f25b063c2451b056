#!/usr/bin/env python3
"""Offline check: does the family head's confidence add to the binary logit? Scores
logit + a * log(top family probability) and logit + a * (negative family entropy) for a few a,
with thresholds from each split's own benign names; prints VAL and TEST macro recall at FPR
1e-3 and 1e-4 (models/README.md, "Known gaps").

    models/train/.venv/bin/python models/train/family_evidence.py --net t6-s1.pt --seed 1
"""
import os
import sys

import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sweep as S  # noqa: E402
import train as T  # noqa: E402
from fitcheck import net_and_ctx  # noqa: E402


def main():
    _, ctx, net = net_and_ctx(__doc__)
    X, sp, y, v = ctx["X"], ctx["splits"], ctx["y"], ctx["variants"]
    res = {}
    for split in ("val", "test"):
        idx = np.where(sp == split)[0]
        res[split] = (idx,) + S.net_outputs(net, X, idx)

    def macro(split, score, fpr):
        idx = res[split][0]
        ben = y[idx] == 0
        thr = T.thr_at_fpr(score[ben], fpr)
        vs = v[idx]
        return 100 * np.mean([np.mean(score[vs == var] > thr) for var in sorted(set(vs[~ben]))])

    extras = {"log top family p": lambda lf: lf.max(1), "negative entropy": lambda lf: (np.exp(lf) * lf).sum(1)}
    for name, extra in extras.items():
        for a in (0, 0.25, 0.5, 1, 2):
            cols = []
            for split in ("val", "test"):
                _, z, lf = res[split]
                s = z + a * extra(lf)
                cols.append(f"{split.upper()} {macro(split, s, 1e-3):.1f} / {macro(split, s, 1e-4):.1f}")
            print(f"{name}, a = {a}: " + "   ".join(cols))


if __name__ == "__main__":
    main()
