#!/usr/bin/env python3
"""How the shipped model scores IDN (`xn--`) registrable labels against ASCII ones, on benign
names it never trained on: the validation and test splits of the web-traffic lists, the
DNS-derived lists (never trained on) and the benign rows of the two test-only labelled files.
Counts names above the model's default threshold and above a given FPR-1e-3 threshold (logits),
and lists the highest IDNs. Backs `[dga] judge_idn = false` (models/README.md, "Never judged").

    models/train/.venv/bin/python models/train/idn_check.py --data ../shared/data [--model models/dga.onnx]
"""
import argparse
import csv
import glob
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import features as fe  # noqa: E402
import train as T  # noqa: E402


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "..", "shared", "data"))
    ap.add_argument("--model", default=os.path.join(here, "..", "dga.onnx"))
    ap.add_argument("--metrics", default=os.path.join(here, "..", "metrics.json"))
    args = ap.parse_args()
    fe.set_words(T.build_words())
    d = os.path.join(args.data, "dga")
    names = {}  # registrable -> (source, label, suffix)
    for p in sorted(glob.glob(os.path.join(d, "benign", "*.txt"))):
        src = os.path.basename(p)[:-4]
        for line in open(p, errors="replace"):
            parsed = T.parse(line.strip().lower())
            if not parsed:
                continue
            if src in T.BENIGN_LABEL_SOURCES and T.split_of(parsed[0]) == "train":
                continue
            names.setdefault(parsed[0], (src,) + parsed[1:])
    for fn in ("chrmor_test_known.csv", "wordlist_dga_val.csv"):
        with open(os.path.join(d, "labeled", fn)) as f:
            for row in list(csv.reader(f))[1:]:
                parsed = T.parse(row[0].lower()) if row[-1] == "benign" else None
                if parsed:
                    names.setdefault(parsed[0], (fn,) + parsed[1:])
    regs = sorted(names)
    X = T.Featurized([names[r][1] for r in regs], [names[r][2] for r in regs])
    logit, _ = T.OnnxScorer(args.model).score(X)
    with open(args.metrics) as f:
        m = json.load(f)["final"]
    default = float(m["default_threshold_logit_from_val"])
    at_1e3 = float(m["thresholds_on_benign_test_logit"]["1e-3"])
    idn = np.array([names[r][1].startswith("xn--") for r in regs])
    for what, sel in (("IDN label", idn), ("ASCII label", ~idn)):
        n = int(sel.sum())
        a, b = int((logit[sel] > default).sum()), int((logit[sel] > at_1e3).sum())
        print(f"{what}: {n} benign names; above the default threshold (logit {default:.3f}) {a} "
              f"({a / n:.2e}); above the test FPR-1e-3 threshold (logit {at_1e3:.3f}) {b} ({b / n:.2e})")
    order = np.argsort(-logit[idn])
    for i in order[:8]:
        r = np.array(regs)[idn][i]
        print(f"  {r}  logit {logit[idn][i]:.2f}  ({names[r][0]})")


if __name__ == "__main__":
    main()
