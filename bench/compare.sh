#!/usr/bin/env bash
# Side-by-side DNS benchmark: dnsward against unbound, dnsdist and kresd, in the same run, with
# the harness from ../shared/bench (nsd upstream on loopback, dnsperf; everything inside a
# private network namespace that only has lo).
#
#   bench/compare.sh                                  # hit miss mixed, peers unbound dnsdist-cache kresd
#   WORKLOADS="hit" PEERS="unbound" bench/compare.sh  # a subset
#   DUR=10 REPS=3 bench/compare.sh                    # harness knobs pass through
#
# Needs root (network namespace) and the peers: sudo ../shared/bench/install-peers.sh
# Results: target/bench/results/<TAG>/compare.md
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
shared=${SHARED:-$root/../shared}
[ -d "$shared/bench" ] || { echo "no $shared/bench: the benchmark harness lives in ../shared" >&2; exit 1; }
command -v dnsperf >/dev/null || { echo "dnsperf missing: run sudo $shared/bench/install-peers.sh" >&2; exit 1; }

work=$root/target/bench
mkdir -p "$work"
# The harness writes beside itself (zones/, queries/, run/, results/): run a copy.
cp -a "$shared/bench/." "$work/"
if [ ! -f "$work/queries/mixed.txt" ]; then
  DATA_DIR="$shared/data" python3 "$work/gen_data.py"
fi
(cd "$root" && cargo build --release -p dnsward)
ver=$("$root/target/release/dnsward" --version | awk '{print $2}')
# One worker thread, like every peer in conf/; logs at warn so a block costs no log line.
export SUT_CMD="$root/target/release/dnsward serve --workers 1 --listen 127.0.0.1:5400 --upstream 127.0.0.1:5300 --log warn ${DNSWARD_ARGS:-}"
export SUT_NAME=${SUT_NAME:-dnsward} SUT_VERSION=$ver
cd "$work"
./compare.sh "${WORKLOADS:-hit miss mixed}" sut ${PEERS:-unbound dnsdist-cache kresd}
