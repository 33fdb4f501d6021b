#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine.
#
# Installs what is missing (Debian redis-server, etcd-server,
# protobuf-compiler and libprotobuf-dev; SecantusDB from PyPI into a cached
# venv), starts a private Redis, a private etcd and a private Mongo-wire
# server on free loopback ports with their own temporary directories, runs `cargo fmt --check`, `cargo clippy -D warnings` and
# every Rust test, then drives a real storage node + API node with the real
# python-zaqarclient (tests/python), and stops everything it started, also on
# failure.
#
# Usage: deploy/test.sh [extra cargo-nextest arguments, e.g. a test filter]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

log() { printf '==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_packages() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    command -v protoc >/dev/null || missing+=(protobuf-compiler)
    command -v etcd >/dev/null || missing+=(etcd-server)
    command -v curl >/dev/null || missing+=(curl)
    [ -f /usr/include/google/protobuf/timestamp.proto ] || missing+=(libprotobuf-dev)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if ! cargo nextest --version >/dev/null 2>&1; then
        log "installing cargo-nextest"
        cargo install --locked cargo-nextest
    fi
}

WORK=$(mktemp -d -t zaqar-test-XXXXXX)
PIDS=()

cleanup() {
    local status=$?
    if [ -n "${CLUSTER_DIR:-}" ] && [ -f "$CLUSTER_DIR/pids" ]; then
        deploy/local/cluster.sh down >/dev/null 2>&1 || true
    fi
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_redis() {
    local port dir
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        dir="$WORK/redis-$port"
        mkdir -p "$dir"
        redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' \
            --appendonly no --daemonize no >"$dir/redis.log" 2>&1 &
        local pid=$!
        PIDS+=("$pid")
        for _ in $(seq 100); do
            if [ "$(redis-cli -p "$port" ping 2>/dev/null)" = "PONG" ]; then
                REDIS_URL="redis://127.0.0.1:$port"
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        log "redis on port $port did not start; retrying"
    done
    log "cannot start redis-server"
    return 1
}

start_etcd() {
    local client peer dir
    for _ in 1 2 3 4 5; do
        client=$(free_port)
        peer=$(free_port)
        dir="$WORK/etcd-$client"
        mkdir -p "$dir"
        # etcd reads every ETCD_* variable as a flag: start it without them.
        local unset=()
        while IFS= read -r name; do
            unset+=(-u "$name")
        done < <(env | sed -n 's/^\(ETCD_[A-Za-z0-9_]*\)=.*/\1/p')
        env "${unset[@]}" etcd --name test --data-dir "$dir/data" \
            --listen-client-urls "http://127.0.0.1:$client" \
            --advertise-client-urls "http://127.0.0.1:$client" \
            --listen-peer-urls "http://127.0.0.1:$peer" \
            --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
            --initial-cluster "test=http://127.0.0.1:$peer" \
            --initial-cluster-state new --logger=zap --log-outputs=stderr \
            >"$dir/etcd.log" 2>&1 &
        local pid=$!
        PIDS+=("$pid")
        for _ in $(seq 100); do
            if curl -sf "http://127.0.0.1:$client/health" 2>/dev/null | grep -q '"health":"true"'; then
                ETCD_URL="http://127.0.0.1:$client"
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        log "etcd on port $client did not start; retrying"
    done
    log "cannot start etcd"
    return 1
}

# The Mongo-wire test server: SecantusDB (a pinned pre-release from PyPI, a
# separate GPL process nothing links to), installed once into a cached venv.
MONGO_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/zaqar-test/secantusdb-0.7.0b3"

install_mongo() {
    if ! "$MONGO_VENV/bin/python" -c 'import secantus, pymongo' >/dev/null 2>&1; then
        log "installing SecantusDB 0.7.0b3 into $MONGO_VENV"
        rm -rf "$MONGO_VENV"
        python3 -m venv "$MONGO_VENV"
        "$MONGO_VENV/bin/pip" install -q --disable-pip-version-check secantusdb==0.7.0b3 pymongo
    fi
}

# Whether the Mongo-wire server on port $1 answers a ping.
mongo_ready() {
    "$MONGO_VENV/bin/python" -c '
import sys, pymongo
url = "mongodb://127.0.0.1:%s/?directConnection=true" % sys.argv[1]
pymongo.MongoClient(url, serverSelectionTimeoutMS=500).admin.command("ping")
' "$1" >/dev/null 2>&1
}

start_mongo() {
    local port dir
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        dir="$WORK/mongo-$port"
        mkdir -p "$dir"
        : >"$dir/empty.toml" # --config stops it from reading config files elsewhere
        "$MONGO_VENV/bin/secantusd-py" --config "$dir/empty.toml" --host 127.0.0.1 \
            --port "$port" --storage-path "$dir/data" --log-level WARNING \
            >"$dir/mongo.log" 2>&1 &
        local pid=$!
        PIDS+=("$pid")
        for _ in $(seq 120); do
            if mongo_ready "$port"; then
                MONGO_PORT=$port
                MONGO_URL="mongodb://127.0.0.1:$port/?directConnection=true"
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        log "mongo-wire server on port $port did not start; retrying"
    done
    log "cannot start secantusd-py"
    return 1
}

install_packages
install_mongo

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

log "building"
cargo build --workspace --bins --all-features --locked

start_redis
log "test redis at $REDIS_URL"
export ZAQAR_TEST_REDIS_URL="$REDIS_URL"
start_etcd
log "test etcd at $ETCD_URL"
export ZAQAR_TEST_ETCD_URL="$ETCD_URL"
start_mongo
log "test mongodb at $MONGO_URL"
export ZAQAR_TEST_MONGO_URL="$MONGO_URL"
export ZAQAR_TEST_SECANTUSD="$MONGO_VENV/bin/secantusd-py"
export ZAQAR_BIN="$ROOT/target/debug/zaqar"

# Starts `zaqar ROLE ARGS...` on a free port; sets STARTED_ADDR.
start_zaqar() {
    local role=$1
    shift
    local out="$WORK/$role-${#PIDS[@]}.out"
    "$ZAQAR_BIN" "$role" --listen 127.0.0.1:0 "$@" >"$out" 2>"${out%.out}.log" &
    PIDS+=("$!")
    for _ in $(seq 200); do
        STARTED_ADDR=$(sed -n 's/^listening on //p' "$out")
        [ -n "$STARTED_ADDR" ] && return 0
        sleep 0.05
    done
    log "zaqar $role did not start:"
    cat "${out%.out}.log" >&2
    return 1
}

log "cargo nextest run"
cargo nextest run --workspace --all-features --locked --no-fail-fast "$@"

log "python-zaqarclient against zaqar api + zaqar storage"
start_zaqar storage --backend "$REDIS_URL"
start_zaqar api --storage "http://$STARTED_ADDR"
tests/python/run.sh "http://$STARTED_ADDR"

log "python-zaqarclient against zaqar api + zaqar storage on the mongo-wire server"
start_zaqar storage --backend "mongodb://127.0.0.1:$MONGO_PORT/python?directConnection=true"
start_zaqar api --storage "http://$STARTED_ADDR"
tests/python/run.sh "http://$STARTED_ADDR"

log "python-zaqarclient (with pools and flavors) against a pooled cluster on etcd"
POOL_URI="$REDIS_URL/5"
start_zaqar storage --backend "$POOL_URI" --etcd "$ETCD_URL"
export ZAQAR_API__ADMIN_MODE=true ZAQAR_API__DEFAULT_ROLES='[admin]'
start_zaqar api --etcd "$ETCD_URL"
POOLED_API="http://$STARTED_ADDR"
curl -sf -X PUT "$POOLED_API/v2/pools/pool1" \
    -H 'Client-ID: 3381af92-2b9e-11e3-b191-71861300734c' -H 'X-Project-ID: admin' \
    -H 'Content-Type: application/json' \
    -d "{\"uri\": \"$POOL_URI\", \"weight\": 100}" >/dev/null
ZAQAR_PY_TESTS="test_zaqarclient_pools.py test_zaqarclient.py" tests/python/run.sh "$POOLED_API"

log "deploy/local/cluster.sh up, a message through one API node and back through the other, down"
export CLUSTER_DIR="$WORK/cluster"
deploy/local/cluster.sh up >"$WORK/cluster.endpoints"
mapfile -t APIS < <(sed -n 's/^api //p' "$WORK/cluster.endpoints")
HEADERS=(-H 'Client-ID: 3381af92-2b9e-11e3-b191-71861300734c' -H 'X-Project-ID: smoke'
    -H 'Content-Type: application/json')
curl -sf -X POST "${APIS[0]}/v2/queues/smoke/messages" "${HEADERS[@]}" \
    -d '{"messages": [{"body": "across the cluster"}]}' >/dev/null
SEEN=$(curl -sf "${APIS[1]}/v2/queues/smoke/messages?echo=true" "${HEADERS[@]}")
deploy/local/cluster.sh down
case "$SEEN" in
    *'"across the cluster"'*) log "cluster smoke test passed" ;;
    *) log "cluster smoke test failed: $SEEN"; exit 1 ;;
esac
