"""`pytrace export -f perfetto` and `-f chrome` on a real recording of threads.py: the Perfetto file
decodes with an independent decoder (`protoc --decode_raw`, which knows no schema) and carries
Perfetto's published field numbers where Perfetto expects them (Trace.packet = 1; TracePacket
timestamp = 8, trusted_packet_sequence_id = 10, track_event = 11, interned_data = 12,
sequence_flags = 13, clock_snapshot = 6, timestamp_clock_id = 58, track_descriptor = 60,
first_packet_on_sequence = 87; ...), its slices balance per track, and the Chrome JSON has X events
on the target's native thread ids with their names as metadata. Garbage and truncated inputs give
exit 7, or a truncation warning and exit 0, never a crash.
"""
import json
import os
import random
import shutil
import subprocess

import pytest

from conftest import WORKLOADS, Target, interpreters, py_version, run_pytrace

THREADS = os.path.join(WORKLOADS, "threads.py")
THREAD_NAMES = ("cpu-0", "cpu-1", "sleeper", "lock-holder", "lock-waiter")

# Perfetto's field numbers (google/perfetto protos/perfetto/trace/...).
TRACE_PACKET = 1
P_TIMESTAMP, P_SEQUENCE_ID, P_TRACK_EVENT, P_INTERNED = 8, 10, 11, 12
P_FLAGS, P_CLOCK_SNAPSHOT, P_CLOCK_ID, P_TRACK_DESCRIPTOR, P_FIRST = 13, 6, 58, 60, 87
TD_UUID, TD_PROCESS, TD_THREAD, TD_PARENT, TD_COUNTER = 1, 3, 4, 5, 8
TE_TYPE, TE_NAME_IID, TE_TRACK, TE_SOURCE_LOCATION_IID = 9, 10, 11, 34
SLICE_BEGIN, SLICE_END, COUNTER = 1, 2, 4
ID_EVENT_NAMES, ID_SOURCE_LOCATIONS = 2, 4
MONOTONIC = 3


def _python():
    """A Python whose threading has native_id (3.8+): Debian's own first, as every machine has it."""
    found = [path for _, path in interpreters() if os.path.exists(path)]
    found.sort(key=lambda path: not path.startswith("/usr/bin/"))
    for path in found:
        if py_version(path) >= (3, 8):
            return path
    pytest.skip("no Python 3.8+ interpreter found")


def _protoc():
    protoc = shutil.which("protoc")
    if not protoc:
        pytest.fail("protoc not found: run scripts/setup.d/perfetto.sh (Debian protobuf-compiler)")
    return protoc


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """One second of threads.py; the handshake says each thread's native id."""
    d = tmp_path_factory.mktemp("pf")
    target = Target([_python(), THREADS, "--seconds", "4"])
    try:
        path = str(d / "threads.pytrace")
        r = run_pytrace("attach", target.pid, "-d", "1", "-o", path, "-q")
        assert r.returncode == 0, r.stderr.decode()
    finally:
        target.close()
    return {"path": path, "pid": target.info["pid"], "tids": target.info["threads"], "dir": d}


def _export(src, fmt, out, *extra):
    r = run_pytrace("export", src, "-f", fmt, "-o", out, *extra)
    assert r.returncode >= 0, "export -f %s died of signal %d" % (fmt, -r.returncode)
    return r


# ---- protoc --decode_raw ------------------------------------------------------------------------

def _decode_raw(path):
    with open(path, "rb") as f:
        r = subprocess.run([_protoc(), "--decode_raw"], stdin=f, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
    assert r.returncode == 0, "protoc --decode_raw rejects %s: %s" % (path, r.stderr.decode())
    return _parse_raw(r.stdout.decode("utf-8", "replace"))


def _parse_raw(text):
    """decode_raw's text as nested lists of (field number, value string or list of children)."""
    root = []
    stack = [root]
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        if s == "}":
            stack.pop()
        elif s.endswith("{"):
            children = []
            stack[-1].append((int(s[:-1]), children))
            stack.append(children)
        else:
            key, _, value = s.partition(": ")
            stack[-1].append((int(key), value))
    assert len(stack) == 1, "unbalanced decode_raw output"
    return root


def _get(node, field):
    return [v for f, v in node if f == field]


def _one(node, field):
    values = _get(node, field)
    assert len(values) == 1, (field, node)
    return values[0]


def _text(value):
    """A string field (decode_raw prints it quoted; one that happens to parse as a message is a
    list, which never equals a string)."""
    return value[1:-1] if isinstance(value, str) and value.startswith('"') else value


@pytest.fixture(scope="module")
def perfetto(recording):
    out = str(recording["dir"] / "threads.perfetto-trace")
    r = _export(recording["path"], "perfetto", out)
    assert r.returncode == 0, r.stderr.decode()
    root = _decode_raw(out)
    assert root and all(f == TRACE_PACKET for f, _ in root), "a Trace holds only packet = 1"
    return [children for _, children in root]


def test_perfetto_first_packet_sets_monotonic_clock_and_sequence(perfetto):
    first = perfetto[0]
    snap = _one(first, P_CLOCK_SNAPSHOT)
    assert _one(snap, 2) == str(MONOTONIC)                     # primary_trace_clock
    clocks = {_one(c, 1): _one(c, 2) for c in _get(snap, 1)}   # clock_id: timestamp
    assert str(MONOTONIC) in clocks and "1" in clocks           # MONOTONIC and REALTIME
    assert _one(first, P_FIRST) == "1"
    assert int(_one(first, P_FLAGS)) & 1                        # SEQ_INCREMENTAL_STATE_CLEARED
    for packet in perfetto:
        assert _one(packet, P_SEQUENCE_ID) == "1"


def test_perfetto_describes_each_native_thread(perfetto, recording):
    threads, processes = {}, []
    for packet in perfetto:
        for d in _get(packet, P_TRACK_DESCRIPTOR):
            for t in _get(d, TD_THREAD):
                threads[int(_one(t, 2))] = (int(_one(t, 1)), _text(_one(t, 5)))
            processes += [int(_one(p, 1)) for p in _get(d, TD_PROCESS)]
    assert recording["pid"] in processes
    for name in THREAD_NAMES:
        tid = recording["tids"][name]
        assert tid in threads, (name, tid, sorted(threads))
        assert threads[tid] == (recording["pid"], name)


def test_perfetto_slices_balance_and_use_interned_names(perfetto):
    """Per track, BEGIN/END pair up in time order on the MONOTONIC clock; every name_iid and
    source_location_iid was defined by an earlier (or the same) packet."""
    names, locations, open_, last, begins = {}, {}, {}, {}, 0
    for packet in perfetto:
        for interned in _get(packet, P_INTERNED):
            for n in _get(interned, ID_EVENT_NAMES):
                names[_one(n, 1)] = _text(_one(n, 2))
            for loc in _get(interned, ID_SOURCE_LOCATIONS):
                locations[_one(loc, 1)] = (_text(_one(loc, 2)), _text(_one(loc, 3)))
        for ev in _get(packet, P_TRACK_EVENT):
            assert _one(packet, P_CLOCK_ID) == str(MONOTONIC)
            ts, track, kind = int(_one(packet, P_TIMESTAMP)), _one(ev, TE_TRACK), int(_one(ev, TE_TYPE))
            if kind == COUNTER:
                continue
            assert ts >= last.get(track, 0), "events out of time order on a track"
            last[track] = ts
            if kind == SLICE_BEGIN:
                begins += 1
                assert _one(ev, TE_NAME_IID) in names
                assert _one(ev, TE_SOURCE_LOCATION_IID) in locations
                open_[track] = open_.get(track, 0) + 1
            elif kind == SLICE_END:
                assert open_.get(track, 0) > 0, "an END with no open BEGIN"
                open_[track] -= 1
    assert begins > 0
    assert all(v == 0 for v in open_.values()), "slices left open"
    assert "fib" in names.values()
    assert any(f.endswith("threads.py") and fn == "fib" for f, fn in locations.values())


def test_perfetto_counter_tracks(perfetto):
    counters = [d for p in perfetto for d in _get(p, P_TRACK_DESCRIPTOR) if _get(d, TD_COUNTER)]
    names = {_text(_one(d, 2)) for d in counters}
    assert "RSS" in names and "CPU %" in names
    assert all(_get(d, TD_PARENT) for d in counters), "counter tracks hang off a thread/process"


# ---- Chrome JSON --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chrome(recording):
    out = str(recording["dir"] / "threads.chrome.json")
    r = _export(recording["path"], "chrome", out)
    assert r.returncode == 0, r.stderr.decode()
    with open(out) as f:
        return json.load(f)


def test_chrome_x_events_on_native_thread_ids(chrome, recording):
    assert chrome["displayTimeUnit"] == "ms"
    events = chrome["traceEvents"]
    x = [e for e in events if e["ph"] == "X"]
    assert x
    native = set(recording["tids"].values())
    for name in ("cpu-0", "cpu-1"):
        tid = recording["tids"][name]
        fib = [e for e in x if e["tid"] == tid and e["name"] == "fib"]
        assert fib, "no fib calls on %s (tid %d)" % (name, tid)
        assert fib[0]["args"]["file"].endswith("threads.py")
        assert fib[0]["cat"] == "python" and fib[0]["pid"] == recording["pid"]
    main_tid = recording["pid"]
    assert {e["tid"] for e in x} <= native | {main_tid}
    for e in x:
        assert e["dur"] >= 0 and isinstance(e["ts"], float)


def test_chrome_thread_names_and_other_data(chrome, recording):
    names = {e["tid"]: e["args"]["name"] for e in chrome["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_name"}
    for name in THREAD_NAMES:
        assert names.get(recording["tids"][name]) == name
    assert any(e["ph"] == "M" and e["name"] == "process_name" for e in chrome["traceEvents"])
    other = chrome["otherData"]
    assert other["pid"] == recording["pid"] and other["python_version"].startswith("3.")
    # ts is CLOCK_MONOTONIC microseconds: the calls lie after the recording's start.
    start_us = other["start_mono_ns"] / 1000.0
    assert all(e["ts"] >= start_us - 1 for e in chrome["traceEvents"] if e["ph"] == "X")


def test_chrome_thread_filter_and_stdout(recording):
    r = run_pytrace("export", recording["path"], "-f", "chrome", "-o", "-", "--thread", "cpu-0")
    assert r.returncode == 0, r.stderr.decode()
    doc = json.loads(r.stdout.decode())
    tids = {e["tid"] for e in doc["traceEvents"] if e["ph"] == "X"}
    assert tids == {recording["tids"]["cpu-0"]}


# ---- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["perfetto", "chrome"])
def test_garbage_input_exits_7(fmt, tmp_path):
    rng = random.Random(7)
    for i, blob in enumerate([b"", b"PYTRACE1", b"PYTRACE1" + bytes(rng.randrange(256) for _ in range(4096)),
                              bytes(rng.randrange(256) for _ in range(4096))]):
        src = tmp_path / ("garbage%d.pytrace" % i)
        src.write_bytes(blob)
        r = _export(str(src), fmt, str(tmp_path / "out"))
        assert r.returncode == 7, (blob[:16], r.returncode, r.stderr)
        assert r.stderr.decode().strip(), "no message for a corrupt file"


@pytest.mark.parametrize("fmt", ["perfetto", "chrome"])
def test_truncated_input_warns_or_exits_7(fmt, recording, tmp_path):
    with open(recording["path"], "rb") as f:
        data = f.read()
    for cut in sorted({8, 64, len(data) // 3, len(data) // 2, len(data) - 1}):
        src = tmp_path / ("cut%d.pytrace" % cut)
        src.write_bytes(data[:cut])
        out = tmp_path / ("cut%d.out" % cut)
        r = _export(str(src), fmt, str(out))
        if r.returncode == 7:
            continue
        assert r.returncode == 0, (cut, r.returncode, r.stderr)
        assert b"truncated" in r.stderr, (cut, r.stderr)
        if fmt == "perfetto":
            _decode_raw(str(out))
        else:
            with open(str(out)) as f:
                json.load(f)
