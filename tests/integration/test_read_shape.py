"""How pytrace reads a steady target: the syscalls of a sampling round, counted by an LD_PRELOAD
shim (build/libreadvlog.so, tests/integration/readvlog.c) around process_vm_readv.

The cost of a sample on this kind of machine is mostly the read (docs/performance.md): a syscall,
and a page pinned per iovec. These tests pin what the design promises for a steady
cpu_bound.py (one thread, 50 frames deep):
- 3.11+: a round is one process_vm_readv of 5 iovecs (3.12+: 6 pages; 3.11, whose runtime holds
  the GIL holder: 7; one more when the C stack's region crosses a page boundary);
- at 100 Hz and 1 kHz, after start-up, rounds cost about one syscall each: the interpreter's
  fields and the code objects' re-checks ride in the prefetch or are read together, not one
  syscall each.
"""
import collections
import json
import os
import subprocess

import pytest

from conftest import (PYTRACE, WORKLOADS, WRAPPER, interpreter_params, py_version, require,
                      run_pytrace)

SHIM = os.path.join(os.path.dirname(PYTRACE), "libreadvlog.so")
CPU_BOUND = os.path.join(WORKLOADS, "cpu_bound.py")
SKIP_MS = 1000


def _py311plus():
    return [p for p in interpreter_params()
            if not any(m in p.id for m in ("2.7", "3.6", "3.7", "3.8", "3.9", "3.10"))]


def _record(start_target, python, rate, seconds, tmp_path):
    """Records cpu_bound.py at rate for seconds under the shim. Returns (shapes, walks counted):
    shapes is a Counter of (iovecs, pages) -> calls after the first SKIP_MS."""
    assert os.path.exists(SHIM), "build/libreadvlog.so is missing: ninja -C build"
    target = start_target([python, "-c", WRAPPER, CPU_BOUND, "--seconds", "60", "--depth", "50"])
    log = str(tmp_path / "readv.txt")
    out = str(tmp_path / "shape.pytrace")
    env = dict(os.environ, LD_PRELOAD=SHIM, READVLOG_OUT=log, READVLOG_SKIP_MS=str(SKIP_MS))
    r = run_pytrace("attach", target.pid, "-r", rate, "-d", seconds, "-o", out, "-q", env=env)
    assert r.returncode == 0, r.stderr.decode()
    shapes = collections.Counter()
    with open(log) as f:
        for line in f:
            iovecs, pages, calls = (int(x) for x in line.split())
            shapes[(iovecs, pages)] += calls
    doc = json.loads(subprocess.check_output([PYTRACE, "info", out, "--json"]).decode())
    counted = doc["walks"] * (seconds - SKIP_MS / 1000.0) / seconds
    return shapes, counted


@pytest.mark.parametrize("python", _py311plus())
def test_steady_round_is_one_readv_of_five_iovecs(start_target, python, tmp_path):
    require(python)
    shapes, walks = _record(start_target, python, 1000, 3, tmp_path)
    (iovecs, pages), calls = shapes.most_common(1)[0]
    assert calls >= 0.8 * walks, (shapes, walks)
    assert iovecs == 5, shapes
    # 6 pages (3.11: 7), one more when the C stack's region crosses a page boundary.
    assert pages <= (8 if py_version(python) < (3, 12) else 7), shapes


@pytest.mark.parametrize("rate", [100, 1000])
@pytest.mark.parametrize("python", _py311plus())
def test_rounds_cost_about_one_syscall_each(start_target, python, rate, tmp_path):
    """At 100 Hz the interpreter's fields were read every other round with three syscalls of their
    own, and every 100 ms each code object on the stack was re-checked with one of its own: 1.6 to
    2.5 syscalls a round. Now 1.05 to 1.3."""
    require(python)
    shapes, walks = _record(start_target, python, rate, 4, tmp_path)
    calls = sum(shapes.values())
    assert calls <= 1.4 * walks, (calls, walks, shapes)
