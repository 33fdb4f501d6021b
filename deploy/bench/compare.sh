#!/usr/bin/env bash
# Side-by-side throughput/latency comparison, on this one machine, of our
# service (one `zaqar api` + one `zaqar storage` on Redis DB 1) and the real
# OpenStack Zaqar 23.0.1 from PyPI (gunicorn, Redis DB 0), both on one private
# redis-server, driven by `zaqar bench`; plus the raw Redis ceiling of the same
# primitives measured with redis-benchmark (Redis DB 2).
#
# Usage: deploy/bench/compare.sh [--rounds N] [--duration D] [--keep] [--help]
#
# Scenarios (64 connections each, fresh queue names every run; before each
# run both sides' databases are flushed, so every run starts on an empty
# Redis, see KEEP_DATA), run alternately ours, theirs, ours, theirs... per
# round:
#   post1    zaqar bench --producers 64 --batch 1  --message-size 256
#   post10   zaqar bench --producers 64 --batch 10 --message-size 256
#   consume  zaqar bench --consumers 64 --claim 10 --prefill N
#            (each consumer claims up to 10, then deletes each claimed message
#            with its claim id; `--batch 10` only makes the untimed prefill post
#            10 messages per request. N = 2 x duration x the fastest message
#            rate seen for that side so far (its post b1 rate of the round, or
#            an earlier consume rate), at least 1000: the consumers must never
#            run dry. A run that consumed >= 90% of its prefill is flagged in
#            the notes. Override with PREFILL_OURS / PREFILL_THEIRS.)
#   paced-post1    post1 at a fixed offered load: --rate PACED_POSTS (400/s)
#   paced-consume  consume at a fixed load: --rate PACED_CLAIMS (40 claims of
#            10 per second), prefill 2 x duration x 10 x PACED_CLAIMS
#            (both well inside what either side sustains, so the two are
#            compared at equal load; PACED_POSTS=0 / PACED_CLAIMS=0 skip them)
# then, per round, the Redis ceiling (see "Redis ceiling" below).
#
# Output (stdout): a table of medians over the rounds, ours vs theirs, their
# ratio and the Redis ceiling; the per-round message rates; the CPU time the
# hypervisor took during each saturating run (steal, from /proc/stat); peak
# RSS; notes.
# Its last line is exactly `ratio post=X consume=Y`: X = the lower of the post
# b1 and post b10 median message-rate ratios (ours/theirs), Y = the consume
# median message-rate ratio; two decimals. Progress and errors go to stderr.
#
# Environment:
#   ROUNDS            rounds (default 3)
#   DURATION          measured time of each run, humantime (default 10s)
#   CONNECTIONS       producers / consumers per run (default 64)
#   ZAQAR_BIN         our binary (default: `cargo build --release -p zaqar` in
#                     the repository, then target/release/zaqar)
#   ZAQAR_BENCH_VENV  venv for the real Zaqar (default
#                     ${XDG_CACHE_HOME:-$HOME/.cache}/zaqar-bench/venv; created
#                     with `pip install 'zaqar[redis]==23.0.1' gunicorn` when
#                     missing or incomplete, reused when present)
#   THEIR_WORKERS     gunicorn workers (default 2)
#   THEIR_THREADS     gunicorn threads per worker (default 8)
#   PREFILL_OURS, PREFILL_THEIRS  fixed consume prefill (default: adaptive)
#   PACED_POSTS       posts/s offered in paced-post1 (default 400; 0 skips it)
#   PACED_CLAIMS      claims/s offered in paced-consume (default 40; 0 skips it)
#   CEILING_SECONDS   about how long each redis-benchmark run lasts (default 3)
#   KEEP=1            keep the work directory (logs, raw JSON) even on success
#   KEEP_DATA=1       do not flush DB 0 and DB 1 before each run: later runs
#                     then work on a Redis holding every earlier run's
#                     messages (a post run leaves up to ~700k messages, ~400 MB;
#                     our posts of 10 measured 73k msg/s on an empty Redis
#                     and 65k once it held 1.5 GB)
#
# Processes: one redis-server, gunicorn (+ its workers), zaqar storage, zaqar
# api and an RSS sampler, all on 127.0.0.1 and free ports (ours bind port 0
# and print `listening on ADDR`). On exit, however it happens, each is stopped
# by its PID (SIGTERM, SIGKILL after 10 s), front first. The work directory
# (mktemp under TMPDIR) is removed on success and kept (path printed) on
# failure. Redis has no persistence; with KEEP_DATA=1 it keeps every posted
# message until the end (~2.5 GB of RSS after 3 rounds). The default run takes
# about 7 minutes, after the release build (~9 minutes from clean: fat LTO).
#
# ---------------------------------------------------------------------------
# How the real Zaqar 23.0.1 runs here (what was learned setting it up):
# - `pip install 'zaqar[redis]==23.0.1' gunicorn` in a venv (Python 3.11)
#   installs the whole service; about 30-60 s, nothing is compiled. The
#   `[redis]` extra matters: plain `zaqar` does not pull redis-py, and the
#   workers then die at boot with "InvalidDriver: No module named
#   'redis.sentinel'". (uWSGI is pip-installable too but compiles ~2 min.)
# - WSGI app: `zaqar.transport.wsgi.app:app` (module zaqar/transport/wsgi/
#   app.py). It parses oslo.config with args=[], so no --config-file can be
#   passed through gunicorn: oslo.config looks for ~/.zaqar/zaqar.conf,
#   ~/zaqar.conf, /etc/zaqar/zaqar.conf, /etc/zaqar.conf, in that order, and
#   takes the first. We run gunicorn with HOME=<workdir>/theirs-home holding
#   .zaqar/zaqar.conf (gunicorn also puts its control socket under
#   $HOME/.gunicorn there).
# - Config: `auth_strategy =` (empty = no auth; requests only need the
#   `Client-ID: <uuid>` and `X-Project-ID` headers), `pooling = false`,
#   `[drivers] message_store = redis`, `management_store = redis` (the Redis
#   control driver supports queues' metadata, no extra server needed), both
#   at `redis://127.0.0.1:PORT?dbid=0&socket_timeout=5`. The URI's dbid picks
#   the DB. socket_timeout (per Redis call) defaults to 0.1 s; wrk at 64
#   connections saw no errors with it, but it is raised to 5 s so that a
#   scheduling hiccup on two cores shared by the load generator, Redis and
#   the workers cannot fail a request (same throughput either way).
# - v2 creates queues on first post (PUT /v2/queues/NAME is optional); claim
#   grace must be 60..43200 s.
# - Startup logs an osprofiler ERROR ("Oslo.messaging library is required for
#   messaging driver ... osprofiler is disabled"): harmless, profiling is off.
# - Server choice. First wrk (64 connections, POST of 1 message), then
#   `zaqar bench` (post b1 and consume, 6 s each, 2-3 passes in varying
#   order), on this 2-core box while other builds ran on it (load 6-12, so
#   +-30% noise between passes of the same setting):
#     wrk, req/s:  gunicorn sync -w 2: 210-310, -w 4: 280-310
#                  gunicorn gthread -w 2 --threads 4..8: 380-570,
#                  -w 3 --threads 4..8: 455-525, -w 4 --threads 4..8: 490-535
#                  uwsgi --http11-socket -p 2 --threads 4: 470-640 but only 8
#                  connections are ever served (a thread keeps its keep-alive
#                  connection, the other 56 wait in the backlog: unfair
#                  latencies); uwsgi --http-socket (no keep-alive): read errors
#     zaqar bench, post b1 msg/s | consume msg/s (median of passes), RSS:
#                  gthread 2x8: 418 | 408, 174 MiB   gthread 4x4: 281 | 345, 317 MiB
#                  gthread 4x8: 377 | 325, 320 MiB   gthread 3x8: 390 | 228, 247 MiB
#                  gthread 3x4: 256 | 345            gthread 2x4: 310 | 329
#                  gthread 2x16: 363 | 240           sync 4:      357 | 224
#   Kept: gunicorn gthread, 2 workers x 8 threads: the best medians and half
#   the memory of 4 workers. The app is CPU-bound Python (the GIL runs one
#   request at a time per worker), so one worker per core already saturates
#   the two cores and more workers only add memory (~75 MB each) and
#   contention; the threads overlap the Redis round trips and gthread keeps
#   the 64 keep-alive connections open (sync workers serve one request at a
#   time each and close every connection). THEIR_WORKERS / THEIR_THREADS
#   override.
#
# Redis ceiling (redis-benchmark -c CONNECTIONS, EVALSHA, DB 2, no pipelining;
# each run sized to last about CEILING_SECONDS after a short calibration run):
#   post b1 / post b10: ceiling_post.lua with N = 1 / 10 and a 256-byte body:
#     HINCRBY of the queue's sequence, then per message HSET info, HSET body,
#     ZADD x3 (what messages_post.lua does per message, without its lookups
#     and sweep); reported as messages/s = calls/s x N.
#   consume: ceiling_claim.lua with K = 10 on 10,000 prefilled messages:
#     ZRANGEBYSCORE 10 oldest free, per message ZREM free + ZADD claimed +
#     HSET info, HMGET bodies; reported as messages/s = calls/s x 10. It is the
#     claim alone: a consumed message also costs a delete round trip, so the
#     real consume ceiling is lower.
#   The ceiling is what Redis on this box could do if the HTTP and gRPC
#   layers cost nothing; redis-benchmark shares the two cores with Redis as
#   `zaqar bench` does.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PROG=compare.sh
HELPER="$HERE/compare_helper.py"

ZAQAR_VERSION=23.0.1
PROJECT=bench
CLIENT_ID=3381af92-2b9e-11e3-b191-71861300734c
MESSAGE_SIZE=256
CLAIM=10
READY_TIMEOUT=60 # seconds for a server to become ready
STOP_TIMEOUT=10  # seconds between SIGTERM and SIGKILL
CEILING_FILL=10000

# shellcheck source=deploy/bench/lib.sh
. "$HERE/lib.sh"

usage() {
    cat <<EOF
usage: deploy/bench/compare.sh [--rounds N] [--duration D] [--keep] [--help]

Compares our Zaqar (zaqar api + zaqar storage on Redis) with OpenStack Zaqar
$ZAQAR_VERSION (gunicorn, Redis driver) on this machine, with \`zaqar bench\`:
post batch 1, post batch 10 and consume (claim 10 + delete), 64 connections,
alternating ours/theirs, each run on an empty Redis database, plus the raw
Redis ceiling (redis-benchmark). Prints a table of medians; the last line is
\`ratio post=X consume=Y\`.

  --rounds N     rounds (default \$ROUNDS or 3)
  --duration D   measured time per run, e.g. 10s (default \$DURATION or 10s)
  --keep         keep the work directory (logs, raw JSON)
  -h, --help     this help

Environment: ROUNDS, DURATION, CONNECTIONS, ZAQAR_BIN, ZAQAR_BENCH_VENV,
THEIR_WORKERS, THEIR_THREADS, PREFILL_OURS, PREFILL_THEIRS, PACED_POSTS,
PACED_CLAIMS, CEILING_SECONDS, KEEP=1, KEEP_DATA=1. See the comments at the top of this script.
EOF
}

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
PACED_POSTS=${PACED_POSTS:-400}
PACED_CLAIMS=${PACED_CLAIMS:-40}
THEIR_WORKERS=${THEIR_WORKERS:-2}
THEIR_THREADS=${THEIR_THREADS:-8}
CEILING_SECONDS=${CEILING_SECONDS:-3}
KEEP=${KEEP:-}
VENV=${ZAQAR_BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/zaqar-bench/venv}

while [ $# -gt 0 ]; do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --rounds)
        [ $# -ge 2 ] || die "--rounds needs a value"
        ROUNDS=$2
        shift 2
        ;;
    --duration)
        [ $# -ge 2 ] || die "--duration needs a value"
        DURATION=$2
        shift 2
        ;;
    --keep)
        KEEP=1
        shift
        ;;
    *)
        usage >&2
        die "unknown argument: $1"
        ;;
    esac
done

is_pos_int "$ROUNDS" || die "ROUNDS must be a positive integer, not '$ROUNDS'"
is_pos_int "$CONNECTIONS" || die "CONNECTIONS must be a positive integer"
is_pos_int "$THEIR_WORKERS" || die "THEIR_WORKERS must be a positive integer"
is_pos_int "$THEIR_THREADS" || die "THEIR_THREADS must be a positive integer"
is_pos_int "$CEILING_SECONDS" || die "CEILING_SECONDS must be a positive integer"
for var in PREFILL_OURS PREFILL_THEIRS; do
    [ -z "${!var:-}" ] || is_uint "${!var}" || die "$var must be a non-negative integer"
done
for tool in python3 curl redis-server redis-cli redis-benchmark; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found (apt-get install -y redis-server redis-tools curl python3 python3-venv)"
done
[ -f "$HELPER" ] || die "missing $HELPER"
DURATION_S=$(python3 "$HELPER" seconds "$DURATION") || die "cannot read DURATION '$DURATION' (e.g. 10s, 1m)"
! is_uint "$DURATION" || DURATION="${DURATION}s" # zaqar bench wants a unit

# --- work directory ----------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/zaqar-compare.XXXXXX")
bench_traps
RES="$WORK/results"
mkdir -p "$RES"
: >"$RES/notes"
RUN_ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
BODY=$(head -c "$MESSAGE_SIZE" /dev/zero | tr '\0' x)

# --- the real Zaqar ------------------------------------------------------------

ensure_venv() {
    if [ -x "$VENV/bin/gunicorn" ] && "$VENV/bin/python" -c \
        "import importlib.metadata as m, sys, redis.sentinel; sys.exit(m.version('zaqar') != '$ZAQAR_VERSION')" \
        2>/dev/null; then
        log "reusing $VENV (zaqar $ZAQAR_VERSION)"
        return 0
    fi
    log "installing zaqar[redis]==$ZAQAR_VERSION and gunicorn into $VENV (about a minute)"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV" || die "python3 -m venv $VENV failed (apt-get install python3-venv?)"
    "$VENV/bin/pip" install -q --disable-pip-version-check "zaqar[redis]==$ZAQAR_VERSION" gunicorn \
        >"$WORK/pip.log" 2>&1 || die "pip install failed; last lines of $WORK/pip.log:
$(tail -n 20 "$WORK/pip.log")"
}

start_theirs() {
    local home="$WORK/theirs-home" logfile="$WORK/theirs.log" i code
    mkdir -p "$home/.zaqar"
    cat >"$home/.zaqar/zaqar.conf" <<EOF
[DEFAULT]
# no authentication: requests carry Client-ID and X-Project-ID only
auth_strategy =
pooling = false
admin_mode = false

[drivers]
transport = wsgi
message_store = redis
management_store = redis

[drivers:message_store:redis]
uri = redis://127.0.0.1:$REDIS_PORT?dbid=0&socket_timeout=5

[drivers:management_store:redis]
uri = redis://127.0.0.1:$REDIS_PORT?dbid=0&socket_timeout=5
EOF
    for _ in 1 2 3; do
        THEIR_PORT=$(free_port)
        start_bg theirs "$logfile" env HOME="$home" "$VENV/bin/gunicorn" \
            --chdir "$WORK" --worker-class gthread --workers "$THEIR_WORKERS" --threads "$THEIR_THREADS" \
            --bind "127.0.0.1:$THEIR_PORT" --backlog 2048 --keep-alive 5 --timeout 120 \
            --graceful-timeout 5 zaqar.transport.wsgi.app:app
        THEIR_PID=$LAST_PID
        THEIR_URL="http://127.0.0.1:$THEIR_PORT"
        for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
            code=$(http GET "$THEIR_URL/v2/")
            if [ "$code" = 200 ]; then
                log "OpenStack Zaqar $ZAQAR_VERSION at $THEIR_URL (gunicorn gthread ${THEIR_WORKERS}x$THEIR_THREADS, pid $THEIR_PID)"
                return 0
            fi
            alive "$THEIR_PID" || break
            sleep 0.1
        done
        alive "$THEIR_PID" && die "gunicorn did not answer GET /v2/ within ${READY_TIMEOUT}s (see $logfile)"
        grep -q "Address already in use" "$logfile" 2>/dev/null ||
            die "gunicorn exited; last lines of $logfile:
$(tail -n 30 "$logfile")"
        log "port $THEIR_PORT was taken, retrying"
    done
    die "gunicorn could not bind a port"
}

# --- runs ----------------------------------------------------------------------

# run_bench SIDE URL SCENARIO ROUND [PREFILL]
run_bench() {
    local side=$1 url=$2 scenario=$3 round=$4 prefill=${5:-0}
    local dir="$RES/$side/$scenario"
    local out="$dir/r$round.json" err="$dir/r$round.stderr"
    mkdir -p "$dir"
    local -a args=(bench --url "$url" --project "$PROJECT" --prefix "cmp-$RUN_ID-$side-$scenario-r$round"
        --message-size "$MESSAGE_SIZE" --duration "$DURATION" --json --no-progress)
    case $scenario in
    post1 | post10 | consume) load_args "$scenario" "$prefill" ;;
    paced-post1)
        load_args post1
        LOAD_ARGS+=(--rate "$PACED_POSTS")
        ;;
    paced-consume)
        load_args consume "$(python3 -c 'import sys; print(int(2 * float(sys.argv[1]) * 10 * float(sys.argv[2])) + 1000)' "$DURATION_S" "$PACED_CLAIMS")"
        LOAD_ARGS+=(--rate "$PACED_CLAIMS")
        ;;
    esac
    args+=("${LOAD_ARGS[@]}")
    log "round $round/$ROUNDS: $side $scenario${5:+ (prefill $prefill)}"
    check_alive "$REDIS_PID" redis-server "$WORK/redis.log"
    if [ "${KEEP_DATA:-0}" != 1 ]; then
        # Every run starts on an empty Redis: theirs (DB 0) and ours (DB 1).
        for db in 0 1; do
            [ "$(redis-cli -p "$REDIS_PORT" -n "$db" FLUSHDB SYNC)" = OK ] ||
                die "cannot flush Redis DB $db before the run"
        done
    fi
    if [ "$side" = ours ]; then
        check_alive "$STORAGE_PID" "zaqar storage" "$WORK/storage.log"
        check_alive "$API_PID" "zaqar api" "$WORK/api.log"
    else
        check_alive "$THEIR_PID" gunicorn "$WORK/theirs.log"
    fi
    # CPU time the hypervisor takes meanwhile (steal) is kept beside the run.
    local stat_before
    stat_before=$(head -n 1 /proc/stat 2>/dev/null || true)
    # In the background, so that a signal stops the script (and the trap this
    # load generator) at once rather than after the run.
    "$ZAQAR" "${args[@]}" >"$out" 2>"$err" </dev/null &
    BENCH_PID=$!
    local status=0
    wait "$BENCH_PID" || status=$?
    BENCH_PID=
    [ "$status" -eq 0 ] || die "zaqar ${args[*]} failed (exit $status); stderr:
$(tail -n 20 "$err")"
    python3 "$HELPER" check-bench "$out" || die "zaqar bench printed no report (see $out)"
    python3 "$HELPER" steal "$stat_before" "$(head -n 1 /proc/stat 2>/dev/null || true)" \
        >"$dir/r$round.steal" 2>/dev/null || : >"$dir/r$round.steal"
}

# Prints the consume prefill for side $1 in round $2.
prefill_for() {
    local side=$1 round=$2 fixed rate
    if [ "$side" = ours ]; then fixed=${PREFILL_OURS:-}; else fixed=${PREFILL_THEIRS:-}; fi
    if [ -n "$fixed" ]; then
        echo "$fixed"
        return
    fi
    local -a rates=()
    local r f
    f="$RES/$side/post1/r$round.json"
    [ ! -f "$f" ] || rates+=("$(python3 "$HELPER" get "$f" produced_messages_per_s operations.post.messages_per_s)")
    for ((r = 1; r < round; r++)); do
        f="$RES/$side/consume/r$r.json"
        [ ! -f "$f" ] || rates+=("$(python3 "$HELPER" get "$f" consumed_messages_per_s)")
    done
    rate=$(python3 -c 'import sys; print(max([0.0] + [float(x) for x in sys.argv[1:]]))' "${rates[@]}")
    python3 -c 'import math, sys; print(max(1000, min(3000000, math.ceil(2 * float(sys.argv[1]) * float(sys.argv[2])))))' \
        "$rate" "$DURATION_S"
}

# Notes a consume run that may have run out of messages.
check_dry() {
    local side=$1 round=$2 prefill=$3 consumed
    consumed=$(python3 "$HELPER" get "$RES/$side/consume/r$round.json" consumed_messages_per_s)
    if python3 -c 'import sys; sys.exit(not float(sys.argv[1]) * float(sys.argv[2]) >= 0.9 * float(sys.argv[3]))' \
        "$consumed" "$DURATION_S" "$prefill"; then
        echo "round $round $side consume: consumed >= 90% of the $prefill prefilled messages; it may have run dry" \
            >>"$RES/notes"
        log "warning: $side consume in round $round may have run dry (prefill $prefill)"
    fi
}

CEILING_POST_SHA=
CEILING_CLAIM_SHA=

load_ceiling_scripts() {
    CEILING_POST_SHA=$(redis-cli -p "$REDIS_PORT" SCRIPT LOAD "$(cat "$HERE/ceiling_post.lua")")
    CEILING_CLAIM_SHA=$(redis-cli -p "$REDIS_PORT" SCRIPT LOAD "$(cat "$HERE/ceiling_claim.lua")")
    [[ $CEILING_POST_SHA =~ ^[0-9a-f]{40}$ && $CEILING_CLAIM_SHA =~ ^[0-9a-f]{40}$ ]] ||
        die "cannot load the ceiling Lua scripts: $CEILING_POST_SHA $CEILING_CLAIM_SHA"
}

# redis_bench OUT_CSV CALIBRATION_N ARGS...: a calibration run of N calls,
# then one sized to last about CEILING_SECONDS.
redis_bench() {
    local out=$1 n=$2 rate
    shift 2
    redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" --dbnum 2 -c "$CONNECTIONS" -n "$n" --csv "$@" \
        >"$out.calibration" 2>&1 || die "redis-benchmark failed: $(tail -n 5 "$out.calibration")"
    rate=$(python3 "$HELPER" rps "$out.calibration") || die "cannot read $out.calibration"
    n=$(python3 -c 'import sys; print(max(int(sys.argv[1]), int(float(sys.argv[2]) * int(sys.argv[3]))))' \
        "$n" "$rate" "$CEILING_SECONDS")
    redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" --dbnum 2 -c "$CONNECTIONS" -n "$n" --csv "$@" \
        >"$out" 2>&1 || die "redis-benchmark failed: $(tail -n 5 "$out")"
    python3 "$HELPER" rps "$out" >/dev/null || die "cannot read $out"
}

ceiling_round() {
    local round=$1 dir name
    log "round $round/$ROUNDS: Redis ceiling (redis-benchmark, DB 2)"
    for name in post1 post10 claim; do mkdir -p "$RES/ceiling/$name"; done
    redis-cli -p "$REDIS_PORT" -n 2 FLUSHDB >/dev/null
    redis_bench "$RES/ceiling/post1/r$round.csv" 5000 EVALSHA "$CEILING_POST_SHA" 0 1 "$BODY"
    redis_bench "$RES/ceiling/post10/r$round.csv" 1000 EVALSHA "$CEILING_POST_SHA" 0 10 "$BODY"
    redis-cli -p "$REDIS_PORT" -n 2 FLUSHDB >/dev/null
    [ "$(redis-cli -p "$REDIS_PORT" -n 2 --eval "$HERE/ceiling_fill.lua" , "$CEILING_FILL" "$BODY")" = "$CEILING_FILL" ] ||
        die "cannot prefill the claim ceiling's messages"
    redis_bench "$RES/ceiling/claim/r$round.csv" 5000 EVALSHA "$CEILING_CLAIM_SHA" 0 "$CLAIM"
    redis-cli -p "$REDIS_PORT" -n 2 FLUSHDB >/dev/null
}

# --- main --------------------------------------------------------------------

find_zaqar
ensure_venv
start_redis "DB 0 theirs, 1 ours, 2 ceiling"
start_theirs
start_ours 1
smoke_test ours "$OUR_URL"
smoke_test theirs "$THEIR_URL"
load_ceiling_scripts

start_bg rss-sampler "$WORK/rss-sampler.log" python3 "$HELPER" rss-sample "$RES/rss" \
    "ours-api=$API_PID" "ours-storage=$STORAGE_PID" "theirs=$THEIR_PID+" "redis=$REDIS_PID"

log "$ROUNDS round(s) of 5 scenarios x 2 sides, $DURATION each, $CONNECTIONS connections"
for ((round = 1; round <= ROUNDS; round++)); do
    for scenario in post1 post10; do
        run_bench ours "$OUR_URL" "$scenario" "$round"
        run_bench theirs "$THEIR_URL" "$scenario" "$round"
    done
    for side in ours theirs; do
        if [ "$side" = ours ]; then url=$OUR_URL; else url=$THEIR_URL; fi
        prefill=$(prefill_for "$side" "$round")
        run_bench "$side" "$url" consume "$round" "$prefill"
        check_dry "$side" "$round" "$prefill"
    done
    for side in ours theirs; do
        if [ "$side" = ours ]; then url=$OUR_URL; else url=$THEIR_URL; fi
        [ "$PACED_POSTS" = 0 ] || run_bench "$side" "$url" paced-post1 "$round"
        [ "$PACED_CLAIMS" = 0 ] || run_bench "$side" "$url" paced-consume "$round"
    done
    ceiling_round "$round"
done

# Everything is stopped before the report, so the ratio line is the last one
# printed (the EXIT trap prints nothing on success).
stop_all
log "done"
{
    echo "ours:   $ZAQAR (zaqar api -> zaqar storage -> Redis DB 1)"
    echo "theirs: OpenStack Zaqar $ZAQAR_VERSION, gunicorn gthread ${THEIR_WORKERS} workers x ${THEIR_THREADS} threads (Redis DB 0)"
    echo "redis:  redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'), no persistence; ceiling with redis-benchmark (DB 2)"
    echo "load:   $CONNECTIONS connections, $DURATION per run, $ROUNDS round(s), bodies of $MESSAGE_SIZE bytes, claims of $CLAIM"
    echo
    python3 "$HELPER" report "$RES" "$ROUNDS"
} >"$WORK/report.txt" || die "cannot build the report (raw results in $RES)"
cat "$WORK/report.txt"
