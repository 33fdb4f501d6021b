#!/usr/bin/env python3
"""Helper of deploy/bench/compare.sh (standard library only).

Subcommands:
  seconds DURATION              prints a humantime duration ("10s", "1m30s",
                                "500ms", "10") in seconds
  check-bench FILE              exits non-zero unless FILE holds one JSON
                                object from `zaqar bench --json`
  get FILE KEY [KEY...]         prints the first present number among the
                                dotted KEYs of a `zaqar bench --json` file
                                (0 when none is present)
  rps CSV_FILE                  prints the rps of redis-benchmark's --csv output
  rss-sample OUT SPEC...        samples VmRSS every second until SIGTERM and
                                keeps the peak per SPEC in OUT ("name kB" lines,
                                rewritten after every sample). SPEC is
                                NAME=PID (that process) or NAME=PID+ (that
                                process plus its children, summed)
  steal BEFORE AFTER            prints the share (%) of all CPU time the
                                hypervisor took (steal) between two copies of
                                /proc/stat's first line, or nothing when they
                                carry no steal field
  report DIR ROUNDS             prints the comparison table and, as its last
                                line, `ratio post=X consume=Y`
"""

import json
import os
import re
import signal
import statistics
import sys
import time

SCENARIOS = ("post1", "post10", "consume")
# Runs at a fixed offered load (`zaqar bench --rate`), for latency at equal load.
PACED = ("paced-post1", "paced-consume")


def seconds(text):
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    total, pos = 0.0, 0
    for match in re.finditer(r"(\d+(?:\.\d+)?)\s*([a-z]+)", text):
        if match.start() != pos or match.group(2) not in units:
            raise ValueError(f"cannot read duration {text!r}")
        total += float(match.group(1)) * units[match.group(2)]
        pos = match.end()
    if pos != len(text) or total <= 0:
        raise ValueError(f"cannot read duration {text!r}")
    return total


def load(path):
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def dig(data, key):
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data if isinstance(data, (int, float)) and not isinstance(data, bool) else None


def first(data, *keys):
    for key in keys:
        value = dig(data, key)
        if value is not None:
            return float(value)
    return None


def errors(data):
    """All errors of all operations of one run, summed."""
    total = 0
    for op in (data.get("operations") or {}).values():
        for count in ((op or {}).get("errors") or {}).values():
            if isinstance(count, (int, float)):
                total += count
    return total


def rps(path):
    with open(path, encoding="utf-8") as handle:
        lines = [line for line in handle.read().splitlines() if line.strip()]
    # "test","rps","avg_latency_ms",...  then  "EVALSHA ...","12345.67",...
    header = [cell.strip('"') for cell in lines[0].split('","')]
    row = lines[-1].rsplit('","', len(header) - 1)
    return float(row[header.index("rps")].strip('"'))


# --- RSS sampling ------------------------------------------------------------


def vm_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    kids = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as handle:
                kids += [int(k) for k in handle.read().split()]
    except OSError:
        pass
    return kids


def rss_sample(out, specs):
    targets = []
    for spec in specs:
        name, _, pid = spec.partition("=")
        tree = pid.endswith("+")
        targets.append((name, int(pid.rstrip("+")), tree))
    peaks = {name: 0 for name, _, _ in targets}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        for name, pid, tree in targets:
            pids = [pid] + (children(pid) if tree else [])
            peaks[name] = max(peaks[name], sum(vm_rss_kb(p) for p in pids))
        tmp = out + ".tmp"
        with open(tmp, "w", encoding="ascii") as handle:
            for name, _, _ in targets:
                handle.write(f"{name} {peaks[name]}\n")
        os.replace(tmp, out)
        for _ in range(10):
            if stop:
                break
            time.sleep(0.1)


# --- report ------------------------------------------------------------------


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    if value is None:
        return "-"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def steal(before, after):
    """Share (%) of CPU time stolen between two /proc/stat `cpu` lines."""
    a = [int(x) for x in before.split()[1:]]
    b = [int(x) for x in after.split()[1:]]
    if len(a) < 8 or len(b) < 8:
        return None
    delta = [y - x for x, y in zip(a, b)]
    total = sum(delta[:8])
    return 100.0 * delta[7] / total if total > 0 else None


def read_steal(path):
    """The steal share a run recorded, or None."""
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read().strip()
    except OSError:
        return None
    return float(text) if text else None


def report(base, rounds):
    runs = {}  # (side, scenario) -> [json per round]
    for side in ("ours", "theirs"):
        for scenario in SCENARIOS + PACED:
            found = []
            for r in range(1, rounds + 1):
                path = os.path.join(base, side, scenario, f"r{r}.json")
                if os.path.exists(path):
                    found.append(load(path))
            runs[side, scenario] = found

    def figure(side, scenario, *keys):
        return median([first(run, *keys) for run in runs[side, scenario]])

    ceilings = {}
    for name in ("post1", "post10", "claim"):
        values = []
        for r in range(1, rounds + 1):
            path = os.path.join(base, "ceiling", name, f"r{r}.csv")
            if os.path.exists(path):
                values.append(rps(path) * (1 if name == "post1" else 10))
        ceilings[name] = median(values)

    post_rate = ("produced_messages_per_s", "operations.post.messages_per_s")
    consume_rate = ("consumed_messages_per_s", "operations.delete.messages_per_s")
    rows = [
        # label, scenario, keys, digits, ceiling, higher is better
        ("post b1   msg/s", "post1", post_rate, 0, ceilings["post1"]),
        ("post b10  msg/s", "post10", post_rate, 0, ceilings["post10"]),
        ("consume   msg/s", "consume", consume_rate, 0, ceilings["claim"]),
        ("post b1   p50 ms", "post1", ("operations.post.latency_ms.p50",), 2, None),
        ("post b1   p99 ms", "post1", ("operations.post.latency_ms.p99",), 2, None),
        ("post b10  p50 ms", "post10", ("operations.post.latency_ms.p50",), 2, None),
        ("post b10  p99 ms", "post10", ("operations.post.latency_ms.p99",), 2, None),
        ("claim     p50 ms", "consume", ("operations.claim.latency_ms.p50",), 2, None),
        ("claim     p99 ms", "consume", ("operations.claim.latency_ms.p99",), 2, None),
        ("delete    p50 ms", "consume", ("operations.delete.latency_ms.p50",), 2, None),
        ("delete    p99 ms", "consume", ("operations.delete.latency_ms.p99",), 2, None),
    ]
    paced = {}
    for scenario in PACED:
        runs_of = runs["ours", scenario] + runs["theirs", scenario]
        paced[scenario] = next((first(run, "settings.rate") for run in runs_of), None)
    # scenario -> (label, operation whose latency it reports, rate keys)
    paced_rows = {
        "paced-post1": ("post b1", "post", post_rate),
        "paced-consume": ("claim", "claim", consume_rate),
    }
    for scenario, (name, op, rate_keys) in paced_rows.items():
        if not paced[scenario]:
            continue
        label = f"{name} at {fmt(paced[scenario])}/s"
        rows.append((f"{label}  msg/s", scenario, rate_keys, 1, None))
        for pct in ("p50", "p99"):
            rows.append((f"{label}  {pct} ms", scenario, (f"operations.{op}.latency_ms.{pct}",), 2, None))
    ratios = {}
    table = []
    for label, scenario, keys, digits, ceiling in rows:
        ours = figure("ours", scenario, *keys)
        theirs = figure("theirs", scenario, *keys)
        ratio = ours / theirs if ours is not None and theirs else None
        if digits == 0:
            ratios[scenario] = ratio
        table.append((label, fmt(ours, digits), fmt(theirs, digits),
                      "-" if ratio is None else f"{ratio:.2f}", fmt(ceiling)))
    for scenario in SCENARIOS + tuple(name for name in PACED if paced[name]):
        table.append((f"errors {scenario}", fmt(median([errors(x) for x in runs["ours", scenario]])),
                      fmt(median([errors(x) for x in runs["theirs", scenario]])), "", ""))

    head = ("figure (median of %d round%s)" % (rounds, "" if rounds == 1 else "s"),
            "ours", "theirs", "ours/theirs", "redis ceiling")
    widths = [max(len(str(row[i])) for row in table + [head]) for i in range(5)]
    line = lambda row: "  ".join(
        str(cell).ljust(widths[i]) if i == 0 else str(cell).rjust(widths[i])
        for i, cell in enumerate(row)).rstrip()
    print(line(head))
    print("  ".join("-" * w for w in widths))
    for row in table:
        print(line(row))

    print("(ratio = ours/theirs: above 1 is better for msg/s, below 1 for latency.")
    print(" redis ceiling = redis-benchmark of Lua scripts doing the Redis work of a post")
    print(" of 1 / 10 messages, and of a claim of 10 for consume: the claim alone,")
    print(" without the delete each consumed message also needs; see compare.sh.")
    print(" \"at N/s\" rows: both sides offered the same fixed load, N posts or claims")
    print(" of 10 per second over the same connections; latency counts from when a")
    print(" request was sent, or was due when that side had fallen behind.)")
    print()
    print("per round (msg/s, ours / theirs):")
    for scenario in SCENARIOS:
        keys = consume_rate if scenario == "consume" else post_rate
        cells = []
        for r in range(max(len(runs["ours", scenario]), len(runs["theirs", scenario]))):
            o = runs["ours", scenario][r] if r < len(runs["ours", scenario]) else {}
            t = runs["theirs", scenario][r] if r < len(runs["theirs", scenario]) else {}
            cells.append(f"{fmt(first(o, *keys))} / {fmt(first(t, *keys))}")
        print(f"  {scenario:<8} " + " | ".join(cells))

    stolen = {
        (side, scenario): [read_steal(os.path.join(base, side, scenario, f"r{r}.steal"))
                           for r in range(1, rounds + 1)]
        for side in ("ours", "theirs") for scenario in SCENARIOS
    }
    if any(v is not None for values in stolen.values() for v in values):
        print()
        print("CPU time taken by the hypervisor during each run (steal, % of all cores;")
        print(" ours / theirs; a few % or more makes that run's tail latency noisy):")
        for scenario in SCENARIOS:
            cells = [f"{fmt(o, 1)} / {fmt(t, 1)}"
                     for o, t in zip(stolen["ours", scenario], stolen["theirs", scenario])
                     if o is not None or t is not None]
            if cells:
                print(f"  {scenario:<8} " + " | ".join(cells))

    rss_path = os.path.join(base, "rss")
    if os.path.exists(rss_path):
        print()
        print("peak RSS (VmRSS sampled every second during the runs):")
        labels = {
            "ours-api": "ours: zaqar api",
            "ours-storage": "ours: zaqar storage",
            "theirs": "theirs: gunicorn master + workers",
            "redis": "redis-server (shared)",
        }
        with open(rss_path, encoding="ascii") as handle:
            for entry in handle.read().splitlines():
                name, _, kb = entry.partition(" ")
                print(f"  {labels.get(name, name):<36} {int(kb) / 1024:8.1f} MiB")

    notes_path = os.path.join(base, "notes")
    if os.path.exists(notes_path):
        with open(notes_path, encoding="utf-8") as handle:
            notes = handle.read().strip()
        if notes:
            print()
            print("notes:")
            for note in notes.splitlines():
                print(f"  {note}")

    post = [ratios.get("post1"), ratios.get("post10")]
    post = min(post) if None not in post else None
    consume = ratios.get("consume")
    print()
    print("ratio post=%s consume=%s" % (
        "nan" if post is None else f"{post:.2f}",
        "nan" if consume is None else f"{consume:.2f}"))


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    cmd, args = argv[1], argv[2:]
    if cmd == "seconds" and len(args) == 1:
        value = seconds(args[0])
        print(int(value) if value == int(value) else value)
    elif cmd == "check-bench" and len(args) == 1:
        data = load(args[0])
        if "operations" not in data:
            raise ValueError(f"{args[0]}: no 'operations' in the bench report")
    elif cmd == "get" and len(args) >= 2:
        value = first(load(args[0]), *args[1:])
        print(0 if value is None else value)
    elif cmd == "rps" and len(args) == 1:
        print(rps(args[0]))
    elif cmd == "rss-sample" and len(args) >= 2:
        rss_sample(args[0], args[1:])
    elif cmd == "steal" and len(args) == 2:
        share = steal(args[0], args[1])
        if share is not None:
            print(f"{share:.2f}")
    elif cmd == "report" and len(args) == 2:
        report(args[0], int(args[1]))
    else:
        print(f"compare_helper.py: bad arguments: {' '.join(argv[1:])}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except (OSError, ValueError) as error:
        print(f"compare_helper.py: {error}", file=sys.stderr)
        sys.exit(1)
