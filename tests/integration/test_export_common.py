"""What every export shares: files only their owner can read (they carry the trace's data), the
collapsed stacks add up to the sample count, and the shared selection options work."""
import json
import os
import stat

import pytest

from conftest import WORKLOADS, require, run_pytrace

FORMATS = ["perfetto", "chrome", "speedscope", "pprof", "collapsed", "ndjson", "otlp"]


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    import subprocess
    python = require("/usr/bin/python3")
    tmp = tmp_path_factory.mktemp("exp")
    out = str(tmp / "t.pytrace")
    target = subprocess.Popen([python, os.path.join(WORKLOADS, "threads.py"), "--seconds", "5"],
                              stdout=subprocess.PIPE)
    pid = json.loads(target.stdout.readline())["pid"]
    r = run_pytrace("attach", pid, "-d", "1", "-o", out, "-q")
    target.kill()
    target.wait()
    assert r.returncode == 0, r.stderr
    return out


def _samples(path):
    r = run_pytrace("info", path, "--json")
    return json.loads(r.stdout.decode())["samples"]


@pytest.mark.parametrize("fmt", FORMATS + ["view"])
def test_outputs_are_private(trace, fmt, tmp_path):
    out = str(tmp_path / ("out." + fmt))
    args = ("view", trace, "-o", out) if fmt == "view" else ("export", trace, "-f", fmt, "-o", out)
    r = run_pytrace(*args)
    if fmt == "view" and r.returncode == 1 and b"viewer" in r.stderr:
        pytest.fail("the HTML viewer was not built: " + r.stderr.decode())
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600


def test_collapsed_counts_equal_samples(trace):
    r = run_pytrace("export", trace, "-f", "collapsed", "-o", "-")
    assert r.returncode == 0, r.stderr
    total = sum(int(line.rsplit(" ", 1)[1]) for line in r.stdout.decode().splitlines())
    assert total == _samples(trace)
    for line in r.stdout.decode().splitlines()[:20]:
        stack = line.rsplit(" ", 1)[0]
        if not stack.startswith("<"):
            assert all(" (" in f and f.endswith(")") for f in stack.split(";")), stack


def test_selection_options(trace):
    def count(*extra):
        r = run_pytrace("export", trace, "-f", "collapsed", "-o", "-", *extra)
        assert r.returncode == 0, r.stderr
        return sum(int(l.rsplit(" ", 1)[1]) for l in r.stdout.decode().splitlines())
    every = count()
    cpu = count("--thread", "cpu-0")
    assert 0 < cpu < every
    assert count("--gil-only") < every
    assert count("--no-idle") < every
    assert count("--from", "0.5") < every
    excluded = run_pytrace("export", trace, "-f", "collapsed", "-o", "-", "--exclude", "threading.*")
    assert b"threading.py" not in excluded.stdout
    assert run_pytrace("export", trace, "-f", "nope").returncode == 2
    assert run_pytrace("export", trace, "-f", "collapsed", "--from", "2", "--to", "1").returncode == 2


@pytest.mark.parametrize("fmt", FORMATS + ["view", "info"])
def test_garbage_and_truncated_input(trace, fmt, tmp_path):
    """Every reader of a trace: garbage exits 7 with one line naming the file; a truncated
    file still exports what it holds (with a warning) or exits 7; never a crash."""
    def run(path):
        out = str(tmp_path / "out")
        if fmt == "info":
            return run_pytrace("info", path)
        if fmt == "view":
            return run_pytrace("view", path, "-o", out)
        return run_pytrace("export", path, "-f", fmt, "-o", out)
    bad = str(tmp_path / "garbage.pytrace")
    with open(bad, "wb") as f:
        f.write(b"PYTRACE1" + os.urandom(3000))
    r = run(bad)
    assert r.returncode == 7, (r.returncode, r.stderr)
    assert bad in r.stderr.decode() and len(r.stderr.decode().strip().splitlines()) == 1
    data = open(trace, "rb").read()
    for cut in (9, len(data) // 3, len(data) // 2, len(data) - 5):
        part = str(tmp_path / ("cut%d.pytrace" % cut))
        with open(part, "wb") as f:
            f.write(data[:cut])
        r = run(part)
        assert r.returncode in (0, 7), (cut, r.returncode, r.stderr)
        if r.returncode == 0:
            assert b"truncated" in r.stderr
