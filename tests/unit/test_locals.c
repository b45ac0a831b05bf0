/*
 * test_locals.c — readers/pyrepr.c and readers/locals.c over fake CPython processes built by
 * fakepy.c from each generated layout (one cmocka group per CPython version). Pins the rendering of
 * every type (ints of any size and sign, floats as repr() prints them, non-ASCII text, bytes,
 * containers with their bounds, cycles and depth), that garbage pointers and implausible lengths
 * give "<unreadable>" rather than a crash or a huge read, and a frame's variables by name with
 * argument flags, cells, unbound slots and default redaction.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "readers/locals.h"
#include "readers/pyrepr.h"
#include "util/rules.h"

#include "fakepy.c"
#include "per_layout.h"

#define HEAP (1u << 20)

static const struct py_layout *cur;

struct fx {
    struct fakepy fp;
    struct py_proc *p;
    uint64_t t_int, t_int27, t_float, t_list, t_tuple, t_set, t_bool, t_none, t_cell, t_widget;
    uint64_t none;
};

static bool py2(void) { return cur->strings == PY_STR_BYTES27; }

static uint64_t obj(struct fx *x, uint64_t type, size_t size)
{
    uint64_t o = fakepy_alloc(&x->fp, size < 64 ? 64 : size);
    fakepy_put64(&x->fp, o, 1);
    fakepy_put64(&x->fp, o + (uint64_t)cur->ob_type, type);
    return o;
}

/* An int from a decimal string of any length: 30-bit digits, sign by the version's rule. */
static uint64_t mk_int(struct fx *x, const char *dec)
{
    bool neg = *dec == '-';
    uint32_t d[128] = {0};
    size_t n = 0;
    for (const char *s = dec + neg; *s; s++) {
        uint64_t carry = (uint64_t)(*s - '0');
        for (size_t i = 0; i < n; i++) {
            uint64_t v = (uint64_t)d[i] * 10 + carry;
            d[i] = (uint32_t)(v & 0x3fffffff);
            carry = v >> 30;
        }
        if (carry)
            d[n++] = (uint32_t)carry;
    }
    if (py2() && n <= 2 && !(n == 2 && d[1] >= (1u << 3))) {   /* fits a 2.7 int */
        uint64_t o = obj(x, x->t_int27, (size_t)cur->int27_ival + 8);
        int64_t v = (int64_t)d[0] | (n > 1 ? (int64_t)d[1] << 30 : 0);
        fakepy_put64(&x->fp, o + (uint64_t)cur->int27_ival, (uint64_t)(neg ? -v : v));
        return o;
    }
    uint64_t o = obj(x, x->t_int, (size_t)cur->long_digit + 4 * (n + 1));
    if (cur->long_tag >= 0)
        fakepy_put64(&x->fp, o + (uint64_t)cur->long_tag,
                     (uint64_t)n << 3 | (n == 0 ? 1u : neg ? 2u : 0u));
    else
        fakepy_put64(&x->fp, o + (uint64_t)cur->ob_size, (uint64_t)(neg ? -(int64_t)n : (int64_t)n));
    for (size_t i = 0; i < n; i++)
        fakepy_put32(&x->fp, o + (uint64_t)cur->long_digit + 4 * i, d[i]);
    return o;
}

static uint64_t mk_float(struct fx *x, double v)
{
    uint64_t o = obj(x, x->t_float, (size_t)cur->float_fval + 8);
    memcpy(fakepy_at(&x->fp, o + (uint64_t)cur->float_fval, 8), &v, 8);
    return o;
}

static uint64_t mk_seq(struct fx *x, bool list, const uint64_t *items, size_t n)
{
    uint64_t o = obj(x, list ? x->t_list : x->t_tuple,
                     (size_t)(list ? cur->list_item : cur->tuple_item) + 8 * (n + 1));
    fakepy_put64(&x->fp, o + (uint64_t)cur->ob_size, n);
    uint64_t at = o + (uint64_t)cur->tuple_item;
    if (list) {
        at = fakepy_alloc(&x->fp, 8 * (n + 1));
        fakepy_put64(&x->fp, o + (uint64_t)cur->list_item, at);
    }
    for (size_t i = 0; i < n; i++)
        fakepy_put64(&x->fp, at + 8 * i, items[i]);
    return o;
}

static uint64_t mk_set(struct fx *x, const uint64_t *keys, size_t n)
{
    uint64_t o = obj(x, x->t_set, (size_t)cur->set_table + 8);
    uint64_t table = fakepy_alloc(&x->fp, 8 * (size_t)cur->set_entry_size);
    fakepy_put64(&x->fp, o + (uint64_t)cur->set_used, n);
    fakepy_put64(&x->fp, o + (uint64_t)cur->set_mask, 7);
    fakepy_put64(&x->fp, o + (uint64_t)cur->set_table, table);
    for (size_t i = 0; i < n; i++) {   /* every other slot, a deleted one in between (3.x) */
        uint64_t e = table + (uint64_t)cur->set_entry_size * (2 * i + 1);
        fakepy_put64(&x->fp, e + (uint64_t)cur->set_entry_key, keys[i]);
        fakepy_put64(&x->fp, e + (uint64_t)cur->set_entry_hash, 1000 + i);
        if (!py2()) {
            uint64_t dead = table + (uint64_t)cur->set_entry_size * (2 * i);
            fakepy_put64(&x->fp, dead + (uint64_t)cur->set_entry_key, x->none);
            fakepy_put64(&x->fp, dead + (uint64_t)cur->set_entry_hash, UINT64_MAX);
        }
    }
    return o;
}

static uint64_t mk_bool(struct fx *x, int v)
{
    uint64_t o = obj(x, x->t_bool, 64);
    if (py2())
        fakepy_put64(&x->fp, o + (uint64_t)cur->int27_ival, (uint64_t)v);
    else if (cur->long_tag >= 0)
        fakepy_put64(&x->fp, o + (uint64_t)cur->long_tag, v ? (1u << 3) : 1u);
    else
        fakepy_put64(&x->fp, o + (uint64_t)cur->ob_size, (uint64_t)v);
    fakepy_put32(&x->fp, o + (uint64_t)cur->long_digit, (uint32_t)v);
    return o;
}

static int fx_setup(void **state)
{
    struct fx *x = calloc(1, sizeof *x);
    if (!x)
        return -1;
    fakepy_init(&x->fp, cur, HEAP);
    x->t_int = fakepy_type(&x->fp, py2() ? "long" : "int");
    x->t_int27 = fakepy_type(&x->fp, "int");
    x->t_float = fakepy_type(&x->fp, "float");
    x->t_list = fakepy_type(&x->fp, "list");
    x->t_tuple = fakepy_type(&x->fp, "tuple");
    x->t_set = fakepy_type(&x->fp, "set");
    x->t_bool = fakepy_type(&x->fp, "bool");
    x->t_none = fakepy_type(&x->fp, "NoneType");
    x->t_cell = fakepy_type(&x->fp, "cell");
    x->t_widget = fakepy_type(&x->fp, "Widget");
    x->none = obj(x, x->t_none, 16);
    x->p = fakepy_proc(&x->fp);
    struct py_types *t = &x->p->types;
    t->long_ = x->t_int;
    t->int27 = py2() ? x->t_int27 : 0;
    t->float_ = x->t_float;
    t->list = x->t_list;
    t->tuple = x->t_tuple;
    t->bool_ = x->t_bool;
    t->none = x->none;
    /* set_, cell: left unknown, so the tp_name path is exercised */
    *state = x;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *x = *state;
    py_proc_close(x->p);
    fakepy_fini(&x->fp);
    free(x);
    return 0;
}

static const char *R(struct fx *x, uint64_t addr)
{
    static char buf[PYREPR_MAX];
    pyrepr(x->p, addr, buf, sizeof buf);
    return buf;
}

/* ---- values --------------------------------------------------------------------------------- */

static void none_bool_and_small_ints(void **state)
{
    struct fx *x = *state;
    assert_string_equal(R(x, x->none), "None");
    assert_string_equal(R(x, mk_bool(x, 1)), "True");
    assert_string_equal(R(x, mk_bool(x, 0)), "False");
    assert_string_equal(R(x, mk_int(x, "0")), "0");
    assert_string_equal(R(x, mk_int(x, "42")), "42");
    assert_string_equal(R(x, mk_int(x, "-17")), "-17");
    assert_string_equal(R(x, mk_int(x, "1073741824")), "1073741824");   /* 2^30: two digits */
}

static void big_ints_of_any_size_and_sign(void **state)
{
    struct fx *x = *state;
    const char *big = "1234567890123456789012345678901234567890";
    assert_string_equal(R(x, mk_int(x, big)), big);
    assert_string_equal(R(x, mk_int(x, "-1234567890123456789012345678901234567890")),
                        "-1234567890123456789012345678901234567890");
    assert_string_equal(R(x, mk_int(x, "1000000000000000000000000000000")),
                        "1000000000000000000000000000000");
    /* 200 decimal digits: exact, but shown as its first PYREPR_STR digits and the count. */
    char d200[201];
    for (int i = 0; i < 200; i++)
        d200[i] = (char)('1' + i % 9);
    d200[200] = '\0';
    const char *r = R(x, mk_int(x, d200));
    assert_memory_equal(r, d200, PYREPR_STR);
    assert_string_equal(r + PYREPR_STR, "...(200 digits)");
    /* 400 decimal digits: beyond PYREPR_INT_DIGITS, approximated. */
    char d400[401];
    memset(d400, '9', 400);
    d400[400] = '\0';
    r = R(x, mk_int(x, d400));
    assert_true(strncmp(r, "~", 1) == 0 && strstr(r, "e+399") != NULL);
}

static void floats_print_as_repr_does(void **state)
{
    struct fx *x = *state;
    assert_string_equal(R(x, mk_float(x, 2.5)), "2.5");
    char buf[48];
    static const struct { double v; const char *s; } cases[] = {
        {0.1, "0.1"}, {1.0, "1.0"}, {-0.0, "-0.0"}, {1e16, "1e+16"}, {1e15, "1000000000000000.0"},
        {1e-5, "1e-05"}, {0.0001, "0.0001"}, {123456.789, "123456.789"}, {1.0 / 3, "0.3333333333333333"},
        {-2.5e-300, "-2.5e-300"}, {1.0 / 0.0, "inf"}, {-1.0 / 0.0, "-inf"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pyrepr_float(cases[i].v, buf, sizeof buf);
        assert_string_equal(buf, cases[i].s);
    }
}

static void text_is_quoted_escaped_and_cut(void **state)
{
    struct fx *x = *state;
    if (py2()) {   /* a 2.7 str is bytes; unicode objects keep their characters */
        assert_string_equal(R(x, fakepy_str(&x->fp, "h\xc3\xa9llo")), "'h\\xc3\\xa9llo'");
        assert_string_equal(R(x, fakepy_unicode27(&x->fp, "h\xc3\xa9llo \xe5\x87\xbd")),
                            "u'h\xc3\xa9llo \xe5\x87\xbd'");
    } else {
        assert_string_equal(R(x, fakepy_str(&x->fp, "h\xc3\xa9llo \xe5\x87\xbd \xf0\x90\x8c\xb0")),
                            "'h\xc3\xa9llo \xe5\x87\xbd \xf0\x90\x8c\xb0'");
        assert_string_equal(R(x, fakepy_bytes(&x->fp, "\x00" "ab\xff", 4)), "b'\\x00ab\\xff'");
    }
    assert_string_equal(R(x, fakepy_str(&x->fp, "it's")), "\"it's\"");
    assert_string_equal(R(x, fakepy_str(&x->fp, "a\nb\\")), "'a\\nb\\\\'");
    char hundred[101];
    memset(hundred, 'x', 100);
    hundred[100] = '\0';
    char want[128];
    snprintf(want, sizeof want, "'%.*s'...(100 %s)", PYREPR_STR, hundred, py2() ? "bytes" : "chars");
    assert_string_equal(R(x, fakepy_str(&x->fp, hundred)), want);
}

static void containers_show_type_length_and_first_items(void **state)
{
    struct fx *x = *state;
    uint64_t ints[7];
    for (int i = 0; i < 7; i++) {
        char d[4];
        snprintf(d, sizeof d, "%d", i + 1);
        ints[i] = mk_int(x, d);
    }
    assert_string_equal(R(x, mk_seq(x, true, ints, 7)), "list(7) [1, 2, 3, 4, 5, ...]");
    assert_string_equal(R(x, mk_seq(x, true, ints, 3)), "list(3) [1, 2, 3]");
    assert_string_equal(R(x, mk_seq(x, false, ints, 1)), "tuple(1) (1,)");
    assert_string_equal(R(x, mk_seq(x, false, ints, 0)), "tuple(0) ()");
    assert_string_equal(R(x, mk_set(x, ints, 2)), "set(2) {1, 2}");
    uint64_t w = obj(x, x->t_widget, 32);
    char want[64];
    snprintf(want, sizeof want, "<Widget at 0x%llx>", (unsigned long long)w);
    assert_string_equal(R(x, w), want);
}

static void a_class_shows_its_own_name(void **state)
{
    struct fx *x = *state;
    /* A classmethod's cls: an object whose type is `type` is shown by its own tp_name. */
    uint64_t meta = fakepy_type(&x->fp, "type");
    uint64_t cls = fakepy_type(&x->fp, "Gadget");
    fakepy_put64(&x->fp, cls + (uint64_t)x->fp.L->ob_type, meta);
    assert_string_equal(R(x, cls), "<class 'Gadget'>");
}

static void depth_and_cycles_are_bounded(void **state)
{
    struct fx *x = *state;
    uint64_t one = mk_int(x, "1");
    uint64_t l3 = mk_seq(x, true, &one, 1);
    uint64_t l2 = mk_seq(x, true, &l3, 1);
    uint64_t l1 = mk_seq(x, true, &l2, 1);
    assert_string_equal(R(x, l1), "list(1) [list(1) [list(1) [...]]]");
    /* A list holding itself. */
    uint64_t self = mk_seq(x, true, &one, 1);
    uint64_t arr = fakepy_get64(&x->fp, self + (uint64_t)cur->list_item);
    fakepy_put64(&x->fp, arr, self);
    assert_string_equal(R(x, self), "list(1) [list(1) [...]]");
}

static void garbage_pointers_and_lengths_are_unreadable(void **state)
{
    struct fx *x = *state;
    assert_string_equal(R(x, FAKEPY_UNMAPPED), "<unreadable>");
    assert_string_equal(R(x, 0), "<unreadable>");
    assert_string_equal(R(x, FAKEPY_HEAP_BASE + 3), "<unreadable>");   /* misaligned */
    uint64_t wild_type = obj(x, FAKEPY_UNMAPPED, 32);
    assert_true(strstr(R(x, wild_type), "at 0x") != NULL);               /* type name unknown */
    uint64_t one = mk_int(x, "1");
    uint64_t list = mk_seq(x, true, &one, 1);
    fakepy_put64(&x->fp, list + (uint64_t)cur->ob_size, (uint64_t)1 << 50);   /* huge length */
    assert_string_equal(R(x, list), "<unreadable>");
    fakepy_put64(&x->fp, list + (uint64_t)cur->ob_size, 3);
    fakepy_put64(&x->fp, list + (uint64_t)cur->list_item, FAKEPY_UNMAPPED);   /* wild items */
    assert_string_equal(R(x, list), "list(3) [<unreadable>]");
    uint64_t s = fakepy_str(&x->fp, "abc");
    fakepy_put64(&x->fp, s + (uint64_t)(py2() ? cur->ob_size : cur->uni_length), (uint64_t)1 << 60);
    assert_string_equal(R(x, s), "<unreadable>");
    uint64_t big = mk_int(x, "1234567890123456789012345678901234567890");
    if (cur->long_tag >= 0)
        fakepy_put64(&x->fp, big + (uint64_t)cur->long_tag, (uint64_t)1 << 40);
    else
        fakepy_put64(&x->fp, big + (uint64_t)cur->ob_size, (uint64_t)1 << 40);
    assert_string_equal(R(x, big), "<unreadable>");
    uint64_t set = mk_set(x, &one, 1);
    fakepy_put64(&x->fp, set + (uint64_t)cur->set_table, FAKEPY_UNMAPPED);
    assert_string_equal(R(x, set), "set(1) {<unreadable>}");
}

static void output_never_exceeds_the_buffer(void **state)
{
    struct fx *x = *state;
    uint64_t items[5];
    char hundred[101];
    memset(hundred, 'y', 100);
    hundred[100] = '\0';
    for (int i = 0; i < 5; i++)
        items[i] = fakepy_str(&x->fp, hundred);
    char small[40];
    size_t n = pyrepr(x->p, mk_seq(x, true, items, 5), small, sizeof small);
    assert_true(n < sizeof small);
    assert_int_equal(strlen(small), n);
    assert_string_equal(small + n - 3, "...");
}

/* ---- a frame's variables -------------------------------------------------------------------- */

/* A code object of f(a, password) with locals x, y (unbound) and a cell `captured`. */
static uint64_t mk_code(struct fx *x)
{
    uint64_t code = fakepy_code(&x->fp, "f", "f", "/srv/app.py", 10);
    const char *names[] = {"a", "password", "x", "y", "captured"};
    uint64_t objs[5];
    for (int i = 0; i < 5; i++)
        objs[i] = fakepy_str(&x->fp, names[i]);
    fakepy_put32(&x->fp, code + (uint64_t)cur->co_argcount, 2);
    if (cur->co_localsplusnames >= 0) {
        uint8_t kinds[5] = {PY_VAR_LOCAL, PY_VAR_LOCAL, PY_VAR_LOCAL, PY_VAR_LOCAL, PY_VAR_CELL};
        fakepy_put64(&x->fp, code + (uint64_t)cur->co_localsplusnames, mk_seq(x, false, objs, 5));
        fakepy_put64(&x->fp, code + (uint64_t)cur->co_localspluskinds,
                     fakepy_bytes(&x->fp, kinds, 5));
    } else {
        fakepy_put64(&x->fp, code + (uint64_t)cur->co_varnames, mk_seq(x, false, objs, 4));
        fakepy_put64(&x->fp, code + (uint64_t)cur->co_cellvars, mk_seq(x, false, objs + 4, 1));
        fakepy_put64(&x->fp, code + (uint64_t)cur->co_freevars, mk_seq(x, false, NULL, 0));
        fakepy_put32(&x->fp, code + (uint64_t)cur->co_nlocals, 4);
    }
    return code;
}

static uint64_t slot_addr(uint64_t frame, int i)
{
    int32_t base = cur->frame_model == PY_FRAMES_INTERP ? cur->if_localsplus : cur->fo_localsplus;
    return frame + (uint64_t)base + 8 * (uint64_t)i;
}

static void frame_variables_by_name_with_args_cells_and_redaction(void **state)
{
    struct fx *x = *state;
    uint64_t code = mk_code(x);
    uint64_t frame = fakepy_frame(&x->fp, code, 0, 4);
    uint64_t cell = obj(x, x->t_cell, 32);
    fakepy_put64(&x->fp, cell + (uint64_t)cur->cell_ref, fakepy_str(&x->fp, "kept"));
    fakepy_put64(&x->fp, slot_addr(frame, 0), mk_int(x, "7"));
    fakepy_put64(&x->fp, slot_addr(frame, 1), fakepy_str(&x->fp, "hunter2"));
    fakepy_put64(&x->fp, slot_addr(frame, 2), mk_float(x, 0.5));
    fakepy_put64(&x->fp, slot_addr(frame, 3), 0);   /* y: unbound */
    fakepy_put64(&x->fp, slot_addr(frame, 4), cell);

    struct rules *rules;
    struct pt_err err;
    assert_int_equal(rules_new(&rules, false, &err), PT_OK);
    struct py_frame f = {.addr = frame, .code_addr = code};
    f.code = code_cache_get(x->p->codes, x->p->mem, &x->p->layout, &x->p->types, code, 0);
    assert_non_null(f.code);
    struct py_locals *out = malloc(sizeof *out);
    assert_int_equal(py_locals_read(x->p, NULL, &f, rules, out, &err), PT_OK);
    assert_int_equal(out->n, 4);
    assert_string_equal(out->items[0].name, "a");
    assert_string_equal(out->items[0].value, "7");
    assert_true(out->items[0].arg);
    assert_string_equal(out->items[1].name, "password");
    assert_string_equal(out->items[1].value, "<redacted>");
    assert_true(out->items[1].arg && out->items[1].redacted);
    assert_string_equal(out->items[2].name, "x");
    assert_string_equal(out->items[2].value, "0.5");
    assert_false(out->items[2].arg);
    assert_string_equal(out->items[3].name, "captured");
    assert_string_equal(out->items[3].value, "'kept'");
    assert_int_equal(out->redacted, 1);
    /* Without rules nothing is redacted. */
    assert_int_equal(py_locals_read(x->p, NULL, &f, NULL, out, &err), PT_OK);
    assert_string_equal(out->items[1].value, "'hunter2'");
    /* The frame now runs other code: nothing is reported. */
    struct py_frame g = f;
    g.code_addr = code + 16;
    assert_int_equal(py_locals_read(x->p, NULL, &g, rules, out, &err), PT_EFAIL);
    assert_int_equal(out->n, 0);
    free(out);
    rules_free(rules);
}

static void unreadable_names_fail_the_frame(void **state)
{
    struct fx *x = *state;
    uint64_t code = mk_code(x);
    int32_t off = cur->co_localsplusnames >= 0 ? cur->co_localsplusnames : cur->co_varnames;
    fakepy_put64(&x->fp, code + (uint64_t)off, FAKEPY_UNMAPPED);
    uint64_t frame = fakepy_frame(&x->fp, code, 0, 4);
    struct py_frame f = {.addr = frame, .code_addr = code};
    f.code = code_cache_get(x->p->codes, x->p->mem, &x->p->layout, &x->p->types, code, 0);
    struct py_locals *out = malloc(sizeof *out);
    struct pt_err err;
    assert_int_equal(py_locals_read(x->p, NULL, &f, NULL, out, &err), PT_EFAIL);
    assert_int_equal(out->n, 0);
    free(out);
}

/* After the process has exited (reads fail with ESRCH), a code object checked before stays
 * resolvable even after a tick (--ebpf drains records after the exit); an unmapped one, or one
 * never seen, does not. */
static void code_entries_outlive_their_process_but_not_their_mapping(void **state)
{
    struct fx *x = *state;
    uint64_t code = mk_code(x), other = mk_code(x);
    const struct py_code *c = code_cache_get(x->p->codes, x->p->mem, &x->p->layout, &x->p->types,
                                             code, 0);
    assert_non_null(c);
    code_cache_tick(x->p->codes);
    assert_null(code_cache_get(x->p->codes, x->p->mem, &x->p->layout, &x->p->types,
                               0x7fff00000000ull, 0));   /* unmapped: EFAULT */
    mem_fake_gone(x->p->mem);
    assert_ptr_equal(code_cache_get(x->p->codes, x->p->mem, &x->p->layout, &x->p->types, code, 0), c);
    assert_null(code_cache_get(x->p->codes, x->p->mem, &x->p->layout, &x->p->types, other, 0));
}

#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(code_entries_outlive_their_process_but_not_their_mapping),
        T(none_bool_and_small_ints),
        T(big_ints_of_any_size_and_sign),
        T(floats_print_as_repr_does),
        T(text_is_quoted_escaped_and_cut),
        T(containers_show_type_length_and_first_items),
        T(a_class_shows_its_own_name),
        T(depth_and_cycles_are_bounded),
        T(garbage_pointers_and_lengths_are_unreadable),
        T(output_never_exceeds_the_buffer),
        T(frame_variables_by_name_with_args_cells_and_redaction),
        T(unreadable_names_fail_the_frame),
    };
    return PER_LAYOUT_RUN("locals", tests, cur);
}
