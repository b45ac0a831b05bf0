/*
 * test_export_rules.c — frame rules at export (output/export_common.c): exclude takes frames out
 * of stacks and spans, fold reduces each run of folded frames to its outermost one (user code
 * called back from a folded frame stays), include re-admits, and --exclude beats the rule files;
 * the same rules rewriting a loaded trace (output/trace_filter.c, `pytrace view --filter`).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "output/export.h"
#include "output/trace_filter.h"
#include "util/rules.h"

enum { S_EMPTY, S_MAIN, S_DUMPS, S_ENCODE, S_HOOK, S_NOISY, S_APP, S_JSON, S_ENC, N_STRINGS };
static char *fx_strings[N_STRINGS] = {
    "", "main", "dumps", "encode", "hook", "noisy", "/app/app.py",
    "/usr/lib/python3.12/json/__init__.py", "/usr/lib/python3.12/json/encoder.py",
};
enum { F_MAIN = 1, F_DUMPS, F_ENCODE, F_HOOK, F_NOISY, N_FUNCTIONS };
static struct trace_function fx_functions[N_FUNCTIONS] = {
    {0, 0, 0, 0},
    {S_MAIN, S_MAIN, S_APP, 1},
    {S_DUMPS, S_DUMPS, S_JSON, 200},
    {S_ENCODE, S_ENCODE, S_ENC, 180},
    {S_HOOK, S_HOOK, S_APP, 10},
    {S_NOISY, S_NOISY, S_APP, 20},
};
/* main > dumps > encode > hook, and main > noisy. */
static struct trace_stack_node fx_stacks[] = {
    {0, 0, 0}, {0, F_MAIN, 5}, {1, F_DUMPS, 238}, {2, F_ENCODE, 190}, {3, F_HOOK, 11},
    {1, F_NOISY, 21},
};
static struct trace_thread fx_threads[] = {{0, 0, 0, 0}, {1, 100, 1, 0}};
static struct tl_span fx_spans[5];

static struct tl_span span(uint32_t fn, uint32_t depth, uint64_t b, uint64_t e)
{
    return (struct tl_span){.thread = 1, .function = fn, .depth = depth, .begin_lo = b,
                            .begin = b, .end = e, .end_hi = e, .samples = e - b + 1};
}

static struct trace fx_trace(void)
{
    fx_spans[0] = span(F_MAIN, 0, 1000, 10000);
    fx_spans[1] = span(F_DUMPS, 1, 2000, 5000);
    fx_spans[2] = span(F_ENCODE, 2, 2100, 5000);
    fx_spans[3] = span(F_HOOK, 3, 3000, 4000);
    fx_spans[4] = span(F_NOISY, 1, 6000, 8000);
    return (struct trace){
        .strings = fx_strings, .n_strings = N_STRINGS,
        .functions = fx_functions, .n_functions = N_FUNCTIONS,
        .stacks = fx_stacks, .n_stacks = 6,
        .threads = fx_threads, .n_threads = 2,
        .spans = fx_spans, .n_spans = 5,
        .start_mono_ns = 0, .rate_hz = 1000,
    };
}

static struct rules *chain(const char *text)
{
    struct rules *r;
    struct pt_err err;
    assert_int_equal(rules_new(&r, false, &err), PT_OK);
    assert_int_equal(rules_load_text(r, text, "t.rules", &err), PT_OK);
    return r;
}

/* The functions of the stack ending at node, root first, as "main>dumps>hook". */
static const char *stack_of(const struct export_view *v, uint32_t node)
{
    static char out[256];
    struct export_frame f[16];
    size_t n = export_stack(v, node, f, 16);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strcat(out, i ? ">" : "");
        strcat(out, fx_strings[fx_functions[f[i].function].name]);
    }
    return out;
}

static void fold_keeps_the_runs_outermost_frame_and_callbacks(void **state)
{
    (void)state;
    struct trace t = fx_trace();
    struct rules *r = chain("fold stdlib\nexclude function:literal:noisy\n");
    struct export_opts o = {.to_s = -1, .rules = r};
    struct export_view v;
    struct pt_err err;
    assert_int_equal(export_view_init(&v, &t, &o, &err), PT_OK);
    assert_string_equal(stack_of(&v, 4), "main>dumps>hook");
    assert_string_equal(stack_of(&v, 3), "main>dumps");
    assert_string_equal(stack_of(&v, 5), "main");
    bool want[5] = {true, true, false, true, false};   /* encode folded away, noisy excluded */
    for (int i = 0; i < 5; i++)
        assert_int_equal(export_span_ok(&v, &t.spans[i]), want[i]);
    export_view_free(&v);
    rules_free(r);
}

static void include_readmits_and_exclude_option_wins(void **state)
{
    (void)state;
    struct trace t = fx_trace();
    struct rules *r = chain("fold stdlib\ninclude module:json.encoder\n");
    struct export_opts o = {.to_s = -1, .rules = r};
    struct export_view v;
    struct pt_err err;
    assert_int_equal(export_view_init(&v, &t, &o, &err), PT_OK);
    assert_string_equal(stack_of(&v, 4), "main>dumps>encode>hook");
    assert_true(export_span_ok(&v, &t.spans[2]));
    export_view_free(&v);
    /* --exclude json.* is applied after the rules: dumps goes although stdlib is only folded. */
    const char *ex[] = {"json.*"};
    o.exclude = ex;
    o.n_exclude = 1;
    assert_int_equal(export_view_init(&v, &t, &o, &err), PT_OK);
    assert_string_equal(stack_of(&v, 4), "main>hook");
    assert_false(export_span_ok(&v, &t.spans[1]));
    assert_false(export_span_ok(&v, &t.spans[2]));
    assert_true(export_span_ok(&v, &t.spans[3]));
    export_view_free(&v);
    rules_free(r);
}

static void fold_runs_pass_over_excluded_frames(void **state)
{
    (void)state;
    struct trace t = fx_trace();
    /* dumps and hook folded, encode excluded: hook's nearest kept caller is dumps, folded, so the
     * run dumps..hook is one frame. */
    struct rules *r = chain("fold function:dumps\nexclude function:encode\nfold function:hook\n");
    struct export_opts o = {.to_s = -1, .rules = r};
    struct export_view v;
    struct pt_err err;
    assert_int_equal(export_view_init(&v, &t, &o, &err), PT_OK);
    assert_string_equal(stack_of(&v, 4), "main>dumps");
    assert_true(export_span_ok(&v, &t.spans[1]));
    assert_false(export_span_ok(&v, &t.spans[2]));
    assert_false(export_span_ok(&v, &t.spans[3]));
    export_view_free(&v);
    rules_free(r);
}

static void apply_rules_rewrites_the_trace(void **state)
{
    (void)state;
    struct trace t = fx_trace();
    struct trace_stack_node stacks[6];
    memcpy(stacks, fx_stacks, sizeof stacks);
    t.stacks = stacks;
    struct trace_sample samples[] = {{1, 4, 1, 0}, {1, 3, 2, 0}, {1, 5, 3, 0}, {1, 0, 4, 0}};
    t.samples = samples;
    t.n_samples = 4;
    struct rules *r = chain("fold stdlib\nexclude function:literal:noisy\n");
    struct pt_err err;
    assert_int_equal(trace_apply_rules(&t, r, &err), PT_OK);
    /* main(1) > dumps(2) > hook(3): encode merged into dumps, noisy into main. */
    assert_int_equal(t.n_stacks, 4);
    assert_int_equal(t.stacks[1].function, F_MAIN);
    assert_int_equal(t.stacks[2].function, F_DUMPS);
    assert_int_equal(t.stacks[2].parent, 1);
    assert_int_equal(t.stacks[3].function, F_HOOK);
    assert_int_equal(t.stacks[3].parent, 2);
    assert_int_equal(samples[0].stack, 3);
    assert_int_equal(samples[1].stack, 2);
    assert_int_equal(samples[2].stack, 1);
    assert_int_equal(samples[3].stack, 0);
    /* Spans: encode and noisy go, hook moves up to depth 2. */
    assert_int_equal(t.n_spans, 3);
    assert_int_equal(t.spans[0].function, F_MAIN);
    assert_int_equal(t.spans[1].function, F_DUMPS);
    assert_int_equal(t.spans[2].function, F_HOOK);
    assert_int_equal(t.spans[2].depth, 2);
    rules_free(r);
    /* Without frame rules nothing changes. */
    t = fx_trace();
    assert_int_equal(rules_new(&r, false, &err), PT_OK);
    assert_int_equal(trace_apply_rules(&t, r, &err), PT_OK);
    assert_int_equal(t.n_spans, 5);
    assert_int_equal(t.n_stacks, 6);
    rules_free(r);
}

static void span_parents(void **state)
{
    (void)state;
    struct trace t = fx_trace();
    uint32_t parent[5];
    struct pt_err err;
    assert_int_equal(trace_span_parents(&t, parent, &err), PT_OK);
    uint32_t want[5] = {TRACE_NO_PARENT, 0, 1, 2, 0};
    for (int i = 0; i < 5; i++)
        assert_int_equal(parent[i], want[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fold_keeps_the_runs_outermost_frame_and_callbacks),
        cmocka_unit_test(include_readmits_and_exclude_option_wins),
        cmocka_unit_test(fold_runs_pass_over_excluded_frames),
        cmocka_unit_test(apply_rules_rewrites_the_trace),
        cmocka_unit_test(span_parents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
