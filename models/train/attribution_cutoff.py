#!/usr/bin/env python3
"""The "other" cut-off of family attribution (dnsward.other_min_prob, 0.5): a name's family is
reported as "other" when its top family probability is below it. Known families (v6's seed-1
weights, validation and test splits): attribution accuracy, macro-F1 and share reported "other"
per cut-off. Families never seen (leave-family-out weights): share reported "other", which is
the right answer for them. Needs sweep.py's feature caches and nets saved with DNSWARD_SAVE_NET:

    DNSWARD_SAVE_NET=/tmp/t6-s1.pt models/train/.venv/bin/python models/train/sweep.py --seed 1
    DNSWARD_SAVE_NET=/tmp/lofo-s1.pt models/train/.venv/bin/python models/train/sweep.py --seed 1 --lofo
    models/train/.venv/bin/python models/train/attribution_cutoff.py known /tmp/t6-s1.pt
    models/train/.venv/bin/python models/train/attribution_cutoff.py lofo /tmp/lofo-s1.pt
"""
import os
import pickle
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import features as fe  # noqa: E402
import train as T  # noqa: E402
torch.set_num_threads(1)
fe.set_words(T.build_words())
def load(cache, net_path):
    ctx = pickle.load(open(cache, "rb"))
    net = T.Net(len(ctx["train_fams"]), len(fe._WORD_ID)); net.load_state_dict(torch.load(net_path, weights_only=True)); net.eval()
    return ctx, net
def famprobs(ctx, net, idx):
    out = []
    with torch.no_grad():
        for b in range(0, len(idx), 8192):
            _, f = net(*ctx["X"].batch(idx[b:b+8192])); out.append(torch.softmax(f, 1).numpy())
    return np.concatenate(out)
CUTS = (0.5, 0.4, 0.3, 0.2, 0.0)
mode, net_path = sys.argv[1], sys.argv[2]
if mode == "known":
    ctx, net = load(os.path.join(HERE, ".cache", "ctx-fv3-seed1.pkl"), net_path)
    for split in ("val", "test"):
        idx = np.where((ctx["splits"] == split) & (ctx["y"] == 1))[0]
        idx = idx[np.isin(ctx["variants"][idx], list(set(ctx["variants"][idx]) - {"wordlist_dga_train"}))]
        pf = famprobs(ctx, net, idx)
        yt = np.array([T.FAMILY_OF_VARIANT.get(v, v) for v in ctx["variants"][idx]])
        for c in CUTS:
            yp = np.array([ctx["train_fams"][t] if p >= c else "other" for t, p in zip(pf.argmax(1), pf.max(1))])
            print(split, c, "acc", round(100*np.mean(yt == yp), 1), "F1", round(100*T.macro_f1(yt, yp, sorted(set(yt))), 1), "other", round(100*np.mean(yp == "other"), 1))
else:
    ctx, net = load(os.path.join(HERE, ".cache", "ctx-fv3-lofo-seed1.pkl"), net_path)
    idx = np.where(ctx["splits"] == "heldout_family")[0]
    pf = famprobs(ctx, net, idx)
    v = ctx["variants"][idx]
    for c in CUTS:
        oth = pf.max(1) < c
        print("heldout", c, "other (macro over families)", round(100*np.mean([np.mean(oth[v == f]) for f in sorted(set(v))]), 1),
              {f: round(100*np.mean(oth[v == f])) for f in sorted(set(v))})
