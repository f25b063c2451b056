"""Where two models' recall difference at FPR 1e-3 comes from, per split: the threshold (set by
the ~18 highest-scoring of ~17.8k benign names) or the DGA names' scores.

    models/train/.venv/bin/python models/train/threshold_split_check.py A.pkl B.pkl

A.pkl and B.pkl are `sweep.py --save-logits` files of the same seed. Prints, per split, both
thresholds, the highest-scoring benign names under each model, macro recall of each model at its
own threshold and of B at A's threshold, and the variants that moved most.
"""
import pickle, math, numpy as np, sys
def load(p):
    out = {}
    for name, (split, var, x) in pickle.load(open(p, "rb")).items():
        out.setdefault(split, {})[name] = (var, x)
    return out
def thr(sb, fpr):
    s = np.sort(sb)[::-1]; k = int(math.floor(fpr * len(s))); return float(s[k])
A, B = load(sys.argv[1]), load(sys.argv[2])
for split in ("val", "test"):
    a, b = A[split], B[split]
    ben = [n for n, (v, _) in a.items() if v.startswith("benign")]
    ta, tb = thr([a[n][1] for n in ben], 1e-3), thr([b[n][1] for n in ben], 1e-3)
    print(f"== {split}: benign {len(ben)}; thr@1e-3 A {ta:.2f}  B {tb:.2f}")
    # top benign names (those setting the threshold) per model
    for lab, m in (("A", a), ("B", b)):
        top = sorted(ben, key=lambda n: -m[n][1])[:20]
        print(f"  top benign {lab}:", ", ".join(f"{n}({m[n][1]:.1f})" for n in top[:12]))
    vs = sorted(set(v for v, _ in a.values() if not v.startswith("benign")))
    rows = []
    for v in vs:
        names = [n for n, (vv, _) in a.items() if vv == v]
        ra = np.mean([a[n][1] > ta for n in names]); rb = np.mean([b[n][1] > tb for n in names])
        # recall of B at A's threshold: separates "scores moved" from "threshold moved"
        rbx = np.mean([b[n][1] > ta for n in names])
        rows.append((rb - ra, v, len(names), ra, rb, rbx))
    ma = np.mean([r[3] for r in rows]) * 100; mb = np.mean([r[4] for r in rows]) * 100
    mbx = np.mean([r[5] for r in rows]) * 100
    print(f"  macro A {ma:.1f}  B {mb:.1f}  (B at A's threshold {mbx:.1f})")
    rows.sort()
    for r in rows[:6] + rows[-8:]:
        print(f"   {r[1]:22s} n={r[2]:5d}  A {100*r[3]:5.1f}  B {100*r[4]:5.1f}  d {100*r[0]:+5.1f}")
