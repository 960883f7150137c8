#!/usr/bin/env bash
# The test command: installs everything the tests need, then runs every test.
#
#   ./scripts/test.sh            installs, builds, runs the Rust suites, then
#                                starts `strom serve` and runs the third-party
#                                client suites (confluent-kafka, kafka-python,
#                                kafkajs, kcat; Go clients in compat/go when
#                                present) against it; then compat/java (Java
#                                client, Kafka's tools, Streams, Connect) and
#                                a differential run against Apache Kafka
#   ./scripts/test.sh --quick    the same, skipping long-running tests
#   ./scripts/test.sh --full     also the long-running tests (STROM_FULL=1),
#                                the whole differential run, and every client
#                                suite against Apache Kafka too
#
# Made for Debian 12 as root (or with sudo), with Rust, Python 3, Node.js 20
# and npm already installed. Caches live outside the clone:
#   STROM_CACHE_DIR   (default ~/.cache)        venv and cargo target dir
#   CARGO_TARGET_DIR  (default $STROM_CACHE_DIR/strom-target)
#   STROM_VENV        (default $STROM_CACHE_DIR/strom-venv)
#   STROM_KEEP_TMP=1  keep the broker's data dir and logs after the run
#   STROM_TEST_BOOTSTRAP=HOST:PORT  run the client suites against that
#                     cluster (e.g. a real Kafka, to check the tests
#                     themselves) instead of starting `strom serve`
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

usage() { sed -n '2,25s/^# \{0,1\}//p' "$ROOT/scripts/test.sh"; }

QUICK=0
FULL=${STROM_FULL:-0}
for arg in "$@"; do
  case $arg in
    --quick) QUICK=1 ;;
    --full) FULL=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "test.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done
# Long tests (soak, crash loops, big data sets) run only when STROM_FULL=1;
# --quick wins over it. Nothing is skipped by --quick yet. STROM_FULL is
# exported only when set: `strom serve` (started by some Rust tests too)
# treats every STROM_* variable as a broker config override.
if [ "$QUICK" = 1 ]; then
  unset STROM_FULL
elif [ "$FULL" = 1 ]; then
  export STROM_FULL=1
else
  unset STROM_FULL
fi

CACHE=${STROM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}}
VENV=${STROM_VENV:-$CACHE/strom-venv}
# This script's own knobs stay in this shell, out of the tests' environment.
export -n STROM_CACHE_DIR STROM_VENV STROM_KEEP_TMP STROM_TEST_BOOTSTRAP 2>/dev/null || true
# compat/java's knobs come from this script only.
unset COMPAT_KAFKA COMPAT_KAFKA_BOOTSTRAP COMPAT_KAFKA_CLASSES COMPAT_TARGETS COMPAT_UPDATE_DOCS COMPAT_OTHER_CLUSTER 2>/dev/null || true
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/strom-target}
export PYTHONDONTWRITEBYTECODE=1
export KAFKAJS_NO_PARTITIONER_WARNING=1
mkdir -p "$CACHE"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/strom-test.XXXXXX")
BROKER_PID=""
START_TIME=$SECONDS

step() { printf '\n==> %s\n' "$*"; }

# True while the broker process runs (a zombie awaiting `wait` does not count).
broker_running() {
  local state
  [ -n "$BROKER_PID" ] && [ -r "/proc/$BROKER_PID/stat" ] || return 1
  read -r _ _ state _ <"/proc/$BROKER_PID/stat" 2>/dev/null || return 1
  [ "$state" != Z ]
}

# stop_broker [SECONDS]: SIGTERM, then SIGKILL if still running after SECONDS.
# Returns the broker's exit status (137 when it had to be killed).
stop_broker() {
  local grace=${1:-10} rc=0
  [ -n "$BROKER_PID" ] || return 0
  if broker_running; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    for _ in $(seq $((grace * 10))); do
      broker_running || break
      sleep 0.1
    done
    if broker_running; then
      echo "broker (pid $BROKER_PID) still running ${grace} s after SIGTERM; killing it" >&2
      kill -KILL "$BROKER_PID" 2>/dev/null || true
    fi
  fi
  wait "$BROKER_PID" 2>/dev/null || rc=$?
  BROKER_PID=""
  return "$rc"
}

cleanup() {
  local rc=$?
  stop_broker || true
  if [ -n "${KAFKA_PID:-}" ]; then kill -TERM "$KAFKA_PID" 2>/dev/null || true; wait "$KAFKA_PID" 2>/dev/null || true; fi
  if [ "${STROM_KEEP_TMP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
    echo "test.sh: logs and broker data kept in $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --------------------------------------------------------------------------
# 1. Installs. Always run: they are idempotent, and a fresh machine needs them.
# --------------------------------------------------------------------------
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
# kcat: Debian's (librdkafka 2.0.x), one of the clients under test.
# build-essential, pkg-config, zlib1g-dev: rdkafka's bundled librdkafka is
#   built with ./configure + make, with zlib found through pkg-config.
# python3-venv: the virtualenv for the Python clients.
# mosquitto, postgresql, openssl: Connect's tests start their own Mosquitto
#   and PostgreSQL servers (never the system services) and make TLS
#   certificates with the openssl tool.
# openjdk-17-jdk-headless, maven: compat/java (Kafka 4.x needs Java 17+).
APT_PACKAGES=(kcat build-essential pkg-config zlib1g-dev python3 python3-venv
  mosquitto postgresql openssl openjdk-17-jdk-headless maven)

step "apt-get install ${APT_PACKAGES[*]}"
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3; do
  if $SUDO apt-get update -q; then break; fi
  if [ "$attempt" = 3 ]; then echo "apt-get update failed" >&2; exit 1; fi
  sleep 5
done
$SUDO apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}"

step "python venv $VENV (compat/clients/python/requirements.txt)"
PYTHON=${PYTHON:-python3}
if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
  -r compat/clients/python/requirements.txt

step "npm ci (compat/clients/js)"
(cd compat/clients/js && npm ci --no-audit --no-fund --loglevel=error)

if [ -f compat/go/go.mod ]; then
  step "go mod download (compat/go)"
  (cd compat/go && go mod download)
fi

# --- compat/java (issue 5): Kafka's jars from Maven Central, cached in ~/.m2 --
step "mvn dependency:go-offline test-compile (compat/java)"
(cd compat/java && mvn -B -q dependency:go-offline && mvn -B -q test-compile)

step "tool versions"
rustc --version
cargo --version
node --version
if command -v go >/dev/null; then go version; fi
"$VENV/bin/python" --version
"$VENV/bin/python" -c 'import confluent_kafka, kafka; print("confluent-kafka", confluent_kafka.version()[0], "librdkafka", confluent_kafka.libversion()[0], "/ kafka-python", kafka.__version__)'
echo "kafkajs $(node -p 'require("./compat/clients/js/node_modules/kafkajs/package.json").version')"
kcat -V 2>&1 | grep -m1 Version || true
java -version 2>&1 | sed -n 1p || true
mvn -v 2>/dev/null | sed -n 1p || true

# --------------------------------------------------------------------------
# 2. Build once.
# --------------------------------------------------------------------------
step "cargo build --release -p strom (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
cargo build --release -p strom
STROM_BIN="$CARGO_TARGET_DIR/release/strom"

step "cargo test --workspace --no-run"
cargo test --workspace --no-run

# --------------------------------------------------------------------------
# 3. Run every suite; a failing suite does not stop the others.
# --------------------------------------------------------------------------
SUMMARY=()
TOTAL_PASSED=0
TOTAL_FAILED=0
TOTAL_SKIPPED=0

# Sum the runner's own counts from its log: cargo's "test result:" lines,
# pytest's closing line, node's "pass/fail/skipped/todo" lines, go's
# "--- PASS/FAIL/SKIP" lines (subtests included).
count_results() {
  local kind=$1 log=$2
  case $kind in
    cargo)
      grep -E '^test result:' "$log" | awk '
        { for (i = 1; i <= NF; i++) {
            if ($(i+1) ~ /^passed/) p += $i
            if ($(i+1) ~ /^failed/) f += $i
            if ($(i+1) ~ /^ignored/) s += $i } }
        END { printf "%d %d %d\n", p, f, s }' ;;
    pytest)
      grep -E '^=+ .* in [0-9.]+s' "$log" | tail -n1 | awk '
        { for (i = 1; i <= NF; i++) {
            w = $(i+1); sub(/,$/, "", w)
            if (w == "passed") p += $i
            if (w == "failed" || w == "error" || w == "errors") f += $i
            if (w == "skipped" || w == "xfailed" || w == "deselected") s += $i } }
        END { printf "%d %d %d\n", p, f, s }' ;;
    node)
      grep -E '^[^ ]+ (pass|fail|cancelled|skipped|todo) [0-9]+$' "$log" | awk '
        $2 == "pass" { p += $3 } $2 == "fail" || $2 == "cancelled" { f += $3 }
        $2 == "skipped" || $2 == "todo" { s += $3 }
        END { printf "%d %d %d\n", p, f, s }' ;;
    go)
      grep -E '^ *--- (PASS|FAIL|SKIP):' "$log" | awk '
        $2 == "PASS:" { p++ } $2 == "FAIL:" { f++ } $2 == "SKIP:" { s++ }
        END { printf "%d %d %d\n", p, f, s }' ;;
    maven)
      # Surefire's closing "Tests run: N, Failures: F, Errors: E, Skipped: S".
      grep -E 'Tests run: [0-9]+, Failures: [0-9]+, Errors: [0-9]+, Skipped: [0-9]+$' "$log" | tail -n1 |
        sed -E 's/.*Tests run: ([0-9]+), Failures: ([0-9]+), Errors: ([0-9]+), Skipped: ([0-9]+)/\1 \2 \3 \4/' |
        awk '{ printf "%d %d %d\n", $1 - $2 - $3 - $4, $2 + $3, $4 } END { if (NR == 0) print "0 0 0" }' ;;
    single)
      echo "0 0 0" ;;
  esac
}

# run_suite NAME KIND COMMAND...: runs it, tees its output to a log, counts.
run_suite() {
  local name=$1 kind=$2
  shift 2
  local log="$WORK/$name.log" rc=0 t0=$SECONDS
  step "$name: $*"
  if [ "$kind" = single ]; then
    # In this shell, not a pipeline: it may need to `wait` for the broker.
    "$@" >"$log" 2>&1 || rc=$?
    cat "$log"
  else
    "$@" 2>&1 | tee "$log" || rc=$?
  fi
  local passed failed skipped
  read -r passed failed skipped < <(count_results "$kind" "$log")
  if [ "$kind" = single ]; then
    if [ "$rc" -eq 0 ]; then passed=1; else failed=1; fi
  elif [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1 # crashed or timed out before reporting a failure
  fi
  TOTAL_PASSED=$((TOTAL_PASSED + passed))
  TOTAL_FAILED=$((TOTAL_FAILED + failed))
  TOTAL_SKIPPED=$((TOTAL_SKIPPED + skipped))
  local verdict=ok
  if [ "$rc" -ne 0 ]; then verdict="FAILED (exit $rc)"; fi
  SUMMARY+=("$(printf '%-16s %-18s %4d passed, %d failed, %d skipped  (%ds)' \
    "$name" "$verdict" "$passed" "$failed" "$skipped" $((SECONDS - t0)))")
}

# Bounded so that a hung test fails the run instead of eating the CI budget.
run_suite rust cargo timeout 2700 cargo test --workspace

# --- the broker under test, for the third-party clients ---
start_broker() {
  step "start $STROM_BIN serve"
  mkdir -p "$WORK/data"
  # `strom serve` reads every STROM_* variable as a config override; the
  # harness's own (STROM_FULL, STROM_BOOTSTRAP, ...) are not meant for it.
  local -a clean_env=()
  local var
  for var in $(compgen -e); do
    case $var in STROM_*) clean_env+=(-u "$var") ;; esac
  done
  env "${clean_env[@]}" "$STROM_BIN" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    >"$WORK/broker.out" 2>"$WORK/broker.log" &
  BROKER_PID=$!
  local line=""
  for _ in $(seq 200); do
    line=$(grep -m1 -E '^listening on ' "$WORK/broker.out" || true)
    [ -n "$line" ] && break
    broker_running || break
    sleep 0.1
  done
  if [ -z "$line" ]; then
    echo "strom serve did not print 'listening on HOST:PORT' within 20 s" >&2
    echo "--- stdout"; cat "$WORK/broker.out"
    echo "--- stderr (last 50 lines)"; tail -n 50 "$WORK/broker.log"
    return 1
  fi
  local addr=${line#listening on }
  export STROM_BOOTSTRAP="127.0.0.1:${addr##*:}"
  # The admin listener (/metrics) is announced on the next line.
  local admin=""
  for _ in $(seq 50); do
    admin=$(grep -m1 -E '^admin on http://' "$WORK/broker.out" || true)
    [ -n "$admin" ] && break
    sleep 0.1
  done
  if [ -n "$admin" ]; then
    export STROM_ADMIN=${admin#admin on http://}
  fi
  echo "broker pid $BROKER_PID, $line; STROM_BOOTSTRAP=$STROM_BOOTSTRAP STROM_ADMIN=${STROM_ADMIN:-none}"
}

# The broker itself: it must not panic, and SIGTERM must stop it cleanly.
check_broker_shutdown() {
  if grep -n 'panicked at' "$WORK/broker.log"; then
    echo "the broker panicked (log: $WORK/broker.log)"
    return 1
  fi
  if ! broker_running; then
    echo "the broker is no longer running (log: $WORK/broker.log)"
    return 1
  fi
  local rc=0 t0=$SECONDS
  stop_broker 15 || rc=$?
  echo "broker exited with status $rc $((SECONDS - t0)) s after SIGTERM"
  [ "$rc" -eq 0 ]
}

run_client_suites() {
  run_suite python-clients pytest timeout 900 "$VENV/bin/python" -m pytest -v \
    compat/clients/python
  run_suite kafkajs node timeout 600 bash -c \
    'cd compat/clients/js && exec node --test --test-reporter=spec test/kafkajs.test.mjs'
  if [ -f compat/go/go.mod ]; then
    run_suite go-clients go timeout 600 bash -c 'cd compat/go && exec go test -count=1 -parallel 8 -v ./...'
  fi
}

# --- compat/java (issue 5) -------------------------------------------------
# The reference Apache Kafka: a single KRaft node from the Maven jars
# (kafka-storage format, then the server), free loopback ports, its own dir
# under $WORK; started once per run, stopped by its PID in cleanup.
KAFKA_PID=""
start_reference_kafka() {
  step "start the reference Apache Kafka (compat/java ReferenceKafka)"
  local cp
  cp="$ROOT/compat/java/target/test-classes:$(cat "$ROOT/compat/java/target/classpath.txt")"
  java -cp "$cp" dev.strom.compat.ReferenceKafka "$WORK/reference-kafka" >"$WORK/reference-kafka.out" 2>&1 &
  KAFKA_PID=$!
  local line=""
  for _ in $(seq 1200); do
    line=$(grep -m1 -E '^listening on ' "$WORK/reference-kafka.out" || true)
    [ -n "$line" ] && break
    kill -0 "$KAFKA_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$line" ]; then
    echo "the reference Apache Kafka did not start; see $WORK/reference-kafka.out and $WORK/reference-kafka/server.log" >&2
    cat "$WORK/reference-kafka.out" >&2
    return 1
  fi
  export COMPAT_KAFKA_BOOTSTRAP=${line#listening on }
  echo "reference Kafka pid $KAFKA_PID, COMPAT_KAFKA_BOOTSTRAP=$COMPAT_KAFKA_BOOTSTRAP"
}
stop_reference_kafka() {
  [ -n "$KAFKA_PID" ] || return 0
  kill -TERM "$KAFKA_PID" 2>/dev/null || true
  wait "$KAFKA_PID" 2>/dev/null || true
  KAFKA_PID=""
}

# The Java suite against $STROM_BOOTSTRAP, and against the reference Kafka
# when it runs (COMPAT_KAFKA_BOOTSTRAP): the short tier compares the
# producer, consumer, admin and API-version scenarios, the full tier all.
run_java_suite() {
  local -a env=(env)
  # Against another cluster, its API versions are not Strom's.
  if [ -n "${STROM_TEST_BOOTSTRAP:-}" ]; then env+=(COMPAT_OTHER_CLUSTER=1); fi
  if [ -n "${COMPAT_KAFKA_BOOTSTRAP:-}" ] && [ "$FULL" != 1 ]; then
    env+=(COMPAT_KAFKA_CLASSES=ProducerTest,ConsumerTest,AdminTest,ApiVersionsTest)
  fi
  run_suite java-compat maven timeout 1800 "${env[@]}" bash -c 'cd compat/java && exec mvn -B test'
  if [ -s compat/java/target/compat/differences.txt ]; then
    step "differential report (compat/java/target/compat/differences.txt)"
    cat compat/java/target/compat/differences.txt
  fi
}

if [ -n "${STROM_TEST_BOOTSTRAP:-}" ]; then
  step "client suites against STROM_TEST_BOOTSTRAP=$STROM_TEST_BOOTSTRAP (no strom serve)"
  export STROM_BOOTSTRAP=$STROM_TEST_BOOTSTRAP
  run_client_suites
  run_java_suite
elif start_broker; then
  run_client_suites
  if start_reference_kafka; then
    run_java_suite
    if [ "$FULL" = 1 ]; then
      # The full tier checks the tests themselves: every client suite
      # against Apache Kafka as well.
      # Against another cluster: no Strom admin listener (test_metrics skips).
      VS_KAFKA_ENV=(env -u STROM_ADMIN STROM_BOOTSTRAP="$COMPAT_KAFKA_BOOTSTRAP"
        STROM_TEST_BOOTSTRAP="$COMPAT_KAFKA_BOOTSTRAP")
      run_suite py-vs-kafka pytest timeout 900 "${VS_KAFKA_ENV[@]}" "$VENV/bin/python" -m pytest -v \
        compat/clients/python
      run_suite kafkajs-vs-kafka node timeout 600 "${VS_KAFKA_ENV[@]}" bash -c \
        'cd compat/clients/js && exec node --test --test-reporter=spec test/kafkajs.test.mjs'
      if [ -f compat/go/go.mod ]; then
        run_suite go-vs-kafka go timeout 600 "${VS_KAFKA_ENV[@]}" bash -c \
          'cd compat/go && exec go test -count=1 -parallel 8 -v ./...'
      fi
    fi
  else
    SUMMARY+=("$(printf '%-16s %-18s' java-compat 'FAILED (no reference Kafka)')")
    TOTAL_FAILED=$((TOTAL_FAILED + 1))
  fi
  stop_reference_kafka
  run_suite broker-shutdown single check_broker_shutdown
else
  SUMMARY+=("$(printf '%-16s %-18s' client-suites 'FAILED (no broker)')")
  TOTAL_FAILED=$((TOTAL_FAILED + 1))
fi

# The benchmark suite is not a test; a tiny run keeps it working (Strom only,
# no report; the full suite is scripts/bench/suite.py, see docs/benchmarks.md).
run_suite bench-smoke single timeout 300 "$VENV/bin/python" scripts/bench/suite.py --smoke \
  --strom "$STROM_BIN"

if [ "$TOTAL_FAILED" -ne 0 ] && [ -s "$WORK/broker.log" ]; then
  step "broker log (last 60 lines of $WORK/broker.log)"
  tail -n 60 "$WORK/broker.log"
fi

step "summary ($((SECONDS - START_TIME)) s)"
printf '%s\n' "${SUMMARY[@]}"
echo "total: $TOTAL_PASSED passed, $TOTAL_FAILED failed, $TOTAL_SKIPPED skipped"
[ "$TOTAL_FAILED" -eq 0 ]
