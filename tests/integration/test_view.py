"""`pytrace view`: one self-contained HTML page per recording, checked in Debian's headless Chromium
(driven by tests/integration/js/viewer/check_viewer.mjs with npm's playwright-core): it loads from
file:// with no console error and no request, search highlights the flame graph, timeline and call
tree, a clicked flame-graph frame fills the width, the theme toggle changes the page, the call tree
sorts by self and total time, the hide toggles re-aggregate. A synthetic 1,000,000-sample trace
gives a page under 30 MB that is ready in under 3 s. Bad input exits 7 (or warns, when truncated),
never crashes. The screenshots of docs/viewer.md (docs/img/viewer-*.png) are taken here.

Without node, Chromium or the test's npm packages these tests skip, naming what is missing (run
scripts/setup.d/viewer.sh); under CI they fail instead, so a green CI never means "not run".
"""
import json
import os
import resource
import shutil
import signal
import subprocess
import time

import pytest

from conftest import PYTRACE, ROOT, WORKLOADS, Target, interpreters, run_pytrace

JS_DIR = os.path.join(ROOT, "tests", "integration", "js", "viewer")
CHECK = os.path.join(JS_DIR, "check_viewer.mjs")
CHROMIUM = os.environ.get("PYTRACE_CHROMIUM", "/usr/bin/chromium")
BUILD = os.path.dirname(os.path.abspath(PYTRACE))
GEN = os.path.join(BUILD, "tests", "gen_view_trace")
BUNDLE = os.path.join(BUILD, "viewer.bundle.html")
SHOTS = os.path.join(ROOT, "docs", "img")
THREADS = os.path.join(WORKLOADS, "threads.py")
EVIL = "</script><!--<script>evil"   # a function name gen_view_trace writes

MAX_HTML_BYTES = 30 * 1024 * 1024
MAX_LOAD_MS = 3000


def _missing():
    """What the browser tests need and this machine lacks, or None."""
    if not shutil.which("node"):
        return "node not found (scripts/setup.d/viewer.sh installs it)"
    if not os.path.exists(BUNDLE):
        return "%s not built (npm was missing at build time: scripts/setup.d/viewer.sh)" % BUNDLE
    if not os.path.isdir(os.path.join(JS_DIR, "node_modules", "playwright-core")):
        return "playwright-core not installed in %s (scripts/setup.d/viewer.sh)" % JS_DIR
    if not os.path.exists(CHROMIUM):
        return "%s not found (apt-get install chromium)" % CHROMIUM
    return None


def need_browser():
    why = _missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


def check_viewer(*args, timeout=240):
    r = subprocess.run([shutil.which("node"), CHECK] + [str(a) for a in args], cwd=JS_DIR,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    assert r.returncode == 0, "check_viewer.mjs %s failed:\n%s" % (args[0], r.stderr.decode())
    return json.loads(r.stdout.decode())


def _python3():
    """A 3.11+ interpreter when there is one (qualified names such as Thread.run read better in
    the screenshots), else any Python 3."""
    found = [(name, path) for name, path in interpreters()
             if "2.7" not in name and os.path.exists(path)]
    for want in ("pyenv-3.12", "pyenv-3.11", "debian-3.11"):
        for name, path in found:
            if name == want:
                return path
    if found:
        return found[0][1]
    pytest.skip("no Python 3 interpreter found for threads.py")


@pytest.fixture(scope="module")
def threads_trace(tmp_path_factory):
    """threads.py recorded for 2 s (the target's stdout handshake says when its threads run)."""
    out = str(tmp_path_factory.mktemp("view") / "threads.pytrace")
    target = Target([_python3(), THREADS, "--seconds", "6"])
    try:
        r = run_pytrace("attach", target.pid, "-d", "2", "-o", out, "-q")
        assert r.returncode == 0, r.stderr.decode()
    finally:
        target.close()
    return out


@pytest.fixture(scope="module")
def threads_html(threads_trace):
    need_browser()
    html = threads_trace[:-len(".pytrace")] + ".html"
    r = run_pytrace("view", threads_trace, "-o", html)
    assert r.returncode == 0, r.stderr.decode()
    return html


@pytest.fixture(scope="module")
def seen(threads_html):
    """One browser session over the threads.py page: everything the functional tests check."""
    started = time.time()
    doc = check_viewer("functional", "--html", threads_html, "--search", "fib", "--shots", SHOTS)
    doc["started"] = started
    return doc


# ---- the page in a browser ------------------------------------------------------------------

def test_page_is_self_contained(threads_html):
    with open(threads_html, encoding="utf-8") as f:
        page = f.read()
    assert "<script src" not in page.lower()
    assert "<link rel=\"stylesheet\"" not in page.lower()
    assert "@@PYTRACE_DATA@@" not in page
    assert '"threads"' in page and "fib" in page


def test_loads_without_console_errors_or_requests(seen):
    assert seen["seen"] == {"consoleErrors": [], "pageErrors": [], "failedRequests": [],
                            "otherRequests": []}
    assert seen["load"]["readyMs"] > 0


def test_metadata_shows_target_python_and_counts(seen):
    meta = seen["meta"]
    for key in ("Target", "Python", "Command", "Host", "Start", "Duration", "Rate", "Samples",
                "Errors", "Truncated"):
        assert key in meta, meta
    assert "threads.py" in meta
    assert "Hz asked" in meta and "achieved" in meta


def test_search_highlights_flame_graph_timeline_and_call_tree(seen):
    s = seen["search"]
    assert s["count"].startswith("1 matching"), s["count"]
    assert s["flameHighlighted"] and set(s["flameHighlighted"]) == {"fib"}
    assert "fib" not in s["flameOthers"]
    assert s["timeline"]["highlighted"] > 0, s["timeline"]
    assert s["timeline"]["highlighted"] < s["timeline"]["drawn"]
    assert s["calltreeMatches"], s
    assert all(m.strip("▸▾ ").startswith("fib") for m in s["calltreeMatches"])


def test_flame_graph_click_zooms_frame_to_full_width(seen):
    z = seen["zoom"]
    assert "error" not in z, z
    assert z["before"]["w"] < z["width"] - 1
    assert z["after"]["x"] == 0
    assert abs(z["after"]["w"] - z["width"]) < 0.5
    assert z["zoomAfterRootClick"] == 0   # clicking the root zooms back out


def test_dark_toggle_changes_page_background(seen):
    assert seen["themeBefore"] != seen["themeAfter"]
    rgb = [int(x) for x in seen["themeAfter"].split("(")[1].split(")")[0].split(",")[:3]]
    assert sum(rgb) < 200, seen["themeAfter"]


@pytest.mark.parametrize("mode", ["tree", "flat"])
@pytest.mark.parametrize("key", ["self", "total"])
def test_call_tree_sorts_by_column(seen, mode, key):
    got = seen["sort"]["%s_%s" % (mode, key)]
    assert got["state"]["sortKey"] == key and not got["state"]["sortAsc"]
    rows = got["rows"]
    assert len(rows) > 3
    by_parent = {}
    for r in rows:   # top-down: siblings in order; by function: one list
        by_parent.setdefault(r["parent"], []).append(r[key])
    assert any(len(v) > 1 for v in by_parent.values())
    for values in by_parent.values():
        assert values == sorted(values, reverse=True), values


def test_hide_stdlib_and_idle_reaggregate(seen):
    t = seen["toggles"]
    assert 1 in t["before"]["kinds"]   # threading.py frames
    assert 1 not in t["noStdlib"]["kinds"]
    assert t["noStdlib"]["total"] == t["before"]["total"]   # their time goes to their callers
    assert 0 < t["noIdle"]["total"] < t["before"]["total"]


def test_timeline_wheel_zooms_and_drag_pans(seen):
    t = seen["timeline"]
    full = t["before"]["end"] - t["before"]["start"]
    zoomed = t["zoomed"]["end"] - t["zoomed"]["start"]
    assert zoomed < full * 0.9
    assert t["panned"]["start"] > t["zoomed"]["start"]   # dragged left: later times
    assert abs((t["panned"]["end"] - t["panned"]["start"]) - zoomed) < 1
    assert t["before"]["drawn"] > 0


def test_screenshots_of_the_three_views(seen):
    for name in ("viewer-timeline.png", "viewer-flamegraph.png", "viewer-calltree.png"):
        path = os.path.join(SHOTS, name)
        assert os.path.getsize(path) > 10000, path
        assert os.path.getmtime(path) >= seen["started"] - 1, path


# ---- large traces ---------------------------------------------------------------------------

def test_million_sample_trace_is_small_and_fast(tmp_path):
    need_browser()
    assert os.path.exists(GEN), "%s not built" % GEN
    trace = str(tmp_path / "big.pytrace")
    html = str(tmp_path / "big.html")
    r = subprocess.run([GEN, trace, "1000000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    t0 = time.time()
    r = run_pytrace("view", trace, "-o", html, timeout=300)
    view_s = time.time() - t0
    assert r.returncode == 0, r.stderr.decode()
    size = os.path.getsize(html)
    load = check_viewer("load", "--html", html, "--expect-function", EVIL)
    report = {"html_bytes": size, "view_s": round(view_s, 2), "load_wall_ms": load["wallMs"],
              "ready_ms": round(load["readyMs"]), "phases": load["counts"]["phases"]}
    os.makedirs(os.path.join(BUILD, "test-results"), exist_ok=True)
    with open(os.path.join(BUILD, "test-results", "view-perf.json"), "w") as f:
        json.dump(report, f)
    print("1M-sample page:", report)
    assert size < MAX_HTML_BYTES, report
    assert load["seen"] == {"consoleErrors": [], "pageErrors": [], "failedRequests": [],
                            "otherRequests": []}
    assert load["wallMs"] < MAX_LOAD_MS, report
    assert load["hasFunction"], "a function named %r did not survive the page" % EVIL
    assert load["counts"]["frames"] > 100 and load["counts"]["spans"]["drawn"] > 0


# ---- bad input and a missing viewer ---------------------------------------------------------

@pytest.mark.parametrize("content", [b"", b"not a trace at all\n", b"PYTRACE1" + b"\xff" * 64,
                                     os.urandom(4096)], ids=["empty", "text", "magic", "random"])
def test_garbage_input_exits_7(tmp_path, content):
    if not os.path.exists(BUNDLE):
        pytest.skip("viewer not built")
    path = tmp_path / "bad.pytrace"
    path.write_bytes(content)
    r = run_pytrace("view", path, "-o", tmp_path / "bad.html")
    assert r.returncode == 7, (r.returncode, r.stderr.decode())
    assert str(path) in r.stderr.decode()


def test_truncated_input_warns_and_still_opens(threads_trace, tmp_path):
    need_browser()
    data = open(threads_trace, "rb").read()
    results = []
    for cut in (len(data) // 2, len(data) - 3):
        part = tmp_path / ("cut%d.pytrace" % cut)
        part.write_bytes(data[:cut])
        html = str(tmp_path / ("cut%d.html" % cut))
        r = run_pytrace("view", part, "-o", html)
        assert r.returncode == 0, r.stderr.decode()
        assert "truncated" in r.stderr.decode()
        results.append(html)
    load = check_viewer("load", "--html", results[0])
    assert not load["seen"]["pageErrors"] and not load["seen"]["consoleErrors"], load["seen"]


def test_missing_viewer_says_how_to_build_it(tmp_path):
    lone = tmp_path / "bin" / "pytrace"
    lone.parent.mkdir()
    shutil.copy(PYTRACE, lone)
    env = dict(os.environ)
    env.pop("PYTRACE_VIEWER", None)
    r = run_pytrace("view", tmp_path / "x.pytrace", binary=str(lone), env=env)
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert len(err.strip().splitlines()) == 1, err
    assert "viewer was not built" in err and "npm" in err and "ninja -C build" in err


@pytest.mark.parametrize("content", [b"", b"<html>no placeholder</html>"], ids=["empty", "damaged"])
def test_unusable_viewer_bundle_is_reported(tmp_path, threads_trace, content):
    bundle = tmp_path / "viewer.bundle.html"
    bundle.write_bytes(content)
    env = dict(os.environ, PYTRACE_VIEWER=str(bundle))
    r = run_pytrace("view", threads_trace, "-o", tmp_path / "x.html", env=env)
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert str(bundle) in err and "ninja -C build" in err
    assert not (tmp_path / "x.html").exists()


def test_failed_write_leaves_no_partial_page(threads_trace, tmp_path):
    if not os.path.exists(BUNDLE):
        pytest.skip("viewer not built")
    out = tmp_path / "limited.html"

    def small_files():   # writes past 16 KiB fail with EFBIG instead of killing the process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))

    r = subprocess.run([PYTRACE, "view", threads_trace, "-o", str(out)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60, preexec_fn=small_files)
    assert r.returncode == 1, r.stderr.decode()
    assert b"cannot write" in r.stderr
    assert not out.exists()


def test_usage_errors():
    assert run_pytrace("view").returncode == 2
    assert run_pytrace("view", "a", "b").returncode == 2
    assert run_pytrace("view", "a", "--span-budget", "0").returncode == 2
    r = run_pytrace("view", "--help")
    assert r.returncode == 0 and b"usage: pytrace view" in r.stdout
