"""Bad input gets a one-line message that says what to do, and the documented exit code:
2 usage, 3 no such process, 4 permission denied, 5 not a Python process."""
import json
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
                 ["frobnicate"],
                 # numbers that are not numbers: NaN passed every "< 0" check, "" read as 0
                 ["attach", "1", "-d", "nan"], ["attach", "1", "-d", "inf"],
                 ["attach", "1", "-r", "nan"], ["attach", "1", "-r", ""],
                 ["top", "1", "-r", "nan"], ["daemon", "-d", "nan"],
                 ["daemon", "--jitter", "nan"], ["export", "x", "-f", "collapsed", "--from", "nan"]):
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


# A target whose thread, function and file names carry terminal control sequences. It prints
# one JSON line when ready and ends when its stdin closes.
CONTROL_NAMES = r'''
import json, os, sys, threading, types
def base():
    sys.stdin.read()
code = base.__code__
fields = dict(co_name="f\x1b[2Jred\x07", co_filename="/tmp/\x1b]0;pwn\x07.py")
if hasattr(code, "co_qualname"):
    fields["co_qualname"] = fields["co_name"]
f = types.FunctionType(code.replace(**fields), globals())
t = threading.Thread(target=f, name="ctl\x01\x1b[31mred\u009b")
t.start()
print(json.dumps({"pid": os.getpid()}), flush=True)
t.join()
'''


def test_names_from_the_target_never_reach_the_terminal_raw(start_target, tmp_path):
    """dump, info and top --once show control characters as escapes (a thread named ESC[31m...
    must not colour the reader's terminal, nor a file name set its title); JSON keeps them, as
    JSON escapes; collapsed stacks stay one line each."""
    python = require("/root/.pyenv/versions/3.12.1/bin/python3")
    target = start_target([python, "-c", CONTROL_NAMES])
    raw = (b"\x1b", b"\x07", b"\x01", b"\xc2\x9b")
    out = run_pytrace("dump", target.pid).stdout
    assert not any(c in out for c in raw), out
    assert b"ctl\\x01\\x1b[31mred\\u009b" in out and b"f\\x1b[2Jred\\x07" in out, out
    js = run_pytrace("dump", target.pid, "--json").stdout.decode()
    assert "ctl\\u0001\\u001B[31mred\\u009B" in js or "ctl\\u0001\\u001b[31mred\\u009b" in js, js
    top = run_pytrace("top", target.pid, "--once", "--window", "1").stdout
    assert not any(c in top for c in raw), top
    trace = str(tmp_path / "t.pytrace")
    assert run_pytrace("attach", target.pid, "-d", "0.5", "-o", trace, "-q").returncode == 0
    info = run_pytrace("info", trace).stdout
    assert not any(c in info for c in raw) and b"f\\x1b[2Jred" in info, info
    collapsed = run_pytrace("export", trace, "-f", "collapsed", "-o", "-").stdout.decode()
    for line in collapsed.splitlines():
        assert line.rsplit(" ", 1)[1].isdigit(), collapsed


def test_output_naming_a_device_is_written_into_never_removed(start_target, tmp_path):
    """-o /dev/null (or /dev/full, which fails) must leave the device as it was: pytrace narrowed
    /dev/null to 0600 and removed /dev/full after a failed write."""
    if os.geteuid() != 0:
        pytest.skip("needs root to make device nodes")
    python = require("/root/.pyenv/versions/3.12.1/bin/python3")
    target = start_target([python, "-c", CONTROL_NAMES])
    for name, minor, rc in (("null", 3, 0), ("full", 7, 1)):
        node = str(tmp_path / name)
        os.mknod(node, 0o666 | 0o020000, os.makedev(1, minor))
        os.chmod(node, 0o666)
        r = run_pytrace("attach", target.pid, "-d", "0.3", "-q", "-o", node)
        assert r.returncode == rc, r.stderr
        st = os.stat(node)
        assert oct(st.st_mode) == oct(0o020666), (name, oct(st.st_mode))


def test_output_dash_is_standard_output_but_never_a_terminal(start_target, tmp_path):
    python = require("/root/.pyenv/versions/3.12.1/bin/python3")
    target = start_target([python, "-c", CONTROL_NAMES])
    r = run_pytrace("attach", target.pid, "-d", "0.3", "-o", "-")
    assert r.returncode == 0 and r.stdout[:1], r.stderr
    assert "standard output" in r.stderr.decode()
    trace = tmp_path / "piped.pytrace"
    trace.write_bytes(r.stdout)
    assert run_pytrace("info", str(trace)).returncode == 0
    if shutil.which("script"):
        s = subprocess.run(["script", "-qec", "%s attach %d -d 0.3 -o -" % (PYTRACE, target.pid),
                            "/dev/null"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        assert s.returncode == 2, s.stdout
        assert b"standard output is a terminal" in s.stdout, s.stdout


def test_a_trace_is_read_from_a_pipe(start_target, tmp_path):
    """info, export and view read a trace from standard input ('-', /dev/stdin: a pipe has no
    size to read up to), write their default output here as trace.SUFFIX, and a truncated or
    empty pipe gets the same answers as such a file."""
    python = require("/root/.pyenv/versions/3.12.1/bin/python3")
    target = start_target([python, "-c", CONTROL_NAMES])
    trace = tmp_path / "t.pytrace"
    assert run_pytrace("attach", target.pid, "-d", "0.3", "-o", trace, "-q").returncode == 0
    data = trace.read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    for name in ("-", "/dev/stdin"):
        r = run_pytrace("info", name, "--json", input=data)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["samples"] > 0
        r = run_pytrace("export", name, "-f", "collapsed", "-o", "-", input=data)
        assert r.returncode == 0 and r.stdout.count(b"\n") > 0, r.stderr
    assert run_pytrace("view", "-", input=data, cwd=work).returncode == 0
    assert run_pytrace("export", "/dev/stdin", "-f", "speedscope", input=data,
                       cwd=work).returncode == 0
    assert sorted(os.listdir(work)) == ["trace.html", "trace.speedscope.json"]
    r = run_pytrace("info", "-", input=data[:len(data) // 2])
    assert r.returncode == 0 and b"truncated" in r.stderr, r.stderr
    r = run_pytrace("info", "-", input=b"")
    assert r.returncode == 7
    assert "empty" in _one_line(r)


# Seizes the pid given on argv with ptrace (no stop), says so, and holds it until stdin closes.
SEIZER = r'''
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
rc = libc.ptrace(0x4206, int(sys.argv[1]), None, None)   # PTRACE_SEIZE
print("seized" if rc == 0 else "errno %d" % ctypes.get_errno(), flush=True)
sys.stdin.read()
'''


def test_target_traced_by_another_tracer_is_named_not_called_a_permission_problem(start_target):
    """--native pauses the target with ptrace, and a process has one tracer: the message names
    the tracer instead of suggesting CAP_SYS_PTRACE."""
    python = require("/root/.pyenv/versions/3.12.1/bin/python3")
    target = start_target([python, "-c", "import json, os, sys; "
                           "print(json.dumps({'pid': os.getpid()}), flush=True); sys.stdin.read()"])
    seizer = subprocess.Popen(["/usr/bin/python3", "-c", SEIZER, str(target.pid)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        line = seizer.stdout.readline().decode().strip()
        if line != "seized":
            pytest.skip("could not ptrace the target to set the case up: %s" % line)
        r = run_pytrace("dump", target.pid, "--native")
        assert r.returncode == 4, r.stderr
        err = _one_line(r)
        assert "already traced by process %d" % seizer.pid in err, err
    finally:
        seizer.stdin.close()
        seizer.wait(timeout=10)
