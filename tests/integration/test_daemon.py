"""`pytrace daemon`, the sidecar: it finds CPython processes by itself (also in another PID and
mount namespace), follows a real gunicorn worker pool as workers are recycled, rotates files by
time, size and SIGHUP, keeps its directory under --max-disk, re-detects a process that execs into
Python, and on SIGTERM finishes every file and exits 0 within 2 s.

Synchronisation is by the daemon's log (it logs every process it traces and every file it
finishes) and by the targets' handshakes, never by fixed sleeps.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

from conftest import TARGETS, WORKLOADS, Target
from daemon_helpers import Daemon, collapsed, info, parse_name

DEBIAN_PY = "/usr/bin/python3"


@pytest.fixture
def daemon(tmp_path):
    started = []

    def start(*args):
        d = Daemon(tmp_path, *args)
        started.append(d)
        return d

    yield start
    for d in started:
        d.close()


def _children(pid):
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
            out += [int(x) for x in f.read().split()]
    return out


def test_target_in_its_own_pid_and_mount_namespaces_is_found_and_named(daemon, tmp_path):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) for PID and mount namespaces")
    d = daemon("--match", "ns_target", "--rotate", "1s")
    # The interpreter exists only inside the target's mount namespace (a tmpfs mounted there):
    # the daemon can open it only through /proc/PID/root.
    mnt = tmp_path / "nsmnt"
    mnt.mkdir()
    script = ("mount -t tmpfs none {m} && cp /usr/bin/python3.11 {m}/python && "
              "exec {m}/python {t}").format(m=mnt, t=os.path.join(TARGETS, "ns_target.py"))
    target = Target(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script])
    try:
        assert target.info["pid"] == 1, target.info
        kids = _children(target.pid)
        assert len(kids) == 1, kids
        outer = kids[0]
        assert not os.path.exists(str(mnt / "python")), "the tmpfs leaked out of the namespace"
        d.wait_for(r"tracing pid %d \(nspid 1\)" % outer)
        d.wait_for(r"finished \S+-ns1-pid%d-" % outer)
        rc, took = d.stop()
    finally:
        target.close()
    assert rc == 0, d.log()
    files = [f for f in d.files() if parse_name(f)["pid"] == str(outer)]
    assert files, (d.files(), d.log())
    for f in files:
        n = parse_name(f)
        assert n["nspid"] == "1" and n["comm"] == "python", f
        i = info(f)
        assert i["pid"] == outer and i["nspid"] == [outer, 1], i
        assert i["python_binary"] == str(mnt / "python"), i
        assert not i["truncated"], i
    assert any("spin_in_namespace" in collapsed(f) for f in files)


def _gunicorn_workers(log_path):
    with open(log_path) as f:
        text = f.read()
    return [int(x) for x in re.findall(r"Booting worker with pid: (\d+)", text)], text


def test_gunicorn_pool_every_worker_traced_with_its_handler_and_cpu_under_5_percent(daemon,
                                                                                     tmp_path):
    gunicorn = shutil.which("gunicorn")
    if not gunicorn:
        pytest.fail("gunicorn is not installed (apt-get install gunicorn python3-flask)")
    d = daemon("--match", "gunicorn", "--rotate", "3s", "--log-level", "info")
    glog = str(tmp_path / "gunicorn.log")
    g = subprocess.Popen([gunicorn, "--chdir", TARGETS, "-w", "3", "--max-requests", "50",
                          "-b", "127.0.0.1:0", "--error-logfile", glog, "flask_app:app"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        port = None
        while time.time() < deadline and (port is None or len(_gunicorn_workers(glog)[0]) < 3):
            text = open(glog).read() if os.path.exists(glog) else ""
            m = re.search(r"Listening at: http://127.0.0.1:(\d+)", text)
            port = int(m.group(1)) if m else None
            time.sleep(0.05)
        assert port, "gunicorn did not start"
        first = _gunicorn_workers(glog)[0]
        for pid in first:
            d.wait_for(r"tracing pid %d " % pid)
        cpu0, t0 = d.cpu_seconds(), time.time()
        served = {}
        for _ in range(330):   # the bounded request loop: ~6 recycles at --max-requests 50
            with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=10) as r:
                body = r.read().decode()
            pid = int(body.split()[2]) if len(body.split()) > 2 else 0
            served[pid] = served.get(pid, 0) + 1
        workers, text = _gunicorn_workers(glog)
        for pid in workers:
            if os.path.exists("/proc/%d" % pid):
                d.wait_for(r"tracing pid %d " % pid)
        cpu = (d.cpu_seconds() - cpu0) / (time.time() - t0)
        with open(str(tmp_path / "cpu.json"), "w") as f:
            json.dump({"daemon_cpu_fraction": cpu, "workers": len(workers)}, f)
        print("daemon CPU: %.2f%% of a core over %.1f s, %d workers booted" % (
            100 * cpu, time.time() - t0, len(workers)))
    finally:
        g.send_signal(signal.SIGTERM)
        g.wait(timeout=30)
    # Every worker that exits gets its file finished, before the daemon stops.
    for pid in workers:
        d.wait_for(r"finished \S+-pid%d-\S+" % pid)
    rc, took = d.stop()
    assert rc == 0 and took < 2, (rc, took)
    assert len(workers) >= 6, "expected recycled workers: %s\n%s" % (workers, text)
    by_pid = {}
    for f in d.files():
        by_pid.setdefault(int(parse_name(f)["pid"]), []).append(f)
    for pid in workers:
        assert pid in by_pid, "worker %d has no trace: %s\n%s" % (pid, sorted(by_pid), d.log())
        for f in by_pid[pid]:
            assert not info(f)["truncated"], f
        if served.get(pid, 0) >= 10:
            stacks = "".join(collapsed(f) for f in by_pid[pid])
            assert "handle_request" in stacks, "worker %d served %d requests" % (pid, served[pid])
    assert cpu < 0.05, "daemon used %.1f%% of a core" % (100 * cpu)
