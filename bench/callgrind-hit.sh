#!/usr/bin/env bash
# Instructions per query of dnsward on the harness's hit workload, under callgrind: counts do not
# depend on how busy the machine is (the function-level ones do not; the process total moves a
# little with how many packets each wake-up finds). Loopback only (nsd on 127.0.0.1:5300,
# dnsward on 127.0.0.1:5400); needs valgrind, nsd, dnsperf and a prepared target/bench.
#
#   bench/callgrind-hit.sh NAME [dnsward serve args...]
#   bench/callgrind-hit.sh off --admin off
#   bench/callgrind-hit.sh logon --config /tmp/logon.toml
#   QUERIES=miss100k.txt bench/callgrind-hit.sh miss-off --admin off   # the miss workload instead
# Writes target/bench/callgrind/cg.NAME; prints queries answered and the total; then e.g.
#   callgrind_annotate --inclusive=yes target/bench/callgrind/cg.NAME | grep answer_fast
set -euo pipefail
name=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
B=$root/target/bench
[ -f "$B/run/conf/nsd.conf" ] || { echo "run bench/compare.sh once first (it prepares $B)" >&2; exit 1; }
out=$B/callgrind
mkdir -p "$out"
BIN=${BIN:-$root/target/release/dnsward}
cd "$B"
nsd -d -c "$B/run/conf/nsd.conf" > "$out/nsd.$name.log" 2>&1 &
NSD=$!
trap 'kill $NSD 2>/dev/null || true' EXIT
sleep 1
valgrind --tool=callgrind --callgrind-out-file="$out/cg.$name" "$BIN" serve --workers 1 \
  --listen 127.0.0.1:5400 --upstream 127.0.0.1:5300 --log warn "$@" > "$out/sut.$name.log" 2>&1 &
SUT=$!
for _ in $(seq 1 60); do
  dig +short +tries=1 +time=1 -p 5400 @127.0.0.1 a.bench.lab > /dev/null 2>&1 && break
  sleep 1
done
# Start counting after start-up (model load, store open), then 40,000 queries at 2000 qps.
callgrind_control -z "$SUT" > /dev/null
dnsperf -s 127.0.0.1 -p 5400 -d "$B/queries/${QUERIES:-hit1k.txt}" -l 20 -Q 2000 -c 4 > "$out/dnsperf.$name.txt" 2>&1
kill -INT "$SUT"
wait "$SUT" || true
grep -E "Queries completed" "$out/dnsperf.$name.txt"
callgrind_annotate "$out/cg.$name" 2>/dev/null | grep "PROGRAM TOTALS"
