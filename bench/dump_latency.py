"""How long one uncached `pytrace dump PID` takes for a thread parked 50 frames deep, per
interpreter: the whole command (process start, ELF symbols, layout, walk, output), median of
--runs runs, plus the reads it made. Prints a markdown table; writes bench/results/dump.json.

Usage: /usr/bin/python3 bench/dump_latency.py [--depth 50] [--runs 20]
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTRACE = os.environ.get("PYTRACE_BIN", os.path.join(ROOT, "build", "pytrace"))
PYENV = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
TARGET = r"""
import sys, os, json
def deep(n):
    if n <= 1:
        sys.stdout.write(json.dumps({"pid": os.getpid()}) + "\n"); sys.stdout.flush()
        sys.stdin.read()
        return
    deep(n - 1)
deep(int(sys.argv[1]) - 1)   # <module> is the 50th frame
"""


def interpreters():
    out = []
    for minor in ["2.7", "3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13"]:
        found = sorted(glob.glob(os.path.join(PYENV, "versions", minor + ".*", "bin", "python" + minor)))
        out.append(("pyenv " + minor, found[-1] if found else None))
    out.append(("debian 3.11", "/usr/bin/python3.11" if os.path.exists("/usr/bin/python3.11") else None))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--depth", type=int, default=50)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--json", default=os.path.join(ROOT, "bench", "results", "dump.json"))
    a = ap.parse_args()
    rows = []
    print("| interpreter | frames read | dump wall time median (ms) | min (ms) |")
    print("|---|---|---|---|")
    for name, py in interpreters():
        if not py:
            print("| %s | skipped: not installed |" % name)
            continue
        t = subprocess.Popen([py, "-c", TARGET, str(a.depth)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
        pid = json.loads(t.stdout.readline())["pid"]
        times, frames = [], None
        for _ in range(a.runs):
            t0 = time.perf_counter()
            r = subprocess.run([PYTRACE, "dump", str(pid), "--json"], stdout=subprocess.PIPE)
            times.append((time.perf_counter() - t0) * 1000)
            if r.returncode == 0 and frames is None:
                doc = json.loads(r.stdout)
                frames = max(len(th["frames"]) for th in doc["threads"])
        t.stdin.close()
        t.wait()
        row = {"interpreter": name, "frames": frames, "median_ms": statistics.median(times),
               "min_ms": min(times)}
        rows.append(row)
        print("| %s | %s | %.2f | %.2f |" % (name, frames, row["median_ms"], row["min_ms"]))
        sys.stdout.flush()
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
