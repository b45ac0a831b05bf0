"""`pytrace export -f otlp`: a real recording becomes OpenTelemetry spans that an independent
decoder (the OpenTelemetry JS SDK's protobuf code, generated from the official opentelemetry-proto
files: tests/integration/js/otlp) reads back, both from a file and as POSTs to a collector on
127.0.0.1; a collector that refuses or is not there gives a one-line error and a non-zero exit, and
bad input files never crash the exporter.
"""
import json
import os
import select
import shutil
import socket
import subprocess
import time

import pytest

from conftest import ROOT, WORKLOADS, Target, interpreters, py_version, run_pytrace

PHASES = os.path.join(WORKLOADS, "phases.py")
JS_DIR = os.path.join(ROOT, "tests", "integration", "js", "otlp")
COLLECTOR = os.path.join(JS_DIR, "collector.js")
PHASE_FUNCTIONS = {"request", "parse", "query", "render", "escape"}


def _node():
    node = shutil.which("node")
    if not node or not os.path.isdir(os.path.join(JS_DIR, "node_modules", "@opentelemetry")):
        pytest.fail("the OTLP test collector is not installed: run scripts/setup.d/otlp.sh "
                    "(needs node and npm)")
    return node


def _python():
    """A Python that runs phases.py (3.7+): Debian's own first, as every machine has it."""
    found = [path for _, path in interpreters() if os.path.exists(path)]
    found.sort(key=lambda path: not path.startswith("/usr/bin/"))
    for path in found:
        if (3, 7) <= py_version(path):
            return path
    pytest.skip("no Python 3.7+ interpreter found")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """Two seconds of phases.py (so the file has several chunks to cut between), and its spans as
    `pytrace export -f ndjson` sees them."""
    python = _python()
    d = tmp_path_factory.mktemp("otlp")
    target = Target([python, PHASES, "--seconds", "4", "--truth", str(d / "truth.jsonl")])
    try:
        path = str(d / "phases.pytrace")
        r = run_pytrace("attach", target.pid, "-d", "2", "-o", path, "-q")
        assert r.returncode == 0, r.stderr.decode()
    finally:
        target.close()
    r = run_pytrace("export", path, "-f", "ndjson", "-o", "-")
    assert r.returncode == 0, r.stderr.decode()
    records = [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()]
    header = next(x for x in records if x["type"] == "trace")
    spans = [x for x in records if x["type"] == "span"]
    assert spans, "the recording holds no spans"
    return {"path": path, "pid": target.pid, "header": header, "spans": spans, "dir": d}


def _decode_file(path):
    r = subprocess.run([_node(), COLLECTOR, "decode", path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, "independent decoder rejected %s: %s" % (path, r.stderr.decode())
    return json.loads(r.stdout.decode())


def _spans(request):
    return [s for res in request["resources"] for sc in res["scopes"] for s in sc["spans"]]


def _check_span_tree(spans, header):
    """Ids are well-formed; every parent exists, shares the trace and encloses its child; times
    are Unix nanoseconds inside the recording."""
    by_id = {s["span_id"]: s for s in spans}
    assert len(by_id) == len(spans), "span ids repeat"
    t0 = header["start_wall_ns"]
    t1 = t0 + 60 * 10**9
    for s in spans:
        assert len(s["trace_id"]) == 32 and s["trace_id"] != "0" * 32, s
        assert len(s["span_id"]) == 16 and s["span_id"] != "0" * 16, s
        assert s["kind"] == 1, s   # SPAN_KIND_INTERNAL
        start, end = int(s["start"]), int(s["end"])
        assert t0 - 10**9 <= start <= end <= t1, (s, t0)
        if s["parent_span_id"]:
            p = by_id.get(s["parent_span_id"])
            assert p is not None, "parent of %s is not in the export" % s["name"]
            assert p["trace_id"] == s["trace_id"], (p, s)
            assert int(p["start"]) <= start and end <= int(p["end"]), (p, s)


def _attr(attrs, key):
    assert key in attrs, (key, sorted(attrs))
    kind, value = attrs[key]
    return int(value) if kind == "int" else value


def test_file_export_decodes_independently(recording, tmp_path):
    out = str(tmp_path / "phases.otlp.pb")
    r = run_pytrace("export", recording["path"], "-f", "otlp", "-o", out)
    assert r.returncode == 0, r.stderr.decode()
    doc = _decode_file(out)
    assert len(doc["resources"]) == 1
    res = doc["resources"][0]["attributes"]
    assert _attr(res, "process.pid") == recording["pid"]
    assert _attr(res, "process.runtime.name") == "CPython"
    assert _attr(res, "process.runtime.version") == recording["header"]["python_version"]
    assert "phases.py" in _attr(res, "process.command_line")
    assert _attr(res, "service.name")
    assert _attr(res, "host.name") == socket.gethostname()
    spans = _spans(doc)
    assert len(spans) == len(recording["spans"])
    _check_span_tree(spans, recording["header"])
    names = {_attr(s["attributes"], "code.function") for s in spans}
    assert PHASE_FUNCTIONS & names, names
    for s in spans:
        a = s["attributes"]
        assert _attr(a, "thread.id") == recording["pid"]   # phases.py runs on its main thread
        assert _attr(a, "thread.name") == "MainThread"
        if _attr(a, "code.function") in PHASE_FUNCTIONS:
            assert _attr(a, "code.filepath") == PHASES
            assert _attr(a, "code.lineno") > 0
    # Each top-level call of the thread is one trace: as many traces as roots.
    roots = [s for s in spans if not s["parent_span_id"]]
    assert len({s["trace_id"] for s in spans}) == len(roots)


class Collector(object):
    """collector.js serving on a free 127.0.0.1 port; ready once it printed its port."""

    def __init__(self, status=200, timeout=30):
        self.proc = subprocess.Popen([_node(), COLLECTOR, "serve", "--status", str(status),
                                      "--timeout-s", "120"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        line = self._line(timeout)
        assert line and line.get("ready"), "collector did not start: %r" % line
        self.url = "http://127.0.0.1:%d/v1/traces" % line["port"]

    def _line(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        return json.loads(line.decode()) if line else None

    def requests(self, timeout=5):
        """What it received: each request was printed before it was answered, so pytrace having
        exited means every line is there; reading stops at the first quiet moment."""
        got = []
        while len(got) < 1000:
            line = self._line(timeout if not got else 0.5)
            if line is None:
                break
            got.append(line)
        return got

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def collector():
    started = []

    def start(status=200):
        c = Collector(status)
        started.append(c)
        return c

    yield start
    for c in started:
        c.close()


def test_post_to_collector_with_header_and_service(recording, collector):
    c = collector(200)
    r = run_pytrace("export", recording["path"], "-f", "otlp", "--endpoint", c.url,
                    "--header", "x-api-key=secret", "--service", "demo")
    assert r.returncode == 0, r.stderr.decode()
    reqs = c.requests()
    assert reqs, "the collector received nothing"
    spans = []
    for q in reqs:
        assert q["method"] == "POST" and q["path"] == "/v1/traces", q
        assert q["headers"].get("x-api-key") == "secret", q["headers"]
        assert q["headers"].get("content-type") == "application/x-protobuf", q["headers"]
        assert q["bytes"] <= 4 * 1024 * 1024
        assert "error" not in q, q.get("error")
        for res in q["request"]["resources"]:
            assert _attr(res["attributes"], "service.name") == "demo"
            assert _attr(res["attributes"], "process.pid") == recording["pid"]
        spans += _spans(q["request"])
    assert len(spans) == len(recording["spans"])
    _check_span_tree(spans, recording["header"])


def _one_line(r):
    err = r.stderr.decode().strip()
    assert err and "\n" not in err, "expected a one-line error, got %r" % err
    return err


def test_collector_refusing_fails_with_endpoint_and_status(recording, collector):
    c = collector(500)
    r = run_pytrace("export", recording["path"], "-f", "otlp", "--endpoint", c.url)
    assert r.returncode != 0
    err = _one_line(r)
    assert c.url in err and "HTTP 500" in err, err
    assert len(c.requests()) == 1   # no retry loop


def test_unreachable_collector_fails_clearly(recording):
    # A bound port that is not listening: nothing answers, and nothing else can take it meanwhile.
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        url = "http://127.0.0.1:%d/v1/traces" % s.getsockname()[1]
        started = time.monotonic()
        r = run_pytrace("export", recording["path"], "-f", "otlp", "--endpoint", url)
    finally:
        s.close()
    assert r.returncode != 0
    err = _one_line(r)
    assert url in err and "unreachable" in err, err
    assert time.monotonic() - started < 15


def test_garbage_input_exits_7(tmp_path):
    bad = tmp_path / "garbage.pytrace"
    bad.write_bytes(b"this is not a trace\x00\xff" * 50)
    out = str(tmp_path / "out.pb")
    r = run_pytrace("export", str(bad), "-f", "otlp", "-o", out)
    assert r.returncode == 7, (r.returncode, r.stderr)
    _one_line(r)
    r = run_pytrace("export", str(bad), "-f", "otlp", "--endpoint", "http://127.0.0.1:9/v1/traces")
    assert r.returncode == 7, (r.returncode, r.stderr)


def _damaged_exports(recording, tmp_path, name, data):
    """Exports a damaged copy: it says truncated and exports a consistent part, or exits 7."""
    path = tmp_path / name
    path.write_bytes(data)
    out = str(tmp_path / (name + ".pb"))
    r = run_pytrace("export", str(path), "-f", "otlp", "-o", out)
    assert r.returncode in (0, 7), (name, r.returncode, r.stderr)
    if r.returncode == 7:
        _one_line(r)
        return 0
    assert b"truncated" in r.stderr, r.stderr
    spans = _spans(_decode_file(out))
    _check_span_tree(spans, recording["header"])
    return len(spans)


def test_truncated_input_exports_what_it_holds_or_exits_7(recording, tmp_path):
    data = open(recording["path"], "rb").read()
    exported = [_damaged_exports(recording, tmp_path, "cut%d" % int(frac * 100),
                                 data[:int(len(data) * frac)])
                for frac in (0.05, 0.5, 0.75, 0.95)]
    assert max(exported) > 0, "no cut kept a whole chunk of spans: %r" % exported
    assert max(exported) < len(recording["spans"])


def test_flipped_bytes_never_crash(recording, tmp_path):
    data = bytearray(open(recording["path"], "rb").read())
    for k, at in enumerate((9, 40, len(data) // 3, len(data) // 2, len(data) - 5)):
        bad = bytearray(data)
        bad[at] ^= 0x5A
        _damaged_exports(recording, tmp_path, "flip%d" % k, bytes(bad))
