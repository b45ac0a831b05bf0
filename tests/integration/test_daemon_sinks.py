"""`pytrace daemon --otlp URL` and `--pprof-push URL`: every finished file goes to receivers on
127.0.0.1 (tests/integration/targets/http_receiver.py, a plain http.server that saves each body).
The OTLP bodies are decoded independently (the OpenTelemetry JS SDK's protobuf code, as in
test_export_otlp.py); the pprof bodies are read by `go tool pprof`. A receiver that answers 500,
that is down, or that never answers leaves the local files intact and the drop counters right,
and never holds up SIGTERM.
"""
import json
import os
import re
import select
import shutil
import socket
import subprocess
import urllib.parse

import pytest

from conftest import ROOT, TARGETS, WORKLOADS, Target
from daemon_helpers import Daemon, info, parse_name

DEBIAN_PY = "/usr/bin/python3"
PHASES = os.path.join(WORKLOADS, "phases.py")
COLLECTOR = os.path.join(ROOT, "tests", "integration", "js", "otlp", "collector.js")


class Receiver(object):
    def __init__(self, d, *args):
        os.makedirs(str(d), exist_ok=True)
        self.proc = subprocess.Popen([DEBIAN_PY, os.path.join(TARGETS, "http_receiver.py"),
                                      str(d)] + list(args), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, bufsize=0)   # select-able lines
        self.port = json.loads(self.proc.stdout.readline().decode())["port"]
        self.got = []

    def requests(self, n, timeout=20):
        while len(self.got) < n:
            r, _, _ = select.select([self.proc.stdout], [], [], timeout)
            assert r, "receiver got %d of %d requests" % (len(self.got), n)
            self.got.append(json.loads(self.proc.stdout.readline().decode()))
        return self.got

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


class _Stopper(object):
    """Closes a phases.py target at once (it does not stop when its stdin closes)."""

    def __init__(self, target):
        self.target = target

    def close(self):
        if self.target.proc.poll() is None:
            self.target.proc.terminate()
        self.target.close()


@pytest.fixture
def resources(tmp_path):
    held = []
    yield held
    for x in held:
        x.close()


def _target(resources, tmp_path):
    # The truth file's path makes the command line unique: other tests on this machine may run
    # phases.py too, and the daemon must trace only this one.
    t = Target([DEBIAN_PY, PHASES, "--seconds", "30", "--truth", str(tmp_path / "truth.jsonl")])
    resources.append(_Stopper(t))
    return t


def _daemon(tmp_path, resources, *args):
    d = Daemon(tmp_path, "--match", re.escape(str(tmp_path / "truth.jsonl")), "--rotate", "1s",
               *args)
    resources.append(d)
    return d


def _final(d):
    m = re.search(r"otlp sent (\d+) dropped (\d+), pprof sent (\d+) dropped (\d+); "
                  r"shutdown took", d.log())
    assert m, d.log()
    return [int(x) for x in m.groups()]


def _finished(d, pid):
    return [f for f in d.files() if parse_name(f)["pid"] == str(pid)]


def _check_local_files(files):
    assert files
    for f in files:
        i = info(f)
        assert not i["truncated"] and i["samples"] > 0, i


def test_otlp_sink_posts_each_finished_file_with_headers_and_service(tmp_path, resources):
    node = shutil.which("node")
    if not node or not os.path.isdir(os.path.join(os.path.dirname(COLLECTOR), "node_modules")):
        pytest.fail("the OTLP decoder is not installed: run scripts/setup.d/otlp.sh")
    rcv = Receiver(tmp_path / "otlp")
    resources.append(rcv)
    url = "http://127.0.0.1:%d/v1/traces" % rcv.port
    d = _daemon(tmp_path, resources, "--otlp", url, "--header", "X-Scope-OrgID=team-a",
                "--service", "checkout")
    t = _target(resources, tmp_path)
    d.wait_for(r"^info \S+ finished \S+-pid%d-" % t.pid, count=2)
    rc, took = d.stop()
    assert rc == 0 and took < 2, (rc, took)
    files = _finished(d, t.pid)
    sent, dropped, _, _ = _final(d)
    assert dropped == 0 and sent == len(files), (sent, dropped, files, d.log())
    reqs = rcv.requests(sent)
    spans = 0
    for r in reqs:
        assert r["path"] == "/v1/traces" and r["headers"]["x-scope-orgid"] == "team-a", r
        assert r["headers"]["content-type"] == "application/x-protobuf", r
        out = subprocess.run([node, COLLECTOR, "decode", r["file"]], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=60)
        assert out.returncode == 0, out.stderr.decode()
        req = json.loads(out.stdout.decode())
        for res in req["resources"]:
            assert res["attributes"]["service.name"][1] == "checkout", res["attributes"]
            for sc in res["scopes"]:
                spans += len(sc["spans"])
                names = {s["name"] for s in sc["spans"]}
                assert names & {"request", "parse", "query", "render", "escape"}, names
    assert spans > 0
    _check_local_files(files)


def test_pprof_sink_uploads_a_profile_per_file_that_go_tool_pprof_reads(tmp_path, resources):
    go = shutil.which("go") or "/usr/lib/go/bin/go"
    if not os.path.exists(go):
        pytest.fail("go (Debian golang-go) is not installed: run scripts/setup.d/pprof_speedscope.sh")
    rcv = Receiver(tmp_path / "pprof")
    resources.append(rcv)
    d = _daemon(tmp_path, resources, "--pprof-push", "http://127.0.0.1:%d" % rcv.port)
    t = _target(resources, tmp_path)
    d.wait_for(r"^info \S+ finished \S+-pid%d-" % t.pid, count=2)
    rc, _ = d.stop()
    assert rc == 0
    files = _finished(d, t.pid)
    _, _, sent, dropped = _final(d)
    assert dropped == 0 and sent == len(files), (sent, dropped, d.log())
    reqs = rcv.requests(sent)
    with_samples = 0
    for r in reqs:
        assert r["path"] == "/ingest", r
        q = dict(urllib.parse.parse_qsl(r["query"]))
        assert q["format"] == "pprof", q
        assert q["name"] == "python3{pid=%d,nspid=%d}" % (t.pid, t.pid), q
        assert 0 < int(q["from"]) < int(q["until"]), q
        env = dict(os.environ, PPROF_TMPDIR=str(tmp_path))
        out = subprocess.run([go, "tool", "pprof", "-top", "-sample_index=samples", r["file"]],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=120)
        assert out.returncode == 0, out.stderr.decode()
        top = out.stdout.decode()
        # The file cut by SIGTERM may end a few ms after its rotation, with no sample.
        if "Total samples = 0" not in top:
            with_samples += 1
            assert re.search(r"\b(request|parse|query|render|escape)\b", top), top
    assert with_samples >= 2, with_samples
    _check_local_files(files)


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("receiver", ["status500", "down"])
def test_failing_receiver_keeps_local_files_and_counts_drops(tmp_path, resources, receiver):
    if receiver == "status500":
        rcv = Receiver(tmp_path / "r500", "--status", "500")
        resources.append(rcv)
        port = rcv.port
    else:
        port = _free_port()   # nothing listens there
    url = "http://127.0.0.1:%d" % port
    d = _daemon(tmp_path, resources, "--otlp", url + "/v1/traces", "--pprof-push", url,
                "--push-attempts", "2", "--push-backoff", "0.1")
    t = _target(resources, tmp_path)
    d.wait_for(r"^info \S+ finished \S+-pid%d-" % t.pid, count=2)
    # Both files have been tried twice by each sink (and dropped) before we stop.
    d.wait_for(r"^warn \S+ (otlp|pprof) sink dropped", count=4)
    rc, took = d.stop()
    assert rc == 0 and took < 2, (rc, took)
    files = _finished(d, t.pid)
    osent, odrop, psent, pdrop = _final(d)
    assert osent == 0 and psent == 0
    assert odrop == len(files) and pdrop == len(files), (odrop, pdrop, files, d.log())
    _check_local_files(files)
    if receiver == "status500":
        reqs = rcv.requests(4)   # two attempts per sink for each of at least two files
        assert {r["path"] for r in reqs} <= {"/v1/traces", "/ingest"}


def test_hanging_receiver_does_not_hold_up_sigterm(tmp_path, resources):
    rcv = Receiver(tmp_path / "hang", "--hang")
    resources.append(rcv)
    d = _daemon(tmp_path, resources, "--otlp", "http://127.0.0.1:%d/v1/traces" % rcv.port,
                "--push-timeout", "30")
    t = _target(resources, tmp_path)
    d.wait_for(r"^info \S+ finished \S+-pid%d-" % t.pid, count=2)
    rcv.requests(1)          # the first upload is in flight, and will never be answered
    rc, took = d.stop()
    assert rc == 0 and took < 2, (rc, took, d.log())
    files = _finished(d, t.pid)
    osent, odrop, _, _ = _final(d)
    assert osent == 0 and odrop == len(files), (odrop, files, d.log())
    _check_local_files(files)
