"""`pytrace dump` against every interpreter: the stacks it reads from outside must equal the ones
the interpreter reports about itself (../shared/workloads/known_stack.py)."""
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import (PYTRACE, TARGETS, WORKLOADS, dump_json, interpreter_params, py_version,
                      require, run_pytrace)

KNOWN_STACK = os.path.join(WORKLOADS, "known_stack.py")
ATTEMPTS = 30   # busy threads move; a dump must match exactly within this many tries


def _frames(t):
    return [(f["function"], f["file"], f["line"]) for f in t["frames"]]


def _expected(report):
    return [(f["function"], f["file"], f["line"]) for f in report["frames"]]


def _match(dump, expected_threads, busy):
    """None when every reported thread's stack equals ours, else a description of the first
    difference."""
    by_native = {t["native_id"]: t for t in dump["threads"]}
    by_name = {t["name"]: t for t in dump["threads"]}
    for exp in expected_threads:
        got = by_native.get(exp["native_id"]) if exp["native_id"] else by_name.get(exp["name"])
        if got is None:
            return "thread %s (native %s) missing from dump: %r" % (
                exp["name"], exp["native_id"], [(t["name"], t["native_id"]) for t in dump["threads"]])
        frames = _frames(got)
        if busy and frames and frames[0][0] == "<genexpr>":
            frames = frames[1:]
        if frames != _expected(exp):
            return "thread %s:\n got      %r\n expected %r" % (exp["name"], frames, _expected(exp))
        if exp["name"] and got["name"] != exp["name"]:
            return "thread name %r != %r" % (got["name"], exp["name"])
    return None


def _check_known_stack(start_target, python, args, env=None, binary=PYTRACE, pytrace_env=None):
    busy = "--busy" in args
    target = start_target([python, KNOWN_STACK] + args, env=env)
    expected = target.info
    nthreads = int(args[args.index("--threads") + 1]) if "--threads" in args else 0
    assert len(expected["threads"]) == nthreads + 1
    problem = None
    for _ in range(ATTEMPTS):
        dump = dump_json(target.pid, binary=binary, env=pytrace_env)
        assert dump["pid"] == target.pid
        assert dump["python_version"] == expected["python_version"]
        assert len(dump["threads"]) == nthreads + 2, [t["name"] for t in dump["threads"]]
        problem = _match(dump, expected["threads"], busy)
        if problem is None:
            return dump
        if not busy:
            break
    pytest.fail(problem)


@pytest.mark.parametrize("python", interpreter_params())
@pytest.mark.parametrize("args", [[], ["--threads", "3"], ["--busy"], ["--busy", "--threads", "3"]],
                         ids=["sleep", "threads3", "busy", "busy-threads3"])
def test_dump_matches_interpreter(start_target, python, args):
    require(python)
    dump = _check_known_stack(start_target, python, args)
    # 3.13+ are read through the _Py_DebugOffsets the interpreter carries, older ones by table.
    major, minor = py_version(python)
    assert dump["layout"] == ("debug-offsets" if (major, minor) >= (3, 13) else "table")


@pytest.mark.parametrize("python", interpreter_params())
def test_dump_gil_and_idle(start_target, python):
    """Sleeping threads are idle and do not hold the GIL; a busy thread is seen holding it."""
    require(python)
    target = start_target([python, KNOWN_STACK, "--threads", "2"])
    dump = dump_json(target.pid)
    for t in dump["threads"]:
        assert t["idle"], t
        assert not t["holds_gil"], t
    held = False
    target2 = start_target([python, KNOWN_STACK, "--busy"])
    for _ in range(ATTEMPTS):
        dump = dump_json(target2.pid)
        if any(t["holds_gil"] and not t["idle"] for t in dump["threads"]):
            held = True
            break
    assert held, "a --busy target never showed a running GIL holder"


@pytest.mark.parametrize("python", interpreter_params())
def test_dump_text(start_target, python):
    require(python)
    target = start_target([python, KNOWN_STACK])
    r = run_pytrace("dump", target.pid)
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "Python v%s" % target.info["python_version"] in out
    assert "leaf (%s:" % KNOWN_STACK in out
    assert "level_one" in out


def _stripped_env(python, tmp):
    """LD_LIBRARY_PATH pointing at a stripped copy of the interpreter's libpython."""
    libdir = os.path.join(os.path.dirname(os.path.dirname(python)), "lib")
    libs = [f for f in os.listdir(libdir) if f.startswith("libpython") and ".so." in f]
    if not libs:
        pytest.skip("%s does not link a shared libpython" % python)
    for lib in libs:
        subprocess.check_call(["strip", "--strip-all", "-o", os.path.join(tmp, lib),
                               os.path.join(libdir, lib)])
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = tmp
    return env


@pytest.mark.parametrize("python", [p for p in interpreter_params() if "pyenv" in p.id])
def test_dump_stripped_libpython(start_target, python):
    """A stripped libpython (no .symtab): 2.7/3.6 lose interp_head and must scan; newer versions
    are forced onto the scan path with PYTRACE_NO_SYMBOLS=1."""
    require(python)
    tmp = tempfile.mkdtemp()
    try:
        env = _stripped_env(python, tmp)
        pt_env = dict(os.environ)
        pt_env["PYTRACE_NO_SYMBOLS"] = "1"
        dump = _check_known_stack(start_target, python, ["--threads", "2"], env=env, pytrace_env=pt_env)
        assert len(dump["threads"]) == 4
    finally:
        shutil.rmtree(tmp)


@pytest.mark.parametrize("python", interpreter_params())
def test_dump_non_ascii_names(start_target, python):
    """Function and file names in latin-1, UCS-2 and UCS-4 (2.7: UTF-8 bytes in the file name)."""
    require(python)
    tmp = tempfile.mkdtemp(prefix="pytrace-ünï-")
    try:
        if py_version(python) < (3, 0):
            src = os.path.join(TARGETS, "names27.py")
            script = os.path.join(tmp, "n\u00e4mes_\u51fd\u6570.py")
            expect = ["deep_sleep", "middle", "outer"]
        else:
            src = os.path.join(TARGETS, "names3.py")
            script = os.path.join(tmp, "n\u00e4mes_\U00010330.py")
            expect = ["caf\u00e9_\u00ff", "\u51fd\u6570_\u03bb", "\U00010330\U00010331_f"]
        shutil.copy(src, script)
        target = start_target([python, script])
        dump = dump_json(target.pid)
        main = [t for t in dump["threads"] if t["native_id"] == target.pid or t["name"] == "MainThread"]
        assert main, dump
        names = [f["function"] for f in main[0]["frames"]]
        files = {f["file"] for f in main[0]["frames"]}
        for name in expect:
            assert name in names, names
        assert os.path.abspath(script) in files, files
    finally:
        shutil.rmtree(tmp)
