"""`pytrace export -f pprof` and `-f speedscope` on a real recording of threads.py, opened by the
tools people use: `go tool pprof` (Debian's golang-go) lists the workload's functions with every
sample counted, and the speedscope app itself (the npm package's build, in Debian's headless
Chromium) imports the file without an error and shows its profiles. Garbage and truncated inputs
exit 7, or warn and export what they hold; they never crash the exporter.

What these tests need is installed by scripts/setup.d/pprof_speedscope.sh; a missing tool fails
the test (naming the script), never skips it.
"""
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import threading

import pytest

from conftest import ROOT, WORKLOADS, Target, interpreters, py_version, run_pytrace

THREADS = os.path.join(WORKLOADS, "threads.py")
JS_DIR = os.path.join(ROOT, "tests", "integration", "js", "speedscope")
LOADER = os.path.join(JS_DIR, "load_speedscope.mjs")
SPEEDSCOPE_APP = os.path.join(JS_DIR, "node_modules", "speedscope", "dist", "release")
SETUP = "scripts/setup.d/pprof_speedscope.sh"
ASAN_PYTRACE = os.environ.get("PYTRACE_ASAN_BIN", os.path.join(ROOT, "build-asan", "pytrace"))


def _go():
    go = shutil.which("go") or "/usr/lib/go/bin/go"
    if not os.path.exists(go):
        pytest.fail("go (Debian golang-go) is not installed: run %s" % SETUP)
    return go


def _node():
    node = shutil.which("node")
    if not node or not os.path.isfile(os.path.join(SPEEDSCOPE_APP, "index.html")) \
            or not os.path.isdir(os.path.join(JS_DIR, "node_modules", "playwright-core")):
        pytest.fail("the speedscope check is not installed (node, npm ci in %s): run %s"
                    % (JS_DIR, SETUP))
    if not os.path.exists("/usr/bin/chromium"):
        pytest.fail("/usr/bin/chromium (Debian chromium) is not installed: run %s" % SETUP)
    return node


def _python():
    """A Python that runs threads.py (3.8+: native_id): Debian's own first, as every machine
    has it."""
    found = [path for _, path in interpreters() if os.path.exists(path)]
    found.sort(key=lambda path: not path.startswith("/usr/bin/"))
    for path in found:
        if (3, 8) <= py_version(path):
            return path
    pytest.fail("no Python 3.8+ interpreter found among %s" % [p for _, p in interpreters()])


def _info(path):
    r = run_pytrace("info", path, "--json")
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout.decode())


def _record(d, seconds):
    """`seconds` of threads.py, attached once its threads are running (its handshake line)."""
    target = Target([_python(), THREADS, "--seconds", "60"])
    try:
        path = str(d / ("threads-%ss.pytrace" % seconds))
        r = run_pytrace("attach", target.pid, "-d", seconds, "-o", path, "-q")
        assert r.returncode == 0, r.stderr.decode()
    finally:
        target.close()
    info = _info(path)
    return {"path": path, "threads": target.info["threads"], "info": info,
            "samples": sum(t["samples"] for t in info["threads"])}


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return _record(tmp_path_factory.mktemp("pp"), 1)


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory):
    """Long enough for several chunks (one a second), so cuts between them leave samples."""
    return _record(tmp_path_factory.mktemp("pp-long"), 3)


def _export(path, fmt, out, binary=None):
    kw = {"binary": binary} if binary else {}
    return run_pytrace("export", path, "-f", fmt, "-o", out, **kw)


def _pprof(go, *args, **kw):
    env = dict(os.environ, PPROF_TMPDIR=kw.pop("tmp"))
    r = subprocess.run([go, "tool", "pprof"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, timeout=120)
    assert r.returncode == 0, "go tool pprof %s failed (%d):\n%s" % (
        " ".join(args), r.returncode, r.stderr.decode())
    return r.stdout.decode()


def test_pprof_top_lists_the_workload_and_counts_every_sample(recording, tmp_path):
    go = _go()
    out = str(tmp_path / "threads.pb.gz")
    r = _export(recording["path"], "pprof", out)
    assert r.returncode == 0, r.stderr.decode()
    top = _pprof(go, "-top", "-sample_index=samples", out, tmp=str(tmp_path))
    total = re.search(r"Total samples = (\d+)", top)
    assert total, top
    assert int(total.group(1)) == recording["samples"], top
    # The busiest functions by self samples: fib burns the CPU threads' time.
    rows = [line.split()[-1] for line in top.splitlines() if re.match(r"\s+\d+\s+[\d.]+%", line)]
    assert "fib" in rows[:6], top
    assert "cpu_worker" in rows, top
    # Wall time is the default view; the CPU view keeps only samples of running threads.
    wall = _pprof(go, "-top", out, tmp=str(tmp_path))
    assert "Type: wall" in wall, wall
    cpu = _pprof(go, "-top", "-sample_index=cpu", out, tmp=str(tmp_path))
    assert "Type: cpu" in cpu, cpu
    assert "fib" in cpu.split("flat%", 1)[1].splitlines()[1], cpu


def test_pprof_labels_name_threads_tids_gil_and_idle(recording, tmp_path):
    go = _go()
    out = str(tmp_path / "threads.pb.gz")
    assert _export(recording["path"], "pprof", out).returncode == 0
    tags = _pprof(go, "-tags", "-sample_index=samples", out, tmp=str(tmp_path))
    for name, tid in recording["threads"].items():
        assert name in tags, tags
        assert str(tid) in tags, tags
    for key in ("thread_name", "tid", "gil", "idle"):
        assert re.search(r"^\s*%s:" % key, tags, re.M), tags
    # The CPU threads hold the GIL. The sleeper takes it for a few microseconds every 0.1 s, and
    # a round that reads the GIL's holder just then (the holder is read once per round, before
    # the threads) shows it: at most a sample or two of hundreds (one in 917 in a CI run).
    gil = _pprof(go, "-tags", "-sample_index=samples", "-tagfocus=gil=true", out,
                 tmp=str(tmp_path))
    assert "cpu-" in gil, gil
    total = int(re.search(r"thread_name: Total (\d+)", gil).group(1))
    sleeper = re.search(r"^\s*([\d.]+)\s.*: sleeper$", gil, re.M)
    assert not sleeper or float(sleeper.group(1)) <= max(2, total // 100), gil


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path):
    """A directory served on 127.0.0.1 (a free port), holding the speedscope app; yields
    (directory, base URL). Stopped at the end."""
    root = tmp_path / "www"
    root.mkdir()
    for name in os.listdir(SPEEDSCOPE_APP):
        os.symlink(os.path.join(SPEEDSCOPE_APP, name), str(root / name))
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, "http://127.0.0.1:%d" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_speedscope_app_imports_and_shows_every_thread(recording, served, tmp_path):
    node = _node()
    root, base = served
    out = str(root / "file.speedscope.json")
    r = _export(recording["path"], "speedscope", out)
    assert r.returncode == 0, r.stderr.decode()
    with open(out) as f:
        doc = json.load(f)
    names = [p["name"] for p in doc["profiles"]]
    for name, tid in recording["threads"].items():
        assert "%s (tid %d)" % (name, tid) in names, names
    first = names[doc.get("activeProfileIndex", 0)]
    url = "%s/index.html#profileURL=%s/file.speedscope.json" % (base, base)
    shot = str(tmp_path / "speedscope.png")
    r = subprocess.run([node, LOADER, url, out, first, shot], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=180, cwd=JS_DIR)
    assert r.returncode == 0, r.stderr.decode()
    seen = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert seen["schemaErrors"] == [], seen["schemaErrors"]
    assert seen["pageErrors"] == [], seen
    assert seen["consoleErrors"] == [], seen
    assert seen["failedRequests"] == [], seen
    assert seen["shown"] == "shown", "%s (screenshot: %s)" % (seen, shot)
    # The toolbar names the profile on show and counts them all: "NAME (1/N)".
    assert "%s (%d/%d)" % (first, doc.get("activeProfileIndex", 0) + 1, len(names)) \
        in seen["text"], seen


def _bad_inputs(recording, d):
    """(name, path) of garbage, empty, foreign and truncated files."""
    with open(recording["path"], "rb") as f:
        data = f.read()
    cases = {
        "empty": b"",
        "garbage": bytes((i * 131 + 7) % 256 for i in range(4096)),
        "text": b"not a trace\n" * 20,
        "magic-only": data[:8],
        "magic-then-garbage": data[:8] + b"\xff" * 64,
    }
    for frac in (0.001, 0.01, 0.3, 0.5, 0.9, 0.999):
        cases["cut-%g" % frac] = data[:max(9, int(len(data) * frac))]
    cases["cut-last-byte"] = data[:-1]
    paths = []
    for name, content in sorted(cases.items()):
        path = str(d / (name + ".pytrace"))
        with open(path, "wb") as f:
            f.write(content)
        paths.append((name, path))
    return paths


def _samples_in(fmt, out, tmp):
    """Samples the exported file holds, read back by its own tool's rules."""
    if fmt == "pprof":
        top = _pprof(_go(), "-top", "-sample_index=samples", out, tmp=tmp)
        total = re.search(r"Total samples = (\d+)", top)
        return int(total.group(1)) if total else 0
    with open(out) as f:
        doc = json.load(f)
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    return sum(1 for p in doc["profiles"] for e in p["events"] if e["type"] == "O")


@pytest.mark.parametrize("fmt", ["pprof", "speedscope"])
def test_garbage_and_truncated_inputs_exit_7_or_warn(long_recording, tmp_path, fmt):
    binaries = [None] + ([ASAN_PYTRACE] if os.path.exists(ASAN_PYTRACE) else [])
    with_data = 0
    for name, path in _bad_inputs(long_recording, tmp_path):
        for binary in binaries:
            out = path + "." + fmt
            r = _export(path, fmt, out, binary=binary)
            err = r.stderr.decode()
            where = "%s with %s: exit %d\n%s" % (name, binary or "build/pytrace", r.returncode, err)
            assert r.returncode in (0, 7), where           # negative: killed by a signal
            assert "AddressSanitizer" not in err and "runtime error" not in err, where
            if r.returncode == 7:
                assert err.strip(), where
                continue
            assert "truncated" in err, where
            held = _samples_in(fmt, out, str(tmp_path))
            if fmt == "pprof":   # every sample the loader kept is counted
                info = _info(path)
                assert held == sum(t["samples"] for t in info["threads"]), where
            with_data += held > 0
    # Cuts after the first whole data chunk still export what it holds.
    assert with_data >= len(binaries) * 2, with_data
