"""pytrace's performance suite: one command that runs every benchmark, prints a markdown table
per benchmark and writes the numbers to bench/results/perf.json. What each one measures and how
(docs/performance.md says the same at more length):

  sampling   pytrace's own CPU per sample and the rate it achieves: `pytrace attach` to
             cpu_bound.py --depth D (stack of D+5 or D+6 frames) at 1 kHz, 10 kHz and 100 kHz
             on each pyenv 3.8/3.10/3.11/3.12/3.13. CPU is the kernel's accounting of the pytrace
             process alone (os.wait4 rusage: utime + stime), divided by the samples it took; a
             separate very short recording per interpreter measures the fixed start-up cost (ELF
             symbols, layouts), which a net column subtracts. Achieved rate, samples, errors and
             missed rounds come from `pytrace info --json`; missed % = 1 - samples / (rate *
             duration), error % = errors / samples.
  slowdown   how much pytrace slows the target: cpu_bound.py with a fixed --iterations (calibrated
             once) alone (A) and with `pytrace attach` started right after its Popen (B),
             interleaved A B A B ..., for non-blocking 100 Hz / 1 kHz / 10 kHz and --blocking
             100 Hz. The target times its own loop, so start-up is excluded; reported: median of
             B/A over the pairs, min / max pair ratio, and the median ratio of the target's own
             CPU time (wait4), which other load on the machine disturbs less.
  bytes      trace size per sample at 1 kHz: a steady stack (known_stack.py parked in sleep) and
             changing stacks (cpu_bound.py): file size / samples.
  rss        pytrace's memory over a long 1 kHz recording of cpu_bound.py (600 s; --quick 60 s):
             VmRSS and VmHWM from /proc/PID/status every 10 s, and the last values read
             before it exits (polled every 50 ms; rusage's ru_maxrss would be the forking
             Python's).
  export     export throughput: a cpu_bound.py recording at 10 kHz, then `pytrace export -f F`
             for each format; samples / wall second and the exporter's CPU (wait4).
  reference  other samplers on the same target and rate: Debian's `austin` (installed with
             apt-get when the archive has it) next to pytrace, its CPU per sample (wait4) and
             achieved rate (its own sample count / seconds); py-spy only if installed.

Usage: /usr/bin/python3 bench/run.py [--quick] [--only NAME[,NAME...]] [--json PATH]
--only keeps the other sections already in the JSON file. Children are killed on any exit.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import perflib as pl
from perflib import fmt, table

RATES = [1000, 10000, 100000]
AUSTIN_PATIENCE_S = 10.0
EXPORT_FORMATS = ["perfetto", "chrome", "speedscope", "pprof", "collapsed", "ndjson", "otlp"]


def derive(res, rate, startup_cpu_s=None):
    """Per-sample figures from an attach() result."""
    d = res["info"]
    n = d["samples"]
    expected = rate * d["duration_s"]
    row = {"samples": n, "duration_s": d["duration_s"], "achieved_hz": d["achieved_hz"],
           "cpu_s": res["cpu_s"], "cpu_pct_of_core": 100.0 * res["cpu_s"] / d["duration_s"],
           "us_per_sample": 1e6 * res["cpu_s"] / n if n else None,
           "missed_pct": 100.0 * (1.0 - n / expected) if expected else None,
           "error_pct": 100.0 * d["errors"] / n if n else None, "errors": d["errors"],
           "pytrace_missed": d.get("missed"), "pytrace_overruns": d.get("overruns"),
           "work_us_per_round": (d["busy_ns"] / 1e3 / d["walks"]
                                 if d.get("busy_ns") and d.get("walks") else None)}
    if startup_cpu_s is not None and n:
        row["us_per_sample_net"] = 1e6 * max(0.0, res["cpu_s"] - startup_cpu_s) / n
    return row


# --- 1. sampling cost -------------------------------------------------------------------------

def startup_cost(python, tmp):
    """CPU of a recording that takes ~2 samples: attaching, symbols, layouts, writing, exit."""
    target = pl.start_cpu_bound(python, 50)
    try:
        res = pl.attach(target.pid, 10, 0.2, os.path.join(tmp, "startup.pytrace"), tmp)
    finally:
        pl.kill(target)
    return res["cpu_s"] if "info" in res else None


def bench_sampling(quick, tmp):
    seconds = 2.0 if quick else 5.0
    # (version, depth, prefetch): the last row turns the round prefetch off (PYTRACE_NO_PREFETCH)
    # to show what it saves.
    if quick:
        matrix = [(v, 50, True) for v in pl.VERSIONS] + [("3.12", 10, True), ("3.12", 200, True)]
    else:
        matrix = [(v, d, True) for v in pl.VERSIONS for d in (10, 50, 200)]
    matrix.append(("3.12", 50, False))
    headers = ["Python", "depth", "asked Hz", "achieved Hz", "samples", "CPU % of a core",
               "CPU µs/sample", "net of start-up", "net of start-up and wake", "work µs/round",
               "missed %", "errors %", "pytrace missed / overruns"]
    rows, out, startups = [], [], {}
    wake = wake_floor()
    for version, depth, prefetch in matrix:
        env = None if prefetch else dict(os.environ, PYTRACE_NO_PREFETCH="1")
        label = version if prefetch else version + " (no prefetch)"
        python = pl.python_for(version)
        if not python:
            rows.append([version, depth, "skipped: not found at %s" % pl.python_pattern(version)])
            out.append({"python": version, "depth": depth, "skipped": "not found"})
            continue
        if version not in startups:
            startups[version] = startup_cost(python, tmp)
        target = pl.start_cpu_bound(python, depth)
        try:
            for rate in RATES:
                res = pl.attach(target.pid, rate, seconds, os.path.join(tmp, "s.pytrace"), tmp,
                                env=env)
                rec = {"python": version, "depth": depth, "rate_hz": rate, "seconds": seconds,
                       "startup_cpu_s": startups[version], "prefetch": prefetch}
                if "info" not in res:
                    rows.append([label, depth, rate, "failed: " + res["error"]])
                    rec["failed"] = res["error"]
                    out.append(rec)
                    continue
                rec.update(derive(res, rate, startups[version]))
                floor = wake.get(rate)
                if floor is not None and rec.get("us_per_sample_net") is not None:
                    rec["timer_wake_us"] = floor
                    rec["us_per_sample_net_of_wake"] = max(0.0, rec["us_per_sample_net"] - floor)
                out.append(rec)
                rows.append([label, depth, rate, fmt(rec["achieved_hz"], "%.0f"), rec["samples"],
                             fmt(rec["cpu_pct_of_core"]), fmt(rec["us_per_sample"]),
                             fmt(rec.get("us_per_sample_net")),
                             fmt(rec.get("us_per_sample_net_of_wake")), fmt(rec["work_us_per_round"]),
                             fmt(rec["missed_pct"]),
                             fmt(rec["error_pct"]), "%s / %s" % (rec["pytrace_missed"],
                                                                 rec["pytrace_overruns"])])
        finally:
            pl.kill(target)
    table(headers, rows)
    print("Start-up CPU per recording (ms): " + ", ".join(
        "%s %s" % (v, fmt(None if s is None else 1000 * s)) for v, s in startups.items()))
    print("Wake: what one wake-up of a loop that only sleeps costs here (bench/readcost.c --wake): "
          + ", ".join("%d Hz %s µs" % (r, fmt(w)) for r, w in sorted(wake.items())) +
          "; pytrace sleeps between samples below 20 kHz and spins above, so the column is "
          "left empty there.")
    print()
    return {"seconds": seconds, "startup_cpu_s": startups, "timer_wake_us": wake, "rows": out}


def wake_floor():
    """{rate: CPU µs of one timer wake-up at that rate} for the rates pytrace sleeps at."""
    tool = os.path.join(os.path.dirname(pl.PYTRACE), "readcost")
    try:
        r = subprocess.run([tool, "--wake"], stdout=subprocess.PIPE, timeout=60, check=True)
        w = json.loads(r.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}
    return {1000: w["timer_wake_1khz"], 10000: w["timer_wake_10khz"]}


# --- 2. target slowdown -----------------------------------------------------------------------

def run_target(argv, timeout, rate=None, trace=None, blocking=False):
    """Run cpu_bound.py (argv) alone, or with `pytrace attach` started right after it (its first
    milliseconds are interpreter start-up; the target times only its loop). Returns the target's
    JSON line plus its own CPU seconds (wait4 rusage) and, if traced, pytrace's info --json."""
    target = pl.spawn(argv, stdout=subprocess.PIPE)
    tracer = None
    try:
        if rate:
            tracer = pl.spawn([pl.PYTRACE, "attach", str(target.pid), "-r", str(rate), "-o", trace,
                               "-q"] + (["--blocking"] if blocking else []))
        rc, cpu, _, timed_out = pl.wait_rusage(target, timeout)
        stdout = target.stdout.read().decode(errors="replace")
        if tracer:
            trc = pl.wait_rusage(tracer, 60)[0]
    finally:
        pl.kill(target)
        if tracer:
            pl.kill(tracer)
    if rc != 0 or timed_out:
        raise RuntimeError("target %s" % ("timed out" if timed_out else "exit %d" % rc))
    res = [json.loads(l) for l in stdout.splitlines() if l.startswith("{")][-1]
    res["cpu_s"] = cpu
    if tracer:
        if trc != 0:
            raise RuntimeError("pytrace attach exited %d" % trc)
        res["info"] = pl.info(trace)
        os.unlink(trace)
    return res


def bench_slowdown(quick, tmp, version="3.12", depth=50):
    python = pl.python_for(version)
    headers = ["mode", "pairs", "alone median (s)", "traced median (s)", "slowdown median",
               "min / max pair ratio", "target CPU ratio median", "pytrace achieved Hz"]
    if not python:
        table(headers, [["all", "skipped: not found at %s" % pl.python_pattern(version)]])
        return {"skipped": "not found"}
    seconds, pairs = (1.5, 5) if quick else (4.0, 9)
    target = [python, pl.CPU_BOUND, "--depth", str(depth)]
    iterations = run_target(target + ["--seconds", str(seconds)], 120)["iterations"]
    target += ["--iterations", str(iterations)]
    modes = [("non-blocking 100 Hz", 100, False), ("non-blocking 1 kHz", 1000, False),
             ("non-blocking 10 kHz", 10000, False), ("--blocking 100 Hz", 100, True)]
    rows, out = [], []
    trace = os.path.join(tmp, "slow.pytrace")
    timeout = 20 * seconds + 60
    for name, rate, blocking in modes:
        alone, traced, cpu_a, cpu_b, achieved, failures = [], [], [], [], [], []
        while len(alone) < pairs and len(failures) < pairs:
            try:                              # a failed pair is counted and run again
                a = run_target(target, timeout)
                b = run_target(target, timeout, rate, trace, blocking)
            except (RuntimeError, ValueError, IndexError, OSError) as e:
                failures.append(str(e))
                continue
            alone.append(a["elapsed_s"])
            traced.append(b["elapsed_s"])
            cpu_a.append(a["cpu_s"])
            cpu_b.append(b["cpu_s"])
            achieved.append(b["info"]["achieved_hz"])
        if not alone:
            rows.append([name, "failed: %s" % "; ".join(sorted(set(failures)))])
            out.append({"mode": name, "rate_hz": rate, "blocking": blocking, "failed": failures})
            continue
        ratios = [b / a for a, b in zip(alone, traced)]
        cpu_ratios = [b / a for a, b in zip(cpu_a, cpu_b)]
        rec = {"mode": name, "rate_hz": rate, "blocking": blocking, "pairs": pairs,
               "python": version, "depth": depth, "iterations": iterations,
               "alone_s": alone, "traced_s": traced, "ratios": ratios,
               "target_cpu_alone_s": cpu_a, "target_cpu_traced_s": cpu_b,
               "median_ratio": statistics.median(ratios), "min_ratio": min(ratios),
               "max_ratio": max(ratios), "median_cpu_ratio": statistics.median(cpu_ratios),
               "achieved_hz": achieved, "achieved_hz_median": statistics.median(achieved),
               "failed_pairs": failures}
        out.append(rec)
        done = "%d%s" % (len(alone), " (+%d failed)" % len(failures) if failures else "")
        rows.append([name, done,
                     fmt(statistics.median(alone), "%.3f"),
                     fmt(statistics.median(traced), "%.3f"), fmt(rec["median_ratio"], "%.3f"),
                     "%s / %s" % (fmt(rec["min_ratio"], "%.3f"), fmt(rec["max_ratio"], "%.3f")),
                     fmt(rec["median_cpu_ratio"], "%.3f"), fmt(rec["achieved_hz_median"], "%.0f")])
    table(headers, rows)
    failed = [f for r in out for f in r.get("failed_pairs", r.get("failed", []))]
    if failed:
        print("Failed pairs (run again): " + "; ".join(sorted(set(failed))) + ".")
    print("Target: %s cpu_bound.py --depth %d --iterations %d (about %.1f s alone when "
          "calibrated); elapsed_s is the target's own timing of its loop." % (
              version, depth, iterations, seconds))
    print()
    return {"python": version, "depth": depth, "iterations": iterations, "rows": out}


# --- 3. bytes per sample ----------------------------------------------------------------------

def bench_bytes(quick, tmp, version="3.12", rate=1000):
    seconds = 5.0 if quick else 10.0
    python = pl.python_for(version)
    headers = ["workload", "threads", "samples", "achieved Hz", "file bytes", "bytes/sample"]
    if not python:
        table(headers, [["all", "skipped: not found at %s" % pl.python_pattern(version)]])
        return {"skipped": "not found"}
    rows, out = [], []
    cases = [("steady: known_stack.py (sleeping)", [python, pl.KNOWN_STACK]),
             ("changing: cpu_bound.py --depth 50", [python, pl.CPU_BOUND, "--depth", "50",
                                                    "--seconds", "3600"])]
    for name, argv in cases:
        trace = os.path.join(tmp, "bytes.pytrace")
        target = pl.spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            if "known_stack" in argv[1]:
                target.stdout.readline()      # parked: its stacks are ready
            else:
                time.sleep(0.5)
            res = pl.attach(target.pid, rate, seconds, trace, tmp)
        finally:
            pl.kill(target)
        if "info" not in res:
            rows.append([name, "failed: " + res["error"]])
            out.append({"workload": name, "failed": res["error"]})
            continue
        d, size = res["info"], os.path.getsize(trace)
        rec = {"workload": name, "python": version, "rate_hz": rate, "seconds": seconds,
               "threads": len(d["threads"]), "samples": d["samples"],
               "achieved_hz": d["achieved_hz"], "bytes": size,
               "bytes_per_sample": size / d["samples"] if d["samples"] else None}
        out.append(rec)
        rows.append([name, rec["threads"], rec["samples"], fmt(rec["achieved_hz"], "%.0f"),
                     size, fmt(rec["bytes_per_sample"], "%.2f")])
    table(headers, rows)
    return {"rows": out}


# --- 4. peak RSS ------------------------------------------------------------------------------

def proc_status(pid):
    """VmRSS and VmHWM of pid in KiB (None once it is gone)."""
    vals = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    vals[key] = int(rest.split()[0])
    except OSError:
        return None
    return vals if len(vals) == 2 else None


def bench_rss(quick, tmp, version="3.12", rate=1000, every=10.0):
    seconds = 60.0 if quick else 600.0
    python = pl.python_for(version)
    headers = ["t (s)", "VmRSS (MiB)", "VmHWM (MiB)"]
    if not python:
        table(headers, [["skipped: not found at %s" % pl.python_pattern(version)]])
        return {"skipped": "not found"}
    trace = os.path.join(tmp, "rss.pytrace")
    target = pl.start_cpu_bound(python, 50)
    samples = []
    err = os.path.join(tmp, "rss.stderr")
    try:
        with open(err, "w") as ef:
            rec = pl.spawn([pl.PYTRACE, "attach", str(target.pid), "-r", str(rate), "-d",
                            str(seconds), "-o", trace, "-q"], stderr=ef)
            t0 = time.monotonic()
            next_t = 1.0                            # a first point once it is running
            done, last = None, None
            while done is None and time.monotonic() - t0 < seconds + 60:
                now = time.monotonic() - t0
                last = proc_status(rec.pid) or last  # VmHWM up to ~50 ms before its exit
                if now >= next_t and last:
                    samples.append({"t_s": round(now, 1), "vmrss_kib": last["VmRSS"],
                                    "vmhwm_kib": last["VmHWM"]})
                    next_t = every * (int(now / every) + 1)
                time.sleep(0.05)
                done = pl.reap_nohang(rec)
            rc, _, _, timed_out = done + (False,) if done else pl.wait_rusage(rec, 0)
    finally:
        pl.kill(target)
    result = {"python": version, "rate_hz": rate, "seconds": seconds, "samples": samples,
              "rc": rc, "last_vmhwm_kib": last and last["VmHWM"],
              "last_vmrss_kib": last and last["VmRSS"]}
    if rc == 0 and not timed_out:
        d = pl.info(trace)
        result.update({"trace_samples": d["samples"], "trace_bytes": os.path.getsize(trace)})
    else:
        result["failed"] = "exit %d: %s" % (rc, pl.first_line(err))
    report_every = every if seconds <= 120 else 60.0
    rows = [[fmt(s["t_s"], "%.0f"), fmt(s["vmrss_kib"] / 1024.0, "%.2f"),
             fmt(s["vmhwm_kib"] / 1024.0, "%.2f")] for s in samples
            if s is samples[0] or s is samples[-1] or round(s["t_s"]) % report_every < every / 2]
    table(headers, rows)
    print("Last seen before exit: VmRSS %s MiB, VmHWM %s MiB; %s" % (
        fmt(result["last_vmrss_kib"] and result["last_vmrss_kib"] / 1024.0, "%.2f"),
        fmt(result["last_vmhwm_kib"] and result["last_vmhwm_kib"] / 1024.0, "%.2f"), (
        "%d samples, %d trace bytes" % (result["trace_samples"], result["trace_bytes"]))
        if "trace_samples" in result else result["failed"]))
    print()
    return result


# --- 5. export throughput ---------------------------------------------------------------------

def bench_export(quick, tmp, version="3.12", rate=10000):
    seconds, runs = (5.0, 1) if quick else (10.0, 3)
    python = pl.python_for(version)
    headers = ["format", "samples/s", "wall (s)", "CPU (s)", "output MiB"]
    if not python:
        table(headers, [["all", "skipped: not found at %s" % pl.python_pattern(version)]])
        return {"skipped": "not found"}
    trace = os.path.join(tmp, "export.pytrace")
    target = pl.start_cpu_bound(python, 50)
    try:
        res = pl.attach(target.pid, rate, seconds, trace, tmp)
    finally:
        pl.kill(target)
    if "info" not in res:
        table(headers, [["all", "failed: recording: " + res["error"]]])
        return {"failed": res["error"]}
    n = res["info"]["samples"]
    rows, out = [], []
    for f in EXPORT_FORMATS:
        dest = os.path.join(tmp, "export.out")
        walls, cpus, err = [], [], None
        for _ in range(runs):
            t0 = time.perf_counter()
            p = pl.spawn([pl.PYTRACE, "export", trace, "-f", f, "-o", dest])
            rc, cpu, _, timed_out = pl.wait_rusage(p, 600)
            wall = time.perf_counter() - t0
            if rc != 0 or timed_out:
                err = "timed out" if timed_out else "exit %d" % rc
                break
            walls.append(wall)
            cpus.append(cpu)
        if err:
            rows.append([f, "failed: " + err])
            out.append({"format": f, "failed": err})
            continue
        size = os.path.getsize(dest)
        os.unlink(dest)
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        rec = {"format": f, "samples": n, "runs": runs, "wall_s": wall, "cpu_s": cpu,
               "samples_per_s": n / wall, "bytes": size}
        out.append(rec)
        rows.append([f, fmt(n / wall, "%.0f"), fmt(wall, "%.3f"), fmt(cpu, "%.3f"),
                     fmt(size / 1048576.0, "%.2f")])
    table(headers, rows)
    print("Trace: %s cpu_bound.py --depth 50 at %d Hz for %g s: %d samples, %d bytes; median of "
          "%d run(s)." % (version, rate, seconds, n, os.path.getsize(trace), runs))
    print()
    return {"trace_samples": n, "trace_bytes": os.path.getsize(trace), "rows": out}


# --- 6. reference samplers --------------------------------------------------------------------

def apt_candidate(package):
    """Debian's candidate version of package, or None."""
    try:
        out = subprocess.run(["apt-cache", "policy", package], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, timeout=60).stdout.decode()
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if line.strip().startswith("Candidate:"):
            v = line.split(":", 1)[1].strip()
            return None if v == "(none)" else v
    return None


def ensure_austin():
    """(path, note): austin on PATH, installing Debian's package if the archive has it."""
    path = shutil.which("austin")
    if path:
        return path, "installed"
    cand = apt_candidate("austin")
    if not cand:
        return None, "not in Debian's archive (apt-cache policy austin: no candidate)"
    try:
        subprocess.run(["apt-get", "install", "-y", "-q", "austin"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=600,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    except (OSError, subprocess.SubprocessError) as e:
        return None, "apt-get install austin failed: %s" % e
    path = shutil.which("austin")
    return (path, "installed by this run (%s)" % cand) if path else (None, "apt-get install failed")


def austin_version(path):
    try:
        return subprocess.run([path, "--version"], stdout=subprocess.PIPE, timeout=10,
                              stderr=subprocess.DEVNULL).stdout.decode().strip()
    except (OSError, subprocess.SubprocessError):
        return None


def run_austin(path, pid, rate, seconds, tmp):
    """austin -i <interval> -p PID for `seconds`, stopped with SIGINT (it has no duration option).
    Its summary on stderr gives the sample count ('Error rate : E/N'); the output file tells
    whether its samples hold Python frames at all."""
    out, err = os.path.join(tmp, "austin.out"), os.path.join(tmp, "austin.stderr")
    interval = max(1, int(round(1e6 / rate)))
    with open(err, "w") as ef:
        t0 = time.perf_counter()
        p = pl.spawn([path, "-i", str(interval), "-p", str(pid), "-o", out], stderr=ef)
        done = None
        while done is None and time.perf_counter() - t0 < seconds:
            time.sleep(0.01)
            done = pl.reap_nohang(p)
        if done is None:
            os.kill(p.pid, signal.SIGINT)
        rc, cpu, _, timed_out = done + (False,) if done else pl.wait_rusage(p, 30)
        wall = time.perf_counter() - t0
    rec = {"rc": rc, "cpu_s": cpu, "wall_s": wall, "interval_us": interval}
    with open(err, errors="replace") as f:
        text = f.read()
    samples = errors = None
    for line in text.splitlines():
        if "Error rate" in line and "/" in line:
            e, n = line.split(":", 1)[1].split("(")[0].strip().split("/")
            errors, samples = int(e), int(n)
    with_frames = total = 0
    if os.path.exists(out):
        with open(out, errors="replace") as f:
            for line in f:
                total += 1
                with_frames += ";" in line
        os.unlink(out)
    rec.update({"samples": samples, "errors": errors, "lines": total,
                "lines_with_frames": with_frames})
    if samples is None:
        rec["unsupported"] = "no samples in %.0f s (exit %d%s)" % (
            wall, rc, ": " + pl.first_line(text) if text.strip() else ", no message")
    elif total and with_frames < 0.5 * total:
        rec["unsupported"] = "empty stacks: %d of %d samples have no Python frame" % (
            total - with_frames, total)
    elif samples:
        rec.update({"achieved_hz": samples / wall, "us_per_sample": 1e6 * cpu / samples,
                    "cpu_pct_of_core": 100.0 * cpu / wall, "error_pct": 100.0 * errors / samples})
    return rec


def bench_reads(quick, tmp):
    """bench/readcost.c: µs of CPU per call of each way of reading another process."""
    tool = os.path.join(os.path.dirname(pl.PYTRACE), "readcost")
    r = subprocess.run([tool], stdout=subprocess.PIPE, timeout=300, check=True)
    costs = json.loads(r.stdout)
    table(["method", "CPU µs per call"], [[k, fmt(v, "%.2f")] for k, v in costs.items()])
    print("sample_shape: the 7 regions of a steady 3.12 sample (runtime 8 B, interpreter 392 B, "
          "GIL 16 B, thread state 288 B, cframe 8 B, entry frame 104 B, data stack 12236 B).")
    print("round_*: a steady 3.12 round's own process_vm_readv, each region on its own page: "
          "before = interpreter 392 B, GIL 16 B, C stack 216 B, thread state 288 B, cframe 8 B, "
          "data stack 8 KiB, guard 8 B (7 iovecs, 8 pages); now = without the interpreter and the "
          "first cframe read (5 iovecs, 6 pages); floor = thread state, C stack, data stack, guard "
          "(4 iovecs: the least a consistent 3.12 sample reads).")
    print("timer_wake_*: CPU per wake-up of a loop that only sleeps (clock_nanosleep to absolute "
          "deadlines 1 ms / 100 µs apart, timer slack 1 ns, as pytrace sleeps between samples): "
          "the least any sampler that sleeps between samples pays per sample on this machine. "
          "timer_wake_1khz_busy_core: the same at 1 kHz with a spinning process on the same core "
          "(the core never idles between wakes). vm_exit_cpuid: wall µs of one CPUID, which a "
          "virtual machine's guest cannot run without a trap to its hypervisor: one VM exit "
          "(tens of ns on bare metal); a wake-up costs a few of them here.")
    print()
    return {"costs_us": costs}


def bench_reference(quick, tmp, depth=50):
    seconds = 2.0 if quick else 5.0
    rates = [1000, 10000] if quick else RATES
    headers = ["tool", "Python", "asked Hz", "achieved Hz", "samples", "CPU % of a core",
               "CPU µs/sample", "errors %"]
    austin, note = ensure_austin()
    result = {"depth": depth, "seconds": seconds, "austin": note, "rows": []}
    if austin:
        result["austin_version"] = austin_version(austin)
    pyspy = shutil.which("py-spy")
    result["py-spy"] = ("found at %s, not run" % pyspy) if pyspy else (
        "not installed; in Debian's archive: %s" % (apt_candidate("py-spy") or "no"))
    rows = []
    for version in pl.VERSIONS:
        python = pl.python_for(version)
        if not python:
            rows.append(["both", version, "skipped: not found at %s" % pl.python_pattern(version)])
            continue
        target = pl.start_cpu_bound(python, depth)
        unsupported = None
        try:
            for rate in rates:
                res = pl.attach(target.pid, rate, seconds, os.path.join(tmp, "ref.pytrace"), tmp)
                rec = {"tool": "pytrace", "python": version, "rate_hz": rate}
                if "info" in res:
                    rec.update(derive(res, rate))
                    rows.append(["pytrace", version, rate, fmt(rec["achieved_hz"], "%.0f"),
                                 rec["samples"], fmt(rec["cpu_pct_of_core"]),
                                 fmt(rec["us_per_sample"]), fmt(rec["error_pct"])])
                else:
                    rec["failed"] = res["error"]
                    rows.append(["pytrace", version, rate, "failed: " + res["error"]])
                result["rows"].append(rec)
                if not austin:
                    continue
                if unsupported:
                    rows.append(["austin", version, rate, "skipped: " + unsupported])
                    continue
                a = run_austin(austin, target.pid, rate, seconds, tmp)
                if a["samples"] is None:      # give it time to say why (its own time-out)
                    a = run_austin(austin, target.pid, rate, AUSTIN_PATIENCE_S, tmp)
                a.update({"tool": "austin", "python": version, "rate_hz": rate})
                unsupported = a.get("unsupported")
                result["rows"].append(a)
                if "unsupported" in a:
                    rows.append(["austin", version, rate, "skipped: " + a["unsupported"]])
                else:
                    rows.append(["austin", version, rate, fmt(a.get("achieved_hz"), "%.0f"),
                                 a["samples"], fmt(a.get("cpu_pct_of_core")),
                                 fmt(a.get("us_per_sample")), fmt(a.get("error_pct"))])
        finally:
            pl.kill(target)
    table(headers, rows)
    print("cpu_bound.py --depth %d, %g s per row, same target process for both tools. austin: %s%s."
          " py-spy: %s." % (depth, seconds, note, (" (%s)" % result["austin_version"])
                            if result.get("austin_version") else "", result["py-spy"]))
    print()
    return result


# --- driver -----------------------------------------------------------------------------------

BENCHMARKS = [("reads", "Cost of one read of target memory, by method", bench_reads),
              ("sampling", "Profiler CPU per sample and achieved rate", bench_sampling),
              ("slowdown", "Target slowdown", bench_slowdown),
              ("bytes", "Trace bytes per sample", bench_bytes),
              ("rss", "pytrace memory over a long recording", bench_rss),
              ("export", "Export throughput", bench_export),
              ("reference", "Reference samplers", bench_reference)]


def git_head():
    try:
        r = subprocess.run(["git", "-C", pl.ROOT, "rev-parse", "--short", "HEAD"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10)
        return r.stdout.decode().strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def on_signal(signum, _frame):
    raise KeyboardInterrupt("signal %d" % signum)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="reduced matrix, a few minutes")
    ap.add_argument("--only", default="", help="comma-separated: " +
                    ", ".join(name for name, _, _ in BENCHMARKS))
    ap.add_argument("--json", default=os.path.join(pl.ROOT, "bench", "results", "perf.json"))
    a = ap.parse_args()
    only = [x for x in a.only.split(",") if x]
    unknown = set(only) - {name for name, _, _ in BENCHMARKS}
    if unknown:
        ap.error("unknown benchmark(s): %s" % ", ".join(sorted(unknown)))
    if not os.access(pl.PYTRACE, os.X_OK):
        sys.exit("pytrace not built at %s (ninja -C build)" % pl.PYTRACE)
    signal.signal(signal.SIGTERM, on_signal)
    doc = {}
    if only and os.path.exists(a.json):
        with open(a.json) as f:
            doc = json.load(f)
    doc.setdefault("sections", {})
    doc["machine"] = {"cpus": os.cpu_count(), "kernel": platform.release(),
                      "pytrace": pl.version(), "commit": git_head()}
    try:
        with tempfile.TemporaryDirectory(prefix="pytrace-bench-") as tmp:
            for name, title, fn in BENCHMARKS:
                if only and name not in only:
                    continue
                print("### %s (%s)\n" % (title, name))
                sys.stdout.flush()
                load0, t0 = pl.loadavg(), time.time()
                data = fn(a.quick, tmp)
                data.update({"quick": a.quick, "loadavg_start": load0, "loadavg_end": pl.loadavg(),
                             "wall_s": round(time.time() - t0, 1), "when": datetime.datetime.now(
                                 datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")})
                doc["sections"][name] = data
                print("Load average (1/5/15 min): %s at start, %s at end; %.0f s.\n" % (
                    "/".join(map(str, load0)), "/".join(map(str, data["loadavg_end"])),
                    data["wall_s"]))
                sys.stdout.flush()
    finally:
        pl.kill_all()
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as e:
        sys.exit("interrupted (%s); children killed, %s not written" % (e or "SIGINT", "JSON"))
