"""Shared fixtures for pytrace's integration tests: the interpreters on this machine, the binary
under test, and targets started with a stdout handshake (never a sleep).

Every interpreter pytrace supports is listed in INTERPRETERS; one that is not installed becomes a
skipped test that names the path it looked for, never a silent pass.
"""
import glob
import json
import os
import select
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
WORKLOADS = os.path.join(SHARED, "workloads")
TARGETS = os.path.join(ROOT, "tests", "integration", "targets")
PYTRACE = os.environ.get("PYTRACE_BIN", os.path.join(ROOT, "build", "pytrace"))
PYENV_ROOT = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))

# python -c WRAPPER SCRIPT ARGS...: prints the handshake line, then runs SCRIPT as __main__ (for
# workloads that print nothing until they end).
WRAPPER = ("import json, os, runpy, sys\n"
           "print(json.dumps({'pid': os.getpid(), 'ready': True})); sys.stdout.flush()\n"
           "sys.argv = sys.argv[1:]\n"
           "runpy.run_path(sys.argv[0], run_name='__main__')\n")

PYENV_MINORS = ["2.7", "3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14"]


def _pyenv_python(minor):
    """Path of pyenv's newest X.Y build, or the path where it would be."""
    found = sorted(glob.glob(os.path.join(PYENV_ROOT, "versions", minor + ".*", "bin", "python" + minor)),
                   key=lambda p: [int(x) for x in p.split("/versions/")[1].split("/")[0].split(".")
                                  if x.isdigit()])
    if found:
        return found[-1]
    return os.path.join(PYENV_ROOT, "versions", minor + ".*", "bin", "python" + minor)


def interpreters():
    """(id, path) of every interpreter the tests cover."""
    items = [("pyenv-" + m, _pyenv_python(m)) for m in PYENV_MINORS]
    items.append(("debian-3.11", "/usr/bin/python3.11"))
    return items


def interpreter_params():
    return [pytest.param(path, id=name) for name, path in interpreters()]


def require(path):
    if not os.path.exists(path):
        pytest.skip("interpreter not found: %s" % path)
    return path


def py_version(python):
    out = subprocess.check_output([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
    return tuple(int(x) for x in out.decode().strip().split("."))


class Target(object):
    """A running target that printed one JSON line on stdout once ready."""

    def __init__(self, argv, env=None, timeout=30):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.pid = self.proc.pid
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.close()
            raise AssertionError("target did not become ready in %ss: %r" % (timeout, argv))
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().decode(errors="replace")
            self.close()
            raise AssertionError("target exited before its handshake: %r\n%s" % (argv, err))
        self.info = json.loads(line.decode())

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()


@pytest.fixture
def start_target():
    started = []

    def start(argv, **kw):
        t = Target(argv, **kw)
        started.append(t)
        return t

    yield start
    for t in started:
        t.close()


def run_pytrace(*args, **kw):
    binary = kw.pop("binary", PYTRACE)
    return subprocess.run([binary] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=kw.pop("timeout", 60), **kw)


def dump_json(pid, binary=PYTRACE, env=None):
    r = run_pytrace("dump", pid, "--json", binary=binary, env=env)
    assert r.returncode == 0, "dump failed (%d): %s" % (r.returncode, r.stderr.decode())
    return json.loads(r.stdout.decode())
