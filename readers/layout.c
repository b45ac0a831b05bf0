/*
 * layout.c — picking a struct py_layout for a target: a generated per-minor table
 * (layouts_gen.c), or one built from the _Py_DebugOffsets image that 3.13+ keep at the start of
 * _PyRuntime. Each debug-offsets format is described as data (sections and their field order per
 * minor version); the image is untrusted target memory, so every value is bounds-checked first.
 */
#include "readers/layout.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

const struct py_layout *layout_for_version(int major, int minor)
{
    for (size_t i = 0; i < py_layouts_gen_count; i++)
        if (py_layouts_gen[i].major == major && py_layouts_gen[i].minor == minor)
            return &py_layouts_gen[i];
    return NULL;
}

/* ---- The fields any known _Py_DebugOffsets format carries (name as in CPython's header). ---- */

#define LAYOUT_DBG_FIELDS(X)                                                                    \
    X(RT_SIZE, "runtime_state.size") X(RT_FINALIZING, "runtime_state.finalizing")               \
    X(RT_INTERPS_HEAD, "runtime_state.interpreters_head")                                       \
    X(IS_SIZE, "interpreter_state.size") X(IS_ID, "interpreter_state.id")                       \
    X(IS_NEXT, "interpreter_state.next") X(IS_THREADS_HEAD, "interpreter_state.threads_head")   \
    X(IS_THREADS_MAIN, "interpreter_state.threads_main") X(IS_GC, "interpreter_state.gc")       \
    X(IS_MODULES, "interpreter_state.imports_modules")                                          \
    X(IS_SYSDICT, "interpreter_state.sysdict") X(IS_BUILTINS, "interpreter_state.builtins")     \
    X(IS_CEVAL_GIL, "interpreter_state.ceval_gil")                                              \
    X(IS_GIL, "interpreter_state.gil_runtime_state")                                            \
    X(IS_GIL_ENABLED, "interpreter_state.gil_runtime_state_enabled")                            \
    X(IS_GIL_LOCKED, "interpreter_state.gil_runtime_state_locked")                              \
    X(IS_GIL_HOLDER, "interpreter_state.gil_runtime_state_holder")                              \
    X(IS_CODE_GEN, "interpreter_state.code_object_generation")                                  \
    X(IS_TLBC_GEN, "interpreter_state.tlbc_generation")                                         \
    X(TS_SIZE, "thread_state.size") X(TS_PREV, "thread_state.prev")                             \
    X(TS_NEXT, "thread_state.next") X(TS_INTERP, "thread_state.interp")                         \
    X(TS_CURRENT_FRAME, "thread_state.current_frame")                                           \
    X(TS_THREAD_ID, "thread_state.thread_id")                                                   \
    X(TS_NATIVE_ID, "thread_state.native_thread_id")                                            \
    X(TS_DATASTACK, "thread_state.datastack_chunk") X(TS_STATUS, "thread_state.status")         \
    X(IF_SIZE, "interpreter_frame.size") X(IF_PREVIOUS, "interpreter_frame.previous")           \
    X(IF_EXECUTABLE, "interpreter_frame.executable")                                            \
    X(IF_INSTR_PTR, "interpreter_frame.instr_ptr")                                              \
    X(IF_LOCALSPLUS, "interpreter_frame.localsplus") X(IF_OWNER, "interpreter_frame.owner")     \
    X(IF_STACKPOINTER, "interpreter_frame.stackpointer")                                        \
    X(IF_TLBC_INDEX, "interpreter_frame.tlbc_index")                                            \
    X(CO_SIZE, "code_object.size") X(CO_FILENAME, "code_object.filename")                       \
    X(CO_NAME, "code_object.name") X(CO_QUALNAME, "code_object.qualname")                       \
    X(CO_LINETABLE, "code_object.linetable") X(CO_FIRSTLINENO, "code_object.firstlineno")       \
    X(CO_ARGCOUNT, "code_object.argcount")                                                      \
    X(CO_LOCALSPLUSNAMES, "code_object.localsplusnames")                                        \
    X(CO_LOCALSPLUSKINDS, "code_object.localspluskinds")                                        \
    X(CO_CODE_ADAPTIVE, "code_object.co_code_adaptive") X(CO_TLBC, "code_object.co_tlbc")       \
    X(OB_SIZE, "pyobject.size") X(OB_TYPE, "pyobject.ob_type")                                  \
    X(TP_SIZE, "type_object.size") X(TP_NAME, "type_object.tp_name")                            \
    X(TP_REPR, "type_object.tp_repr") X(TP_FLAGS, "type_object.tp_flags")                       \
    X(TUPLE_SIZE, "tuple_object.size") X(TUPLE_ITEM, "tuple_object.ob_item")                    \
    X(TUPLE_OB_SIZE, "tuple_object.ob_size")                                                    \
    X(LIST_SIZE, "list_object.size") X(LIST_ITEM, "list_object.ob_item")                        \
    X(LIST_OB_SIZE, "list_object.ob_size")                                                      \
    X(SET_SIZE, "set_object.size") X(SET_USED, "set_object.used")                               \
    X(SET_TABLE, "set_object.table") X(SET_MASK, "set_object.mask")                             \
    X(DICT_SIZE, "dict_object.size") X(DICT_KEYS, "dict_object.ma_keys")                        \
    X(DICT_VALUES, "dict_object.ma_values")                                                     \
    X(FLOAT_SIZE, "float_object.size") X(FLOAT_FVAL, "float_object.ob_fval")                    \
    X(LONG_SIZE, "long_object.size") X(LONG_TAG, "long_object.lv_tag")                          \
    X(LONG_DIGIT, "long_object.ob_digit")                                                       \
    X(BYTES_SIZE, "bytes_object.size") X(BYTES_OB_SIZE, "bytes_object.ob_size")                 \
    X(BYTES_SVAL, "bytes_object.ob_sval")                                                       \
    X(UNI_SIZE, "unicode_object.size") X(UNI_STATE, "unicode_object.state")                     \
    X(UNI_LENGTH, "unicode_object.length")                                                      \
    X(UNI_ASCII_SIZE, "unicode_object.asciiobject_size")                                        \
    X(GC_SIZE, "gc.size") X(GC_COLLECTING, "gc.collecting")                                     \
    X(GEN_SIZE, "gen_object.size") X(GEN_NAME, "gen_object.gi_name")                           \
    X(GEN_IFRAME, "gen_object.gi_iframe") X(GEN_FRAME_STATE, "gen_object.gi_frame_state")       \
    X(LL_NEXT, "llist_node.next") X(LL_PREV, "llist_node.prev")                                 \
    X(DS_EVAL_BREAKER, "debugger_support.eval_breaker")                                         \
    X(DS_REMOTE_SUPPORT, "debugger_support.remote_debugger_support")                            \
    X(DS_REMOTE_ENABLED, "debugger_support.remote_debugging_enabled")                           \
    X(DS_PENDING_CALL, "debugger_support.debugger_pending_call")                                \
    X(DS_SCRIPT_PATH, "debugger_support.debugger_script_path")                                  \
    X(DS_SCRIPT_PATH_SIZE, "debugger_support.debugger_script_path_size")

#define LAYOUT_DBG_ENUM(id, name) D_##id,
#define LAYOUT_DBG_NAME(id, name) [D_##id] = name,
enum layout_dbg_id { LAYOUT_DBG_FIELDS(LAYOUT_DBG_ENUM) D_COUNT };
static const char *const layout_dbg_names[D_COUNT] = { LAYOUT_DBG_FIELDS(LAYOUT_DBG_NAME) };

/* Header: char cookie[8], uint64 version (PY_VERSION_HEX), uint64 free_threaded. */
#define LAYOUT_DBG_HEADER 24
#define LAYOUT_DBG_MAX_FIELDS 24

/*
 * Caps on what a plausible size or offset is. Object and frame structs are a few hundred bytes;
 * _PyRuntimeState and PyInterpreterState embed the static objects and caches (3.12's runtime state
 * is already 450 KiB), so those two get a looser cap rather than rejecting a healthy target.
 */
#define LAYOUT_DBG_MAX_SIZE ((uint64_t)1 << 20)
#define LAYOUT_DBG_MAX_STATE_SIZE ((uint64_t)8 << 20)

/* One nested struct of _Py_DebugOffsets: its fields in image order. When `sized`, the first field
 * is sizeof() of the CPython struct and every other field must lie inside it. */
struct layout_dbg_section {
    const char *name;
    bool sized;
    bool state;                   /* runtime/interpreter state: the looser size cap applies */
    uint8_t nfields;
    uint8_t ids[LAYOUT_DBG_MAX_FIELDS];
};

/* One minor version's format, plus the facts about that version the offsets do not carry. */
struct layout_dbg_format {
    int minor;
    uint32_t first_hex;           /* oldest release with this exact format (pre-releases differ) */
    int8_t owner_cstack, owner_interpreter, owner_generator, code_tag_mask;
    size_t nsections;
    const struct layout_dbg_section *sections;
};

#define SEC(nm, sz, st, ...)                                                                    \
    { .name = nm, .sized = sz, .state = st,                                                     \
      .nfields = sizeof((uint8_t[]){ __VA_ARGS__ }), .ids = { __VA_ARGS__ } }

/* 3.13: Include/internal/pycore_runtime.h of 3.13.0. */
static const struct layout_dbg_section layout_dbg_313[] = {
    SEC("runtime_state", true, true, D_RT_SIZE, D_RT_FINALIZING, D_RT_INTERPS_HEAD),
    SEC("interpreter_state", true, true, D_IS_SIZE, D_IS_ID, D_IS_NEXT, D_IS_THREADS_HEAD, D_IS_GC,
        D_IS_MODULES, D_IS_SYSDICT, D_IS_BUILTINS, D_IS_CEVAL_GIL, D_IS_GIL, D_IS_GIL_ENABLED,
        D_IS_GIL_LOCKED, D_IS_GIL_HOLDER),
    SEC("thread_state", true, false, D_TS_SIZE, D_TS_PREV, D_TS_NEXT, D_TS_INTERP,
        D_TS_CURRENT_FRAME, D_TS_THREAD_ID, D_TS_NATIVE_ID, D_TS_DATASTACK, D_TS_STATUS),
    SEC("interpreter_frame", true, false, D_IF_SIZE, D_IF_PREVIOUS, D_IF_EXECUTABLE,
        D_IF_INSTR_PTR, D_IF_LOCALSPLUS, D_IF_OWNER),
    SEC("code_object", true, false, D_CO_SIZE, D_CO_FILENAME, D_CO_NAME, D_CO_QUALNAME,
        D_CO_LINETABLE, D_CO_FIRSTLINENO, D_CO_ARGCOUNT, D_CO_LOCALSPLUSNAMES,
        D_CO_LOCALSPLUSKINDS, D_CO_CODE_ADAPTIVE),
    SEC("pyobject", true, false, D_OB_SIZE, D_OB_TYPE),
    SEC("type_object", true, false, D_TP_SIZE, D_TP_NAME, D_TP_REPR, D_TP_FLAGS),
    SEC("tuple_object", true, false, D_TUPLE_SIZE, D_TUPLE_ITEM, D_TUPLE_OB_SIZE),
    SEC("list_object", true, false, D_LIST_SIZE, D_LIST_ITEM, D_LIST_OB_SIZE),
    SEC("dict_object", true, false, D_DICT_SIZE, D_DICT_KEYS, D_DICT_VALUES),
    SEC("float_object", true, false, D_FLOAT_SIZE, D_FLOAT_FVAL),
    SEC("long_object", true, false, D_LONG_SIZE, D_LONG_TAG, D_LONG_DIGIT),
    SEC("bytes_object", true, false, D_BYTES_SIZE, D_BYTES_OB_SIZE, D_BYTES_SVAL),
    SEC("unicode_object", true, false, D_UNI_SIZE, D_UNI_STATE, D_UNI_LENGTH, D_UNI_ASCII_SIZE),
    SEC("gc", true, false, D_GC_SIZE, D_GC_COLLECTING),
};

/* 3.14: Include/internal/pycore_debug_offsets.h of the 3.14 branch (see docs/layouts.md). */
static const struct layout_dbg_section layout_dbg_314[] = {
    SEC("runtime_state", true, true, D_RT_SIZE, D_RT_FINALIZING, D_RT_INTERPS_HEAD),
    SEC("interpreter_state", true, true, D_IS_SIZE, D_IS_ID, D_IS_NEXT, D_IS_THREADS_HEAD,
        D_IS_THREADS_MAIN, D_IS_GC, D_IS_MODULES, D_IS_SYSDICT, D_IS_BUILTINS, D_IS_CEVAL_GIL,
        D_IS_GIL, D_IS_GIL_ENABLED, D_IS_GIL_LOCKED, D_IS_GIL_HOLDER, D_IS_CODE_GEN,
        D_IS_TLBC_GEN),
    SEC("thread_state", true, false, D_TS_SIZE, D_TS_PREV, D_TS_NEXT, D_TS_INTERP,
        D_TS_CURRENT_FRAME, D_TS_THREAD_ID, D_TS_NATIVE_ID, D_TS_DATASTACK, D_TS_STATUS),
    SEC("interpreter_frame", true, false, D_IF_SIZE, D_IF_PREVIOUS, D_IF_EXECUTABLE,
        D_IF_INSTR_PTR, D_IF_LOCALSPLUS, D_IF_OWNER, D_IF_STACKPOINTER, D_IF_TLBC_INDEX),
    SEC("code_object", true, false, D_CO_SIZE, D_CO_FILENAME, D_CO_NAME, D_CO_QUALNAME,
        D_CO_LINETABLE, D_CO_FIRSTLINENO, D_CO_ARGCOUNT, D_CO_LOCALSPLUSNAMES,
        D_CO_LOCALSPLUSKINDS, D_CO_CODE_ADAPTIVE, D_CO_TLBC),
    SEC("pyobject", true, false, D_OB_SIZE, D_OB_TYPE),
    SEC("type_object", true, false, D_TP_SIZE, D_TP_NAME, D_TP_REPR, D_TP_FLAGS),
    SEC("tuple_object", true, false, D_TUPLE_SIZE, D_TUPLE_ITEM, D_TUPLE_OB_SIZE),
    SEC("list_object", true, false, D_LIST_SIZE, D_LIST_ITEM, D_LIST_OB_SIZE),
    SEC("set_object", true, false, D_SET_SIZE, D_SET_USED, D_SET_TABLE, D_SET_MASK),
    SEC("dict_object", true, false, D_DICT_SIZE, D_DICT_KEYS, D_DICT_VALUES),
    SEC("float_object", true, false, D_FLOAT_SIZE, D_FLOAT_FVAL),
    SEC("long_object", true, false, D_LONG_SIZE, D_LONG_TAG, D_LONG_DIGIT),
    SEC("bytes_object", true, false, D_BYTES_SIZE, D_BYTES_OB_SIZE, D_BYTES_SVAL),
    SEC("unicode_object", true, false, D_UNI_SIZE, D_UNI_STATE, D_UNI_LENGTH, D_UNI_ASCII_SIZE),
    SEC("gc", true, false, D_GC_SIZE, D_GC_COLLECTING),
    SEC("gen_object", true, false, D_GEN_SIZE, D_GEN_NAME, D_GEN_IFRAME, D_GEN_FRAME_STATE),
    SEC("llist_node", false, false, D_LL_NEXT, D_LL_PREV),
    SEC("debugger_support", false, false, D_DS_EVAL_BREAKER, D_DS_REMOTE_SUPPORT,
        D_DS_REMOTE_ENABLED, D_DS_PENDING_CALL, D_DS_SCRIPT_PATH, D_DS_SCRIPT_PATH_SIZE),
};

#define FORMAT(secs) .nsections = sizeof(secs) / sizeof(secs[0]), .sections = secs

/*
 * Owner values: 3.13 FRAME_OWNED_BY_CSTACK = 3; 3.14 adds FRAME_OWNED_BY_INTERPRETER = 3 and moves
 * CSTACK to 4; FRAME_OWNED_BY_GENERATOR stays 1. 3.14 (GIL build) f_executable is a _PyStackRef whose low 2 bits are tags.
 * first_hex: release candidates onwards — the struct still moved during alphas and betas.
 */
static const struct layout_dbg_format layout_dbg_formats[] = {
    { .minor = 13, .first_hex = 0x030d00c1, .owner_cstack = 3, .owner_interpreter = -1,
      .owner_generator = 1, .code_tag_mask = 0, FORMAT(layout_dbg_313) },
    { .minor = 14, .first_hex = 0x030e00c1, .owner_cstack = 4, .owner_interpreter = 3,
      .owner_generator = 1, .code_tag_mask = 3, FORMAT(layout_dbg_314) },
};
#define LAYOUT_DBG_NFORMATS (sizeof layout_dbg_formats / sizeof layout_dbg_formats[0])

/* ---- From debug-offsets fields to struct py_layout. ---- */

#define L(member) ((uint16_t)offsetof(struct py_layout, member))

/* Fields copied as they are. Every id here must be in every format. */
static const struct { uint8_t id; uint16_t dst; } layout_dbg_copy[] = {
    { D_RT_SIZE, L(rt_size) }, { D_RT_INTERPS_HEAD, L(rt_interpreters_head) },
    { D_IS_SIZE, L(is_size) }, { D_IS_ID, L(is_id) }, { D_IS_NEXT, L(is_next) },
    { D_IS_THREADS_HEAD, L(is_tstate_head) }, { D_IS_MODULES, L(is_modules) },
    { D_IS_CEVAL_GIL, L(is_ceval_gil) },
    { D_TS_SIZE, L(ts_size) }, { D_TS_PREV, L(ts_prev) }, { D_TS_NEXT, L(ts_next) },
    { D_TS_INTERP, L(ts_interp) },
    { D_TS_CURRENT_FRAME, L(ts_current_frame) }, { D_TS_THREAD_ID, L(ts_thread_id) },
    { D_TS_NATIVE_ID, L(ts_native_thread_id) }, { D_TS_DATASTACK, L(ts_datastack_chunk) },
    { D_IF_SIZE, L(if_size) }, { D_IF_PREVIOUS, L(if_previous) }, { D_IF_EXECUTABLE, L(if_code) },
    { D_IF_INSTR_PTR, L(if_instr) }, { D_IF_LOCALSPLUS, L(if_localsplus) },
    { D_IF_OWNER, L(if_owner) },
    { D_CO_SIZE, L(co_size) }, { D_CO_FILENAME, L(co_filename) }, { D_CO_NAME, L(co_name) },
    { D_CO_QUALNAME, L(co_qualname) }, { D_CO_LINETABLE, L(co_linetable) },
    { D_CO_FIRSTLINENO, L(co_firstlineno) }, { D_CO_ARGCOUNT, L(co_argcount) },
    { D_CO_LOCALSPLUSNAMES, L(co_localsplusnames) },
    { D_CO_LOCALSPLUSKINDS, L(co_localspluskinds) },
    { D_CO_CODE_ADAPTIVE, L(co_code_adaptive) },
    { D_OB_TYPE, L(ob_type) }, { D_TP_NAME, L(tp_name) }, { D_TP_FLAGS, L(tp_flags) },
    { D_TUPLE_ITEM, L(tuple_item) }, { D_TUPLE_OB_SIZE, L(ob_size) },
    { D_LIST_ITEM, L(list_item) }, { D_DICT_KEYS, L(dict_ma_keys) },
    { D_DICT_VALUES, L(dict_ma_values) }, { D_FLOAT_FVAL, L(float_fval) },
    { D_LONG_TAG, L(long_tag) }, { D_LONG_DIGIT, L(long_digit) }, { D_BYTES_SVAL, L(bytes_sval) },
    { D_UNI_STATE, L(uni_state) }, { D_UNI_LENGTH, L(uni_length) },
    { D_UNI_ASCII_SIZE, L(uni_ascii_size) },
};

/*
 * Fields the debug offsets do not carry but that sit at a fixed distance from one they do: the
 * distance is taken from the 3.13 table, and the result must lie inside the struct whose size the
 * image gives (`bound`). The head of PyCodeObject (co_flags ... co_nlocals), PyDictObject.ma_used
 * before ma_keys, and the unicode struct sizes kept this shape in 3.14 (docs/layouts.md).
 */
static const struct { uint16_t dst, anchor; uint8_t bound; } layout_dbg_rebase[] = {
    { L(co_flags), L(co_argcount), D_CO_SIZE },
    { L(co_posonlyargcount), L(co_argcount), D_CO_SIZE },
    { L(co_kwonlyargcount), L(co_argcount), D_CO_SIZE },
    { L(co_nlocals), L(co_firstlineno), D_CO_SIZE },
    { L(dict_ma_used), L(dict_ma_keys), D_DICT_SIZE },
    { L(ts_datastack_top), L(ts_datastack_chunk), D_TS_SIZE },
    { L(uni_compact_size), L(uni_ascii_size), D_UNI_SIZE },
    { L(uni_legacy_data), L(uni_ascii_size), D_UNI_SIZE },
};

static int32_t layout_get(const struct py_layout *l, uint16_t off)
{
    int32_t v;
    memcpy(&v, (const char *)l + off, sizeof v);
    return v;
}

static void layout_set(struct py_layout *l, uint16_t off, int32_t v)
{
    memcpy((char *)l + off, &v, sizeof v);
}

/* "3.14.0rc2" from a PY_VERSION_HEX, for messages. */
static const char *layout_hex_name(uint64_t hex, char *buf, size_t len)
{
    static const char *const level[16] = { [0xA] = "a", [0xB] = "b", [0xC] = "rc", [0xF] = "" };
    unsigned lv = (hex >> 4) & 0xf, serial = hex & 0xf;
    const char *tag = level[lv] ? level[lv] : "?";
    if (lv == 0xF)
        snprintf(buf, len, "%u.%u.%u", (unsigned)(hex >> 24) & 0xff, (unsigned)(hex >> 16) & 0xff,
                 (unsigned)(hex >> 8) & 0xff);
    else
        snprintf(buf, len, "%u.%u.%u%s%u", (unsigned)(hex >> 24) & 0xff,
                 (unsigned)(hex >> 16) & 0xff, (unsigned)(hex >> 8) & 0xff, tag, serial);
    return buf;
}

static uint64_t layout_u64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);   /* the image is target memory: no alignment promise */
    return v;
}

static size_t layout_dbg_image_size(const struct layout_dbg_format *fmt)
{
    size_t n = LAYOUT_DBG_HEADER;
    for (size_t s = 0; s < fmt->nsections; s++)
        n += 8 * (size_t)fmt->sections[s].nfields;
    return n;
}

/* Reads every field of the format into val[] and checks each against its section's size. */
static enum pt_status layout_dbg_read(const struct layout_dbg_format *fmt, const unsigned char *img,
                                      uint64_t val[D_COUNT], bool have[D_COUNT],
                                      struct pt_err *err)
{
    const unsigned char *p = img + LAYOUT_DBG_HEADER;
    for (size_t s = 0; s < fmt->nsections; s++) {
        const struct layout_dbg_section *sec = &fmt->sections[s];
        uint64_t cap = sec->state ? LAYOUT_DBG_MAX_STATE_SIZE : LAYOUT_DBG_MAX_SIZE;
        uint64_t size = 0;
        for (unsigned f = 0; f < sec->nfields; f++, p += 8) {
            uint8_t id = sec->ids[f];
            uint64_t v = layout_u64(p);
            val[id] = v;
            have[id] = true;
            if (sec->sized && f == 0) {
                if (v == 0 || v >= cap)
                    return pt_fail(err, PT_EVERSION, "debug offsets: implausible %s = %llu; the "
                                   "target's _Py_DebugOffsets is corrupt or of another format",
                                   layout_dbg_names[id], (unsigned long long)v);
                size = v;
            } else if (sec->sized ? v >= size : v >= LAYOUT_DBG_MAX_SIZE) {
                return pt_fail(err, PT_EVERSION, "debug offsets: %s = %llu lies outside its "
                               "struct (size %llu); the target's _Py_DebugOffsets is corrupt or "
                               "of another format", layout_dbg_names[id], (unsigned long long)v,
                               (unsigned long long)(sec->sized ? size : LAYOUT_DBG_MAX_SIZE));
            }
        }
    }
    return PT_OK;
}

/* Fills `out` from the 3.13 table, the copied fields, the relative GIL fields and the rebased
 * fields, then the version facts of the format. */
static enum pt_status layout_dbg_build(struct py_layout *out, const struct layout_dbg_format *fmt,
                                       const uint64_t val[D_COUNT], const bool have[D_COUNT],
                                       struct pt_err *err)
{
    const struct py_layout *base = layout_for_version(3, 13);
    if (!base)
        return pt_fail(err, PT_EVERSION, "no generated 3.13 layout to complete the debug offsets");
    *out = *base;
    for (size_t i = 0; i < sizeof layout_dbg_copy / sizeof layout_dbg_copy[0]; i++) {
        uint8_t id = layout_dbg_copy[i].id;
        if (!have[id])
            return pt_fail(err, PT_EVERSION, "debug offsets of 3.%d lack %s", fmt->minor,
                           layout_dbg_names[id]);
        layout_set(out, layout_dbg_copy[i].dst, (int32_t)val[id]);   /* < 8 MiB, checked */
    }
    /* The image gives the GIL fields as offsets in PyInterpreterState of its embedded _gil; the
     * layout wants them inside struct _gil_runtime_state. */
    if (!have[D_IS_GIL] || !have[D_IS_GIL_LOCKED] || !have[D_IS_GIL_HOLDER] ||
        val[D_IS_GIL_LOCKED] < val[D_IS_GIL] || val[D_IS_GIL_HOLDER] < val[D_IS_GIL])
        return pt_fail(err, PT_EVERSION, "debug offsets: GIL fields lie before the GIL state");
    out->gil_locked = (int32_t)(val[D_IS_GIL_LOCKED] - val[D_IS_GIL]);
    out->gil_last_holder = (int32_t)(val[D_IS_GIL_HOLDER] - val[D_IS_GIL]);

    for (size_t i = 0; i < sizeof layout_dbg_rebase / sizeof layout_dbg_rebase[0]; i++) {
        int64_t v = (int64_t)layout_get(out, layout_dbg_rebase[i].anchor) +
                    layout_get(base, layout_dbg_rebase[i].dst) -
                    layout_get(base, layout_dbg_rebase[i].anchor);
        if (!have[layout_dbg_rebase[i].bound] || v < 0 ||
            (uint64_t)v >= val[layout_dbg_rebase[i].bound])
            return pt_fail(err, PT_EVERSION, "debug offsets: a field derived from the 3.13 layout "
                           "falls outside its struct; the 3.%d layout is not what pytrace expects",
                           fmt->minor);
        layout_set(out, layout_dbg_rebase[i].dst, (int32_t)v);
    }
    out->major = 3;
    out->minor = fmt->minor;
    out->if_instr_is_current = 1;
    out->if_owner_cstack = fmt->owner_cstack;
    out->if_owner_generator = fmt->owner_generator;
    out->if_owner_interpreter = fmt->owner_interpreter;
    out->if_code_tag_mask = fmt->code_tag_mask;
    out->if_code_tagged = fmt->code_tag_mask != 0;
    return PT_OK;
}

enum pt_status layout_from_debug_offsets(struct py_layout *out, const void *image, size_t len,
                                         struct pt_err *err)
{
    const unsigned char *img = image;
    char name[32];
    if (!out || !img || len < LAYOUT_DBG_HEADER)
        return pt_fail(err, PT_EVERSION, "debug offsets: %zu bytes is too short for the header",
                       img ? len : 0);
    if (memcmp(img, "xdebugpy", 8) != 0)
        return pt_fail(err, PT_EVERSION, "no _Py_DebugOffsets cookie at the start of _PyRuntime "
                       "(not CPython 3.13+, or the runtime address is wrong)");
    uint64_t hex = layout_u64(img + 8), ft = layout_u64(img + 16);
    int major = (int)(hex >> 24) & 0xff, minor = (int)(hex >> 16) & 0xff;
    if ((hex >> 32) != 0 || major != 3 || minor < 13 || ft > 1)
        return pt_fail(err, PT_EVERSION, "debug offsets: nonsense header (version 0x%llx, "
                       "free_threaded %llu)", (unsigned long long)hex, (unsigned long long)ft);
    layout_hex_name(hex, name, sizeof name);
    if (ft)
        return pt_fail(err, PT_EVERSION, "CPython %s is a free-threaded build: free-threaded "
                       "builds not supported yet", name);

    const struct layout_dbg_format *fmt = NULL;
    for (size_t i = 0; i < LAYOUT_DBG_NFORMATS; i++)
        if (layout_dbg_formats[i].minor == minor)
            fmt = &layout_dbg_formats[i];
    if (!fmt)
        return pt_fail(err, PT_EVERSION, "CPython %s is newer than pytrace knows: its "
                       "_Py_DebugOffsets format is unknown (newest supported: 3.%d)", name,
                       layout_dbg_formats[LAYOUT_DBG_NFORMATS - 1].minor);
    if (hex < fmt->first_hex)
        return pt_fail(err, PT_EVERSION, "CPython %s is a pre-release whose _Py_DebugOffsets may "
                       "differ from 3.%d's final one: not supported", name, minor);
    size_t need = layout_dbg_image_size(fmt);
    if (len < need)
        return pt_fail(err, PT_EVERSION, "debug offsets: %zu bytes read, CPython 3.%d's "
                       "_Py_DebugOffsets has %zu", len, minor, need);

    uint64_t val[D_COUNT] = { 0 };
    bool have[D_COUNT] = { false };
    enum pt_status st = layout_dbg_read(fmt, img, val, have, err);
    if (st != PT_OK)
        return st;
    struct py_layout l;
    st = layout_dbg_build(&l, fmt, val, have, err);
    if (st != PT_OK)
        return st;
    if (val[D_RT_SIZE] < need)
        return pt_fail(err, PT_EVERSION, "debug offsets: _PyRuntimeState (%llu bytes) cannot "
                       "hold its own %zu-byte _Py_DebugOffsets", (unsigned long long)val[D_RT_SIZE],
                       need);
    l.hexversion = (uint32_t)hex;
    *out = l;
    return PT_OK;
}
