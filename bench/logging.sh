#!/usr/bin/env bash
# Cost of the event store and of query logging, on the side-by-side harness (../shared/bench):
# the same dnsward binary three times, on the hit and miss workloads:
#   off    --admin off                      (no store)
#   store  the default store: blocks + client scoring, answered queries not stored
#   logon  [admin] log_all_queries = true   (every query stored)
#
#   bench/logging.sh                       # builds target/release/dnsward first (bench/compare.sh)
#   BIN=/path/to/dnsward WL="hit" DUR=10 REPS=2 bench/logging.sh
# Needs root (network namespace). Results: target/bench/results/<TAG>-{off,store,logon}/compare.md
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
work=$root/target/bench
if [ -z "${BIN:-}" ]; then
  # bench/compare.sh prepares target/bench and builds the binary; run it with no targets first.
  (cd "$root" && cargo build --release -p dnsward)
  BIN=$root/target/release/dnsward
fi
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
for v in off store logon; do
  case $v in
    off) extra="--admin off" ;;
    *) extra="--config $tmp/$v.toml" ;;
  esac
  SUT_CMD="$BIN serve --workers 1 --listen 127.0.0.1:5400 --upstream 127.0.0.1:5300 --log warn $extra" \
    SUT_NAME=dnsward-$v TAG=$tag-$v ./compare.sh "${WL:-hit miss}" sut
done
