/*
 * test_view_data.c — output/view_data.c and view_tree.c: every sample is counted once in the
 * viewer's tree (per thread and flags, also after pruning to a node budget), lines merge into one
 * node per function path, the span budget keeps the longest spans, counters are cut to their
 * point budget (shared out when there are many threads), files classify as stdlib / site-packages / user, and damaged input (bad UTF-8,
 * reversed span bounds, unknown ids) still gives a valid JSON document.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "output/view_data.h"

#define MS 1000000ULL
#define T0 7000000000000ULL

/* ---- building traces in memory (freed by trace_free, like a loaded one) ------------------- */

/* Room for element n of an array holding n: capacity doubles at each power of two. */
#define GROW(arr, n) \
    ((((n) & ((n) - 1)) == 0) ? ((arr) = realloc((arr), ((n) ? 2 * (n) : 1) * sizeof *(arr))) \
                              : (arr))

static struct trace *tb_new(void)
{
    struct trace *t = calloc(1, sizeof *t);
    t->name = strdup("demo");
    t->python_version = strdup("3.11.7");
    t->python_binary = strdup("/usr/bin/python3.11");
    t->cmdline = strdup("python3 demo.py");
    t->host = strdup("host");
    t->pytrace_version = strdup("0.1.0");
    t->filters = strdup("");
    t->start_mono_ns = T0;
    t->rate_hz = 1000;
    GROW(t->strings, 0);
    t->strings[t->n_strings++] = strdup("");
    GROW(t->functions, 0);
    t->functions[t->n_functions++] = (struct trace_function){0};
    GROW(t->stacks, 0);
    t->stacks[t->n_stacks++] = (struct trace_stack_node){0};
    GROW(t->processes, 0);
    t->processes[t->n_processes++] = (struct trace_process){0};
    GROW(t->processes, 1);
    t->processes[t->n_processes++] = (struct trace_process){.pid = 42};
    GROW(t->threads, 0);
    t->threads[t->n_threads++] = (struct trace_thread){0};
    return t;
}

static uint32_t tb_str(struct trace *t, const char *s)
{
    GROW(t->strings, t->n_strings);
    t->strings[t->n_strings] = strdup(s);
    return (uint32_t)t->n_strings++;
}

static uint32_t tb_fn(struct trace *t, const char *name, const char *file)
{
    GROW(t->functions, t->n_functions);
    t->functions[t->n_functions] = (struct trace_function){tb_str(t, name), tb_str(t, name),
                                                           tb_str(t, file), 1};
    return (uint32_t)t->n_functions++;
}

static uint32_t tb_stack(struct trace *t, uint32_t parent, uint32_t fn, int32_t line)
{
    GROW(t->stacks, t->n_stacks);
    t->stacks[t->n_stacks] = (struct trace_stack_node){parent, fn, line};
    return (uint32_t)t->n_stacks++;
}

static uint32_t tb_thread(struct trace *t, const char *name)
{
    GROW(t->threads, t->n_threads);
    t->threads[t->n_threads] = (struct trace_thread){1, (int64_t)(100 + t->n_threads), 0,
                                                     tb_str(t, name)};
    return (uint32_t)t->n_threads++;
}

static void tb_sample(struct trace *t, uint32_t th, uint64_t t_ns, uint32_t stack, uint8_t flags)
{
    GROW(t->samples, t->n_samples);
    t->samples[t->n_samples++] = (struct trace_sample){th, stack, t_ns, flags};
}

static void tb_span(struct trace *t, uint32_t th, uint32_t fn, uint32_t depth, uint64_t b,
                    uint64_t e)
{
    GROW(t->spans, t->n_spans);
    t->spans[t->n_spans++] = (struct tl_span){.thread = th, .function = fn, .depth = depth,
        .begin_lo = b - MS, .begin = b, .end = e, .end_hi = e + MS, .samples = 1};
}

static void tb_counter(struct trace *t, uint32_t kind, uint32_t owner, uint64_t t_ns, int64_t v)
{
    GROW(t->counters, t->n_counters);
    t->counters[t->n_counters++] = (struct trace_counter){kind, owner, t_ns, v};
}

static json_t *build(const struct trace *t, const struct view_opts *o)
{
    json_t *doc = NULL;
    struct pt_err err;
    pt_err_clear(&err);
    assert_int_equal(view_data_build(t, o, &doc, &err), PT_OK);
    assert_non_null(doc);
    /* the document is valid JSON that reads back equal */
    char *text = json_dumps(doc, JSON_COMPACT);
    assert_non_null(text);
    json_error_t jerr;
    json_t *back = json_loads(text, 0, &jerr);
    assert_non_null(back);
    assert_true(json_equal(doc, back));
    json_decref(back);
    free(text);
    return doc;
}

static json_int_t jget(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    assert_non_null(v);
    return json_integer_value(v);
}

/* Sum of counts, optionally only of one thread (0 = all) or with a flag set (0 = any). Checks
 * that each thread's nodes ascend. */
static uint64_t count_sum(const json_t *doc, json_int_t thread, json_int_t flag)
{
    const json_t *c = json_object_get(doc, "counts");
    uint64_t sum = 0;
    for (size_t k = 0; k < json_array_size(c); k++) {
        const json_t *per = json_array_get(c, k);
        const json_t *d = json_object_get(per, "data");
        json_int_t th = jget(per, "thread");
        assert_int_equal(json_array_size(d) % 3, 0);
        for (size_t i = 0; i < json_array_size(d); i += 3) {
            json_int_t fl = json_integer_value(json_array_get(d, i + 1));
            assert_true(json_integer_value(json_array_get(d, i)) >= 0);
            if ((!thread || th == thread) && (!flag || (fl & flag)))
                sum += (uint64_t)json_integer_value(json_array_get(d, i + 2));
        }
    }
    return sum;
}

/* Count records over all threads. */
static size_t count_records(const json_t *doc)
{
    const json_t *c = json_object_get(doc, "counts");
    size_t n = 0;
    for (size_t k = 0; k < json_array_size(c); k++)
        n += json_array_size(json_object_get(json_array_get(c, k), "data")) / 3;
    return n;
}

/* Parent of tree node i (decoded from parent_back). */
static json_int_t tree_parent(const json_t *doc, size_t i)
{
    const json_t *back = json_object_get(json_object_get(doc, "tree"), "parent_back");
    return i ? (json_int_t)i - json_integer_value(json_array_get(back, i)) : -1;
}

/* Tree invariants: node 0 is the root, parents come first, siblings have distinct functions,
 * every count names a node. Returns the node count. */
static size_t check_tree(const json_t *doc)
{
    const json_t *tree = json_object_get(doc, "tree");
    const json_t *back = json_object_get(tree, "parent_back");
    const json_t *fn = json_object_get(tree, "function");
    size_t n = json_array_size(back);
    assert_true(n >= 1);
    assert_int_equal(json_array_size(fn), n);
    for (size_t i = 1; i < n; i++) {
        json_int_t p = tree_parent(doc, i);
        assert_true(p >= 0 && (size_t)p < i);
        for (size_t k = 1; k < i; k++)
            if (tree_parent(doc, k) == p)
                assert_int_not_equal(json_integer_value(json_array_get(fn, k)),
                                     json_integer_value(json_array_get(fn, i)));
    }
    const json_t *c = json_object_get(doc, "counts");
    for (size_t k = 0; k < json_array_size(c); k++) {
        const json_t *d = json_object_get(json_array_get(c, k), "data");
        json_int_t node = 0;
        for (size_t i = 0; i < json_array_size(d); i += 3) {
            node += json_integer_value(json_array_get(d, i));
            assert_true((size_t)node < n);
        }
    }
    return n;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_counts_add_up_per_thread_and_flags(void **state)
{
    (void)state;
    struct trace *t = tb_new();
    uint32_t a = tb_thread(t, "main"), b = tb_thread(t, "worker");
    uint32_t f_main = tb_fn(t, "main", "/app/main.py"), f_work = tb_fn(t, "work", "/app/w.py");
    uint32_t s1 = tb_stack(t, 0, f_main, 1), s2 = tb_stack(t, s1, f_work, 5);
    for (int i = 0; i < 1000; i++) {
        tb_sample(t, i % 3 ? a : b, T0 + (uint64_t)i * MS, i % 2 ? s1 : s2,
                  (uint8_t)(i % 5 == 0 ? TRACE_F_IDLE : i % 7 == 0 ? TRACE_F_GIL : 0));
    }
    tb_sample(t, a, T0, 0, TRACE_F_BAD);   /* an empty torn stack counts at the root */
    json_t *doc = build(t, NULL);
    check_tree(doc);
    assert_int_equal(count_sum(doc, 0, 0), 1001);
    uint64_t na = 0, nb = 0, idle = 0, gil = 0;
    for (size_t i = 0; i < t->n_samples; i++) {
        na += t->samples[i].thread == a;
        nb += t->samples[i].thread == b;
        idle += (t->samples[i].flags & TRACE_F_IDLE) != 0;
        gil += (t->samples[i].flags & TRACE_F_GIL) != 0;
    }
    assert_int_equal(count_sum(doc, a, 0), na);
    assert_int_equal(count_sum(doc, b, 0), nb);
    assert_int_equal(count_sum(doc, 0, TRACE_F_IDLE), idle);
    assert_int_equal(count_sum(doc, 0, TRACE_F_GIL), gil);
    assert_int_equal(count_sum(doc, 0, TRACE_F_BAD), 1);
    assert_int_equal(jget(json_object_get(doc, "meta"), "samples"), 1001);
    assert_int_equal(jget(json_object_get(doc, "meta"), "errors"), 1);
    json_decref(doc);
    trace_free(t);
}

static void test_lines_merge_into_one_node_per_function_path(void **state)
{
    (void)state;
    struct trace *t = tb_new();
    uint32_t th = tb_thread(t, "main");
    uint32_t f = tb_fn(t, "f", "/app/a.py"), g = tb_fn(t, "g", "/app/a.py");
    uint32_t f1 = tb_stack(t, 0, f, 1), f2 = tb_stack(t, 0, f, 2);
    uint32_t g1 = tb_stack(t, f1, g, 10), g2 = tb_stack(t, f2, g, 11);
    tb_stack(t, g2, f, 3);   /* never sampled: left out */
    tb_sample(t, th, T0, g1, 0);
    tb_sample(t, th, T0 + MS, g2, 0);
    tb_sample(t, th, T0 + 2 * MS, f2, 0);
    json_t *doc = build(t, NULL);
    assert_int_equal(check_tree(doc), 3);   /* root, f, f>g */
    assert_int_equal(count_records(doc), 2);   /* (th, f) x1 and (th, f>g) x2 */
    assert_int_equal(count_sum(doc, 0, 0), 3);
    assert_int_equal(jget(doc, "tree_pruned"), 0);
    json_decref(doc);
    trace_free(t);
}

static void test_node_budget_folds_small_paths_and_keeps_every_sample(void **state)
{
    (void)state;
    struct trace *t = tb_new();
    uint32_t th = tb_thread(t, "main");
    uint32_t root_fn = tb_fn(t, "root", "/app/r.py"), hot = tb_fn(t, "hot", "/app/h.py");
    uint32_t r = tb_stack(t, 0, root_fn, 1), h = tb_stack(t, r, hot, 1);
    for (int i = 0; i < 500; i++)
        tb_sample(t, th, T0 + (uint64_t)i * MS, h, 0);
    char name[32];
    for (int i = 0; i < 200; i++) {   /* 200 distinct cold leaves, one or two samples each */
        snprintf(name, sizeof name, "cold%d", i);
        uint32_t s = tb_stack(t, r, tb_fn(t, name, "/app/c.py"), 1);
        for (int k = 0; k <= i % 2; k++)
            tb_sample(t, th, T0 + (uint64_t)(1000 + i) * MS, s, 0);
    }
    struct view_opts o = {.node_budget = 20};
    json_t *doc = build(t, &o);
    size_t n = check_tree(doc);
    assert_true(n <= 20);
    assert_true(jget(doc, "tree_pruned") > 0);
    assert_int_equal(count_sum(doc, 0, 0), t->n_samples);
    /* the hot path survives, the folded ones sit in a "[small frames]" node */
    const json_t *fn = json_object_get(json_object_get(doc, "tree"), "function");
    bool saw_hot = false, saw_bucket = false;
    for (size_t i = 0; i < n; i++) {
        json_int_t f = json_integer_value(json_array_get(fn, i));
        saw_hot |= f == hot;
        saw_bucket |= (size_t)f == t->n_functions;
    }
    assert_true(saw_hot);
    assert_true(saw_bucket);
    const json_t *fns = json_object_get(doc, "functions");
    assert_int_equal(json_array_size(fns), t->n_functions + 1);
    assert_string_equal(json_string_value(json_array_get(json_array_get(fns, t->n_functions), 0)),
                        "[small frames]");
    json_decref(doc);
    trace_free(t);
}

static void test_span_budget_keeps_the_longest(void **state)
{
    (void)state;
    struct trace *t = tb_new();
    uint32_t a = tb_thread(t, "a"), b = tb_thread(t, "b");
    uint32_t f = tb_fn(t, "f", "/app/f.py");
    for (uint64_t i = 0; i < 1000; i++) {
        uint64_t begin = T0 + ((i * 7919) % 1000) * 10 * MS;
        uint64_t len = ((i * 104729) % 997 + 1) * 100000;   /* 0.1 ms to 99.7 ms, shuffled */
        tb_span(t, i % 2 ? a : b, f, (uint32_t)(i % 3), begin, begin + len);
    }
    struct view_opts o = {.span_budget = 100};
    json_t *doc = build(t, &o);
    assert_int_equal(jget(doc, "span_total"), 1000);
    assert_int_equal(jget(doc, "span_kept"), 100);
    double min_us = json_real_value(json_object_get(doc, "span_min_us"));
    assert_true(min_us > 0);
    /* estimated length = end - begin + 1 ms (half of each 1 ms bound on both sides) */
    size_t kept = 0, longer_in_trace = 0;
    for (size_t i = 0; i < t->n_spans; i++)
        longer_in_trace += (double)(t->spans[i].end - t->spans[i].begin + MS) / 1000.0 > min_us;
    const json_t *spans = json_object_get(doc, "spans");
    for (size_t k = 0; k < json_array_size(spans); k++) {
        const json_t *d = json_object_get(json_array_get(spans, k), "data");
        for (size_t i = 0; i < json_array_size(d); i += 5, kept++) {
            json_int_t delta = json_integer_value(json_array_get(d, i));
            json_int_t length = json_integer_value(json_array_get(d, i + 1));
            assert_true((double)length >= min_us - 1);   /* µs rounding */
            assert_true(delta >= 0);   /* per thread, sorted by begin */
        }
    }
    assert_int_equal(kept, 100);
    assert_true(longer_in_trace <= 100);   /* no dropped span was longer than a kept one */
    json_decref(doc);
    trace_free(t);
}

static void test_span_idle_share_from_samples(void **state)
{
    (void)state;
    struct trace *t = tb_new();
    uint32_t th = tb_thread(t, "main");
    uint32_t f = tb_fn(t, "f", "/app/f.py"), g = tb_fn(t, "g", "/app/f.py");
    uint32_t s = tb_stack(t, 0, f, 1);
    for (int i = 0; i < 10; i++)   /* idle in the second half */
        tb_sample(t, th, T0 + (uint64_t)i * 10 * MS, s, i >= 5 ? TRACE_F_IDLE : 0);
    tb_span(t, th, f, 0, T0, T0 + 90 * MS);             /* all ten samples: 50% idle */
    tb_span(t, th, g, 1, T0 + 50 * MS, T0 + 90 * MS);   /* the idle half */
    json_t *doc = build(t, NULL);
    const json_t *d = json_object_get(json_array_get(json_object_get(doc, "spans"), 0), "data");
    assert_int_equal(json_array_size(d), 10);
    assert_int_equal(json_integer_value(json_array_get(d, 4)), 50);
    assert_int_equal(json_integer_value(json_array_get(d, 9)), 100);
    assert_int_equal(jget(json_array_get(json_object_get(doc, "spans"), 0), "max_depth"), 1);
    json_decref(doc);
    trace_free(t);
}

static void test_counters_cut_to_the_point_budget(void **state)
{
    (void)state;
    struct trace *t = tb_new();
    uint32_t th = tb_thread(t, "main");
    for (int i = 0; i < 10000; i++) {
        tb_counter(t, TRACE_C_CPU_USER_NS, th, T0 + (uint64_t)i * MS, (int64_t)i * 1000);
        tb_counter(t, TRACE_C_RSS_BYTES, 1, T0 + (uint64_t)i * MS, i == 4321 ? 1 << 30 : 1 << 20);
    }
    struct view_opts o = {.counter_points = 100};
    json_t *doc = build(t, &o);
    const json_t *series = json_object_get(doc, "counters");
    assert_int_equal(json_array_size(series), 2);
    for (size_t k = 0; k < 2; k++) {
        const json_t *s = json_array_get(series, k);
        const json_t *pts = json_object_get(s, "points");
        assert_true(json_array_size(pts) / 2 <= 100);
        assert_true(json_array_size(pts) / 2 >= 90);
        json_int_t max = 0;
        for (size_t i = 1; i < json_array_size(pts); i += 2)
            max = json_integer_value(json_array_get(pts, i)) > max
                      ? json_integer_value(json_array_get(pts, i)) : max;
        if (jget(s, "kind") == TRACE_C_RSS_BYTES)
            assert_int_equal(max, 1 << 30);   /* the peak survives */
        else
            assert_int_equal(max, 9999 * 1000);   /* the cumulative total survives */
    }
    json_decref(doc);
    trace_free(t);
}

static void test_many_threads_get_coarser_strips_and_fewer_points(void **state)
{
    (void)state;
    struct trace *t = tb_new();
    uint32_t f = tb_fn(t, "f", "/app/f.py");
    uint32_t s = tb_stack(t, 0, f, 1);
    for (int i = 0; i < 1000; i++) {
        uint32_t th = tb_thread(t, "worker");
        for (int k = 0; k < 1000; k++) {
            if (k % 100 == 0)
                tb_sample(t, th, T0 + (uint64_t)k * MS, s, 0);
            tb_counter(t, TRACE_C_CPU_USER_NS, th, T0 + (uint64_t)k * MS, k);
        }
    }
    json_t *doc = build(t, NULL);
    const json_t *act = json_object_get(doc, "activity");
    size_t cells = 0, points = 0;
    for (size_t i = 0; i < json_array_size(json_object_get(act, "threads")); i++)
        cells += json_array_size(json_object_get(json_array_get(json_object_get(act, "threads"), i),
                                                 "running"));
    assert_int_equal(json_array_size(json_object_get(act, "threads")), 1000);
    assert_true(cells <= VIEW_ACTIVITY_CELLS);
    assert_true(jget(act, "buckets") >= 20);
    const json_t *series = json_object_get(doc, "counters");
    assert_int_equal(json_array_size(series), 1000);
    for (size_t i = 0; i < json_array_size(series); i++)
        points += json_array_size(json_object_get(json_array_get(series, i), "points")) / 2;
    assert_true(points <= VIEW_COUNTER_TOTAL);
    assert_true(points >= 1000 * 20);
    assert_int_equal(count_sum(doc, 0, 0), 10000);
    json_decref(doc);
    trace_free(t);
}

static void test_classify_stdlib_site_and_user(void **state)
{
    (void)state;
    assert_int_equal(view_classify("/usr/lib/python3.11/threading.py"), VIEW_KIND_STDLIB);
    assert_int_equal(view_classify("/root/.pyenv/versions/3.12.1/lib/python3.12/json/decoder.py"),
                     VIEW_KIND_STDLIB);
    assert_int_equal(view_classify("/usr/lib64/python3.9/os.py"), VIEW_KIND_STDLIB);
    assert_int_equal(view_classify("<frozen importlib._bootstrap>"), VIEW_KIND_STDLIB);
    assert_int_equal(view_classify("/usr/lib/python2.7/socket.py"), VIEW_KIND_STDLIB);
    assert_int_equal(view_classify("/srv/venv/lib/python3.11/site-packages/requests/api.py"),
                     VIEW_KIND_SITE);
    assert_int_equal(view_classify("/usr/lib/python3/dist-packages/apt/cache.py"), VIEW_KIND_SITE);
    assert_int_equal(view_classify("/home/me/app/main.py"), VIEW_KIND_USER);
    assert_int_equal(view_classify("/home/me/lib/pythonic/x.py"), VIEW_KIND_USER);
    assert_int_equal(view_classify("<string>"), VIEW_KIND_USER);
    assert_int_equal(view_classify(""), VIEW_KIND_USER);
    assert_int_equal(view_classify(NULL), VIEW_KIND_USER);
}

static void test_damaged_input_still_gives_a_valid_document(void **state)
{
    (void)state;
    struct trace *t = tb_new();
    uint32_t th = tb_thread(t, "bad\xff\xfename");
    uint32_t f = tb_fn(t, "caf\xc3", "/app/\x80.py");   /* not UTF-8 */
    uint32_t s = tb_stack(t, 0, f, 1);
    tb_sample(t, th, T0, s, 0);
    tb_sample(t, 0, T0, s, 0);                 /* no thread */
    tb_sample(t, 99, T0, s, 0);                /* unknown thread */
    tb_span(t, th, f, 0, T0 + 5 * MS, T0 + 2 * MS);   /* ends before it begins */
    t->spans[0].begin_lo = T0 + 9 * MS;               /* lower bound after the sighting */
    tb_span(t, 77, f, 0, T0, T0 + MS);                /* unknown thread */
    tb_counter(t, 99, 5, T0, -1);                     /* unknown kind */
    t->rate_hz = NAN;
    json_t *doc = build(t, NULL);
    /* the tables keep their length, so ids still line up */
    assert_int_equal(json_array_size(json_object_get(doc, "strings")), t->n_strings);
    assert_int_equal(json_array_size(json_object_get(doc, "functions")), t->n_functions + 1);
    assert_int_equal(json_array_size(json_object_get(doc, "threads")), 1);
    assert_int_equal(count_sum(doc, 0, 0), 1);
    assert_int_equal(jget(doc, "span_kept"), 1);
    const json_t *d = json_object_get(json_array_get(json_object_get(doc, "spans"), 0), "data");
    assert_true(json_integer_value(json_array_get(d, 1)) >= 0);   /* a length */
    json_decref(doc);
    trace_free(t);
}

static void test_empty_trace(void **state)
{
    (void)state;
    struct trace *t = tb_new();
    json_t *doc = build(t, NULL);
    assert_int_equal(check_tree(doc), 1);
    assert_int_equal(count_records(doc), 0);
    assert_int_equal(json_array_size(json_object_get(doc, "spans")), 0);
    assert_int_equal(jget(doc, "span_total"), 0);
    assert_true(jget(doc, "duration_us") >= 0);
    json_decref(doc);
    trace_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_add_up_per_thread_and_flags),
        cmocka_unit_test(test_lines_merge_into_one_node_per_function_path),
        cmocka_unit_test(test_node_budget_folds_small_paths_and_keeps_every_sample),
        cmocka_unit_test(test_span_budget_keeps_the_longest),
        cmocka_unit_test(test_span_idle_share_from_samples),
        cmocka_unit_test(test_counters_cut_to_the_point_budget),
        cmocka_unit_test(test_many_threads_get_coarser_strips_and_fewer_points),
        cmocka_unit_test(test_classify_stdlib_site_and_user),
        cmocka_unit_test(test_damaged_input_still_gives_a_valid_document),
        cmocka_unit_test(test_empty_trace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
