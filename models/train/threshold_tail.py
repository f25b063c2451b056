"""Default-threshold estimators compared on saved logits (`sweep.py --save-logits PATH`).

The rule up to model v5 took validation's FPR-1e-4 point as an order statistic: with 17,879
benign validation names, one name may score above it, so the threshold is the second-highest
benign logit, and it moves a lot between seeds. Since session 7 train.py uses a peaks-over-
threshold estimate (train.thr_tail_at_fpr: exponential tail fitted to the k highest benign
validation logits, read at 1e-4). This prints both, for several k, with the test split's FPR and
macro recall over the known families at each:

    models/train/.venv/bin/python models/train/threshold_tail.py /tmp/lg/wide-s1.pkl [...]
"""
import json
import os
import pickle
import sys
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train as T  # noqa: E402

P = 1e-4
KNOWN = set(json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "metrics.json")))
            ["final"]["known_families"])


def main():
    for path in sys.argv[1:]:
        d = pickle.load(open(path, "rb"))
        vb = np.array(sorted((x for sp, v, x in d.values() if sp == "val" and v.startswith("benign")),
                             reverse=True))
        tb = np.array([x for sp, v, x in d.values() if sp == "test" and v.startswith("benign")])
        fam = defaultdict(list)
        for sp, v, x in d.values():
            if sp == "test" and v in KNOWN:
                fam[v].append(x)
        fam = {k: np.array(v) for k, v in fam.items()}

        def line(name, t):
            macro = 100 * np.mean([np.mean(v > t) for v in fam.values()])
            return (f"  {name:<26} logit {t:5.2f}  val FPR {np.mean(vb > t):.1e}  test FPR {np.mean(tb > t):.1e}"
                    f"  test macro {macro:4.1f}")

        n = len(vb)
        print(f"{path}: {n} benign validation names, top {np.round(vb[:5], 2).tolist()}")
        print(line("order statistic", T.thr_at_fpr(vb, P)))
        for k in (100, T.TAIL_K, 400):
            print(line(f"exp. tail, k={k}" + (" (shipped)" if k == T.TAIL_K else ""),
                       T.thr_tail_at_fpr(vb, P, k)))


if __name__ == "__main__":
    main()
