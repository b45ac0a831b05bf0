#!/usr/bin/env python3
"""stacks.py — how many of a recording's samples are wrong, not only how many are torn.

cpu_bound.py's every stack has one shape: <module>, main, then `descend` as many times as its
level (depth + 1 at the bottom), then, at the bottom only, <lambda>, kernel and small. A sample
that passed for good but is not of that shape (callers missing, a <lambda> above fewer levels,
more levels than the depth) is a wrong stack: worse than a torn one, which the timeline skips,
as a wrong one ends every call it lacks. Runs each pytrace given (A, and B with --candidate)
on the same target process, alternately, and prints a table of good / torn / wrong samples.

    /usr/bin/python3 bench/stacks.py --baseline OLD/pytrace --versions 2.7,3.8,3.10 --depth 200
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perflib as pl  # noqa: E402


def classify(ndjson, depth):
    """good, torn, Counter of wrong kinds, for the samples of one recording."""
    good, torn, wrong = 0, 0, collections.Counter()
    for line in ndjson.splitlines():
        o = json.loads(line)
        if o["type"] != "sample":
            continue
        if o["bad"]:
            torn += 1
            continue
        good += 1
        names = [f["function"] for f in o["stack"]]   # root first
        levels = names.count("descend")
        rest = names[2:]
        if names[:2] != ["<module>", "main"]:
            wrong["no root"] += 1
        elif rest[:levels] != ["descend"] * levels:
            wrong["levels not together"] += 1
        elif levels > depth + 1:
            wrong["too deep"] += 1
        elif rest[levels:levels + 1] == ["<lambda>"] and levels != depth + 1:
            wrong["bottom above its level"] += 1
        elif rest[levels:] and rest[levels] != "<lambda>":
            wrong["other"] += 1
    return good, torn, wrong


def record(binary, pid, rate, seconds, depth):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "s.pytrace")
        subprocess.run([binary, "attach", str(pid), "-r", str(rate), "-d", str(seconds), "-o", out,
                        "-q"], check=True, timeout=seconds + 60)
        r = subprocess.run([binary, "export", out, "-f", "ndjson", "-o", "-"], check=True,
                           stdout=subprocess.PIPE, timeout=120)
    return classify(r.stdout.decode(), depth)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", help="another pytrace, run alternately with the candidate")
    ap.add_argument("--candidate", default=pl.PYTRACE, help="default: build/pytrace")
    ap.add_argument("--versions", default="2.7,3.8,3.10,3.12")
    ap.add_argument("--depth", type=int, default=200)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    tools = ([("A", a.baseline)] if a.baseline else []) + [("B", a.candidate)]
    rows = []
    for minor in a.versions.split(","):
        python = pl.python_for(minor)
        if not python:
            rows.append([minor, "-", "skipped: not found: %s" % pl.python_pattern(minor), "", "", ""])
            continue
        # Long enough for every run (2.7 builds its loop as a list: not much longer).
        target = pl.spawn([python, pl.CPU_BOUND, "--seconds", "600", "--depth", str(a.depth)])
        try:
            time.sleep(1.0)   # past the target's calibration
            for run in range(a.runs):
                for name, binary in tools:
                    good, torn, wrong = record(binary, target.pid, a.rate, a.seconds, a.depth)
                    total = good + torn
                    kinds = ", ".join("%s %d" % kv for kv in sorted(wrong.items())) or "-"
                    rows.append([minor, "%s (run %d)" % (name, run + 1), str(good),
                                 "%d (%.1f%%)" % (torn, 100.0 * torn / max(total, 1)),
                                 "%d (%.2f%%)" % (sum(wrong.values()),
                                                  100.0 * sum(wrong.values()) / max(good, 1)),
                                 kinds])
        finally:
            pl.kill(target)
    print("## cpu_bound.py --depth %d at %d Hz, %.0f s a recording; A = %s, B = %s\n"
          % (a.depth, a.rate, a.seconds, a.baseline or "-", a.candidate))
    pl.table(["Python", "pytrace", "good", "torn", "wrong (of good)", "wrong kinds"], rows)


if __name__ == "__main__":
    try:
        main()
    finally:
        pl.kill_all()
