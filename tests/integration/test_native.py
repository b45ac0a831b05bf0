"""`pytrace dump --native`: mixed stacks of a target blocked in a C call (time.sleep, zlib.compress,
select.select) show the C frames between the Python ones — C extension and libc innermost, then
the Python frames that called them, then the interpreter's own C frames down to main — and the
target runs on afterwards (not stopped, not traced). `attach --native` stores the same stacks in
the trace, also when the target runs in a pid namespace of its own (a container)."""
import json
import os
import re
import subprocess

import pytest

from conftest import TARGETS, dump_json, interpreter_params, require, run_pytrace

TARGET = os.path.join(TARGETS, "native_block.py")
ATTEMPTS = 10   # the zlib loop is sometimes caught between two compress() calls

# Native frames expected innermost, per blocking call (any one of them).
INNER = {
    "sleep": re.compile(r"clock_nanosleep|nanosleep|__select|select|time_sleep"),
    "zlib": re.compile(r"deflate|zlib_compress|longest_match|compress"),
    "select": re.compile(r"select"),
}
PY_FUNCS = {"sleep": "in_sleep", "zlib": "in_zlib", "select": "in_select"}


def _dump_native(pid):
    r = run_pytrace("dump", "--native", "--json", pid)
    assert r.returncode == 0, "dump --native failed (%d): %s" % (r.returncode, r.stderr.decode())
    return json.loads(r.stdout.decode())


def _main_thread(dump, pid):
    for t in dump["threads"]:
        if t["native_id"] == pid:
            return t
    raise AssertionError("main thread %d not in dump: %r" % (pid, dump["threads"]))


def _problem(frames, mode):
    """None when frames read: C frames (matching INNER) → in_X, outer, <module> → C frames."""
    kinds = [f["kind"] for f in frames]
    if "python" not in kinds:
        return "no Python frames: %r" % frames
    first_py = kinds.index("python")
    inner = [f.get("symbol") or "" for f in frames[:first_py]]
    if not any(INNER[mode].search(s) for s in inner):
        return "no %s C frame before the Python frames: %r" % (mode, inner)
    py = [f["function"] for f in frames if f["kind"] == "python"]
    if py != [PY_FUNCS[mode], "outer", "<module>"]:
        return "Python frames %r" % py
    last_py = len(kinds) - 1 - kinds[::-1].index("python")
    if any(f.get("symbol") in ("_PyEval_EvalFrameDefault", "PyEval_EvalFrameEx") for f in frames):
        return "an eval-loop frame was not replaced by its Python frames: %r" % frames
    outer_c = [f.get("symbol") or "" for f in frames[last_py + 1:]]
    if not any(s in ("main", "Py_BytesMain", "Py_Main", "__libc_start_main") for s in outer_c):
        return "no interpreter C frames below <module>: %r" % outer_c
    return None


def _status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


@pytest.mark.parametrize("mode", ["sleep", "zlib", "select"])
@pytest.mark.parametrize("python", interpreter_params())
def test_native_dump_shows_c_frames_between_python_frames(start_target, python, mode):
    require(python)
    target = start_target([python, TARGET, mode])
    pid = target.pid
    problem = None
    for _ in range(ATTEMPTS):
        dump = _dump_native(pid)
        t = _main_thread(dump, pid)
        assert t["native_stack"], "no native stack for the main thread"
        problem = _problem(t["frames"], mode)
        if problem is None:
            assert not t["merge_uncertain"]
            break
    assert problem is None, problem
    st = _status(pid)
    assert st["State"][0] not in "tT", "target left stopped: %s" % st["State"]
    assert st["TracerPid"] == "0", "target left traced by %s" % st["TracerPid"]
    # The helper thread blocked reading stdin has a native stack too.
    others = [x for x in dump["threads"] if x["native_id"] != pid]
    assert others and all(x["native_stack"] for x in others)


@pytest.mark.parametrize("python", interpreter_params())
def test_native_dump_places_c_frames_between_python_runs(start_target, python):
    """Python → C (list/map) → Python → sleep: the C frames of map sit between the lambda and
    in_nested, so each eval-loop frame got its own run of Python frames (3.11 is_entry, 3.12+
    shim frames, one frame per eval call before)."""
    require(python)
    target = start_target([python, TARGET, "nested"])
    t = _main_thread(_dump_native(target.pid), target.pid)
    frames = t["frames"]
    assert not t["merge_uncertain"], frames
    py = [k for k, f in enumerate(frames) if f["kind"] == "python"]
    names = [frames[k]["function"] for k in py]
    assert names == ["<lambda>", "in_nested", "outer", "<module>"], names
    between = [f for f in frames[py[0] + 1:py[1]]]
    assert between, frames
    # Debian's stripped python3.11 names map_next & co. after a nearby export (approximate).
    assert any(re.search(r"map|list", f.get("symbol") or "") or f["approximate"]
               for f in between), between
    assert all(f["kind"] == "python" for f in frames[py[1]:py[3] + 1]) or \
        py[3] - py[1] > 2, frames   # 3.11+: one run; before: C call frames between
    assert not any((f.get("symbol") or "").startswith("_PyEval_EvalFrameDefault") for f in frames)


def test_native_dump_text_names_modules(start_target):
    python = require("/usr/bin/python3.11")
    target = start_target([python, TARGET, "select"])
    r = run_pytrace("dump", "--native", target.pid)
    assert r.returncode == 0, r.stderr.decode()
    text = r.stdout.decode()
    assert "in_select (%s:" % TARGET in text
    assert re.search(r"select \(libc\.so\.6\+0x[0-9a-f]+\)", text), text
    # Debian's python3.11 is stripped: static functions get a nearest export, flagged.
    assert "[approximate]" in text


def test_native_dump_of_missing_process_fails_cleanly():
    r = run_pytrace("dump", "--native", "999999999")
    assert r.returncode != 0
    assert r.stderr.decode().strip()


def _collapsed(path, tmp_path):
    out = str(tmp_path / "c.txt")
    r = run_pytrace("export", path, "-f", "collapsed", "-o", out)
    assert r.returncode == 0, r.stderr.decode()
    with open(out) as f:
        return [line.rsplit(" ", 1) for line in f.read().splitlines()]


@pytest.mark.parametrize("python", [p for p in interpreter_params()
                                    if p.id in ("pyenv-3.8", "pyenv-3.11", "pyenv-3.12",
                                                "pyenv-3.13", "debian-3.11")])
def test_attach_native_records_c_frames(start_target, python, tmp_path):
    """attach --native (blocking implied, and said so): stacks in the trace read main → Python →
    C extension; the target runs on afterwards."""
    require(python)
    target = start_target([python, TARGET, "select"])
    out = str(tmp_path / "n.pytrace")
    r = run_pytrace("attach", target.pid, "--native", "-d", "1", "-r", "50", "-o", out)
    assert r.returncode == 0, r.stderr.decode()
    assert "--native implies --blocking" in r.stderr.decode()
    st = _status(target.pid)
    assert st["State"][0] not in "tT" and st["TracerPid"] == "0", st
    r = run_pytrace("info", out, "--json")
    doc = json.loads(r.stdout.decode())
    assert doc["native"] and doc["blocking"], doc
    stacks = [s.split(";") for s, _ in _collapsed(out, tmp_path) if "in_select" in s]
    assert stacks, "no sample of the main thread in select"
    for frames in stacks:
        names = [f.split(" (")[0] for f in frames]
        py = [k for k, f in enumerate(frames) if re.search(r":-?\d+\)$", f)]   # file:line
        assert [names[k] for k in py] == ["<module>", "outer", "in_select"], frames
        assert any(re.search("select", n) for n in names[py[-1] + 1:]), names
        assert any(n in ("Py_BytesMain", "main", "__libc_start_main") for n in names[:py[0]]), names
        assert "_PyEval_EvalFrameDefault" not in names, names


# --- A target in a pid namespace of its own (a container, pytrace on the host) -----------------
# CPython's native_id is the thread id inside the namespace; /proc, ptrace and libunwind take the
# host's. pytrace shows the namespace's ids (as plain dump does), and files each native stack
# under the Python thread it belongs to.

def _unshare_argv():
    """The unshare prefix, or pytest.skip with the reason it cannot be used here."""
    argv = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"]
    try:
        r = subprocess.run(argv + ["true"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
    except OSError as e:
        pytest.skip("unshare not available: %s" % e)
    if r.returncode != 0:
        pytest.skip("unshare --pid --fork --mount-proc not permitted here: %s"
                    % r.stderr.decode(errors="replace").strip())
    return argv


def _namespaced_python(unshare_pid):
    """Host pid of the interpreter unshare forked (pid 1 in its namespace)."""
    with open("/proc/%d/task/%d/children" % (unshare_pid, unshare_pid)) as f:
        children = [int(x) for x in f.read().split()]
    assert len(children) == 1, "unshare should have one child: %r" % children
    nspid = _status(children[0])["NSpid"].split()
    assert len(nspid) >= 2 and nspid[-1] == "1", "not in a pid namespace: NSpid %r" % nspid
    return children[0]


NS_PYTHONS = [p for p in interpreter_params()
              if p.id in ("pyenv-2.7", "pyenv-3.8", "pyenv-3.11", "pyenv-3.12", "pyenv-3.13",
                          "debian-3.11")]


@pytest.mark.parametrize("python", NS_PYTHONS)
def test_native_dump_in_pid_namespace_files_native_stacks_under_python_threads(start_target, python):
    """Before: every Python thread read "[no native stack]" and "active", and the C stacks came
    out apart as native-only threads under host ids (before 3.11 the ids were even -1)."""
    require(python)
    target = start_target(_unshare_argv() + [python, TARGET, "sleep"])
    assert target.info["pid"] == 1   # the target's own view: pid 1 of its namespace
    pid = _namespaced_python(target.pid)
    plain = dump_json(pid)
    problem = None
    for _ in range(ATTEMPTS):
        dump = _dump_native(pid)
        main = _main_thread(dump, 1)   # ids as the target sees them, like plain dump's
        assert main["native_stack"], "no native stack for the main thread: %r" % main
        problem = _problem(main["frames"], "sleep")
        if problem is None:
            break
    assert problem is None, problem
    assert dump["native_only_threads"] == [], \
        "Python threads' stacks listed as native-only: %r" % dump["native_only_threads"]
    assert all(t["native_stack"] for t in dump["threads"]), dump["threads"]
    assert sorted(t["native_id"] for t in dump["threads"]) == \
        sorted(t["native_id"] for t in plain["threads"])
    assert main["idle"] and _main_thread(plain, 1)["idle"], "a sleeping thread is idle"
    st = _status(pid)
    assert st["State"][0] not in "tT", "target left stopped: %s" % st["State"]
    assert st["TracerPid"] == "0", "target left traced by %s" % st["TracerPid"]


@pytest.mark.parametrize("python", [p for p in NS_PYTHONS if p.id in ("pyenv-3.8", "pyenv-3.12")])
def test_attach_native_in_pid_namespace_records_c_frames(start_target, python, tmp_path):
    require(python)
    target = start_target(_unshare_argv() + [python, TARGET, "select"])
    pid = _namespaced_python(target.pid)
    out = str(tmp_path / "ns.pytrace")
    r = run_pytrace("attach", pid, "--native", "-d", "1", "-r", "50", "-o", out)
    assert r.returncode == 0, r.stderr.decode()
    st = _status(pid)
    assert st["State"][0] not in "tT" and st["TracerPid"] == "0", st
    stacks = [s.split(";") for s, _ in _collapsed(out, tmp_path) if "in_select" in s]
    assert stacks, "no sample of the main thread in select"
    for frames in stacks:
        names = [f.split(" (")[0] for f in frames]
        py = [k for k, f in enumerate(frames) if re.search(r":-?\d+\)$", f)]
        assert [names[k] for k in py] == ["<module>", "outer", "in_select"], frames
        assert any(re.search("select", n) for n in names[py[-1] + 1:]), names
