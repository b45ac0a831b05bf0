"""A Python child for `run --subprocesses` tests: busy for SECONDS, then prints one JSON line
{"pid", "t0", "t1"} with time.monotonic_ns() (CLOCK_MONOTONIC, the clock of a trace's sample
times) taken as its code began and as it ended. With READY_FIFO, it writes "ready" into that FIFO
halfway through, so a parent shell can wait for it and exit while it still runs."""
import json
import os
import sys
import time

t0 = time.monotonic_ns()


def busy(until_ns):
    n = 0
    while time.monotonic_ns() < until_ns:
        n += 1
    return n


seconds = float(sys.argv[1])
end = t0 + int(seconds * 1e9)
if len(sys.argv) > 2:
    busy(t0 + int(seconds * 0.5e9))
    with open(sys.argv[2], "w") as f:
        f.write("ready\n")
busy(end)
print(json.dumps({"pid": os.getpid(), "t0": t0, "t1": time.monotonic_ns()}))
sys.stdout.flush()
