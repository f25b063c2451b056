#!/usr/bin/env python3
"""Render models/metrics.json (and models/peer_metrics.json if present) as Markdown tables for
the model card: `python3 models/train/report.py > /tmp/tables.md`."""
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
m = json.load(open(os.path.join(here, "..", "metrics.json")))
f = m["final"]


def pct(x):
    return f"{100 * x:.1f}"


print("### Summary (final model, held-out names of known families)\n")
print("| group | macro recall @FPR 1e-3 | @FPR 1e-4 | @default threshold |")
print("|---|---|---|---|")
for g in ("all", "charlevel", "wordlist"):
    print(f"| {g} | {pct(f[f'known_{g}_macro_recall@1e-3'])} | {pct(f[f'known_{g}_macro_recall@1e-4'])} |"
          f" {pct(f[f'known_{g}_macro_recall@default'])} |")
print()
thr = f["thresholds_on_benign_test_logit"]
rule = f.get("default_threshold_rule", "order statistic")
print(f"Benign held-out test names ({', '.join(f['benign_sources'])}): {f['benign_test_n']}; logit thresholds at FPR"
      f" 1e-3 = {thr['1e-3']:.3f}, 1e-4 = {thr['1e-4']:.3f}. Default threshold (FPR 1e-4 on the separate benign"
      f" validation split, {f['benign_val_n']} names; {rule}): logit {f['default_threshold_logit_from_val']:.3f} = score"
      f" {f['default_threshold_score']:.6f} (T = {f['score_temperature']:.3f}); its FPR on the benign test split ="
      f" {f['benign_test_fpr_at_default_score']:.2e} ({round(f['benign_test_fpr_at_default_score'] * f['benign_test_n'])}"
      f" of {f['benign_test_n']})", end="")
if "benign_val_fpr_at_default" in f:
    nv, nt = f["benign_val_n"], f["benign_test_n"]
    print(f"; on the validation split {f['benign_val_fpr_at_default']:.2e}"
          f" ({round(f['benign_val_fpr_at_default'] * nv)} of {nv}); on both"
          f" {f['benign_valtest_fpr_at_default']:.2e} ({round(f['benign_valtest_fpr_at_default'] * (nv + nt))}"
          f" of {nv + nt}). The order statistic (the rule up to session 6) would be logit"
          f" {f['default_threshold_logit_order_statistic']:.3f}", end="")
print(".\n")
if "untouched_benign_lists_test" in f:
    print("FPR on every benign list as shipped (test split by registrable domain, nothing removed; the"
          " DNS-derived lists are not benign labels and were never trained on):\n")
    print("| list | used as benign label | n | FPR @1e-3 thr | @1e-4 thr | @default |")
    print("|---|---|---|---|---|---|")
    for src, v in sorted(f["untouched_benign_lists_test"].items()):
        lab = "all lists" if src == "_all" else src
        used = "" if src == "_all" else ("yes" if v["label_source"] else "no")
        print(f"| {lab} | {used} | {v['n']} | {v['fpr@1e-3thr']:.2e} | {v['fpr@1e-4thr']:.2e} | {v['fpr@default']:.2e} |")
    print()
print(f"Family attribution on held-out names of known families: accuracy {pct(f['attribution_accuracy'])} %,"
      f" macro-F1 {pct(f['attribution_macro_f1'])} % (character-level families only: accuracy"
      f" {pct(f['attribution_accuracy_charlevel'])} %).\n")
print("### Per family (variant file), held-out names\n")
print("| family | n | recall @1e-3 | @1e-4 | attributed to |")
print("|---|---|---|---|---|")
for g, v in sorted(f["known_families"].items()):
    att = ", ".join(f"{k} {c}" for k, c in v["attributed"].items())
    print(f"| {g} | {v['n']} | {pct(v['recall@1e-3'])} | {pct(v['recall@1e-4'])} | {att} |")
print()
for name, d in f["external"].items():
    print(f"### External test set `{name}` (never trained on)\n")
    print(f"Benign: {d['benign_n']} names, FPR at our 1e-3 threshold {d['benign_fpr@1e-3thr']:.2e}, at 1e-4"
          f" threshold {d['benign_fpr@1e-4thr']:.2e}, at default {d['benign_fpr@default']:.2e}.\n")
    print("| family | n | recall @1e-3 thr | @1e-4 thr |")
    print("|---|---|---|---|")
    for g, v in sorted(d["families"].items()):
        print(f"| {g} | {v['n']} | {pct(v['recall@1e-3'])} | {pct(v['recall@1e-4'])} |")
    print(f"| **macro** | | {pct(d['macro_recall@1e-3'])} | {pct(d['macro_recall@1e-4'])} |\n")
if "lofo" in m:
    lo = m["lofo"]
    print("### Leave-family-out run (families never seen in training)\n")
    print("| held-out family | n | recall @1e-3 | @1e-4 | attributed to |")
    print("|---|---|---|---|---|")
    for g, v in sorted(lo.get("heldout_families", {}).items()):
        att = ", ".join(f"{k} {c}" for k, c in v["attributed"].items())
        print(f"| {g} | {v['n']} | {pct(v['recall@1e-3'])} | {pct(v['recall@1e-4'])} | {att} |")
    for g in ("all", "charlevel", "wordlist"):
        k = f"heldout_{g}_macro_recall@1e-3"
        if k in lo:
            print(f"| **macro {g}** | | {pct(lo[k])} | {pct(lo[f'heldout_{g}_macro_recall@1e-4'])} | |")
    print(f"\nSame run, known families' held-out names: macro recall @1e-3 {pct(lo['known_all_macro_recall@1e-3'])},"
          f" word-list {pct(lo['known_wordlist_macro_recall@1e-3'])}.\n")
pp = os.path.join(here, "..", "peer_metrics.json")
if os.path.exists(pp):
    p = json.load(open(pp))
    print(f"### Peers on the same held-out names ({p['n_benign']} benign, ≤{p['per_family_cap']} per family)\n")
    print("| model | macro @1e-3 | macro @1e-4 | char-level @1e-3 | word-list @1e-3 | word-list @1e-4 |")
    print("|---|---|---|---|---|---|")
    for name, r in p["models"].items():
        print(f"| {name} | {pct(r['macro@1e-3'])} | {pct(r['macro@1e-4'])} | {pct(r['charlevel@1e-3'])} |"
              f" {pct(r['wordlist@1e-3'])} | {pct(r['wordlist@1e-4'])} |")
    if p["errors"]:
        print("\nErrors: " + json.dumps(p["errors"]))
