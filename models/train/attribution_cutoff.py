#!/usr/bin/env python3
"""The "other" cut-off of family attribution (dnsward.other_min_prob, 0.5): a name's family is
reported as "other" when its top family probability is below it. Known families (v6's seed-1
weights, validation and test splits): attribution accuracy, macro-F1 and share reported "other"
per cut-off. Families never seen (--lofo, leave-family-out weights): share reported "other",
which is the right answer for them. Needs sweep.py's feature caches and nets saved with
DNSWARD_SAVE_NET:

    DNSWARD_SAVE_NET=/tmp/t6-s1.pt models/train/.venv/bin/python models/train/sweep.py --seed 1
    DNSWARD_SAVE_NET=/tmp/lofo-s1.pt models/train/.venv/bin/python models/train/sweep.py --seed 1 --lofo
    models/train/.venv/bin/python models/train/attribution_cutoff.py --net /tmp/t6-s1.pt
    models/train/.venv/bin/python models/train/attribution_cutoff.py --net /tmp/lofo-s1.pt --lofo
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sweep as S  # noqa: E402
import train as T  # noqa: E402
from fitcheck import net_and_ctx  # noqa: E402

CUTS = (0.5, 0.4, 0.3, 0.2, 0.0)


def main():
    args, ctx, net = net_and_ctx(__doc__)
    X, sp, y, v = ctx["X"], ctx["splits"], ctx["y"], ctx["variants"]
    if not args.lofo:
        for split in ("val", "test"):
            idx = np.where((sp == split) & (y == 1) & (v != "wordlist_dga_train"))[0]
            pf = np.exp(S.net_outputs(net, X, idx)[1])
            yt = np.array([T.FAMILY_OF_VARIANT.get(f, f) for f in v[idx]])
            for c in CUTS:
                yp = np.array([ctx["train_fams"][t] if p >= c else "other" for t, p in zip(pf.argmax(1), pf.max(1))])
                print(f"{split} cut-off {c}: accuracy {100 * np.mean(yt == yp):.1f}, macro-F1 "
                      f"{100 * T.macro_f1(yt, yp, sorted(set(yt))):.1f}, reported other {100 * np.mean(yp == 'other'):.1f} %")
        return
    idx = np.where(sp == "heldout_family")[0]
    top = np.exp(S.net_outputs(net, X, idx)[1]).max(1)
    fams = sorted(set(v[idx]))
    for c in CUTS:
        other = {f: 100 * float(np.mean(top[v[idx] == f] < c)) for f in fams}
        print(f"held-out families, cut-off {c}: reported other {np.mean(list(other.values())):.1f} % (macro); "
              + ", ".join(f"{f} {x:.0f}" for f, x in other.items()))


if __name__ == "__main__":
    main()
