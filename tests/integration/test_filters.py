"""Filter rules and configuration (docs/filters.md, docs/config.md): exclude and fold applied while
recording, at export and in `view`, visible in the flame graph (collapsed stacks), in speedscope
and in the viewer's call tree; the rule
chain in the header and the trailer's counts shown by `info`; a malformed rule file exits 2 with one
line naming FILE:LINE; `pytrace config` shows each value's source, command line > environment >
file."""
import json
import os

import pytest

from conftest import TARGETS, require, run_pytrace

TARGET = os.path.join(TARGETS, "filtered.py")
RULES = "# the test's rules\nfold stdlib\nexclude function:literal:noisy_helper\n"


def _env(tmp_path, **extra):
    """An environment whose config files are the test's own (no ~/.config/pytrace.conf)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYTRACE_") or k == "PYTRACE_BIN"}
    env["HOME"] = str(tmp_path / "home")
    env.pop("XDG_CONFIG_HOME", None)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    """One target recorded twice at once-after-the-other: with the rules, and without."""
    tmp = tmp_path_factory.mktemp("filters")
    python = require("/usr/bin/python3")
    rules = tmp / "app.rules"
    rules.write_text(RULES)
    env = _env(tmp)
    from conftest import Target
    target = Target([python, TARGET, "--seconds", "30", "--watch-stdin"])
    try:
        out = {}
        for name, extra in (("filtered", ["--filter", str(rules)]), ("plain", [])):
            out[name] = str(tmp / (name + ".pytrace"))
            r = run_pytrace("attach", target.pid, "-d", "1.5", "-o", out[name], "-q", *extra,
                            env=env)
            assert r.returncode == 0, r.stderr
    finally:
        target.close()
    out["rules"] = str(rules)
    out["tmp"] = tmp
    return out


def _collapsed(path, *extra):
    r = run_pytrace("export", path, "-f", "collapsed", "-o", "-", *extra)
    assert r.returncode == 0, r.stderr
    stacks = {}
    for line in r.stdout.decode().splitlines():
        stack, count = line.rsplit(" ", 1)
        names = tuple(f.split(" (")[0] for f in stack.split(";"))
        stacks[names] = stacks.get(names, 0) + int(count)
    return stacks


def _frames(stacks):
    return {f for s in stacks for f in s}


# The non-blocking sampler reads a running target; a stack mixed by a return and a new call in the
# microsecond of its copy can still pass its checks (readers/stack.c, about 1 sample in 2,000
# here). Such a stack may show a frame the rules would have removed from the real one: absent
# frames are checked as "in at most 0.5% of samples" rather than "never".
RARE = 0.005


def _rare(stacks, name):
    total = sum(stacks.values())
    with_name = sum(n for s, n in stacks.items() if name in s)
    return with_name <= RARE * total


def _check_filtered(stacks):
    frames = _frames(stacks)
    assert _rare(stacks, "noisy_helper")                    # excluded
    assert _rare(stacks, "encode") and _rare(stacks, "iterencode")   # folded into dumps
    assert "dumps" in frames                                # the run's outermost frame stays
    assert "spin_callback" in frames                        # user code called back: shown again
    called_back = sum(n for s, n in stacks.items() if "spin_callback" in s)
    shaped = sum(n for s, n in stacks.items() if "spin_callback" in s and "dumps" in s and
                 s[s.index("dumps"):] == ("dumps", "encode_hook", "spin_callback"))
    assert shaped >= (1 - RARE) * called_back, (shaped, called_back)
    # noisy_helper's samples land on its caller, work, as a leaf.
    assert sum(n for s, n in stacks.items() if s and s[-1] == "work") > 0


def test_plain_trace_has_the_frames(traces):
    frames = _frames(_collapsed(traces["plain"]))
    assert {"noisy_helper", "dumps", "encode_hook", "spin_callback"} <= frames
    assert "encode" in frames or "iterencode" in frames


def test_rules_applied_while_recording(traces):
    _check_filtered(_collapsed(traces["filtered"]))


def test_rules_applied_at_export(traces):
    _check_filtered(_collapsed(traces["plain"], "--filter", traces["rules"]))
    # --no-stdlib alone folds the standard library.
    stacks = _collapsed(traces["plain"], "--no-stdlib")
    frames = _frames(stacks)
    assert _rare(stacks, "encode") and _rare(stacks, "iterencode") and "dumps" in frames
    assert "noisy_helper" in frames
    # --exclude (the command line) wins over the rules: json's outermost frame goes too.
    stacks = _collapsed(traces["plain"], "--no-stdlib", "--exclude", "json.*")
    assert _rare(stacks, "dumps")
    assert any(s[-3:] == ("work", "encode_hook", "spin_callback") for s in stacks)


@pytest.mark.parametrize("which", ["filtered", "plain"])
def test_speedscope_shows_the_rules(traces, which, tmp_path):
    out = str(tmp_path / "s.json")
    extra = ["--filter", traces["rules"]] if which == "plain" else []
    r = run_pytrace("export", traces[which], "-f", "speedscope", "-o", out, *extra)
    assert r.returncode == 0, r.stderr
    doc = json.load(open(out))
    frames = doc["shared"]["frames"]
    used = set()
    for p in doc["profiles"]:
        used.update(frames[e["frame"]]["name"] for e in p.get("events", []))
        for s in p.get("samples", []):
            used.update(frames[i]["name"] for i in s)
    assert "noisy_helper" not in used and "iterencode" not in used and "encode" not in used
    assert {"dumps", "encode_hook", "spin_callback", "work"} <= used


def _view_tree_functions(path, tmp_path, *extra):
    """Function names of the call tree `pytrace view` embeds in its page."""
    out = str(tmp_path / "v.html")
    r = run_pytrace("view", path, "-o", out, *extra)
    if r.returncode == 1 and b"viewer was not built" in r.stderr:
        pytest.skip("the HTML viewer was not built (npm missing): " + r.stderr.decode())
    assert r.returncode == 0, r.stderr
    page = open(out).read()
    start = page.index('<script id="pytrace-data" type="application/json">')
    start = page.index(">", start) + 1
    doc = json.loads(page[start:page.index("</script>", start)])
    return {doc["functions"][f][0] for f in doc["tree"]["function"][1:]}


def test_view_applies_the_rules(traces, tmp_path):
    plain = _view_tree_functions(traces["plain"], tmp_path)
    assert {"noisy_helper", "dumps", "spin_callback"} <= plain
    assert "encode" in plain or "iterencode" in plain
    filtered = _view_tree_functions(traces["plain"], tmp_path, "--filter", traces["rules"])
    # Removed from the view, except where a rare mixed stack (see RARE) kept one: the same
    # filter at export then shows it in at most 0.5% of samples.
    stacks = _collapsed(traces["plain"], "--filter", traces["rules"])
    removed = {"noisy_helper", "encode", "iterencode"}
    leftover = {n for n in removed if n in _frames(stacks) and _rare(stacks, n)}
    assert removed & filtered <= leftover, (removed & filtered, leftover)
    assert {"dumps", "encode_hook", "spin_callback", "work"} <= filtered


def test_info_shows_chain_and_counts(traces):
    r = run_pytrace("info", traces["filtered"])
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    assert "Filters:     redact value:iregex:" in text and "# default" in text
    assert "fold stdlib  # %s:2" % traces["rules"] in text
    assert "exclude function:literal:noisy_helper  # %s:3" % traces["rules"] in text
    j = json.loads(run_pytrace("info", traces["filtered"], "--json").stdout.decode())
    assert j["excluded"] > 0 and j["redacted"] == 0 and j["dropped"] == 0
    assert "fold stdlib" in j["filters"]
    plain = json.loads(run_pytrace("info", traces["plain"], "--json").stdout.decode())
    assert plain["excluded"] == 0
    assert plain["filters"].startswith("redact value:iregex:")   # the default is always there


def test_malformed_rule_file_exits_2_naming_the_line(tmp_path):
    bad = tmp_path / "bad.rules"
    bad.write_text("exclude module:ok.*\n\nfold  modul:typo\n")
    python = require("/usr/bin/python3")
    marker = tmp_path / "ran"
    for args in (("run", "--filter", str(bad), "-q", "--", python, "-c",
                  "open(%r, 'w')" % str(marker)),
                 ("attach", "--filter", str(bad), "1"),
                 ("export", "--filter", str(bad), "-f", "collapsed", "x.pytrace"),
                 ("view", "--filter", str(bad), "x.pytrace"),
                 ("config", "--filter", str(bad))):
        r = run_pytrace(*args, env=_env(tmp_path))
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.decode().splitlines()
        assert len(lines) == 1, lines
        assert "%s:3: unknown selector 'modul:typo'" % bad in lines[0]
    assert not marker.exists()   # run checked the rules before starting the command


def test_config_sources_and_precedence(tmp_path):
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    (home / ".config" / "pytrace.conf").write_text(
        "# user defaults\nrate = 250\nduration = 4\nname = fromfile\nblocking = yes\n")
    extra = tmp_path / "extra.conf"
    extra.write_text("duration = 6\n")
    env = _env(tmp_path, PYTRACE_RATE="500", PYTRACE_NAME="fromenv")
    r = run_pytrace("config", "--config", str(extra), "--name", "fromcli", env=env)
    assert r.returncode == 0, r.stderr
    rows = {}
    for line in r.stdout.decode().splitlines():
        if " = " in line and not line.startswith("#"):
            left, source = line.split(" # ", 1) if " # " in line else (line, "")
            key, value = left.split(" = ", 1)
            rows[key.strip()] = (value.strip(), source.strip())
    user = str(home / ".config" / "pytrace.conf")
    assert rows["rate"] == ("500", "env PYTRACE_RATE")
    assert rows["duration"] == ("6", "%s:1" % extra)
    assert rows["name"] == ("fromcli", "command line")
    assert rows["blocking"] == ("yes", "%s:5" % user)
    assert rows["jitter"] == ("0", "default")
    assert "redact value:iregex:" in r.stdout.decode()


def test_config_errors_name_key_and_source(tmp_path):
    r = run_pytrace("config", env=_env(tmp_path, PYTRACE_RATE="fast"))
    assert r.returncode == 2
    assert "env PYTRACE_RATE: rate = 'fast' is not valid" in r.stderr.decode()
    conf = tmp_path / "c.conf"
    conf.write_text("rate = 100\nsampling = 5\n")
    r = run_pytrace("config", "--config", str(conf), env=_env(tmp_path))
    assert r.returncode == 2
    assert "%s:2: unknown key 'sampling'" % conf in r.stderr.decode()
    r = run_pytrace("config", "--config", str(tmp_path / "missing.conf"), env=_env(tmp_path))
    assert r.returncode == 2 and b"cannot read config file" in r.stderr


def test_environment_configures_a_recording(tmp_path):
    """PYTRACE_OUTPUT_DIR, PYTRACE_FILTER and PYTRACE_NO_STDLIB reach a real recording."""
    python = require("/usr/bin/python3")
    rules = tmp_path / "x.rules"
    rules.write_text("exclude function:literal:noisy_helper\n")
    outdir = tmp_path / "out"
    outdir.mkdir()
    env = _env(tmp_path, PYTRACE_OUTPUT_DIR=str(outdir), PYTRACE_FILTER=str(rules),
               PYTRACE_NO_STDLIB="1", PYTRACE_DURATION="1")
    r = run_pytrace("run", "-q", "--", python, TARGET, "--seconds", "2", env=env)
    assert r.returncode == 0, r.stderr
    files = os.listdir(str(outdir))
    assert len(files) == 1 and files[0].endswith(".pytrace"), files
    trace = str(outdir / files[0])
    j = json.loads(run_pytrace("info", trace, "--json").stdout.decode())
    assert "fold stdlib  # --no-stdlib" in j["filters"]
    assert "exclude function:literal:noisy_helper  # %s:1" % rules in j["filters"]
    stacks = _collapsed(trace)
    assert _rare(stacks, "noisy_helper") and _rare(stacks, "iterencode")
    assert "dumps" in _frames(stacks)
