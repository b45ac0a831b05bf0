#!/usr/bin/env python3
"""gen_opcodes.py — build readers/opcodes_gen.c: the bytecode facts readers/loops.c needs.

To find a code object's backward jumps (loops), pytrace scans its bytecode. What an instruction
looks like differs per CPython minor version: its encoding, the EXTENDED_ARG number, which opcodes
jump (absolute or relative, forward or backward) and in what unit, how many inline cache units follow
an opcode (3.11+), and — because 3.11+ co_code_adaptive holds the SPECIALIZED and INSTRUMENTED forms
the interpreter rewrote in place — which base opcode every such form stands for. This script asks
every pyenv interpreter (one per minor version, newest patch release wins) for those facts through
its own opcode/dis modules, cross-checks them against the interpreter's installed headers (the
opcode numbers, and for 3.11+ the _PyOpcode_Deopt/_PyOpcode_Caches tables compiled from
internal/pycore_opcode.h or pycore_opcode_metadata.h), and writes one struct py_opcodes per version.
Facts only: no CPython code is copied.

Facts that are semantics rather than tables (set here by version, each with its reason):
  - INSTRUMENTED_LINE, INSTRUMENTED_INSTRUCTION (3.12+) and ENTER_EXECUTOR (3.13+) replace an
    instruction whose real opcode lives elsewhere (monitoring data, an executor): HIDDEN.
  - INSTRUMENTED_<X> otherwise behaves as <X> with <X>'s cache entries: deopt to <X>.
  - YIELD_FROM (3.6-3.10) re-executes itself: while suspended the frame points one unit before it.
  - CONTINUE_LOOP (2.7-3.7) inside try/finally jumps to its target only once the finally block ends.
  - CALL_FINALLY (3.8) runs a finally block as a subroutine that returns to the next instruction.
  - 3.11's exception tables send an exception in the POP_TOP of `COPY 3; POP_EXCEPT; RERAISE 1;
    POP_TOP; POP_EXCEPT` back to the COPY (the only backward exception edges 3.11 emits, all of
    that shape; 3.12+ emit none; checked over the stdlib by gen_loop_fixtures.py --sweep).

Usage (from anywhere; stdlib only, needs gcc for the header cross-check):
    python3 scripts/gen_opcodes.py            # regenerate readers/opcodes_gen.c
    python3 scripts/gen_opcodes.py --check    # write nothing; exit 1 if it is stale
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
from subprocess import PIPE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_C = os.path.join("readers", "opcodes_gen.c")

# Bits of py_opcodes.flags[] (readers/opcodes.h).
F = {
    "JUMP_ABS": 0x01, "JUMP_REL_FWD": 0x02, "JUMP_REL_BACK": 0x04, "HIDDEN": 0x08,
    "KNOWN": 0x10, "REWINDS": 0x20, "DEFERRED": 0x40, "FINALLY_CALL": 0x80,
}
HIDDEN_NAMES = ("INSTRUMENTED_LINE", "INSTRUMENTED_INSTRUCTION", "ENTER_EXECUTOR")
NOT_INSTRUCTIONS = ("CACHE", "RESERVED")   # never an instruction in real bytecode

# Runs under each interpreter (2.7-compatible): prints the version's opcode facts as JSON.
PROBE = r'''
import dis, json, opcode, sys
real = dict((k, v) for k, v in opcode.opmap.items() if v < 256)
facts = {
    "version": list(sys.version_info[:3]), "hexversion": sys.hexversion,
    "opmap": real, "have_argument": opcode.HAVE_ARGUMENT,
    "hasjabs": [o for o in getattr(dis, "hasjabs", []) if o < 256],
    "hasjrel": [o for o in dis.hasjrel if o < 256],
    "caches": {}, "specialized": {}, "valid": None,
}
ice = getattr(opcode, "_inline_cache_entries", None)
if isinstance(ice, dict):
    facts["caches"] = dict((k, n) for k, n in ice.items() if n and k in real)
elif ice is not None:
    facts["caches"] = dict((opcode.opname[i], n) for i, n in enumerate(ice) if n)
specs = getattr(opcode, "_specializations", None)
if specs:
    numbers = getattr(opcode, "_specialized_opmap", None) or dis._all_opmap
    for base, family in specs.items():
        for name in family:
            facts["specialized"][name] = [numbers[name], base]
try:
    import _opcode
    if hasattr(_opcode, "is_valid"):
        facts["valid"] = [o for o in range(256) if _opcode.is_valid(o)]
except ImportError:
    pass
print(json.dumps(facts))
'''

# Dumps _PyOpcode_Deopt and _PyOpcode_Caches from a 3.11+ interpreter's internal headers.
HEADER_PROBE = r'''
#define Py_BUILD_CORE 1
#define NEED_OPCODE_TABLES 1
#define NEED_OPCODE_METADATA 1
#include "Python.h"
#include "internal/%s"
#include <stdio.h>
int main(void)
{
    for (int i = 0; i < 256; i++)
        printf("%%d %%d %%d\n", i, _PyOpcode_Deopt[i], _PyOpcode_Caches[i]);
    return 0;
}
'''


def find_pyenv_root(arg):
    if arg:
        return arg
    try:
        r = subprocess.run(["pyenv", "root"], stdout=PIPE, stderr=PIPE, universal_newlines=True)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip()
    except OSError:
        pass
    return os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))


def find_interpreters(pyenv_root):
    """{(major, minor): (full version, prefix, include dir)}, newest patch release per minor."""
    found = {}
    for prefix in sorted(glob.glob(os.path.join(pyenv_root, "versions", "*"))):
        mo = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", os.path.basename(prefix))
        if not mo:
            continue  # free-threaded (3.13t), dev or virtualenv names
        ver = (int(mo.group(1)), int(mo.group(2)))
        if ver < (2, 7) or (3, 0) <= ver < (3, 6):
            continue
        incs = sorted(glob.glob(os.path.join(prefix, "include", "python%d.%d*" % ver)))
        patch = int(mo.group(3))
        if ver not in found or found[ver][3] < patch:
            found[ver] = (os.path.basename(prefix), prefix, incs[0] if incs else None, patch)
    return {v: t[:3] for v, t in sorted(found.items())}


def probe(prefix):
    exe = os.path.join(prefix, "bin", "python")
    r = subprocess.run([exe, "-c", PROBE], stdout=PIPE, stderr=PIPE, universal_newlines=True)
    if r.returncode != 0:
        sys.exit("gen_opcodes: %s failed:\n%s" % (exe, r.stderr))
    return json.loads(r.stdout)


def build(ver, facts):
    """The struct py_opcodes contents for one version, as plain Python data."""
    opmap = facts["opmap"]
    names = {}
    deopt = [0] * 256
    known = [False] * 256
    for name, op in opmap.items():
        if name in NOT_INSTRUCTIONS:
            continue
        names[op] = name
        deopt[op] = op
        known[op] = True
    for name, (op, base) in facts["specialized"].items():
        assert op < 256 and not known[op], "%s: specialized %s=%d collides" % (ver, name, op)
        names[op] = name
        deopt[op] = opmap[base]
        known[op] = True
    hidden = set()
    for name, op in opmap.items():
        if name in HIDDEN_NAMES:
            hidden.add(op)
        elif name.startswith("INSTRUMENTED_"):
            base = name[len("INSTRUMENTED_"):]
            if base not in opmap:
                sys.exit("gen_opcodes: %d.%d: %s has no base opcode" % (ver + (name,)))
            deopt[op] = opmap[base]
    base_caches = dict((opmap[n], c) for n, c in facts["caches"].items())
    jabs, jrel = set(facts["hasjabs"]), set(facts["hasjrel"])
    caches = [0] * 256
    flags = [0] * 256
    for op in range(256):
        if not known[op]:
            continue
        b = deopt[op]
        bname = names[b]
        caches[op] = base_caches.get(b, 0)
        f = F["KNOWN"]
        if op in hidden:
            f |= F["HIDDEN"]
            caches[op] = 0
        elif b in jabs:
            f |= F["JUMP_ABS"]
        elif b in jrel:
            f |= F["JUMP_REL_BACK"] if "JUMP_BACKWARD" in bname else F["JUMP_REL_FWD"]
        if bname == "YIELD_FROM":
            f |= F["REWINDS"]
        if bname == "CONTINUE_LOOP":
            f |= F["DEFERRED"]
        if bname == "CALL_FINALLY":
            f |= F["FINALLY_CALL"]
        flags[op] = f
    t = {
        "ver": ver, "full": ".".join(map(str, facts["version"])), "hexversion": facts["hexversion"],
        "encoding": "OPC_ENC_BYTES27" if ver < (3, 0) else "OPC_ENC_WORDS",
        "have_argument": facts["have_argument"], "extended_arg": opmap["EXTENDED_ARG"],
        "jump_unit": 1 if ver < (3, 10) else 2,
        "deopt": deopt, "caches": caches, "flags": flags, "names": names, "hidden": hidden,
        "cleanup": None,
    }
    if ver == (3, 11):
        t["cleanup"] = [(opmap["COPY"], 3), (opmap["POP_EXCEPT"], 0), (opmap["RERAISE"], 1),
                        (opmap["POP_TOP"], 0), (opmap["POP_EXCEPT"], 0)]
    return t


def header_defines(inc, ver):
    """Opcode numbers #defined in the version's public opcode header: {name: number}."""
    path = os.path.join(inc, "opcode_ids.h" if ver >= (3, 13) else "opcode.h")
    out = {}
    with open(path) as f:
        for line in f:
            mo = re.match(r"#define\s+([A-Z_][A-Z0-9_]*)\s+(\d+)\s*$", line)
            if mo:
                out[mo.group(1)] = int(mo.group(2))
    return out


def opname_of(facts, op):
    for name, o in facts["opmap"].items():
        if o == op:
            return name
    return "<%d>" % op


def cross_check(ver, inc, t, facts, cc):
    """Exits when the Python-level facts disagree with what the interpreter was built from."""
    where = "gen_opcodes: %d.%d" % ver
    if not inc:
        print("%s: note: no headers installed, cross-check skipped" % where)
        return
    defs = header_defines(inc, ver)
    for op, name in t["names"].items():
        if name in defs and defs[name] != op:
            sys.exit("%s: %s is %d in dis/opcode but %d in the headers" % (where, name, op, defs[name]))
        if name not in defs and ver >= (3, 6):
            sys.exit("%s: %s (%d) is not #defined in the headers" % (where, name, op))
    if defs.get("HAVE_ARGUMENT", t["have_argument"]) != t["have_argument"]:
        sys.exit("%s: HAVE_ARGUMENT differs from the headers" % where)
    if facts["valid"] is not None:
        # _opcode.is_valid() knows every opcode the interpreter executes, minus INSTRUMENTED_LINE
        # (a placeholder), plus the non-instructions excluded here.
        ours = set(op for op in range(256) if t["flags"][op])
        odd = set(t["names"].get(op) or opname_of(facts, op) for op in ours ^ set(facts["valid"]))
        if odd - set(NOT_INSTRUCTIONS) - {"INSTRUMENTED_LINE"}:
            sys.exit("%s: known opcodes differ from _opcode.is_valid(): %s" % (where, sorted(odd)))
    if ver < (3, 11):
        return
    hdr = "pycore_opcode_metadata.h" if ver >= (3, 13) else "pycore_opcode.h"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "p.c")
        exe = os.path.join(tmp, "p")
        with open(src, "w") as f:
            f.write(HEADER_PROBE % hdr)
        r = subprocess.run([cc, "-I", inc, src, "-o", exe], stdout=PIPE, stderr=PIPE,
                           universal_newlines=True)
        if r.returncode != 0:
            sys.exit("%s: header probe failed:\n%s" % (where, r.stderr))
        rows = subprocess.run([exe], stdout=PIPE, universal_newlines=True, check=True).stdout
    hdeopt, hcaches = [0] * 256, [0] * 256
    for line in rows.split("\n"):
        if line:
            i, d, c = map(int, line.split())
            hdeopt[i], hcaches[i] = d, c
    for op in range(256):
        if not t["flags"][op] or t["names"][op].startswith("INSTRUMENTED_") or op in t["hidden"]:
            continue   # deopt chosen here (see the module docstring); the headers keep them as is
        if hdeopt[op] != t["deopt"][op]:
            sys.exit("%s: deopt[%s] = %d, headers say %d" % (where, t["names"][op], t["deopt"][op],
                                                             hdeopt[op]))
        if hcaches[hdeopt[op]] != t["caches"][op]:
            sys.exit("%s: caches of %s = %d, headers say %d" % (where, t["names"][op],
                                                                t["caches"][op], hcaches[hdeopt[op]]))


def c_rows(values, indent="        "):
    out = []
    for i in range(0, 256, 16):
        out.append(indent + ", ".join("%3d" % v for v in values[i:i + 16]) + ",  /* %d-%d */"
                   % (i, i + 15))
    return "\n".join(out)


def flag_expr(f):
    if not f:
        return "0"
    return "|".join("OPC_" + n for n, b in F.items() if f & b)


def describe(t):
    """Comment lines naming the opcodes that matter to the loop scan."""
    names, flags = t["names"], t["flags"]

    def named(bit, base_only=True):
        ops = [op for op in range(256) if flags[op] & bit and (not base_only or t["deopt"][op] == op)]
        return " ".join("%s(%d)" % (names.get(op, "?"), op) for op in ops) or "-"
    nspec = sum(1 for op in range(256) if flags[op] and t["deopt"][op] != op
                and not names.get(op, "").startswith("INSTRUMENTED_"))
    ninst = sum(1 for op in range(256) if flags[op] and t["deopt"][op] != op
                and names.get(op, "").startswith("INSTRUMENTED_"))
    lines = [
        "absolute jumps: " + named(F["JUMP_ABS"]),
        "relative forward jumps: " + named(F["JUMP_REL_FWD"]),
        "relative backward jumps: " + named(F["JUMP_REL_BACK"]),
    ]
    for bit, what in (("REWINDS", "rewinds"), ("DEFERRED", "deferred"), ("FINALLY_CALL", "finally call"),
                      ("HIDDEN", "hidden")):
        if any(flags[op] & F[bit] for op in range(256)):
            lines.append("%s: %s" % (what, named(F[bit], base_only=False)))
    if nspec or ninst:
        lines.append("%d specialized and %d instrumented opcodes deopt to their base" % (nspec, ninst))
    if t["caches"] and any(t["caches"]):
        cs = sorted(set((names[t["deopt"][op]], t["caches"][op]) for op in range(256)
                        if t["caches"][op]))
        lines.append("cache units: " + " ".join("%s=%d" % c for c in cs))
    return lines


def wrap(text, width, indent):
    words, out, cur = text.split(" "), [], indent
    for w in words:
        if len(cur) + len(w) + 1 > width and cur.strip():
            out.append(cur.rstrip())
            cur = indent + "    "
        cur += w + " "
    out.append(cur.rstrip())
    return out


def render(tables, pyenv_root):
    o = []
    o.append("/*")
    o.append(" * opcodes_gen.c — GENERATED by scripts/gen_opcodes.py. Do not edit by hand.")
    o.append(" *")
    o.append(" * One struct py_opcodes per CPython minor version (readers/opcodes.h), from each")
    o.append(" * interpreter's own opcode/dis modules, cross-checked against its installed headers:")
    for t in tables:
        o.append(" *   %d.%-3d pyenv %s" % (t["ver"] + (t["full"],)))
    o.append(" * (pyenv root %s). Tables are indexed by the opcode byte found in" % pyenv_root)
    o.append(" * the bytecode: specialized and instrumented forms carry their base opcode's jump")
    o.append(" * kind and cache units. Semantic flags (HIDDEN, REWINDS, DEFERRED, FINALLY_CALL) and")
    o.append(" * the 3.11 cleanup pattern are set by the script, which says why.")
    o.append(" *")
    o.append(" * Regenerate: python3 scripts/gen_opcodes.py   (needs gcc and the pyenv interpreters)")
    o.append(" */")
    o.append('#include "readers/opcodes.h"')
    o.append("")
    o.append("#include <stddef.h>")
    o.append("")
    o.append("const struct py_opcodes py_opcodes_gen[] = {")
    for t in tables:
        o.append("    {")
        o.append("        /* %d.%d (pyenv %s)" % (t["ver"] + (t["full"],)))
        for line in describe(t):
            o.extend(wrap(line, 100, "         * "))
        o.append("         */")
        o.append("        .major = %d, .minor = %d, .hexversion = 0x%08x," % (t["ver"] + (t["hexversion"],)))
        o.append("        .encoding = %s, .have_argument = %d, .extended_arg = %d, .jump_unit = %d,"
                 % (t["encoding"], t["have_argument"], t["extended_arg"], t["jump_unit"]))
        if t["cleanup"]:
            ops = ", ".join(str(op) for op, _ in t["cleanup"])
            args = ", ".join(str(arg) for _, arg in t["cleanup"])
            o.append("        .exc_cleanup = true,   /* COPY 3; POP_EXCEPT; RERAISE 1; POP_TOP; POP_EXCEPT */")
            o.append("        .cleanup_op = {%s}, .cleanup_arg = {%s}," % (ops, args))
        o.append("        .deopt = {")
        o.append(c_rows(t["deopt"], "            "))
        o.append("        },")
        if any(t["caches"]):
            o.append("        .cache_entries = {")
            o.append(c_rows(t["caches"], "            "))
            o.append("        },")
        else:
            o.append("        .cache_entries = {0},   /* no inline caches before 3.11 */")
        o.append("        .flags = {")
        for op in range(256):
            if t["flags"][op]:
                o.append("            [%d] = %s,   /* %s */" % (op, flag_expr(t["flags"][op]),
                                                           t["names"].get(op, "?")))
        o.append("        },")
        o.append("    },")
    o.append("};")
    o.append("")
    o.append("const size_t py_opcodes_gen_count = sizeof py_opcodes_gen / sizeof py_opcodes_gen[0];")
    o.append("")
    o.append("const struct py_opcodes *opcodes_for_version(int major, int minor)")
    o.append("{")
    o.append("    for (size_t i = 0; i < py_opcodes_gen_count; i++)")
    o.append("        if (py_opcodes_gen[i].major == major && py_opcodes_gen[i].minor == minor)")
    o.append("            return &py_opcodes_gen[i];")
    o.append("    return NULL;")
    o.append("}")
    return "\n".join(o) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pyenv-root", help="default: `pyenv root`, $PYENV_ROOT or ~/.pyenv")
    ap.add_argument("--cc", default=os.environ.get("CC", "gcc"))
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if the committed output differs")
    args = ap.parse_args()

    pyenv_root = find_pyenv_root(args.pyenv_root)
    interps = find_interpreters(pyenv_root)
    if not interps:
        sys.exit("gen_opcodes: no interpreters under %s/versions" % pyenv_root)
    tables = []
    for ver, (full, prefix, inc) in interps.items():
        facts = probe(prefix)
        t = build(ver, facts)
        cross_check(ver, inc, t, facts, args.cc)
        tables.append(t)
        print("gen_opcodes: %d.%d from pyenv %s (%d opcodes)" % (ver + (full, sum(1 for f in t["flags"] if f))))
    data = render(tables, pyenv_root).encode()
    full = os.path.join(ROOT, OUT_C)
    old = open(full, "rb").read() if os.path.exists(full) else None
    if old == data:
        return 0
    if args.check:
        print("gen_opcodes: stale: %s (run python3 scripts/gen_opcodes.py)" % OUT_C)
        return 1
    with open(full, "wb") as f:
        f.write(data)
    print("gen_opcodes: wrote %s" % OUT_C)
    return 0


if __name__ == "__main__":
    sys.exit(main())
