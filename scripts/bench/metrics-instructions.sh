#!/usr/bin/env bash
# The broker's metrics cost in CPU instructions, counted by callgrind
# (repeatable on a busy machine, unlike wall-clock throughput):
#   1. a produce run with no scrape, then with SCRAPES scrapes of /metrics:
#      the difference divided by SCRAPES is the cost of one scrape;
#   2. a produce run with one record per request (the worst case for
#      per-request bookkeeping): the share of the broker's instructions
#      spent in strom_broker::metrics (recording counters and histograms).
#
#   scripts/bench/metrics-instructions.sh [SCRAPES]
#
# Needs valgrind and a release build; STROM=path/to/strom overrides
# ${CARGO_TARGET_DIR:-target}/release/strom.
set -euo pipefail
SCRAPES=${1:-50}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STROM=${STROM:-${CARGO_TARGET_DIR:-$ROOT/target}/release/strom}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/strom-metrics-cg.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# measure NAME SCRAPES COUNT [bench flags...]: prints the instructions.
measure() {
  local name=$1 scrapes=$2 count=$3 dir="$WORK/$1" pid
  shift 3
  mkdir -p "$dir"
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" \
    "$STROM" serve --data-dir "$dir/data" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    >"$dir/out" 2>"$dir/err" &
  pid=$!
  for _ in $(seq 600); do grep -q '^admin on' "$dir/out" 2>/dev/null && break; sleep 0.2; done
  local boot admin
  boot=$(sed -n 's/^listening on //p' "$dir/out")
  admin=$(sed -n 's#^admin on http://##p' "$dir/out")
  "$STROM" bench produce --bootstrap "$boot" --topic bench --create --count "$count" \
    --acks 1 "$@" --json >/dev/null
  for _ in $(seq "$scrapes"); do curl -s -o /dev/null "http://$admin/metrics"; done
  kill -TERM "$pid"
  wait "$pid" || true
  sed -n 's/.*Collected : //p' "$dir/err"
}

plain=$(measure plain 0 200000)
scraped=$(measure scraped "$SCRAPES" 200000)
per_scrape=$(( (scraped - plain) / SCRAPES ))
echo "200 000 records, 100 B, acks=1: broker $plain instructions; with $SCRAPES scrapes $scraped"
echo "one scrape of /metrics: $per_scrape instructions"

small=$(measure small 0 20000 -X batch.num.messages=1 -X linger.ms=0)
share=$(callgrind_annotate --inclusive=yes "$WORK/small/cg.out" 2>/dev/null |
  awk '/=> .*metrics\/mod.rs:strom_broker::metrics::Metrics::(request_done|produced|response_errors|fetched) / {
         gsub(",", "", $1); sum += $1 } END { print sum + 0 }')
echo "20 000 records, one per Produce request: broker $small instructions ($(( small / 20000 )) per request)"
python3 -c "import sys; s, t = int(sys.argv[1]), int(sys.argv[2]); print(f'recording metrics: {s} instructions, {100 * s / t:.1f}% of the broker ({s // 20000} per request)')" "$share" "$small"
