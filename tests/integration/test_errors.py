"""Bad input gets a one-line message that says what to do, and the documented exit code:
2 usage, 3 no such process, 4 permission denied, 5 not a Python process."""
import os
import shutil
import subprocess

import pytest

from conftest import PYTRACE, WORKLOADS, interpreter_params, require, run_pytrace


def _one_line(r):
    err = r.stderr.decode().strip()
    assert err and "\n" not in err, "expected a one-line error, got %r" % err
    return err


def test_usage_errors():
    for args in ([], ["dump"], ["dump", "abc"], ["dump", "1", "2"], ["dump", "--bogus", "1"],
                 ["frobnicate"]):
        r = run_pytrace(*args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)


def test_help_exits_zero():
    assert run_pytrace("--help").returncode == 0
    assert run_pytrace("dump", "--help").returncode == 0


def test_no_such_process():
    p = subprocess.Popen(["true"])
    p.wait()   # reaped: its pid is free now
    r = run_pytrace("dump", p.pid)
    assert r.returncode == 3
    assert "no such process" in _one_line(r)


def test_not_python():
    p = subprocess.Popen(["sleep", "60"])
    try:
        r = run_pytrace("dump", p.pid)
        assert r.returncode == 5, r.stderr
        msg = _one_line(r)
        assert "not a Python process" in msg and "sleep" in msg
    finally:
        p.kill()
        p.wait()


def test_permission_denied(start_target):
    """An unprivileged user cannot read root's process: exit 4 naming CAP_SYS_PTRACE and
    ptrace_scope."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start a target the unprivileged user cannot read")
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.skip("setpriv not found (util-linux)")
    python = require("/usr/bin/python3")
    target = start_target([python, os.path.join(WORKLOADS, "known_stack.py")])
    binary = os.path.realpath(PYTRACE)
    # The binary must be reachable by nobody: copy it somewhere world-readable.
    tmp = "/tmp/pytrace-perm-test"
    shutil.copy(binary, tmp)
    os.chmod(tmp, 0o755)
    try:
        r = subprocess.run([setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            "--inh-caps=-all", tmp, "dump", str(target.pid)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        assert r.returncode == 4, (r.returncode, r.stderr)
        msg = _one_line(r)
        assert "CAP_SYS_PTRACE" in msg and "ptrace_scope" in msg
    finally:
        os.unlink(tmp)
