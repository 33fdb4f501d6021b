#!/usr/bin/env python3
"""Times the Redis backend's message scripts of two revisions side by side.

    scripts_ab.py [--redis URL] [--rounds N] [--claim-rounds N] A B

A and B are git revisions of this repository (e.g. `main`, `HEAD~1`) or
directories holding the scripts (`services/storage/src/backends/redis`).
Each side gets a queue of its own in one Redis, filled and consumed by its
own scripts, in interleaved batches (so a slow stretch of the machine hits
both): posts (calls of 14 posts of 10 messages of 256 bytes, as the API's
group commit sends them), then claims of 10 and the deletes of the claimed
messages with their claim (16 per call). Redis' own time per call comes from
`INFO commandstats` (`evalsha`), so neither the client nor the network
counts. Prints the median and mean of the batches per side: µs of Redis per
posted message, per claim of 10, per deleted message.

Needs the redis-py package (the venv `compare.sh` creates has it) and, without
--redis, `redis-server` on PATH (started on a free loopback port, stopped at
the end). With --redis, the database given is flushed before and after.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

try:
    import redis
except ImportError:
    sys.exit("scripts_ab.py: needs redis-py (pip install redis)")

SCRIPTS = "services/storage/src/backends/redis"
# The key suffixes of a queue, in the order the scripts take them (common.lua).
SUFFIXES = ["q", "msgs", "free", "exp", "claimed", "info", "body", "claims",
            "cexp", "dead", "subs", "subz", "subu", "nrec", "ndue"]
POSTS_PER_CALL = 14
MESSAGES_PER_POST = 10
CALLS_PER_BATCH = 100
CLAIMS_PER_BATCH = 200
DELETES_PER_CALL = 16
CLAIM_LIMIT = 10
BODY = '{"data":"' + "x" * 244 + '"}'


def source(side, name):
    """The text of script `name` of `side` (a directory or a git revision)."""
    if os.path.isdir(side):
        with open(os.path.join(side, name), encoding="utf-8") as f:
            return f.read()
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], check=True,
                         capture_output=True, text=True).stdout.strip()
    return subprocess.run(["git", "-C", top, "show", f"{side}:{SCRIPTS}/{name}"],
                          check=True, capture_output=True, text=True).stdout


def load(r, side):
    """Loads the post, claim and delete scripts of `side` the way the storage
    node composes them (redis.rs `Scripts::new`); returns their SHAs."""
    common = source(side, "common.lua")
    pick = source(side, "pick.lua")
    subs = source(side, "subs.lua")
    return {
        "post": r.script_load(f"{common}\n{subs}\n{source(side, 'messages_post.lua')}"),
        "claim": r.script_load(f"{common}\n{pick}\n{source(side, 'claim_create.lua')}"),
        "delete": r.script_load(f"{common}\n{source(side, 'message_delete.lua')}"),
    }


def post_args():
    """ARGV of one post call (messages_post.lua): the limits, then per post
    client, request size, notify, count, ttl, delay, then id and body each."""
    args = [3600, 900, 262144]
    for _ in range(POSTS_PER_CALL):
        args += [uuid.uuid4().hex, 2900, "", MESSAGES_PER_POST, "", ""]
        for _ in range(MESSAGES_PER_POST):
            args += [uuid.uuid4().hex[:24], BODY]
    return args


class Clock:
    """Redis' own time spent in EVALSHA, from INFO commandstats."""

    def __init__(self, r):
        self.r = r

    def usec(self):
        return self.r.info("commandstats").get("cmdstat_evalsha", {}).get("usec", 0)

    def time(self, calls):
        """Runs `calls` (argument tuples of EVALSHA); returns (µs, replies)."""
        before = self.usec()
        replies = [self.r.evalsha(*call) for call in calls]
        return self.usec() - before, replies


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(workdir):
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", workdir,
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = redis.Redis(port=port)
    for _ in range(100):
        try:
            r.ping()
            return proc, r
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.terminate()
    sys.exit("scripts_ab.py: redis-server did not start")


def order(batch):
    """Which side goes first in a batch: they take turns."""
    return (0, 1) if batch % 2 == 0 else (1, 0)


def run(r, sides, rounds, claim_rounds):
    clock = Clock(r)
    shas = [load(r, side) for side in sides]
    keys = [[f"zaqar:{{q:p:scripts-ab-{j}}}:{s}" for s in SUFFIXES] for j in range(2)]
    results = {name: ([], []) for name in ("post", "claim", "delete")}
    needed = claim_rounds * CLAIMS_PER_BATCH * CLAIM_LIMIT
    per_round = CALLS_PER_BATCH * POSTS_PER_CALL * MESSAGES_PER_POST
    rounds = max(rounds, -(-needed // per_round))
    for b in range(rounds):
        for j in order(b):
            calls = [(shas[j]["post"], len(SUFFIXES), *keys[j], *post_args())
                     for _ in range(CALLS_PER_BATCH)]
            usec, _ = clock.time(calls)
            results["post"][j].append(usec / per_round)
    for b in range(claim_rounds):
        for j in order(b):
            cids = [uuid.uuid4().hex[:24] for _ in range(CLAIMS_PER_BATCH)]
            usec, replies = clock.time(
                [(shas[j]["claim"], len(SUFFIXES), *keys[j], cid, 300, 60, CLAIM_LIMIT)
                 for cid in cids])
            results["claim"][j].append(usec / CLAIMS_PER_BATCH)
            held = []
            for cid, reply in zip(cids, replies):
                # {moved, now, count, then five fields per message}
                if reply[2] != CLAIM_LIMIT:
                    sys.exit(f"scripts_ab.py: {sides[j]}: a claim took {reply[2]} messages,"
                             f" not {CLAIM_LIMIT}")
                held += [(reply[3 + i * 5], cid) for i in range(reply[2])]
            calls = []
            for first in range(0, len(held), DELETES_PER_CALL):
                args = []
                for mid, cid in held[first:first + DELETES_PER_CALL]:
                    args += [mid, "id", cid]
                calls.append((shas[j]["delete"], len(SUFFIXES), *keys[j], *args))
            usec, replies = clock.time(calls)
            if any(status != b"ok" for reply in replies for status in reply):
                sys.exit(f"scripts_ab.py: {sides[j]}: a delete with its claim failed")
            results["delete"][j].append(usec / len(held))
    units = {"post": "µs per posted message", "claim": "µs per claim of 10",
             "delete": "µs per deleted message"}
    for name, per_side in results.items():
        print(f"{name} ({units[name]}, {len(per_side[0])} batches each):")
        for side, values in zip(sides, per_side):
            print(f"  {side:30s} median {statistics.median(values):8.2f}"
                  f"  mean {statistics.mean(values):8.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="git revision or script directory")
    parser.add_argument("b", help="git revision or script directory")
    parser.add_argument("--redis", help="redis://HOST:PORT/DB to use (flushed); "
                        "default: start redis-server on a free port")
    parser.add_argument("--rounds", type=int, default=10,
                        help="post batches per side (at least what the claims need)")
    parser.add_argument("--claim-rounds", type=int, default=20,
                        help="claim and delete batches per side")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scripts-ab-") as workdir:
        proc = None
        if args.redis:
            r = redis.Redis.from_url(args.redis)
        else:
            proc, r = start_redis(workdir)
        try:
            r.flushdb()
            run(r, [args.a, args.b], args.rounds, args.claim_rounds)
            r.flushdb()
        finally:
            if proc:
                proc.terminate()
                proc.wait()


if __name__ == "__main__":
    main()
