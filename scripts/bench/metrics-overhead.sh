#!/usr/bin/env bash
# What scraping /metrics costs the broker: the same produce benchmark with
# and without a scraper polling /metrics, alternating, RUNS times each.
# Reports records/s and the broker's CPU-seconds per run (from
# /proc/PID/stat), medians and the ratio.
#
#   scripts/bench/metrics-overhead.sh [RUNS] [SCRAPE_INTERVAL_S]
#
# Needs a release build (cargo build --release -p strom); uses
# $CARGO_TARGET_DIR/release/strom (default target/release/strom).
set -euo pipefail
RUNS=${1:-5}
INTERVAL=${2:-1}
COUNT=${COUNT:-2000000}
SIZE=${SIZE:-100}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STROM=${STROM:-${CARGO_TARGET_DIR:-$ROOT/target}/release/strom}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/strom-metrics-bench.XXXXXX")
BROKER=""
trap '[ -n "$BROKER" ] && kill "$BROKER" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT

"$STROM" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  >"$WORK/out" 2>"$WORK/err" &
BROKER=$!
for _ in $(seq 100); do grep -q '^admin on' "$WORK/out" 2>/dev/null && break; sleep 0.1; done
BOOT=$(sed -n 's/^listening on //p' "$WORK/out")
ADMIN=$(sed -n 's#^admin on http://##p' "$WORK/out")

cpu() { awk '{ print $14 + $15 }' "/proc/$BROKER/stat"; }  # ticks (1/100 s)

run() { # run MODE N
  local mode=$1 n=$2 topic="bench-$1-$2" scraper="" c0 c1 json
  if [ "$mode" = scraped ]; then
    (while true; do curl -s -o /dev/null "http://$ADMIN/metrics"; sleep "$INTERVAL"; done) &
    scraper=$!
  fi
  c0=$(cpu)
  json=$("$STROM" bench produce --bootstrap "$BOOT" --topic "$topic" --create \
    --count "$COUNT" --record-size "$SIZE" --acks 1 --json)
  c1=$(cpu)
  [ -n "$scraper" ] && kill "$scraper" && wait "$scraper" 2>/dev/null || true
  local rate
  rate=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["produced"]["records_per_sec"])' "$json")
  echo "$mode $rate $(( c1 - c0 ))"
}

for i in $(seq "$RUNS"); do
  run plain "$i"
  run scraped "$i"
done | tee "$WORK/results"

python3 - "$WORK/results" "$INTERVAL" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
def col(mode, i): return [float(r[i]) for r in rows if r[0] == mode]
p_rate, s_rate = statistics.median(col("plain", 1)), statistics.median(col("scraped", 1))
p_cpu, s_cpu = statistics.median(col("plain", 2)) / 100, statistics.median(col("scraped", 2)) / 100
print(f"scrape every {sys.argv[2]} s; medians of {len(col('plain', 1))} runs each")
print(f"records/s    plain {p_rate:,.0f}   scraped {s_rate:,.0f}   ratio {s_rate / p_rate:.3f}")
print(f"broker CPU-s plain {p_cpu:.2f}     scraped {s_cpu:.2f}     ratio {s_cpu / p_cpu:.3f}")
PY
