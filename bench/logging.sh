#!/usr/bin/env bash
# Cost of the event store and of query logging, on the side-by-side harness (../shared/bench):
# the same dnsward binary three ways, on the hit and miss workloads:
#   off    --admin off                      (no store)
#   store  the default store: blocks + client scoring, answered queries not stored
#   logon  [admin] log_all_queries = true   (every query stored)
# The three are interleaved: ROUNDS rounds, each runs every variant once (one throughput run of
# DUR seconds and one latency run per workload), in a rotating order, so drift of the machine
# over the run hits all three alike. The table gives medians over rounds and ratios to `off`;
# "CPU µs/q" (the resolver's CPU time per answered query, all its threads: the writer is pinned
# to the same core as the DNS worker) is the steadier figure.
#
#   bench/logging.sh                       # builds target/release/dnsward first
#   BIN=/path/to/dnsward WL="hit" DUR=10 ROUNDS=5 bench/logging.sh
# Needs root (network namespace) and a prepared target/bench (run bench/compare.sh once).
# Results: target/bench/results/<TAG>/{summary.csv,logging.md}
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
work=$root/target/bench
if [ -z "${BIN:-}" ]; then
  # bench/compare.sh prepares target/bench and builds the binary; run it with no targets first.
  (cd "$root" && cargo build --release -p dnsward)
  BIN=$root/target/release/dnsward
fi
# The harness runs from target/bench: a relative path would not be found there.
BIN=$(realpath "$BIN")
[ -x "$work/compare.sh" ] || { echo "run bench/compare.sh once first (it prepares $work)" >&2; exit 1; }
tag=${TAG:-logging-$(date -u +%Y%m%dT%H%M%SZ)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/store.toml" <<T
[admin]
listen = "127.0.0.1:0"
db_path = "$tmp/store/events.sqlite3"
T
cat > "$tmp/logon.toml" <<T
[admin]
listen = "127.0.0.1:0"
log_all_queries = true
db_path = "$tmp/logon/events.sqlite3"
T
cd "$work"
variants=(off store logon)
rounds=${ROUNDS:-5}
for r in $(seq 0 $((rounds - 1))); do
  for k in 0 1 2; do
    v=${variants[$(((r + k) % 3))]}
    case $v in
      off) extra="--admin off" ;;
      *) extra="--config $tmp/$v.toml"; rm -rf "${tmp:?}/$v" ;;
    esac
    echo "# round $((r + 1))/$rounds: $v" >&2
    SUT_CMD="$BIN serve --workers 1 --listen 127.0.0.1:5400 --upstream 127.0.0.1:5300 --log warn $extra" \
      SUT_NAME=dnsward-$v TAG=$tag REPS=1 ./compare.sh "${WL:-hit miss}" sut > /dev/null
  done
done
python3 ./summarize.py --ref dnsward-off --order "dnsward-off dnsward-store dnsward-logon" \
  --workloads "${WL:-hit miss}" "results/$tag/summary.csv" | tee "results/$tag/logging.md"
