/*
 * test_layout.c — readers/layout.c: the generated tables exist and are sane for 2.7 and 3.6–3.13;
 * the real 3.13 _Py_DebugOffsets image (fixture cut from pyenv's libpython3.13) parses to exactly
 * the generated 3.13 table; a synthetic 3.14 image, built here from the 3.14 field order, parses
 * to the expected fields; and corrupt, truncated, foreign or hostile images are refused with
 * PT_EVERSION without crashing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "readers/layout.h"

#ifndef PT_SOURCE_ROOT
#define PT_SOURCE_ROOT "."
#endif
#define FIXTURE_313 PT_SOURCE_ROOT "/tests/unit/fixtures/debug_offsets_3_13.bin"
#define IMAGE_313_SIZE 584   /* sizeof(_Py_DebugOffsets) in 3.13 */
#define IMAGE_314_SIZE 760   /* sizeof(_Py_DebugOffsets) in 3.14 */

/* Every member of struct py_layout, for field-by-field comparisons. */
#define LAYOUT_FIELDS(X)                                                                        \
    X(major) X(minor) X(frame_model) X(linetable) X(strings) X(hexversion)                      \
    X(rt_interpreters_head) X(rt_gilstate_current) X(rt_gil) X(rt_size)                         \
    X(gil_locked) X(gil_last_holder)                                                            \
    X(is_next) X(is_tstate_head) X(is_id) X(is_modules) X(is_ceval_gil) X(is_size)              \
    X(ts_next) X(ts_interp) X(ts_frame) X(ts_cframe) X(ts_current_frame) X(ts_thread_id)        \
    X(ts_native_thread_id) X(ts_datastack_chunk) X(ts_size) X(cf_current_frame)                 \
    X(fo_back) X(fo_code) X(fo_lasti) X(fo_lineno) X(fo_localsplus) X(fo_size)                  \
    X(if_code) X(if_previous) X(if_instr) X(if_owner) X(if_localsplus) X(if_size)               \
    X(if_instr_is_current) X(if_owner_cstack) X(if_owner_interpreter) X(if_code_tagged)         \
    X(if_owner_generator)                                                                       \
    X(if_code_tag_mask)                                                                         \
    X(co_argcount) X(co_posonlyargcount) X(co_kwonlyargcount) X(co_nlocals) X(co_flags)         \
    X(co_firstlineno) X(co_code) X(co_code_adaptive) X(co_varnames) X(co_cellvars)              \
    X(co_freevars) X(co_localsplusnames) X(co_localspluskinds) X(co_filename) X(co_name)        \
    X(co_qualname) X(co_linetable) X(co_size)                                                   \
    X(ob_type) X(ob_size) X(tp_name) X(tp_flags) X(tuple_item) X(list_item) X(bytes_sval)       \
    X(float_fval) X(long_digit) X(long_tag)                                                     \
    X(uni_length) X(uni_state) X(uni_ascii_size) X(uni_compact_size) X(uni_legacy_data)         \
    X(uni_state_interned_bits) X(uni27_wide)                                                    \
    X(dict_ma_used) X(dict_ma_keys) X(dict_ma_values) X(dk_size) X(dk_kind) X(dk_nentries)      \
    X(dk_indices) X(dict27_table) X(dict27_mask)

static void assert_same_layout(const struct py_layout *a, const struct py_layout *b)
{
#define CMP(f)                                                                                  \
    if ((long long)a->f != (long long)b->f)                                                     \
        fail_msg("field %s: %lld != %lld", #f, (long long)a->f, (long long)b->f);
    LAYOUT_FIELDS(CMP)
#undef CMP
}

static unsigned char *read_fixture(size_t *len)
{
    FILE *f = fopen(FIXTURE_313, "rb");
    if (!f)
        fail_msg("cannot open %s (run python3 scripts/gen_layouts.py)", FIXTURE_313);
    unsigned char *buf = malloc(4096);
    assert_non_null(buf);
    *len = fread(buf, 1, 4096, f);
    fclose(f);
    return buf;
}

/* Byte position of field `index` (0-based, counting every uint64 after the 24-byte header). */
static size_t slot(size_t index)
{
    return 24 + 8 * index;
}

static void put64(unsigned char *img, size_t at, uint64_t v)
{
    memcpy(img + at, &v, sizeof v);
}

static void expect_refused(const void *img, size_t len, const char *why)
{
    struct py_layout out;
    struct pt_err err;
    memset(&out, 0x5a, sizeof out);
    pt_err_clear(&err);
    enum pt_status st = layout_from_debug_offsets(&out, img, len, &err);
    if (st != PT_EVERSION)
        fail_msg("%s: status %d (%s), want PT_EVERSION", why, st, err.msg);
    assert_int_equal(err.code, PT_EVERSION);
    assert_true(err.msg[0] != '\0');
    /* A refusal leaves the caller's layout untouched. */
    for (size_t i = 0; i < sizeof out; i++)
        assert_int_equal(((unsigned char *)&out)[i], 0x5a);
}

/* ---- generated tables ------------------------------------------------------------------- */

static const int table_minors[] = { 6, 7, 8, 9, 10, 11, 12, 13 };

static void check_inside(int32_t off, int32_t size, const char *what, int minor)
{
    if (off >= 0 && off >= size)
        fail_msg("3.%d %s = %d is not inside its struct of %d bytes", minor, what, off, size);
}

static void check_table(const struct py_layout *l)
{
    int m = l->minor;
    assert_true(l->ts_next >= 0 && l->ts_interp >= 0 && l->ts_thread_id >= 0);
    assert_true(l->is_next >= 0 && l->is_tstate_head >= 0 && l->is_modules >= 0);
    assert_true(l->co_filename >= 0 && l->co_name >= 0 && l->co_firstlineno >= 0);
    assert_true(l->co_linetable >= 0 && l->ob_type == 8 && l->tp_name >= 0);
    assert_int_equal(l->hexversion >> 24, (unsigned)l->major);
    assert_int_equal((l->hexversion >> 16) & 0xff, (unsigned)l->minor);
#define INSIDE(f, size) check_inside(l->f, l->size, #f, m);
    INSIDE(ts_next, ts_size) INSIDE(ts_interp, ts_size) INSIDE(ts_thread_id, ts_size)
    INSIDE(ts_frame, ts_size) INSIDE(ts_cframe, ts_size) INSIDE(ts_current_frame, ts_size)
    INSIDE(ts_native_thread_id, ts_size) INSIDE(ts_datastack_chunk, ts_size)
    INSIDE(is_next, is_size) INSIDE(is_tstate_head, is_size) INSIDE(is_modules, is_size)
    INSIDE(is_id, is_size) INSIDE(is_ceval_gil, is_size)
    INSIDE(co_argcount, co_size) INSIDE(co_nlocals, co_size) INSIDE(co_flags, co_size)
    INSIDE(co_filename, co_size) INSIDE(co_name, co_size) INSIDE(co_linetable, co_size)
    INSIDE(co_qualname, co_size) INSIDE(co_code_adaptive, co_size)
    INSIDE(if_code, if_size) INSIDE(if_previous, if_size) INSIDE(if_instr, if_size)
    INSIDE(if_owner, if_size) INSIDE(if_localsplus, if_size)
    INSIDE(rt_interpreters_head, rt_size) INSIDE(rt_gil, rt_size)
    INSIDE(rt_gilstate_current, rt_size)
#undef INSIDE
}

static void test_tables_exist_for_27_and_36_to_313(void **state)
{
    (void)state;
    assert_int_equal(py_layouts_gen_count, 1 + sizeof table_minors / sizeof table_minors[0]);
    const struct py_layout *l = layout_for_version(2, 7);
    assert_non_null(l);
    check_table(l);
    for (size_t i = 0; i < sizeof table_minors / sizeof table_minors[0]; i++) {
        l = layout_for_version(3, table_minors[i]);
        assert_non_null(l);
        assert_int_equal(l->major, 3);
        assert_int_equal(l->minor, table_minors[i]);
        check_table(l);
    }
    assert_null(layout_for_version(3, 5));
    assert_null(layout_for_version(3, 14));
    assert_null(layout_for_version(2, 6));
    assert_null(layout_for_version(4, 0));
}

static void test_tables_pin_per_version_facts(void **state)
{
    (void)state;
    const struct py_layout *l27 = layout_for_version(2, 7);
    assert_int_equal(l27->frame_model, PY_FRAMES_OBJECTS);
    assert_int_equal(l27->linetable, PY_LT_LNOTAB27);
    assert_int_equal(l27->strings, PY_STR_BYTES27);
    assert_true(l27->dict27_table >= 0 && l27->dict27_mask >= 0 && l27->dict_ma_keys == -1);
    assert_true(l27->bytes_sval >= 0 && l27->uni_legacy_data >= 0 && l27->uni_state == -1);
    assert_int_equal(l27->uni27_wide, 1);   /* pyenv 2.7.18 is a UCS-4 build */
    assert_int_equal(l27->rt_size, -1);

    for (size_t i = 0; i < sizeof table_minors / sizeof table_minors[0]; i++) {
        int m = table_minors[i];
        const struct py_layout *l = layout_for_version(3, m);
        assert_int_equal(l->frame_model, m <= 10 ? PY_FRAMES_OBJECTS : PY_FRAMES_INTERP);
        assert_int_equal(l->linetable, m <= 9 ? PY_LT_LNOTAB
                                       : m == 10 ? PY_LT_LINETABLE310 : PY_LT_LOCATIONS);
        assert_int_equal(l->strings, PY_STR_PEP393);
        assert_int_equal(l->uni_state_interned_bits, 2);
        assert_int_equal(l->uni27_wide, 0);
        assert_int_equal(l->ts_frame >= 0, m <= 10);
        assert_int_equal(l->fo_back >= 0 && l->fo_code >= 0 && l->fo_lasti >= 0, m <= 10);
        assert_int_equal(l->ts_cframe >= 0 && l->cf_current_frame >= 0, m == 11 || m == 12);
        assert_int_equal(l->ts_current_frame >= 0, m >= 13);
        assert_int_equal(l->if_code >= 0 && l->if_previous >= 0 && l->if_owner >= 0, m >= 11);
        assert_int_equal(l->if_instr_is_current, m >= 13);
        assert_int_equal(l->if_owner_cstack, m >= 12 ? 3 : -1);
        assert_int_equal(l->if_owner_interpreter, -1);
        assert_int_equal(l->if_owner_generator, m >= 11 ? 1 : -1);
        assert_int_equal(l->if_code_tagged, 0);
        assert_int_equal(l->rt_size >= 0 && l->is_id >= 0 && l->gil_locked >= 0, m >= 7);
        assert_int_equal(l->rt_gilstate_current >= 0 && l->rt_gil >= 0, m >= 7 && m <= 11);
        assert_int_equal(l->is_ceval_gil >= 0, m >= 12);
        assert_int_equal(l->long_tag >= 0, m >= 12);
        assert_int_equal(l->co_posonlyargcount >= 0, m >= 8);
        assert_int_equal(l->co_code >= 0 && l->co_varnames >= 0, m <= 10);
        assert_int_equal(l->co_localsplusnames >= 0 && l->co_qualname >= 0, m >= 11);
        assert_int_equal(l->ts_native_thread_id >= 0, m >= 11);
        assert_int_equal(l->dk_kind >= 0, m >= 11);
        assert_true(l->dict_ma_keys >= 0 && l->dk_nentries >= 0 && l->dk_indices > l->dk_size);
        assert_int_equal(l->dict27_table, -1);
    }
}

/* ---- the real 3.13 image -------------------------------------------------------------- */

static void test_real_313_image_matches_generated_table(void **state)
{
    (void)state;
    size_t len;
    unsigned char *img = read_fixture(&len);
    assert_int_equal(len, IMAGE_313_SIZE);
    struct py_layout out;
    struct pt_err err;
    pt_err_clear(&err);
    enum pt_status st = layout_from_debug_offsets(&out, img, len, &err);
    if (st != PT_OK)
        fail_msg("3.13 fixture refused: %s", err.msg);
    const struct py_layout *want = layout_for_version(3, 13);
    assert_non_null(want);
    assert_same_layout(&out, want);
    assert_int_equal(out.hexversion, 0x030d00f0);
    /* Extra bytes after the struct (the rest of _PyRuntime) are ignored. */
    unsigned char big[4096] = { 0 };
    memcpy(big, img, len);
    assert_int_equal(layout_from_debug_offsets(&out, big, sizeof big, &err), PT_OK);
    assert_same_layout(&out, want);
    free(img);
}

static void test_313_image_refused_when_truncated_or_cookie_wrong(void **state)
{
    (void)state;
    size_t len;
    unsigned char *img = read_fixture(&len);
    expect_refused(img, IMAGE_313_SIZE - 1, "one byte short");
    expect_refused(img, 100, "100 bytes");
    expect_refused(img, 24, "header only");
    expect_refused(img, 23, "short header");
    expect_refused(img, 0, "empty");
    expect_refused(NULL, 0, "NULL image");
    expect_refused(NULL, IMAGE_313_SIZE, "NULL image with a length");
    img[0] = 'X';
    expect_refused(img, len, "wrong cookie");
    free(img);
}

static void test_313_image_refused_on_hostile_values(void **state)
{
    (void)state;
    size_t len;
    unsigned char *orig = read_fixture(&len);
    unsigned char img[IMAGE_313_SIZE];
    struct {
        size_t at;
        uint64_t value;
        const char *why;
    } cases[] = {
        { slot(3 + 13 + 2), (uint64_t)1 << 40, "thread_state.next huge" },
        { slot(3 + 13 + 2), 304, "thread_state.next == thread_state.size" },
        { slot(3 + 13), 0, "thread_state.size zero" },
        { slot(3 + 13), (uint64_t)2 << 20, "thread_state.size 2 MiB" },
        { slot(3 + 13), UINT64_MAX, "thread_state.size all ones" },
        { slot(0), (uint64_t)64 << 20, "runtime_state.size 64 MiB" },
        { slot(0), 100, "runtime_state smaller than the debug offsets it starts with" },
        { slot(3 + 13 + 9 + 6 + 10 + 2 + 4 + 3 + 3 + 3 + 2 + 3 + 3 + 4 + 1), (uint64_t)-8,
          "gc.collecting negative" },
        { slot(3 + 9), 0, "gil_runtime_state after its locked field" },
        { 8, 0x030f00f0, "3.15" },
        { 8, 0x030c00f0, "3.12 never carried debug offsets" },
        { 8, 0x020700f0, "2.7" },
        { 8, 0x00000001030d00f0ull, "version with high bits" },
        { 8, 0x030d00b2, "3.13 beta" },
        { 16, 1, "free-threaded" },
        { 16, 7, "free_threaded nonsense" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(img, orig, sizeof img);
        if (cases[i].at == slot(3 + 9)) {
            /* Move _gil past its own fields: the relative offsets would go negative. */
            uint64_t locked;
            memcpy(&locked, img + slot(3 + 11), 8);
            put64(img, slot(3 + 9), locked + 8);
        } else {
            put64(img, cases[i].at, cases[i].value);
        }
        expect_refused(img, sizeof img, cases[i].why);
    }
    free(orig);
}

static void test_refusals_name_the_version_or_build(void **state)
{
    (void)state;
    size_t len;
    unsigned char *img = read_fixture(&len);
    struct py_layout out;
    struct pt_err err;
    put64(img, 8, 0x030f00a1);
    assert_int_equal(layout_from_debug_offsets(&out, img, len, &err), PT_EVERSION);
    assert_non_null(strstr(err.msg, "3.15.0a1"));
    put64(img, 8, 0x030d00f0);
    put64(img, 16, 1);
    assert_int_equal(layout_from_debug_offsets(&out, img, len, &err), PT_EVERSION);
    assert_non_null(strstr(err.msg, "free-threaded builds not supported yet"));
    free(img);
}

/* ---- a synthetic 3.14 image ----------------------------------------------------------- */

/* The 3.14 _Py_DebugOffsets, section by section, with distinct values (differing from 3.13's so
 * that a field copied from the 3.13 table instead of the image shows). */
static const uint64_t v314[] = {
    /* runtime_state: size finalizing interpreters_head */
    300000, 1000, 1008,
    /* interpreter_state: size id next threads_head threads_main gc imports_modules sysdict
     * builtins ceval_gil gil_runtime_state gil_enabled gil_locked gil_holder
     * code_object_generation tlbc_generation */
    200000, 16, 24, 32, 40, 48, 56, 64, 72, 80, 1000, 0, 1040, 1032, 88, 0,
    /* thread_state: size prev next interp current_frame thread_id native_thread_id
     * datastack_chunk status */
    320, 8, 24, 32, 88, 168, 176, 248, 256,
    /* interpreter_frame: size previous executable instr_ptr localsplus owner stackpointer
     * tlbc_index */
    96, 16, 0, 64, 88, 82, 72, 0,
    /* code_object: size filename name qualname linetable firstlineno argcount localsplusnames
     * localspluskinds co_code_adaptive co_tlbc */
    224, 120, 128, 136, 144, 76, 60, 104, 112, 216, 0,
    /* pyobject: size ob_type */ 16, 8,
    /* type_object: size tp_name tp_repr tp_flags */ 416, 24, 88, 168,
    /* tuple_object: size ob_item ob_size */ 32, 24, 16,
    /* list_object: size ob_item ob_size */ 40, 24, 16,
    /* set_object: size used table mask */ 200, 24, 40, 32,
    /* dict_object: size ma_keys ma_values */ 56, 40, 48,
    /* float_object: size ob_fval */ 24, 16,
    /* long_object: size lv_tag ob_digit */ 32, 16, 24,
    /* bytes_object: size ob_size ob_sval */ 40, 16, 32,
    /* unicode_object: size state length asciiobject_size */ 72, 32, 16, 48,
    /* gc: size collecting */ 500, 20,
    /* gen_object: size gi_name gi_iframe gi_frame_state */ 200, 40, 88, 83,
    /* llist_node: next prev */ 0, 8,
    /* debugger_support: eval_breaker remote_debugger_support remote_debugging_enabled
     * debugger_pending_call debugger_script_path debugger_script_path_size */
    24, 400, 5000, 0, 4, 512,
};

static size_t build_314(unsigned char *img, uint64_t version, uint64_t free_threaded)
{
    memcpy(img, "xdebugpy", 8);
    put64(img, 8, version);
    put64(img, 16, free_threaded);
    for (size_t i = 0; i < sizeof v314 / sizeof v314[0]; i++)
        put64(img, slot(i), v314[i]);
    return slot(sizeof v314 / sizeof v314[0]);
}

static void test_synthetic_314_image_parses_to_expected_fields(void **state)
{
    (void)state;
    unsigned char img[IMAGE_314_SIZE + 64];
    size_t len = build_314(img, 0x030e00f0, 0);
    assert_int_equal(len, IMAGE_314_SIZE);
    struct py_layout l;
    struct pt_err err;
    enum pt_status st = layout_from_debug_offsets(&l, img, len, &err);
    if (st != PT_OK)
        fail_msg("3.14 image refused: %s", err.msg);

    assert_int_equal(l.major, 3);
    assert_int_equal(l.minor, 14);
    assert_int_equal(l.hexversion, 0x030e00f0);
    assert_int_equal(l.frame_model, PY_FRAMES_INTERP);
    assert_int_equal(l.linetable, PY_LT_LOCATIONS);
    assert_int_equal(l.strings, PY_STR_PEP393);
    assert_int_equal(l.rt_size, 300000);
    assert_int_equal(l.rt_interpreters_head, 1008);
    assert_int_equal(l.rt_gilstate_current, -1);
    assert_int_equal(l.rt_gil, -1);
    assert_int_equal(l.is_size, 200000);
    assert_int_equal(l.is_id, 16);
    assert_int_equal(l.is_next, 24);
    assert_int_equal(l.is_tstate_head, 32);
    assert_int_equal(l.is_modules, 56);
    assert_int_equal(l.is_ceval_gil, 80);
    assert_int_equal(l.gil_locked, 40);
    assert_int_equal(l.gil_last_holder, 32);
    assert_int_equal(l.ts_size, 320);
    assert_int_equal(l.ts_next, 24);
    assert_int_equal(l.ts_interp, 32);
    assert_int_equal(l.ts_current_frame, 88);
    assert_int_equal(l.ts_thread_id, 168);
    assert_int_equal(l.ts_native_thread_id, 176);
    assert_int_equal(l.ts_datastack_chunk, 248);
    assert_int_equal(l.ts_frame, -1);
    assert_int_equal(l.ts_cframe, -1);
    assert_int_equal(l.cf_current_frame, -1);
    assert_int_equal(l.if_size, 96);
    assert_int_equal(l.if_previous, 16);
    assert_int_equal(l.if_code, 0);
    assert_int_equal(l.if_instr, 64);
    assert_int_equal(l.if_localsplus, 88);
    assert_int_equal(l.if_owner, 82);
    assert_int_equal(l.if_instr_is_current, 1);
    assert_int_equal(l.if_owner_cstack, 4);
    assert_int_equal(l.if_owner_interpreter, 3);
    assert_int_equal(l.if_owner_generator, 1);
    assert_int_equal(l.if_code_tagged, 1);
    assert_int_equal(l.if_code_tag_mask, 3);
    assert_int_equal(l.co_size, 224);
    assert_int_equal(l.co_filename, 120);
    assert_int_equal(l.co_name, 128);
    assert_int_equal(l.co_qualname, 136);
    assert_int_equal(l.co_linetable, 144);
    assert_int_equal(l.co_firstlineno, 76);
    assert_int_equal(l.co_argcount, 60);
    assert_int_equal(l.co_localsplusnames, 104);
    assert_int_equal(l.co_localspluskinds, 112);
    assert_int_equal(l.co_code_adaptive, 216);
    /* Not carried: kept at their 3.13 distance from a carried neighbour. */
    assert_int_equal(l.co_flags, 56);
    assert_int_equal(l.co_posonlyargcount, 64);
    assert_int_equal(l.co_kwonlyargcount, 68);
    assert_int_equal(l.co_nlocals, 88);
    assert_int_equal(l.dict_ma_used, 24);
    assert_int_equal(l.uni_compact_size, 64);
    assert_int_equal(l.uni_legacy_data, 64);
    assert_int_equal(l.ob_type, 8);
    assert_int_equal(l.ob_size, 16);
    assert_int_equal(l.tp_name, 24);
    assert_int_equal(l.tp_flags, 168);
    assert_int_equal(l.tuple_item, 24);
    assert_int_equal(l.list_item, 24);
    assert_int_equal(l.dict_ma_keys, 40);
    assert_int_equal(l.dict_ma_values, 48);
    assert_int_equal(l.float_fval, 16);
    assert_int_equal(l.long_tag, 16);
    assert_int_equal(l.long_digit, 24);
    assert_int_equal(l.bytes_sval, 32);
    assert_int_equal(l.uni_state, 32);
    assert_int_equal(l.uni_length, 16);
    assert_int_equal(l.uni_ascii_size, 48);
    /* Not carried at all: PyDictKeysObject and the string facts come from the 3.13 table. */
    const struct py_layout *b = layout_for_version(3, 13);
    assert_int_equal(l.dk_size, b->dk_size);
    assert_int_equal(l.dk_kind, b->dk_kind);
    assert_int_equal(l.dk_nentries, b->dk_nentries);
    assert_int_equal(l.dk_indices, b->dk_indices);
    assert_int_equal(l.uni_state_interned_bits, 2);
    assert_int_equal(l.fo_back, -1);
    assert_int_equal(l.co_code, -1);
}

static void test_314_image_refused_when_truncated_prerelease_or_free_threaded(void **state)
{
    (void)state;
    unsigned char img[IMAGE_314_SIZE];
    struct py_layout l;
    struct pt_err err;
    build_314(img, 0x030e00c2, 0);
    assert_int_equal(layout_from_debug_offsets(&l, img, sizeof img, &err), PT_OK);
    assert_int_equal(l.hexversion, 0x030e00c2);
    expect_refused(img, IMAGE_314_SIZE - 1, "3.14 one byte short");
    expect_refused(img, IMAGE_313_SIZE, "3.14 read with 3.13's length");
    build_314(img, 0x030e00a7, 0);
    expect_refused(img, sizeof img, "3.14 alpha");
    build_314(img, 0x030e00f0, 1);
    expect_refused(img, sizeof img, "3.14 free-threaded");
    /* A 3.13 image claiming to be 3.14 runs out of bytes or fails the field checks. */
    size_t len;
    unsigned char *img13 = read_fixture(&len);
    put64(img13, 8, 0x030e00f0);
    expect_refused(img13, len, "3.13 layout labelled 3.14");
    free(img13);
}

/* ---- garbage ---------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_random_images_are_refused_without_crashing(void **state)
{
    (void)state;
    unsigned char img[1024];
    static const uint64_t versions[] = { 0x030d00f0, 0x030e00f0, 0x030d01f0, 0x030e03f0 };
    for (int round = 0; round < 3000; round++) {
        size_t len = rnd() % sizeof img;
        for (size_t i = 0; i < len; i++)
            img[i] = (unsigned char)rnd();
        if (round % 2 && len >= 24) {
            /* Past the header, so the section checks are what refuse it. */
            memcpy(img, "xdebugpy", 8);
            put64(img, 8, versions[rnd() % 4]);
            put64(img, 16, 0);
        }
        struct py_layout l;
        struct pt_err err;
        assert_int_equal(layout_from_debug_offsets(&l, img, len, &err), PT_EVERSION);
    }
}

static void test_mutated_real_image_never_crashes_and_stays_bounded(void **state)
{
    (void)state;
    size_t len;
    unsigned char *orig = read_fixture(&len);
    unsigned char img[IMAGE_313_SIZE];
    static const unsigned char bytes[] = { 0x00, 0x01, 0x7f, 0x80, 0xff };
    for (size_t at = 0; at < sizeof img; at++) {
        for (size_t b = 0; b < sizeof bytes; b++) {
            memcpy(img, orig, sizeof img);
            img[at] = bytes[b];
            struct py_layout l;
            struct pt_err err;
            enum pt_status st = layout_from_debug_offsets(&l, img, sizeof img, &err);
            assert_true(st == PT_OK || st == PT_EVERSION);
            if (st == PT_OK) {
                /* Whatever got through still lies inside the structs it describes. */
                assert_true(l.ts_next < l.ts_size && l.ts_current_frame < l.ts_size);
                assert_true(l.if_previous < l.if_size && l.if_owner < l.if_size);
                assert_true(l.co_flags >= 0 && l.co_nlocals < l.co_size);
                assert_true(l.is_tstate_head < l.is_size);
            }
        }
    }
    free(orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_exist_for_27_and_36_to_313),
        cmocka_unit_test(test_tables_pin_per_version_facts),
        cmocka_unit_test(test_real_313_image_matches_generated_table),
        cmocka_unit_test(test_313_image_refused_when_truncated_or_cookie_wrong),
        cmocka_unit_test(test_313_image_refused_on_hostile_values),
        cmocka_unit_test(test_refusals_name_the_version_or_build),
        cmocka_unit_test(test_synthetic_314_image_parses_to_expected_fields),
        cmocka_unit_test(test_314_image_refused_when_truncated_prerelease_or_free_threaded),
        cmocka_unit_test(test_random_images_are_refused_without_crashing),
        cmocka_unit_test(test_mutated_real_image_never_crashes_and_stays_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
