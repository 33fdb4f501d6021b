#!/usr/bin/env python3
"""Helper of deploy/bench/profile.sh (standard library only).

Subcommands:
  snap OUT NAME=PID...          writes to OUT (JSON) each process's CPU time
                                (user + system, from /proc/PID/stat), the
                                time its threads ran and the time they were
                                runnable but waited for a core (summed over
                                /proc/PID/task/*/schedstat), and
                                a monotonic clock reading
  cpu BEFORE AFTER BENCH_JSON   prints, from two snapshots taken during a
                                `zaqar bench --json` run, each process's CPU
                                (share of one core, and microseconds per HTTP
                                request at the run's request rate) and its
                                wait for a core
  top FOLDED N                  prints the N functions with the most samples
                                at the top of the stack (self time) in a file
                                of folded stacks (`inferno-collapse-perf`),
                                as shares of all its samples (weighted by
                                perf's sampling period)
"""

import json
import os
import sys
import time


def snap(out, specs):
    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat", encoding="ascii") as handle:
        machine = [int(x) / ticks for x in handle.readline().split()[1:]]
    data = {"clock": time.monotonic(), "machine": machine, "processes": {}}
    for spec in specs:
        name, _, pid = spec.partition("=")
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            # the command name (field 2) may hold spaces; fields after it
            # start at index 2 (state)
            fields = handle.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
        ran = waited = None
        # schedstat is per thread: the process's figures are its threads' sum
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as handle:
                    task_ran, task_waited, _ = (int(x) for x in handle.read().split())
            except (OSError, ValueError):
                continue  # a thread that ended meanwhile, or no schedstats
            ran = (ran or 0) + task_ran
            waited = (waited or 0) + task_waited
        data["processes"][name] = {"cpu_s": cpu, "ran_ns": ran, "waited_ns": waited}
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(data, handle)


def load(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def cpu(before_path, after_path, bench_path):
    before, after, bench = load(before_path), load(after_path), load(bench_path)
    window = after["clock"] - before["clock"]
    rate = sum(op.get("requests_per_s", 0) for op in bench.get("operations", {}).values())
    if window <= 0 or rate <= 0:
        raise ValueError("no requests or no time between the snapshots")
    print(f"  {'process':<10} {'CPU, % of a core':>17} {'µs per request':>15} {'waiting for a core, % of a core':>32}")
    total = 0.0
    for name, end in after["processes"].items():
        start = before["processes"][name]
        used = end["cpu_s"] - start["cpu_s"]
        total += used
        waited = ""
        if end["waited_ns"] is not None and start["waited_ns"] is not None:
            waited = f"{(end['waited_ns'] - start['waited_ns']) / 1e9 / window * 100:.0f}"
        print(f"  {name:<10} {used / window * 100:>17.0f} {used / window / rate * 1e6:>15.1f} {waited:>32}")
    print(f"  {'together':<10} {total / window * 100:>17.0f} {total / window / rate * 1e6:>15.1f}")
    # /proc/stat: user nice system idle iowait irq softirq steal ...
    spent = [b - a for a, b in zip(before["machine"], after["machine"])]
    if len(spent) >= 8 and sum(spent) > 0:
        cores = os.cpu_count() or 1
        share = [x / sum(spent) * cores * 100 for x in spent]
        print(
            f"  machine: {cores * 100 - share[3] - share[4]:.0f} % busy of {cores * 100} "
            f"(softirq {share[6]:.0f}, steal {share[7]:.0f}), idle {share[3] + share[4]:.0f}"
        )
    print(f"  ({rate:,.0f} requests/s over a {window:.1f} s window; waiting = threads runnable but not running)")


def top(folded, count):
    selfs, total = {}, 0
    with open(folded, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            stack, _, samples = line.rstrip("\n").rpartition(" ")
            if not stack or not samples.isdigit():
                continue
            leaf = stack.rsplit(";", 1)[-1]
            selfs[leaf] = selfs.get(leaf, 0) + int(samples)
            total += int(samples)
    if total == 0:
        print("  (no samples)")
        return
    for leaf, samples in sorted(selfs.items(), key=lambda kv: -kv[1])[:count]:
        name = leaf if len(leaf) <= 100 else leaf[:97] + "..."
        print(f"  {samples / total * 100:5.1f} %  {name}")


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "snap" and len(args) >= 2:
        snap(args[0], args[1:])
    elif cmd == "cpu" and len(args) == 3:
        cpu(*args)
    elif cmd == "top" and len(args) == 2:
        top(args[0], int(args[1]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except (OSError, ValueError, KeyError) as err:
        print(f"profile_helper.py: {err}", file=sys.stderr)
        sys.exit(1)
