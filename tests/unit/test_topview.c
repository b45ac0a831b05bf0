/*
 * test_topview.c — output/topview.c: own/total counting (once per sample, even under recursion),
 * the sliding window's expiry, sorting by each column, and the thread / GIL / idle filters, on
 * hand-built snapshots (no target process).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "output/topview.h"

#define S 1000000000ULL

static struct py_code c_main = {.name = "main", .filename = "app.py", .firstlineno = 1};
static struct py_code c_fib = {.name = "fib", .filename = "app.py", .firstlineno = 10};
static struct py_code c_io = {.name = "wait", .filename = "io.py", .firstlineno = 5};
static struct py_code c_fib2 = {.name = "fib", .filename = "other.py", .firstlineno = 10};

struct snap_buf {
    struct py_snapshot s;
    struct py_thread th[8];
    struct py_frame fr[64];
};

static void snap_reset(struct snap_buf *b)
{
    memset(b, 0, sizeof *b);
    b->s.threads = b->th;
    b->s.frames = b->fr;
    b->s.complete = true;
}

/* Adds thread tid with the given stack, innermost first. */
static void add_thread(struct snap_buf *b, int64_t tid, bool gil, bool idle,
                       const struct py_code *const *codes, uint32_t n)
{
    struct py_thread *t = &b->th[b->s.nthreads++];
    *t = (struct py_thread){.thread_id = (uint64_t)tid, .native_id = tid, .holds_gil = gil,
                            .idle = idle, .first = b->s.nframes, .nframes = n};
    snprintf(t->name, sizeof t->name, "t%d", (int)tid);
    for (uint32_t i = 0; i < n; i++)
        b->fr[b->s.nframes++] = (struct py_frame){.code = codes[i], .line = codes[i]->firstlineno};
}

static const struct top_row *find(const struct top_row *rows, size_t n, const char *name,
                                  const char *file)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(rows[i].name, name) && !strcmp(rows[i].file, file))
            return &rows[i];
    return NULL;
}

static const struct top_query all = {.thread = -1, .sort = TOP_SORT_OWN_PCT};

static void recursion_counts_total_once_per_sample(void **state)
{
    (void)state;
    struct top_view *v = top_view_new(5);
    struct snap_buf b;
    snap_reset(&b);
    const struct py_code *stack[] = {&c_fib, &c_fib, &c_fib, &c_main};
    add_thread(&b, 1, true, false, stack, 4);
    top_view_feed(v, &b.s, 0);
    top_view_feed(v, &b.s, S / 2);
    const struct top_row *rows;
    struct top_stats st;
    size_t n = top_view_rows(v, &all, S, &rows, &st);
    assert_int_equal(n, 2);
    const struct top_row *fib = find(rows, n, "fib", "app.py"), *m = find(rows, n, "main", "app.py");
    assert_non_null(fib);
    assert_non_null(m);
    assert_int_equal(fib->own, 2);
    assert_int_equal(fib->total, 2);
    assert_int_equal(m->own, 0);
    assert_int_equal(m->total, 2);
    assert_true(fib->total_pct <= 100.0 + 1e-9);
    assert_int_equal(st.rounds, 2);
    assert_int_equal(st.samples, 2);
    assert_int_equal(st.gil_rounds, 2);
    top_view_free(v);
}

static void same_name_in_another_file_is_another_function(void **state)
{
    (void)state;
    struct top_view *v = top_view_new(5);
    struct snap_buf b;
    snap_reset(&b);
    const struct py_code *s1[] = {&c_fib}, *s2[] = {&c_fib2};
    add_thread(&b, 1, false, false, s1, 1);
    add_thread(&b, 2, false, false, s2, 1);
    top_view_feed(v, &b.s, 0);
    const struct top_row *rows;
    assert_int_equal(top_view_rows(v, &all, 1, &rows, NULL), 2);
    top_view_free(v);
}

static void samples_leave_the_window_after_its_seconds(void **state)
{
    (void)state;
    struct top_view *v = top_view_new(5);
    struct snap_buf a, b;
    snap_reset(&a);
    snap_reset(&b);
    const struct py_code *sa[] = {&c_main}, *sb[] = {&c_io};
    add_thread(&a, 1, false, false, sa, 1);
    add_thread(&b, 1, false, false, sb, 1);
    top_view_feed(v, &a.s, 0);
    top_view_feed(v, &a.s, S + 1);
    const struct top_row *rows;
    /* At 4.9 s both seconds are in the 5 s window. */
    size_t n = top_view_rows(v, &all, 4 * S + S * 9 / 10, &rows, NULL);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].own, 2);
    /* At 5.5 s second 0 has left; at 6.5 s second 1 too. */
    n = top_view_rows(v, &all, 5 * S + S / 2, &rows, NULL);
    assert_int_equal(rows[0].own, 1);
    top_view_feed(v, &b.s, 6 * S);   /* lands in the slot second 1 used: reset first */
    struct top_stats st;
    n = top_view_rows(v, &all, 6 * S + S / 2, &rows, &st);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].name, "wait");
    assert_int_equal(st.rounds, 1);
    /* One round over the 5 s window (seconds 2..6.5): period = span / rounds. */
    assert_true(st.span_s > 4.4 && st.span_s < 4.6);
    assert_true(rows[0].own_s > 4.4 && rows[0].own_s < 4.6);
    assert_true(rows[0].own_pct > 99.9 && rows[0].own_pct < 100.1);
    top_view_free(v);
}

/* main → fib (own 3), main → wait (own 1), main alone (own 4): every column orders differently
 * from the name order. */
static struct top_view *three_functions(void)
{
    struct top_view *v = top_view_new(5);
    struct snap_buf b;
    snap_reset(&b);
    const struct py_code *f[] = {&c_fib, &c_main}, *w[] = {&c_io, &c_main}, *m[] = {&c_main};
    for (int i = 0; i < 3; i++)
        add_thread(&b, 1 + i, false, false, f, 2);
    add_thread(&b, 4, false, false, w, 2);
    add_thread(&b, 5, false, false, m, 1);
    add_thread(&b, 6, false, false, m, 1);
    add_thread(&b, 7, false, false, m, 1);
    add_thread(&b, 8, false, false, m, 1);
    top_view_feed(v, &b.s, 0);
    return v;
}

static void rows_sort_by_each_column(void **state)
{
    (void)state;
    struct top_view *v = three_functions();
    const struct top_row *rows;
    struct top_query q = all;
    size_t n = top_view_rows(v, &q, S / 2, &rows, NULL);
    assert_int_equal(n, 3);
    assert_string_equal(rows[0].name, "main");   /* own 4 */
    assert_string_equal(rows[1].name, "fib");    /* own 3 */
    assert_string_equal(rows[2].name, "wait");   /* own 1 */
    assert_int_equal(rows[0].total, 8);
    q.sort = TOP_SORT_TOTAL_PCT;
    top_view_rows(v, &q, S / 2, &rows, NULL);
    assert_string_equal(rows[0].name, "main");
    assert_string_equal(rows[2].name, "wait");
    q.sort = TOP_SORT_OWN_TIME;
    top_view_rows(v, &q, S / 2, &rows, NULL);
    assert_string_equal(rows[1].name, "fib");
    q.sort = TOP_SORT_TOTAL_TIME;
    top_view_rows(v, &q, S / 2, &rows, NULL);
    assert_string_equal(rows[0].name, "main");
    assert_true(rows[0].total_s > rows[1].total_s);
    top_view_free(v);
}

static void filters_idle_gil_and_thread(void **state)
{
    (void)state;
    struct top_view *v = top_view_new(5);
    struct snap_buf b;
    snap_reset(&b);
    const struct py_code *f[] = {&c_fib}, *w[] = {&c_io};
    add_thread(&b, 10, true, false, f, 1);
    add_thread(&b, 11, false, true, w, 1);
    add_thread(&b, 12, false, false, w, 1);
    top_view_feed(v, &b.s, 0);
    const struct top_row *rows;
    struct top_stats st;
    /* Idle samples are left out by default. */
    size_t n = top_view_rows(v, &all, 1, &rows, &st);
    assert_int_equal(n, 2);
    assert_int_equal(find(rows, n, "wait", "io.py")->own, 1);
    assert_int_equal(st.threads, 3);
    assert_int_equal(st.active, 2);
    assert_int_equal(st.idle, 1);
    struct top_query q = all;
    q.idle = true;
    n = top_view_rows(v, &q, 1, &rows, NULL);
    assert_int_equal(find(rows, n, "wait", "io.py")->own, 2);
    q.gil_only = true;
    n = top_view_rows(v, &q, 1, &rows, NULL);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].name, "fib");
    /* Per thread: index 2 is tid 12 (threads are numbered as first seen). */
    struct top_thread_info ti;
    assert_int_equal(top_view_threads(v), 3);
    assert_true(top_view_thread(v, 2, &ti));
    assert_int_equal(ti.native_id, 12);
    assert_string_equal(ti.name, "t12");
    q = all;
    q.thread = 2;
    n = top_view_rows(v, &q, 1, &rows, NULL);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].name, "wait");
    top_view_free(v);
}

static void thread_filter_and_errors(void **state)
{
    (void)state;
    struct top_view *v = top_view_new(2);
    static const char *const specs[] = {"t2*"};
    top_view_set_thread_filter(v, specs, 1);
    struct snap_buf b;
    snap_reset(&b);
    const struct py_code *f[] = {&c_fib};
    add_thread(&b, 1, false, false, f, 1);
    add_thread(&b, 2, false, false, f, 1);
    add_thread(&b, 20, false, false, f, 1);
    b.th[2].bad = true;
    top_view_feed(v, &b.s, 0);
    top_view_feed_failed(v, 1);
    const struct top_row *rows;
    struct top_stats st;
    size_t n = top_view_rows(v, &all, 2, &rows, &st);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].own, 1);      /* only t2: t1 filtered out, t20's stack torn */
    assert_int_equal(st.rounds, 2);
    assert_int_equal(st.samples, 3);       /* t2, t20 (bad) and the failed round */
    assert_int_equal(st.errors, 2);
    struct top_thread_info ti;
    assert_true(top_view_thread(v, 0, &ti));
    assert_false(ti.selected);
    top_view_free(v);
}

static void many_stacks_grow_the_tables(void **state)
{
    (void)state;
    /* Enough distinct functions and stacks to force every table to rehash. */
    static struct py_code codes[600];
    static char names[600][16];
    struct top_view *v = top_view_new(1);
    struct snap_buf b;
    for (int i = 0; i < 600; i++) {
        snprintf(names[i], sizeof names[i], "f%d", i);
        codes[i] = (struct py_code){.name = names[i], .filename = "gen.py", .firstlineno = i};
        snap_reset(&b);
        const struct py_code *stack[] = {&codes[i], &c_main};
        add_thread(&b, 1, false, false, stack, 2);
        top_view_feed(v, &b.s, (uint64_t)i);
    }
    const struct top_row *rows;
    size_t n = top_view_rows(v, &all, 1000, &rows, NULL);
    assert_int_equal(n, 601);
    assert_string_equal(rows[0].name, "f0");     /* own ties: total, then name ("f0" < ...) */
    assert_int_equal(find(rows, n, "main", "app.py")->total, 600);
    top_view_free(v);
}

static void bad_windows_are_refused(void **state)
{
    (void)state;
    assert_null(top_view_new(0));
    assert_null(top_view_new(TOP_MAX_WINDOW_S + 2));
    /* + 1: a one-table run's window spans one more whole second than it lasts (cmd_top.c). */
    struct top_view *v = top_view_new(TOP_MAX_WINDOW_S + 1);
    assert_non_null(v);
    top_view_free(v);
    v = top_view_new(3);
    const struct top_row *rows;
    assert_int_equal(top_view_rows(v, &all, 5, &rows, NULL), 0);   /* nothing fed yet */
    top_view_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(recursion_counts_total_once_per_sample),
        cmocka_unit_test(same_name_in_another_file_is_another_function),
        cmocka_unit_test(samples_leave_the_window_after_its_seconds),
        cmocka_unit_test(rows_sort_by_each_column),
        cmocka_unit_test(filters_idle_gil_and_thread),
        cmocka_unit_test(thread_filter_and_errors),
        cmocka_unit_test(many_stacks_grow_the_tables),
        cmocka_unit_test(bad_windows_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
