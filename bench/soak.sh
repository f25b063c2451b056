#!/usr/bin/env bash
# Soak: dnsward at a fixed query rate for DURATION seconds with every check on (denylist, DGA
# model, answer checks, admin event store), counting lost and malformed responses and sampling
# dnsward's resident memory every 10 s; then says whether RSS stayed flat after warm-up.
#
#   bench/soak.sh                              # 600 s at 4000 qps
#   DURATION=60 bench/soak.sh                  # a quick check of the script itself
#   RATE=8000 CACHE_MIB=16 LOG_ALL=1 bench/soak.sh
#
# Built on the harness in ../shared/bench (copied to target/bench like bench/compare.sh): nsd as
# the upstream on 127.0.0.1:5300, dnsward on 127.0.0.1:5400, dnsperf -Q at a fixed rate, all in a
# private network namespace with only lo (needs root: unshare --net).
#
# Queries: the harness's `mixed` names (1.2M unique names over ~1.19M registrable domains, 10 %
# DGA names from 55 families) interleaved with its `hit` names (993 names, asked again and
# again): roughly 40 % repeats, 60 % names never seen (DATA: queries/soak.txt). A small
# `[cache] max_mib` (CACHE_MIB, default 8) makes the answer cache hit its bound early; the DGA
# verdict cache, the answer-check history and the client scores have their own bounds.
#
# Knobs: DURATION (s, 600) RATE (qps, 4000) CACHE_MIB (8) WARMUP (s, DURATION/5) RSS_SLACK_PCT (10)
#        RSS_SLACK_MIB (8) LOG_ALL (0: blocks only; 1: every query into the event store)
#        SUT_CPU (1) GEN_CPU (0) PIN (1) CLIENTS (4) OUTST (500) SKIP_BUILD (set: use the existing
#        release binary, ${CARGO_TARGET_DIR:-target}/release/dnsward, without cargo build)
# Verdict: PASS when lost = 0, malformed = 0 and the highest RSS in the last third of the run is
# at most the first sample after warm-up + max(RSS_SLACK_PCT %, RSS_SLACK_MIB MiB) (with LOG_ALL=1
# also + 64 MiB: the store's SQLite page cache, which fills with query-log pages for ~500 s at 4000
# qps). It also prints how RSS moved over the second half of the last third. Exit 1 on FAIL.
# Output: target/bench/results/soak-<UTC time>/ (dnsperf.txt, rss.csv, dnsward.log, stats.json,
# soak.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
shared=${SHARED:-$root/../shared}
work=$root/target/bench
bin=${CARGO_TARGET_DIR:-$root/target}/release/dnsward

if [ -z "${BENCH_NETNS:-}" ]; then
  [ -d "$shared/bench" ] || { echo "no $shared/bench: the benchmark harness lives in ../shared" >&2; exit 1; }
  for t in dnsperf nsd unshare; do
    command -v $t >/dev/null || { echo "$t missing: run sudo $shared/bench/install-peers.sh" >&2; exit 1; }
  done
  mkdir -p "$work"
  cp -a "$shared/bench/." "$work/"
  if [ ! -f "$work/queries/mixed.txt" ]; then
    DATA_DIR="$shared/data" python3 "$work/gen_data.py"
  fi
  if [ ! -f "$work/queries/soak.txt" ]; then
    # 3 unique names, then 2 repeated ones, over the whole mixed list.
    python3 - "$work/queries" <<'PY'
import itertools, sys
d = sys.argv[1]
hit = [l for l in open(f"{d}/hit1k.txt") if l.strip()]
mixed = (l for l in open(f"{d}/mixed.txt") if l.strip())
hits = itertools.cycle(hit)
with open(f"{d}/soak.txt", "w") as out:
    for i, line in enumerate(mixed):
        out.write(line)
        if i % 3 == 2:
            out.write(next(hits))
            out.write(next(hits))
PY
  fi
  if [ -z "${SKIP_BUILD:-}" ]; then
    (cd "$root" && cargo build --release -p dnsward)
  fi
  [ -x "$bin" ] || { echo "no binary at $bin" >&2; exit 1; }
  export SOAK_BIN=$bin
  exec unshare --net env BENCH_NETNS=1 bash "$0" "$@"
fi

# ---- inside the private network namespace (only lo) ----
# The harness's common.sh is written for plain bash (no errexit / pipefail).
set +e +o pipefail
cd "$work"
source ./common.sh
enter_netns "$0" "$@"
DURATION=${DURATION:-600}
RATE=${RATE:-4000}
CACHE_MIB=${CACHE_MIB:-8}
WARMUP=${WARMUP:-$((DURATION / 5))}
RSS_SLACK_PCT=${RSS_SLACK_PCT:-10}
RSS_SLACK_MIB=${RSS_SLACK_MIB:-8}
LOG_ALL=${LOG_ALL:-0}
PIN=${PIN:-1} SUT_CPU=${SUT_CPU:-1} GEN_CPU=${GEN_CPU:-0} UP_CPU=${UP_CPU:-0}
CLIENTS=${CLIENTS:-4} OUTST=${OUTST:-500}
out=$work/results/soak-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out" run
render_conf
pin() { if [ "$PIN" = 1 ]; then echo "taskset -c $1"; fi; }

# Every check on: a denylist (names the soak asks), the DGA model, the answer checks, the store.
soak=$work/run/soak
rm -rf "$soak"; mkdir -p "$soak"
awk 'NR % 400 == 7 {print $1}' queries/mixed.txt | head -n 3000 > "$soak/deny.txt"
log_all=false; [ "$LOG_ALL" = 1 ] && log_all=true
cat > "$soak/dnsward.toml" <<EOF
[server]
listen = ["127.0.0.1:5400"]
workers = 1
[upstream]
servers = ["127.0.0.1:5300"]
[cache]
max_mib = $CACHE_MIB
[lists]
deny = ["deny.txt"]
[dga]
enabled = true
[intel]
enabled = true
[admin]
enabled = true
listen = "127.0.0.1:8453"
db_path = "$soak/events.sqlite3"
log_all_queries = $log_all
EOF

cleanup() { stop_pid "${SUT:-}"; stop_pid "${NSD:-}"; [ -n "${SAMPLER:-}" ] && kill "$SAMPLER" 2>/dev/null; true; }
trap cleanup EXIT
start_nsd "$(pin "$UP_CPU")" || { echo "nsd did not start" >&2; exit 1; }
$(pin "$SUT_CPU") "$SOAK_BIN" serve --config "$soak/dnsward.toml" --log warn > "$out/dnsward.log" 2>&1 & SUT=$!
wait_ready 5400 "$SUT" || { echo "dnsward did not start: $(tail -5 "$out/dnsward.log")" >&2; exit 1; }
echo "soak: ${DURATION}s at ${RATE} qps, cache ${CACHE_MIB} MiB, warm-up ${WARMUP}s, log_all_queries=$log_all; results in $out"

# RSS every 10 s (t=0 is the start of the load).
( t=0; while kill -0 "$SUT" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$SUT/status" 2>/dev/null || echo 0)
    echo "$t,$rss"
    sleep 10; t=$((t + 10))
  done ) > "$out/rss.csv" & SAMPLER=$!

$(pin "$GEN_CPU") dnsperf -s 127.0.0.1 -p 5400 -d queries/soak.txt -l "$DURATION" -Q "$RATE" \
  -c "$CLIENTS" -q "$OUTST" -t 5 -S 60 > "$out/dnsperf.txt" 2>&1 || true
curl -s --max-time 5 http://127.0.0.1:8453/api/v1/stats > "$out/stats.json" 2>/dev/null || true
kill "$SAMPLER" 2>/dev/null || true; SAMPLER=""
alive=yes; kill -0 "$SUT" 2>/dev/null || alive=no

python3 - "$out" "$DURATION" "$RATE" "$WARMUP" "$RSS_SLACK_PCT" "$RSS_SLACK_MIB" "$CACHE_MIB" "$alive" "$LOG_ALL" <<'PY' | tee "$out/soak.md"
import json, re, sys
out, dur, rate, warm, pct, mib, cache_mib, alive, log_all_flag = sys.argv[1:]
dur, rate, warm, pct, mib = int(dur), int(rate), int(warm), float(pct), float(mib)
text = open(f"{out}/dnsperf.txt").read()
def num(pat):
    m = re.search(pat, text)
    return int(m.group(1)) if m else None
sent = num(r"Queries sent:\s+(\d+)")
done = num(r"Queries completed:\s+(\d+)")
lost = num(r"Queries lost:\s+(\d+)")
interrupted = num(r"Queries interrupted:\s+(\d+)") or 0
qps = re.search(r"Queries per second:\s+([\d.]+)", text)
codes = re.search(r"Response codes:\s+(.*)", text)
lat = re.search(r"Average Latency \(s\):\s+([\d.]+).*max ([\d.]+)", text)
# Malformed: responses dnsperf could not match or read (short, unexpected ID).
malformed = len(re.findall(r"received short response|unexpected \(maybe timed out\) id", text))
rss = [tuple(int(x) for x in l.split(",")) for l in open(f"{out}/rss.csv") if l.strip() and "," in l]
rss = [(t, r) for t, r in rss if t <= dur and r > 0]
after = [(t, r) for t, r in rss if t >= warm]
ok = True
print(f"# soak: {dur} s at {rate} qps (dnsperf -Q), cache max_mib {cache_mib}")
print()
print(f"- queries sent {sent}, completed {done}, lost {lost}, interrupted {interrupted}; "
      f"{qps.group(1) if qps else '?'} qps achieved")
print(f"- response codes: {codes.group(1).strip() if codes else '?'}")
if lat:
    print(f"- latency: average {float(lat.group(1)) * 1000:.3f} ms, max {float(lat.group(2)) * 1000:.1f} ms")
print(f"- malformed / unmatched responses reported by dnsperf: {malformed}")
if qps and float(qps.group(1)) < rate * 0.97:
    print(f"- FAIL: the fixed rate was not sustained ({float(qps.group(1)):.0f} of {rate} qps): dnsward (or this machine) is saturated; lower RATE"); ok = False
if sent is None or lost is None:
    print("- FAIL: no dnsperf summary (see dnsperf.txt)"); ok = False
elif lost > 0:
    print(f"- FAIL: {lost} queries lost"); ok = False
if malformed > 0:
    print("- FAIL: malformed responses"); ok = False
if alive != "yes":
    print("- FAIL: dnsward exited during the soak"); ok = False
print("- RSS (MiB) every 10 s: " + " ".join(f"{r / 1024:.0f}" for _, r in rss))
# The bounded structures fill at the rate of new names (~60 % of the queries): the DGA verdict
# cache (200k registrable domains) and the answer-check history (100k domains) are the largest.
fill = 200000 / max(rate * 0.6, 1)
print(f"- warm-up {warm} s; the DGA verdict cache (200k domains) fills in about {fill:.0f} s at this rate"
      + ("" if warm >= fill else " (warm-up shorter than that: RSS may still be growing for a legitimate reason)"))
if after:
    base_t, base = after[0]
    last = [r for t, r in rss if t >= dur * 2 / 3]
    peak = max(last) if last else base
    # With every query logged, the store's writer connection fills its SQLite page cache
    # (`PRAGMA cache_size`, 64 MiB in store.rs) with query-log pages at ~32 bytes per query:
    # bounded, but at 4000 qps it takes ~500 s, longer than the default warm-up.
    sqlite_kib = 65536 if log_all_flag == "1" else 0
    allowed = base + max(base * pct / 100, mib * 1024) + sqlite_kib
    flat = peak <= allowed
    print(f"- RSS after warm-up ({warm} s): first {base / 1024:.1f} MiB at {base_t} s; highest in the last "
          f"third {peak / 1024:.1f} MiB; allowed {allowed / 1024:.1f} MiB (+max({pct:g} %, {mib:g} MiB)"
          + (", + the store's 64 MiB SQLite page cache" if sqlite_kib else "") + "): "
          f"{'FLAT' if flat else 'GROWING'}")
    if len(last) >= 6:
        # Growth that is still going on at the end, whatever the bound: last samples vs the
        # middle of the last third.
        tail_growth = last[-1] - last[len(last) // 2]
        print(f"- RSS over the second half of the last third: {tail_growth / 1024:+.1f} MiB")
    ok = ok and flat
else:
    print("- FAIL: no RSS samples after warm-up"); ok = False
try:
    st = json.load(open(f"{out}/stats.json"))
    cache, store, eng = st.get("cache") or {}, st.get("store") or {}, st.get("engine") or {}
    keep = {"cache_" + k: cache.get(k) for k in ("entries", "bytes", "hit_rate")}
    keep.update({"store_" + k: store.get(k) for k in ("degraded", "enqueued", "dropped", "written_blocks", "write_errors")})
    keep.update({k: eng[k] for k in ("queries_udp", "malformed", "servfail", "upstream_failures",
                                     "rate_limited") if k in eng})
    print(f"- dnsward stats at the end: {json.dumps(keep)}")
    if cache.get("bytes") is not None:
        held = cache["bytes"] / 1048576
        print(f"- answer cache: {held:.2f} MiB held, bound {cache_mib} MiB")
        if held > float(cache_mib) * 1.05:
            print("- FAIL: the answer cache is over its bound"); ok = False
except Exception as e:
    print(f"- (no admin stats: {e})")
print()
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
exit "${PIPESTATUS[0]}"
