#!/usr/bin/env python3
"""ab.py — two pytrace builds side by side on the same targets, in one run, as ratios.

This VM's speed drifts by 10-50% over minutes (other tenants), so a figure measured now cannot be
compared with one measured an hour ago. ab.py runs a baseline build (say, the previous release or
commit) and the candidate (build/pytrace) alternately on the same target process — A B, B A, A B
... — and reports each one's medians and the median of the per-pair ratios candidate / baseline.

    /usr/bin/python3 bench/ab.py --baseline /tmp/base/build/pytrace            # about 4 minutes
    /usr/bin/python3 bench/ab.py --baseline OLD --versions 3.12 --depths 50,200 --pairs 5

Target: ../shared/workloads/cpu_bound.py --depth D, or with --script any program that runs until
killed (tests/integration/targets/generators.py: generators resumed all the time). Per run: `pytrace attach PID -r HZ -d S`,
its CPU from wait4 (the kernel's accounting of that process alone) over its samples, its achieved
rate and its work per round (the trailer's busy_ns). Writes bench/results/ab.json.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import perflib as pl  # noqa: E402
from run import derive  # noqa: E402


def one(binary, pid, rate, seconds, tmp):
    res = pl.attach(pid, rate, seconds, os.path.join(tmp, "ab.pytrace"), tmp, binary=binary)
    if "info" not in res:
        return {"error": res["error"]}
    return derive(res, rate)


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", required=True, help="the pytrace binary to compare against")
    ap.add_argument("--candidate", default=pl.PYTRACE, help="default: build/pytrace")
    ap.add_argument("--versions", default=",".join(pl.VERSIONS))
    ap.add_argument("--depths", default="50")
    ap.add_argument("--rates", default="1000,10000,100000")
    ap.add_argument("--script", help="run this program (until killed) instead of cpu_bound.py; "
                    "--depths is then ignored")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--json", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "results", "ab.json"))
    a = ap.parse_args()
    rates = [int(r) for r in a.rates.split(",")]
    depths = [int(d) for d in a.depths.split(",")] if not a.script else ["-"]
    headers = ["Python", "depth", "asked Hz", "achieved Hz A / B", "CPU µs/sample A / B",
               "B/A CPU per sample (pairs)", "work µs/round A / B", "errors % A / B"]
    rows, out = [], []
    load0 = pl.loadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for version in a.versions.split(","):
            python = pl.python_for(version)
            for depth in depths:
                if not python:
                    rows.append([version, depth, "skipped: not found at %s"
                                 % pl.python_pattern(version)])
                    continue
                target = (pl.start_script(python, a.script) if a.script
                          else pl.start_cpu_bound(python, depth))
                try:
                    for rate in rates:
                        runs = {"A": [], "B": []}
                        ratios = []
                        for i in range(a.pairs):
                            order = ("A", "B") if i % 2 == 0 else ("B", "A")
                            got = {}
                            for who in order:
                                binary = a.baseline if who == "A" else a.candidate
                                got[who] = one(binary, target.pid, rate, a.seconds, tmp)
                                runs[who].append(got[who])
                            ua, ub = got["A"].get("us_per_sample"), got["B"].get("us_per_sample")
                            if ua and ub:
                                ratios.append(ub / ua)
                        rec = {"python": version, "depth": depth, "rate_hz": rate,
                               "baseline": runs["A"], "candidate": runs["B"], "ratios": ratios}
                        out.append(rec)
                        f = pl.fmt
                        rows.append([
                            version, depth, rate,
                            "%s / %s" % (f(med(runs["A"], "achieved_hz"), "%.0f"),
                                         f(med(runs["B"], "achieved_hz"), "%.0f")),
                            "%s / %s" % (f(med(runs["A"], "us_per_sample")),
                                         f(med(runs["B"], "us_per_sample"))),
                            "%s (%s-%s)" % (f(statistics.median(ratios), "%.2f") if ratios else "-",
                                            f(min(ratios), "%.2f") if ratios else "-",
                                            f(max(ratios), "%.2f") if ratios else "-"),
                            "%s / %s" % (f(med(runs["A"], "work_us_per_round")),
                                         f(med(runs["B"], "work_us_per_round"))),
                            "%s / %s" % (f(med(runs["A"], "error_pct"), "%.2f"),
                                         f(med(runs["B"], "error_pct"), "%.2f"))])
                finally:
                    pl.kill(target)
    print("## A = %s, B = %s; target %s\n" % (a.baseline, a.candidate,
                                                a.script or "cpu_bound.py"))
    pl.table(headers, rows)
    load1 = pl.loadavg()
    print("%d pairs of %.1f s per row, interleaved (A B, B A, ...); medians. Load average "
          "(1/5/15 min): %s at start, %s at end." % (a.pairs, a.seconds, load0, load1))
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as fh:
        json.dump({"baseline": a.baseline, "candidate": a.candidate, "script": a.script,
                   "rows": out,
                   "load": [load0, load1]}, fh, indent=1)
    print("wrote", a.json)


if __name__ == "__main__":
    try:
        main()
    finally:
        pl.kill_all()
