"""`pytrace daemon`, the sidecar: it finds CPython processes by itself (also in another PID and
mount namespace), follows a real gunicorn worker pool as workers are recycled, rotates files by
time, size and SIGHUP, keeps its directory under --max-disk, re-detects a process that execs into
Python, filters by uid and cgroup, says which capability is missing, and on SIGTERM finishes
every file and exits 0 within 2 s.

Synchronisation is by the daemon's log (it logs every process it traces and every file it
finishes) and by the targets' handshakes, never by fixed sleeps.
"""
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

from conftest import PYTRACE, TARGETS, Target
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
        d.wait_for(r"^info \S+ tracing pid %d \(nspid 1\)" % outer)
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
            d.wait_for(r"^info \S+ tracing pid %d " % pid)
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
                d.wait_for(r"^info \S+ tracing pid %d " % pid)
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


def _cpu_target():
    return Target([DEBIAN_PY, os.path.join(TARGETS, "ns_target.py")])


def test_rotation_by_time_size_and_sighup_keeps_one_recording_id(daemon):
    d = daemon("--match", "ns_target", "--rotate", "1s", "--by-date")
    t = _cpu_target()
    try:
        d.wait_for(r"^info \S+ tracing pid %d " % t.pid)
        d.wait_for(r"finished \S+-pid%d-" % t.pid, count=2)
        d.send(signal.SIGHUP)   # rotates now, without waiting for the second
        d.wait_for(r"finished \S+-pid%d-" % t.pid, count=3, timeout=0.9)
        rc, took = d.stop()
    finally:
        t.close()
    assert rc == 0 and took < 2, (rc, took, d.log())
    files = [f for f in d.files() if parse_name(f)["pid"] == str(t.pid)]
    assert len(files) >= 4, files
    infos = sorted((info(f) for f in files), key=lambda i: i["rotation_seq"])
    assert [i["rotation_seq"] for i in infos] == list(range(len(infos)))
    assert len({i["recording_id"] for i in infos}) == 1
    for f in files:
        folder = os.path.basename(os.path.dirname(f))
        assert re.match(r"^\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d$", folder), f
    for i in infos:
        assert not i["truncated"] and i["samples"] > 0, i
    # Files follow each other: each starts where the previous one ended.
    for a, b in zip(infos, infos[1:]):
        gap = b["start_wall_ns"] - (a["start_wall_ns"] + a["duration_s"] * 1e9)
        assert abs(gap) < 50e6, (a["file"], b["file"], gap)


def test_rotation_by_size(daemon):
    d = daemon("--match", "ns_target", "--rotate", "0", "--rotate-size", "1K")
    t = _cpu_target()
    try:
        d.wait_for(r"finished \S+-pid%d-" % t.pid, count=3)
        rc, _ = d.stop()
    finally:
        t.close()
    assert rc == 0
    files = [f for f in d.files() if parse_name(f)["pid"] == str(t.pid)]
    finished = [f for f in files if int(parse_name(f)["seq"]) < len(files) - 1]
    for f in finished:
        # A chunk is written about once a second: a file passes the limit by at most one chunk.
        assert 1024 <= os.path.getsize(f) < 16 * 1024, (f, os.path.getsize(f))


def test_max_disk_deletes_oldest_finished_files_first(daemon):
    d = daemon("--match", "ns_target", "--rotate", "300ms", "--max-disk", "12K")
    t = _cpu_target()
    try:
        d.wait_for(r"deleted \S+-pid%d-" % t.pid, count=3)
        rc, _ = d.stop()
    finally:
        t.close()
    assert rc == 0
    deleted = re.findall(r"deleted (\S+) \(--max-disk\)", d.log())
    left = d.files()
    total = sum(os.path.getsize(f) for f in left)
    assert total <= 12 * 1024, (total, left)
    seqs_left = sorted(int(parse_name(f)["seq"]) for f in left)
    seqs_deleted = sorted(int(parse_name(f)["seq"]) for f in deleted)
    assert seqs_left and seqs_deleted and max(seqs_deleted) < min(seqs_left), (
        seqs_deleted, seqs_left)
    assert seqs_deleted == list(range(len(seqs_deleted))), seqs_deleted


def test_sigterm_finishes_every_open_file_and_exits_0_within_2s(daemon):
    d = daemon("--match", "ns_target", "--rotate", "10m", "--status-interval", "300ms",
               "--log-level", "debug")
    targets = []
    try:
        for _ in range(3):
            targets.append(_cpu_target())
            ready = time.time()
            line = d.wait_for(r"^info (\S+) tracing pid %d " % targets[-1].pid)[0]
            # New processes are picked up within a second (of their handshake, here).
            found = datetime.datetime.strptime(line, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=datetime.timezone.utc).timestamp()
            assert found - ready < 1.0, found - ready
        # A file that never got a sample is removed at the stop (documented): the last target's
        # could be, on a loaded machine, when SIGTERM came before its first round.
        for t in targets:
            d.wait_for(r"first sample in \S+-pid%d-" % t.pid)
        # The periodic status line: processes, samples, drops, disk used.
        d.wait_for(r"^info \S+ status: 3 processes, [1-9]\d* samples \(\d+ bad\), \d+ files "
                   r"finished, drops otlp=0 pprof=0, disk used \d+\.\d MB")
        rc, took = d.stop()
    finally:
        for t in targets:
            t.close()
    assert rc == 0 and took < 2, (rc, took, d.log())
    assert re.search(r"^info \S+ stopped after", d.log(), re.M)
    files = d.files()
    assert sorted(int(parse_name(f)["pid"]) for f in files) == sorted(t.pid for t in targets), \
        d.log()
    for f in files:
        i = info(f)
        assert not i["truncated"] and "missed" in i and i["walks"] is not None, i


def test_exited_process_is_finished_and_exec_into_python_is_detected(daemon, tmp_path):
    d = daemon("--match", "exec_marker|ns_target", "--log-level", "debug")
    # A shell (not Python) that execs Python when told to: same pid, new image.
    sh = subprocess.Popen(["sh", "-c", "read go; exec %s %s exec_marker" % (
        DEBIAN_PY, os.path.join(TARGETS, "ns_target.py"))], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE)
    try:
        d.wait_for(r"not tracing pid %d \(not a Python process\)" % sh.pid)
        sh.stdin.write(b"go\n")
        sh.stdin.flush()
        assert json.loads(sh.stdout.readline().decode())["ready"]
        t0 = time.time()
        d.wait_for(r"^info \S+ tracing pid %d " % sh.pid, timeout=3)
        assert time.time() - t0 < 1.5, "exec'd process picked up late"
        # A file that never got a sample is removed, not finished: let it get one (on a loaded
        # machine the first sample can come after a target that exits at once has gone).
        d.wait_for(r"first sample in \S+-pid%d-" % sh.pid)
        sh.stdin.close()
        sh.wait(timeout=10)
        d.wait_for(r"finished \S+-pid%d-" % sh.pid)
        rc, _ = d.stop()
    finally:
        if sh.poll() is None:
            sh.kill()
            sh.wait()
    assert rc == 0
    files = [f for f in d.files() if parse_name(f)["pid"] == str(sh.pid)]
    assert len(files) == 1
    i = info(files[0])
    assert not i["truncated"] and i["processes"], i


def test_uid_and_cgroup_filters(tmp_path):
    with open("/proc/self/cgroup") as f:
        cgroup = max((line.split(":", 2)[2] for line in f.read().splitlines()), key=len)
    for d in ("yes", "no", "no_cg"):
        (tmp_path / d).mkdir()
    yes = Daemon(tmp_path / "yes", "--match", "ns_target", "--uid", os.geteuid(), "--cgroup",
                 cgroup, "--rotate", "1s")
    no_uid = Daemon(tmp_path / "no", "--match", "ns_target", "--uid", os.geteuid() + 4242)
    no_cg = Daemon(tmp_path / "no_cg", "--match", "ns_target", "--cgroup", cgroup + "-other")
    t = _cpu_target()
    try:
        yes.wait_for(r"^info \S+ tracing pid %d " % t.pid)
        yes.wait_for(r"^info \S+ finished \S+-pid%d-" % t.pid)   # > 1 s of scans since
        for d in (no_uid, no_cg):
            assert not re.search(r"^info \S+ tracing pid %d " % t.pid, d.log(), re.M)
            assert d.stop()[0] == 0 and not d.files()
        assert yes.stop()[0] == 0
    finally:
        t.close()
        for d in (yes, no_uid, no_cg):
            d.close()


def test_capability_check_names_what_is_missing(tmp_path):
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv(1) to drop CAP_SYS_PTRACE")
    r = subprocess.run(["setpriv", "--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace",
                        PYTRACE,
                        "daemon", "--dir", str(tmp_path / "t"), "-d", "0.3s"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    log = r.stderr.decode()
    assert r.returncode == 0, log
    assert re.search(r"^warn \S+ CAP_SYS_PTRACE is missing .*--cap-add SYS_PTRACE", log, re.M), log
    assert re.search(r"^info \S+ permissions: root, CAP_SYS_PTRACE no, ", log, re.M), log


def test_trace_directory_that_cannot_hold_traces_is_refused_at_start(tmp_path):
    """--dir naming a file, or a read-only directory, fails at once (exit 1, one line naming it)
    instead of running on and logging a failure for every process it would have traced."""
    afile = tmp_path / "afile"
    afile.write_text("")
    cases = [(str(afile), "is not a directory")]
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)],
        stderr=subprocess.DEVNULL).returncode == 0
    if mounted:
        cases.append((str(ro), "cannot write to the trace directory"))
    try:
        for d, why in cases:
            r = subprocess.run([PYTRACE, "daemon", "--dir", d, "-d", "5s"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=30)
            log = r.stderr.decode()
            assert r.returncode == 1, log
            assert re.search(r"^error \S+ .*%s.*--dir" % re.escape(why), log, re.M), log
    finally:
        if mounted:
            subprocess.run(["umount", str(ro)])
    if not mounted:
        pytest.skip("read-only case not run: mounting a tmpfs needs root (the file case passed)")
