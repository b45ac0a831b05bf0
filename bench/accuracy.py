"""Accuracy of pytrace's call tree with timing against ground truth.

Runs ../shared/workloads/phases.py under each interpreter (it records every call's enter/exit with
time.monotonic_ns, the clock pytrace stamps samples with), records it with `pytrace attach` at
--rate, exports the spans as NDJSON and compares:
  - detection: truth calls >= --min-ms found as a span of the same function on the same thread
    overlapping >= 50% of the call;
  - begin/end error of the midpoint estimator (docs/timing.md): median and p95, in ms;
  - per-function share of time: total variation distance between the truth's and the trace's
    share of inclusive time per function.
Prints a markdown table and writes JSON (bench/results/accuracy.json by default).

Usage: /usr/bin/python3 bench/accuracy.py [--seconds 10] [--rate 1000] [--versions 3.8,3.10,...]
"""
import argparse
import bisect
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHASES = os.path.join(os.path.dirname(ROOT), "shared", "workloads", "phases.py")
PYTRACE = os.environ.get("PYTRACE_BIN", os.path.join(ROOT, "build", "pytrace"))
PYENV = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
FUNCTIONS = ("request", "parse", "query", "render", "escape")
RATE = [1000.0]


def python_for(minor):
    found = sorted(glob.glob(os.path.join(PYENV, "versions", minor + ".*", "bin", "python" + minor)))
    return found[-1] if found else None


def record(python, seconds, rate, tmp):
    truth = os.path.join(tmp, "truth.jsonl")
    trace = os.path.join(tmp, "trace.pytrace")
    target = subprocess.Popen([python, PHASES, "--truth", truth, "--seconds", str(seconds)],
                              stdout=subprocess.PIPE)
    json.loads(target.stdout.readline())          # the ready handshake
    rec = subprocess.run([PYTRACE, "attach", str(target.pid), "-r", str(rate), "-o", trace, "-q"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    target.wait()
    if rec.returncode != 0:
        raise RuntimeError("pytrace attach failed: %s" % rec.stderr.decode())
    spans, first_sample = [], None
    out = subprocess.run([PYTRACE, "export", trace, "-f", "ndjson", "-o", "-"], stdout=subprocess.PIPE,
                         check=True).stdout.decode()
    for line in out.splitlines():
        rec_ = json.loads(line)
        if rec_.get("type") == "span" and rec_["function"] in FUNCTIONS:
            spans.append(rec_)
        elif rec_.get("type") == "sample" and first_sample is None:
            first_sample = rec_["t_ns"]
    with open(truth) as f:
        calls = [json.loads(l) for l in f]
    return calls, spans, first_sample


def midpoint(lo, hi):
    return (lo + hi) / 2.0


def evaluate(calls, spans, first_sample, min_ms):
    by_fn = {}
    for s in spans:
        by_fn.setdefault(s["function"], []).append(s)
    for lst in by_fn.values():
        lst.sort(key=lambda s: s["begin_ns"])
    starts = {fn: [s["begin_ns"] for s in lst] for fn, lst in by_fn.items()}
    last_span_end = max((s["end_ns"] for s in spans), default=0)
    truth_by_fn = {}
    for c in calls:
        truth_by_fn.setdefault(c["function"], []).append(c)
    considered = detected = 0
    begin_err, end_err = [], []
    # Why an error is large: the span also covers another call of the same function (a re-call
    # in the same frame slot that nothing told apart), or sampling left a gap at that edge.
    causes = {"merged": 0, "gap": 0, "other": 0}
    clean_begin, clean_end = [], []
    gap_ns = 2.5 * 1e9 / RATE[0]
    for c in calls:
        dur = c["end_ns"] - c["start_ns"]
        if dur < min_ms * 1e6 or c["start_ns"] < first_sample or c["end_ns"] > last_span_end:
            continue
        considered += 1
        lst = by_fn.get(c["function"], [])
        i = bisect.bisect_left(starts.get(c["function"], []), c["start_ns"] - 200e6)
        best, best_ov = None, 0
        while i < len(lst) and lst[i]["begin_ns"] < c["end_ns"]:
            s = lst[i]
            ov = min(s["end_hi_ns"], c["end_ns"]) - max(s["begin_lo_ns"], c["start_ns"])
            if ov > best_ov:
                best, best_ov = s, ov
            i += 1
        if best is None or best_ov < 0.5 * dur:
            continue
        detected += 1
        b = best["begin_ns"] if best.get("open_begin") else midpoint(best["begin_lo_ns"], best["begin_ns"])
        e = best["end_ns"] if best.get("open_end") else midpoint(best["end_ns"], best["end_hi_ns"])
        be_, ee_ = abs(b - c["start_ns"]) / 1e6, abs(e - c["end_ns"]) / 1e6
        begin_err.append(be_)
        end_err.append(ee_)
        # Merged: the span's sightings also cover another truth call of this function.
        merged = sum(1 for o in truth_by_fn[c["function"]]
                     if o is not c and min(o["end_ns"], best["end_ns"]) - max(o["start_ns"], best["begin_ns"]) > gap_ns / 2.5) > 0
        gap = (best["begin_ns"] - best["begin_lo_ns"]) > gap_ns or (best["end_hi_ns"] - best["end_ns"]) > gap_ns
        if max(be_, ee_) > 1.5:
            causes["merged" if merged else "gap" if gap else "other"] += 1
        if not merged:
            clean_begin.append(be_)
            clean_end.append(ee_)
    evaluate.causes, evaluate.clean = causes, (clean_begin, clean_end)
    return considered, detected, begin_err, end_err


def share(calls, spans, t0, t1):
    def totals(items, begin, end):
        tot = {fn: 0.0 for fn in FUNCTIONS}
        for it in items:
            b, e = max(begin(it), t0), min(end(it), t1)
            if e > b and it["function"] in tot:
                tot[it["function"]] += e - b
        s = sum(tot.values()) or 1.0
        return {fn: v / s for fn, v in tot.items()}
    truth = totals(calls, lambda c: c["start_ns"], lambda c: c["end_ns"])
    est = totals(spans, lambda s: s["begin_ns"] if s.get("open_begin") else midpoint(s["begin_lo_ns"], s["begin_ns"]),
                 lambda s: s["end_ns"] if s.get("open_end") else midpoint(s["end_ns"], s["end_hi_ns"]))
    return 0.5 * sum(abs(truth[fn] - est[fn]) for fn in FUNCTIONS), truth, est


def p95(xs):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--min-ms", type=float, default=5.0)
    ap.add_argument("--versions", default="3.8,3.10,3.11,3.12,3.13")
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "accuracy.json"))
    a = ap.parse_args()
    RATE[0] = a.rate
    rows = []
    print("| Python | calls >= %g ms | detected | begin err median / p95 (ms) | end err median / p95 (ms) | share TV | errors > 1.5 ms: merged / gap / other | p95 begin / end without merged spans (ms) |" % a.min_ms)
    print("|---|---|---|---|---|---|---|---|")
    for minor in a.versions.split(","):
        py = python_for(minor)
        if not py:
            print("| %s | skipped: not found under %s/versions |" % (minor, PYENV))
            continue
        with tempfile.TemporaryDirectory() as tmp:
            calls, spans, first = record(py, a.seconds, a.rate, tmp)
            achieved = json.loads(subprocess.run(
                [PYTRACE, "info", os.path.join(tmp, "trace.pytrace"), "--json"],
                stdout=subprocess.PIPE, check=True).stdout).get("achieved_hz")
        n, det, be, ee = evaluate(calls, spans, first, a.min_ms)
        t0 = first
        t1 = max(s["end_ns"] for s in spans)
        tv, truth, est = share(calls, spans, t0, t1)
        row = {"python": minor, "calls": n, "detected_pct": 100.0 * det / n if n else float("nan"),
               "begin_median_ms": statistics.median(be) if be else float("nan"),
               "begin_p95_ms": p95(be),
               "end_median_ms": statistics.median(ee) if ee else float("nan"), "end_p95_ms": p95(ee),
               "share_tv_pct": 100.0 * tv, "truth_share": truth, "trace_share": est,
               "rate_hz": a.rate, "seconds": a.seconds, "large_error_causes": evaluate.causes,
               "begin_p95_unmerged_ms": p95(evaluate.clean[0]),
               "end_p95_unmerged_ms": p95(evaluate.clean[1]), "achieved_hz": achieved}
        rows.append(row)
        c = evaluate.causes
        print("| %s | %d | %.2f%% | %.3f / %.3f | %.3f / %.3f | %.2f%% | %d / %d / %d | %.3f / %.3f |" % (
            minor, n, row["detected_pct"], row["begin_median_ms"], row["begin_p95_ms"],
            row["end_median_ms"], row["end_p95_ms"], row["share_tv_pct"], c["merged"], c["gap"],
            c["other"], row["begin_p95_unmerged_ms"], row["end_p95_unmerged_ms"]))
        sys.stdout.flush()
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
