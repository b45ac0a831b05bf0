/*
 * test_native.c — the native/Python stack merge (symbols/merge.c) on synthetic stacks of every
 * CPython frame model, including threads with no Python frames and stacks that disagree, and
 * the symbol cache (symbols/symcache.c) on this very process: exact names, C++ demangling,
 * version suffixes, unknown addresses; and native functions (Function fields 6-8) through a
 * written and re-read trace file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "output/trace.h"
#include "symbols/merge.h"
#include "symbols/symcache.h"

#define P(i) {MERGE_PYTHON, i}
#define N(i) {MERGE_NATIVE, i}

static void expect_items(const struct merge_item *got, uint32_t n, const struct merge_item *want,
                         uint32_t nwant)
{
    assert_int_equal(n, nwant);
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(got[i].kind, want[i].kind);
        assert_int_equal(got[i].index, want[i].index);
    }
}

/* Up to 3.10: one eval call per Python frame. */
static void test_merge_one_eval_per_frame(void **state)
{
    (void)state;
    /* libc, ext, eval(f), call, eval(g), main */
    bool ev[] = {false, false, true, false, true, false};
    bool entry[] = {true, true};
    struct merge_item out[16];
    bool unc;
    uint32_t n = merge_stacks(ev, 6, entry, 2, out, 16, &unc);
    struct merge_item want[] = {N(0), N(1), P(0), N(3), P(1), N(5)};
    expect_items(out, n, want, 6);
    assert_false(unc);
}

/* 3.11+: one eval call runs several Python frames, up to the entry frame. */
static void test_merge_runs_of_python_frames(void **state)
{
    (void)state;
    /* clock_nanosleep, time_sleep, eval(a b c), vectorcall, eval(d e), main */
    bool ev[] = {false, false, true, false, true, false};
    bool entry[] = {false, false, true, false, true};
    struct merge_item out[16];
    bool unc;
    uint32_t n = merge_stacks(ev, 6, entry, 5, out, 16, &unc);
    struct merge_item want[] = {N(0), N(1), P(0), P(1), P(2), N(3), P(3), P(4), N(5)};
    expect_items(out, n, want, 9);
    assert_false(unc);
}

static void test_merge_thread_without_python_frames(void **state)
{
    (void)state;
    bool ev[] = {false, false, false};
    struct merge_item out[8];
    bool unc;
    uint32_t n = merge_stacks(ev, 3, NULL, 0, out, 8, &unc);
    struct merge_item want[] = {N(0), N(1), N(2)};
    expect_items(out, n, want, 3);
    assert_false(unc);
}

/* An eval frame with no Python run left stays native, and the merge is uncertain. */
static void test_merge_more_eval_frames_than_runs(void **state)
{
    (void)state;
    bool ev[] = {false, true, true, false};
    bool entry[] = {false, true};
    struct merge_item out[8];
    bool unc;
    uint32_t n = merge_stacks(ev, 4, entry, 2, out, 8, &unc);
    struct merge_item want[] = {N(0), P(0), P(1), N(2), N(3)};
    expect_items(out, n, want, 5);
    assert_true(unc);
}

/* A native unwind cut short: the Python runs left over go outermost, in order. */
static void test_merge_fewer_eval_frames_than_runs(void **state)
{
    (void)state;
    bool ev[] = {false, true};
    bool entry[] = {true, true, true};
    struct merge_item out[8];
    bool unc;
    uint32_t n = merge_stacks(ev, 2, entry, 3, out, 8, &unc);
    struct merge_item want[] = {N(0), P(0), P(1), P(2)};
    expect_items(out, n, want, 4);
    assert_true(unc);
}

/* No native stack at all (unwinding failed): the Python stack alone, not uncertain. */
static void test_merge_without_native_frames_is_python_stack(void **state)
{
    (void)state;
    bool entry[] = {false, true};
    struct merge_item out[8];
    bool unc;
    uint32_t n = merge_stacks(NULL, 0, entry, 2, out, 8, &unc);
    struct merge_item want[] = {P(0), P(1)};
    expect_items(out, n, want, 2);
    assert_false(unc);
}

/* Python frames with no entry mark at all (a torn 3.11 stack): one run takes them all. */
static void test_merge_without_entry_marks_takes_all(void **state)
{
    (void)state;
    bool ev[] = {true, true, false};
    bool entry[] = {false, false, false};
    struct merge_item out[8];
    bool unc;
    uint32_t n = merge_stacks(ev, 3, entry, 3, out, 8, &unc);
    struct merge_item want[] = {P(0), P(1), P(2), N(1), N(2)};
    expect_items(out, n, want, 5);
    assert_true(unc);
}

static void test_merge_cut_at_cap_is_uncertain(void **state)
{
    (void)state;
    bool ev[] = {false, true, false, false};
    bool entry[] = {false, false, true};
    struct merge_item out[3];
    bool unc;
    uint32_t n = merge_stacks(ev, 4, entry, 3, out, 3, &unc);
    struct merge_item want[] = {N(0), P(0), P(1)};
    expect_items(out, n, want, 3);
    assert_true(unc);
}

static void test_eval_symbol_names(void **state)
{
    (void)state;
    assert_true(merge_is_eval_symbol("_PyEval_EvalFrameDefault"));
    assert_true(merge_is_eval_symbol("PyEval_EvalFrameEx"));
    assert_true(merge_is_eval_symbol("_PyEval_EvalFrameDefault.cold"));
    assert_false(merge_is_eval_symbol("_PyEval_EvalFrameDefaultX"));
    assert_false(merge_is_eval_symbol("PyEval_EvalCode"));
    assert_false(merge_is_eval_symbol(NULL));
}

static void test_demangle_cpp_and_plain_names(void **state)
{
    (void)state;
    char buf[128];
    symcache_demangle("_ZN3foo3barEv", buf, sizeof buf);
    assert_string_equal(buf, "foo::bar()");
    symcache_demangle("deflate", buf, sizeof buf);
    assert_string_equal(buf, "deflate");
    symcache_demangle("_Znot_valid", buf, sizeof buf);
    assert_string_equal(buf, "_Znot_valid");
}

__attribute__((noinline)) int native_test_marker_function(int x);
__attribute__((noinline)) int native_test_marker_function(int x)
{
    return x * 3 + 1;
}

/* This test program is unstripped: its own function resolves exactly, with its module. */
static void test_symcache_names_own_function(void **state)
{
    (void)state;
    struct sym_cache *sc = NULL;
    struct pt_err err;
    assert_int_equal(symcache_open(&sc, getpid(), &err), PT_OK);
    struct native_sym sym;
    uint64_t addr = (uint64_t)(uintptr_t)&native_test_marker_function + 2;
    assert_int_equal(symcache_lookup(sc, addr, &sym), 0);
    assert_string_equal(sym.name, "native_test_marker_function");
    assert_int_equal(sym.offset, 2);
    assert_false(sym.approximate);
    assert_non_null(strstr(sym.module, "test_native"));
    /* Looked up again: the same cached strings, no new module. */
    size_t mods = symcache_modules(sc);
    struct native_sym again;
    assert_int_equal(symcache_lookup(sc, addr, &again), 0);
    assert_ptr_equal(again.name, sym.name);
    assert_int_equal(symcache_modules(sc), mods);
    /* A libc function: named without its symbol-version suffix. */
    assert_int_equal(symcache_lookup(sc, (uint64_t)(uintptr_t)&getpid, &sym), 0);
    assert_null(strchr(sym.name, '@'));
    symcache_close(sc);
}

static void test_symcache_unknown_address(void **state)
{
    (void)state;
    struct sym_cache *sc = NULL;
    struct pt_err err;
    assert_int_equal(symcache_open(&sc, getpid(), &err), PT_OK);
    struct native_sym sym;
    assert_int_equal(symcache_lookup(sc, 8, &sym), -1);
    assert_null(sym.name);
    assert_null(sym.module);
    symcache_close(sc);
}

static void test_symcache_gone_process(void **state)
{
    (void)state;
    struct sym_cache *sc = NULL;
    struct pt_err err;
    assert_int_not_equal(symcache_open(&sc, 0x7ffffff0, &err), PT_OK);
}

/* Native functions are interned apart from Python ones and from their approximate twins, and
 * come back from the file with kind, module and flag; Python functions read as kind 0. */
static void test_native_functions_round_trip(void **state)
{
    (void)state;
    char path[] = "/tmp/pytrace-test-native-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    struct trace_meta meta = {.pid = 1, .name = "n", .python_version = "3.12", .python_binary = "",
                              .cmdline = "", .host = "", .pytrace_version = "0", .rate_hz = 100,
                              .blocking = true, .native = true, .filters = ""};
    struct trace_writer *w = NULL;
    struct pt_err err;
    assert_int_equal(trace_writer_open(&w, path, true, &meta, &err), PT_OK);
    uint32_t py = trace_function(w, "deflate", "deflate", "/lib/libz.so", 0);
    uint32_t nat = trace_native_function(w, "deflate", "/lib/libz.so", false);
    uint32_t approx = trace_native_function(w, "deflate", "/lib/libz.so", true);
    uint32_t unknown = trace_native_function(w, NULL, NULL, false);
    assert_int_not_equal(py, nat);
    assert_int_not_equal(nat, approx);
    assert_int_equal(trace_native_function(w, "deflate", "/lib/libz.so", false), nat);
    uint32_t root = trace_stack(w, 0, py, 3);
    uint32_t leaf = trace_stack(w, root, nat, -1);
    uint32_t th = trace_thread(w, trace_process(w, 1, 1, "", "3.12", 0), 1, 1, "main");
    trace_sample(w, th, 1000, leaf, 0);
    assert_int_equal(trace_writer_close(w, NULL, &err), PT_OK);

    struct trace *t = NULL;
    assert_int_equal(trace_load(path, &t, &err), PT_OK);
    unlink(path);
    assert_true(t->native);
    assert_null(trace_fn_native(t, py));
    const struct trace_fn_native *n = trace_fn_native(t, nat);
    assert_non_null(n);
    assert_false(n->approximate);
    assert_string_equal(trace_str(t, n->module), "/lib/libz.so");
    assert_string_equal(trace_str(t, t->functions[nat].name), "deflate");
    assert_true(trace_fn_native(t, approx)->approximate);
    assert_string_equal(trace_str(t, t->functions[unknown].name), "??");
    assert_int_equal(trace_fn_native(t, unknown)->module, 0);
    assert_null(trace_fn_native(t, 9999));
    trace_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_one_eval_per_frame),
        cmocka_unit_test(test_merge_runs_of_python_frames),
        cmocka_unit_test(test_merge_thread_without_python_frames),
        cmocka_unit_test(test_merge_more_eval_frames_than_runs),
        cmocka_unit_test(test_merge_fewer_eval_frames_than_runs),
        cmocka_unit_test(test_merge_without_native_frames_is_python_stack),
        cmocka_unit_test(test_merge_without_entry_marks_takes_all),
        cmocka_unit_test(test_merge_cut_at_cap_is_uncertain),
        cmocka_unit_test(test_eval_symbol_names),
        cmocka_unit_test(test_demangle_cpp_and_plain_names),
        cmocka_unit_test(test_symcache_names_own_function),
        cmocka_unit_test(test_symcache_unknown_address),
        cmocka_unit_test(test_symcache_gone_process),
        cmocka_unit_test(test_native_functions_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
