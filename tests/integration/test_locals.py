"""`pytrace dump --locals` and `--locals` recording against every interpreter: every rendered type
of tests/integration/targets/locals_target.py's inspect_me(), default redaction of secret-looking
names, and a recording that stores each call's inputs at its first sighting."""
import json
import os
import subprocess
import tempfile

import pytest

from conftest import PYTRACE as PYTRACE_BIN, TARGETS, interpreter_params, py_version, require, run_pytrace

TARGET = os.path.join(TARGETS, "locals_target.py")


def _expected(ver, widget):
    """name -> (value, arg, redacted) of inspect_me's variables, as pytrace renders them."""
    py2 = ver < (3, 0)
    u = "u" if py2 else ""
    b = "" if py2 else "b"
    exp = {
        "none_arg": ("None", True, False),
        "flag": ("True", True, False),
        "count": ("42", True, False),
        "big": ("1234567890123456789012345678901234567890", True, False),
        "neg": ("-17", True, False),
        "ratio": ("2.5", True, False),
        "text": (u"%s'h\u00e9llo w\u00f6rld'" % u, True, False),
        "blob": ("%s'\\x00ab\\xff'" % b, True, False),
        "items": ("list(3) [1, 2, 3]", True, False),
        "pair": ("tuple(2) (%s'a', 1)" % u, True, False),
        "mapping": ("dict(1) {%s'k': 1}" % u, True, False),
        "members": ("set(1) {7}", True, False),
        "widget": ("<Widget at %s>" % widget, True, False),
        "password": ("<redacted>", True, True),
        "api_key": ("<redacted>", True, True),
        "rest": ("tuple(0) ()", True, False),
        "local_total": ("43", False, False),
        "deep": ("list(1) [list(2) [1, list(2) [...]]]", False, False),
        "long_list": ("list(10) [0, 1, 2, 3, 4, ...]", False, False),
        "long_text": ("%s'%s'...(100 chars)" % (u, "x" * 64), False, False),
        "captured": ("'cell'" if not py2 else "u'cell'", False, False),
    }
    return exp


def _start(python):
    p = subprocess.Popen([python, TARGET], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    line = p.stdout.readline()
    if not line:
        p.kill()
        raise AssertionError("target died: %s" % p.stderr.read().decode(errors="replace"))
    return p, json.loads(line.decode())


def _stop(p):
    p.stdin.close()
    p.wait(timeout=10)
    p.stdout.close()
    p.stderr.close()


def _inspect_frame(dump):
    for t in dump["threads"]:
        for f in t["frames"]:
            if f["function"] == "inspect_me":
                return f
    raise AssertionError("no inspect_me frame in %r" % dump)


@pytest.mark.parametrize("python", interpreter_params())
def test_dump_locals_renders_every_type(python):
    require(python)
    ver = py_version(python)
    p, info = _start(python)
    try:
        r = run_pytrace("dump", info["pid"], "--json", "--locals")
        assert r.returncode == 0, r.stderr.decode()
        frame = _inspect_frame(json.loads(r.stdout.decode()))
        got = {l["name"]: (l["value"], l["arg"], l["redacted"]) for l in frame["locals"]}
        for name, want in _expected(ver, info["widget"]).items():
            assert got.get(name) == want, "%s: got %r, want %r" % (name, got.get(name), want)
        opts = got["options"]
        assert opts[0].startswith("dict(3) {") and opts[1] and not opts[2], opts
        assert got["inner"][0].startswith("<function at 0x"), got["inner"]
        # Arguments come first, in signature order; no name twice (count is also a cell).
        names = [l["name"] for l in frame["locals"]]
        assert len(names) == len(set(names)), names
        assert names[:3] == ["none_arg", "flag", "count"], names
        # The text form shows the same values under Arguments / Locals.
        r = run_pytrace("dump", info["pid"], "--locals")
        assert r.returncode == 0, r.stderr.decode()
        text = r.stdout.decode()
        assert "        Arguments:\n            none_arg = None\n" in text, text
        assert "            password = <redacted>\n" in text
        assert "hunter2" not in text and "k-123" not in text
        assert "            local_total = 43\n" in text
    finally:
        _stop(p)


def test_dump_without_locals_prints_no_locals():
    python = require("/usr/bin/python3.11")
    p, info = _start(python)
    try:
        r = run_pytrace("dump", info["pid"], "--json")
        assert r.returncode == 0
        frame = _inspect_frame(json.loads(r.stdout.decode()))
        assert "locals" not in frame
    finally:
        _stop(p)


def test_filter_file_changes_redaction(tmp_path):
    """A rule file can allow a default-redacted name and drop another (util/rules.h syntax). Skips
    while this build's dump has no --filter or its rule engine reads no files yet."""
    python = require("/usr/bin/python3.11")
    rules = tmp_path / "rules.txt"
    rules.write_text("allow value:password\ndrop arg:count\n")
    p, info = _start(python)
    try:
        r = run_pytrace("dump", info["pid"], "--json", "--locals", "--filter", str(rules))
        if r.returncode != 0:
            pytest.skip("dump --filter not available in this build: %s" % r.stderr.decode().strip())
        frame = _inspect_frame(json.loads(r.stdout.decode()))
        got = {l["name"]: (l["value"], l["redacted"]) for l in frame["locals"]}
        assert got["password"] == ("'hunter2'", False)
        assert got["api_key"] == ("<redacted>", True)
        assert "count" not in got
    finally:
        _stop(p)


def _record(python, out, *extra):
    """`pytrace attach -d 1` to the looping target (each call pauses 20 ms), once it is looping."""
    p = subprocess.Popen([python, TARGET, "--loop", "--pause"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = p.stdout.readline()
        assert line, "target died: %s" % p.stderr.read().decode(errors="replace")
        pid = json.loads(line.decode())["pid"]
        r = run_pytrace("attach", pid, "-d", "1", "-o", out, *extra)
        return r.returncode, r.stderr.decode(errors="replace")
    finally:
        _stop(p)


def _spans(path, fn):
    out = path + ".ndjson"
    r = run_pytrace("export", path, "-f", "ndjson", "-o", out)
    assert r.returncode == 0, r.stderr.decode()
    with open(out) as f:
        objs = [json.loads(line) for line in f]
    return [o for o in objs if o.get("type") == "span" and o["function"] == fn], objs


@pytest.mark.parametrize("python", interpreter_params())
def test_recording_with_locals_stores_each_calls_inputs(python, tmp_path):
    require(python)
    ver = py_version(python)
    path = str(tmp_path / "locals.pytrace")
    rc, err = _record(python, path, "--locals")
    assert rc == 0, err
    spans, _ = _spans(path, "inspect_me")
    assert spans, "no inspect_me span recorded"
    with_locals = [s for s in spans if s.get("locals")]
    assert with_locals, spans[0]
    exp = _expected(ver, None)
    for s in with_locals:
        got = {l["name"]: (l["value"], l["arg"], l["redacted"]) for l in s["locals"]}
        for name in ("none_arg", "flag", "count", "big", "neg", "ratio", "text", "blob", "items",
                     "pair", "mapping", "members", "password", "api_key", "rest"):
            assert got.get(name) == exp[name], (name, got.get(name), exp[name])
        assert got["widget"][0].startswith("<Widget at 0x")
        assert "seq" in got["options"][0]
    # Each call's own inputs: the seq keyword differs from call to call.
    seqs = set(s["locals"][-1]["value"] for s in with_locals if s["locals"][-1]["name"] == "options")
    assert len(seqs) == len([s for s in with_locals if s["locals"][-1]["name"] == "options"])
    # Secrets never reach the file, and the trailer counts what was redacted.
    with open(path, "rb") as f:
        data = f.read()
    assert b"hunter2" not in data and b"k-123" not in data
    r = run_pytrace("info", path, "--json")
    assert r.returncode == 0, r.stderr.decode()
    info = json.loads(r.stdout.decode())
    assert info["locals"] is True and info["redacted"] >= 2 * len(with_locals), info["redacted"]
    assert "pytrace: --locals: " in err and " values redacted" in err, err
    # chrome://tracing and ui.perfetto.dev show them in the slice's args.
    out = path + ".json"
    r = run_pytrace("export", path, "-f", "chrome", "-o", out)
    assert r.returncode == 0, r.stderr.decode()
    with open(out) as f:
        events = json.load(f)["traceEvents"]
    args = [e["args"]["locals"] for e in events
            if e.get("name") == "inspect_me" and "locals" in e.get("args", {})]
    assert args and args[0]["count"] == "42" and args[0]["password"] == "<redacted>", args[:1]
    # The HTML viewer's data carries them too (shown in the timeline's tooltip).
    bundle = os.path.join(os.path.dirname(os.path.abspath(PYTRACE_BIN)), "viewer.bundle.html")
    if os.path.exists(bundle):
        html = path + ".html"
        r = run_pytrace("view", path, "-o", html)
        assert r.returncode == 0, r.stderr.decode()
        with open(html, encoding="utf-8") as f:
            page = f.read()
        assert "count = 42" in page and "password = \\u003credacted>" in page


def test_recording_without_locals_stores_none(tmp_path):
    python = require("/usr/bin/python3.11")
    path = str(tmp_path / "plain.pytrace")
    rc, err = _record(python, path)
    assert rc == 0, err
    spans, objs = _spans(path, "inspect_me")
    assert spans and not any("locals" in s for s in spans)
