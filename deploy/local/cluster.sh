#!/usr/bin/env bash
# A real local Zaqar cluster on loopback: one etcd, a private redis-server (or
# Mongo-wire server, SecantusDB) and
# a `zaqar storage` node per pool, two `zaqar api` nodes (admin mode on), and
# every pool registered as pool1, pool2, ... (weight 100) through the first
# API node's management API.
#
# Usage: deploy/local/cluster.sh up|down|status
#
#   up      starts a fresh cluster; prints one line per endpoint on stdout and
#           nothing else:  `etcd URL`, `api URL` (one per API node),
#           `pool NAME URI`. Progress and errors go to stderr. If a step
#           fails, whatever was started is stopped and the exit status is
#           non-zero. Fails when a cluster already runs in CLUSTER_DIR.
#   down    stops exactly the recorded processes (API nodes, then storage
#           nodes, then Redis, then etcd; SIGTERM, SIGKILL after 10 s),
#           removes the pids and endpoints files, keeps the logs.
#   status  prints the endpoints, then `process NAME PID alive|dead` per
#           recorded process; exit 0 when all are alive, 1 otherwise.
#
# Environment:
#   CLUSTER_DIR  state directory (default ./.cluster, relative to the current
#                directory)
#   POOLS        comma list of pool kinds (default redis,redis): `redis` or
#                `mongo` (e.g. POOLS=mongo, POOLS=redis,mongo); other kinds:
#                exit 2, nothing started
#   MONGO_VENV   venv holding SecantusDB 0.7.0b3 for `mongo` pools (default
#                ~/.cache/zaqar-test/secantusdb-0.7.0b3, installed from PyPI
#                when missing)
#   ZAQAR_BIN    the zaqar binary; default: `cargo build --release -p zaqar --features etcd --bin
#                zaqar` in the repository, then target/release/zaqar
#   RUST_LOG     log filter for the zaqar processes (default info)
#
# State in CLUSTER_DIR:
#   pids         one `NAME PID STARTTIME` line per started process (STARTTIME
#                from /proc/PID/stat: a reused PID is never signalled)
#   endpoints    the lines `up` printed
#   etcd/ redis-N/ mongo-N/ storage-N/ api-N/   one directory per process
#                with its log (and data for etcd, Redis and Mongo); `up`
#                replaces them
#
# Ports are free loopback ports (never 2379, 2380, 6379 or 8888); the zaqar
# processes bind port 0 and report theirs with `listening on HOST:PORT`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PROG=$(basename "$0")
READY_TIMEOUT=30 # seconds for each process to become ready
STOP_TIMEOUT=10  # seconds between SIGTERM and SIGKILL
API_NODES=2
CLIENT_ID=3381af92-2b9e-11e3-b191-71861300734c
SUPPORTED_KINDS="redis mongo"
MONGO_VENV=${MONGO_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/zaqar-test/secantusdb-0.7.0b3}

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

usage() {
    cat <<EOF
usage: $PROG up|down|status

  up      start a local cluster (CLUSTER_DIR, default ./.cluster; POOLS,
          default redis,redis; ZAQAR_BIN, default a release build)
  down    stop the processes recorded in CLUSTER_DIR
  status  print the endpoints and whether each recorded process is alive
EOF
}

# --- state -----------------------------------------------------------------

# Sets CLUSTER_DIR to an absolute path (creating it when $1 is "create").
resolve_cluster_dir() {
    local dir=${CLUSTER_DIR:-./.cluster}
    if [ "${1:-}" = create ]; then
        mkdir -p -- "$dir"
    elif [ ! -d "$dir" ]; then
        CLUSTER_DIR=$dir
        return 1
    fi
    CLUSTER_DIR=$(cd -- "$dir" && pwd)
    PIDS_FILE="$CLUSTER_DIR/pids"
    ENDPOINTS_FILE="$CLUSTER_DIR/endpoints"
}

# Takes an exclusive lock on CLUSTER_DIR (fd 9; children close it).
lock_cluster_dir() {
    exec 9>>"$CLUSTER_DIR/lock"
    flock -n 9 || die "another $PROG is working on $CLUSTER_DIR"
}

# Prints the start time (clock ticks since boot) of process $1, from
# /proc/PID/stat; fails when there is no such process.
proc_start() {
    local stat rest
    local -a fields
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    rest=${stat##*) } # the command name may hold spaces and parentheses
    read -r -a fields <<<"$rest"
    printf '%s\n' "${fields[19]}"
}

# Whether process $1 runs (not a zombie) and started at $2: the recorded
# process, not a later one that reused its PID.
is_ours() {
    local pid=$1 start=$2 stat rest
    local -a fields
    read -r stat 2>/dev/null <"/proc/$pid/stat" || return 1
    rest=${stat##*) }
    read -r -a fields <<<"$rest"
    [ "${fields[0]}" != Z ] && [ "${fields[19]}" = "$start" ]
}

# Records process $2 under the name $1.
record() {
    local start
    start=$(proc_start "$2") || start=-
    printf '%s %s %s\n' "$1" "$2" "$start" >>"$PIDS_FILE"
}

# Forgets process $1 (one that exited during a retried start).
unrecord() {
    local tmp="$PIDS_FILE.tmp"
    awk -v pid="$1" '$2 != pid' "$PIDS_FILE" >"$tmp"
    mv -f -- "$tmp" "$PIDS_FILE"
}

# Reads the pids file into the arrays NAMES, PIDS, STARTS.
read_pids() {
    NAMES=() PIDS=() STARTS=()
    [ -f "$PIDS_FILE" ] || return 0
    local name pid start
    while read -r name pid start; do
        [ -n "${pid:-}" ] || continue
        NAMES+=("$name")
        PIDS+=("$pid")
        STARTS+=("${start:--}")
    done <"$PIDS_FILE"
}

# Stops the recorded processes at the given indices of NAMES/PIDS/STARTS:
# SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL.
stop_indices() {
    local i waited
    local -a live=() still=()
    for i in "$@"; do
        if is_ours "${PIDS[i]}" "${STARTS[i]}"; then
            log "stopping ${NAMES[i]} (pid ${PIDS[i]})"
            kill -TERM "${PIDS[i]}" 2>/dev/null || true
            live+=("$i")
        fi
    done
    for ((waited = 0; waited < STOP_TIMEOUT * 10 && ${#live[@]} > 0; waited++)); do
        sleep 0.1
        still=()
        for i in "${live[@]}"; do
            if is_ours "${PIDS[i]}" "${STARTS[i]}"; then still+=("$i"); fi
        done
        live=("${still[@]}")
    done
    for i in "${live[@]}"; do
        log "killing ${NAMES[i]} (pid ${PIDS[i]}): still running after ${STOP_TIMEOUT}s"
        kill -KILL "${PIDS[i]}" 2>/dev/null || true
    done
}

# Stops every recorded process, front tier first: API nodes, storage nodes,
# Redis servers, etcd, then anything else recorded.
stop_recorded() {
    read_pids
    local tier i
    local -a group done_=()
    for tier in api storage redis mongo etcd; do
        group=()
        for i in "${!NAMES[@]}"; do
            case ${NAMES[i]} in
            "$tier" | "$tier"-*)
                group+=("$i")
                done_[i]=1
                ;;
            esac
        done
        stop_indices "${group[@]}"
    done
    group=()
    for i in "${!NAMES[@]}"; do
        [ -n "${done_[i]:-}" ] || group+=("$i")
    done
    stop_indices "${group[@]}"
}

# Whether any recorded process still runs.
any_recorded_alive() {
    read_pids
    local i
    for i in "${!PIDS[@]}"; do
        if is_ours "${PIDS[i]}" "${STARTS[i]}"; then return 0; fi
    done
    return 1
}

# --- processes -------------------------------------------------------------

# Prints $1 distinct loopback ports that were free a moment ago, one a line.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
avoid = {2379, 2380, 6379, 8888}
held, ports = [], []
while len(ports) < int(sys.argv[1]):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    held.append(s)
    port = s.getsockname()[1]
    if port not in avoid:
        ports.append(port)
print("\n".join(map(str, ports)))
EOF
}

# Whether process $1 (a child just started) still runs.
running() {
    local stat rest
    local -a fields
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    rest=${stat##*) }
    read -r -a fields <<<"$rest"
    [ "${fields[0]}" != Z ]
}

# spawn NAME OUT ERR COMMAND...: starts COMMAND in the background with
# stdout in OUT and stderr in ERR ("-": with stdout), immune to SIGHUP,
# without the lock fd; records it and sets SPAWNED_PID.
spawn() {
    local name=$1 out=$2 err=$3
    shift 3
    # The child opens its redirections asynchronously: create the files now
    # so that readiness checks never race with it.
    : >>"$out"
    [ "$err" = - ] || : >>"$err"
    if [ "$err" = - ]; then
        nohup "$@" </dev/null >"$out" 2>&1 9>&- &
    else
        nohup "$@" </dev/null >"$out" 2>"$err" 9>&- &
    fi
    SPAWNED_PID=$!
    record "$name" "$SPAWNED_PID"
}

# Kills a just-started child that never became ready.
abandon() {
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# Prints the tail of log $1 to stderr.
show_log() {
    [ -s "$1" ] || return 0
    log "last lines of $1:"
    tail -n 20 -- "$1" | sed 's/^/    /' >&2
}

# Whether the etcd on client port $1 is healthy and is ours: another etcd
# may hold the port (taken between the pick and our bind) while ours exits,
# but only ours lists our peer URL (port $2) among its members.
etcd_ready() {
    local health members
    health=$(curl -sf --max-time 1 "http://127.0.0.1:$1/health" 2>/dev/null) || return 1
    [[ $health == *'"health":"true"'* ]] || return 1
    members=$(curl -sf --max-time 1 -X POST "http://127.0.0.1:$1/v3/cluster/member/list" \
        -H 'Content-Type: application/json' -d '{}' 2>/dev/null) || return 1
    [[ $members == *"\"peerURLs\":[\"http://127.0.0.1:$2\"]"* ]]
}

# Whether the Redis on port $1 answers PONG and is process $2 (not another
# server that holds the port while ours exits). redis-cli waits forever on a
# listener that does not answer: bound it.
redis_ready() {
    local info
    [ "$(timeout 2 redis-cli -p "$1" ping 2>/dev/null)" = PONG ] || return 1
    info=$(timeout 2 redis-cli -p "$1" info server 2>/dev/null) || return 1
    info=${info//$'\r'/}
    [[ $'\n'$info$'\n' == *$'\n'"process_id:$2"$'\n'* ]]
}

# Starts etcd; sets ETCD_URL.
start_etcd() {
    local dir="$CLUSTER_DIR/etcd" client peer pid var attempt
    local -a ports clean_env=()
    # etcd reads every ETCD_* environment variable as a flag.
    while read -r var; do
        case $var in ETCD_*) clean_env+=(-u "$var") ;; esac
    done < <(compgen -e)
    for attempt in 1 2 3 4 5; do
        rm -rf -- "$dir"
        mkdir -p -- "$dir"
        mapfile -t ports < <(free_ports 2)
        [ ${#ports[@]} -eq 2 ] || {
            log "cannot pick free ports"
            return 1
        }
        client=${ports[0]}
        peer=${ports[1]}
        log "starting etcd on 127.0.0.1:$client (peer port $peer)"
        spawn etcd /dev/null "$dir/etcd.log" \
            env "${clean_env[@]}" etcd --name n1 --data-dir "$dir/data" \
            --listen-client-urls "http://127.0.0.1:$client" \
            --advertise-client-urls "http://127.0.0.1:$client" \
            --listen-peer-urls "http://127.0.0.1:$peer" \
            --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
            --initial-cluster "n1=http://127.0.0.1:$peer" \
            --initial-cluster-state new --logger=zap --log-outputs=stderr
        pid=$SPAWNED_PID
        local deadline=$((SECONDS + READY_TIMEOUT))
        while ((SECONDS < deadline)) && running "$pid"; do
            if etcd_ready "$client" "$peer"; then
                ETCD_URL="http://127.0.0.1:$client"
                return 0
            fi
            sleep 0.1
        done
        show_log "$dir/etcd.log"
        if running "$pid"; then
            abandon "$pid"
            log "etcd was not healthy within ${READY_TIMEOUT}s"
            return 1
        fi
        unrecord "$pid"
        log "etcd exited (attempt $attempt); retrying on other ports"
    done
    log "cannot start etcd"
    return 1
}

# Starts Redis number $1; sets REDIS_URI.
start_redis() {
    local n=$1 dir="$CLUSTER_DIR/redis-$1" port pid attempt
    for attempt in 1 2 3 4 5; do
        rm -rf -- "$dir"
        mkdir -p -- "$dir/data"
        port=$(free_ports 1)
        log "starting redis-$n on 127.0.0.1:$port"
        spawn "redis-$n" "$dir/redis.log" - \
            redis-server --bind 127.0.0.1 --port "$port" --dir "$dir/data" \
            --save '' --appendonly yes --appendfsync everysec --daemonize no
        pid=$SPAWNED_PID
        local deadline=$((SECONDS + READY_TIMEOUT))
        while ((SECONDS < deadline)) && running "$pid"; do
            if redis_ready "$port" "$pid"; then
                REDIS_URI="redis://127.0.0.1:$port"
                return 0
            fi
            sleep 0.1
        done
        show_log "$dir/redis.log"
        if running "$pid"; then
            abandon "$pid"
            log "redis-$n did not answer PING within ${READY_TIMEOUT}s"
            return 1
        fi
        unrecord "$pid"
        log "redis-$n exited (attempt $attempt); retrying on another port"
    done
    log "cannot start redis-$n"
    return 1
}

# Installs SecantusDB into MONGO_VENV unless it is there.
install_mongo() {
    if ! "$MONGO_VENV/bin/python" -c 'import secantus, pymongo' >/dev/null 2>&1; then
        log "installing SecantusDB 0.7.0b3 into $MONGO_VENV"
        rm -rf -- "$MONGO_VENV"
        python3 -m venv "$MONGO_VENV" >&2
        "$MONGO_VENV/bin/pip" install -q --disable-pip-version-check secantusdb==0.7.0b3 pymongo >&2
    fi
}

# Whether the Mongo-wire server on port $1 answers a ping.
mongo_ready() {
    timeout 5 "$MONGO_VENV/bin/python" -c '
import sys, pymongo
url = "mongodb://127.0.0.1:%s/?directConnection=true" % sys.argv[1]
pymongo.MongoClient(url, serverSelectionTimeoutMS=500).admin.command("ping")
' "$1" >/dev/null 2>&1
}

# Starts Mongo-wire server number $1 (it may take several seconds); sets
# MONGO_URI.
start_mongo() {
    local n=$1 dir="$CLUSTER_DIR/mongo-$1" port pid attempt
    for attempt in 1 2 3 4 5; do
        rm -rf -- "$dir"
        mkdir -p -- "$dir/data"
        : >"$dir/empty.toml" # --config stops it from reading config files elsewhere
        port=$(free_ports 1)
        log "starting mongo-$n on 127.0.0.1:$port"
        spawn "mongo-$n" "$dir/mongo.log" - \
            "$MONGO_VENV/bin/secantusd-py" --config "$dir/empty.toml" --host 127.0.0.1 \
            --port "$port" --storage-path "$dir/data" --log-level WARNING
        pid=$SPAWNED_PID
        local deadline=$((SECONDS + READY_TIMEOUT * 2))
        while ((SECONDS < deadline)) && running "$pid"; do
            if mongo_ready "$port"; then
                MONGO_URI="mongodb://127.0.0.1:$port/zaqar?directConnection=true"
                return 0
            fi
            sleep 0.5
        done
        show_log "$dir/mongo.log"
        if running "$pid"; then
            abandon "$pid"
            log "mongo-$n did not answer a ping within $((READY_TIMEOUT * 2))s"
            return 1
        fi
        unrecord "$pid"
        log "mongo-$n exited (attempt $attempt); retrying on another port"
    done
    log "cannot start mongo-$n"
    return 1
}

# start_zaqar NAME ROLE ARGS...: starts `zaqar ROLE --listen 127.0.0.1:0
# ARGS...` (environment: RUST_LOG, plus any VAR=VALUE in ZAQAR_ENV) and waits
# for its `listening on` line; sets LISTEN_ADDR.
start_zaqar() {
    local name=$1 role=$2 dir="$CLUSTER_DIR/$1" pid addr
    shift 2
    rm -rf -- "$dir"
    mkdir -p -- "$dir"
    log "starting $name (zaqar $role)"
    spawn "$name" "$dir/stdout.log" "$dir/$role.log" \
        env RUST_LOG="${RUST_LOG:-info}" NO_COLOR=1 "${ZAQAR_ENV[@]}" \
        "$ZAQAR" "$role" --listen 127.0.0.1:0 "$@"
    pid=$SPAWNED_PID
    local deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        addr=$(sed -n '/^listening on /{s///p;q}' "$dir/stdout.log" 2>/dev/null) || addr=
        if [ -n "$addr" ]; then
            LISTEN_ADDR=$addr
            return 0
        fi
        running "$pid" || break
        sleep 0.1
    done
    show_log "$dir/$role.log"
    if running "$pid"; then
        abandon "$pid"
        log "$name printed no 'listening on' line within ${READY_TIMEOUT}s"
    else
        log "$name exited before it listened"
    fi
    return 1
}

# register_pool API NAME URI: PUT /v2/pools/NAME (weight 100) as admin;
# retries connection failures and 5xx replies until READY_TIMEOUT.
register_pool() {
    local api=$1 name=$2 uri=$3 code
    local reply="$CLUSTER_DIR/api-1/pool-$name.reply"
    local deadline=$((SECONDS + READY_TIMEOUT))
    log "registering $name ($uri)"
    while :; do
        code=$(curl -sS -o "$reply" -w '%{http_code}' --max-time 10 \
            -X PUT "$api/v2/pools/$name" \
            -H "Client-ID: $CLIENT_ID" -H 'X-Project-ID: admin' -H 'X-Roles: admin' \
            -H 'Content-Type: application/json' \
            -d "{\"uri\": \"$uri\", \"weight\": 100}" 2>>"$CLUSTER_DIR/api-1/pool-$name.curl") ||
            code=000
        case $code in
        201) return 0 ;;
        000 | 5??) ((SECONDS < deadline)) || break ;;
        *) break ;;
        esac
        sleep 0.2
    done
    log "PUT $api/v2/pools/$name answered $code (expected 201): $(cat -- "$reply" 2>/dev/null || true)"
    return 1
}

# --- commands --------------------------------------------------------------

# Splits POOLS into KINDS; an unsupported or empty kind exits with status 2.
parse_pools() {
    local rest="${POOLS:-redis,redis}," kind
    KINDS=()
    while [ -n "$rest" ]; do
        kind=${rest%%,*}
        rest=${rest#*,}
        kind=${kind//[[:space:]]/}
        if [ -z "$kind" ]; then
            log "error: POOLS='${POOLS:-}' holds an empty pool kind (expected e.g. redis,redis)"
            exit 2
        fi
        case " $SUPPORTED_KINDS " in
        *" $kind "*) KINDS+=("$kind") ;;
        *)
            log "error: pool kind '$kind' is not supported yet (supported: $SUPPORTED_KINDS)"
            exit 2
            ;;
        esac
    done
}

# Sets ZAQAR to the binary: ZAQAR_BIN, else a fresh release build.
find_zaqar() {
    if [ -n "${ZAQAR_BIN:-}" ]; then
        if [ ! -f "$ZAQAR_BIN" ] || [ ! -x "$ZAQAR_BIN" ]; then
            die "ZAQAR_BIN=$ZAQAR_BIN is not an executable file"
        fi
        ZAQAR=$ZAQAR_BIN
        return 0
    fi
    log "building zaqar (cargo build --release -p zaqar --features etcd --bin zaqar)"
    (cd "$ROOT" && cargo build --release --quiet -p zaqar --features etcd --bin zaqar) >&2 || die "cargo build failed"
    ZAQAR="$ROOT/target/release/zaqar"
    [ -x "$ZAQAR" ] || die "$ZAQAR was not built"
}

check_tools() {
    local tool package missing=()
    for tool in etcd:etcd-server redis-server:redis-server redis-cli:redis-tools \
        curl:curl python3:python3 flock:util-linux; do
        package=${tool#*:}
        tool=${tool%%:*}
        command -v "$tool" >/dev/null || missing+=("$tool (Debian package $package)")
    done
    [ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]}"
}

# Runs when `up` exits: on failure, stops what was started.
up_exit() {
    local status=$?
    trap - EXIT INT TERM
    if [ "$status" -ne 0 ]; then
        log "up failed; stopping what was started (logs stay in $CLUSTER_DIR)"
        stop_recorded
        rm -f -- "$PIDS_FILE" "$ENDPOINTS_FILE"
    fi
    exit "$status"
}

cmd_up() {
    parse_pools
    check_tools
    resolve_cluster_dir create
    lock_cluster_dir
    if [ -f "$PIDS_FILE" ]; then
        any_recorded_alive &&
            die "a cluster is already running in $CLUSTER_DIR ('$PROG status' shows it, '$PROG down' stops it)"
        log "removing the state of a stopped cluster in $CLUSTER_DIR"
    fi
    rm -f -- "$PIDS_FILE" "$ENDPOINTS_FILE"
    find_zaqar

    : >"$PIDS_FILE"
    trap up_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    rm -rf -- "$CLUSTER_DIR"/etcd "$CLUSTER_DIR"/redis-* "$CLUSTER_DIR"/mongo-* \
        "$CLUSTER_DIR"/storage-* "$CLUSTER_DIR"/api-*

    local -a endpoints=() pool_uris=()
    local n i
    ZAQAR_ENV=()

    start_etcd
    endpoints+=("etcd $ETCD_URL")

    for i in "${!KINDS[@]}"; do
        n=$((i + 1))
        case ${KINDS[i]} in
        redis)
            start_redis "$n"
            pool_uris+=("$REDIS_URI")
            ;;
        mongo)
            install_mongo
            start_mongo "$n"
            pool_uris+=("$MONGO_URI")
            ;;
        esac
    done
    for i in "${!pool_uris[@]}"; do
        n=$((i + 1))
        start_zaqar "storage-$n" storage --backend "${pool_uris[i]}" --etcd "$ETCD_URL"
    done

    ZAQAR_ENV=(ZAQAR_API__ADMIN_MODE=true)
    local -a apis=()
    for ((n = 1; n <= API_NODES; n++)); do
        start_zaqar "api-$n" api --etcd "$ETCD_URL"
        apis+=("http://$LISTEN_ADDR")
        endpoints+=("api http://$LISTEN_ADDR")
    done

    for i in "${!pool_uris[@]}"; do
        n=$((i + 1))
        register_pool "${apis[0]}" "pool$n" "${pool_uris[i]}"
        endpoints+=("pool pool$n ${pool_uris[i]}")
    done

    printf '%s\n' "${endpoints[@]}" >"$ENDPOINTS_FILE"
    trap - EXIT INT TERM
    log "cluster is up (state in $CLUSTER_DIR; '$PROG down' stops it)"
    cat -- "$ENDPOINTS_FILE"
}

cmd_down() {
    if ! resolve_cluster_dir; then
        log "no cluster in $CLUSTER_DIR"
        return 0
    fi
    lock_cluster_dir
    if [ ! -f "$PIDS_FILE" ]; then
        log "no cluster in $CLUSTER_DIR"
        return 0
    fi
    stop_recorded
    rm -f -- "$PIDS_FILE" "$ENDPOINTS_FILE"
    log "stopped; logs stay in $CLUSTER_DIR"
}

cmd_status() {
    if ! resolve_cluster_dir || [ ! -f "$PIDS_FILE" ]; then
        log "no cluster in $CLUSTER_DIR"
        return 1
    fi
    [ ! -f "$ENDPOINTS_FILE" ] || cat -- "$ENDPOINTS_FILE"
    read_pids
    local i all=0
    for i in "${!PIDS[@]}"; do
        if is_ours "${PIDS[i]}" "${STARTS[i]}"; then
            printf 'process %s %s alive\n' "${NAMES[i]}" "${PIDS[i]}"
        else
            printf 'process %s %s dead\n' "${NAMES[i]}" "${PIDS[i]}"
            all=1
        fi
    done
    [ ${#PIDS[@]} -gt 0 ] || all=1
    return "$all"
}

main() {
    if [ $# -ne 1 ]; then
        usage >&2
        exit 2
    fi
    case $1 in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    -h | --help | help) usage ;;
    *)
        log "error: unknown command '$1'"
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"
