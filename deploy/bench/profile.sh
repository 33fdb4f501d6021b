#!/usr/bin/env bash
# Where the time goes: runs our cluster (one `zaqar api` + one `zaqar storage`
# on a private Redis) under `zaqar bench` load and reports, per scenario, each
# process's CPU per HTTP request and its wait for a core, then profiles the
# same load with `perf` and draws one flamegraph per process.
#
# Usage: deploy/bench/profile.sh [--duration D] [--out DIR] [SCENARIO...]
#
# Scenarios (64 connections, 256-byte bodies, like compare.sh; default all):
#   post1    zaqar bench --producers 64 --batch 1
#   post10   zaqar bench --producers 64 --batch 10
#   consume  zaqar bench --consumers 64 --claim 10 --prefill N (claim up to 10,
#            delete each claimed message with its claim id)
#
# Each scenario runs twice on an emptied Redis database, DURATION each:
#   1. accounting: /proc/PID/stat and /proc/PID/schedstat of the load
#      generator, the API node, the storage node and redis-server are read
#      WARMUP after the start and WARMUP before the end; from them, CPU as a
#      share of one core and in microseconds per HTTP request, and the share
#      of the time each process was ready to run but waited for a core.
#   2. profile: `perf record -F FREQ --call-graph dwarf` of the four processes
#      over the same window (perf costs CPU itself, so its run is not the one
#      accounted); stacks folded with inferno-collapse-perf per process, a
#      flamegraph SVG each (inferno-flamegraph) and the functions with the
#      most self time.
#
# Output: DIR/summary.txt (also printed), DIR/SCENARIO/{accounting,profile}.json
# (the bench reports), DIR/SCENARIO/PROCESS.folded and PROCESS.svg. DIR
# defaults to ./profile-YYYYmmdd-HHMMSS (ignored by git at the repository's
# top).
#
# Environment:
#   DURATION      each run, humantime (default 10s; at least 5s)
#   WARMUP        seconds left out at each end of a run (default 1.5)
#   CONNECTIONS   producers / consumers (default 64)
#   FREQ          perf samples per second per CPU (default 499)
#   PREFILL       messages posted before a consume run (default 400000)
#   ZAQAR_BIN     our binary (default: `cargo build --release -p zaqar`)
#   INFERNO_ROOT  where inferno is installed when not on PATH (default
#                 ${XDG_CACHE_HOME:-$HOME/.cache}/zaqar-bench/inferno, by
#                 `cargo install --locked inferno` from crates.io)
#   KEEP=1        keep the work directory (logs) even on success
#
# Needs perf (Debian: apt-get install linux-perf) with permission to profile
# other processes (root, or kernel.perf_event_paranoid <= 1), redis-server,
# redis-cli, curl and python3. Every process is started on 127.0.0.1 and a
# free port and stopped by its PID on exit.
#
# The release profile keeps symbols but no debug info: frames inlined into
# their callers (most of them, with fat LTO) show under the caller's name.
# `perf` unwinds with the binaries' .eh_frame (DWARF), which Rust and Redis
# both ship, so no frame pointers are needed. Debian's redis-server lacks its
# static symbols (the Lua interpreter then shows as `[redis-check-rdb]`); a
# redis-server built from source (`apt-get source redis`, `make`) put first
# on PATH is profiled with them.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PROG=profile.sh
HELPER="$HERE/profile_helper.py"

PROJECT=profile
CLIENT_ID=3381af92-2b9e-11e3-b191-71861300734c
MESSAGE_SIZE=256
CLAIM=10
READY_TIMEOUT=60
STOP_TIMEOUT=10
TOP=15 # functions listed per process

# shellcheck source=deploy/bench/lib.sh
. "$HERE/lib.sh"

usage() {
    cat <<EOF
usage: deploy/bench/profile.sh [--duration D] [--out DIR] [SCENARIO...]

Runs zaqar api + zaqar storage on a private Redis under \`zaqar bench\` load
(SCENARIO: post1, post10, consume; default all) and reports each process's
CPU per request and wait for a core, plus perf flamegraphs per process.

  --duration D   each run, e.g. 10s (default \$DURATION or 10s)
  --out DIR      where the results go (default ./profile-<date>-<time>)
  -h, --help     this help

Environment: DURATION, WARMUP, CONNECTIONS, FREQ, PREFILL, ZAQAR_BIN,
INFERNO_ROOT, KEEP=1. See the comments at the top of this script.
EOF
}

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-1.5}
CONNECTIONS=${CONNECTIONS:-64}
FREQ=${FREQ:-499}
PREFILL=${PREFILL:-400000}
KEEP=${KEEP:-}
INFERNO_ROOT=${INFERNO_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/zaqar-bench/inferno}
OUT=
SCENARIOS=()

while [ $# -gt 0 ]; do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --duration)
        [ $# -ge 2 ] || die "--duration needs a value"
        DURATION=$2
        shift 2
        ;;
    --out)
        [ $# -ge 2 ] || die "--out needs a value"
        OUT=$2
        shift 2
        ;;
    post1 | post10 | consume)
        SCENARIOS+=("$1")
        shift
        ;;
    *)
        usage >&2
        die "unknown argument: $1"
        ;;
    esac
done
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(post1 post10 consume)

is_pos_int "$CONNECTIONS" || die "CONNECTIONS must be a positive integer"
is_pos_int "$FREQ" || die "FREQ must be a positive integer"
is_uint "$PREFILL" || die "PREFILL must be a non-negative integer"
[[ $WARMUP =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "WARMUP must be a number of seconds"
for tool in python3 curl redis-server redis-cli perf; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found (apt-get install -y redis-server redis-tools curl python3 linux-perf)"
done
! is_uint "$DURATION" || DURATION="${DURATION}s" # zaqar bench wants a unit
DURATION_S=$(python3 "$HERE/compare_helper.py" seconds "$DURATION") ||
    die "cannot read DURATION '$DURATION' (e.g. 10s)"
WINDOW=$(python3 -c 'import sys; print(round(float(sys.argv[1]) - 2 * float(sys.argv[2]), 1))' "$DURATION_S" "$WARMUP")
python3 -c 'import sys; sys.exit(float(sys.argv[1]) < 2)' "$WINDOW" ||
    die "DURATION must exceed 2 x WARMUP by at least 2 s (window $WINDOW s)"

OUT=${OUT:-$PWD/profile-$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT" || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/zaqar-profile.XXXXXX")
bench_traps

# --- tools -------------------------------------------------------------------

# Finds inferno-collapse-perf and inferno-flamegraph, installing them from
# crates.io into INFERNO_ROOT when missing; sets COLLAPSE and FLAMEGRAPH.
ensure_inferno() {
    local bin
    for bin in "" "$INFERNO_ROOT/bin/"; do
        if command -v "${bin}inferno-collapse-perf" >/dev/null 2>&1 &&
            command -v "${bin}inferno-flamegraph" >/dev/null 2>&1; then
            COLLAPSE=${bin}inferno-collapse-perf FLAMEGRAPH=${bin}inferno-flamegraph
            return 0
        fi
    done
    command -v cargo >/dev/null 2>&1 || die "inferno is not installed and cargo is missing"
    log "installing inferno into $INFERNO_ROOT (cargo install --locked inferno; a few minutes)"
    cargo install --locked --quiet inferno --root "$INFERNO_ROOT" >"$WORK/inferno-install.log" 2>&1 ||
        die "cargo install inferno failed; last lines of $WORK/inferno-install.log:
$(tail -n 20 "$WORK/inferno-install.log")"
    COLLAPSE=$INFERNO_ROOT/bin/inferno-collapse-perf FLAMEGRAPH=$INFERNO_ROOT/bin/inferno-flamegraph
}

# Fails early when perf may not profile other processes.
check_perf() {
    perf record -q -o "$WORK/perf-check.data" -p "$REDIS_PID" -- sleep 0.2 >"$WORK/perf-check.log" 2>&1 ||
        die "perf cannot profile other processes (run as root or set kernel.perf_event_paranoid=1):
$(tail -n 5 "$WORK/perf-check.log")"
}

# --- runs ----------------------------------------------------------------------

# Starts `zaqar bench` for scenario $1 in the background, its report in $2;
# returns once the measured phase has begun (after any prefill), with
# BENCH_PID set.
start_load() {
    local scenario=$1 report=$2 i
    local -a args=(bench --url "$OUR_URL" --project "$PROJECT" --prefix "prof-$$-$scenario-$RANDOM"
        --message-size "$MESSAGE_SIZE" --duration "$DURATION" --json --no-progress)
    load_args "$scenario" "$PREFILL"
    args+=("${LOAD_ARGS[@]}")
    [ "$(redis-cli -p "$REDIS_PORT" -n 1 FLUSHDB SYNC)" = OK ] || die "cannot flush Redis DB 1"
    "$ZAQAR" "${args[@]}" >"$report" 2>"$report.stderr" </dev/null &
    BENCH_PID=$!
    # the measured phase starts after any prefill, with a line on stderr
    for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
        ! grep -q '^measuring for' "$report.stderr" 2>/dev/null || return 0
        alive "$BENCH_PID" || break
        sleep 0.1
    done
    finish_load "$report"
    die "zaqar bench did not start measuring within ${READY_TIMEOUT}s"
}

# Waits for the load generator; fails unless it reported.
finish_load() {
    local report=$1 status=0
    wait "$BENCH_PID" || status=$?
    BENCH_PID=
    [ "$status" -eq 0 ] || die "zaqar bench failed (exit $status): $(tail -n 5 "$report.stderr")"
    python3 "$HERE/compare_helper.py" check-bench "$report" || die "zaqar bench printed no report ($report)"
}

# Sets PROCS to NAME=PID of the four processes a run looks at (the load
# generator of the run started last).
list_processes() {
    PROCS=("bench=$BENCH_PID" "api=$API_PID" "storage=$STORAGE_PID" "redis=$REDIS_PID")
}

accounting_run() {
    local scenario=$1 dir=$2
    log "$scenario: accounting run ($DURATION)"
    start_load "$scenario" "$dir/accounting.json"
    list_processes
    sleep "$WARMUP"
    python3 "$HELPER" snap "$WORK/before.json" "${PROCS[@]}"
    sleep "$WINDOW"
    python3 "$HELPER" snap "$WORK/after.json" "${PROCS[@]}"
    finish_load "$dir/accounting.json"
    python3 "$HELPER" cpu "$WORK/before.json" "$WORK/after.json" "$dir/accounting.json" >"$dir/cpu.txt" ||
        die "cannot compute the CPU table for $scenario"
}

profile_run() {
    local scenario=$1 dir=$2 spec name pid pids=
    local data="$WORK/$scenario.perf.data"
    log "$scenario: profiled run ($DURATION, perf at $FREQ Hz)"
    start_load "$scenario" "$dir/profile.json"
    list_processes
    for spec in "${PROCS[@]}"; do pids+=${pids:+,}${spec#*=}; done
    sleep "$WARMUP"
    perf record -q -F "$FREQ" --call-graph dwarf,16384 -o "$data" -p "$pids" -- sleep "$WINDOW" \
        >"$WORK/$scenario.perf.log" 2>&1 || die "perf record failed: $(tail -n 5 "$WORK/$scenario.perf.log")"
    finish_load "$dir/profile.json"
    log "$scenario: folding stacks and drawing flamegraphs"
    for spec in "${PROCS[@]}"; do
        name=${spec%%=*} pid=${spec#*=}
        perf script -i "$data" --pid "$pid" 2>>"$WORK/$scenario.perf.log" |
            "$COLLAPSE" >"$dir/$name.folded" 2>>"$WORK/$scenario.perf.log" ||
            die "cannot fold the stacks of $name: $(tail -n 5 "$WORK/$scenario.perf.log")"
        "$FLAMEGRAPH" --title "$name under $scenario ($CONNECTIONS connections)" \
            <"$dir/$name.folded" >"$dir/$name.svg" 2>>"$WORK/$scenario.perf.log" ||
            log "warning: no flamegraph for $name under $scenario (no samples?)"
    done
    rm -f "$data"
}

summarize() {
    local scenario=$1 dir=$2 name op p50 p99 rate_key=produced_messages_per_s
    [ "$scenario" != consume ] || rate_key=consumed_messages_per_s
    echo "== $scenario =="
    printf '  accounting run: %.0f msg/s' "$(python3 "$HERE/compare_helper.py" get "$dir/accounting.json" "$rate_key")"
    printf ', p50 / p99 ms:'
    for op in post claim delete; do
        p50=$(python3 "$HERE/compare_helper.py" get "$dir/accounting.json" "operations.$op.latency_ms.p50")
        p99=$(python3 "$HERE/compare_helper.py" get "$dir/accounting.json" "operations.$op.latency_ms.p99")
        [ "$p50" = 0 ] || printf ' %s %.2f / %.2f' "$op" "$p50" "$p99"
    done
    echo
    cat "$dir/cpu.txt"
    for name in bench api storage redis; do
        echo "  -- $name: self time (profiled run; $dir/$name.svg)"
        python3 "$HELPER" top "$dir/$name.folded" "$TOP"
    done
    echo
}

# --- main --------------------------------------------------------------------

find_zaqar
ensure_inferno
start_redis "DB 1 ours"
check_perf
start_ours 1
smoke_test ours "$OUR_URL"

for scenario in "${SCENARIOS[@]}"; do
    mkdir -p "$OUT/$scenario"
    accounting_run "$scenario" "$OUT/$scenario"
    profile_run "$scenario" "$OUT/$scenario"
done

stop_all
{
    echo "zaqar: $ZAQAR ($(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown))"
    echo "redis: redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'), no persistence"
    echo "load:  $CONNECTIONS connections, $DURATION per run (window $WINDOW s), bodies of $MESSAGE_SIZE bytes; $(nproc) CPUs"
    echo
    for scenario in "${SCENARIOS[@]}"; do summarize "$scenario" "$OUT/$scenario"; done
} >"$OUT/summary.txt"
cat "$OUT/summary.txt"
log "results in $OUT"
