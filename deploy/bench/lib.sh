# Shell functions shared by the benchmark scripts in this directory
# (compare.sh, profile.sh); sourced, not run. The sourcing script sets PROG
# (its name, for log lines), WORK (its work directory), KEEP (non-empty keeps
# WORK on success), ROOT (the repository), READY_TIMEOUT and STOP_TIMEOUT
# (seconds), PROJECT and CLIENT_ID (the headers of its requests),
# CONNECTIONS and CLAIM (the load of its scenarios), and calls
# `bench_traps` once WORK exists.
#
# Every process is started with `start_bg` on 127.0.0.1 and a free port, and
# stopped by its PID (SIGTERM, SIGKILL after STOP_TIMEOUT), last started
# first, when the script exits however it exits.

# shellcheck shell=bash


log() { printf '%s %s: %s\n' "$(date -u +%H:%M:%S)" "$PROG" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
is_pos_int() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ]; }

PIDS=()
NAMES=()
LAST_PID=
BENCH_PID= # the running `zaqar bench`, if any

# Starts "$@" in the background with stdout+stderr in $2, records it as $1.
start_bg() {
    local name=$1 logfile=$2
    shift 2
    : >"$logfile" # exists before the child opens it, for wait_listening
    "$@" >>"$logfile" 2>&1 </dev/null &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    NAMES+=("$name")
}

alive() { kill -0 "$1" 2>/dev/null; }

# Stops every started process, the last started first: SIGTERM, then SIGKILL
# after STOP_TIMEOUT. They are our children, so their PIDs cannot be reused
# before we reap them with `wait`.
stop_all() {
    local i pid waited
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[i]}
        [ -n "$pid" ] || continue
        if alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            for ((waited = 0; waited < STOP_TIMEOUT * 10; waited++)); do
                alive "$pid" || break
                # a reaped child is gone; an unreaped one is a zombie
                [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
                sleep 0.1
            done
            if alive "$pid" && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
                log "killing ${NAMES[i]} (pid $pid): still running after ${STOP_TIMEOUT}s"
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
        wait "$pid" 2>/dev/null || true
        PIDS[i]=
    done
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "$BENCH_PID" ] && alive "$BENCH_PID"; then
        kill -TERM "$BENCH_PID" 2>/dev/null || true
        wait "$BENCH_PID" 2>/dev/null || true
    fi
    stop_all
    if [ "$status" -ne 0 ] || [ -n "$KEEP" ]; then
        log "work directory kept: $WORK"
    else
        rm -rf -- "$WORK"
    fi
    exit "$status"
}

# Installs the exit and signal handlers: `cleanup` on exit, exit codes 130 and
# 143 on SIGINT and SIGTERM (which then run `cleanup`).
bench_traps() {
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Fails (with the log's tail) unless process $1 named $2 with log $3 runs.
check_alive() {
    alive "$1" || die "$2 exited; last lines of $3:
$(tail -n 20 "$3" 2>/dev/null)"
}

# Waits until process $1 (log $2, name $3) prints `listening on ADDR`; sets ADDR.
wait_listening() {
    local pid=$1 logfile=$2 name=$3 i
    for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
        ADDR=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$logfile" 2>/dev/null | head -n 1) || ADDR=
        [ -z "$ADDR" ] || return 0
        check_alive "$pid" "$name" "$logfile"
        sleep 0.1
    done
    die "$name did not print 'listening on ADDR' within ${READY_TIMEOUT}s (see $logfile)"
}

# curl with the run's headers: prints the HTTP status; the body goes to
# $WORK/curl.out.
http() {
    local method=$1 url=$2
    shift 2
    curl -s -m 30 -o "$WORK/curl.out" -w '%{http_code}' -X "$method" \
        -H "Client-ID: $CLIENT_ID" -H "X-Project-ID: $PROJECT" -H "Content-Type: application/json" \
        "$@" "$url" || true
}

# Creates a queue, posts, claims and deletes one message at base URL $2
# ($1 names the server in messages).
smoke_test() {
    local name=$1 url=$2 q="smoke-$$" code href
    code=$(http PUT "$url/v2/queues/$q" -d '{}')
    [[ $code == 201 || $code == 204 ]] || die "$name: create queue answered $code: $(cat "$WORK/curl.out")"
    code=$(http POST "$url/v2/queues/$q/messages" -d '{"messages": [{"ttl": 300, "body": {"smoke": 1}}]}')
    [ "$code" = 201 ] || die "$name: post answered $code: $(cat "$WORK/curl.out")"
    code=$(http POST "$url/v2/queues/$q/claims?limit=10" -d '{"ttl": 60, "grace": 60}')
    [ "$code" = 201 ] || die "$name: claim answered $code: $(cat "$WORK/curl.out")"
    href=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["messages"][0]["href"])' \
        "$WORK/curl.out") || die "$name: unexpected claim reply: $(cat "$WORK/curl.out")"
    code=$(http DELETE "$url$href")
    [ "$code" = 204 ] || die "$name: delete of the claimed message answered $code: $(cat "$WORK/curl.out")"
    code=$(http DELETE "$url/v2/queues/$q")
    [ "$code" = 204 ] || die "$name: delete queue answered $code: $(cat "$WORK/curl.out")"
    log "$name: create queue, post, claim, delete: ok"
}

# Starts a private redis-server without persistence on a free port; sets
# REDIS_PORT and REDIS_PID. $1 says in the log line what its databases hold.
start_redis() {
    local i logfile="$WORK/redis.log" what=${1:-}
    mkdir -p "$WORK/redis"
    for _ in 1 2 3; do
        REDIS_PORT=$(free_port)
        start_bg redis "$logfile" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
            --dir "$WORK/redis" --save '' --appendonly no --daemonize no
        REDIS_PID=$LAST_PID
        for ((i = 0; i < 100; i++)); do
            if [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; then
                log "redis-server on 127.0.0.1:$REDIS_PORT (pid $REDIS_PID${what:+; $what})"
                return 0
            fi
            alive "$REDIS_PID" || break
            sleep 0.1
        done
        stop_all # only redis was started
        PIDS=() NAMES=()
    done
    die "redis-server did not start; last lines of $logfile:
$(tail -n 20 "$logfile")"
}

# Sets LOAD_ARGS to the `zaqar bench` arguments of scenario $1: post1 and
# post10 (CONNECTIONS producers posting 1 or 10 messages per request) or
# consume (CONNECTIONS consumers claiming up to CLAIM and deleting each
# claimed message, on a queue prefilled with $2 messages).
load_args() {
    # shellcheck disable=SC2034 # LOAD_ARGS is read by the sourcing script
    case $1 in
    post1) LOAD_ARGS=(--producers "$CONNECTIONS" --batch 1) ;;
    post10) LOAD_ARGS=(--producers "$CONNECTIONS" --batch 10) ;;
    consume) LOAD_ARGS=(--consumers "$CONNECTIONS" --claim "$CLAIM" --batch 10 --prefill "${2:-0}") ;;
    *) die "unknown scenario: $1" ;;
    esac
}

# Sets ZAQAR to $ZAQAR_BIN, or builds the release binary and points at it.
find_zaqar() {
    if [ -n "${ZAQAR_BIN:-}" ]; then
        ZAQAR=$ZAQAR_BIN
    else
        log "building: cargo build --release -p zaqar (in $ROOT)"
        (cd "$ROOT" && cargo build --release -p zaqar) >&2 || die "cargo build failed"
        ZAQAR="$ROOT/target/release/zaqar"
    fi
    [ -x "$ZAQAR" ] || die "no executable zaqar binary at $ZAQAR"
    "$ZAQAR" bench --help >/dev/null 2>&1 || die "$ZAQAR has no working 'bench' subcommand"
}

# Starts `zaqar storage` on Redis DB $1 (default 1) and `zaqar api` in front
# of it; sets STORAGE_PID, API_PID and OUR_URL.
start_ours() {
    local db=${1:-1} logfile="$WORK/storage.log"
    start_bg storage "$logfile" env RUST_LOG=warn "$ZAQAR" storage --listen 127.0.0.1:0 \
        --backend "redis://127.0.0.1:$REDIS_PORT/$db"
    STORAGE_PID=$LAST_PID
    wait_listening "$STORAGE_PID" "$logfile" "zaqar storage"
    local storage_addr=$ADDR
    logfile="$WORK/api.log"
    start_bg api "$logfile" env RUST_LOG=warn "$ZAQAR" api --listen 127.0.0.1:0 \
        --storage "http://$storage_addr"
    API_PID=$LAST_PID
    wait_listening "$API_PID" "$logfile" "zaqar api"
    OUR_URL="http://$ADDR"
    log "ours at $OUR_URL (api pid $API_PID) -> storage $storage_addr (pid $STORAGE_PID) -> Redis DB $db"
}
