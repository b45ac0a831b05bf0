/*
 * test_loops.c — readers/loops.c against the interpreters' own bytecode and against hostile input.
 *
 * Fixtures in tests/unit/fixtures/loops/ come from scripts/gen_loop_fixtures.py run under every
 * supported CPython: raw bytecode (co_code, and from 3.11 the live quickened co_code_adaptive, from
 * 3.12 also instrumented by sys.monitoring) with the backward edges dis and the exception tables
 * give, and may-go-back answers found by a breadth-first search. The hand-made cases pin what real
 * compilers never emit: truncation, EXTENDED_ARG chains, unknown opcodes, random bytes.
 * Set PT_LOOPS_SWEEP=<dir> to also check files written by gen_loop_fixtures.py --sweep <dir>.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "readers/loops.h"

#ifndef PT_SOURCE_ROOT
#error "build with -DPT_SOURCE_ROOT=\"<repo root>\" so that fixtures can be found"
#endif

#define FIXTURE_DIR PT_SOURCE_ROOT "/tests/unit/fixtures/loops/"
#define EDGES_CAP 4096

/* ---- fixture reading ------------------------------------------------------------------------ */

struct fx_probe {
    uint32_t from, to;
    bool back;
};

struct fx_code {
    char name[128];
    char form[16];            /* plain, adaptive, monitored, lines */
    uint8_t *code;            /* exactly len bytes, so ASan sees any overread */
    size_t len;
    bool hidden;              /* expect LOOPS_EHIDDEN */
    struct loop_jump *edges;
    size_t nedges;
    uint32_t *calls;
    size_t ncalls;
    struct fx_probe *probes;
    size_t nprobes;
};

struct fx_file {
    int major, minor;
    struct fx_code *codes;
    size_t n;
};

static char *fx_token(char **cursor)
{
    return strtok_r(NULL, " \t\n", cursor);
}

static uint8_t *fx_unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    uint8_t *out = malloc(n ? n : 1);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    *len = n;
    return out;
}

/* Reads the rest of a line as unsigned numbers ("-" is none); returns a malloc'd array. */
static uint32_t *fx_numbers(char **cursor, size_t *n)
{
    size_t cap = 64;
    uint32_t *v = malloc(cap * sizeof *v);
    assert_non_null(v);
    *n = 0;
    char *tok;
    while ((tok = fx_token(cursor)) != NULL) {
        if (strcmp(tok, "-") == 0)
            continue;
        if (*n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
            assert_non_null(v);
        }
        v[(*n)++] = (uint32_t)strtoul(tok, NULL, 10);
    }
    return v;
}

static void fx_add_line(struct fx_code *cur, const char *tag, char **cursor)
{
    size_t k;
    uint32_t *v = fx_numbers(cursor, &k);
    if (strcmp(tag, "edges") == 0) {
        assert_int_equal(k % 2, 0);
        cur->nedges = k / 2;
        cur->edges = calloc(k / 2 + 1, sizeof *cur->edges);
        assert_non_null(cur->edges);
        for (size_t i = 0; i < k / 2; i++) {
            cur->edges[i].src = v[2 * i];
            cur->edges[i].target = v[2 * i + 1];
        }
        free(v);
    } else if (strcmp(tag, "calls") == 0) {
        cur->calls = v;
        cur->ncalls = k;
    } else {
        assert_int_equal(k % 3, 0);
        cur->nprobes = k / 3;
        cur->probes = calloc(k / 3 + 1, sizeof *cur->probes);
        assert_non_null(cur->probes);
        for (size_t i = 0; i < k / 3; i++)
            cur->probes[i] = (struct fx_probe){v[3 * i], v[3 * i + 1], v[3 * i + 2] != 0};
        free(v);
    }
}

static bool fx_load_path(const char *path, struct fx_file *fx)
{
    FILE *fh = fopen(path, "r");
    if (!fh)
        return false;
    size_t cap = 0;
    struct fx_code *cur = NULL;
    char *line = NULL, *cursor;
    size_t linecap = 0;
    memset(fx, 0, sizeof *fx);
    while (getline(&line, &linecap, fh) > 0) {
        char *tag = strtok_r(line, " \t\n", &cursor);
        if (!tag || tag[0] == '#')
            continue;
        if (strcmp(tag, "version") == 0) {
            fx->major = atoi(fx_token(&cursor));
            fx->minor = atoi(fx_token(&cursor));
        } else if (strcmp(tag, "code") == 0) {
            if (fx->n == cap) {
                cap = cap ? 2 * cap : 64;
                fx->codes = realloc(fx->codes, cap * sizeof *fx->codes);
                assert_non_null(fx->codes);
            }
            cur = &fx->codes[fx->n++];
            memset(cur, 0, sizeof *cur);
            snprintf(cur->name, sizeof cur->name, "%s", fx_token(&cursor));
            snprintf(cur->form, sizeof cur->form, "%s", fx_token(&cursor));
            cur->code = fx_unhex(fx_token(&cursor), &cur->len);
        } else if (strcmp(tag, "expect") == 0) {
            assert_non_null(cur);
            cur->hidden = strcmp(fx_token(&cursor), "hidden") == 0;
        } else {
            assert_non_null(cur);
            fx_add_line(cur, tag, &cursor);
        }
    }
    free(line);
    fclose(fh);
    return true;
}

static void fx_load(const char *file, struct fx_file *fx)
{
    char path[1024];
    snprintf(path, sizeof path, "%s%s", FIXTURE_DIR, file);
    if (!fx_load_path(path, fx))
        fail_msg("missing fixture %s (run scripts/gen_loop_fixtures.py)", path);
    assert_true(fx->n > 0);
}

static void fx_free(struct fx_file *fx)
{
    for (size_t i = 0; i < fx->n; i++) {
        free(fx->codes[i].code);
        free(fx->codes[i].edges);
        free(fx->codes[i].calls);
        free(fx->codes[i].probes);
    }
    free(fx->codes);
}

static const struct fx_code *fx_find(const struct fx_file *fx, const char *name, const char *form)
{
    for (size_t i = 0; i < fx->n; i++)
        if (strcmp(fx->codes[i].name, name) == 0 && strcmp(fx->codes[i].form, form) == 0)
            return &fx->codes[i];
    return NULL;
}

static const struct py_opcodes *ops_of(const struct fx_file *fx)
{
    const struct py_opcodes *ops = opcodes_for_version(fx->major, fx->minor);
    assert_non_null(ops);
    return ops;
}

/* Scans a fixture's bytecode; fails the test unless the status is the expected one. */
static size_t scan_ok(const struct py_opcodes *ops, const struct fx_code *c, struct loop_jump *out)
{
    size_t n = 99;
    int rc = loops_scan(ops, c->code, c->len, out, EDGES_CAP, &n);
    if (c->hidden) {
        if (rc != LOOPS_EHIDDEN)
            fail_msg("%s (%s): status %d, want hidden", c->name, c->form, rc);
        return 0;
    }
    if (rc != LOOPS_OK)
        fail_msg("%s (%s): status %d", c->name, c->form, rc);
    return n;
}

/* ---- checks on real bytecode ---------------------------------------------------------------- */

/* Every record's edges and probes; returns the number of records checked. */
static size_t check_file(const struct fx_file *fx)
{
    const struct py_opcodes *ops = ops_of(fx);
    struct loop_jump *got = malloc(EDGES_CAP * sizeof *got);
    assert_non_null(got);
    for (size_t i = 0; i < fx->n; i++) {
        const struct fx_code *c = &fx->codes[i];
        size_t n = scan_ok(ops, c, got);
        if (c->hidden)
            continue;
        if (n != c->nedges)
            fail_msg("%d.%d %s (%s): %zu edges, want %zu", fx->major, fx->minor, c->name, c->form,
                     n, c->nedges);
        for (size_t k = 0; k < n; k++) {
            if (got[k].src != c->edges[k].src || got[k].target != c->edges[k].target)
                fail_msg("%d.%d %s (%s): edge %zu is %u->%u, want %u->%u", fx->major, fx->minor,
                         c->name, c->form, k, got[k].src, got[k].target, c->edges[k].src,
                         c->edges[k].target);
        }
        for (size_t k = 0; k < c->nprobes; k++) {
            const struct fx_probe *p = &c->probes[k];
            if (loops_may_go_back(got, n, p->from, p->to) != p->back)
                fail_msg("%d.%d %s (%s): may_go_back(%u, %u) should be %d", fx->major, fx->minor,
                         c->name, c->form, p->from, p->to, p->back);
        }
    }
    free(got);
    return fx->n;
}

static void check_version(const char *file)
{
    struct fx_file fx;
    fx_load(file, &fx);
    check_file(&fx);
    fx_free(&fx);
}

static void test_py27_edges_match_cpython(void **state) { (void)state; check_version("py2.7.txt"); }
static void test_py36_edges_match_cpython(void **state) { (void)state; check_version("py3.6.txt"); }
static void test_py37_edges_match_cpython(void **state) { (void)state; check_version("py3.7.txt"); }
static void test_py38_edges_match_cpython(void **state) { (void)state; check_version("py3.8.txt"); }
static void test_py39_edges_match_cpython(void **state) { (void)state; check_version("py3.9.txt"); }
static void test_py310_edges_match_cpython(void **state) { (void)state; check_version("py3.10.txt"); }
static void test_py311_edges_match_cpython(void **state) { (void)state; check_version("py3.11.txt"); }
static void test_py312_edges_match_cpython(void **state) { (void)state; check_version("py3.12.txt"); }
static void test_py313_edges_match_cpython(void **state) { (void)state; check_version("py3.13.txt"); }

static const char *const ALL_FIXTURES[] = {
    "py2.7.txt", "py3.6.txt", "py3.7.txt", "py3.8.txt", "py3.9.txt",
    "py3.10.txt", "py3.11.txt", "py3.12.txt", "py3.13.txt",
};
#define NFIXTURES (sizeof ALL_FIXTURES / sizeof ALL_FIXTURES[0])

/* A function without loops: no edges, and no call site can be followed by an earlier one. */
static void test_loopless_function_never_goes_back(void **state)
{
    (void)state;
    struct loop_jump got[8];
    for (size_t v = 0; v < NFIXTURES; v++) {
        struct fx_file fx;
        fx_load(ALL_FIXTURES[v], &fx);
        for (size_t i = 0; i < fx.n; i++) {
            const struct fx_code *c = &fx.codes[i];
            if (strcmp(c->name, "loopless") != 0 || c->hidden)
                continue;
            size_t n = 99;
            assert_int_equal(loops_scan(ops_of(&fx), c->code, c->len, got, 8, &n), LOOPS_OK);
            assert_int_equal(n, 0);
            assert_true(c->ncalls >= 3);
            for (size_t a = 0; a < c->ncalls; a++)
                for (size_t b = 0; b < a; b++)
                    assert_false(loops_may_go_back(got, n, c->calls[a], c->calls[b]));
            /* ...and moving forward is always allowed */
            assert_true(loops_may_go_back(got, n, c->calls[0], c->calls[c->ncalls - 1]));
        }
        fx_free(&fx);
    }
}

/* Inside a loop every call site can be followed by the loop head and by every earlier call. */
static void test_inside_loops_going_back_is_possible(void **state)
{
    (void)state;
    static const char *const loops[] = {"while_loop", "for_loop", "nested", "try_in_loop",
                                        "with_in_loop", "while_true_first", "big_loop"};
    struct loop_jump *got = malloc(EDGES_CAP * sizeof *got);
    assert_non_null(got);
    size_t checked = 0;
    for (size_t v = 0; v < NFIXTURES; v++) {
        struct fx_file fx;
        fx_load(ALL_FIXTURES[v], &fx);
        for (size_t i = 0; i < fx.n; i++) {
            const struct fx_code *c = &fx.codes[i];
            bool wanted = false;
            for (size_t k = 0; k < sizeof loops / sizeof loops[0]; k++)
                wanted |= strcmp(c->name, loops[k]) == 0;
            if (!wanted || c->hidden)
                continue;
            size_t n = scan_ok(ops_of(&fx), c, got);
            assert_true(n >= 1);
            for (size_t e = 0; e < n; e++) {
                if (got[e].src >= c->len)
                    continue;   /* a deferred edge (finally blocks) */
                assert_true(loops_may_go_back(got, n, got[e].src, got[e].target));
                for (size_t a = 0; a < c->ncalls; a++) {
                    if (c->calls[a] <= got[e].target || c->calls[a] > got[e].src)
                        continue;
                    assert_true(loops_may_go_back(got, n, c->calls[a], got[e].target));
                    for (size_t b = 0; b < a; b++)
                        if (c->calls[b] >= got[e].target)
                            assert_true(loops_may_go_back(got, n, c->calls[a], c->calls[b]));
                    checked++;
                }
            }
        }
        fx_free(&fx);
    }
    assert_true(checked > 50);
    free(got);
}

/* Two loops one after the other: nothing leads from the second back into the first. */
static void test_consecutive_loops_do_not_join(void **state)
{
    (void)state;
    struct loop_jump got[16];
    for (size_t v = 0; v < NFIXTURES; v++) {
        struct fx_file fx;
        fx_load(ALL_FIXTURES[v], &fx);
        const struct fx_code *c = fx_find(&fx, "two_loops", "plain");
        assert_non_null(c);
        size_t n = 0;
        assert_int_equal(loops_scan(ops_of(&fx), c->code, c->len, got, 16, &n), LOOPS_OK);
        assert_int_equal(n, 2);
        assert_int_equal(c->ncalls, 3);   /* f(x) in loop 1, g(y) in loop 2, h(a) after */
        assert_true(loops_may_go_back(got, n, c->calls[0], c->calls[0] - 2));
        assert_true(loops_may_go_back(got, n, c->calls[1], got[1].target));
        assert_false(loops_may_go_back(got, n, c->calls[1], c->calls[0]));
        assert_false(loops_may_go_back(got, n, c->calls[2], c->calls[1]));
        assert_false(loops_may_go_back(got, n, c->calls[2], got[1].target));
        fx_free(&fx);
    }
}

/* 3.8–3.10 put the head of a `while True` that opens a function at offset 0. */
static void test_while_true_head_at_offset_zero(void **state)
{
    (void)state;
    for (int minor = 8; minor <= 10; minor++) {
        char file[32];
        snprintf(file, sizeof file, "py3.%d.txt", minor);
        struct fx_file fx;
        fx_load(file, &fx);
        const struct fx_code *c = fx_find(&fx, "while_true_first", "plain");
        assert_non_null(c);
        struct loop_jump got[8];
        size_t n = scan_ok(ops_of(&fx), c, got);
        assert_true(n >= 1);
        assert_int_equal(got[0].reach, 0);
        assert_true(loops_may_go_back(got, n, c->calls[c->ncalls - 1], 0));
        assert_true(loops_may_go_back(got, n, c->calls[0], 0));
        fx_free(&fx);
    }
}

/* The quickened and instrumented fixtures really hold other opcodes than co_code. */
static void test_live_forms_differ_from_co_code(void **state)
{
    (void)state;
    static const char *const files[] = {"py3.11.txt", "py3.12.txt", "py3.13.txt"};
    for (size_t v = 0; v < 3; v++) {
        struct fx_file fx;
        fx_load(files[v], &fx);
        const struct py_opcodes *ops = ops_of(&fx);
        size_t specialized = 0, instrumented = 0, hidden = 0;
        for (size_t i = 0; i < fx.n; i++) {
            const struct fx_code *c = &fx.codes[i];
            const struct fx_code *plain = fx_find(&fx, c->name, "plain");
            assert_non_null(plain);
            assert_int_equal(plain->len, c->len);
            for (size_t k = 0; k < c->len; k += 2) {
                if (c->code[k] == plain->code[k] || plain->code[k] == 0)
                    continue;   /* same opcode, or inside caches (zero in co_code) */
                if (strcmp(c->form, "adaptive") == 0)
                    specialized += ops->deopt[c->code[k]] == plain->code[k];
                else if (strcmp(c->form, "monitored") == 0)
                    instrumented += ops->deopt[c->code[k]] == ops->deopt[plain->code[k]];
                else
                    hidden += (ops->flags[c->code[k]] & OPC_HIDDEN) != 0;
            }
        }
        assert_true(specialized > 20);
        if (v > 0) {
            assert_true(instrumented > 20);
            assert_true(hidden > 20);
        }
        fx_free(&fx);
    }
}

/* ENTER_EXECUTOR (3.13) replaces a JUMP_BACKWARD whose real opcode lives in an executor. */
static void test_enter_executor_hides_loops(void **state)
{
    (void)state;
    struct fx_file fx;
    fx_load("py3.13.txt", &fx);
    const struct py_opcodes *ops = ops_of(&fx);
    const struct fx_code *c = fx_find(&fx, "while_loop", "adaptive");
    assert_non_null(c);
    assert_int_equal(c->nedges, 1);
    uint8_t *code = malloc(c->len);
    assert_non_null(code);
    memcpy(code, c->code, c->len);
    uint8_t enter = 0;
    for (int op = 0; op < 256; op++)
        if ((ops->flags[op] & OPC_HIDDEN) && ops->deopt[op] == op && op < 200)
            enter = (uint8_t)op;   /* ENTER_EXECUTOR: the hidden opcode below the INSTRUMENTED_ */
    assert_int_equal(enter, 70);
    code[c->edges[0].src] = enter;
    struct loop_jump got[4];
    size_t n = 99;
    assert_int_equal(loops_scan(ops, code, c->len, got, 4, &n), LOOPS_EHIDDEN);
    free(code);
    fx_free(&fx);
}

/* A jump over a 300-statement loop body needs EXTENDED_ARG: relative jumps back (3.11+) carry the
 * prefix themselves; before, the loop's exit jump (forward, absolute or relative) does. */
static void test_extended_arg_jumps_are_decoded(void **state)
{
    (void)state;
    for (size_t v = 1; v < NFIXTURES; v++) {   /* 2.7's 16-bit arguments need no prefix here */
        struct fx_file fx;
        fx_load(ALL_FIXTURES[v], &fx);
        const struct py_opcodes *ops = ops_of(&fx);
        const struct fx_code *c = fx_find(&fx, "big_loop", "plain");
        assert_non_null(c);
        struct loop_jump got[8];
        size_t n = scan_ok(ops, c, got);
        assert_int_equal(n, 1);
        assert_true(got[0].src - got[0].target > 256 * 2);
        size_t prefixes = 0;
        for (size_t k = 0; k + 2 <= c->len; k += 2)
            prefixes += c->code[k] == ops->extended_arg;
        assert_true(prefixes >= 1);
        if (fx.minor >= 11)
            assert_int_equal(c->code[got[0].src - 2], ops->extended_arg);
        fx_free(&fx);
    }
}

/* ---- hostile input -------------------------------------------------------------------------- */

static const struct py_opcodes *ops_v(int major, int minor)
{
    const struct py_opcodes *ops = opcodes_for_version(major, minor);
    assert_non_null(ops);
    return ops;
}

static int scan_bytes(const struct py_opcodes *ops, const uint8_t *bytes, size_t len, size_t *n)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, bytes, len);
    struct loop_jump got[8];
    int rc = loops_scan(ops, copy, len, got, 8, n);
    free(copy);
    return rc;
}

static uint8_t op_of(const struct py_opcodes *ops, uint8_t flag, uint8_t not_flag)
{
    for (int op = 0; op < 256; op++)
        if ((ops->flags[op] & flag) == flag && !(ops->flags[op] & not_flag) && ops->deopt[op] == op)
            return (uint8_t)op;
    fail_msg("no opcode with flags %#x", flag);
    return 0;
}

static void test_extended_arg_chains(void **state)
{
    (void)state;
    const struct py_opcodes *ops = ops_v(3, 9);
    uint8_t ext = ops->extended_arg, jabs = op_of(ops, OPC_JUMP_ABS | OPC_KNOWN, 0);
    size_t n = 99;
    /* Three zero prefixes are legal: a jump to 0 from offset 6. */
    uint8_t ok[] = {ext, 0, ext, 0, ext, 0, jabs, 0};
    assert_int_equal(scan_bytes(ops, ok, sizeof ok, &n), LOOPS_OK);
    assert_int_equal(n, 1);
    /* Prefixes that push the argument past 32 bits are garbage, not a huge jump. */
    uint8_t big[] = {ext, 1, ext, 0, ext, 0, ext, 0, jabs, 0};
    assert_int_equal(scan_bytes(ops, big, sizeof big, &n), LOOPS_EBADCODE);
    /* A prefix with nothing after it. */
    uint8_t dangling[] = {jabs, 0, ext, 0};
    assert_int_equal(scan_bytes(ops, dangling, sizeof dangling, &n), LOOPS_EBADCODE);
    /* A prefixed target past the end. */
    uint8_t far[] = {ext, 1, jabs, 0};
    assert_int_equal(scan_bytes(ops, far, sizeof far, &n), LOOPS_EBADCODE);
    /* 2.7: EXTENDED_ARG gives the high 16 bits. */
    const struct py_opcodes *o27 = ops_v(2, 7);
    uint8_t j27 = op_of(o27, OPC_JUMP_ABS | OPC_KNOWN, OPC_DEFERRED);
    uint8_t b27[] = {o27->extended_arg, 0, 0, j27, 0, 0};
    assert_int_equal(scan_bytes(o27, b27, sizeof b27, &n), LOOPS_OK);
    assert_int_equal(n, 1);
    uint8_t c27[] = {o27->extended_arg, 1, 0, j27, 0, 0};
    assert_int_equal(scan_bytes(o27, c27, sizeof c27, &n), LOOPS_EBADCODE);
    /* 3.11+: the last prefix counts from after the jump's caches. */
    const struct py_opcodes *o13 = ops_v(3, 13);
    uint8_t back = op_of(o13, OPC_JUMP_REL_BACK | OPC_KNOWN, 0);
    assert_int_equal(o13->cache_entries[back], 1);
    uint8_t nop = op_of(o13, OPC_KNOWN, OPC_JUMP_ABS | OPC_JUMP_REL_FWD | OPC_JUMP_REL_BACK |
                                            OPC_HIDDEN);
    uint8_t code13[600];
    for (size_t i = 0; i < sizeof code13; i += 2) {
        code13[i] = nop;
        code13[i + 1] = 0;
        if (o13->cache_entries[nop])
            fail_msg("picked an opcode with caches");
    }
    /* at 590: EXTENDED_ARG 1, JUMP_BACKWARD 40 (+1 cache) → next 596 − 2·296 = 4 */
    code13[590] = o13->extended_arg;
    code13[591] = 1;
    code13[592] = back;
    code13[593] = 40;
    code13[594] = 0xff;   /* the cache unit: garbage that must not be decoded */
    code13[595] = 0xff;
    struct loop_jump got[4];
    assert_int_equal(loops_scan(o13, code13, 596, got, 4, &n), LOOPS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(got[0].src, 592);
    assert_int_equal(got[0].target, 4);
}

static void test_malformed_bytecode_is_refused(void **state)
{
    (void)state;
    size_t n = 99;
    const struct py_opcodes *o12 = ops_v(3, 12);
    /* odd length, empty, unknown opcode, caches past the end */
    uint8_t odd[] = {1, 0, 1};
    assert_int_equal(scan_bytes(o12, odd, sizeof odd, &n), LOOPS_EBADCODE);
    assert_int_equal(scan_bytes(o12, odd, 0, &n), LOOPS_EBADCODE);
    int unknown = -1;
    for (int op = 0; op < 256 && unknown < 0; op++)
        if (!o12->flags[op])
            unknown = op;
    assert_true(unknown >= 0);
    uint8_t bad[] = {1, 0, (uint8_t)unknown, 0};
    assert_int_equal(scan_bytes(o12, bad, sizeof bad, &n), LOOPS_EBADCODE);
    int cached = -1;
    for (int op = 0; op < 256 && cached < 0; op++)
        if (o12->cache_entries[op] >= 2 && o12->deopt[op] == op)
            cached = op;
    uint8_t cut[] = {(uint8_t)cached, 0, 0, 0};
    assert_int_equal(scan_bytes(o12, cut, sizeof cut, &n), LOOPS_EBADCODE);
    /* a backward jump landing before the code */
    uint8_t back = op_of(o12, OPC_JUMP_REL_BACK | OPC_KNOWN, 0);
    uint8_t under[] = {1, 0, back, 5};
    assert_int_equal(scan_bytes(o12, under, sizeof under, &n), LOOPS_EBADCODE);
    /* 2.7: an argument cut off */
    const struct py_opcodes *o27 = ops_v(2, 7);
    uint8_t j27 = op_of(o27, OPC_JUMP_ABS | OPC_KNOWN, OPC_DEFERRED);
    uint8_t cut27[] = {j27, 0};
    assert_int_equal(scan_bytes(o27, cut27, sizeof cut27, &n), LOOPS_EBADCODE);
    /* no table */
    assert_int_equal(loops_scan(NULL, cut27, 2, NULL, 0, &n), LOOPS_EBADCODE);
    assert_null(opcodes_for_version(3, 14));
    assert_null(opcodes_for_version(3, 5));
}

static void test_too_many_edges(void **state)
{
    (void)state;
    const struct py_opcodes *o10 = ops_v(3, 10);
    uint8_t jabs = op_of(o10, OPC_JUMP_ABS | OPC_KNOWN, 0);
    uint8_t code[20];
    for (size_t i = 0; i < sizeof code; i += 2) {
        code[i] = jabs;
        code[i + 1] = 0;   /* every instruction jumps back to 0 */
    }
    struct loop_jump got[10];
    size_t n = 99;
    assert_int_equal(loops_scan(o10, code, sizeof code, got, 9, &n), LOOPS_ENOSPC);
    assert_int_equal(loops_scan(o10, code, sizeof code, got, 10, &n), LOOPS_OK);
    assert_int_equal(n, 10);
}

/* Every prefix of every fixture: never a crash or an overread (ASan), and edges inside the code. */
static void test_truncated_bytecode_never_overreads(void **state)
{
    (void)state;
    struct loop_jump *got = malloc(EDGES_CAP * sizeof *got);
    assert_non_null(got);
    for (size_t v = 0; v < NFIXTURES; v++) {
        struct fx_file fx;
        fx_load(ALL_FIXTURES[v], &fx);
        const struct py_opcodes *ops = ops_of(&fx);
        for (size_t i = 0; i < fx.n; i++) {
            const struct fx_code *c = &fx.codes[i];
            size_t step = c->len > 2000 ? 7 : 1;
            for (size_t len = 0; len < c->len; len += step) {
                uint8_t *copy = malloc(len ? len : 1);
                assert_non_null(copy);
                memcpy(copy, c->code, len);
                size_t n = 0;
                int rc = loops_scan(ops, copy, len, got, EDGES_CAP, &n);
                assert_true(rc <= LOOPS_OK && rc >= LOOPS_ENOSPC);
                for (size_t k = 0; rc == LOOPS_OK && k < n; k++) {
                    assert_true(got[k].src <= len);
                    assert_true(got[k].target < len && got[k].target <= got[k].src);
                }
                free(copy);
            }
        }
        fx_free(&fx);
    }
    free(got);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)rng_state;
}

/* Random bytes, and fixtures with random bytes flipped, under every version's table. */
static void test_random_bytes_never_crash(void **state)
{
    (void)state;
    struct loop_jump got[64];
    size_t ok = 0;
    for (size_t v = 0; v < NFIXTURES; v++) {
        struct fx_file fx;
        fx_load(ALL_FIXTURES[v], &fx);
        const struct py_opcodes *ops = ops_of(&fx);
        for (int iter = 0; iter < 3000; iter++) {
            size_t len = rng() % 300;
            uint8_t *buf = malloc(len ? len : 1);
            assert_non_null(buf);
            const struct fx_code *c = &fx.codes[rng() % fx.n];
            if (iter % 2 && c->len >= len) {
                memcpy(buf, c->code, len);
                for (int flips = 1 + rng() % 4; flips > 0 && len; flips--)
                    buf[rng() % len] = (uint8_t)rng();
            } else {
                for (size_t k = 0; k < len; k++)
                    buf[k] = (uint8_t)rng();
            }
            size_t n = 0;
            int rc = loops_scan(ops, buf, len, got, 64, &n);
            if (rc == LOOPS_OK) {
                ok++;
                for (size_t k = 0; k < n; k++) {
                    assert_true(got[k].target < len && got[k].target <= got[k].src);
                    assert_true(got[k].src <= len);
                    (void)loops_may_go_back(got, n, rng() % (len + 1), rng() % (len + 1));
                }
            }
            free(buf);
        }
        fx_free(&fx);
    }
    assert_true(ok > 100);   /* the flipped fixtures still scan often enough to exercise edges */
}

/* ---- loops_may_go_back on hand-made edges --------------------------------------------------- */

static void test_may_go_back_needs_an_edge_at_or_after_from(void **state)
{
    (void)state;
    struct loop_jump j[] = {{.src = 10, .target = 2}};
    assert_int_equal(loops_prepare(j, 1), 1);
    assert_true(loops_may_go_back(j, 1, 8, 4));
    assert_true(loops_may_go_back(j, 1, 10, 2));     /* at the jump itself */
    assert_false(loops_may_go_back(j, 1, 10, 1));    /* before the loop head */
    assert_false(loops_may_go_back(j, 1, 12, 4));    /* past the loop */
    assert_true(loops_may_go_back(j, 1, 12, 12));    /* not a move back */
    assert_true(loops_may_go_back(j, 1, 4, 30));
    assert_false(loops_may_go_back(NULL, 0, 4, 2));
    assert_true(loops_may_go_back(NULL, 0, 2, 4));
}

static void test_may_go_back_follows_chains_of_edges(void **state)
{
    (void)state;
    /* From 18 the jump at 20 lands at 10; from there the jump at 15 reaches 2. */
    struct loop_jump j[] = {{.src = 20, .target = 10}, {.src = 15, .target = 2},
                            {.src = 20, .target = 10}};
    assert_int_equal(loops_prepare(j, 3), 2);   /* the duplicate goes */
    assert_int_equal(j[0].src, 15);
    assert_int_equal(j[0].reach, 2);
    assert_int_equal(j[1].reach, 10);
    assert_true(loops_may_go_back(j, 2, 18, 5));
    assert_true(loops_may_go_back(j, 2, 18, 2));
    assert_false(loops_may_go_back(j, 2, 18, 1));
    assert_false(loops_may_go_back(j, 2, 21, 19));
    /* Disjoint loops do not chain: 30->25 never reaches the loop at 10->2. */
    struct loop_jump k[] = {{.src = 30, .target = 25}, {.src = 10, .target = 2}};
    assert_int_equal(loops_prepare(k, 2), 2);
    assert_false(loops_may_go_back(k, 2, 28, 8));
    assert_true(loops_may_go_back(k, 2, 28, 25));
}

/* Optional: whole-stdlib files from gen_loop_fixtures.py --sweep, for a one-off check. */
static void test_stdlib_sweep_if_requested(void **state)
{
    (void)state;
    const char *dir = getenv("PT_LOOPS_SWEEP");
    if (!dir) {
        skip();
        return;
    }
    size_t total = 0;
    for (size_t v = 0; v < NFIXTURES; v++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, ALL_FIXTURES[v]);
        struct fx_file fx;
        if (!fx_load_path(path, &fx))
            continue;
        size_t n = check_file(&fx);
        print_message("sweep %d.%d: %zu code objects match\n", fx.major, fx.minor, n);
        total += n;
        fx_free(&fx);
    }
    assert_true(total > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_py27_edges_match_cpython),
        cmocka_unit_test(test_py36_edges_match_cpython),
        cmocka_unit_test(test_py37_edges_match_cpython),
        cmocka_unit_test(test_py38_edges_match_cpython),
        cmocka_unit_test(test_py39_edges_match_cpython),
        cmocka_unit_test(test_py310_edges_match_cpython),
        cmocka_unit_test(test_py311_edges_match_cpython),
        cmocka_unit_test(test_py312_edges_match_cpython),
        cmocka_unit_test(test_py313_edges_match_cpython),
        cmocka_unit_test(test_loopless_function_never_goes_back),
        cmocka_unit_test(test_inside_loops_going_back_is_possible),
        cmocka_unit_test(test_consecutive_loops_do_not_join),
        cmocka_unit_test(test_while_true_head_at_offset_zero),
        cmocka_unit_test(test_live_forms_differ_from_co_code),
        cmocka_unit_test(test_enter_executor_hides_loops),
        cmocka_unit_test(test_extended_arg_jumps_are_decoded),
        cmocka_unit_test(test_extended_arg_chains),
        cmocka_unit_test(test_malformed_bytecode_is_refused),
        cmocka_unit_test(test_too_many_edges),
        cmocka_unit_test(test_truncated_bytecode_never_overreads),
        cmocka_unit_test(test_random_bytes_never_crash),
        cmocka_unit_test(test_may_go_back_needs_an_edge_at_or_after_from),
        cmocka_unit_test(test_may_go_back_follows_chains_of_edges),
        cmocka_unit_test(test_stdlib_sweep_if_requested),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
