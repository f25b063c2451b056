"""Macro recall over merged families (suppobox_1/2/3 -> suppobox, gozi_* -> gozi, ... as
train.py's FAMILY_OF_VARIANT) instead of over variant files, from models/metrics.json.

The issue asks for "recall per family"; the model card's headline averages over the 55 variant
files. This prints both. Each family's recall pools its variants' held-out names.

    python3 models/train/merged_families.py [models/metrics.json]
"""
import json
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def family_maps():
    # The two constants only, without importing train.py (it needs torch).
    src = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")).read()
    ns = {}
    exec(src[src.index("WORDLIST_VARIANTS ="):src.index("LOFO_VARIANTS")], ns)
    return ns["FAMILY_OF_VARIANT"], ns["WORDLIST_VARIANTS"]


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "metrics.json")
    known = json.load(open(path))["final"]["known_families"]
    family_of, wordlist = family_maps()
    for key in ("recall@1e-3", "recall@1e-4", "recall@default"):
        pooled = defaultdict(lambda: [0.0, 0])
        is_wl = {}
        for variant, d in known.items():
            fam = family_of.get(variant, variant)
            pooled[fam][0] += d[key] * d["n"]
            pooled[fam][1] += d["n"]
            is_wl[fam] = variant in wordlist
        recall = {f: hit / n for f, (hit, n) in pooled.items()}
        wl = [r for f, r in recall.items() if is_wl[f]]
        by_variant = sum(d[key] for d in known.values()) / len(known)
        print(f"{key}: {len(recall)} families, macro {100 * sum(recall.values()) / len(recall):.1f} "
              f"(word-list {100 * sum(wl) / len(wl):.1f}); over {len(known)} variant files "
              f"{100 * by_variant:.1f}")


if __name__ == "__main__":
    main()
