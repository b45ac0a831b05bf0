#!/usr/bin/env python
"""gen_loop_fixtures.py - ground truth for readers/loops.c, from real interpreters.

Run with no argument under the host python3 to regenerate every fixture: it re-runs itself under
each pyenv interpreter (2.7, 3.6+; this file stays 2.7-compatible):

    python3 scripts/gen_loop_fixtures.py            # all pyenv versions
    /root/.pyenv/versions/3.12.1/bin/python scripts/gen_loop_fixtures.py --one   # just this one
    python3 scripts/gen_loop_fixtures.py --sweep /tmp/sweep   # whole-stdlib files, not committed

It compiles functions chosen to hit every way bytecode goes back (while/for loops, nested loops
with continue/break, try/except/finally and with inside loops, comprehensions, generators,
yield from / await / async for, `while True` opening a function - its head is offset 0 in 3.8-3.10
- and a jump long enough to need EXTENDED_ARG) plus a loopless function with several calls, and
writes tests/unit/fixtures/loops/py<major>.<minor>.txt with, for every code object:

    code <name> <form> <hex bytecode>
    expect ok|hidden
    edges <src> <target> ...        backward edges loops_scan must find, sorted; "-" when none
    calls <offset> ...              call sites; "-" when none
    probe <from> <to> <0|1> ...     may one call move from `from` back to `to`? (breadth-first
                                    search over instructions, fallthrough plus the edges)

Forms: "plain" is co_code. From 3.11 "adaptive" is the live co_code_adaptive after warming the
function up (quickened, specialized opcodes with filled caches, read through ctypes at the
co_code_adaptive offset of readers/layouts_gen.c and checked against code._co_code_adaptive; the
code object's ob_size is checked to be its length in code units). From 3.12 "monitored" is the same
with sys.monitoring JUMP/BRANCH/CALL events on (INSTRUMENTED_* opcodes), and "lines" with LINE
events on (INSTRUMENTED_LINE hides opcodes: expect hidden).

Expected edges come from the interpreter: dis jump targets (2.7: a decoder cross-checked against
dis.findlabels), the exception table (3.11+), plus the non-jump edges readers/loops.h documents
(YIELD_FROM, CONTINUE_LOOP, CALL_FINALLY).
"""
from __future__ import print_function

import binascii
import ctypes
import dis
import glob
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VER = sys.version_info[:2]

HELPERS = '''
def f(*a):
    return 0
g = h = f
class CM(object):
    def __enter__(self):
        return 1
    def __exit__(self, *a):
        return False
def cm(*a):
    return CM()
class FP(object):
    def __init__(self):
        self.lines = ["a b", "# c", "d # e", "f"]
    def readline(self):
        return self.lines.pop(0) if self.lines else ""
    def add(self, *a):
        pass
'''

SOURCES_ALL = '''
def loopless(a):
    x = f(a)
    y = g(x)
    z = h(y)
    return z

def while_loop(n):
    i = 0
    while i < n:
        f(i)
        i += 1
    return i

def for_loop(xs):
    t = 0
    for x in xs:
        t += f(x)
    return t

def nested(m):
    for i in m:
        for j in i:
            if j:
                continue
            if j is None:
                break
            f(j)
        g(i)
    h(m)

def try_in_loop(xs):
    for x in xs:
        try:
            f(x)
        except ValueError:
            g(x)
            continue
        finally:
            h(x)
    return xs

def continue_in_try_finally(xs):
    for x in xs:
        try:
            if x:
                continue
            f(x)
        finally:
            g(x)

def return_in_finally(a):
    try:
        return f(a)
    finally:
        g(a)

def with_in_loop(xs):
    for x in xs:
        with cm(x) as y:
            g(y)

def while_true_first(fp, strict=True):
    """Opens with `while 1:`, its head (a `continue` target) at offset 0 in 3.8-3.10."""
    while 1:
        line = fp.readline()
        if not line:
            break
        words = line.split()
        for i in range(len(words)):
            if words[i][0] == '#':
                del words[i:]
                break
        if not words:
            continue
        fp.add(words[0], strict)

def comprehension(xs):
    return [f(x) for x in xs if x]

def generator(xs):
    for x in xs:
        yield f(x)

def two_loops(a, b):
    for x in a:
        f(x)
    for y in b:
        g(y)
    h(a)

def while_else(n):
    while n > 0:
        n -= 1
        if f(n):
            break
    else:
        g(n)
    return n
'''

SOURCES_3 = '''
def delegating(xs):
    r = yield from generator(xs)
    f(r)
    yield from generator(xs)

class Aw(object):
    def __await__(self):
        return iter(())

class AIt(object):
    def __init__(self, n):
        self.n = n
    def __aiter__(self):
        return self
    async def __anext__(self):
        if self.n <= 0:
            raise StopAsyncIteration
        self.n -= 1
        return self.n

async def coroutine(n):
    await Aw()
    async for x in AIt(n):
        f(x)
        await Aw()
    return n
'''


def big_loop_src():
    # A loop body long enough that the jump back needs EXTENDED_ARG in every version.
    body = "".join("        v%d = f(i, %d)\n" % (k % 5, k) for k in range(300))
    return "def big_loop(n):\n    i = 0\n    while i < n:\n" + body + "        i += 1\n    return i\n"


# How to run each function to warm it up (3.11+ quickening): its arguments, and what it returns.
RUNS = {
    "loopless": (lambda ns: (1,), "call"),
    "while_loop": (lambda ns: (3,), "call"),
    "for_loop": (lambda ns: ([1, 2, 3],), "call"),
    "nested": (lambda ns: ([[0, 1, None], [2, 3]],), "call"),
    "try_in_loop": (lambda ns: ([1, 2],), "call"),
    "continue_in_try_finally": (lambda ns: ([0, 1],), "call"),
    "return_in_finally": (lambda ns: (1,), "call"),
    "with_in_loop": (lambda ns: ([1, 2],), "call"),
    "while_true_first": (lambda ns: (ns["FP"](),), "call"),
    "comprehension": (lambda ns: ([0, 1, 2],), "call"),
    "generator": (lambda ns: ([1, 2],), "gen"),
    "two_loops": (lambda ns: ([1], [2]), "call"),
    "while_else": (lambda ns: (3,), "call"),
    "delegating": (lambda ns: ([1, 2],), "gen"),
    "coroutine": (lambda ns: (3,), "coro"),
    "big_loop": (lambda ns: (2,), "call"),
}


def namespace():
    ns = {}
    exec(compile(HELPERS, "<helpers>", "exec"), ns)
    src = SOURCES_ALL + big_loop_src()
    if VER >= (3, 6):
        src += SOURCES_3
    exec(compile(src, "<loops>", "exec"), ns)
    return ns


def run(ns, name):
    args, kind = RUNS[name]
    r = ns[name](*args(ns))
    if kind == "gen":
        list(r)
    elif kind == "coro":
        try:
            r.send(None)
        except StopIteration:
            pass


def walk(co, prefix):
    yield prefix + co.co_name, co
    for c in co.co_consts:
        if hasattr(c, "co_code"):
            for item in walk(c, prefix + co.co_name + "."):
                yield item


# --- expected edges ------------------------------------------------------------------------------

def insns27(code):
    """(offset, opname, arg, next) of 2.7 bytecode; EXTENDED_ARG folded into the next."""
    import opcode
    out, i, ext = [], 0, 0
    code = bytearray(code)
    while i < len(code):
        op = code[i]
        if op >= opcode.HAVE_ARGUMENT:
            arg = code[i + 1] | code[i + 2] << 8 | ext
            ext, size = 0, 3
            if op == opcode.EXTENDED_ARG:
                ext = arg << 16
                i += 3
                continue
        else:
            arg, size = None, 1
        out.append((i, opcode.opname[op], arg, i + size))
        i += size
    return out


def jumps_of(co):
    """[(offset, opname, target)] for every jump, and the list of instruction offsets."""
    import opcode
    jabs, jrel = set(dis.hasjabs), set(dis.hasjrel)
    if VER < (3, 0):
        ins = insns27(co.co_code)
        out = []
        for off, name, arg, nxt in ins:
            op = opcode.opmap[name]
            if op in jabs:
                out.append((off, name, arg))
            elif op in jrel:
                out.append((off, name, nxt + arg))
        assert set(t for _, _, t in out) == set(dis.findlabels(co.co_code)), co.co_name
        return out, [(o, n) for o, n, _, _ in ins]
    ins = list(dis.get_instructions(co))
    out = [(i.offset, i.opname, i.argval) for i in ins if i.opcode in jabs or i.opcode in jrel]
    return out, [(i.offset, i.opname) for i in ins]


def expected_edges(co):
    n = len(co.co_code)
    jumps, ins = jumps_of(co)
    edges = set()
    for off, name, t in jumps:
        if name == "CONTINUE_LOOP":
            edges.add((n, t))       # completed from the end of a finally block
        elif t <= off:
            edges.add((off, t))
    for off, name in ins:
        if name == "CALL_FINALLY":
            edges.add((n, off + 2))  # the finally block returns to the next instruction
        if name == "YIELD_FROM" and off >= 2:
            edges.add((off, off - 2))  # a waiting frame points one unit back
    if VER >= (3, 11):
        for e in dis._parse_exception_table(co):
            if e.target < e.end:
                assert VER == (3, 11), "backward exception edge in %s" % co.co_name
                edges.add((e.end - 2, e.target))
    return sorted(edges), ins


def probes(co, edges, ins):
    """(from, to, reachable) over the interesting offsets, by breadth-first search."""
    n = len(co.co_code)
    offs = [o for o, _ in ins] + [n]
    succ = dict((o, [offs[k + 1]]) for k, o in enumerate(offs[:-1]))
    succ[n] = []
    for s, t in edges:
        succ[s].append(t)
    calls = [o for o, name in ins if name.startswith("CALL") and name not in
             ("CALL_FINALLY", "CALL_INTRINSIC_1", "CALL_INTRINSIC_2")]
    some = calls if len(calls) <= 24 else calls[::len(calls) // 12]   # big_loop: a sample
    points = sorted(set(some + [t for _, t in edges] + [s for s, _ in edges if s < n]
                        + [offs[0], offs[-2]]))
    out = []
    for a in points:
        seen, todo = set([a]), [a]
        while todo:
            for b in succ[todo.pop()]:
                if b not in seen:
                    seen.add(b)
                    todo.append(b)
        low = min(seen)
        for b in points:
            if b < a:
                out.append((a, b, 1 if low <= b else 0))
    return calls, out


# --- live bytecode (3.11+) -----------------------------------------------------------------------

def layout_offsets():
    """co_code_adaptive and ob_size of this version, from readers/layouts_gen.c."""
    with open(os.path.join(ROOT, "readers", "layouts_gen.c")) as fh:
        text = fh.read()
    at = text.index(".major = %d, .minor = %d," % VER)
    end = text.find(".major =", at + 10)
    block = text[at:end if end > 0 else len(text)]
    get = lambda f: int(re.search(r"\.%s = (-?\d+)," % f, block).group(1))
    return get("co_code_adaptive"), get("ob_size")


def live_code(co):
    off_adaptive, off_size = layout_offsets()
    n = len(co.co_code)
    units = ctypes.c_ssize_t.from_address(id(co) + off_size).value
    assert units * 2 == n, "ob_size of %s is %d, not %d code units" % (co.co_name, units, n // 2)
    raw = ctypes.string_at(id(co) + off_adaptive, n)
    assert raw == co._co_code_adaptive, "co_code_adaptive offset is wrong for %d.%d" % VER
    return raw


def hides(co, raw):
    import opcode
    hidden = set(opcode.opmap[k] for k in ("INSTRUMENTED_LINE", "INSTRUMENTED_INSTRUCTION",
                                           "ENTER_EXECUTOR") if k in opcode.opmap)
    return any(bytearray(raw)[o] in hidden for o, _ in jumps_of(co)[1])


def monitored(ns, name, codes, events):
    mon = sys.monitoring
    tool = 5
    mon.use_tool_id(tool, "gen_loop_fixtures")
    try:
        cb = lambda *a: None
        for ev in (mon.events.JUMP, mon.events.BRANCH, mon.events.CALL, mon.events.LINE):
            mon.register_callback(tool, ev, cb)
        for _, co in codes:
            mon.set_local_events(tool, co, events)
        run(ns, name)
        return [live_code(co) for _, co in codes]
    finally:
        for _, co in codes:
            mon.set_local_events(tool, co, 0)
        mon.free_tool_id(tool)


# --- output --------------------------------------------------------------------------------------

def record(fh, name, form, co, raw, expect):
    edges, ins = expected_edges(co)
    calls, pr = probes(co, edges, ins)
    fh.write("code %s %s %s\n" % (name, form, binascii.hexlify(raw).decode("ascii")))
    fh.write("expect %s\n" % expect)
    fh.write("edges %s\n" % (" ".join("%d %d" % e for e in edges) or "-"))
    fh.write("calls %s\n" % (" ".join(str(c) for c in calls) or "-"))
    fh.write("probe %s\n" % (" ".join("%d %d %d" % p for p in pr) or "-"))


def write_fixture(outdir):
    ns = namespace()
    path = os.path.join(outdir, "py%d.%d.txt" % VER)
    count, quickened = 0, 0
    with open(path, "w") as fh:
        fh.write("# generated by scripts/gen_loop_fixtures.py under CPython %s;\n"
                 "# expected edges from the interpreter's dis and exception tables.\n"
                 % sys.version.split()[0])
        fh.write("version %d %d\n" % VER)
        for name in sorted(RUNS):
            if name not in ns:
                continue
            codes = list(walk(ns[name].__code__, ""))
            for cname, co in codes:
                record(fh, cname, "plain", co, co.co_code, "ok")
                count += 1
            if VER < (3, 11):
                continue
            for _ in range(300):
                run(ns, name)
            for cname, co in codes:
                raw = live_code(co)
                quickened += raw != co.co_code
                record(fh, cname, "adaptive", co, raw, "hidden" if hides(co, raw) else "ok")
                count += 1
            if VER < (3, 12):
                continue
            ev = sys.monitoring.events
            for form, events in (("monitored", ev.JUMP | ev.BRANCH | ev.CALL), ("lines", ev.LINE)):
                for (cname, co), raw in zip(codes, monitored(ns, name, codes, events)):
                    expect = "hidden" if hides(co, raw) else "ok"
                    assert (expect == "hidden") == (form == "lines"), (cname, form)
                    record(fh, cname, form, co, raw, expect)
                    count += 1
    if VER >= (3, 11):
        assert quickened > 10, "warming up quickened only %d code objects" % quickened
    print("%s: %d records (%d quickened)" % (path, count, quickened))


def write_sweep(outdir):
    """Every code object of the stdlib's top-level modules, plain form (a one-off C check)."""
    lib = os.path.dirname(os.__file__)
    path = os.path.join(outdir, "py%d.%d.txt" % VER)
    count = 0
    with open(path, "w") as fh:
        fh.write("# stdlib sweep by scripts/gen_loop_fixtures.py under CPython %s\n"
                 % sys.version.split()[0])
        fh.write("version %d %d\n" % VER)
        for src in sorted(glob.glob(os.path.join(lib, "*.py"))):
            try:
                with open(src, "rb") as f:
                    top = compile(f.read(), src, "exec", dont_inherit=True)
            except (SyntaxError, ValueError):
                continue
            for cname, co in walk(top, os.path.basename(src) + ":"):
                edges, _ = expected_edges(co)
                fh.write("code %s plain %s\nexpect ok\nedges %s\ncalls -\nprobe -\n" % (
                    cname.replace(" ", "_"), binascii.hexlify(co.co_code).decode("ascii"),
                    " ".join("%d %d" % e for e in edges) or "-"))
                count += 1
    print("%s: %d code objects" % (path, count))


def drive_all(args):
    interps = {}
    for prefix in sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/*"))):
        mo = re.match(r"^(\d+)\.(\d+)\.(\d+)$", os.path.basename(prefix))
        if mo:
            v = tuple(int(x) for x in mo.groups())
            if v[:2] == (2, 7) or v[:2] >= (3, 6):
                if v[:2] not in interps or interps[v[:2]][0] < v[2]:
                    interps[v[:2]] = (v[2], os.path.join(prefix, "bin", "python"))
    for v in sorted(interps):
        subprocess.check_call([interps[v][1], os.path.abspath(__file__), "--one"] + args)


def main():
    argv = sys.argv[1:]
    sweep = "--sweep" in argv
    outdir = os.path.join(ROOT, "tests", "unit", "fixtures", "loops")
    if sweep:
        outdir = argv[argv.index("--sweep") + 1]
    if "--one" not in argv:
        return drive_all(argv)
    if not os.path.isdir(outdir):
        os.makedirs(outdir)
    if sweep:
        write_sweep(outdir)
    else:
        write_fixture(outdir)


if __name__ == "__main__":
    main()
