#!/usr/bin/env python3
"""Scores one or more ONNX models (feature version 1 or 2) on the same held-out names under two
benign protocols, for an apples-to-apples before/after table in the model card:

  * "web":  benign = test split of the web-traffic lists (train.BENIGN_LABEL_SOURCES), the protocol
            of feature version 2 / metrics.json;
  * "all":  benign = test split of all six benign lists as shipped (incl. the DNS-query-derived
            ones), minus names of the DGA family files: the protocol of the first model;
  * "alexa": the "web" names that are on one of the two Alexa lists (documented web-traffic
            origin; without the names only on top_65535, whose provenance is undocumented). A
            sensitivity check of the benign set, not the protocol the model is chosen or reported on.

Thresholds at FPR 1e-3 / 1e-4 on each benign set (on the logit when the model outputs one, else on
the probability); recall per variant file of held-out (test split) names; macro over variants.

    models/train/.venv/bin/python models/train/compare.py --data ../shared/data old.onnx models/dga.onnx
"""
import argparse
import json
import sys
import os

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train  # noqa: E402
import features as fe  # noqa: E402


def run_model(path, featurize):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    X = featurize(int(meta.get("dnsward.feature_version", "1")))
    names = [i.name for i in sess.get_inputs()]
    outs = [o.name for o in sess.get_outputs()]
    res = []
    idx = np.arange(len(X.counts))
    for b in range(0, len(idx), 4096):
        ids, inv, wids, winv, tld, dense = X.padded(idx[b:b + 4096])
        feed = {"ids": ids, "inv_cnt": inv, "tld": tld}
        if "word_ids" in names:
            feed.update({"word_ids": wids, "inv_wcnt": winv, "dense": dense})
        else:
            feed["dense"] = dense[:, :fe.N_DENSE_BASE]
        o = sess.run(None, feed)
        res.append(o[outs.index("dga_logit")][:, 0] if "dga_logit" in outs else o[0][:, 0])
    return np.concatenate(res)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("models", nargs="+")
    args = ap.parse_args()
    fe.set_words(train.build_words())
    dga, extra, benign, _, tests = train.load(args.data)
    untouched = tests["_untouched"]
    test_only = set()
    for k, rows in tests.items():
        if not k.startswith("_"):
            test_only.update(p[0] for p, _ in rows)
    dga_regs = set(dga) | set(extra)
    rows = []  # (label, suffix, kind, on an Alexa list) kind = variant | "benign_all" | "benign_both"
    for reg, (variant, family, label, suffix) in sorted(dga.items()):
        if train.split_of(reg) == "test":
            rows.append((label, suffix, variant, False))
    for reg in sorted(untouched):
        if train.split_of(reg) != "test" or reg in dga_regs or reg in test_only:
            continue
        label, suffix, _ = untouched[reg]
        # benign[reg][2] is the first web list holding the name, Alexa lists first
        alexa = reg in benign and benign[reg][2].startswith("alexa")
        rows.append((label, suffix, "benign_both" if reg in benign else "benign_all", alexa))
    by_version = {}

    def featurize(version):
        # Models of feature versions 1 and 2 read the same n-grams (v1 takes the first dense columns).
        v = max(version, 2)
        if v not in by_version:
            fe.use_version(v)
            by_version[v] = train.Featurized([r[0] for r in rows], [r[1] for r in rows])
        fe.use_version(v)
        return by_version[v]
    kind = np.array([r[2] for r in rows])
    on_alexa = np.array([r[3] for r in rows])
    out = {}
    for path in args.models:
        sc = run_model(path, featurize)
        res = {}
        for proto, sel in (("web", kind == "benign_both"), ("all", np.isin(kind, ["benign_both", "benign_all"])),
                           ("alexa", (kind == "benign_both") & on_alexa)):
            b = sc[sel]
            thr = {f: train.thr_at_fpr(b, float(f)) for f in ("1e-3", "1e-4")}
            fams = sorted(set(kind) - {"benign_both", "benign_all"})
            rec = {f: {v: float(np.mean(sc[kind == v] > thr[f])) for v in fams} for f in thr}
            r = {"benign_n": int(sel.sum()), "thresholds": thr}
            for f in thr:
                for grp, pred in (("all", lambda v: True), ("wordlist", lambda v: v in train.WORDLIST_VARIANTS),
                                  ("charlevel", lambda v: v not in train.WORDLIST_VARIANTS)):
                    r[f"{grp}@{f}"] = float(np.mean([x for v, x in rec[f].items() if pred(v)]))
                # ties at the threshold (saturated scores) make "recall @FPR" ill-defined: count them
                r[f"benign_ties_at_thr@{f}"] = int(np.sum(b == thr[f]))
            res[proto] = r
        out[path] = res
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
