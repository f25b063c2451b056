#!/usr/bin/env python3
"""Model-selection runs for train.py: the same data, split, weights and training loop, with some of
train.py's constants overridden, evaluated after every epoch on the validation split (used to
choose) and the test split (reported only). Features are computed once and cached.

    models/train/.venv/bin/python models/train/sweep.py --data ../shared/data --set HARD_POS=3
    models/train/.venv/bin/python models/train/sweep.py --set EPOCHS=4 --set H1=320 --tag wide

Prints one line per epoch: VAL macro @1e-3 / @1e-4 / word-list @1e-3 / tail (mean over FPR
1e-3, 5e-4, 2e-4, 1e-4), then the same on TEST, and the weakest variants; appends a JSON line to
models/train/.cache/sweep.jsonl. Thresholds come from the benign names of the same split (web
lists), as in models/README.md. PyTorch logits (the shipped ONNX/f16 model differs by < 0.1 point).
"""
import argparse
import json
import os
import pickle
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import features as fe  # noqa: E402
import train as T  # noqa: E402

FPRS = (1e-3, 5e-4, 2e-4, 1e-4)


DEFAULT_BUCKETS = fe.BUCKETS
CACHE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".cache")


def cache_path(seed, lofo=False):
    """The feature cache of one seed (and the leave-family-out setting), keyed by the feature
    version and the SHORT_WORDS experiment."""
    sw = f"-sw{fe.fnv1a64(T.SHORT_WORDS.encode()) % 10**6}" if T.SHORT_WORDS else ""
    b = f"-b{fe.BUCKETS}" if fe.BUCKETS != DEFAULT_BUCKETS else ""
    return os.path.join(CACHE_DIR, f"ctx-fv{fe.FEATURE_VERSION}{sw}{b}{'-lofo' if lofo else ''}-seed{seed}.pkl")


def load_ctx(seed, lofo=False):
    with open(cache_path(seed, lofo), "rb") as f:
        return pickle.load(f)


def net_outputs(net, X, idx, bs=8192):
    """-> (binary logits, family log-probabilities) of the rows idx."""
    zs, fs = [], []
    with torch.no_grad():
        for b in range(0, len(idx), bs):
            z, f = net(*X.batch(idx[b:b + bs]))
            zs.append(z.numpy())
            fs.append(torch.log_softmax(f, 1).numpy())
    if not zs:
        return np.zeros(0), np.zeros((0, net.fam.out_features))
    return np.concatenate(zs), np.concatenate(fs)


def logits(net, X, idx, bs=8192):
    return net_outputs(net, X, idx, bs)[0]


def split_report(net, ctx, split):
    X, splits, y, variants = ctx["X"], ctx["splits"], ctx["y"], ctx["variants"]
    ben = np.where((splits == split) & (y == 0))[0]
    sb = logits(net, X, ben)
    thr = {f: T.thr_at_fpr(sb, f) for f in FPRS}
    dga = np.where((splits == split) & (y == 1))[0]
    sd = logits(net, X, dga)
    per = {}
    for v in sorted(set(variants[dga])):
        m = variants[dga] == v
        per[v] = {f: float(np.mean(sd[m] > thr[f])) for f in FPRS}
    wl = [v for v in per if v in T.WORDLIST_VARIANTS]

    def macro(f, sel=None):
        return 100 * float(np.mean([per[v][f] for v in (sel or per)]))
    return {"macro@1e-3": macro(1e-3), "macro@1e-4": macro(1e-4), "wordlist@1e-3": macro(1e-3, wl),
            "tail": float(np.mean([macro(f) for f in FPRS])), "per_variant@1e-3": {v: per[v][1e-3] for v in per}}


def _is_hex_label(label: str) -> float:
    b = label.encode("ascii", "replace")
    ok = len(b) >= 8 and all(48 <= c <= 57 or 97 <= c <= 102 for c in b)
    return 1.0 if ok and any(48 <= c <= 57 for c in b) and any(97 <= c <= 102 for c in b) else 0.0


EXTRA_DENSE = {"hex": _is_hex_label}

# Experiment (--synthetic N): generic algorithmically generated names as extra DGA training rows
# (binary head only), for families never seen. The generators follow the usual DGA taxonomy
# (arithmetic: random letters, letters and digits, hex; pseudo-words from random syllables),
# not any family's algorithm; TLDs uniform over common ones, so the TLD carries no signal.
SYN_TLDS = ["com", "net", "org", "info", "biz", "ru", "cn", "top", "xyz", "online", "site", "club", "pw",
            "cc", "ws", "in", "eu", "us", "de", "me"]
_CONS = "bcdfghjklmnprstvwxz"
_VOW = "aeiou"


def synthetic_names(n_per_kind, seed):
    rng = np.random.default_rng(seed + 1000)
    letters = "abcdefghijklmnopqrstuvwxyz"
    alnum = letters + "0123456789"

    def rand_str(alpha, lo, hi):
        return "".join(rng.choice(list(alpha), rng.integers(lo, hi + 1)))

    def pseudo_word():
        out = ""
        target = int(rng.integers(6, 15))
        while len(out) < target:
            syl = rng.choice(list(_CONS)) + rng.choice(list(_VOW))
            if rng.random() < 0.3:
                syl += rng.choice(list(_CONS))
            out += syl
        return out

    kinds = {
        "syn_letters": lambda: rand_str(letters, 6, 20),
        "syn_alnum": lambda: rand_str(alnum, 8, 20),
        "syn_hex": lambda: rand_str("0123456789abcdef", 8, 32),
        "syn_pseudoword": pseudo_word,
    }
    rows = []
    for kind, gen in kinds.items():
        seen = set()
        while len(seen) < n_per_kind:
            seen.add(gen())
        for lab in sorted(seen):
            rows.append((lab, str(rng.choice(SYN_TLDS)), kind))
    return rows


# Experiment (--synthetic-benign N): natural word sequences as extra benign training rows. The
# benign names that set the FPR-1e-3 threshold are largely natural phrases
# (`wherecoolthingshappen`), which a bag of word embeddings scores like word-list DGA names;
# phrases sampled from web bigram counts (wordsegment 1.3.1's bigrams.txt, Apache-2.0) teach
# the character n-grams that span natural word boundaries (`ethe`, `ngsha`). TLDs follow the
# benign training rows' suffixes, so the TLD carries no signal.
def synthetic_phrases(n, seed, suffixes, exclude):
    import wordsegment
    path = os.path.join(os.path.dirname(wordsegment.__file__), "bigrams.txt")
    succ = {}
    with open(path) as f:
        for line in f:
            pair, cnt = line.rstrip("\n").split("\t")
            a, _, b = pair.partition(" ")
            if a.isascii() and b.isascii() and a.isalpha() and b.isalpha():
                succ.setdefault(a, ([], []))
                succ[a][0].append(b)
                succ[a][1].append(float(cnt))
    starts = sorted(succ)
    start_p = np.array([sum(succ[a][1]) for a in starts]) ** 0.5
    start_p /= start_p.sum()
    succ_p = {a: (ws, (np.array(cs) ** 0.5) / (np.array(cs) ** 0.5).sum()) for a, (ws, cs) in succ.items()}
    rng = np.random.default_rng(seed + 2000)
    out, seen = [], set()
    while len(out) < n:
        words = [starts[rng.choice(len(starts), p=start_p)]]
        n_words = int(rng.integers(2, 5))
        while len(words) < n_words and words[-1] in succ_p:
            ws, p = succ_p[words[-1]]
            words.append(ws[rng.choice(len(ws), p=p)])
        label = "".join(words)
        if len(words) < 2 or not 6 <= len(label) <= 30 or label in seen or label in exclude:
            continue
        seen.add(label)
        out.append((label, suffixes[rng.integers(len(suffixes))], "syn_phrase"))
    return out


def concat_featurized(a, b):
    o = T.Featurized.__new__(T.Featurized)
    o.counts = np.concatenate([a.counts, b.counts])
    o.flat = np.concatenate([a.flat, b.flat])
    o.starts = np.concatenate([[0], np.cumsum(o.counts)[:-1]]).astype(np.int64)
    o.wcounts = np.concatenate([a.wcounts, b.wcounts])
    o.wflat = np.concatenate([a.wflat, b.wflat])
    o.wstarts = np.concatenate([[0], np.cumsum(o.wcounts)[:-1]]).astype(np.int64)
    o.tld = np.concatenate([a.tld, b.tld])
    o.dense = np.concatenate([a.dense, b.dense])
    return o


def oof_benign_logits(ctx, tr, w_bin, w_fam, seed, net_kw, log):
    """Out-of-fold logits of the benign training rows (in the order of tr[y[tr] == 0]): two folds,
    each scored by a model trained on the DGA rows and the other fold (benign weight doubled so the
    benign:DGA ratio holds). Cached per seed and net sizes."""
    y = ctx["y"]
    key = fe.fnv1a64(repr(sorted(net_kw.items())).encode()) % 10**6
    path = os.path.join(CACHE_DIR, f"oof-fv{fe.FEATURE_VERSION}-seed{seed}-{key}.npy")
    btr = tr[y[tr] == 0]
    if os.path.exists(path):
        return np.load(path)
    fold = np.random.default_rng(seed + 7).integers(0, 2, len(btr))
    out = np.zeros(len(btr), dtype=np.float32)
    for k in (0, 1):
        wb = w_bin.copy()
        wb[btr[fold == k]] = 0
        wb[btr[fold != k]] *= 2
        keep = tr[wb[tr] > 0]
        log(f"out-of-fold model {k + 1}/2: {len(keep)} rows")
        net = T.train_model(ctx["X"].subset(keep), y[keep], ctx["fam"][keep], wb[keep], w_fam[keep],
                            len(ctx["train_fams"]), len(fe._WORD_ID), T.EPOCHS, seed, log, **net_kw)
        out[fold == k] = logits(net, ctx["X"], btr[fold == k])
    np.save(path, out)
    return out


def heldout_report(net, ctx):
    """Leave-family-out: recall of each held-out variant at the test split's benign thresholds."""
    X, splits, y, variants = ctx["X"], ctx["splits"], ctx["y"], ctx["variants"]
    sb = logits(net, X, np.where((splits == "test") & (y == 0))[0])
    thr = {f: T.thr_at_fpr(sb, f) for f in (1e-3, 1e-4)}
    ho = np.where(splits == "heldout_family")[0]
    sh = logits(net, X, ho)
    per = {v: {f: float(np.mean(sh[variants[ho] == v] > thr[f])) for f in thr} for v in sorted(set(variants[ho]))}
    return {"macro@1e-3": 100 * float(np.mean([p[1e-3] for p in per.values()])),
            "macro@1e-4": 100 * float(np.mean([p[1e-4] for p in per.values()])),
            "per_variant@1e-3": {v: 100 * p[1e-3] for v, p in per.items()}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
    ap.add_argument("--set", action="append", default=[], help="NAME=VALUE: override a train.py constant")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--buckets", type=int, default=0, metavar="N",
                    help="experiment: N n-gram hash buckets instead of features.py's BUCKETS (own feature cache)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tag", default="")
    ap.add_argument("--extra-dense", choices=["hex"], action="append", default=[],
                    help="experiment: append a dense feature not in the feature spec (hex: 1 when the "
                         "label is >= 8 hex digits with at least one digit and one letter a-f)")
    ap.add_argument("--save-logits", metavar="PATH",
                    help="after the last epoch, write {registrable domain: [split, variant, logit]} for the "
                         "val and test rows (pickle), for offline comparisons such as seed ensembles")
    ap.add_argument("--synthetic", type=int, default=0, metavar="N",
                    help="experiment: N generic generated names per kind (4 kinds) as extra DGA training rows")
    ap.add_argument("--synthetic-weight", type=float, default=4.0,
                    help="their total loss weight, in units of one DGA variant file")
    ap.add_argument("--synthetic-benign", type=int, default=0, metavar="N",
                    help="experiment: N phrases sampled from web bigram counts as extra benign training rows")
    ap.add_argument("--synthetic-benign-share", type=float, default=0.1,
                    help="their share of the benign training weight (the benign total unchanged)")
    ap.add_argument("--oof-clean", metavar="Q,W",
                    help="experiment: benign training rows whose out-of-fold logit (2 folds, each scored by a model "
                         "trained without it) is in the top Q share get loss weight x W, the benign total unchanged")
    ap.add_argument("--lofo", action="store_true",
                    help="the leave-family-out setting of train.py (LOFO_VARIANTS out of training, no labelled DGA "
                         "train files); reports the held-out families' recall after every epoch")
    ap.add_argument("--distill", metavar="NET,NET,...",
                    help="experiment: PyTorch state dicts (DNSWARD_SAVE_NET) of teacher nets with this run's sizes; "
                         "their mean logit on the training rows is mixed into the binary target with weight DISTILL")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.buckets:
        fe.BUCKETS = args.buckets
    for kv in args.set:
        k, v = kv.split("=", 1)
        if not hasattr(T, k):
            sys.exit(f"train.py has no constant {k}")
        setattr(T, k, type(getattr(T, k))(v))
    # Net's defaults were bound at import: pass the (possibly overridden) sizes explicitly.
    net_kw = dict(dim=T.DIM, wdim=T.WDIM, tdim=T.TDIM, h1=T.H1, h2=T.H2, drop=T.DROPOUT, ngram_drop=T.NGRAM_DROPOUT,
                  cnn=T.CNN, cnn_k=T.CNN_K, cemb=T.CEMB)
    t0 = time.time()

    def log(msg):
        print(f"[{time.time() - t0:6.0f}s] {msg}", flush=True)

    words = T.build_words()
    fe.set_words(words)
    os.makedirs(CACHE_DIR, exist_ok=True)
    cache = cache_path(args.seed, args.lofo)
    if os.path.exists(cache):
        ctx = load_ctx(args.seed, args.lofo)
        log(f"features from {cache}")
    else:
        holdout = set(T.LOFO_VARIANTS) if args.lofo else set()
        ctx = T.build_and_train(T.load(args.data), holdout, not args.lofo, T.EPOCHS, args.seed, log, train=False)
        with open(cache, "wb") as f:
            pickle.dump(ctx, f, protocol=4)
    for extra in args.extra_dense:
        col = np.array([[EXTRA_DENSE[extra](r[0].split(".")[0])] for r in ctx["rows"]], dtype=np.float32)
        ctx["X"].dense = np.concatenate([ctx["X"].dense, col], axis=1)
        fe.N_DENSE += 1   # Net sizes its first layer from it
        log(f"extra dense feature {extra}: {int(col.sum())} rows set")
    if T.CNN:
        ctx["X"].chars = T.char_matrix([r[1] for r in ctx["rows"]])
        log(f"char CNN: {T.CNN} filters of width {T.CNN_K} over {T.CEMB}-dim character embeddings")
    y, fam, variants = ctx["y"], ctx["fam"], ctx["variants"]
    tr = np.where(ctx["splits"] == "train")[0]
    w_bin, w_fam = T.row_weights(y, variants, fam, tr, dense=ctx["X"].dense)  # overridden constants apply
    results = []

    def on_epoch(ep, net):
        r = {s: split_report(net, ctx, s) for s in ("val", "test")}
        v, t = r["val"], r["test"]
        log(f"  ep {ep}: VAL {v['macro@1e-3']:.1f} / {v['macro@1e-4']:.1f} / wl {v['wordlist@1e-3']:.1f} / tail {v['tail']:.1f}"
            f"   TEST {t['macro@1e-3']:.1f} / {t['macro@1e-4']:.1f} / wl {t['wordlist@1e-3']:.1f} / tail {t['tail']:.1f}")
        weak = sorted(t["per_variant@1e-3"].items(), key=lambda kv: kv[1])[:10]
        log("    weakest (test @1e-3): " + ", ".join(f"{k} {100 * x:.0f}" for k, x in weak))
        results.append({"epoch": ep, "val": {k: x for k, x in v.items() if k != "per_variant@1e-3"},
                        "test": t})
        if args.lofo:
            h = heldout_report(net, ctx)
            log(f"    HELD-OUT families @1e-3 {h['macro@1e-3']:.1f} / @1e-4 {h['macro@1e-4']:.1f}: "
                + ", ".join(f"{k} {x:.0f}" for k, x in h["per_variant@1e-3"].items()))
            results[-1]["heldout"] = h

    soft = None
    if args.distill:
        acc = np.zeros(len(tr))
        paths = args.distill.split(",")
        for pth in paths:
            teacher = T.Net(len(ctx["train_fams"]), len(fe._WORD_ID), **net_kw)
            teacher.load_state_dict(torch.load(pth))
            teacher.eval()
            acc += logits(teacher, ctx["X"], tr)
        soft = acc / len(paths)
        log(f"distilling from {len(paths)} teachers, weight {T.DISTILL}")
    if args.oof_clean:
        q, wfac = (float(x) for x in args.oof_clean.split(","))
        oof = oof_benign_logits(ctx, tr, w_bin, w_fam, args.seed, net_kw, log)
        btr = tr[y[tr] == 0]
        sel = btr[oof >= np.quantile(oof, 1 - q)]
        total = w_bin[btr].sum()
        w_bin[sel] *= wfac
        w_bin[btr] *= total / w_bin[btr].sum()
        log(f"oof-clean: {len(sel)} of {len(btr)} benign training rows (out-of-fold logit >= "
            f"{np.quantile(oof, 1 - q):.2f}) weighted x{wfac}; e.g. " + ", ".join(ctx["rows"][i][0] for i in sel[:8]))
    Xtr, ytr, famtr, wbtr, wftr = ctx["X"].subset(tr), y[tr], fam[tr], w_bin[tr], w_fam[tr]
    if args.synthetic:
        syn = synthetic_names(args.synthetic, args.seed)
        known = {r[0] for r in ctx["rows"]}
        syn = [r for r in syn if f"{r[0]}.{r[1]}" not in known]
        Xs = T.Featurized([r[0] for r in syn], [r[1] for r in syn])
        # one variant file's total weight, as row_weights gives it to a file of >= 1000 names
        unit = float(w_bin[tr][variants[tr] == "conficker"].sum())
        ws = np.full(len(syn), args.synthetic_weight * unit / len(syn))
        Xtr = concat_featurized(Xtr, Xs)
        ytr = np.concatenate([ytr, np.ones(len(syn), dtype=ytr.dtype)])
        famtr = np.concatenate([famtr, np.full(len(syn), -1, dtype=famtr.dtype)])
        wbtr = np.concatenate([wbtr, ws])
        wftr = np.concatenate([wftr, np.zeros(len(syn))])
        log(f"synthetic: {len(syn)} generated names, total weight {args.synthetic_weight} variant files")
    if args.synthetic_benign:
        btr = tr[y[tr] == 0]
        suffixes = [ctx["rows"][i][2] for i in btr]
        labels = {r[1] for r in ctx["rows"]}  # never a label of any split
        syn = synthetic_phrases(args.synthetic_benign, args.seed, suffixes, labels)
        Xs = T.Featurized([r[0] for r in syn], [r[1] for r in syn])
        share = args.synthetic_benign_share
        bmask = ytr == 0
        btotal = float(wbtr[bmask].sum())
        wbtr = wbtr.copy()
        wbtr[bmask] *= 1 - share
        ws = np.full(len(syn), share * btotal / len(syn))
        Xtr = concat_featurized(Xtr, Xs)
        ytr = np.concatenate([ytr, np.zeros(len(syn), dtype=ytr.dtype)])
        famtr = np.concatenate([famtr, np.full(len(syn), -1, dtype=famtr.dtype)])
        wbtr = np.concatenate([wbtr, ws])
        wftr = np.concatenate([wftr, np.zeros(len(syn))])
        log(f"synthetic benign: {len(syn)} phrases, {100 * share:.0f} % of the benign weight; e.g. "
            + ", ".join(f"{a}.{b}" for a, b, _ in syn[:8]))
    net = T.train_model(Xtr, ytr, famtr, wbtr, wftr, len(ctx["train_fams"]),
                        len(fe._WORD_ID), T.EPOCHS, args.seed, log, epoch_cb=on_epoch, soft_logits=soft, **net_kw)
    if args.save_logits:
        ev = np.where(np.isin(ctx["splits"], ["val", "test"]))[0]
        lg = logits(net, ctx["X"], ev)
        with open(args.save_logits, "wb") as f:
            pickle.dump({ctx["rows"][i][0]: (ctx["splits"][i], variants[i], float(x)) for i, x in zip(ev, lg)}, f)
    with open(os.path.join(CACHE_DIR, "sweep.jsonl"), "a") as f:
        f.write(json.dumps({"tag": args.tag, "set": args.set, "seed": args.seed, "epochs": results,
                            "seconds": time.time() - t0}) + "\n")


if __name__ == "__main__":
    main()
