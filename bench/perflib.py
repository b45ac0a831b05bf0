"""Shared plumbing for bench/run.py: finding interpreters, starting and always killing child
processes, waiting for a child with a timeout while keeping the kernel's CPU accounting of it
(os.wait4 rusage: utime + stime of that process alone), reading `pytrace info --json`, and
printing markdown tables.

It measures nothing itself. Every child is started in its own session (process group) and
registered; kill_all() (called by run.py on exit, SIGINT and SIGTERM) kills each group with SIGKILL
and reaps it, so a benchmark that fails or times out leaves no process behind.
"""
import glob
import json
import os
import signal
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTRACE = os.environ.get("PYTRACE_BIN", os.path.join(ROOT, "build", "pytrace"))
PYENV = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
WORKLOADS = os.path.join(os.path.dirname(ROOT), "shared", "workloads")
CPU_BOUND = os.path.join(WORKLOADS, "cpu_bound.py")
KNOWN_STACK = os.path.join(WORKLOADS, "known_stack.py")
VERSIONS = ["3.8", "3.10", "3.11", "3.12", "3.13"]

_CHILDREN = []


def python_pattern(minor):
    return os.path.join(PYENV, "versions", minor + ".*", "bin", "python" + minor)


def python_for(minor):
    """The newest pyenv python<minor>, or None."""
    found = sorted(glob.glob(python_pattern(minor)))
    return found[-1] if found else None


# --- child processes ------------------------------------------------------------------------

def spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
          env=None):
    """Popen in a new session, registered for kill_all()."""
    p = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True,
                         env=env)
    _CHILDREN.append(p)
    return p


def _forget(p):
    if p in _CHILDREN:
        _CHILDREN.remove(p)


def _close_pipes(p):
    for f in (p.stdin, p.stdout, p.stderr):
        if f is not None:
            try:
                f.close()
            except OSError:
                pass


def kill(p):
    """If p is still running: SIGKILL its whole process group (pytrace run's target included)
    and reap it. A process already reaped is left alone (its pid may be someone else's now)."""
    if p.returncode is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(timeout=10)
        except (subprocess.TimeoutExpired, ChildProcessError):
            pass
    _forget(p)
    _close_pipes(p)


def kill_all():
    for p in list(_CHILDREN):
        kill(p)


def reap_nohang(p):
    """If p has exited, reap it and return (exit code, CPU seconds of p alone: ru_utime +
    ru_stime, ru_maxrss KiB); else None. Use this, not p.poll(), which would reap p and lose
    its rusage."""
    pid, status, ru = os.wait4(p.pid, os.WNOHANG)
    if pid != p.pid:
        return None
    p.returncode = os.waitstatus_to_exitcode(status)
    _forget(p)
    return p.returncode, ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def wait_rusage(p, timeout):
    """Wait for p up to `timeout` s (then SIGKILL its group). Returns (exit code, CPU seconds,
    ru_maxrss KiB, timed_out). The kernel accounts a child's CPU exactly at reaping; p's own
    children are only included if p waited for them. ru_maxrss is not p's own peak: Linux keeps
    the pre-exec high-water mark, i.e. the forking Python's."""
    deadline = time.monotonic() + timeout
    while True:
        done = reap_nohang(p)
        if done:
            return done + (False,)
        if time.monotonic() > deadline:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            _forget(p)
            return p.returncode, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, True
        time.sleep(0.01)


def first_line(path_or_text):
    """First non-empty line of a file (or a string), for 'failed: ...' cells."""
    text = path_or_text
    if os.path.exists(path_or_text):
        with open(path_or_text, errors="replace") as f:
            text = f.read(4096)
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:120]
    return ""


# --- pytrace ----------------------------------------------------------------------------------

def attach(pid, rate, seconds, out, tmp, blocking=False, timeout_extra=60.0, env=None,
           binary=None):
    """`pytrace attach PID -r rate -d seconds -o out -q`, timed by the kernel. Returns a dict
    with rc, cpu_s, maxrss_kib, wall_s, timed_out and, on success, the info --json object.
    binary: another pytrace to run (bench/ab.py), default PYTRACE."""
    argv = [binary or PYTRACE, "attach", str(pid), "-r", str(rate), "-d", str(seconds), "-o",
            out, "-q"]
    if blocking:
        argv.append("--blocking")
    err = os.path.join(tmp, "pytrace.stderr")
    with open(err, "w") as ef:
        t0 = time.perf_counter()
        p = spawn(argv, stderr=ef, env=env)
        rc, cpu, maxrss, timed_out = wait_rusage(p, seconds + timeout_extra)
        wall = time.perf_counter() - t0
    res = {"rc": rc, "cpu_s": cpu, "maxrss_kib": maxrss, "wall_s": wall, "timed_out": timed_out}
    if rc != 0 or timed_out:
        res["error"] = "timed out" if timed_out else "exit %d: %s" % (rc, first_line(err))
        return res
    res["info"] = info(out, binary)
    return res


def info(path, binary=None):
    r = subprocess.run([binary or PYTRACE, "info", path, "--json"], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, timeout=120, check=True)
    return json.loads(r.stdout)


def version():
    try:
        return subprocess.run([PYTRACE, "--version"], stdout=subprocess.PIPE, timeout=10,
                               stderr=subprocess.DEVNULL).stdout.decode().strip()
    except (OSError, subprocess.SubprocessError):
        return None


def start_cpu_bound(python, depth, seconds=3600):
    """cpu_bound.py recursing `depth` frames; it calibrates at the deep stack right away, so a
    short sleep (interpreter start-up and imports) is enough before sampling it."""
    p = spawn([python, CPU_BOUND, "--depth", str(depth), "--seconds", str(seconds)])
    time.sleep(0.5)
    return p


def start_script(python, script):
    """Any program that runs until killed; given a second for start-up and imports."""
    p = spawn([python, script])
    time.sleep(1.0)
    return p


# --- output -----------------------------------------------------------------------------------

def fmt(x, spec="%.1f"):
    if x is None:
        return "n/a"
    if isinstance(x, float) and x != x:
        return "n/a"
    return spec % x if isinstance(x, (int, float)) else str(x)


def table(headers, rows):
    """Print a markdown table; a row may be shorter than the header (a 'skipped' row)."""
    print("| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    print()


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]
