"""The eBPF backend's cost (docs/performance.md, docs/ebpf.md): what one sample costs in the
kernel and in pytrace, and how much `--ebpf` slows the target, next to the ptrace sampler.

  cost       `PYTRACE_EBPF_STATS=1 pytrace attach --ebpf` to cpu_bound.py --depth D (50; --depths)
             at 1, 10, 50 and 100 kHz (--quick: 1 and 10; --rates) for S seconds each, on each
             pyenv 3.8/3.10/3.11/3.12/3.13. Kernel time: the kernel's own BPF
             run-time statistics (BPF_ENABLE_STATS; run_time_ns and run_cnt of each program, as
             `bpftool prog show` reports them) — the CPU-clock program divided by the samples it
             sent is the walk's cost; all programs (the clock program's runs on other threads
             and idle CPUs, and every sched_switch on the machine) divided by the same samples is
             the "all in" kernel cost. pytrace CPU: getrusage(RUSAGE_SELF) around the recording
             loop (start-up excluded), per kernel sample and per sample written (written also
             counts the samples synthesised across waits, docs/ebpf.md).
  slowdown   cpu_bound.py with a fixed --iterations, started through a wrapper that waits for
             "go" on stdin, so the target's own timing of its loop covers only traced time:
             alone (A) and with `pytrace attach --ebpf` (or the ptrace sampler) ready (B),
             interleaved A B A B ...; reported: median B/A and the median target-CPU ratio.

  ab         (--baseline PATH) two builds alternately on the same cpu_bound.py targets, 1 kHz,
             5 s each, --pairs times per version: pytrace's steady CPU per sample (from 1 s in)
             and the kernel's, medians and the B/A ratio of pytrace's.

Usage: /usr/bin/python3 bench/ebpf.py [--quick] [--only cost|slowdown] [--pairs N] [--json PATH]
                                     [--rates R,R...] [--depths D,D...] [--versions V,V...]
       /usr/bin/python3 bench/ebpf.py --baseline OTHER/build/pytrace [--pairs N]
       (root: loads BPF programs)
"""
import argparse
import json
import os
import re
import select
import statistics
import subprocess
import sys
import tempfile
import time

import perflib as pl
from perflib import fmt, table

VERSIONS = ["3.8", "3.10", "3.11", "3.12", "3.13"]
WRAPPER = ("import json, os, runpy, sys\n"
           "print(json.dumps({'pid': os.getpid()})); sys.stdout.flush()\n"
           "sys.stdin.readline()\n"
           "sys.argv = sys.argv[1:]\n"
           "runpy.run_path(sys.argv[0], run_name='__main__')\n")
STATS_RE = re.compile(r"(\w+)=([0-9.]+)")


def ebpf_attach(pid, seconds, out, tmp, rate=1000, binary=None):
    """pytrace attach --ebpf with BPF statistics; returns rusage CPU and the stats line."""
    err = os.path.join(tmp, "ebpf.stderr")
    env = dict(os.environ, PYTRACE_EBPF_STATS="1")
    argv = [binary or pl.PYTRACE, "attach", str(pid), "--ebpf", "-r", str(rate), "-d", str(seconds),
            "-o", out, "-q"]
    with open(err, "w") as ef:
        p = subprocess.Popen(argv, stderr=ef, env=env, start_new_session=True)
        pl._CHILDREN.append(p)
        rc, cpu, _, timed_out = pl.wait_rusage(p, seconds + 60)
    text = open(err).read()
    if rc != 0 or timed_out:
        return {"error": pl.first_line(err) or "exit %d" % rc}
    line = [ln for ln in text.splitlines() if "ebpf stats:" in ln]
    stats = {k: float(v) for k, v in STATS_RE.findall(line[-1])} if line else {}
    return {"cpu_s": cpu, "stats": stats, "info": pl.info(out)}


def cpu_bound_targets(rows, depth, versions=None):
    """(version, cpu_bound.py target) for each of VERSIONS found; a skip row for the others."""
    for v in versions or VERSIONS:
        python = pl.python_for(v)
        if not python:
            rows.append([v, "skipped: not found at %s" % pl.python_pattern(v)])
            continue
        yield v, pl.start_cpu_bound(python, depth)


def cost_record(v, depth, rate, seconds, res, start):
    """The per-sample figures of one recording (see the module's docstring)."""
    st = res["stats"]
    n = st.get("samples", 0) or 1
    walk_per_sample = st.get("clock_run_ns", 0) / n
    all_in = st.get("prog_run_ns", 0) / n
    # pytrace's CPU while recording (getrusage around the loop: start-up excluded)
    user_us = st.get("loop_cpu_ns", 0) / 1000.0 / n
    user_us_written = st.get("loop_cpu_ns", 0) / 1000.0 / max(st.get("written", 0), 1)
    # the same from 1 s after the start: without the first moments' one-off work (code objects
    # decoded, line tables, first thread-list reads), which a 3 s run does not amortise
    steady_n = st.get("steady_samples", 0)
    steady_us = st.get("steady_cpu_ns", 0) / 1000.0 / steady_n if steady_n else None
    return {"python": v, "depth": depth, "rate_hz": rate, "seconds": seconds, "stats": st,
            "cpu_s": res["cpu_s"], "startup_cpu_s": start["cpu_s"],
            "kernel_hz": st.get("samples", 0) / max(st.get("seconds", seconds), 1e-9),
            "filled_share": st.get("gaps", 0) / max(st.get("written", 0), 1),
            "kernel_ns_per_clock_run": st.get("clock_run_ns", 0) / max(st.get("clock_run_cnt", 0), 1),
            "kernel_ns_per_sample_walk": walk_per_sample,
            "kernel_ns_per_sample_all_in": all_in, "user_us_per_sample_net": user_us,
            "user_us_per_written_sample": user_us_written,
            "total_us_per_sample": user_us + all_in / 1000.0,
            "user_us_per_sample_steady": steady_us,
            "total_us_per_sample_steady": (steady_us + all_in / 1000.0
                                           if steady_us is not None else None)}


def bench_cost(quick, tmp, depths=None, rates=None, versions=None):
    """--ebpf's cost per sample at each rate and depth, on each version: one target per version
    and depth, recorded at each rate in turn."""
    seconds = 3 if quick else 10
    depths = depths or [50]
    rates = rates or ([1000, 10000] if quick else [1000, 10000, 50000, 100000])
    headers = ["python", "depth", "asked Hz", "kernel samples/s", "filled in", "drops",
               "kernel ns/sample (walk)", "kernel ns/sample (all in)", "pytrace CPU us/sample",
               "total us/sample", "pytrace CPU us/sample after 1 s", "total after 1 s",
               "pytrace CPU us/written sample"]
    rows, out = [], []
    for depth in depths:
        for v, target in cpu_bound_targets(rows, depth, versions):
            try:
                start = ebpf_attach(target.pid, 0.2, os.path.join(tmp, "s.pytrace"), tmp)
                for rate in rates:
                    res = ebpf_attach(target.pid, seconds, os.path.join(tmp, "c.pytrace"), tmp,
                                      rate=rate)
                    if "error" in res or "error" in start:
                        rows.append([v, "%d" % depth, "%d" % rate,
                                     "failed: %s" % res.get("error", start.get("error"))])
                        continue
                    rec = cost_record(v, depth, rate, seconds, res, start)
                    out.append(rec)
                    st = rec["stats"]
                    rows.append([v, "%d" % depth, "%d" % rate, fmt(rec["kernel_hz"], "%.0f"),
                                 "%.1f%%" % (100 * rec["filled_share"]),
                                 "%d" % st.get("drops", 0),
                                 fmt(rec["kernel_ns_per_sample_walk"], "%.0f"),
                                 fmt(rec["kernel_ns_per_sample_all_in"], "%.0f"),
                                 fmt(rec["user_us_per_sample_net"], "%.2f"),
                                 fmt(rec["total_us_per_sample"], "%.2f"),
                                 fmt(rec["user_us_per_sample_steady"], "%.2f"),
                                 fmt(rec["total_us_per_sample_steady"], "%.2f"),
                                 fmt(rec["user_us_per_written_sample"], "%.2f")])
            finally:
                pl.kill(target)
    table(headers, rows)
    print("Target: cpu_bound.py at each depth (about depth + 6 Python frames), %d s per rate; "
          "\"kernel samples/s\": what the CPU clock delivered; \"filled in\": written samples "
          "that are ticks the kernel throttled, filled with the stack before them (docs/ebpf.md); "
          "load %s." % (seconds, pl.loadavg()))
    print()
    return out


def run_pair_member(python, iterations, depth, tmp, mode):
    """One run of the wrapped cpu_bound.py; mode None (alone), 'ebpf' or 'ptrace'."""
    argv = [python, "-c", WRAPPER, pl.CPU_BOUND, "--depth", str(depth), "--iterations",
            str(iterations)]
    t = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    pl._CHILDREN.append(t)
    tracer = None
    try:
        pid = json.loads(t.stdout.readline())["pid"]
        if mode:
            out = os.path.join(tmp, "slow.pytrace")
            argv = [pl.PYTRACE, "attach", str(pid), "-r", "1000", "-o", out, "-q"]
            env = dict(os.environ)
            if mode == "ebpf":
                argv.append("--ebpf")
                env["PYTRACE_EBPF_STATS"] = "1"
            tracer = subprocess.Popen(argv, stderr=subprocess.PIPE, env=env,
                                      start_new_session=True)
            pl._CHILDREN.append(tracer)
            if mode == "ebpf":   # wait until the programs are attached
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    r, _, _ = select.select([tracer.stderr], [], [], 1)
                    if r and b"ebpf ready" in tracer.stderr.readline():
                        break
            else:
                time.sleep(0.3)
        t.stdin.write(b"go\n")
        t.stdin.flush()
        line = t.stdout.readline()
        rc, cpu, _, _ = pl.wait_rusage(t, 300)
        result = json.loads(line)
        result["cpu_s"] = cpu
        return result
    finally:
        pl.kill(t)
        if tracer:
            pl.wait_rusage(tracer, 30)
            pl.kill(tracer)


def bench_slowdown(quick, tmp, version="3.12", depth=50, pairs=None):
    python = pl.python_for(version)
    headers = ["mode", "pairs", "alone median (s)", "traced median (s)", "slowdown median",
               "min / max pair ratio", "target CPU ratio median"]
    if not python:
        table(headers, [["all", "skipped: not found at %s" % pl.python_pattern(version)]])
        return {"skipped": "not found"}
    seconds, default_pairs = (1.5, 5) if quick else (2.0, 15)
    pairs = pairs or default_pairs
    cal = subprocess.run([python, pl.CPU_BOUND, "--depth", str(depth), "--seconds", str(seconds)],
                         stdout=subprocess.PIPE, timeout=120)
    iterations = json.loads(cal.stdout.decode().splitlines()[-1])["iterations"]
    rows, out = [], []
    runs = {m: ([], [], [], []) for m in ("ebpf", "ptrace")}
    # Interleaved A B A B, the two modes alternating too: drifts of the machine hit both alike.
    for _ in range(pairs):
        for mode in ("ebpf", "ptrace"):
            alone, traced, cpu_a, cpu_b = runs[mode]
            a = run_pair_member(python, iterations, depth, tmp, None)
            b = run_pair_member(python, iterations, depth, tmp, mode)
            alone.append(a["elapsed_s"])
            traced.append(b["elapsed_s"])
            cpu_a.append(a["cpu_s"])
            cpu_b.append(b["cpu_s"])
    for mode in ("ebpf", "ptrace"):
        alone, traced, cpu_a, cpu_b = runs[mode]
        ratios = [y / x for x, y in zip(alone, traced)]
        cpu_ratios = [y / x for x, y in zip(cpu_a, cpu_b)]
        rec = {"mode": mode, "rate_hz": 1000, "pairs": pairs, "python": version,
               "iterations": iterations, "alone_s": alone, "traced_s": traced,
               "ratios": ratios, "median_ratio": statistics.median(ratios),
               "median_cpu_ratio": statistics.median(cpu_ratios)}
        out.append(rec)
        rows.append(["%s 1 kHz" % mode, "%d" % pairs, fmt(statistics.median(alone), "%.3f"),
                     fmt(statistics.median(traced), "%.3f"), fmt(rec["median_ratio"], "%.4f"),
                     "%s / %s" % (fmt(min(ratios), "%.3f"), fmt(max(ratios), "%.3f")),
                     fmt(rec["median_cpu_ratio"], "%.4f")])
    table(headers, rows)
    print("Target: %s cpu_bound.py --depth %d --iterations %d (about %.1f s alone); load %s." % (
        version, depth, iterations, seconds, pl.loadavg()))
    print()
    return {"python": version, "depth": depth, "rows": out}


def bench_ab(baseline, pairs, tmp, depth=50, seconds=5):
    """A (baseline) and B (this build) alternately on one target per version."""
    headers = ["python", "pytrace CPU us/sample A / B", "B/A (pairs)", "kernel us/sample A / B",
               "all in us/sample A / B"]
    rows, out = [], []
    for v, target in cpu_bound_targets(rows, depth):
        got = {"A": [], "B": []}
        try:
            for k in range(pairs):
                order = ("A", "B") if k % 2 == 0 else ("B", "A")
                for side in order:
                    res = ebpf_attach(target.pid, seconds, os.path.join(tmp, "ab.pytrace"), tmp,
                                      binary=baseline if side == "A" else None)
                    st = res.get("stats", {})
                    if "error" in res or not st.get("steady_samples"):
                        continue
                    user = st["steady_cpu_ns"] / 1000.0 / st["steady_samples"]
                    kern = st.get("clock_run_ns", 0) / 1000.0 / max(st.get("samples", 0), 1)
                    got[side].append((user, kern))
        finally:
            pl.kill(target)
        if not got["A"] or not got["B"]:
            rows.append([v, "failed"])
            continue
        med = {s: (statistics.median(u for u, _ in got[s]), statistics.median(k for _, k in got[s]))
               for s in "AB"}
        ratios = [b[0] / a[0] for a, b in zip(got["A"], got["B"])]
        rows.append([v, "%.2f / %.2f" % (med["A"][0], med["B"][0]),
                     "%.2f (%.2f-%.2f)" % (statistics.median(ratios), min(ratios), max(ratios)),
                     "%.2f / %.2f" % (med["A"][1], med["B"][1]),
                     "%.2f / %.2f" % (med["A"][0] + med["A"][1], med["B"][0] + med["B"][1])])
        out.append({"python": v, "A": got["A"], "B": got["B"]})
    print("A = %s, B = %s\n" % (baseline, pl.PYTRACE))
    table(headers, rows)
    print("%d pairs of %d s per version at 1 kHz, interleaved; medians; pytrace's CPU from 1 s "
          "after the start; kernel: the CPU-clock program's run time per sample (bpf_stats). "
          "Load %s." % (pairs, seconds, pl.loadavg()))
    return out


def ints(text):
    return [int(x) for x in text.split(",")] if text else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=("cost", "slowdown"), help="run one of the two sections")
    ap.add_argument("--pairs", type=int, help="slowdown pairs per mode (default 15, quick 5)")
    ap.add_argument("--baseline", help="another build's pytrace: compare the cost side by side")
    ap.add_argument("--rates", help="cost: comma-separated rates (default 1000,10000,50000,100000; "
                                    "quick 1000,10000)")
    ap.add_argument("--depths", help="cost: comma-separated depths (default 50)")
    ap.add_argument("--versions", help="comma-separated Python versions (default %s)" %
                                       ",".join(VERSIONS))
    ap.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results",
                                                   "ebpf.json"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/ebpf.py loads BPF programs: run it as root")
    if args.baseline:
        with tempfile.TemporaryDirectory(prefix="pytrace-ebpf-ab-") as tmp:
            try:
                rows = bench_ab(args.baseline, args.pairs or 3, tmp)
            finally:
                pl.kill_all()
        path = os.path.join(os.path.dirname(__file__), "results", "ebpf_ab.json")
        with open(path, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "baseline": args.baseline, "rows": rows}, f, indent=1)
        print("wrote %s" % path)
        return
    with tempfile.TemporaryDirectory(prefix="pytrace-ebpf-bench-") as tmp:
        try:
            cost = slow = None
            if args.only != "slowdown":
                print("## eBPF: cost per sample\n")
                cost = bench_cost(args.quick, tmp, ints(args.depths), ints(args.rates),
                                  args.versions.split(",") if args.versions else None)
            if args.only != "cost":
                print("## eBPF: target slowdown at 1 kHz\n")
                slow = bench_slowdown(args.quick, tmp, pairs=args.pairs)
        finally:
            pl.kill_all()
    doc = {"version": pl.version(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "quick": args.quick, "cost": cost, "slowdown": slow}
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=1)
    print("wrote %s" % args.json)


if __name__ == "__main__":
    main()
