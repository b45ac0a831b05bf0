#!/usr/bin/env python3
"""gen_layouts.py — build readers/layouts_gen.c from installed CPython headers.

For every pyenv interpreter (one per minor version, the newest patch release wins) this writes a
small C program that includes that version's headers with -DPy_BUILD_CORE and prints offsetof() /
sizeof() for each field of struct py_layout (readers/layout.h), compiles and runs it, and emits one
designated-initializer entry per minor version. Version facts that are not offsets (frame model,
line-table kind, ...) are set here from the version or read from header macros/enums.

It also writes tests/unit/fixtures/debug_offsets_3_13.bin, the _Py_DebugOffsets image at the start
of the .PyRuntime section of pyenv's libpython3.13, and cross-checks Debian's /usr/include/python3.11
headers against the pyenv 3.11 table when they are installed.

Usage (from anywhere; stdlib only):
    python3 scripts/gen_layouts.py            # regenerate readers/layouts_gen.c and fixtures
    python3 scripts/gen_layouts.py --check    # exit 1 if the committed output is stale
"""

import argparse
import glob
import os
import re
import struct
import subprocess
import sys
import tempfile
from subprocess import PIPE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_C = os.path.join("readers", "layouts_gen.c")
OUT_FIXTURE = os.path.join("tests", "unit", "fixtures", "debug_offsets_3_13.bin")

HI = (3, 99)  # "and later" in the version ranges below


def rng(lo, hi, expr):
    return (lo, hi, expr)


# Every int32 offset field of struct py_layout, in struct order, with the C expression that gives it
# for a range of versions (inclusive). A version outside every range has no such field: -1.
OFFSETS = [
    # _PyRuntimeState (3.7+)
    ("rt_interpreters_head", [rng((3, 7), HI, "offsetof(_PyRuntimeState, interpreters.head)")]),
    ("rt_gilstate_current", [rng((3, 7), (3, 11), "offsetof(_PyRuntimeState, gilstate.tstate_current)")]),
    ("rt_gil", [rng((3, 7), (3, 11), "offsetof(_PyRuntimeState, ceval.gil)")]),
    ("rt_size", [rng((3, 7), HI, "sizeof(_PyRuntimeState)")]),
    # struct _gil_runtime_state (3.7+)
    ("gil_locked", [rng((3, 7), HI, "offsetof(struct _gil_runtime_state, locked)")]),
    ("gil_last_holder", [rng((3, 7), HI, "offsetof(struct _gil_runtime_state, last_holder)")]),
    # PyInterpreterState
    ("is_next", [rng((2, 7), HI, "offsetof(PyInterpreterState, next)")]),
    ("is_tstate_head", [rng((2, 7), (3, 10), "offsetof(PyInterpreterState, tstate_head)"),
                        rng((3, 11), HI, "offsetof(PyInterpreterState, threads.head)")]),
    ("is_id", [rng((3, 7), HI, "offsetof(PyInterpreterState, id)")]),
    ("is_modules", [rng((2, 7), (3, 11), "offsetof(PyInterpreterState, modules)"),
                    rng((3, 12), HI, "offsetof(PyInterpreterState, imports.modules)")]),
    ("is_ceval_gil", [rng((3, 12), HI, "offsetof(PyInterpreterState, ceval.gil)")]),
    ("is_size", [rng((2, 7), HI, "sizeof(PyInterpreterState)")]),
    # PyThreadState
    ("ts_prev", [rng((3, 0), HI, "offsetof(PyThreadState, prev)")]),
    ("ts_next", [rng((2, 7), HI, "offsetof(PyThreadState, next)")]),
    ("ts_interp", [rng((2, 7), HI, "offsetof(PyThreadState, interp)")]),
    ("ts_frame", [rng((2, 7), (3, 10), "offsetof(PyThreadState, frame)")]),
    ("ts_recursion_depth", [rng((2, 7), (3, 10), "offsetof(PyThreadState, recursion_depth)")]),
    ("ts_cframe", [rng((3, 11), (3, 12), "offsetof(PyThreadState, cframe)")]),
    ("ts_current_frame", [rng((3, 13), HI, "offsetof(PyThreadState, current_frame)")]),
    ("ts_thread_id", [rng((2, 7), HI, "offsetof(PyThreadState, thread_id)")]),
    ("ts_native_thread_id", [rng((3, 11), HI, "offsetof(PyThreadState, native_thread_id)")]),
    ("ts_datastack_chunk", [rng((3, 11), HI, "offsetof(PyThreadState, datastack_chunk)")]),
    ("ts_datastack_top", [rng((3, 11), HI, "offsetof(PyThreadState, datastack_top)")]),
    ("ts_size", [rng((2, 7), HI, "sizeof(PyThreadState)")]),
    # _PyCFrame (3.11-3.12)
    ("cf_current_frame", [rng((3, 11), (3, 12), "offsetof(_PyCFrame, current_frame)")]),
    # PyFrameObject, only where the frame model walks frame objects
    ("fo_back", [rng((2, 7), (3, 10), "offsetof(PyFrameObject, f_back)")]),
    ("fo_code", [rng((2, 7), (3, 10), "offsetof(PyFrameObject, f_code)")]),
    ("fo_lasti", [rng((2, 7), (3, 10), "offsetof(PyFrameObject, f_lasti)")]),
    ("fo_lineno", [rng((2, 7), (3, 10), "offsetof(PyFrameObject, f_lineno)")]),
    ("fo_localsplus", [rng((2, 7), (3, 10), "offsetof(PyFrameObject, f_localsplus)")]),
    ("fo_size", [rng((2, 7), (3, 10), "offsetof(PyFrameObject, f_localsplus)")]),
    # _PyInterpreterFrame (3.11+)
    ("if_code", [rng((3, 11), (3, 12), "offsetof(_PyInterpreterFrame, f_code)"),
                 rng((3, 13), HI, "offsetof(_PyInterpreterFrame, f_executable)")]),
    ("if_previous", [rng((3, 11), HI, "offsetof(_PyInterpreterFrame, previous)")]),
    ("if_instr", [rng((3, 11), (3, 12), "offsetof(_PyInterpreterFrame, prev_instr)"),
                  rng((3, 13), HI, "offsetof(_PyInterpreterFrame, instr_ptr)")]),
    ("if_owner", [rng((3, 11), HI, "offsetof(_PyInterpreterFrame, owner)")]),
    ("if_localsplus", [rng((3, 11), HI, "offsetof(_PyInterpreterFrame, localsplus)")]),
    ("if_size", [rng((3, 11), HI, "sizeof(_PyInterpreterFrame)")]),
    ("if_is_entry", [rng((3, 11), (3, 11), "offsetof(_PyInterpreterFrame, is_entry)")]),
    # PyCodeObject
    ("co_argcount", [rng((2, 7), HI, "offsetof(PyCodeObject, co_argcount)")]),
    ("co_posonlyargcount", [rng((3, 8), HI, "offsetof(PyCodeObject, co_posonlyargcount)")]),
    ("co_kwonlyargcount", [rng((3, 6), HI, "offsetof(PyCodeObject, co_kwonlyargcount)")]),
    ("co_nlocals", [rng((2, 7), HI, "offsetof(PyCodeObject, co_nlocals)")]),
    ("co_flags", [rng((2, 7), HI, "offsetof(PyCodeObject, co_flags)")]),
    ("co_firstlineno", [rng((2, 7), HI, "offsetof(PyCodeObject, co_firstlineno)")]),
    ("co_code", [rng((2, 7), (3, 10), "offsetof(PyCodeObject, co_code)")]),
    ("co_code_adaptive", [rng((3, 11), HI, "offsetof(PyCodeObject, co_code_adaptive)")]),
    ("co_varnames", [rng((2, 7), (3, 10), "offsetof(PyCodeObject, co_varnames)")]),
    ("co_cellvars", [rng((2, 7), (3, 10), "offsetof(PyCodeObject, co_cellvars)")]),
    ("co_freevars", [rng((2, 7), (3, 10), "offsetof(PyCodeObject, co_freevars)")]),
    ("co_localsplusnames", [rng((3, 11), HI, "offsetof(PyCodeObject, co_localsplusnames)")]),
    ("co_localspluskinds", [rng((3, 11), HI, "offsetof(PyCodeObject, co_localspluskinds)")]),
    ("co_filename", [rng((2, 7), HI, "offsetof(PyCodeObject, co_filename)")]),
    ("co_name", [rng((2, 7), HI, "offsetof(PyCodeObject, co_name)")]),
    ("co_qualname", [rng((3, 11), HI, "offsetof(PyCodeObject, co_qualname)")]),
    ("co_linetable", [rng((2, 7), (3, 9), "offsetof(PyCodeObject, co_lnotab)"),
                      rng((3, 10), HI, "offsetof(PyCodeObject, co_linetable)")]),
    ("co_size", [rng((2, 7), HI, "sizeof(PyCodeObject)")]),
    # Object basics
    ("ob_type", [rng((2, 7), HI, "offsetof(PyObject, ob_type)")]),
    ("ob_size", [rng((2, 7), HI, "offsetof(PyVarObject, ob_size)")]),
    ("tp_name", [rng((2, 7), HI, "offsetof(PyTypeObject, tp_name)")]),
    ("tp_flags", [rng((2, 7), HI, "offsetof(PyTypeObject, tp_flags)")]),
    ("tuple_item", [rng((2, 7), HI, "offsetof(PyTupleObject, ob_item)")]),
    ("list_item", [rng((2, 7), HI, "offsetof(PyListObject, ob_item)")]),
    ("bytes_sval", [rng((2, 7), (2, 7), "offsetof(PyStringObject, ob_sval)"),
                    rng((3, 0), HI, "offsetof(PyBytesObject, ob_sval)")]),
    ("float_fval", [rng((2, 7), HI, "offsetof(PyFloatObject, ob_fval)")]),
    ("long_digit", [rng((2, 7), (3, 11), "offsetof(PyLongObject, ob_digit)"),
                    rng((3, 12), HI, "offsetof(PyLongObject, long_value.ob_digit)")]),
    ("long_tag", [rng((3, 12), HI, "offsetof(PyLongObject, long_value.lv_tag)")]),
    # Strings
    ("uni_length", [rng((2, 7), (2, 7), "offsetof(PyUnicodeObject, length)"),
                    rng((3, 0), HI, "offsetof(PyASCIIObject, length)")]),
    ("uni_state", [rng((3, 0), HI, "offsetof(PyASCIIObject, state)")]),
    ("uni_ascii_size", [rng((3, 0), HI, "sizeof(PyASCIIObject)")]),
    ("uni_compact_size", [rng((3, 0), HI, "sizeof(PyCompactUnicodeObject)")]),
    ("uni_legacy_data", [rng((2, 7), (2, 7), "offsetof(PyUnicodeObject, str)"),
                         rng((3, 0), HI, "offsetof(PyUnicodeObject, data)")]),
    # Dicts. 3.6-3.10 keep PyDictKeysObject in Objects/dict-common.h, which is not installed: the
    # program declares a replica (struct layout_dk36, below) and measures that instead.
    ("dict_ma_used", [rng((2, 7), HI, "offsetof(PyDictObject, ma_used)")]),
    ("dict_ma_keys", [rng((3, 6), HI, "offsetof(PyDictObject, ma_keys)")]),
    ("dict_ma_values", [rng((3, 6), HI, "offsetof(PyDictObject, ma_values)")]),
    ("dk_size", [rng((3, 6), (3, 10), "offsetof(struct layout_dk36, dk_size)"),
                 rng((3, 11), HI, "offsetof(PyDictKeysObject, dk_log2_size)")]),
    ("dk_kind", [rng((3, 11), HI, "offsetof(PyDictKeysObject, dk_kind)")]),
    ("dk_nentries", [rng((3, 6), (3, 10), "offsetof(struct layout_dk36, dk_nentries)"),
                     rng((3, 11), HI, "offsetof(PyDictKeysObject, dk_nentries)")]),
    ("dk_indices", [rng((3, 6), (3, 10), "offsetof(struct layout_dk36, dk_indices)"),
                    rng((3, 11), HI, "offsetof(PyDictKeysObject, dk_indices)")]),
    ("dict27_table", [rng((2, 7), (2, 7), "offsetof(PyDictObject, ma_table)")]),
    ("dict27_mask", [rng((2, 7), (2, 7), "offsetof(PyDictObject, ma_mask)")]),
    ("dk_entry_size", [rng((2, 7), (2, 7), "sizeof(PyDictEntry)"),
                       rng((3, 6), (3, 10), "3 * sizeof(void *)"),
                       rng((3, 11), HI, "sizeof(PyDictKeyEntry)")]),
    ("dk_unicode_entry_size", [rng((3, 11), HI, "sizeof(PyDictUnicodeEntry)")]),
    ("dict_values_items", [rng((3, 6), (3, 10), "0"),
                           rng((3, 11), HI, "offsetof(PyDictValues, values)")]),
    # Types, modules, instances. PyModuleObject is private before 3.11 (Objects/moduleobject.c):
    # md_dict is its first field after the object header there.
    ("tp_basicsize", [rng((2, 7), HI, "offsetof(PyTypeObject, tp_basicsize)")]),
    ("tp_dictoffset", [rng((2, 7), HI, "offsetof(PyTypeObject, tp_dictoffset)")]),
    ("ht_cached_keys", [rng((3, 6), HI, "offsetof(PyHeapTypeObject, ht_cached_keys)")]),
    ("md_dict", [rng((2, 7), (3, 10), "sizeof(PyObject)"),
                 rng((3, 11), HI, "offsetof(PyModuleObject, md_dict)")]),
    # 3.12 has no MANAGED_DICT_OFFSET macro: its _PyObject_DictOrValuesPointer() is obj - 3 words.
    ("managed_dict", [rng((3, 11), (3, 11), "MANAGED_DICT_OFFSET"),
                      rng((3, 12), (3, 12), "-3 * (long)sizeof(PyObject *)"),
                      rng((3, 13), HI, "MANAGED_DICT_OFFSET")]),
    ("int27_ival", [rng((2, 7), (2, 7), "offsetof(PyIntObject, ob_ival)")]),
    # Locals (readers/locals.c, readers/pyrepr.c): sets, cells.
    ("set_used", [rng((2, 7), HI, "offsetof(PySetObject, used)")]),
    ("set_mask", [rng((2, 7), HI, "offsetof(PySetObject, mask)")]),
    ("set_table", [rng((2, 7), HI, "offsetof(PySetObject, table)")]),
    ("set_entry_key", [rng((2, 7), HI, "offsetof(setentry, key)")]),
    ("set_entry_hash", [rng((2, 7), HI, "offsetof(setentry, hash)")]),
    ("set_entry_size", [rng((2, 7), HI, "sizeof(setentry)")]),
    ("cell_ref", [rng((2, 7), HI, "offsetof(PyCellObject, ob_ref)")]),
]

# Facts read from header macros or enums by the same program (name, versions, C expression).
PROBES = [
    ("hexversion", [rng((2, 7), HI, "PY_VERSION_HEX")]),
    ("if_owner_cstack", [rng((3, 12), HI, "FRAME_OWNED_BY_CSTACK")]),
    ("if_owner_generator", [rng((3, 11), HI, "FRAME_OWNED_BY_GENERATOR")]),
    ("uni27_wide", [rng((2, 7), (2, 7), "Py_UNICODE_SIZE == 4")]),
    # Bit position of state.kind = width of the interned bitfield that precedes it.
    ("uni_kind_shift", [rng((3, 3), HI, "layout_kind_shift()")]),
    ("debug_offsets_size", [rng((3, 13), (3, 13), "sizeof(_Py_DebugOffsets)")]),
]

# Headers per version beyond Python.h (see FACTS.md "Layouts").
def headers_for(ver):
    h = ["Python.h"]
    if ver <= (3, 10):
        h.append("frameobject.h")
    if ver <= (3, 10):
        h.append("longintrepr.h")   # PyLongObject's body is not in Python.h before 3.11
    if ver == (3, 7):
        h.append("internal/pystate.h")
    if ver == (3, 8):
        h.append("pycore_pystate.h")
    if ver >= (3, 9):
        h += ["pycore_interp.h", "pycore_runtime.h"]
    if ver >= (3, 11):
        h += ["pycore_frame.h", "pycore_code.h", "pycore_dict.h", "pycore_object.h",
              "pycore_moduleobject.h"]
    return h


# The 3.6-3.10 PyDictKeysObject (Objects/dict-common.h): refcount, size, lookup function, usable,
# nentries, then the index table. 3.6 declares dk_indices as a union of arrays, 3.7-3.10 as
# char[]; both start at the same 8-aligned offset.
DK36_REPLICA = """
struct layout_dk36 {
    Py_ssize_t dk_refcnt;
    Py_ssize_t dk_size;
    void *dk_lookup;
    Py_ssize_t dk_usable;
    Py_ssize_t dk_nentries;
    char dk_indices[];
};
"""

KIND_SHIFT_FN = """
static long layout_kind_shift(void)
{
    PyASCIIObject o;
    unsigned char bytes[sizeof o.state];
    memset(&o, 0, sizeof o);
    o.state.kind = 7;
    memcpy(bytes, &o.state, sizeof bytes);
    for (unsigned i = 0; i < 8 * sizeof bytes; i++)
        if (bytes[i / 8] & (1u << (i % 8)))
            return (long)i;
    return -1;
}
"""


def pick(specs, ver):
    for lo, hi, expr in specs:
        if lo <= ver <= hi:
            return expr
    return None


def c_program(ver):
    lines = ["/* generated by gen_layouts.py for %d.%d */" % ver, "#include <stddef.h>",
             "#include <stdio.h>", "#include <string.h>"]
    lines += ['#include "%s"' % h for h in headers_for(ver)]
    if (3, 6) <= ver <= (3, 10):
        lines.append(DK36_REPLICA)
    if ver >= (3, 3):
        lines.append(KIND_SHIFT_FN)
    lines.append("int main(void)\n{")
    lines.append('    printf("py_version %s\\n", PY_VERSION);')
    for name, specs in OFFSETS + PROBES:
        expr = pick(specs, ver)
        if expr is not None:
            lines.append('    printf("%s %%ld\\n", (long)(%s));' % (name, expr))
    lines.append("    return 0;\n}\n")
    return "\n".join(lines)


def measure(ver, incdir, cc):
    """Compile and run the probe program for one interpreter; returns {name: value}."""
    src = c_program(ver)
    with tempfile.TemporaryDirectory(prefix="gen_layouts.") as tmp:
        cpath = os.path.join(tmp, "probe.c")
        exe = os.path.join(tmp, "probe")
        with open(cpath, "w") as f:
            f.write(src)
        cmd = [cc, "-std=gnu11", "-w", "-DPy_BUILD_CORE", "-I", incdir,
               "-I", os.path.join(incdir, "internal"), cpath, "-o", exe]
        r = subprocess.run(cmd, stdout=PIPE, stderr=PIPE, universal_newlines=True)
        if r.returncode != 0:
            sys.exit("gen_layouts: compiling the %d.%d probe against %s failed:\n%s"
                     % (ver + (incdir, r.stderr[-4000:])))
        out = subprocess.run([exe], stdout=PIPE, universal_newlines=True, check=True).stdout
    vals = {}
    for line in out.splitlines():
        k, v = line.split(" ", 1)
        vals[k] = v if k == "py_version" else int(v)
    return vals


def version_facts(ver, m):
    """Non-offset facts, by version (and from the probe where the headers say it)."""
    objects = ver <= (3, 10)
    if ver == (2, 7):
        lt = "PY_LT_LNOTAB27"
    elif ver <= (3, 9):
        lt = "PY_LT_LNOTAB"
    elif ver == (3, 10):
        lt = "PY_LT_LINETABLE310"
    else:
        lt = "PY_LT_LOCATIONS"
    return {
        "frame_model": "PY_FRAMES_OBJECTS" if objects else "PY_FRAMES_INTERP",
        "linetable": lt,
        "strings": "PY_STR_BYTES27" if ver < (3, 0) else "PY_STR_PEP393",
        "hexversion": "0x%08x" % m["hexversion"],
        "if_instr_is_current": 1 if ver >= (3, 13) else 0,
        "if_owner_cstack": m.get("if_owner_cstack", -1),
        "if_owner_interpreter": -1,
        "if_owner_generator": m.get("if_owner_generator", -1),
        "if_code_tagged": 0,
        "if_code_tag_mask": 0,
        "uni_state_interned_bits": m.get("uni_kind_shift", 0),
        "uni27_wide": m.get("uni27_wide", 0),
        "idict_model": ("PY_IDICT_OFFSET" if ver <= (3, 10) else "PY_IDICT_MANAGED311"
                        if ver == (3, 11) else "PY_IDICT_MANAGED312" if ver == (3, 12)
                        else "PY_IDICT_INLINE313"),
    }


# Where the facts go among the offsets, so each entry reads in struct py_layout order.
FACTS_AFTER = {
    "if_size": ["if_instr_is_current", "if_owner_cstack", "if_owner_interpreter", "if_owner_generator",
                "if_code_tagged", "if_code_tag_mask"],
    "uni_legacy_data": ["uni_state_interned_bits", "uni27_wide"],
    "int27_ival": ["idict_model"],
}


def entry(ver, m, label):
    facts = version_facts(ver, m)
    out = ["    {   /* CPython %s (%s) */" % ("%d.%d" % ver, label),
           "        .major = %d, .minor = %d," % ver,
           "        .frame_model = %s," % facts["frame_model"],
           "        .linetable = %s," % facts["linetable"],
           "        .strings = %s," % facts["strings"],
           "        .hexversion = %s," % facts["hexversion"]]
    for name, specs in OFFSETS:
        val = m.get(name, -1) if pick(specs, ver) is not None else -1
        out.append("        .%s = %d," % (name, val))
        for fact in FACTS_AFTER.get(name, []):
            val = facts[fact]
            out.append("        .%s = %s," % (fact, val))
    out.append("    },")
    return "\n".join(out)


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
        incs = sorted(glob.glob(os.path.join(prefix, "include", "python%d.%d*" % ver)))
        if not incs:
            continue
        patch = int(mo.group(3))
        if ver not in found or found[ver][3] < patch:
            found[ver] = (os.path.basename(prefix), prefix, incs[0], patch)
    return {v: t[:3] for v, t in sorted(found.items())}


def elf_section(path, want):
    """Bytes of section `want` of a 64-bit little-endian ELF file, or None."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    def shdr(i):
        return struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
    strtab = shdr(shstrndx)
    for i in range(shnum):
        sh = shdr(i)
        name_off = strtab[4] + sh[0]
        name = data[name_off:data.index(b"\0", name_off)].decode()
        if name == want:
            return data[sh[4]:sh[4] + sh[5]]
    return None


def debug_offsets_image(prefix, size):
    """The _Py_DebugOffsets bytes at the start of .PyRuntime in the interpreter's binary."""
    cands = sorted(glob.glob(os.path.join(prefix, "lib", "libpython3.13*.so*")))
    cands += [os.path.join(prefix, "bin", "python3.13")]
    for path in dict.fromkeys(os.path.realpath(c) for c in cands):
        if not os.path.isfile(path):
            continue
        sec = elf_section(path, ".PyRuntime")
        if sec and sec[:8] == b"xdebugpy" and len(sec) >= size:
            return path, sec[:size]
    return None, None


def render(interps, pyenv_root, measured):
    hdr = ["/*",
           " * layouts_gen.c — GENERATED by scripts/gen_layouts.py. Do not edit by hand.",
           " *",
           " * One struct py_layout per CPython minor version, measured with offsetof()/sizeof()",
           " * programs compiled (-DPy_BUILD_CORE) against each interpreter's own headers:"]
    for ver, (full, prefix, inc) in interps.items():
        hdr.append(" *   %-5s pyenv %-8s %s" % ("%d.%d" % ver, full, os.path.relpath(inc, pyenv_root)))
    hdr += [" * (paths relative to the pyenv root, %s)." % pyenv_root,
            " * Non-offset facts (frame model, line-table kind, owner values, ...) are set by the",
            " * script from the version and from header macros/enums (FRAME_OWNED_BY_CSTACK,",
            " * Py_UNICODE_SIZE, the bit position of PyASCIIObject.state.kind).",
            " * PyDictKeysObject for 3.6-3.10 lives in Objects/dict-common.h, which is not installed:",
            " * its offsets come from a replica declaration in the probe (refcnt, size, lookup, usable,",
            " * nentries, indices); 3.11+ use the installed internal/pycore_dict.h.",
            " * -1 means the version has no such field (see readers/layout.h).",
            " *",
            " * Regenerate: python3 scripts/gen_layouts.py   (needs gcc and the pyenv interpreters)",
            " */",
            '#include "readers/layout.h"',
            "",
            "const struct py_layout py_layouts_gen[] = {"]
    body = [entry(ver, measured[ver], "pyenv %s" % interps[ver][0]) for ver in interps]
    tail = ["};", "",
            "const size_t py_layouts_gen_count = sizeof py_layouts_gen / sizeof py_layouts_gen[0];",
            ""]
    return "\n".join(hdr + body + tail)


def check_system_311(measured, cc):
    inc = "/usr/include/python3.11"
    if not os.path.isdir(os.path.join(inc, "internal")):
        print("gen_layouts: note: %s/internal not installed; skipping the Debian 3.11 check" % inc)
        return
    if (3, 11) not in measured:
        print("gen_layouts: note: no pyenv 3.11 table to compare Debian's headers with")
        return
    sys_m = measure((3, 11), inc, cc)
    ref = measured[(3, 11)]
    diffs = [(k, ref[k], sys_m.get(k)) for k in ref
             if k not in ("py_version", "hexversion") and ref[k] != sys_m.get(k)]
    if diffs:
        print("gen_layouts: WARNING: Debian %s differs from pyenv %s:" %
              (sys_m["py_version"], ref["py_version"]))
        for k, a, b in diffs:
            print("    %s: pyenv %s, debian %s" % (k, a, b))
    else:
        print("gen_layouts: Debian %s headers match the pyenv %s table in every field"
              % (sys_m["py_version"], ref["py_version"]))


def write_or_check(path, data, check, stale):
    full = os.path.join(ROOT, path)
    old = None
    if os.path.exists(full):
        with open(full, "rb") as f:
            old = f.read()
    if old == data:
        return
    if check:
        stale.append(path)
        return
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data)
    print("gen_layouts: wrote %s" % path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pyenv-root", help="default: `pyenv root`, $PYENV_ROOT or ~/.pyenv")
    ap.add_argument("--cc", default=os.environ.get("CC", "gcc"))
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if the committed outputs differ")
    args = ap.parse_args()

    pyenv_root = find_pyenv_root(args.pyenv_root)
    interps = find_interpreters(pyenv_root)
    if not interps:
        sys.exit("gen_layouts: no interpreters under %s/versions" % pyenv_root)
    measured = {}
    for ver, (full, prefix, inc) in interps.items():
        measured[ver] = measure(ver, inc, args.cc)
        print("gen_layouts: %d.%d from %s (%s)" % (ver + (inc, measured[ver]["py_version"])))

    stale = []
    write_or_check(OUT_C, render(interps, pyenv_root, measured).encode(), args.check, stale)

    if (3, 13) in interps:
        size = measured[(3, 13)]["debug_offsets_size"]
        src, image = debug_offsets_image(interps[(3, 13)][1], size)
        if image is None:
            sys.exit("gen_layouts: no .PyRuntime with the xdebugpy cookie in pyenv 3.13")
        print("gen_layouts: 3.13 _Py_DebugOffsets (%d bytes) from %s" % (size, src))
        write_or_check(OUT_FIXTURE, image, args.check, stale)
    else:
        print("gen_layouts: note: no pyenv 3.13; fixture %s left as it is" % OUT_FIXTURE)

    check_system_311(measured, args.cc)
    if stale:
        print("gen_layouts: stale: %s (run python3 scripts/gen_layouts.py)" % ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
