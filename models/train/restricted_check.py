#!/usr/bin/env python3
"""How many DGA and benign names sit under a registrant-vetted public suffix (the product's
`restricted_suffix` skip rule, crates/dnsward-classify/src/skip.rs, re-stated here over
`publicsuffixlist`), and, with --dnsward, how many benign names of the labelled test files the
given binary blocks there (run it with a binary built before the rule to see what it removes).

    models/train/.venv/bin/python models/train/restricted_check.py --data ../shared/data [--dnsward target/release/dnsward]
"""
import argparse
import collections
import csv
import glob
import json
import os
import subprocess

from publicsuffixlist import PublicSuffixList

PSL = PublicSuffixList(only_icann=True)
TLDS = {"gov", "mil", "edu", "int"}
LABELS = {"gov", "gob", "gouv", "govt", "go", "gv", "gc", "mil", "edu", "ac"}
OPEN_LOOKALIKES = {"go.it", "ac.se", "go.pw"}


def restricted(name):
    s = PSL.publicsuffix(name.lower().rstrip("."))
    if not s or s in OPEN_LOOKALIKES:
        return None
    labels = s.split(".")
    if (len(labels) == 1 and s in TLDS) or any(lb in LABELS for lb in labels[:-1]):
        return s
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
    ap.add_argument("--dnsward", help="a dnsward binary: count the labelled benign names it blocks under such suffixes")
    args = ap.parse_args()
    d = os.path.join(args.data, "dga")
    total = hits = 0
    for p in sorted(glob.glob(os.path.join(d, "families", "*.txt"))):
        for line in open(p, errors="replace"):
            n = line.strip()
            if n and not n.startswith("#"):
                total += 1
                hits += bool(restricted(n))
    labelled = {}
    for p in sorted(glob.glob(os.path.join(d, "labeled", "*.csv"))):
        with open(p) as f:
            rows = list(csv.reader(f))[1:]
        labelled[os.path.basename(p)] = rows
        dga = [r[0] for r in rows if r[-1] != "benign"]
        total += len(dga)
        hits += sum(bool(restricted(n)) for n in dga)
    print(f"DGA names under a restricted suffix: {hits} of {total}")
    for p in sorted(glob.glob(os.path.join(d, "benign", "*.txt"))):
        names = [ln.strip() for ln in open(p, errors="replace") if ln.strip() and not ln.startswith("#")]
        c = collections.Counter(filter(None, map(restricted, names)))
        print(f"{os.path.basename(p)}: {sum(c.values())} of {len(names)} ({100 * sum(c.values()) / len(names):.1f} %); "
              + ", ".join(f"{k} {v}" for k, v in c.most_common(6)))
    if args.dnsward:
        for fn, rows in labelled.items():
            ben = [r[0] for r in rows if r[-1] == "benign"]
            out = subprocess.run([args.dnsward, "classify"], input="\n".join(ben) + "\n", capture_output=True,
                                 text=True, check=True).stdout
            blocked = [o["name"] for o in map(json.loads, out.splitlines()) if o.get("blocked")]
            under = [b for b in blocked if restricted(b)]
            print(f"{fn}: {len(ben)} benign, blocked {len(blocked)}, of them under a restricted suffix "
                  f"{len(under)} {under}")


if __name__ == "__main__":
    main()
