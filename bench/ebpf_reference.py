"""Which sampler is right when `--ebpf` and the default sampler disagree: one cpu_bound.py target
recorded in turn with --ebpf (1 kHz), the ptrace sampler with --blocking (200 Hz: the target is
stopped for each sample, so its stacks are consistent: the reference) and the default
non-blocking ptrace sampler (1 kHz), 6 s each; prints the innermost-function shares and the total
variation of each against the blocking reference.

Usage (root, from the repository root): /usr/bin/python3 bench/ebpf_reference.py PYTHON
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
os.environ.setdefault("PYTRACE_BIN", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "pytrace"))
import test_ebpf as T
from conftest import Target
py = sys.argv[1]
t = Target([py, "-c", T.WRAPPER, T.CPU_BOUND, "--seconds", "60"])
res = {}
for name, extra in (("ebpf", ["--ebpf"]), ("blocking", ["--blocking", "-r", "200"]), ("ptrace", [])):
    out = "/tmp/cmp_%s.pytrace" % name
    r = subprocess.run([T.PYTRACE, "attach", str(t.pid), "-q", "-d", "6", "-o", out] + extra, stderr=subprocess.PIPE)
    s = T.samples(out)
    res[name] = T.leaf_shares(s, 0, 1 << 62)
t.close()
for k, (p, n) in res.items():
    print(k, n, {f.split(" (")[0]: round(v, 3) for f, v in sorted(p.items(), key=lambda kv: -kv[1])[:4]})
print("TV ebpf/blocking %.3f  ptrace/blocking %.3f" % (T.total_variation(res["ebpf"][0], res["blocking"][0]), T.total_variation(res["ptrace"][0], res["blocking"][0])))
