/*
 * test_loops.c — readers/loops.c against the interpreters' own bytecode: every fixture of
 * loops_fixture.h scans to the backward edges and may-go-back answers CPython gives, and
 * loops_may_go_back holds on hand-made edges. Set PT_LOOPS_SWEEP=<dir> to also check files written
 * by gen_loop_fixtures.py --sweep <dir>. Hostile input is test_loops_hostile.c's.
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
#include "tests/unit/loops_fixture.h"

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
        cmocka_unit_test(test_may_go_back_needs_an_edge_at_or_after_from),
        cmocka_unit_test(test_may_go_back_follows_chains_of_edges),
        cmocka_unit_test(test_stdlib_sweep_if_requested),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
